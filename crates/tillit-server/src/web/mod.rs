//! The web app: server-rendered pages for clinicians, patients, relatives, security officers
//! and tenant admins (DESIGN.md §4).
//!
//! Every page handler takes a [`Web`]: the logged-in caller, their language and their CSRF
//! token. Pages reach data only through the same calls as the API ([`crate::fhir::service::Fhir`],
//! [`crate::authz::authorize`]), so every view is tenant- and policy-checked by the same hook
//! and recorded in the audit log by the request's audit scope. Texts come from the message
//! catalogues in [`i18n`]; no page has inline script or style.

pub mod account;
pub mod admin;
pub mod chart;
pub mod clinician;
pub mod i18n;
pub mod patient;
pub mod rights;
pub mod security;

use crate::authz::{Denial, Subject, SubjectError};
use crate::error::AppError;
use crate::fhir::service::FhirError;
use crate::session::{self, Client, Principal, SESSION_COOKIE};
use crate::state::AppState;
use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use i18n::{Lang, Tr};
use std::collections::HashMap;
use tillit_core::{PersonKind, Role};
use tillit_store::StoreError;

/// The cookie that remembers the chosen language (not a secret; readable by the server only).
pub const LANG_COOKIE: &str = "__Host-tillit_lang";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/lang/{code}", get(switch_language))
        .route("/session/keepalive", get(keepalive))
        .route("/static/tillit.js", get(script))
        .route("/static/icon.svg", get(icon))
        .route("/favicon.ico", get(icon))
        .merge(account::routes())
        .merge(clinician::routes())
        .merge(patient::routes())
        .merge(security::routes())
        .merge(admin::routes())
        .merge(rights::routes())
}

/// The language of a request: the cookie, else the browser's first preference we speak,
/// else Norwegian bokmål.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    if let Some(l) = session::cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
        return l;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .map(|p| p.split(';').next().unwrap_or_default().trim())
                .filter_map(|tag| Lang::parse(tag.split('-').next().unwrap_or_default()))
                .next()
        })
        .unwrap_or(Lang::Nb)
}

/// The audiences a caller belongs to, in the order their homes are preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Clinician,
    Security,
    Admin,
    Patient,
    Relative,
    Other,
}

pub fn audiences(p: &Principal) -> Vec<Audience> {
    let mut out = Vec::new();
    match p.user.kind {
        PersonKind::Patient => out.push(Audience::Patient),
        PersonKind::Relative => out.push(Audience::Relative),
        PersonKind::Staff => {
            if p.roles.iter().any(|r| {
                matches!(
                    r,
                    Role::Physician | Role::Nurse | Role::CareAssistant | Role::Secretary
                )
            }) {
                out.push(Audience::Clinician);
            }
            if p.roles.contains(&Role::SecurityOfficer) {
                out.push(Audience::Security);
            }
            if p.roles.contains(&Role::TenantAdmin) {
                out.push(Audience::Admin);
            }
        }
    }
    if out.is_empty() {
        out.push(Audience::Other);
    }
    out
}

/// Where `/` takes a caller.
pub fn home_of(p: &Principal) -> &'static str {
    match audiences(p).first() {
        Some(Audience::Clinician) => "/patients",
        Some(Audience::Security) => "/security/alerts",
        Some(Audience::Admin) => "/manage/people",
        Some(Audience::Patient) => "/me/record",
        Some(Audience::Relative) => "/relative",
        _ => "/account",
    }
}

/// One link in the page's main navigation.
#[derive(Debug, Clone)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

