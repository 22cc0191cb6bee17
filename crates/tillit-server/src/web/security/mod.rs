//! The security officer's pages: the alert queue and an alert's detail with its decision,
//! the audit search, emergency-access reviews, deviations with the 72-hour breach clock, and
//! the audit log's checkpoints with "verify now".
//!
//! Each page calls the same functions as the JSON API ([`crate::audit::alerts`],
//! [`crate::audit::fhir::search_events`], [`crate::audit::checkpoints`]), so the checks and
//! the security events are the same: deciding an alert records `alert.reviewed`, and every
//! look at the log's events records `audit.search` about the patient concerned.

mod alerts;
mod audit;
mod checkpoints;
mod emergency;

use super::i18n::Tr;
use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post};
use std::collections::HashMap;
use tillit_audit::review::RuleSet;
use tillit_core::{Role, TenantId};
use tillit_store::{AlertStatus, AuditEvent, AuditOutcome};
use time::{Duration, OffsetDateTime};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/security", get(alerts::home))
        .route("/security/alerts", get(alerts::queue))
        .route("/security/alerts/{id}", get(alerts::detail))
        .route("/security/alerts/{id}/decision", post(alerts::decide))
        .route("/security/deviations", get(alerts::deviations))
        .route("/security/audit", get(audit::search))
        .route("/security/emergency", get(emergency::list))
        .route("/security/emergency/{id}/review", post(emergency::review))
        .route("/security/checkpoints", get(checkpoints::status))
        .route("/security/checkpoints/verify", post(checkpoints::verify))
        .route("/security/checkpoints/sign", post(checkpoints::sign))
}

/// A catalogue text, or `fallback` when the catalogue has none (a tenant's own rule id, an
/// action code added later).
fn text_or(tr: Tr, key: &str, fallback: &str) -> String {
    match tr.t(key) {
        "??" => fallback.to_string(),
        t => t.to_string(),
    }
}

/// Names of people, looked up once per page. A patient's name is sealed under their key and
/// not opened for the log pages: the API names them by id, and so do the pages.
#[derive(Default)]
struct Names {
    people: HashMap<String, Option<String>>,
}

/// A person as a page shows them: the name when there is one, else the short id.
#[derive(Debug, Clone)]
struct PersonView {
    id: String,
    label: String,
    /// Whether `label` is a name (not an id).
    named: bool,
}

impl Names {
    async fn get(&mut self, state: &AppState, tenant: &TenantId, id: &str) -> PersonView {
        let name = match self.people.get(id) {
            Some(n) => n.clone(),
            None => {
                let n = crate::audit::alerts::display_name(state, tenant, id).await;
                self.people.insert(id.to_string(), n.clone());
                n
            }
        };
        match name {
            Some(n) => PersonView {
                id: id.to_string(),
                label: n,
                named: true,
            },
            None => PersonView {
                id: id.to_string(),
                label: short_id(id),
                named: false,
            },
        }
    }

    async fn opt(
        &mut self,
        state: &AppState,
        tenant: &TenantId,
        id: Option<&str>,
    ) -> Option<PersonView> {
        match id {
            Some(id) => Some(self.get(state, tenant, id).await),
            None => None,
        }
    }
}

/// The first eight characters of an id: enough to tell people apart on a page.
fn short_id(id: &str) -> String {
    let s: String = id.chars().take(8).collect();
    if s.len() < id.len() {
        format!("{s}…")
    } else {
        s
    }
}

/// The tenant's review rules (its own, or the defaults).
async fn rule_set(state: &AppState, tenant: &TenantId) -> Result<RuleSet, super::PageError> {
    let text = state.store.review_rules(tenant).await?;
    Ok(crate::audit::review::rules_of(text.as_deref()))
}

