//! The patient's pages (my record, who has looked at it, blocks, relatives and their consents,
//! download my data) and the relative's pages (the patients they are linked to and what each
//! consent covers).
//!
//! Records are read through [`crate::fhir::service::Fhir`] as the logged-in patient or
//! relative, so every view is decided by the same policies as the API and written to the
//! audit log. Blocks and relatives' consents are the patient's own FHIR `Consent` resources,
//! written through the same service (`tenant.own-consent`): the access rules they stand for are
//! derived in the transaction of the write, which bumps the tenant's access generation, so the
//! change applies from the very next request. Each change is also an `access.changed`
//! security event.

mod blocks;
mod export;
mod log;
pub(crate) mod record;
mod relative;
mod relatives;

use super::i18n::Tr;
use super::{PageError, Web};
use crate::authz::Subject;
use crate::fhir::service::format_instant;
use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tillit_core::{AccessKind, PersonId};
use tillit_fhir::category::{self, Category};
use tillit_store::{AccessParty, AccessRule, SecurityEventKind};
use time::OffsetDateTime;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/record", get(record::page))
        .route("/me/log", get(log::page))
        .route("/me/blocks", get(blocks::page).post(blocks::create))
        .route("/me/blocks/lift", post(blocks::lift))
        .route("/me/relatives", get(relatives::page))
        .route("/me/relatives/grant", post(relatives::grant))
        .route("/me/relatives/scope", post(relatives::scope))
        .route("/me/relatives/revoke", post(relatives::revoke))
        .route("/me/export", get(export::page))
        .route("/me/export/record.json", get(export::record))
        .route("/me/export/log.csv", get(export::log_csv))
        .route("/me/export/log.json", get(export::log_json))
        .route("/relative", get(relative::home))
        .route("/relative/{patient}", get(relative::patient))
}

/// The categories a patient can block or share with a relative (the directory is nobody's
/// record).
fn choosable() -> impl Iterator<Item = Category> {
    Category::ALL
        .into_iter()
        .filter(|c| *c != Category::Directory)
}

/// A category's name from its code, or the code itself when unknown.
fn category_words(tr: Tr, code: &str) -> String {
    match Category::parse(code) {
        Some(c) => tr.category(c).to_string(),
        None => code.to_string(),
    }
}