fn nav_for(p: &Principal, tr: Tr, path: &str) -> Vec<NavItem> {
    let mut items: Vec<(&'static str, &'static str)> = Vec::new();
    for a in audiences(p) {
        match a {
            Audience::Clinician => items.extend([
                ("/patients", "common.nav.patients"),
                ("/rights/corrections", "rights.nav.corrections"),
            ]),
            Audience::Security => items.extend([
                ("/security/alerts", "common.nav.alerts"),
                ("/security/audit", "common.nav.audit"),
                ("/security/emergency", "common.nav.emergency"),
                ("/security/deviations", "common.nav.deviations"),
                ("/security/checkpoints", "common.nav.checkpoints"),
            ]),
            Audience::Admin => items.extend([
                ("/manage/people", "common.nav.people"),
                ("/manage/care", "common.nav.care"),
                ("/manage/policies", "common.nav.policies"),
                ("/manage/support", "common.nav.support"),
                ("/manage/status", "common.nav.status"),
                ("/manage/erasure", "rights.nav.erasure"),
            ]),
            Audience::Patient => items.extend([
                ("/me/record", "common.nav.record"),
                ("/me/log", "common.nav.log"),
                ("/me/blocks", "common.nav.blocks"),
                ("/me/relatives", "common.nav.relatives"),
                ("/me/export", "common.nav.export"),
                ("/me/rights", "rights.nav.rights"),
            ]),
            Audience::Relative => items.push(("/relative", "common.nav.relative")),
            Audience::Other => {}
        }
    }
    items.push(("/account", "common.nav.account"));
    items
        .into_iter()
        .map(|(href, key)| NavItem {
            href,
            label: tr.t(key),
            current: path == href || path.starts_with(&format!("{href}/")),
        })
        .collect()
}

/// What the shared page frame (`base.html`) needs: every page template has it as `l`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub tr: Tr,
    pub title: String,
    /// The logged-in user's name; `None` on the login pages.
    pub user: Option<String>,
    pub tenant: Option<String>,
    pub nav: Vec<NavItem>,
    pub csrf: String,
    /// Seconds of inactivity before the session ends (0: no session).
    pub idle_seconds: i64,
    /// This page's path, for the language switch to return to.
    pub path: String,
}

impl Layout {
    /// The frame for pages without a session (login, errors before login).
    pub fn anonymous(tr: Tr, title: impl Into<String>, path: &str) -> Self {
        Self {
            tr,
            title: title.into(),
            user: None,
            tenant: None,
            nav: Vec::new(),
            csrf: String::new(),
            idle_seconds: 0,
            path: path.to_string(),
        }
    }

    /// The link that switches to the other language and comes back here.
    pub fn switch_href(&self) -> String {
        let next: String = form_urlencoded::byte_serialize(self.path.as_bytes()).collect();
        format!("/lang/{}?next={next}", self.tr.lang.other().code())
    }

    pub fn switch_label(&self) -> &'static str {
        self.tr.t("common.switch_language")
    }

    pub fn switch_lang(&self) -> &'static str {
        self.tr.lang.other().code()
    }
}

/// A logged-in caller on a page.
pub struct Web {
    pub state: AppState,
    pub principal: Principal,
    pub client: Client,
    pub tr: Tr,
    pub csrf: String,
    pub path: String,
    /// The person's display name (their own profile for patients).
    pub name: String,
}

impl FromRequestParts<AppState> for Web {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let client = Client::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|e| match e {});
        let tr = Tr::new(lang_of(&parts.headers));
        let path = parts.uri.path().to_string();
        let headers = &parts.headers;
        let principal = match session::principal(state, headers, &client).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                // A half-finished login (staff owing TOTP enrolment) continues there.
                let pending = session::session_from_headers(state, headers, &client)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|s| s.session.pending_totp);
                let to = if pending {
                    "/account/totp"
                } else if session::cookie(headers, SESSION_COOKIE).is_some() {
                    "/login?expired=1"
                } else {
                    "/login"
                };
                return Err(Redirect::to(to).into_response());
            }
            Err(e) => return Err(error_response(tr, &path, None, &PageError::from(e))),
        };
        if !matches!(principal.via, session::AuthVia::Session { .. }) {
            // The pages are for people in browsers; tokens are for the API.
            return Err(error_response(
                tr,
                &path,
                None,
                &PageError::from(AppError::Forbidden(
                    "the web app needs a browser session, not an API token".into(),
                )),
            ));
        }
        let csrf = session::cookie(headers, SESSION_COOKIE)
            .map(session::csrf_for)
            .unwrap_or_default();
        let name = display_name(state, &principal).await;
        Ok(Web {
            state: state.clone(),
            principal,
            client,
            tr,
            csrf,
            path,
            name,
        })
    }
}

/// The name to greet a user by: their person's display name (staff, relatives), else the
/// username. A patient's name is sealed under their key and opened only by an audited read.
async fn display_name(state: &AppState, p: &Principal) -> String {
    state
        .store
        .person(&p.tenant.id, &p.user.person)
        .await
        .ok()
        .flatten()
        .and_then(|person| person.display_name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| p.user.username.to_string())
}

