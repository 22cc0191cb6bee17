//! Tenant administration over HTTP: the tenant's authorization policies.
//! `GET /admin/policies` (tenant admins and security officers read them) and
//! `PUT /admin/policies` (tenant admins replace them; validated against the schema first and
//! refused with the validator's message otherwise).

use crate::api::content_type;
use crate::error::{AppError, AppResult};
use crate::session::{Client, Principal, security_event};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tillit_core::Role;
use tillit_store::SecurityEventKind;

fn require(p: &Principal, roles: &[Role]) -> AppResult<()> {
    if p.roles.iter().any(|r| roles.contains(r)) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "this needs the role {}",
            roles
                .iter()
                .map(|r| r.code())
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }
}

pub async fn get_policies(
    State(state): State<AppState>,
    p: Principal,
) -> AppResult<Json<serde_json::Value>> {
    require(&p, &[Role::TenantAdmin, Role::SecurityOfficer])?;
    let stored = state.store.tenant_policies(&p.tenant.id).await?;
    Ok(Json(json!({
        "tenant": p.tenant.name,
        "is_default": stored.is_none(),
        "policies": stored.unwrap_or_else(|| tillit_authz::DEFAULT_TENANT_POLICIES.to_string()),
        "platform": tillit_authz::PLATFORM_POLICIES,
        "schema": tillit_authz::SCHEMA,
    })))
}

pub async fn put_policies(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    p: Principal,
    body: Bytes,
) -> Response {
    let result: AppResult<Response> = async {
        require(&p, &[Role::TenantAdmin])?;
        p.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
        let text = match content_type(&headers).as_str() {
            "text/plain" => String::from_utf8(body.to_vec())
                .map_err(|_| AppError::BadRequest("the policies are not UTF-8 text".into()))?,
            "application/json" => {
                let v: serde_json::Value = crate::api::parse_json(&headers, &body)?;
                v.get("policies")
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        AppError::BadRequest("expected {\"policies\": \"...\"}".into())
                    })?
            }
            _ => {
                return Err(AppError::UnsupportedMediaType(
                    "send the policies as text/plain (Cedar) or application/json".into(),
                ));
            }
        };
        let count = match crate::authz::validate_policies(&text) {
            Ok(n) => n,
            Err(msg) => {
                let body = json!({"error": {"code": "TIL-POLICY-001", "message": msg}});
                return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
            }
        };
        let now = state.clock.now();
        state
            .store
            .set_tenant_policies(&p.tenant.id, &text, &p.user.person, now)
            .await?;
        security_event(
            &state,
            SecurityEventKind::PolicyChanged,
            true,
            &format!("{count} tenant policies saved"),
            Some(&p.user),
            None,
            &client,
        )
        .await?;
        Ok(Json(json!({"status": "saved", "policies": count})).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
