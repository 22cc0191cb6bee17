//! Emergency-access reviews. Every opening of emergency access is an `emergency.opened`
//! event, which the tenant's `emergency` review rule turns into an alert; the officer reviews
//! it by deciding that alert (justified or deviation), with the same checks and security
//! event as any alert. If the tenant has switched that rule off, "take up for review" raises
//! the alert by hand (without moving the review's cursor) and opens it for the decision.

use super::{Names, PersonView, rule_kind, rule_set, span, status};
use crate::audit::alerts as shared;
use crate::web::{Audience, Layout, PageError, Web, form, render};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::{BTreeSet, HashMap};
use tillit_audit::review::{DATA_ACTIONS, EMERGENCY_OPENED, RuleSet};
use tillit_store::{Alert, AuditFilter, EmergencyAccess, NewAlert};
use time::{Duration, OffsetDateTime};

/// Accesses shown.
const LIMIT: u32 = 200;

/// How an emergency access stands in review.
struct Review {
    /// The alert that reviews it, if raised.
    alert: Option<String>,
    label: &'static str,
    class: &'static str,
    /// Still to be decided.
    open: bool,
}

struct AccessRow {
    id: String,
    opened: String,
    opened_ago: String,
    staff: PersonView,
    patient: PersonView,
    reason: String,
    /// The time limit granted, in words.
    limit: String,
    until: String,
    active: bool,
    /// Records read or written under the window.
    accessed: usize,
    categories: String,
    /// The audit search for the window.
    log_link: String,
    review: Review,
}

#[derive(Template)]
#[template(path = "web/security/emergency.html")]
struct EmergencyPage {
    l: Layout,
    rows: Vec<AccessRow>,
    unreviewed: usize,
}

/// The ids of the tenant's rules that flag emergency access.
fn emergency_rules(rules: &RuleSet) -> Vec<String> {
    let mut ids: Vec<String> = rules
        .rules
        .iter()
        .filter(|r| rule_kind(rules, &r.id).as_deref() == Some("emergency"))
        .map(|r| r.id.clone())
        .collect();
    if ids.is_empty() {
        ids.push("emergency".into());
    }
    ids
}

