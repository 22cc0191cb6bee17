//! The HTTP edge of Tillit: TLS, security headers, sessions, CSRF, the API and the pages.
//!
//! This is the only crate that knows HTTP, and the only place errors become responses.
//! Every route that will touch patient data goes through one pipeline (authenticate →
//! authorize → audit → load); nothing here may bypass it.

pub mod admin;
pub mod api;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod backup;
pub mod config;
pub mod error;
pub mod fhir;
pub mod health;
pub mod metrics;
pub mod serve;
pub mod session;
pub mod state;
pub mod stats;
pub mod throttle;
pub mod tls;
pub mod views;
pub mod web;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::AppError;
use std::time::Duration;
use tower_http::set_header::SetResponseHeaderLayer;

pub use config::Config;
pub use state::AppState;

/// Content-Security-Policy for every response: no inline script or style, nothing from
/// elsewhere, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.limits.body_bytes;
    let timeout = Duration::from_secs(u64::from(state.config.limits.request_timeout_seconds));
    let headers = [
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ];
    let mut app = Router::new()
        .route("/", get(views::home))
        .route("/login", get(views::login_page))
        .route("/auth/login", post(api::login))
        .route("/auth/logout", post(api::logout))
        .route(
            "/account/totp",
            get(views::totp_page).post(views::totp_confirm),
        )
        .route("/api/me", get(api::me))
        .route(
            "/admin/policies",
            get(admin::get_policies).put(admin::put_policies),
        )
        .route(
            "/admin/support",
            get(admin::get_support).post(admin::post_support),
        )
        .route(
            "/admin/support/{id}",
            axum::routing::delete(admin::delete_support),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/static/tillit.css", get(views::stylesheet))
        .route("/admin/stats", get(stats::get_stats))
        .route("/admin/alerts", get(audit::alerts::list))
        .route("/admin/alerts/{id}", get(audit::alerts::detail))
        .route("/admin/alerts/{id}/decision", post(audit::alerts::decide))
        .route(
            "/admin/review-rules",
            get(audit::alerts::rules).put(audit::alerts::set_rules),
        )
        .route("/audit/key", get(audit::api::key))
        .route(
            "/audit/{tenant}/checkpoint",
            get(audit::api::checkpoint).post(audit::api::sign_now),
        )
        .route(
            "/audit/{tenant}/proof/inclusion",
            get(audit::api::inclusion),
        )
        .route(
            "/audit/{tenant}/proof/consistency",
            get(audit::api::consistency),
        )
        .merge(fhir::routes())
        .merge(web::routes())
        .layer(middleware::from_fn_with_state(state.clone(), audit_layer))
        .fallback(views::not_found)
        .layer(middleware::from_fn(same_origin_guard))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                AppError::Internal("handler panicked".into()).into_response()
            },
        ));
    for (name, value) in headers {
        app = app.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    app.layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ))
    .with_state(state)
}

/// Counts requests and turns the framework's bare rejections (oversized body, bad query,
/// unsupported method) into our error shape, so every 4xx explains itself.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let page = web::wants_page(req.uri().path(), req.headers())
        .then(|| (req.headers().clone(), req.uri().path().to_string()));
    let limit = state.config.limits.body_bytes;
    let resp = next.run(req).await;
    let status = resp.status();
    state.metrics.count_request(&method, status.as_u16());
    let ours = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/json")
                || ct.starts_with("application/fhir+json")
                || ct.starts_with("text/html")
        });
    if ours || !(status.is_client_error()) {
        return resp;
    }
    if let Some((headers, path)) = page {
        let err = match status {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(limit),
            _ => AppError::BadRequest(format!("the request was not understood ({status})")),
        };
        let mut r = web::error_for_headers(&headers, &path, &err);
        *r.status_mut() = status;
        return r;
    }
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(limit).into_response(),
        StatusCode::METHOD_NOT_ALLOWED => {
            let mut r =
                AppError::BadRequest("this method is not allowed here".into()).into_response();
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            if let Some(allow) = resp.headers().get(header::ALLOW) {
                r.headers_mut().insert(header::ALLOW, allow.clone());
            }
            r
        }
        StatusCode::REQUEST_TIMEOUT => {
            let mut r = AppError::BadRequest("the request took too long".into()).into_response();
            *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
            r
        }
        s => {
            let mut r = AppError::BadRequest(format!("the request was not understood ({s})"))
                .into_response();
            *r.status_mut() = s;
            r
        }
    }
}

/// Collects the request's audit events and appends them before the response leaves: if the
/// log cannot be written, the response (and any data in it) is dropped for a 503.
async fn audit_layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let client = {
        let (mut parts, body) = req.into_parts();
        let client = session::Client::from_request_parts(&mut parts, &state)
            .await
            .unwrap_or_else(|e| match e {});
        (client, Request::from_parts(parts, body))
    };
    let (client, req) = client;
    let fhir_path = req.uri().path().starts_with("/fhir/");
    let scope = audit::Scope::new(&client);
    let resp = scope.run(next.run(req)).await;
    match scope.flush(&state).await {
        Ok(()) => resp,
        Err(e) => {
            drop(resp);
            if fhir_path {
                fhir::service::FhirError::new(
                    503,
                    tillit_fhir::outcome::IssueType::Transient,
                    "the audit log cannot be written, so nothing is returned; try again later",
                )
                .into_response()
            } else {
                AppError::Unavailable(e.to_string()).into_response()
            }
        }
    }
}

/// Refuses state-changing requests that a browser says came from another site. Together
/// with SameSite=Strict cookies and CSRF tokens this is defence in depth.
async fn same_origin_guard(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !same_origin(req.headers(), req.uri()) {
        let path = req.uri().path().to_string();
        if web::wants_page(&path, req.headers()) {
            return web::error_for_headers(req.headers(), &path, &AppError::Csrf);
        }
        return AppError::Csrf.into_response();
    }
    next.run(req).await
}

/// Whether a state-changing request comes from our own pages (or from a non-browser client,
/// which sends neither header).
fn same_origin(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site == Some("cross-site") {
        return false;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    match headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or(""))
    {
        None => true,
        // Browsers send `Origin: null` on form posts from a page whose referrer policy is
        // `no-referrer` (ours); their Fetch Metadata then says whether it was same-origin.
        Some("null") => fetch_site == Some("same-origin"),
        Some(o) => o.strip_prefix("https://") == Some(host.as_str()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::{HeaderMap, Uri};

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn origin_checks() {
        let u: Uri = "/x".parse().unwrap();
        let host = ("host", "tillit.example:8443");
        assert!(same_origin(&h(&[host]), &u));
        assert!(same_origin(
            &h(&[host, ("origin", "https://tillit.example:8443")]),
            &u
        ));
        assert!(!same_origin(
            &h(&[host, ("origin", "https://evil.example")]),
            &u
        ));
        assert!(!same_origin(
            &h(&[host, ("origin", "http://tillit.example:8443")]),
            &u
        ));
        assert!(same_origin(
            &h(&[host, ("origin", "null"), ("sec-fetch-site", "same-origin")]),
            &u
        ));
        assert!(!same_origin(&h(&[host, ("origin", "null")]), &u));
        assert!(!same_origin(
            &h(&[host, ("origin", "null"), ("sec-fetch-site", "same-site")]),
            &u
        ));
        assert!(!same_origin(
            &h(&[host, ("sec-fetch-site", "cross-site")]),
            &u
        ));
    }
}
