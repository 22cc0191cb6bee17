//! The security officer's alert queue (JSON):
//!
//! - `GET /admin/alerts?status=open|justified|deviation|all` (the review catches up first)
//! - `GET /admin/alerts/{id}`: the alert with the events behind it
//! - `POST /admin/alerts/{id}/decision` `{"decision": "justified"|"deviation", "note": "...",
//!   "breach": false}`: closes it; a deviation marked a personal-data breach gets a 72-hour
//!   notification deadline
//! - `GET /admin/review-rules`, `PUT /admin/review-rules`: the tenant's rules (JSON),
//!   validated before they are saved

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
use tillit_core::{PersonId, Role};
use tillit_store::{Alert, AlertDecision, AlertStatus, SecurityEventKind};
use time::OffsetDateTime;

fn officer(p: &Principal) -> AppResult<()> {
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

async fn name(state: &AppState, p: &Principal, id: Option<&str>) -> Value {
    let Some(id) = id else { return Value::Null };
    let display = match PersonId::parse(id) {
        Ok(pid) => state
            .store
            .person(&p.tenant.id, &pid)
            .await
            .ok()
            .flatten()
            .and_then(|x| x.display_name),
        Err(_) => None,
    };
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
    // Catch up, so the queue covers every event up to now.
    state.review.run(&state, &p.tenant.id).await?;
    let alerts = state
        .store
        .alerts(&p.tenant.id, status, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let mut out = Vec::with_capacity(alerts.len());
    for a in &alerts {
        out.push(alert_json(&state, &p, a).await);
    }
    Ok(Json(json!({"alerts": out})).into_response())
}

pub async fn detail(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> AppResult<Response> {
    officer(&p)?;
    let a = state
        .store
        .alert(&p.tenant.id, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut body = alert_json(&state, &p, &a).await;
    let mut events = Vec::new();
    for seq in a.alert.seqs.iter().take(200) {
        if let Some((_, Some(e))) = state.store.audit_event(&p.tenant.id, *seq).await? {
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
    let status = match b.decision.as_str() {
        "justified" => AlertStatus::Justified,
        "deviation" => AlertStatus::Deviation,
        _ => {
            return Err(AppError::BadRequest(
                "decision is justified or deviation".into(),
            ));
        }
    };
    if b.note.trim().chars().count() < 5 {
        return Err(AppError::BadRequest(
            "write down why (at least a few words): the decision is part of the record".into(),
        ));
    }
    if b.breach && status != AlertStatus::Deviation {
        return Err(AppError::BadRequest(
            "only a deviation can be a personal-data breach".into(),
        ));
    }
    let decided = state
        .store
        .decide_alert(
            &p.tenant.id,
            &id,
            &AlertDecision {
                status,
                by: p.user.person.to_string(),
                note: b.note.trim().to_string(),
                breach: b.breach,
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
        &state,
        SecurityEventKind::AlertReviewed,
        true,
        &format!(
            "alert {id} closed as {}{}",
            status.code(),
            if b.breach {
                ", a personal-data breach"
            } else {
                ""
            }
        ),
        Some(&p.user),
        None,
        &client,
    )
    .await?;
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
