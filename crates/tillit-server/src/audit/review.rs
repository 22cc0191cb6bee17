//! Log review: the tenant's rules (`tillit_audit::review`, data in `audit_review_rules`, the
//! defaults otherwise) read every new event of its log and raise alerts for the security
//! officer. A background task runs them every few seconds; listing alerts catches up first,
//! so what is listed covers the log up to that moment.
//!
//! The facts the rules need are looked up here: surnames from the people's names, addresses
//! from their FHIR Patient and Practitioner resources (opened by Tillit itself, never
//! shown), the national-id blind index to tell a staff member's own record or a colleague's,
//! and the patient's access rules for relationships that have ended.

use crate::authz::Actor;
use crate::fhir::service::Fhir;
use crate::state::AppState;
use std::collections::HashMap;
use tillit_audit::review::{Facts, Observed, Outcome, Reviewer, RuleSet};
use tillit_core::{AccessKind, PersonId, PersonKind, TenantId};
use tillit_store::{AccessParty, AuditEvent, AuditFilter, AuditOutcome, NewAlert, StoreError};
use time::{OffsetDateTime, UtcOffset};

/// Events read per step.
const PAGE: u32 = 2_000;

/// What is known about one person, for the rules.
#[derive(Debug, Clone, Default)]
struct Known {
    surname: Option<String>,
    address: Option<String>,
    national_id: Option<Vec<u8>>,
    staff: bool,
}

/// Per-tenant reviewers (their windows survive between runs) and what was looked up.
#[derive(Default)]
pub struct Review {
    tenants: tokio::sync::Mutex<HashMap<TenantId, TenantReview>>,
}

struct TenantReview {
    rules_text: Option<String>,
    reviewer: Reviewer,
    people: HashMap<String, Known>,
    staff_ids: Option<Vec<Vec<u8>>>,
}

/// The tenant's rules: its own when set and valid, the defaults otherwise.
pub fn rules_of(text: Option<&str>) -> RuleSet {
    match text.map(RuleSet::from_json) {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            tracing::error!(error = %e, "stored review rules are invalid; using the defaults");
            RuleSet::default()
        }
        None => RuleSet::default(),
    }
}

/// Norway's local time: CET, and CEST from the last Sunday of March to the last Sunday of
/// October (01:00 UTC both).
pub fn oslo(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    let last_sunday = |month: time::Month| {
        let mut d =
            time::Date::from_calendar_date(t.year(), month, 31).unwrap_or_else(|_| t.date());
        while d.weekday() != time::Weekday::Sunday {
            d = d.previous_day().unwrap_or(d);
        }
        d.with_hms(1, 0, 0).map(|x| x.assume_utc()).unwrap_or(t)
    };
    let summer = t >= last_sunday(time::Month::March) && t < last_sunday(time::Month::October);
    let hours = if summer { 2 } else { 1 };
    t.to_offset(UtcOffset::from_hms(hours, 0, 0).unwrap_or(UtcOffset::UTC))
}

fn surname(name: &str) -> Option<String> {
    name.split_whitespace().last().map(str::to_lowercase)
}

