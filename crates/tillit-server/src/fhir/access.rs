//! Access rules carried by FHIR resources, so integrators manage access with the same API as
//! the records: `CareTeam` and `EpisodeOfCare` are care relationships, `PractitionerRole` is a
//! role assignment, and `Consent` holds a patient's blocks and relatives' consents.
//!
//! [`derive`] turns a resource into the rules it stands for. They are written in the same
//! transaction as the resource's version and replace what its previous version derived, so
//! the record and the rules never disagree; a deletion derives nothing. References to people
//! or org units the tenant does not know derive nothing (imported data stays data).
//!
//! Conventions (docs/design/access.md):
//! - categories a CareTeam or EpisodeOfCare covers: extension [`CATEGORIES_EXT`] with one
//!   `valueCode` per Tillit category; none covers every category;
//! - org units are referenced as `Organization/<org unit id>`, staff as
//!   `Practitioner/<person id>`, relatives as `RelatedPerson/<person id>`;
//! - PractitionerRole.code uses [`ROLE_SYSTEM`] with Tillit's role codes;
//! - Consent.provision (and its nested provisions): `deny` with actors blocks them, `deny`
//!   without actors blocks every staff member; `securityLabel` codes in the category system
//!   narrow it to those categories; `permit` for a `RelatedPerson` is the relative's consent.

use serde_json::Value;
use tillit_core::{AccessKind, OrgUnitId, Period, PersonId, Role};
use tillit_fhir::category;
use tillit_fhir::dates;
use tillit_fhir::search::parse_reference;
use tillit_store::{AccessParty, Derived, DerivedRole, NewAccessRule};
use time::OffsetDateTime;

/// Extension listing the Tillit categories a care relationship covers.
pub const CATEGORIES_EXT: &str = "https://tillit.no/fhir/StructureDefinition/care-categories";
/// Code system of Tillit's roles in `PractitionerRole.code`.
pub const ROLE_SYSTEM: &str = "https://tillit.no/fhir/CodeSystem/role";

