//! The security officer's alert queue (JSON):
//!
//! - `GET /admin/alerts?status=open|justified|deviation|all` (the review catches up first)
//! - `GET /admin/alerts/{id}`: the alert with the events behind it (a look at the log, so
//!   logged as `audit.search`)
//! - `POST /admin/alerts/{id}/decision` `{"decision": "justified"|"deviation", "note": "...",
//!   "breach": false}`: closes it; a deviation marked a personal-data breach gets a 72-hour
//!   notification deadline
//! - `GET /admin/review-rules`, `PUT /admin/review-rules`: the tenant's rules (JSON),
//!   validated before they are saved
//!
//! The security officer's pages (`web::security`) call the same functions: [`queue`],
//! [`alert_with_events`], [`check_decision`] and [`close`].

use crate::error::{AppError, AppResult};
use crate::session::{Client, Principal, security_event};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tillit_core::{PersonId, Role, TenantId};
use tillit_store::{
    Alert, AlertDecision, AlertStatus, AuditEvent, NewSecurityEvent, SecurityEventKind,
};
use time::OffsetDateTime;

/// Refuses anyone but a security officer.
pub fn officer(p: &Principal) -> AppResult<()> {
    if p.roles.contains(&Role::SecurityOfficer) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "the alert queue is for the security officer (role security_officer)".into(),
        ))
    }
}

fn instant(t: OffsetDateTime) -> String {
    crate::fhir::service::format_instant(t)
}

/// A person's display name as the queue shows it (staff and relatives have one; a patient's
/// name is sealed under their key, so a patient is named by id).
pub async fn display_name(state: &AppState, tenant: &TenantId, id: &str) -> Option<String> {
    match PersonId::parse(id) {
        Ok(pid) => state
            .store
            .person(tenant, &pid)
            .await
            .ok()
            .flatten()
            .and_then(|x| x.display_name),
        Err(_) => None,
    }
}

async fn name(state: &AppState, p: &Principal, id: Option<&str>) -> Value {
    let Some(id) = id else { return Value::Null };
    let display = display_name(state, &p.tenant.id, id).await;
    json!({"id": id, "name": display})
}

async fn alert_json(state: &AppState, p: &Principal, a: &Alert) -> Value {
    let now = state.clock.now();
    let hours_left = a
        .breach_deadline
        .map(|d| ((d - now).whole_minutes() as f64 / 60.0).max(0.0));
    json!({
        "id": a.id,
        "rule": a.alert.rule,
        "severity": a.alert.severity,
        "summary": a.alert.summary,
        "actor": name(state, p, a.alert.actor.as_deref()).await,
        "patient": name(state, p, a.alert.patient.as_deref()).await,
        "events": a.alert.seqs,
        "raised_at": instant(a.alert.raised_at),
        "status": a.status.code(),
        "decided_by": name(state, p, a.decided_by.as_deref()).await,
        "decided_at": a.decided_at.map(instant),
        "note": a.decision_note,
        "breach": a.breach,
        "breach_deadline": a.breach_deadline.map(instant),
        "breach_hours_left": hours_left,
        "breach_overdue": a.breach_deadline.is_some_and(|d| d <= now),
    })
}

/// The alert queue, newest first (`status` None for all). The review catches up first, so
/// the queue covers every event up to now. The API and the security officer's pages share it.
pub async fn queue(
    state: &AppState,
    p: &Principal,
    status: Option<AlertStatus>,
    limit: u32,
) -> AppResult<Vec<Alert>> {
    officer(p)?;
    state.review.run(state, &p.tenant.id).await?;
    Ok(state
        .store
        .alerts(&p.tenant.id, status, limit.clamp(1, 1000))
        .await?)
}