fn address_of(resource: &serde_json::Value) -> Option<String> {
    let a = resource.get("address")?.as_array()?.first()?;
    let lines: Vec<String> = a
        .get("line")
        .and_then(|l| l.as_array())
        .map(|l| {
            l.iter()
                .filter_map(|x| x.as_str())
                .map(|s| s.trim().to_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let postal = a
        .get("postalCode")
        .and_then(|p| p.as_str())
        .unwrap_or_default();
    if lines.is_empty() {
        return None;
    }
    Some(format!("{}|{}", lines.join(" "), postal.trim()))
}

impl TenantReview {
    async fn known(&mut self, state: &AppState, tenant: &TenantId, id: &str) -> Known {
        if let Some(k) = self.people.get(id) {
            return k.clone();
        }
        let mut k = Known::default();
        if let Ok(pid) = PersonId::parse(id)
            && let Ok(Some(p)) = state.store.person(tenant, &pid).await
        {
            k.surname = p.display_name.as_deref().and_then(surname);
            k.national_id = p.national_id_index.clone();
            k.staff = p.kind == PersonKind::Staff;
            let rt = if k.staff { "Practitioner" } else { "Patient" };
            // Tillit itself reads the address for the rules; no one is shown it.
            let fhir = Fhir::new(
                state,
                Actor::System {
                    tenant,
                    purpose: "log review",
                },
            );
            if let Ok((_, body)) = fhir.read(rt, id).await {
                k.address = address_of(&body);
                if k.surname.is_none() {
                    k.surname = body
                        .pointer("/name/0/family")
                        .and_then(|f| f.as_str())
                        .map(str::to_lowercase);
                }
            }
        }
        self.people.insert(id.to_string(), k.clone());
        k
    }

    async fn staff_ids(&mut self, state: &AppState, tenant: &TenantId) -> Vec<Vec<u8>> {
        if let Some(s) = &self.staff_ids {
            return s.clone();
        }
        let ids: Vec<Vec<u8>> = state
            .store
            .list_persons(tenant, Some(PersonKind::Staff))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.national_id_index)
            .collect();
        self.staff_ids = Some(ids.clone());
        ids
    }

    async fn observe(
        &mut self,
        state: &AppState,
        tenant: &TenantId,
        e: &AuditEvent,
    ) -> Result<Observed, StoreError> {
        let ev = &e.event;
        let local = oslo(ev.at);
        let mut facts = Facts::default();
        let staff_actor = ev.actor.kind.as_deref() == Some("staff");
        if staff_actor && let (Some(actor), Some(patient)) = (&ev.actor.person, &ev.patient) {
            let a = self.known(state, tenant, actor).await;
            let p = self.known(state, tenant, patient).await;
            facts.same_surname = a.surname.is_some() && a.surname == p.surname;
            facts.same_address = a.address.is_some() && a.address == p.address;
            facts.own_record = a.national_id.is_some() && a.national_id == p.national_id;
            if !facts.own_record
                && let Some(n) = &p.national_id
            {
                facts.colleague = self.staff_ids(state, tenant).await.contains(n);
            }
            if ev.outcome == AuditOutcome::Denied
                || matches!(ev.basis.as_deref(), Some("emergency") | Some("grant"))
            {
                facts.relationship_ended =
                    relationship_ended(state, tenant, actor, &ev.actor.org_units, patient, ev.at)
                        .await?;
            }
        }
        Ok(Observed {
            seq: e.seq,
            at: ev.at.unix_timestamp(),
            local_weekday: local.weekday().number_days_from_monday(),
            local_minute: u16::from(local.hour()) * 60 + u16::from(local.minute()),
            actor: ev.actor.person.clone(),
            actor_kind: ev.actor.kind.clone(),
            patient: ev.patient.clone(),
            action: ev.action.clone(),
            outcome: match ev.outcome {
                AuditOutcome::Success => Outcome::Success,
                AuditOutcome::Denied => Outcome::Denied,
                AuditOutcome::Failure => Outcome::Failure,
            },
            basis: ev.basis.clone(),
            facts,
        })
    }
}

/// The actor had a care relationship with the patient (personally or through a unit they
/// work in) that has ended, and has none now.
async fn relationship_ended(
    state: &AppState,
    tenant: &TenantId,
    actor: &str,
    units: &[String],
    patient: &str,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let Ok(pid) = PersonId::parse(patient) else {
        return Ok(false);
    };
    let rules = state.store.access_rules_for_patient(tenant, &pid).await?;
    let mine = rules.iter().filter(|r| {
        r.rule.kind == AccessKind::Care
            && match &r.rule.party {
                AccessParty::Person(p) => p.as_str() == actor,
                AccessParty::OrgUnit(u) => units.iter().any(|x| x == u.as_str()),
                AccessParty::Everyone => false,
            }
    });
    let mut ended = false;
    for r in mine {
        if r.rule.period.contains(at) {
            return Ok(false);
        }
        ended |= r.rule.period.end().is_some_and(|end| end <= at);
    }
    Ok(ended)
}

impl Review {
    /// Runs the tenant's rules over its events not yet reviewed. Returns the alerts raised.
    pub async fn run(&self, state: &AppState, tenant: &TenantId) -> Result<usize, StoreError> {
        let mut tenants = self.tenants.lock().await;
        let text = state.store.review_rules(tenant).await?;
        let entry = tenants
            .entry(tenant.clone())
            .or_insert_with(|| TenantReview {
                rules_text: text.clone(),
                reviewer: Reviewer::new(rules_of(text.as_deref())),
                people: HashMap::new(),
                staff_ids: None,
            });
        if entry.rules_text != text {
            entry.rules_text = text.clone();
            entry.reviewer = Reviewer::new(rules_of(text.as_deref()));
        }
        let mut raised = 0;
        let mut next = state.store.review_cursor(tenant).await?;
        loop {
            let page = state
                .store
                .audit_search(
                    tenant,
                    &AuditFilter {
                        from_seq: Some(next),
                        limit: PAGE,
                        ..AuditFilter::default()
                    },
                )
                .await?;
            let Some(last) = page.last() else { break };
            let end = last.seq + 1;
            let mut alerts = Vec::new();
            for e in &page {
                // A platform rule, not a tenant's: staff reading a record whose processing
                // the patient has restricted (under emergency access) is always looked at.
                if let Some(a) = restricted_access_alert(e, state.clock.now()) {
                    alerts.push(a);
                }
                let observed = entry.observe(state, tenant, e).await?;
                for f in entry.reviewer.observe(&observed) {
                    alerts.push(NewAlert {
                        rule: f.rule,
                        severity: format!("{:?}", f.severity).to_lowercase(),
                        actor: f.actor,
                        patient: f.patient,
                        seqs: f.seqs,
                        summary: f.summary,
                        raised_at: state.clock.now(),
                    });
                }
            }
            raised += alerts.len();
            state.store.add_alerts(tenant, &alerts, end).await?;
            next = end;
            if (page.len() as u32) < PAGE {
                break;
            }
        }
        // Names and addresses change: look them up afresh on the next run.
        entry.people.clear();
        entry.staff_ids = None;
        Ok(raised)
    }
}

/// The rule id of the platform's alert on accesses to restricted records.
pub const RESTRICTED_RULE: &str = "restricted-record";

/// An alert for a staff member's permitted access to a record whose processing its patient
/// has restricted (GDPR art. 18; the event carries [`super::RESTRICTED_FLAG`]).
fn restricted_access_alert(e: &AuditEvent, now: OffsetDateTime) -> Option<NewAlert> {
    let ev = &e.event;
    let flagged = ev.outcome == AuditOutcome::Success
        && ev.actor.kind.as_deref() == Some("staff")
        && ev.policies.iter().any(|p| p == super::RESTRICTED_FLAG);
    flagged.then(|| NewAlert {
        rule: RESTRICTED_RULE.to_string(),
        severity: "high".to_string(),
        actor: ev.actor.person.clone(),
        patient: ev.patient.clone(),
        seqs: vec![e.seq],
        summary: format!(
            "{} accessed a record of patient {} whose processing the patient has restricted (GDPR art. 18)",
            ev.actor.person.as_deref().unwrap_or("an unknown actor"),
            ev.patient.as_deref().unwrap_or("?")
        ),
        raised_at: now,
    })
}

/// Runs every tenant's rules every five seconds.
pub fn spawn(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            let Ok(tenants) = state.store.audit_tenants().await else {
                continue;
            };
            for t in tenants {
                if let Err(e) = state.review.run(&state, &t).await {
                    tracing::warn!(error = %e, tenant = %t, "log review failed");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    #[test]
    fn oslo_time_follows_summer_time() {
        assert_eq!(oslo(datetime!(2026-01-15 12:00 UTC)).hour(), 13);
        assert_eq!(oslo(datetime!(2026-07-15 12:00 UTC)).hour(), 14);
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(oslo(datetime!(2026-03-29 00:59 UTC)).hour(), 1);
        assert_eq!(oslo(datetime!(2026-03-29 01:00 UTC)).hour(), 3);
        assert_eq!(oslo(datetime!(2026-10-25 00:59 UTC)).hour(), 2);
        assert_eq!(oslo(datetime!(2026-10-25 01:00 UTC)).hour(), 2);
    }

    #[test]
    fn addresses_compare_by_lines_and_postal_code() {
        let a = serde_json::json!({"address": [{"line": ["Storgata 1 "], "postalCode": "0155"}]});
        let b = serde_json::json!({"address": [{"line": ["storgata 1"], "postalCode": "0155", "city": "Oslo"}]});
        assert_eq!(address_of(&a), address_of(&b));
        assert!(address_of(&serde_json::json!({})).is_none());
        assert_eq!(surname("Kari  Nordmann"), Some("nordmann".into()));
    }
}
