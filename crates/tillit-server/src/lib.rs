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
pub mod config;
pub mod error;
pub mod fhir;
pub mod health;
pub mod metrics;
pub mod serve;
pub mod session;
pub mod state;
pub mod throttle;
pub mod tls;
pub mod views;

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
    if !safe {
        let cross_site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "cross-site");
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        // An Origin header (sent by browsers on cross-origin and form posts) must be us.
        let origin_mismatch = req
            .headers()
            .get(header::ORIGIN)
            .map(|o| o.to_str().unwrap_or("null").strip_prefix("https://") != Some(host.as_str()))
            .unwrap_or(false);
        if cross_site || origin_mismatch {
            return AppError::Csrf.into_response();
        }
    }
    next.run(req).await
}
