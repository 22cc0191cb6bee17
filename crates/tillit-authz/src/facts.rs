//! From the record system's rules to the [`Facts`] of one decision.
//!
//! The server loads, once per request, every [`AccessRule`] that concerns the caller (care
//! relationships, patient blocks, the tenant's grants and exclusions, relatives' consents) and
//! the caller's open emergency windows into a [`Knowledge`]. [`Knowledge::facts`] then answers,
//! for one record's patient and category at one moment, the questions the policies ask. Keeping
//! this pure lets property tests drive it with random rules and periods.

use std::collections::{HashMap, HashSet};
use tillit_core::Period;
use time::OffsetDateTime;

use crate::Facts;

pub use tillit_core::AccessKind as RuleKind;

/// Whom a rule concerns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Party {
    /// One person (a staff member or a relative), by person id.
    Person(String),
    /// Everyone in an org unit, by org unit id.
    OrgUnit(String),
    /// Every staff member (a patient's block on a category or on the whole record).
    Everyone,
}

/// One rule of the record system, as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub kind: RuleKind,
    pub party: Party,
    /// The patient (person id) the rule is about.
    pub patient: String,
    /// Tillit category codes the rule covers; empty covers every category.
    pub categories: Vec<String>,
    pub period: Period,
}

impl AccessRule {
    fn covers(&self, category: &str) -> bool {
        self.categories.is_empty() || self.categories.iter().any(|c| c == category)
    }
}

/// What a relative's consent covers when it names no categories: the practical,
/// non-medical parts of the record.
pub const RELATIVE_DEFAULT_SCOPE: [&str; 2] = ["appointments", "messages"];

/// What the record system knows about one caller, for one request.
#[derive(Debug, Clone, Default)]
pub struct Knowledge {
    person: String,
    kind: String,
    units: HashSet<String>,
    /// Rules that concern the caller, by patient.
    rules: HashMap<String, Vec<AccessRule>>,
    emergency: HashSet<String>,
    emergency_overrides_block: bool,
    support_access: bool,
    registration_only: bool,
}

impl Knowledge {
    /// `person` and `kind` (`staff`, `patient`, `relative`, `operator`) are the caller's;
    /// `units` the org units they belong to now. Rules that do not concern the caller are
    /// dropped here, so a caller can never borrow another person's relationship.
    pub fn new(
        person: &str,
        kind: &str,
        units: impl IntoIterator<Item = String>,
        rules: impl IntoIterator<Item = AccessRule>,
    ) -> Self {
        let units: HashSet<String> = units.into_iter().collect();
        let mut by_patient: HashMap<String, Vec<AccessRule>> = HashMap::new();
        for r in rules {
            let concerns = match &r.party {
                Party::Person(p) => p == person,
                Party::OrgUnit(u) => units.contains(u),
                // A block on everyone concerns staff; relatives are bound by their consent.
                Party::Everyone => kind == "staff" && r.kind == RuleKind::Block,
            };
            if concerns {
                by_patient.entry(r.patient.clone()).or_default().push(r);
            }
        }
        Self {
            person: person.to_string(),
            kind: kind.to_string(),
            units,
            rules: by_patient,
            ..Self::default()
        }
    }

    /// Patients with an emergency access window open for the caller now.
    pub fn with_emergency(mut self, patients: impl IntoIterator<Item = String>) -> Self {
        self.emergency = patients.into_iter().collect();
        self
    }

    /// The tenant's setting: whether emergency access overrides a patient's block.
    pub fn with_emergency_overrides_block(mut self, yes: bool) -> Self {
        self.emergency_overrides_block = yes;
        self
    }

    /// Time-limited support access granted by a tenant admin (operators only).
    pub fn with_support_access(mut self, yes: bool) -> Self {
        self.support_access = yes && self.kind == "operator";
        self
    }

    /// The caller acts on behalf of a colleague for registration only.
    pub fn with_registration_only(mut self, yes: bool) -> Self {
        self.registration_only = yes;
        self
    }