impl Web {
    /// The page frame for a page titled `title`.
    pub fn layout(&self, title: impl Into<String>) -> Layout {
        Layout {
            tr: self.tr,
            title: title.into(),
            user: Some(self.name.clone()),
            tenant: Some(self.principal.tenant.name.clone()),
            nav: nav_for(&self.principal, self.tr, &self.path),
            csrf: self.csrf.clone(),
            idle_seconds: session::idle_limit(&self.state, self.principal.user.kind)
                .whole_seconds(),
            path: self.path.clone(),
        }
    }

    /// The caller as an authorization subject (care relationships, grants, blocks, roles).
    pub async fn subject(&self) -> Result<Subject, PageError> {
        Ok(Subject::load(&self.state, &self.principal).await?)
    }

    /// Checks the CSRF token of a posted form.
    pub fn check_csrf(&self, form: &HashMap<String, String>) -> Result<(), PageError> {
        Ok(self
            .principal
            .check_csrf(form.get("csrf").map(String::as_str))?)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.principal.roles.contains(&role)
    }

    /// Refuses a page meant for another audience.
    pub fn require(&self, audience: Audience) -> Result<(), PageError> {
        if audiences(&self.principal).contains(&audience) {
            Ok(())
        } else {
            Err(PageError::from(AppError::Forbidden(
                "this page is not for your role".into(),
            )))
        }
    }

    /// Renders a page, or the error page for a failure.
    pub fn finish(&self, result: Result<Response, PageError>) -> Response {
        match result {
            Ok(r) => r,
            Err(e) => error_response(self.tr, &self.path, Some(self), &e),
        }
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.state.clock.now()
    }
}

/// Renders a template as a page.
pub fn render<T: Template>(t: &T) -> Result<Response, PageError> {
    render_status(StatusCode::OK, t)
}

pub fn render_status<T: Template>(status: StatusCode, t: &T) -> Result<Response, PageError> {
    match t.render() {
        Ok(html) => Ok((status, Html(html)).into_response()),
        Err(e) => Err(PageError::from(AppError::Internal(format!(
            "template: {e}"
        )))),
    }
}

/// A form body, decoded (the first value of a repeated name wins).
pub fn form(body: &[u8]) -> HashMap<String, String> {
    crate::views::form_fields(body)
}

/// Every value of a repeated form field (checkbox groups).
pub fn form_all(body: &[u8], name: &str) -> Vec<String> {
    form_urlencoded::parse(body)
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Why a page could not be shown, as the caller will read it.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    /// A sentence from the layers below (English); shown as a detail under the explanation.
    pub detail: String,
    /// The reason of a policy refusal, and whether emergency access would open it.
    pub denial: Option<Denial>,
}

impl PageError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            denial: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "")
    }
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        let detail = match &e {
            AppError::Internal(cause) | AppError::Unavailable(cause) => {
                tracing::error!(code = e.code(), cause = %cause, "page failed");
                String::new()
            }
            AppError::NotFound | AppError::Unauthenticated | AppError::Csrf => String::new(),
            other => other.to_string(),
        };
        Self::new(e.status(), detail)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        Self::from(AppError::from(e))
    }
}

impl From<SubjectError> for PageError {
    fn from(e: SubjectError) -> Self {
        match e {
            SubjectError::Store(s) => Self::from(s),
            other => Self::new(StatusCode::FORBIDDEN, other.to_string()),
        }
    }
}

impl From<Denial> for PageError {
    fn from(d: Denial) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            detail: d.reason.clone(),
            denial: Some(d),
        }
    }
}

impl From<FhirError> for PageError {
    fn from(e: FhirError) -> Self {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(status = e.status, "page failed on a FHIR call");
            return Self::new(status, "");
        }
        Self::new(status, e.message())
    }
}

#[derive(Template)]
#[template(path = "web/error.html")]
struct ErrorPage<'a> {
    l: Layout,
    heading: &'static str,
    explanation: &'static str,
    detail: &'a str,
    home: &'static str,
}

