//! The pages before and around login: login, TOTP enrolment, the `/` dispatch and the
//! fallback. The rest of the web app is in [`crate::web`].

use crate::auth::{self, LoginRequest};
use crate::error::AppError;
use crate::session::{
    self, Client, LOGIN_CSRF_COOKIE, SESSION_COOKIE, login_csrf_cookie, session_cookie,
};
use crate::state::AppState;
use crate::web::i18n::Tr;
use crate::web::{Layout, error_for_headers, lang_of};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tillit_crypto::{SecretString, ct_eq, random_token, totp_qr_svg};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    l: Layout,
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
    info: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage<'a> {
    l: Layout,
    username: &'a str,
    required: bool,
    qr_svg: &'a str,
    otpauth_uri: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

fn render<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => AppError::Internal(format!("template: {e}")).into_response(),
    }
}

pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_fields(body).remove(name)
}

pub(crate) fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        // The first value of a name wins; a repeated field cannot override a checked one.
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// `GET /login`
pub async fn login_page(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let tr = Tr::new(lang_of(&headers));
    let csrf = random_token("");
    let info = if q.contains_key("logged_out") {
        Some(tr.t("common.login.logged_out"))
    } else if q.contains_key("expired") {
        Some(tr.t("common.login.expired"))
    } else if q.contains_key("password_changed") {
        Some(tr.t("common.login.password_changed"))
    } else {
        None
    };
    let page = render(
        StatusCode::OK,
        &LoginPage {
            l: Layout::anonymous(tr, tr.t("common.login.heading"), "/login"),
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
    let tr = Tr::new(lang_of(headers));
    let mut f = form_fields(body);
    let username = f.remove("username").unwrap_or_default();
    let csrf_cookie = session::cookie(headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let csrf_form = f.remove("csrf").unwrap_or_default();
    let fresh = random_token("");
    let again = |status: StatusCode, msg: &str| {
        let page = render(
            status,
            &LoginPage {
                l: Layout::anonymous(tr, tr.t("common.login.heading"), "/login"),
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
        return again(StatusCode::FORBIDDEN, tr.t("common.login.csrf"));
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
                AppError::Throttled { retry_after } => {
                    tr.t1("common.login.throttled", retry_after.div_ceil(60))
                }
                _ => tr.t("common.login.bad_credentials").to_string(),
            };
            again(e.status(), &msg)
        }
        Err(e) => error_for_headers(headers, "/login", &e),
    }
}

/// `GET /`: each audience's home; the login page for visitors.
pub async fn home(State(state): State<AppState>, client: Client, headers: HeaderMap) -> Response {
    let result = async {
        if let Some(p) = session::principal(&state, &headers, &client).await? {
            return Ok(Redirect::to(crate::web::home_of(&p)).into_response());
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
    result.unwrap_or_else(|e| error_for_headers(&headers, "/", &e))
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
        Ok::<_, AppError>(totp_form(&state, &headers, &s, None, StatusCode::OK).await)
    }
    .await;
    match result {
        Ok(r) => r,
        Err(AppError::Unauthenticated) => Redirect::to("/login").into_response(),
        Err(e) => error_for_headers(&headers, "/account/totp", &e),
    }
}

async fn totp_form(
    state: &AppState,
    headers: &HeaderMap,
    s: &session::SessionCaller,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let tr = Tr::new(lang_of(headers));
    let secret = match auth::enrolment_secret(state, s).await {
        Ok(secret) => secret,
        Err(e) => return error_for_headers(headers, "/account/totp", &e),
    };
    let uri = secret.otpauth_uri();
    let svg = match totp_qr_svg(&uri) {
        Ok(svg) => svg,
        Err(e) => {
            return error_for_headers(headers, "/account/totp", &AppError::Internal(e.to_string()));
        }
    };
    let mut l = Layout::anonymous(tr, tr.t("common.totp.heading"), "/account/totp");
    l.csrf = s.csrf();
    l.user = Some(s.user.username.to_string());
    l.idle_seconds = session::idle_limit(state, s.user.kind).whole_seconds();
    render(
        status,
        &TotpPage {
            l,
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
    let tr = Tr::new(lang_of(&headers));
    let mut f = form_fields(&body);
    let result = async {
        let s = session::session_from_headers(&state, &headers, &client)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        s.check_csrf(f.get("csrf").map(String::as_str))?;
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
            Err(AppError::BadRequest(_)) => Ok(totp_form(
                &state,
                &headers,
                &s,
                Some(tr.t("common.totp.wrong_code")),
                StatusCode::BAD_REQUEST,
            )
            .await),
            Err(e) => Err(e),
        }
    }
    .await;
    match result {
        Ok(r) => r,
        Err(AppError::Unauthenticated) => Redirect::to("/login?expired=1").into_response(),
        Err(e) => error_for_headers(&headers, "/account/totp", &e),
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

/// Anything else: a page for browsers, JSON for API clients.
pub async fn not_found(headers: HeaderMap, uri: Uri) -> Response {
    if crate::web::wants_page(uri.path(), &headers) {
        error_for_headers(&headers, uri.path(), &AppError::NotFound)
    } else {
        AppError::NotFound.into_response()
    }
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
