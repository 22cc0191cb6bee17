//! The JSON API of the foundation: login, logout, who am I.

use crate::auth::{self, LoginRequest};
use crate::error::{AppError, AppResult};
use crate::session::{
    self, Client, Principal, SESSION_COOKIE, clear_session_cookie, session_cookie,
};
use crate::state::AppState;
use crate::views;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tillit_crypto::SecretString;

#[derive(Deserialize)]
struct JsonLogin {
    username: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Parses a JSON body with a clear error; the body limit was applied by the router.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> AppResult<T> {
    if content_type(headers) != "application/json" {
        return Err(AppError::UnsupportedMediaType(
            "expected Content-Type: application/json".into(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
}

/// `POST /auth/login`: JSON for API clients, a form for the web page.
pub async fn login(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match content_type(&headers).as_str() {
        "application/json" => json_login(&state, &client, &headers, &body)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        "application/x-www-form-urlencoded" => {
            views::form_login(&state, &client, &headers, &body).await
        }
        _ => AppError::UnsupportedMediaType("send the login as application/json or a form".into())
            .into_response(),
    }
}

async fn json_login(
    state: &AppState,
    client: &Client,
    headers: &HeaderMap,
    body: &[u8],
) -> AppResult<Response> {
    let req: JsonLogin = parse_json(headers, body)?;
    let outcome = auth::login(
        state,
        client,
        LoginRequest {
            username: req.username,
            password: SecretString::new(req.password),
            totp: req.totp,
        },
        session::cookie(headers, SESSION_COOKIE),
    )
    .await?;
    let body = json!({
        "status": if outcome.enrolment_required { "totp_enrollment_required" } else { "ok" },
        "username": outcome.user.username,
        "kind": outcome.user.kind.code(),
        "csrf_token": outcome.csrf,
    });
    Ok((
        StatusCode::OK,
        [(
            header::SET_COOKIE,
            session_cookie(outcome.session_token.expose(), outcome.max_age),
        )],
        Json(body),
    )
        .into_response())
}

/// `POST /auth/logout`: needs the session's CSRF token (`X-CSRF-Token` header or form field).
pub async fn logout(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result: AppResult<Response> = async {
        let Some(session) = session::session_from_headers(&state, &headers, &client).await? else {
            return Err(AppError::Unauthenticated);
        };
        let presented = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| views::form_field(&body, "csrf"));
        session.check_csrf(presented.as_deref())?;
        auth::logout(&state, &client, &session).await?;
        let cookie = [(header::SET_COOKIE, clear_session_cookie())];
        if content_type(&headers) == "application/x-www-form-urlencoded" {
            Ok((cookie, axum::response::Redirect::to("/login?logged_out=1")).into_response())
        } else {
            Ok((cookie, Json(json!({ "status": "logged_out" }))).into_response())
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/me`: who the caller is, by session or bearer token.
pub async fn me(principal: Principal) -> Json<serde_json::Value> {
    Json(json!({
        "username": principal.user.username,
        "kind": principal.user.kind.code(),
        "person_id": principal.user.person,
        "tenant": { "id": principal.tenant.id, "name": principal.tenant.name },
        "roles": principal.roles.iter().map(|r| r.code()).collect::<Vec<_>>(),
        "auth": match principal.via { session::AuthVia::Session { .. } => "session", session::AuthVia::Token { .. } => "token" },
        "totp_enrolled": principal.user.totp_secret.is_some(),
    }))
}