    pub fn person(&self) -> &str {
        &self.person
    }

    pub fn units(&self) -> &HashSet<String> {
        &self.units
    }

    fn active<'a>(
        &'a self,
        patient: &str,
        kind: RuleKind,
        at: OffsetDateTime,
    ) -> impl Iterator<Item = &'a AccessRule> {
        self.rules
            .get(patient)
            .into_iter()
            .flatten()
            .filter(move |r| r.kind == kind && r.period.contains(at))
    }

    fn any(&self, patient: &str, kind: RuleKind, category: &str, at: OffsetDateTime) -> bool {
        self.active(patient, kind, at).any(|r| r.covers(category))
    }

    /// Patients the caller has an active care relationship with at `at`, sorted.
    pub fn patients_in_care(&self, at: OffsetDateTime) -> Vec<String> {
        let mut out: Vec<String> = self
            .rules
            .keys()
            .filter(|p| self.active(p, RuleKind::Care, at).next().is_some())
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// Whether the caller has an active care relationship with `patient` covering `category`.
    pub fn in_care(&self, patient: &str, category: &str, at: OffsetDateTime) -> bool {
        self.any(patient, RuleKind::Care, category, at)
    }

    /// Whether an emergency window is open for `patient`.
    pub fn has_emergency(&self, patient: &str) -> bool {
        self.emergency.contains(patient)
    }

    /// The facts for a record of `patient` (None: outside any compartment) in `category`.
    pub fn facts(&self, patient: Option<&str>, category: &str, at: OffsetDateTime) -> Facts {
        let emergency = patient.is_some_and(|p| self.emergency.contains(p));
        self.facts_with_emergency(patient, category, at, emergency)
    }

    /// As [`Knowledge::facts`], with the emergency window for this patient decided by the
    /// caller (a server that reuses a `Knowledge` across requests loads the windows, which
    /// expire with time, on every request).
    pub fn facts_with_emergency(
        &self,
        patient: Option<&str>,
        category: &str,
        at: OffsetDateTime,
        emergency_open: bool,
    ) -> Facts {
        let Some(patient) = patient else {
            return Facts {
                no_patient: true,
                support_access: self.support_access,
                registration_only: self.registration_only,
                ..Facts::default()
            };
        };
        let relative_categories = if self.kind == "relative" {
            let mut cats: Vec<String> = Vec::new();
            for r in self.active(patient, RuleKind::RelativeConsent, at) {
                if r.categories.is_empty() {
                    cats.extend(RELATIVE_DEFAULT_SCOPE.iter().map(|c| c.to_string()));
                } else {
                    cats.extend(r.categories.iter().cloned());
                }
            }
            cats.sort();
            cats.dedup();
            cats
        } else {
            Vec::new()
        };
        let staff = self.kind == "staff";
        Facts {
            care_relationship: staff && self.in_care(patient, category, at),
            own_record: self.kind == "patient" && patient == self.person,
            relative_categories,
            emergency: staff && emergency_open,
            emergency_overrides_block: self.emergency_overrides_block,
            blocked: staff && self.any(patient, RuleKind::Block, category, at),
            excluded: self.any(patient, RuleKind::Exclusion, category, at),
            granted: staff && self.any(patient, RuleKind::Grant, category, at),
            support_access: self.support_access,
            no_patient: false,
            registration_only: self.registration_only,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn period(from_days: i64, to_days: Option<i64>) -> Period {
        Period::new(
            NOW + Duration::days(from_days),
            to_days.map(|d| NOW + Duration::days(d)),
        )
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn rule(kind: RuleKind, party: Party, patient: &str, cats: &[&str]) -> AccessRule {
        AccessRule {
            kind,
            party,
            patient: patient.into(),
            categories: cats.iter().map(|c| c.to_string()).collect(),
            period: period(-10, None),
        }
    }

    #[test]
    fn a_relationship_through_an_org_unit_counts_only_for_its_members() {
        let r = rule(RuleKind::Care, Party::OrgUnit("night".into()), "p1", &[]);
        let member = Knowledge::new("n1", "staff", ["night".to_string()], [r.clone()]);
        let other = Knowledge::new("n2", "staff", ["day".to_string()], [r]);
        assert!(
            member
                .facts(Some("p1"), "measurements", NOW)
                .care_relationship
        );
        assert!(
            !other
                .facts(Some("p1"), "measurements", NOW)
                .care_relationship
        );
        assert_eq!(member.patients_in_care(NOW), vec!["p1".to_string()]);
        assert!(other.patients_in_care(NOW).is_empty());
    }

    #[test]
    fn a_relationship_covers_only_its_categories() {
        let r = rule(
            RuleKind::Care,
            Party::Person("n1".into()),
            "p1",
            &["measurements"],
        );
        let k = Knowledge::new("n1", "staff", [], [r]);
        assert!(k.facts(Some("p1"), "measurements", NOW).care_relationship);
        assert!(!k.facts(Some("p1"), "mental-health", NOW).care_relationship);
    }

    #[test]
    fn expired_and_future_relationships_do_not_count() {
        let mut past = rule(RuleKind::Care, Party::Person("n1".into()), "p1", &[]);
        past.period = period(-10, Some(-1));
        let mut future = rule(RuleKind::Care, Party::Person("n1".into()), "p2", &[]);
        future.period = period(1, None);
        let k = Knowledge::new("n1", "staff", [], [past, future]);
        assert!(!k.facts(Some("p1"), "measurements", NOW).care_relationship);
        assert!(!k.facts(Some("p2"), "measurements", NOW).care_relationship);
        assert!(k.patients_in_care(NOW).is_empty());
    }

    #[test]
    fn a_block_on_everyone_concerns_staff_but_not_relatives() {
        let b = rule(RuleKind::Block, Party::Everyone, "p1", &["mental-health"]);
        let staff = Knowledge::new("n1", "staff", [], [b.clone()]);
        assert!(staff.facts(Some("p1"), "mental-health", NOW).blocked);
        assert!(!staff.facts(Some("p1"), "measurements", NOW).blocked);
        let rel = Knowledge::new("r1", "relative", [], [b]);
        assert!(!rel.facts(Some("p1"), "mental-health", NOW).blocked);
    }

    #[test]
    fn rules_of_other_people_are_ignored() {
        let g = rule(
            RuleKind::Grant,
            Party::Person("someone-else".into()),
            "p1",
            &[],
        );
        let k = Knowledge::new("n1", "staff", [], [g]);
        assert!(!k.facts(Some("p1"), "measurements", NOW).granted);
    }

    #[test]
    fn a_relatives_consent_gives_its_scope_or_the_default() {
        let scoped = rule(
            RuleKind::RelativeConsent,
            Party::Person("r1".into()),
            "p1",
            &["medications"],
        );
        let plain = rule(
            RuleKind::RelativeConsent,
            Party::Person("r1".into()),
            "p2",
            &[],
        );
        let k = Knowledge::new("r1", "relative", [], [scoped, plain]);
        assert_eq!(
            k.facts(Some("p1"), "x", NOW).relative_categories,
            vec!["medications".to_string()]
        );
        assert_eq!(
            k.facts(Some("p2"), "x", NOW).relative_categories,
            vec!["appointments".to_string(), "messages".to_string()]
        );
        assert!(k.facts(Some("p3"), "x", NOW).relative_categories.is_empty());
    }

    #[test]
    fn emergency_and_own_record() {
        let k = Knowledge::new("n1", "staff", [], []).with_emergency(["p1".to_string()]);
        assert!(k.facts(Some("p1"), "x", NOW).emergency);
        assert!(!k.facts(Some("p2"), "x", NOW).emergency);
        let me = Knowledge::new("p1", "patient", [], []);
        assert!(me.facts(Some("p1"), "x", NOW).own_record);
        assert!(!me.facts(Some("p2"), "x", NOW).own_record);
        assert!(me.facts(None, "directory", NOW).no_patient);
    }
}