/// An alert with the events behind it (at most 200, oldest first). Reading them is reading
/// the log: it is itself logged (`audit.search`), about the alert's patient, so the patient's
/// access log shows that the security officer looked.
pub async fn alert_with_events(
    state: &AppState,
    p: &Principal,
    client: &Client,
    id: &str,
) -> AppResult<(Alert, Vec<AuditEvent>)> {
    officer(p)?;
    let a = state
        .store
        .alert(&p.tenant.id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut events = Vec::new();
    for seq in a.alert.seqs.iter().take(200) {
        if let Some((_, Some(e))) = state.store.audit_event(&p.tenant.id, *seq).await? {
            events.push(e);
        }
    }
    let ev = NewSecurityEvent {
        at: state.clock.now(),
        tenant: Some(p.tenant.id.clone()),
        user: Some(p.user.id.clone()),
        username: Some(p.user.username.to_string()),
        kind: SecurityEventKind::AuditSearch,
        outcome_ok: true,
        detail: format!(
            "{} access-log events of alert {id} read by the security officer",
            events.len()
        ),
        ip: Some(client.ip.to_string()),
        user_agent: client.user_agent.clone(),
    };
    let me = p.user.person.to_string();
    state
        .audit
        .append(super::security_batch(
            ev,
            Some(&me),
            a.alert.patient.as_deref(),
            None,
        ))
        .await
        .map_err(|e| AppError::Unavailable(format!("security event not recorded: {e}")))?;
    Ok((a, events))
}

/// The shortest note a decision takes (characters, trimmed).
pub const MIN_NOTE_CHARS: usize = 5;

/// Why a decision was refused before it reached the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionProblem {
    /// Neither justified nor deviation.
    Decision,
    /// The note is missing or shorter than [`MIN_NOTE_CHARS`].
    Note,
    /// A breach marked on a decision that is not a deviation.
    Breach,
}

impl DecisionProblem {
    /// The API's message.
    pub fn message(self) -> &'static str {
        match self {
            Self::Decision => "decision is justified or deviation",
            Self::Note => {
                "write down why (at least a few words): the decision is part of the record"
            }
            Self::Breach => "only a deviation can be a personal-data breach",
        }
    }
}

/// Checks a decision as the API and the page take it.
pub fn check_decision(
    decision: &str,
    note: &str,
    breach: bool,
) -> Result<AlertStatus, DecisionProblem> {
    let status = match decision {
        "justified" => AlertStatus::Justified,
        "deviation" => AlertStatus::Deviation,
        _ => return Err(DecisionProblem::Decision),
    };
    if note.trim().chars().count() < MIN_NOTE_CHARS {
        return Err(DecisionProblem::Note);
    }
    if breach && status != AlertStatus::Deviation {
        return Err(DecisionProblem::Breach);
    }
    Ok(status)
}

