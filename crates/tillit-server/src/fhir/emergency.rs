//! `POST /fhir/r4/Patient/{id}/$emergency-access`: break-the-glass. A staff member states a
//! reason and gets read access to one patient for a limited time. Every opening is a security
//! event for the security officers' review and appears in the patient's access log.

use super::service::{FhirError, FhirResult, format_instant};
use super::{caller, fhir_json, parse_body};
use crate::session::Client;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tillit_core::{PersonId, PersonKind};
use tillit_fhir::outcome::IssueType;
use tillit_store::{EmergencyAccess, SecurityEventKind};
use time::Duration;

pub const MIN_REASON: usize = 10;

pub(crate) fn parameter<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    if body.get("resourceType").and_then(Value::as_str) == Some("Parameters") {
        let p = body
            .get("parameter")?
            .as_array()?
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?;
        return p.get("valueString").or_else(|| p.get("valueInteger"));
    }
    body.get(name)
}

/// The `reason` parameter of an operation that must say why, trimmed; refused (400, at the
/// parameter) when shorter than a sentence fragment.
pub(crate) fn stated_reason(body: &Value, ask: &str) -> FhirResult<String> {
    let reason = parameter(body, "reason")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if reason.chars().count() < MIN_REASON {
        return Err(FhirError::new(
            400,
            IssueType::Required,
            format!("{ask} (at least {MIN_REASON} characters)"),
        )
        .map_at("Parameters.parameter:reason"));
    }
    Ok(reason.to_string())
}

async fn open(
    state: &AppState,
    client: &Client,
    headers: &HeaderMap,
    id: &str,
    body: &[u8],
) -> FhirResult<Value> {
    let subject = caller(state, headers, client).await?;
    let body = parse_body(state, headers, body)?;
    let reason = stated_reason(&body, "state the reason for emergency access")?;
    let minutes = parameter(&body, "minutes").map(|v| v.as_i64().unwrap_or(0));
    let access = open_window(state, client, &subject, id, &reason, minutes).await?;
    Ok(json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "id", "valueString": access.id},
            {"name": "patient", "valueReference": {"reference": format!("Patient/{}", access.patient)}},
            {"name": "expires", "valueInstant": format_instant(access.expires_at)},
            {"name": "notice", "valueString": "Emergency access is logged, reviewed by the security officer and shown to the patient."}
        ]
    }))
}

/// The longest emergency window the tenant allows, in minutes.
pub async fn longest_minutes(state: &AppState, tenant: &tillit_core::TenantId) -> FhirResult<i64> {
    Ok(i64::from(
        state.store.tenant_settings(tenant).await?.emergency_minutes,
    ))
}

/// Opens an emergency window for `subject` to patient `id`: the one path for the API and
/// the web app. `reason` must already be checked (at least [`MIN_REASON`] characters);
/// `minutes` defaults to the tenant's longest window.
pub async fn open_window(
    state: &AppState,
    client: &Client,
    subject: &crate::authz::Subject,
    id: &str,
    reason: &str,
    minutes: Option<i64>,
) -> FhirResult<EmergencyAccess> {
    let user = &subject.principal.user;
    if user.kind != PersonKind::Staff {
        return Err(FhirError::new(
            403,
            IssueType::Forbidden,
            "only staff can open emergency access",
        ));
    }
    if reason.trim().chars().count() < MIN_REASON {
        return Err(FhirError::new(
            400,
            IssueType::Required,
            format!("state the reason for emergency access (at least {MIN_REASON} characters)"),
        ));
    }
    let reason = reason.trim();
    let tenant = &subject.principal.tenant.id;
    // The tenant decides how long a window may last (default 4 hours); a caller may ask for less.
    let longest = longest_minutes(state, tenant).await?;
    let minutes = match minutes {
        None => longest,
        Some(m) if (1..=longest).contains(&m) => m,
        Some(_) => {
            return Err(FhirError::new(
                400,
                IssueType::Value,
                format!("minutes must be a whole number from 1 to {longest}"),
            ));
        }
    };
    // The patient must exist in this tenant; another tenant's id is unknown here.
    let current = state.store.current_resource(tenant, "Patient", id).await?;
    let patient = match (current, PersonId::parse(id)) {
        (Some(v), Ok(pid)) if !v.meta.deleted => pid,
        _ => return Err(FhirError::not_found("Patient", id)),
    };
    let now = state.clock.now();
    let access = EmergencyAccess {
        id: PersonId::random().to_string(),
        tenant: tenant.clone(),
        staff: user.person.clone(),
        patient: patient.clone(),
        reason: reason.to_string(),
        opened_at: now,
        expires_at: now + Duration::minutes(minutes),
        review: "open".into(),
    };
    // Logged before the window opens: an emergency access is never open without its event.
    // The event carries the opener's roles and units, so the patient's log can say who.
    let event = tillit_store::NewSecurityEvent {
        at: now,
        tenant: Some(tenant.clone()),
        user: Some(user.id.clone()),
        username: Some(user.username.to_string()),
        kind: SecurityEventKind::EmergencyAccessOpened,
        outcome_ok: true,
        detail: format!(
            "emergency access {} to Patient/{patient} for {minutes} min",
            access.id
        ),
        ip: Some(client.ip.to_string()),
        user_agent: client.user_agent.clone(),
    };
    let mut batch = crate::audit::security_batch(
        event,
        Some(user.person.as_str()),
        Some(patient.as_str()),
        Some(reason),
    );
    for e in &mut batch.events {
        e.actor = crate::audit::actor_of(subject);
    }
    state.audit.append(batch).await.map_err(|e| {
        FhirError::new(
            503,
            IssueType::Transient,
            format!("security event not recorded: {e}"),
        )
    })?;
    state.store.open_emergency_access(&access).await?;
    Ok(access)
}

pub async fn handler(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match open(&state, &client, &headers, &id, &body).await {
        Ok(v) => fhir_json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

trait MapAt {
    fn map_at(self, path: &str) -> Self;
}

impl MapAt for FhirError {
    fn map_at(mut self, path: &str) -> Self {
        self.issues = self.issues.into_iter().map(|i| i.at(path)).collect();
        self
    }
}