/// The readable error page, in the caller's language, with the frame when logged in.
pub fn error_response(tr: Tr, path: &str, web: Option<&Web>, e: &PageError) -> Response {
    let (heading, explanation) = match e.status {
        StatusCode::UNAUTHORIZED => ("common.error.401", "common.error.401.text"),
        StatusCode::FORBIDDEN if e.detail == AppError::Csrf.to_string() || e.detail.is_empty() => {
            ("common.error.403", "common.error.csrf.text")
        }
        StatusCode::FORBIDDEN => ("common.error.403", "common.error.403.text"),
        StatusCode::NOT_FOUND => ("common.error.404", "common.error.404.text"),
        StatusCode::TOO_MANY_REQUESTS => ("common.error.429", "common.error.429.text"),
        StatusCode::PAYLOAD_TOO_LARGE => ("common.error.413", "common.error.413.text"),
        StatusCode::SERVICE_UNAVAILABLE => ("common.error.503", "common.error.503.text"),
        s if s.is_client_error() => ("common.error.400", "common.error.400.text"),
        _ => ("common.error.500", "common.error.500.text"),
    };
    let heading = tr.t(heading);
    let l = match web {
        Some(w) => w.layout(heading),
        None => Layout::anonymous(tr, heading, path),
    };
    let home = if web.is_some() { "/" } else { "/login" };
    let page = ErrorPage {
        l,
        heading,
        explanation: tr.t(explanation),
        detail: &e.detail,
        home,
    };
    match page.render() {
        Ok(html) => (e.status, Html(html)).into_response(),
        Err(err) => AppError::Internal(format!("error template: {err}")).into_response(),
    }
}

/// An error page for a request that has no [`Web`] (the fallback, the edge guards).
pub fn error_for_headers(headers: &HeaderMap, path: &str, err: &AppError) -> Response {
    let e = PageError {
        status: err.status(),
        detail: match err {
            AppError::Csrf => AppError::Csrf.to_string(),
            AppError::BadRequest(m) | AppError::Forbidden(m) => m.clone(),
            AppError::PayloadTooLarge(_) => err.to_string(),
            _ => String::new(),
        },
        denial: None,
    };
    error_response(Tr::new(lang_of(headers)), path, None, &e)
}

/// Does this request want a page rather than JSON (a browser navigation to a non-API path)?
pub fn wants_page(path: &str, headers: &HeaderMap) -> bool {
    let api = [
        "/fhir", "/api/", "/admin/", "/audit/", "/auth/", "/healthz", "/readyz", "/metrics",
    ]
    .iter()
    .any(|p| path.starts_with(p));
    if api && path != "/auth/login" && path != "/auth/logout" {
        return false;
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
        || headers
            .get("sec-fetch-mode")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| m == "navigate")
}

/// A local path to come back to (never another site).
pub fn local_path(next: Option<&String>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.clone(),
        _ => "/".to_string(),
    }
}

/// `GET /lang/{code}?next=/path`: remembers the language and goes back.
async fn switch_language(
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::Nb);
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=31536000",
        lang.code()
    );
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&local_path(q.get("next"))),
    )
        .into_response()
}

/// `GET /session/keepalive`: the timeout warning's "stay logged in" (touches the session).
async fn keepalive(
    axum::extract::State(state): axum::extract::State<AppState>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    match session::session_from_headers(&state, &headers, &client).await {
        Ok(Some(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /static/tillit.js`: the app's one script (session timeout warning, confirmations).
async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/tillit.js"),
    )
        .into_response()
}

/// `GET /static/icon.svg` and `/favicon.ico`.
async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../static/icon.svg"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn next_paths_stay_on_this_site() {
        let s = |x: &str| local_path(Some(&x.to_string()));
        assert_eq!(s("/patients"), "/patients");
        assert_eq!(s("//evil.example"), "/");
        assert_eq!(s("https://evil.example"), "/");
        assert_eq!(s("/\\evil"), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn language_from_cookie_then_browser() {
        let mut h = HeaderMap::new();
        assert_eq!(lang_of(&h), Lang::Nb);
        h.insert(header::ACCEPT_LANGUAGE, "en-GB,en;q=0.9".parse().unwrap());
        assert_eq!(lang_of(&h), Lang::En);
        h.insert(header::COOKIE, format!("{LANG_COOKIE}=nb").parse().unwrap());
        assert_eq!(lang_of(&h), Lang::Nb);
    }
}
