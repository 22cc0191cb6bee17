//! Server-rendered pages of the foundation: login, home, TOTP enrolment, errors.
//! The full web app (issue: web app) builds on these.

use crate::auth::{self, LoginRequest};
use crate::error::AppError;
use crate::session::{
    self, Client, LOGIN_CSRF_COOKIE, Principal, SESSION_COOKIE, login_csrf_cookie, session_cookie,
};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tillit_crypto::{SecretString, ct_eq, random_token, totp_qr_svg};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
    info: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    username: &'a str,
    tenant: &'a str,
    roles: String,
    totp_enrolled: bool,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage<'a> {
    username: &'a str,
    required: bool,
    qr_svg: &'a str,
    otpauth_uri: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    heading: &'a str,
    message: &'a str,
}

fn render<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => AppError::Internal(format!("template: {e}")).into_response(),
    }
}

/// A readable error page for a failure on a page.
pub fn error_page(err: &AppError) -> Response {
    let heading = match err.status() {
        StatusCode::UNAUTHORIZED => "Du er ikke logget inn",
        StatusCode::FORBIDDEN => "Ingen tilgang",
        StatusCode::NOT_FOUND => "Fant ikke siden",
        StatusCode::TOO_MANY_REQUESTS => "For mange forsøk",
        s if s.is_client_error() => "Noe var galt med forespørselen",
        _ => "Noe gikk galt hos oss",
    };
    if let AppError::Internal(c) | AppError::Unavailable(c) = err {
        tracing::error!(code = err.code(), cause = %c, "page failed");
    }
    render(
        err.status(),
        &ErrorPage {
            heading,
            message: &err.to_string(),
        },
    )
}

pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_fields(body).remove(name)
}

fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        // The first value of a name wins; a repeated field cannot override a checked one.
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// `GET /login`
pub async fn login_page(Query(q): Query<HashMap<String, String>>) -> Response {
    let csrf = random_token("");
    let info = q.contains_key("logged_out").then_some("Du er logget ut.");
    let info = info.or_else(|| {
        q.contains_key("expired")
            .then_some("Økten din er utløpt. Logg inn på nytt.")
    });
    let page = render(
        StatusCode::OK,
        &LoginPage {
            csrf: csrf.expose(),
            username: "",
            error: None,
            info,
        },
    );
    (
        [(header::SET_COOKIE, login_csrf_cookie(csrf.expose()))],
        page,
    )
        .into_response()
}

/// The form branch of `POST /auth/login`.
pub async fn form_login(
    state: &AppState,
    client: &Client,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let mut f = form_fields(body);
    let username = f.remove("username").unwrap_or_default();
    let csrf_cookie = session::cookie(headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let csrf_form = f.remove("csrf").unwrap_or_default();
    let fresh = random_token("");
    let again = |status: StatusCode, msg: &str| {
        let page = render(
            status,
            &LoginPage {
                csrf: fresh.expose(),
                username: &username,
                error: Some(msg),
                info: None,
            },
        );
        (
            [(header::SET_COOKIE, login_csrf_cookie(fresh.expose()))],
            page,
        )
            .into_response()
    };
    if csrf_cookie.is_empty() || !ct_eq(csrf_cookie.as_bytes(), csrf_form.as_bytes()) {
        return again(StatusCode::FORBIDDEN, &AppError::Csrf.to_string());
    }
    let req = LoginRequest {
        username: username.clone(),
        password: SecretString::new(f.remove("password").unwrap_or_default()),
        totp: f.remove("totp").filter(|t| !t.trim().is_empty()),
    };
    match auth::login(state, client, req, session::cookie(headers, SESSION_COOKIE)).await {
        Ok(o) => {
            let to = if o.enrolment_required {
                "/account/totp"
            } else {
                "/"
            };
            (
                [(
                    header::SET_COOKIE,
                    session_cookie(o.session_token.expose(), o.max_age),
                )],
                Redirect::to(to),
            )
                .into_response()
        }
        Err(e @ (AppError::BadCredentials | AppError::Throttled { .. })) => {
            let msg = match e {
                AppError::Throttled { retry_after } => format!(
                    "For mange mislykkede forsøk. Prøv igjen om {} minutter.",
                    retry_after.div_ceil(60)
                ),
                _ => "Feil brukernavn, passord eller engangskode.".to_string(),
            };
            again(e.status(), &msg)
        }
        Err(e) => error_page(&e),
    }
}

/// `GET /`: the caller's home; the login page for visitors.
pub async fn home(State(state): State<AppState>, client: Client, headers: HeaderMap) -> Response {
    let result = async {
        if let Some(p) = session::principal(&state, &headers, &client).await? {
            return Ok(home_page(&p, &headers));
        }
        // A half-finished login (staff owing TOTP enrolment) continues there.
        if let Some(s) = session::session_from_headers(&state, &headers, &client).await?
            && s.session.pending_totp
        {
            return Ok(Redirect::to("/account/totp").into_response());
        }
        Ok::<_, AppError>(Redirect::to("/login").into_response())
    }
    .await;
    result.unwrap_or_else(|e| error_page(&e))
}

fn home_page(p: &Principal, headers: &HeaderMap) -> Response {
    let csrf = session::cookie(headers, SESSION_COOKIE)
        .map(session::csrf_for)
        .unwrap_or_default();
    let roles = p
        .roles
        .iter()
        .map(|r| r.code())
        .collect::<Vec<_>>()
        .join(", ");
    render(
        StatusCode::OK,
        &HomePage {
            username: p.user.username.as_str(),
            tenant: &p.tenant.name,
            roles,
            totp_enrolled: p.user.totp_secret.is_some(),
            csrf: &csrf,
        },
    )
}

/// `GET /account/totp`: the enrolment page with the QR code.
pub async fn totp_page(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let s = session::session_from_headers(&state, &headers, &client)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        Ok::<_, AppError>(totp_form(&state, &s, None, StatusCode::OK).await)
    }
    .await;
    match result {
        Ok(r) => r,
        Err(AppError::Unauthenticated) => Redirect::to("/login").into_response(),
        Err(e) => error_page(&e),
    }
}