/// A list of category names in the record's order ("Legemidler, Meldinger, Avtaler").
fn categories_words(tr: Tr, codes: &[String]) -> String {
    let mut codes: Vec<&String> = codes.iter().collect();
    codes.sort_by_key(|c| {
        Category::ALL
            .iter()
            .position(|x| x.code() == c.as_str())
            .unwrap_or(usize::MAX)
    });
    codes.dedup();
    codes
        .into_iter()
        .map(|c| category_words(tr, c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The categories a relative's consent covers: its own, or the platform's default when it
/// names none (the same rule the decision uses).
fn relative_scope(rule: &AccessRule) -> Vec<String> {
    if rule.rule.categories.is_empty() {
        tillit_authz::RELATIVE_DEFAULT_SCOPE
            .iter()
            .map(|c| c.to_string())
            .collect()
    } else {
        rule.rule.categories.clone()
    }
}

/// Whether a rule is in force now or later (not ended).
fn not_ended(rule: &AccessRule, now: OffsetDateTime) -> bool {
    rule.rule.period.end().is_none_or(|e| e > now)
}

/// The FHIR resource a derived rule came from (`Consent/<id>` gives the id).
fn consent_of(rule: &AccessRule) -> Option<String> {
    rule.rule
        .source
        .strip_prefix("Consent/")
        .map(str::to_string)
}

/// A person's display name from the tenant's register (staff and relatives carry one; it is
/// not patient data).
async fn person_name(web: &Web, id: &PersonId) -> Option<String> {
    web.state
        .store
        .person(&web.principal.tenant.id, id)
        .await
        .ok()
        .flatten()
        .and_then(|p| p.display_name)
        .filter(|n| !n.is_empty())
}

/// A date typed in a form (`YYYY-MM-DD`), as the first moment of that day in Norway.
fn parse_day(raw: &str) -> Option<OffsetDateTime> {
    let d = time::Date::parse(
        raw.trim(),
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    let guess = d.midnight().assume_utc();
    let offset = crate::audit::review::oslo(guess).offset();
    Some(d.midnight().assume_offset(offset))
}

/// An optional end date from a form: `Ok(None)` when left empty; the period then ends at the
/// end of that day. Refused when it is not a date or is already past.
fn until_of(raw: Option<&String>, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, ()> {
    let raw = raw.map(|s| s.trim()).unwrap_or_default();
    if raw.is_empty() {
        return Ok(None);
    }
    let start = parse_day(raw).ok_or(())?;
    let end = start + time::Duration::days(1);
    if end <= now {
        return Err(());
    }
    Ok(Some(end))
}

/// A date as a form's `<input type="date">` wants it (the last day of a period ending at
/// midnight).
fn input_day(end: OffsetDateTime) -> String {
    let last = crate::audit::review::oslo(end - time::Duration::seconds(1)).date();
    last.to_string()
}

/// The last day of a period that ends at `end` (exclusive), in words.
fn last_day(tr: Tr, end: OffsetDateTime) -> String {
    tr.date(end - time::Duration::seconds(1))
}

/// The role an actor reference has in a Consent provision.
fn actor_role() -> Value {
    json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]})
}

/// A patient's privacy Consent with one provision, the shape the access rules are derived
/// from (docs/design/access.md).
fn consent_resource(patient: &str, provision: Value, now: OffsetDateTime) -> Value {
    json!({
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": format_instant(now),
        "provision": provision
    })
}

/// One provision: `deny` blocks the actor (or every staff member without one), `permit`
/// for a relative is their consent; labels narrow it to categories.
fn provision(
    kind: &str,
    actor: Option<String>,
    categories: &[String],
    start: OffsetDateTime,
    end: Option<OffsetDateTime>,
) -> Value {
    let mut p = json!({"type": kind});
    if let Some(obj) = p.as_object_mut() {
        if let Some(a) = actor {
            obj.insert(
                "actor".into(),
                json!([{"role": actor_role(), "reference": {"reference": a}}]),
            );
        }
        if !categories.is_empty() {
            let labels: Vec<Value> = categories
                .iter()
                .map(|c| json!({"system": category::SYSTEM, "code": c}))
                .collect();
            obj.insert("securityLabel".into(), json!(labels));
        }
        let mut period = json!({"start": format_instant(start)});
        if let (Some(e), Some(po)) = (end, period.as_object_mut()) {
            // A FHIR instant covers its whole last unit: the last millisecond before `e`
            // ends exactly at `e`.
            po.insert(
                "end".into(),
                json!(format_instant(e - time::Duration::milliseconds(1))),
            );
        }
        obj.insert("period".into(), period);
    }
    p
}

/// What a Consent of the patient stands for, checked before the patient changes it here: it
/// must be the caller's own and derive only rules of `kind` (a consent made elsewhere that
/// mixes blocks and relatives' consents is changed where it was made).
fn consent_rules(
    consent: &Value,
    patient: &str,
    kind: AccessKind,
    now: OffsetDateTime,
) -> Result<Vec<tillit_store::NewAccessRule>, PageError> {
    let own = consent
        .get("patient")
        .and_then(|p| p.get("reference"))
        .and_then(Value::as_str)
        == Some(&format!("Patient/{patient}"));
    if !own {
        return Err(PageError::not_found());
    }
    let rules = crate::fhir::access::derive("Consent", Some(consent), now)
        .map(|d| d.rules)
        .unwrap_or_default();
    if rules.is_empty() || rules.iter().any(|r| r.kind != kind) {
        return Err(PageError::bad_request(
            "this consent was made in the record system and covers more than this page changes",
        ));
    }
    Ok(rules)
}

/// Records that the patient changed who may see their record (a security event; the detail
/// names the Consent, never a person or a category).
async fn access_changed(web: &Web, detail: &str) -> Result<(), PageError> {
    crate::session::security_event(
        &web.state,
        SecurityEventKind::AccessChanged,
        true,
        detail,
        Some(&web.principal.user),
        None,
        &web.client,
    )
    .await?;
    Ok(())
}

/// The patient's person id (the patient pages are about the logged-in patient only).
fn me(web: &Web) -> String {
    web.principal.user.person.to_string()
}

/// Whether `party` names `person`.
fn names_person(party: &AccessParty, person: &PersonId) -> bool {
    matches!(party, AccessParty::Person(p) if p == person)
}

/// The relative's consent scope for `patient` now, as the decisions see it.
fn scope_now(subject: &Subject, patient: &str, now: OffsetDateTime) -> Vec<String> {
    subject
        .knowledge
        .facts(Some(patient), "appointments", now)
        .relative_categories
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use time::macros::datetime;

    #[test]
    fn days_typed_in_forms_are_norwegian_days() {
        let winter = parse_day("2026-01-15").unwrap();
        assert_eq!(winter, datetime!(2026-01-14 23:00 UTC));
        let summer = parse_day("2026-07-01").unwrap();
        assert_eq!(summer, datetime!(2026-06-30 22:00 UTC));
        assert!(parse_day("15.01.2026").is_none());
        let now = datetime!(2026-01-15 12:00 UTC);
        assert_eq!(until_of(Some(&String::new()), now), Ok(None));
        assert_eq!(
            until_of(Some(&"2026-01-15".to_string()), now),
            Ok(Some(datetime!(2026-01-15 23:00 UTC)))
        );
        assert_eq!(until_of(Some(&"2026-01-14".to_string()), now), Err(()));
        assert_eq!(until_of(Some(&"soon".to_string()), now), Err(()));
        assert_eq!(input_day(datetime!(2026-01-15 23:00 UTC)), "2026-01-15");
    }

    #[test]
    fn consents_derive_the_rules_the_pages_expect() {
        let now = datetime!(2026-06-01 12:00 UTC);
        let patient = PersonId::derived("p").to_string();
        let nurse = PersonId::derived("n").to_string();
        let block = consent_resource(
            &patient,
            provision(
                "deny",
                Some(format!("Practitioner/{nurse}")),
                &[],
                now,
                None,
            ),
            now,
        );
        let rules = consent_rules(&block, &patient, AccessKind::Block, now).unwrap();
        assert_eq!(rules.len(), 1);
        assert!(matches!(&rules[0].party, AccessParty::Person(p) if p.as_str() == nurse));
        assert!(consent_rules(&block, &patient, AccessKind::RelativeConsent, now).is_err());
        assert!(consent_rules(&block, &nurse, AccessKind::Block, now).is_err());
        let cat = consent_resource(
            &patient,
            provision(
                "deny",
                None,
                &["mental-health".into()],
                now,
                Some(now + time::Duration::days(2)),
            ),
            now,
        );
        let rules = consent_rules(&cat, &patient, AccessKind::Block, now).unwrap();
        assert_eq!(rules[0].party, AccessParty::Everyone);
        assert_eq!(rules[0].categories, vec!["mental-health".to_string()]);
        assert_eq!(rules[0].period.end(), Some(now + time::Duration::days(2)));
        tillit_fhir::validate::validate(&cat).unwrap();
    }
}