/// The emergency access an alert reviews: named in its `emergency.opened` event ("emergency
/// access <id> to Patient/..."), or in the summary of an alert raised here by hand.
async fn access_of(web: &Web, a: &Alert) -> Result<Option<String>, PageError> {
    let id_in = |text: &str| {
        text.split("emergency access ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    };
    if let Some(id) = id_in(&a.alert.summary) {
        return Ok(Some(id));
    }
    for seq in &a.alert.seqs {
        if let Some((_, Some(e))) = web
            .state
            .store
            .audit_event(&web.principal.tenant.id, *seq)
            .await?
            && e.event.action == EMERGENCY_OPENED
            && let Some(id) = e.event.detail.as_deref().and_then(id_in)
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The alerts reviewing emergency accesses, by access id. The queue catches up first, so
/// an access opened a moment ago has its alert.
async fn alerts_by_access(web: &Web, rules: &RuleSet) -> Result<HashMap<String, Alert>, PageError> {
    let ids = emergency_rules(rules);
    let all = shared::queue(&web.state, &web.principal, None, 1000).await?;
    let mut out = HashMap::new();
    for a in all.into_iter().filter(|a| ids.contains(&a.alert.rule)) {
        if let Some(access) = access_of(web, &a).await? {
            out.entry(access).or_insert(a);
        }
    }
    Ok(out)
}

fn date_param(t: OffsetDateTime) -> String {
    let t = crate::audit::review::oslo(t);
    format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// `GET /security/emergency`: every emergency access, newest first, with what was accessed
/// under it and how it stands in review.
pub async fn list(web: Web, Query(_q): Query<HashMap<String, String>>) -> Response {
    let r = async {
        web.require(Audience::Security)?;
        let tr = web.tr;
        let now = web.now();
        let (state, tenant) = (&web.state, &web.principal.tenant.id);
        let rules = rule_set(state, tenant).await?;
        let alerts = alerts_by_access(&web, &rules).await?;
        let accesses = state.store.emergency_accesses(tenant, LIMIT).await?;
        let mut names = Names::default();
        let mut rows = Vec::with_capacity(accesses.len());
        let mut patients = BTreeSet::new();
        for a in &accesses {
            patients.insert(a.patient.to_string());
            let during = state
                .store
                .audit_search(
                    tenant,
                    &AuditFilter {
                        actor: Some(a.staff.to_string()),
                        patient: Some(a.patient.to_string()),
                        from: Some(a.opened_at),
                        to: Some(a.expires_at),
                        limit: 1000,
                        ..AuditFilter::default()
                    },
                )
                .await?;
            let data: Vec<_> = during
                .iter()
                .filter(|e| DATA_ACTIONS.contains(&e.event.action.as_str()))
                .collect();
            let categories: BTreeSet<&str> = data
                .iter()
                .flat_map(|e| e.event.categories.iter().map(String::as_str))
                .collect();
            let categories: Vec<&str> = categories
                .into_iter()
                .map(|c| tr.category_code(c))
                .collect();
            let review = match alerts.get(&a.id) {
                Some(alert) => {
                    let (label, class) = match alert.status {
                        tillit_store::AlertStatus::Open => {
                            (tr.t("security.emergency.review.open"), "warn")
                        }
                        s => status(tr, s),
                    };
                    Review {
                        alert: Some(alert.id.clone()),
                        label,
                        class,
                        open: alert.status == tillit_store::AlertStatus::Open,
                    }
                }
                None => Review {
                    alert: None,
                    label: tr.t("security.emergency.review.none"),
                    class: "warn",
                    open: true,
                },
            };
            let log_link = form_urlencoded::Serializer::new(String::new())
                .append_pair("actor", a.staff.as_str())
                .append_pair("patient", a.patient.as_str())
                .append_pair("from", &date_param(a.opened_at))
                .append_pair("to", &date_param(a.expires_at))
                .finish();
            rows.push(AccessRow {
                id: a.id.clone(),
                opened: tr.datetime(a.opened_at),
                opened_ago: super::ago(tr, a.opened_at, now),
                staff: names.get(state, tenant, a.staff.as_str()).await,
                patient: names.get(state, tenant, a.patient.as_str()).await,
                reason: a.reason.clone(),
                limit: span(tr, a.expires_at - a.opened_at),
                until: tr.datetime(a.expires_at),
                active: a.opened_at <= now && now < a.expires_at,
                accessed: data.len(),
                categories: categories.join(", "),
                log_link,
                review,
            });
        }
        // Reading what was accessed under each window is a look at those patients' logs.
        if !rows.is_empty() {
            let patients: Vec<String> = patients.into_iter().collect();
            super::record_look(
                &web,
                &format!(
                    "{} emergency accesses and the events under them",
                    rows.len()
                ),
                &patients,
            )
            .await?;
        }
        let unreviewed = rows.iter().filter(|r| r.review.open).count();
        render(&EmergencyPage {
            l: web.layout(tr.t("security.emergency.title")),
            rows,
            unreviewed,
        })
    }
    .await;
    web.finish(r)
}

/// The `emergency.opened` event of an access.
async fn opened_event(web: &Web, a: &EmergencyAccess) -> Result<Option<u64>, PageError> {
    let found = web
        .state
        .store
        .audit_search(
            &web.principal.tenant.id,
            &AuditFilter {
                actor: Some(a.staff.to_string()),
                patient: Some(a.patient.to_string()),
                action: Some(EMERGENCY_OPENED.into()),
                from: Some(a.opened_at - Duration::minutes(1)),
                to: Some(a.opened_at + Duration::minutes(10)),
                limit: 100,
                ..AuditFilter::default()
            },
        )
        .await?;
    let marker = format!("emergency access {} ", a.id);
    Ok(found
        .iter()
        .find(|e| {
            e.event
                .detail
                .as_deref()
                .is_some_and(|d| d.contains(&marker))
        })
        .map(|e| e.seq))
}

/// `POST /security/emergency/{id}/review`: opens the alert that reviews this access (raising
/// it when the tenant's rules did not), where the officer decides it.
pub async fn review(web: Web, Path(id): Path<String>, body: Bytes) -> Response {
    let r = async {
        let fields = form(&body);
        web.check_csrf(&fields)?;
        web.require(Audience::Security)?;
        let (state, tenant) = (&web.state, &web.principal.tenant.id);
        let rules = rule_set(state, tenant).await?;
        if let Some(alert) = alerts_by_access(&web, &rules).await?.get(&id) {
            return Ok(
                Redirect::to(&format!("/security/alerts/{}#decision", alert.id)).into_response(),
            );
        }
        let access = state
            .store
            .emergency_accesses(tenant, 10_000)
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(PageError::not_found)?;
        let seqs = opened_event(&web, &access).await?.into_iter().collect();
        let rule = emergency_rules(&rules)
            .into_iter()
            .next()
            .unwrap_or_else(|| "emergency".into());
        let alert = NewAlert {
            rule,
            severity: "high".into(),
            actor: Some(access.staff.to_string()),
            patient: Some(access.patient.to_string()),
            seqs,
            summary: format!(
                "emergency access {} taken up for review by the security officer",
                access.id
            ),
            raised_at: web.now(),
        };
        // Cursor 0: the review's own position is kept (the store keeps the larger).
        let ids = state.store.add_alerts(tenant, &[alert], 0).await?;
        let alert = ids.first().ok_or_else(PageError::not_found)?;
        Ok(Redirect::to(&format!("/security/alerts/{alert}#decision")).into_response())
    }
    .await;
    web.finish(r)
}