/// The kind of a rule (`emergency`, `same-surname`, ...) by its id in the tenant's rules.
fn rule_kind(rules: &RuleSet, id: &str) -> Option<String> {
    let rule = rules.rules.iter().find(|r| r.id == id)?;
    serde_json::to_value(&rule.kind)
        .ok()?
        .get("type")?
        .as_str()
        .map(str::to_string)
}

/// A rule's name in words: by its kind (a tenant may name its rules as it likes).
fn rule_label(tr: Tr, rules: &RuleSet, id: &str) -> String {
    let kind = rule_kind(rules, id).unwrap_or_else(|| id.to_string());
    text_or(tr, &format!("security.rule.{kind}"), id)
}

/// What a rule looks for, in a sentence.
fn rule_explanation(tr: Tr, rules: &RuleSet, id: &str) -> Option<String> {
    let kind = rule_kind(rules, id).unwrap_or_else(|| id.to_string());
    match tr.t(&format!("security.rule_text.{kind}")) {
        "??" => None,
        t => Some(t.to_string()),
    }
}

/// An alert's severity: its name and badge class.
fn severity(tr: Tr, code: &str) -> (String, &'static str) {
    let class = match code {
        "high" => "danger",
        "medium" => "warn",
        _ => "",
    };
    (
        text_or(tr, &format!("security.severity.{code}"), code),
        class,
    )
}

/// An alert's status: its name and badge class.
fn status(tr: Tr, s: AlertStatus) -> (&'static str, &'static str) {
    match s {
        AlertStatus::Open => (tr.t("security.status.open"), "warn"),
        AlertStatus::Justified => (tr.t("security.status.justified"), "ok"),
        AlertStatus::Deviation => (tr.t("security.status.deviation"), "danger"),
    }
}

/// An event's outcome: its name and badge class.
fn outcome(tr: Tr, o: AuditOutcome) -> (&'static str, &'static str) {
    match o {
        AuditOutcome::Success => (tr.t("security.outcome.success"), "ok"),
        AuditOutcome::Denied => (tr.t("security.outcome.denied"), "danger"),
        AuditOutcome::Failure => (tr.t("security.outcome.failure"), "warn"),
    }
}

/// A span of time in words: "3 t 20 min", "45 min", "2 d 4 t".
fn span(tr: Tr, d: Duration) -> String {
    let minutes = d.whole_minutes().abs();
    let (days, hours, mins) = (minutes / 1440, (minutes % 1440) / 60, minutes % 60);
    if days > 0 {
        tr.t2("security.span.days_hours", days, hours)
    } else if hours > 0 && mins > 0 {
        tr.t2("security.span.hours_minutes", hours, mins)
    } else if hours > 0 {
        tr.t1("security.span.hours", hours)
    } else {
        tr.t1("security.span.minutes", mins)
    }
}

/// "for 3 t siden" (ago) from `now`.
fn ago(tr: Tr, at: OffsetDateTime, now: OffsetDateTime) -> String {
    if now - at < Duration::minutes(1) {
        tr.t("security.span.just_now").to_string()
    } else {
        tr.t1("security.span.ago", span(tr, now - at))
    }
}

/// One event of the log as the pages show it.
#[derive(Debug, Clone)]
struct EventRow {
    seq: u64,
    at: String,
    action: String,
    actor: Option<PersonView>,
    roles: String,
    patient: Option<PersonView>,
    /// The resource type, and the resource id when one record was touched.
    resource: Option<String>,
    categories: String,
    basis: Option<String>,
    reason: Option<String>,
    outcome: &'static str,
    outcome_class: &'static str,
}

