//! Tenant administration over HTTP: the tenant's authorization policies and platform
//! operators' support access (`GET/POST /admin/support`, `DELETE /admin/support/{id}`).
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
        let count = match save_policies(&state, &p, &client, &text).await? {
            Ok(n) => n,
            Err(msg) => {
                let body = json!({"error": {"code": "TIL-POLICY-001", "message": msg}});
                return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
            }
        };
        Ok(Json(json!({"status": "saved", "policies": count})).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn grant_json(g: &tillit_store::SupportGrant, now: time::OffsetDateTime) -> serde_json::Value {
    let state = if g.revoked_at.is_some() {
        "revoked"
    } else if g.active_at(now) {
        "active"
    } else {
        "expired"
    };
    json!({
        "id": g.id,
        "operator_user": g.operator.0,
        "reason": g.reason,
        "granted_by": g.granted_by.as_ref().map(|p| p.to_string()),
        "from": crate::fhir::service::format_instant(g.period.start()),
        "to": g.period.end().map(crate::fhir::service::format_instant),
        "state": state,
    })
}

/// `GET /admin/support`: every support grant of the tenant (admins and security officers).
pub async fn get_support(
    State(state): State<AppState>,
    p: Principal,
) -> AppResult<Json<serde_json::Value>> {
    require(&p, &[Role::TenantAdmin, Role::SecurityOfficer])?;
    let now = state.clock.now();
    let grants = state.store.support_grants(&p.tenant.id).await?;
    Ok(Json(json!({
        "tenant": p.tenant.name,
        "grants": grants.iter().map(|g| grant_json(g, now)).collect::<Vec<_>>(),
    })))
}

/// `POST /admin/support` `{"operator": USERNAME, "minutes": N, "reason": "..."}`: a tenant
/// admin lets a platform operator read the tenant's data for up to 24 hours.
pub async fn post_support(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    p: Principal,
    body: Bytes,
) -> AppResult<Response> {
    require(&p, &[Role::TenantAdmin])?;
    p.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
    let v: serde_json::Value = crate::api::parse_json(&headers, &body)?;
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::trim);
    let operator = text("operator")
        .and_then(|u| tillit_core::Username::parse(u).ok())
        .ok_or_else(|| AppError::BadRequest("give \"operator\": the operator's username".into()))?;
    let reason = text("reason")
        .filter(|r| r.chars().count() >= SUPPORT_REASON_MIN_CHARS)
        .ok_or_else(|| AppError::BadRequest("give \"reason\": the support ticket".into()))?;
    let minutes = v
        .get("minutes")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(120);
    let grant = grant_support(&state, &p, &client, &operator, minutes, reason).await?;
    Ok((
        StatusCode::CREATED,
        Json(grant_json(&grant, grant.period.start())),
    )
        .into_response())
}