async fn totp_form(
    state: &AppState,
    s: &session::SessionCaller,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let secret = match auth::enrolment_secret(state, s).await {
        Ok(secret) => secret,
        Err(e) => return error_page(&e),
    };
    let uri = secret.otpauth_uri();
    let svg = match totp_qr_svg(&uri) {
        Ok(svg) => svg,
        Err(e) => return error_page(&AppError::Internal(e.to_string())),
    };
    render(
        status,
        &TotpPage {
            username: s.user.username.as_str(),
            required: s.session.pending_totp,
            qr_svg: &svg,
            otpauth_uri: &uri,
            csrf: &s.csrf(),
            error,
        },
    )
}

/// `POST /account/totp`: confirm enrolment with a code.
pub async fn totp_confirm(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut f = form_fields(&body);
    let result = async {
        let s = session::session_from_headers(&state, &headers, &client)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        s.check_csrf(f.get("csrf").map(String::as_str))?;
        // Refresh the session record so the enrolment secret is current.
        let code = f.remove("code").unwrap_or_default();
        match auth::confirm_enrolment(&state, &client, &s, &code).await {
            Ok(o) => Ok((
                [(
                    header::SET_COOKIE,
                    session_cookie(o.session_token.expose(), o.max_age),
                )],
                Redirect::to("/"),
            )
                .into_response()),
            Err(AppError::BadRequest(msg)) => {
                Ok(totp_form(&state, &s, Some(&msg), StatusCode::BAD_REQUEST).await)
            }
            Err(e) => Err(e),
        }
    }
    .await;
    match result {
        Ok(r) => r,
        Err(AppError::Unauthenticated) => Redirect::to("/login?expired=1").into_response(),
        Err(e) => error_page(&e),
    }
}

/// `GET /static/tillit.css`: the one stylesheet, served from the binary.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/tillit.css"),
    )
        .into_response()
}

/// Anything else.
pub async fn not_found() -> Response {
    error_page(&AppError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_escapes_and_duplicates() {
        let f = form_fields(b"a=1+2&b=%C3%A6%2F&a=3&c=%zz&&d");
        assert_eq!(f.get("a").map(String::as_str), Some("1 2"));
        assert_eq!(f.get("b").map(String::as_str), Some("æ/"));
        assert_eq!(f.get("c").map(String::as_str), Some("%zz"));
        assert_eq!(f.get("d").map(String::as_str), Some(""));
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn form_parsing_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = super::form_fields(&raw);
        }
    }
}