impl EventRow {
    async fn of(
        state: &AppState,
        tenant: &TenantId,
        tr: Tr,
        names: &mut Names,
        e: &AuditEvent,
    ) -> Self {
        let ev = &e.event;
        let (outcome, outcome_class) = outcome(tr, ev.outcome);
        let roles: Vec<String> = ev
            .actor
            .roles
            .iter()
            .map(|r| match Role::parse(r) {
                Ok(role) => tr.role(role).to_string(),
                Err(_) => r.clone(),
            })
            .collect();
        let roles = if roles.is_empty() {
            match ev.actor.kind.as_deref() {
                Some(k @ ("patient" | "relative" | "integration" | "operator" | "system")) => {
                    text_or(tr, &format!("security.kind.{k}"), k)
                }
                _ => String::new(),
            }
        } else {
            roles.join(", ")
        };
        let categories: Vec<String> = ev
            .categories
            .iter()
            .map(|c| text_or(tr, &format!("common.category.{c}"), c))
            .collect();
        EventRow {
            seq: e.seq,
            at: tr.datetime(ev.at),
            action: text_or(tr, &format!("security.action.{}", ev.action), &ev.action),
            actor: names.opt(state, tenant, ev.actor.person.as_deref()).await,
            roles,
            patient: names.opt(state, tenant, ev.patient.as_deref()).await,
            resource: match (&ev.resource_type, &ev.resource_id) {
                (Some(t), Some(i)) => Some(format!("{t}/{}", short_id(i))),
                (Some(t), None) => Some(t.clone()),
                _ => None,
            },
            categories: categories.join(", "),
            basis: ev
                .basis
                .as_deref()
                .map(|b| text_or(tr, &format!("security.basis.{b}"), b)),
            reason: ev.reason.clone(),
            outcome,
            outcome_class,
        }
    }
}

/// Records that the security officer read events of the log about these patients
/// (`audit.search`, one event per patient so that each patient's access log shows it), as
/// the AuditEvent search does.
async fn record_look(
    web: &super::Web,
    what: &str,
    patients: &[String],
) -> Result<(), super::PageError> {
    let p = &web.principal;
    let me = p.user.person.to_string();
    let mut batch = tillit_store::AuditBatch::default();
    let mut about: Vec<Option<&str>> = patients.iter().map(|x| Some(x.as_str())).collect();
    if about.is_empty() {
        about.push(None);
    }
    for patient in about {
        let ev = tillit_store::NewSecurityEvent {
            at: web.now(),
            tenant: Some(p.tenant.id.clone()),
            user: Some(p.user.id.clone()),
            username: Some(p.user.username.to_string()),
            kind: tillit_store::SecurityEventKind::AuditSearch,
            outcome_ok: true,
            detail: format!("{what} read by the security officer"),
            ip: Some(web.client.ip.to_string()),
            user_agent: web.client.user_agent.clone(),
        };
        let b = crate::audit::security_batch(ev, Some(&me), patient, None);
        batch.events.extend(b.events);
        batch.security.extend(b.security);
    }
    web.state.audit.append(batch).await.map_err(|e| {
        super::PageError::from(crate::error::AppError::Unavailable(format!(
            "security event not recorded: {e}"
        )))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::web::i18n::Lang;

    #[test]
    fn spans_read_as_words() {
        let tr = Tr::new(Lang::Nb);
        assert_eq!(span(tr, Duration::minutes(45)), "45 min");
        assert_eq!(span(tr, Duration::hours(31)), "1 d 7 t");
        assert_eq!(span(tr, Duration::minutes(200)), "3 t 20 min");
        assert_eq!(span(tr, Duration::hours(5)), "5 t");
        let en = Tr::new(Lang::En);
        assert_eq!(span(en, Duration::hours(5)), "5 h");
    }

    #[test]
    fn rules_are_named_by_their_kind() {
        let tr = Tr::new(Lang::Nb);
        let rules = RuleSet::default();
        assert_eq!(
            rule_label(tr, &rules, "emergency"),
            tr.t("security.rule.emergency")
        );
        assert_eq!(rule_label(tr, &rules, "a-tenant-rule"), "a-tenant-rule");
        assert!(rule_explanation(tr, &rules, "same-surname").is_some());
        assert_eq!(short_id("0123456789"), "01234567…");
        assert_eq!(short_id("abc"), "abc");
    }
}