/// `DELETE /admin/support/{id}`: ends a support grant now.
pub async fn delete_support(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    p: Principal,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> AppResult<Response> {
    require(&p, &[Role::TenantAdmin])?;
    p.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
    revoke_support(&state, &p, &client, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Validates a tenant's policies with the same check as every request and saves them,
/// recording `PolicyChanged`. `Ok(Err(message))` when the validator refuses the text
/// (nothing is saved); `Ok(Ok(n))` with the number of policies saved.
pub async fn save_policies(
    state: &AppState,
    p: &Principal,
    client: &Client,
    text: &str,
) -> AppResult<Result<usize, String>> {
    require(p, &[Role::TenantAdmin])?;
    let count = match crate::authz::validate_policies(text) {
        Ok(n) => n,
        Err(msg) => return Ok(Err(msg)),
    };
    let now = state.clock.now();
    state
        .store
        .set_tenant_policies(&p.tenant.id, text, &p.user.person, now)
        .await?;
    security_event(
        state,
        SecurityEventKind::PolicyChanged,
        true,
        &format!("{count} tenant policies saved"),
        Some(&p.user),
        None,
        client,
    )
    .await?;
    Ok(Ok(count))
}

/// The longest support access a tenant admin can grant, in minutes (24 hours).
pub const SUPPORT_MAX_MINUTES: i64 = 1440;
/// A support grant's reason (the ticket) has at least this many characters.
pub const SUPPORT_REASON_MIN_CHARS: usize = 5;

/// Lets a platform operator read the tenant's data (read only) for `minutes`, recording
/// `AccessChanged`. Refused with `BadRequest` for a duration outside 1..=1440 minutes, a
/// reason shorter than five characters or a user who is not a platform operator.
pub async fn grant_support(
    state: &AppState,
    p: &Principal,
    client: &Client,
    operator: &tillit_core::Username,
    minutes: i64,
    reason: &str,
) -> AppResult<tillit_store::SupportGrant> {
    require(p, &[Role::TenantAdmin])?;
    if !(1..=SUPPORT_MAX_MINUTES).contains(&minutes) {
        return Err(AppError::BadRequest(
            "\"minutes\" must be from 1 to 1440".into(),
        ));
    }
    let reason = reason.trim();
    if reason.chars().count() < SUPPORT_REASON_MIN_CHARS {
        return Err(AppError::BadRequest(
            "give \"reason\": the support ticket".into(),
        ));
    }
    let op = state
        .store
        .user_by_username(operator)
        .await?
        .ok_or_else(|| AppError::BadRequest(NO_SUCH_OPERATOR.into()))?;
    let now = state.clock.now();
    let grant = tillit_store::SupportGrant {
        id: tillit_core::PersonId::random().to_string(),
        tenant: p.tenant.id.clone(),
        operator: op.id.clone(),
        reason: reason.to_string(),
        granted_by: Some(p.user.person.clone()),
        period: tillit_core::Period::new(now, Some(now + time::Duration::minutes(minutes)))
            .map_err(|e| AppError::BadRequest(e.to_string()))?,
        revoked_at: None,
    };
    state
        .store
        .add_support_grant(&grant, now)
        .await
        .map_err(|e| match e {
            tillit_store::StoreError::NotFound(_) => AppError::BadRequest(NO_SUCH_OPERATOR.into()),
            other => other.into(),
        })?;
    security_event(
        state,
        SecurityEventKind::AccessChanged,
        true,
        &format!("support grant {} for {minutes} min", grant.id),
        Some(&p.user),
        None,
        client,
    )
    .await?;
    Ok(grant)
}

/// The refusal of a support grant to someone who is not a platform operator.
pub const NO_SUCH_OPERATOR: &str = "no such platform operator";

/// Ends a support grant of the caller's tenant now, recording `AccessChanged`.
pub async fn revoke_support(
    state: &AppState,
    p: &Principal,
    client: &Client,
    id: &str,
) -> AppResult<()> {
    require(p, &[Role::TenantAdmin])?;
    state
        .store
        .revoke_support_grant(&p.tenant.id, id, state.clock.now())
        .await?;
    security_event(
        state,
        SecurityEventKind::AccessChanged,
        true,
        &format!("support grant {id} revoked"),
        Some(&p.user),
        None,
        client,
    )
    .await?;
    Ok(())
}

/// Creates a staff member: a person with a display name (sealed by the store) and an optional
/// HPR number. Shared by `tillit admin person create`, the demo and the admin pages.
pub async fn create_staff(
    store: &dyn tillit_store::Store,
    tenant: &tillit_core::TenantId,
    id: &tillit_core::PersonId,
    name: &str,
    hpr: Option<&str>,
    at: time::OffsetDateTime,
) -> Result<tillit_store::Person, tillit_store::StoreError> {
    store
        .create_person(
            &tillit_store::NewPerson {
                id: id.clone(),
                tenant: tenant.clone(),
                kind: tillit_core::PersonKind::Staff,
                display_name: Some(name.to_string()),
                professional_id: hpr.map(str::to_string),
                sealed_profile: None,
                national_id_index: None,
            },
            at,
        )
        .await
}

/// A login account to create for a person.
pub struct NewAccount<'a> {
    pub tenant: &'a tillit_core::TenantId,
    pub person: &'a tillit_core::PersonId,
    pub username: tillit_core::Username,
    pub password: tillit_crypto::SecretString,
    /// Base32; `None` lets staff enrol at their first login.
    pub totp_secret: Option<String>,
}

/// Creates a login account: the password is hashed with Argon2id on the blocking pool and only
/// the hash is stored. `Ok(None)` when the username is taken (usernames are unique across
/// tenants). Shared by `tillit admin user create`, the demo and the admin pages.
pub async fn create_account(
    store: &dyn tillit_store::Store,
    hasher: std::sync::Arc<tillit_crypto::PasswordHasher>,
    a: NewAccount<'_>,
    at: time::OffsetDateTime,
) -> AppResult<Option<tillit_store::User>> {
    let password = a.password;
    let hash = tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let made = store
        .create_user(
            &tillit_store::NewUser {
                id: tillit_store::UserId(tillit_core::PersonId::random().to_string()),
                tenant: a.tenant.clone(),
                person: a.person.clone(),
                username: a.username,
                password_hash: hash,
                totp_secret: a.totp_secret,
            },
            at,
        )
        .await;
    match made {
        Ok(user) => Ok(Some(user)),
        Err(tillit_store::StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