/// Closes an alert (checked by [`check_decision`]) and records the security event
/// (`alert.reviewed`). An alert already closed is a `BadRequest` naming how.
pub async fn close(
    state: &AppState,
    p: &Principal,
    client: &Client,
    id: &str,
    status: AlertStatus,
    note: &str,
    breach: bool,
) -> AppResult<Alert> {
    officer(p)?;
    let decided = state
        .store
        .decide_alert(
            &p.tenant.id,
            id,
            &AlertDecision {
                status,
                by: p.user.person.to_string(),
                note: note.trim().to_string(),
                breach,
                at: state.clock.now(),
            },
        )
        .await
        .map_err(|e| match e {
            tillit_store::StoreError::NotFound(_) => AppError::NotFound,
            tillit_store::StoreError::Conflict(m) | tillit_store::StoreError::Invalid(m) => {
                AppError::BadRequest(m)
            }
            other => other.into(),
        })?;
    security_event(
        state,
        SecurityEventKind::AlertReviewed,
        true,
        &format!(
            "alert {id} closed as {}{}",
            status.code(),
            if breach {
                ", a personal-data breach"
            } else {
                ""
            }
        ),
        Some(&p.user),
        None,
        client,
    )
    .await?;
    Ok(decided)
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> AppResult<Response> {
    officer(&p)?;
    let status = match q.status.as_deref().unwrap_or("open") {
        "all" => None,
        s => Some(AlertStatus::parse(s).ok_or_else(|| {
            AppError::BadRequest("status is open, justified, deviation or all".into())
        })?),
    };
    let alerts = queue(&state, &p, status, q.limit.unwrap_or(100)).await?;
    let mut out = Vec::with_capacity(alerts.len());
    for a in &alerts {
        out.push(alert_json(&state, &p, a).await);
    }
    Ok(Json(json!({"alerts": out})).into_response())
}

pub async fn detail(
    State(state): State<AppState>,
    client: Client,
    p: Principal,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (a, found) = alert_with_events(&state, &p, &client, &id).await?;
    let mut body = alert_json(&state, &p, &a).await;
    let mut events = Vec::new();
    for e in &found {
        let ev = &e.event;
        events.push(json!({
                "seq": e.seq,
                "at": instant(ev.at),
                "action": ev.action,
                "outcome": ev.outcome.code(),
                "actor": name(&state, &p, ev.actor.person.as_deref()).await,
                "roles": ev.actor.roles,
                "patient": ev.patient,
                "resource": match (&ev.resource_type, &ev.resource_id) {
                    (Some(t), Some(i)) => Some(format!("{t}/{i}")),
                    (Some(t), None) => Some(t.clone()),
                    _ => None,
                },
                "categories": ev.categories,
                "basis": ev.basis,
                "reason": ev.reason,
                "detail": ev.detail,
        }));
    }
    if let Some(o) = body.as_object_mut() {
        o.insert("event_details".into(), json!(events));
    }
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: String,
    note: String,
    #[serde(default)]
    breach: bool,
}

pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Client,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    p.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
    officer(&p)?;
    let b: DecisionBody = serde_json::from_slice(&body).map_err(|e| {
        AppError::BadRequest(format!(
            "expected {{\"decision\": \"justified\" or \"deviation\", \"note\": \"...\", \"breach\": false}}: {e}"
        ))
    })?;
    let status = check_decision(&b.decision, &b.note, b.breach)
        .map_err(|e| AppError::BadRequest(e.message().into()))?;
    let decided = close(&state, &p, &client, &id, status, &b.note, b.breach).await?;
    Ok(Json(alert_json(&state, &p, &decided).await).into_response())
}

pub async fn rules(State(state): State<AppState>, p: Principal) -> AppResult<Response> {
    if !p
        .roles
        .iter()
        .any(|r| matches!(r, Role::SecurityOfficer | Role::TenantAdmin))
    {
        return Err(AppError::Forbidden(
            "this needs the role security_officer or tenant_admin".into(),
        ));
    }
    let text = state.store.review_rules(&p.tenant.id).await?;
    let rules = super::review::rules_of(text.as_deref());
    Ok(Json(json!({
        "custom": text.is_some(),
        "rules": serde_json::to_value(&rules).unwrap_or(Value::Null),
    }))
    .into_response())
}

pub async fn set_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Client,
    p: Principal,
    body: Bytes,
) -> AppResult<Response> {
    p.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
    officer(&p)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| AppError::BadRequest("the rules are not UTF-8 JSON".into()))?;
    let rules = match tillit_audit::review::RuleSet::from_json(text) {
        Ok(r) => r,
        Err(e) => {
            let body = json!({"error": {"code": "TIL-RULES-001", "message": e.to_string()}});
            return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
        }
    };
    let canonical = serde_json::to_string(&rules).map_err(|e| AppError::Internal(e.to_string()))?;
    state
        .store
        .set_review_rules(&p.tenant.id, &canonical, state.clock.now())
        .await?;
    security_event(
        &state,
        SecurityEventKind::PolicyChanged,
        true,
        &format!("{} log-review rules saved", rules.rules.len()),
        Some(&p.user),
        None,
        &client,
    )
    .await?;
    Ok(Json(json!({"status": "saved", "rules": rules.rules.len()})).into_response())
}