/// Types whose versions carry access rules.
pub fn carries_rules(rt: &str) -> bool {
    matches!(
        rt,
        "CareTeam" | "EpisodeOfCare" | "Consent" | "PractitionerRole"
    )
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn reference(v: Option<&Value>) -> Option<(String, String)> {
    v.and_then(|r| s(r, "reference")).and_then(parse_reference)
}

fn instant(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// A FHIR Period as a validity period; `fallback` when it has no start. `None` when it is
/// empty or malformed (and so gives nothing).
fn period(p: Option<&Value>, fallback: OffsetDateTime) -> Option<Period> {
    let start = match p.and_then(|p| s(p, "start")) {
        Some(t) => instant(dates::parse_range(t)?.low)?,
        None => fallback,
    };
    let end = match p.and_then(|p| s(p, "end")) {
        Some(t) => Some(instant(dates::parse_range(t)?.high)?),
        None => None,
    };
    Period::new(start, end).ok()
}

/// The overlap of two periods (`None` when they do not meet).
fn within(outer: Period, inner: Option<Period>) -> Option<Period> {
    let Some(inner) = inner else {
        return Some(outer);
    };
    let start = outer.start().max(inner.start());
    let end = match (outer.end(), inner.end()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Period::new(start, end).ok()
}

fn party(reference: &(String, String)) -> Option<AccessParty> {
    let (t, id) = reference;
    match t.as_str() {
        "Practitioner" | "RelatedPerson" => PersonId::parse(id).ok().map(AccessParty::Person),
        "Organization" => OrgUnitId::parse(id).ok().map(AccessParty::OrgUnit),
        _ => None,
    }
}

fn categories_ext(resource: &Value) -> Vec<String> {
    list(resource, "extension")
        .filter(|e| s(e, "url") == Some(CATEGORIES_EXT))
        .filter_map(|e| s(e, "valueCode"))
        .filter(|c| category::Category::parse(c).is_some())
        .map(str::to_string)
        .collect()
}

fn patient_id(r: Option<(String, String)>) -> Option<PersonId> {
    match r {
        Some((t, id)) if t == "Patient" => PersonId::parse(id).ok(),
        _ => None,
    }
}

fn care(
    patient: &PersonId,
    party: AccessParty,
    categories: &[String],
    purpose: &str,
    period: Period,
) -> NewAccessRule {
    NewAccessRule {
        kind: AccessKind::Care,
        party,
        patient: patient.clone(),
        categories: categories.to_vec(),
        purpose: purpose.to_string(),
        period,
        decided_by: None,
        source: String::new(),
    }
}

fn care_team(r: &Value, now: OffsetDateTime) -> Vec<NewAccessRule> {
    if !matches!(s(r, "status"), None | Some("active")) {
        return Vec::new();
    }
    let Some(patient) = patient_id(reference(r.get("subject"))) else {
        return Vec::new();
    };
    let Some(team_period) = period(r.get("period"), now) else {
        return Vec::new();
    };
    let cats = categories_ext(r);
    let purpose = s(r, "name").unwrap_or("CareTeam");
    list(r, "participant")
        .filter_map(|p| {
            let party = party(&reference(p.get("member"))?)?;
            let span = within(team_period, period(p.get("period"), team_period.start()))?;
            Some(care(&patient, party, &cats, purpose, span))
        })
        .collect()
}

fn episode(r: &Value, now: OffsetDateTime) -> Vec<NewAccessRule> {
    if s(r, "status") != Some("active") {
        return Vec::new();
    }
    let Some(patient) = patient_id(reference(r.get("patient"))) else {
        return Vec::new();
    };
    let Some(span) = period(r.get("period"), now) else {
        return Vec::new();
    };
    let cats = categories_ext(r);
    [r.get("careManager"), r.get("managingOrganization")]
        .into_iter()
        .filter_map(|who| party(&reference(who)?))
        .map(|party| care(&patient, party, &cats, "EpisodeOfCare", span))
        .collect()
}

fn consent(r: &Value, now: OffsetDateTime) -> Vec<NewAccessRule> {
    if s(r, "status") != Some("active") {
        return Vec::new();
    }
    let Some(patient) = patient_id(reference(r.get("patient"))) else {
        return Vec::new();
    };
    let Some(base) = r.get("provision") else {
        return Vec::new();
    };
    let mut provisions = vec![base];
    provisions.extend(list(base, "provision"));
    let mut out = Vec::new();
    for p in provisions {
        let Some(span) = period(p.get("period"), now) else {
            continue;
        };
        let cats: Vec<String> = list(p, "securityLabel")
            .filter(|c| s(c, "system") == Some(category::SYSTEM))
            .filter_map(|c| s(c, "code"))
            .filter(|c| category::Category::parse(c).is_some())
            .map(str::to_string)
            .collect();
        let actors: Vec<(String, String)> = list(p, "actor")
            .filter_map(|a| reference(a.get("reference")))
            .collect();
        let rule = |kind, party| NewAccessRule {
            kind,
            party,
            patient: patient.clone(),
            categories: cats.clone(),
            purpose: "Consent".into(),
            period: span,
            decided_by: Some(patient.clone()),
            source: String::new(),
        };
        match s(p, "type") {
            Some("deny") if actors.is_empty() => {
                out.push(rule(AccessKind::Block, AccessParty::Everyone));
            }
            Some("deny") => {
                for a in &actors {
                    if a.0 != "RelatedPerson"
                        && let Some(who) = party(a)
                    {
                        out.push(rule(AccessKind::Block, who));
                    }
                }
            }
            Some("permit") => {
                for a in actors.iter().filter(|a| a.0 == "RelatedPerson") {
                    if let Some(who) = party(a) {
                        out.push(rule(AccessKind::RelativeConsent, who));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn practitioner_role(r: &Value, now: OffsetDateTime) -> Vec<DerivedRole> {
    if r.get("active").and_then(Value::as_bool) == Some(false) {
        return Vec::new();
    }
    let person = match reference(r.get("practitioner")) {
        Some((t, id)) if t == "Practitioner" => PersonId::parse(id).ok(),
        _ => None,
    };
    let unit = match reference(r.get("organization")) {
        Some((t, id)) if t == "Organization" => OrgUnitId::parse(id).ok(),
        _ => None,
    };
    let (Some(person), Some(unit), Some(span)) = (person, unit, period(r.get("period"), now))
    else {
        return Vec::new();
    };
    list(r, "code")
        .flat_map(|c| list(c, "coding"))
        .filter(|c| s(c, "system") == Some(ROLE_SYSTEM))
        .filter_map(|c| Role::parse(s(c, "code")?).ok())
        // Operators are made by the platform, never by a tenant's record.
        .filter(|role| *role != Role::Operator)
        .map(|role| DerivedRole {
            person: person.clone(),
            role,
            org_unit: unit.clone(),
            period: span,
        })
        .collect()
}

/// The rules a resource version stands for (`None`: the type carries none). A deleted
/// resource derives `Some(empty)`, which removes what it derived before.
pub fn derive(rt: &str, resource: Option<&Value>, now: OffsetDateTime) -> Option<Derived> {
    if !carries_rules(rt) {
        return None;
    }
    let Some(r) = resource else {
        return Some(Derived::default());
    };
    Some(match rt {
        "CareTeam" => Derived {
            rules: care_team(r, now),
            roles: Vec::new(),
        },
        "EpisodeOfCare" => Derived {
            rules: episode(r, now),
            roles: Vec::new(),
        },
        "Consent" => Derived {
            rules: consent(r, now),
            roles: Vec::new(),
        },
        _ => Derived {
            rules: Vec::new(),
            roles: practitioner_role(r, now),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn pid(n: u8) -> String {
        PersonId::derived(&format!("p{n}")).to_string()
    }

    #[test]
    fn a_care_team_gives_each_member_a_relationship_within_both_periods() {
        let (patient, nurse, unit) = (pid(1), pid(2), pid(3));
        let team = json!({
            "resourceType": "CareTeam", "status": "active",
            "subject": {"reference": format!("Patient/{patient}")},
            "period": {"start": "2026-01-01", "end": "2026-12-31"},
            "extension": [{"url": CATEGORIES_EXT, "valueCode": "measurements"}, {"url": CATEGORIES_EXT, "valueCode": "nonsense"}],
            "participant": [
                {"member": {"reference": format!("Practitioner/{nurse}")}, "period": {"start": "2026-03-01"}},
                {"member": {"reference": format!("Organization/{unit}")}},
                {"member": {"reference": "Patient/x"}}
            ]
        });
        let d = derive("CareTeam", Some(&team), NOW).unwrap_or_default();
        assert_eq!(d.rules.len(), 2);
        let first = &d.rules[0];
        assert_eq!(first.kind, AccessKind::Care);
        assert_eq!(first.categories, vec!["measurements".to_string()]);
        assert_eq!(first.period.start(), datetime!(2026-03-01 0:00 UTC));
        assert_eq!(first.period.end(), Some(datetime!(2027-01-01 0:00 UTC)));
        assert!(matches!(d.rules[1].party, AccessParty::OrgUnit(_)));
    }

    #[test]
    fn an_inactive_team_or_a_deleted_one_gives_nothing() {
        let team = json!({"resourceType": "CareTeam", "status": "inactive",
            "subject": {"reference": format!("Patient/{}", pid(1))},
            "participant": [{"member": {"reference": format!("Practitioner/{}", pid(2))}}]});
        assert_eq!(
            derive("CareTeam", Some(&team), NOW),
            Some(Derived::default())
        );
        assert_eq!(derive("CareTeam", None, NOW), Some(Derived::default()));
        assert_eq!(derive("Observation", Some(&team), NOW), None);
    }

    #[test]
    fn consent_deny_blocks_and_permit_for_a_relative_is_their_scope() {
        let (patient, doctor, daughter) = (pid(1), pid(2), pid(3));
        let consent = json!({
            "resourceType": "Consent", "status": "active",
            "patient": {"reference": format!("Patient/{patient}")},
            "provision": {"type": "deny",
                "actor": [{"role": {"text": "blocked"}, "reference": {"reference": format!("Practitioner/{doctor}")}}],
                "provision": [
                    {"type": "deny", "securityLabel": [{"system": category::SYSTEM, "code": "mental-health"}]},
                    {"type": "permit", "securityLabel": [{"system": category::SYSTEM, "code": "appointments"}],
                     "actor": [{"role": {"text": "relative"}, "reference": {"reference": format!("RelatedPerson/{daughter}")}}]}
                ]}
        });
        let d = derive("Consent", Some(&consent), NOW).unwrap_or_default();
        let kinds: Vec<_> = d.rules.iter().map(|r| (r.kind, r.party.clone())).collect();
        assert_eq!(
            kinds,
            vec![
                (
                    AccessKind::Block,
                    AccessParty::Person(
                        PersonId::parse(doctor).unwrap_or_else(|e| unreachable!("{e}"))
                    )
                ),
                (AccessKind::Block, AccessParty::Everyone),
                (
                    AccessKind::RelativeConsent,
                    AccessParty::Person(
                        PersonId::parse(daughter).unwrap_or_else(|e| unreachable!("{e}"))
                    )
                ),
            ]
        );
        assert_eq!(d.rules[1].categories, vec!["mental-health".to_string()]);
    }

    #[test]
    fn a_practitioner_role_is_a_role_assignment() {
        let role = json!({"resourceType": "PractitionerRole",
            "practitioner": {"reference": format!("Practitioner/{}", pid(2))},
            "organization": {"reference": format!("Organization/{}", pid(3))},
            "code": [{"coding": [{"system": ROLE_SYSTEM, "code": "nurse"}, {"system": "other", "code": "x"}]}],
            "period": {"start": "2026-01-01"}});
        let d = derive("PractitionerRole", Some(&role), NOW).unwrap_or_default();
        assert_eq!(d.roles.len(), 1);
        assert_eq!(d.roles[0].role, Role::Nurse);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Arbitrary JSON with the keys derive looks at, so the interesting paths are hit.
        fn value() -> impl Strategy<Value = Value> {
            let key = prop_oneof![
                Just("status"),
                Just("subject"),
                Just("patient"),
                Just("period"),
                Just("start"),
                Just("end"),
                Just("participant"),
                Just("member"),
                Just("reference"),
                Just("provision"),
                Just("type"),
                Just("actor"),
                Just("securityLabel"),
                Just("system"),
                Just("code"),
                Just("extension"),
                Just("url"),
                Just("valueCode"),
                Just("practitioner"),
                Just("organization"),
                Just("coding"),
                Just("active"),
                Just("careManager"),
                Just("managingOrganization"),
            ];
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                prop_oneof![
                    Just("active".to_string()),
                    Just("deny".to_string()),
                    Just("permit".to_string()),
                    Just("Patient/p1".to_string()),
                    Just("Practitioner/00000000-0000-0000-0000-000000000001".to_string()),
                    Just("Organization/u".to_string()),
                    Just("RelatedPerson/r".to_string()),
                    Just("2026-01-01".to_string()),
                    Just("2026-13-45T99:00".to_string()),
                    Just(CATEGORIES_EXT.to_string()),
                    Just(ROLE_SYSTEM.to_string()),
                    Just(category::SYSTEM.to_string()),
                    Just("nurse".to_string()),
                    "\\PC{0,12}",
                ]
                .prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, move |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    proptest::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| {
                        Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                    }),
                ]
            })
        }

        proptest! {
            #[test]
            fn derive_never_panics_and_answers_only_for_rule_types(v in value(), t in 0usize..6) {
                let rt = ["CareTeam", "EpisodeOfCare", "Consent", "PractitionerRole", "Observation", "Patient"][t];
                let d = derive(rt, Some(&v), NOW);
                prop_assert_eq!(d.is_some(), carries_rules(rt));
                for r in d.unwrap_or_default().rules {
                    // Every rule is about a patient and has a well-formed period.
                    prop_assert!(r.period.end().is_none_or(|e| e > r.period.start()));
                    prop_assert!(r.party != AccessParty::Everyone || r.kind == AccessKind::Block);
                }
            }
        }
    }
}
