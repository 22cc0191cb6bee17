//! Tillit categories ("information modules"): what part of a record a resource belongs to,
//! which decides who may see it (a care assistant does not read mental-health notes; a
//! secretary reads demographics and appointments only).
//!
//! The category is derived from the resource type and its codes by an ordered rule table:
//! the first rule that matches wins. Tenants can put their own rules in front of the defaults.
//! A clinician can also set it explicitly with a `meta.security` label in [`SYSTEM`].
//! The chosen category is written back as such a label, so every stored version carries it.

use serde_json::{Value, json};

/// The code system of Tillit's category labels in `meta.security`.
pub const SYSTEM: &str = "https://tillit.no/fhir/CodeSystem/category";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Demographics,
    Measurements,
    CarePlan,
    Medications,
    ClinicalNotes,
    LabResults,
    MentalHealth,
    SexualHealth,
    Social,
    Messages,
    Appointments,
    /// Not about one patient: practitioners, organisations, questionnaires.
    Directory,
}

impl Category {
    pub const ALL: [Category; 12] = [
        Category::Demographics,
        Category::Measurements,
        Category::CarePlan,
        Category::Medications,
        Category::ClinicalNotes,
        Category::LabResults,
        Category::MentalHealth,
        Category::SexualHealth,
        Category::Social,
        Category::Messages,
        Category::Appointments,
        Category::Directory,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Category::Demographics => "demographics",
            Category::Measurements => "measurements",
            Category::CarePlan => "care-plan",
            Category::Medications => "medications",
            Category::ClinicalNotes => "clinical-notes",
            Category::LabResults => "lab-results",
            Category::MentalHealth => "mental-health",
            Category::SexualHealth => "sexual-health",
            Category::Social => "social",
            Category::Messages => "messages",
            Category::Appointments => "appointments",
            Category::Directory => "directory",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Sensitive categories get stricter defaults and are never hinted at when hidden.
    pub fn is_sensitive(self) -> bool {
        matches!(self, Category::MentalHealth | Category::SexualHealth)
    }

    pub fn display(self) -> &'static str {
        match self {
            Category::Demographics => "Personalia",
            Category::Measurements => "Målinger",
            Category::CarePlan => "Tiltaksplan",
            Category::Medications => "Legemidler",
            Category::ClinicalNotes => "Journalnotater",
            Category::LabResults => "Laboratoriesvar",
            Category::MentalHealth => "Psykisk helse",
            Category::SexualHealth => "Seksuell helse",
            Category::Social => "Sosiale forhold",
            Category::Messages => "Meldinger",
            Category::Appointments => "Avtaler",
            Category::Directory => "Katalog",
        }
    }
}

/// One rule: a resource type (or any), optionally a code system and a code prefix found
/// anywhere in the resource's main codes (`code`, `category`, `type`, `class`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub resource_type: Option<String>,
    pub system: Option<String>,
    pub code_prefix: Option<String>,
    pub category: Category,
}

fn r(rt: Option<&str>, system: Option<&str>, prefix: Option<&str>, category: Category) -> Rule {
    Rule {
        resource_type: rt.map(str::to_string),
        system: system.map(str::to_string),
        code_prefix: prefix.map(str::to_string),
        category,
    }
}

const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
const ICD10_NO: &str = "urn:oid:2.16.578.1.12.4.1.1.7110";
const ICPC2: &str = "urn:oid:2.16.578.1.12.4.1.1.7170";
const OBS_CAT: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";

/// The default rules. Sensitive codes first, so they win over the type's usual category.
pub fn default_rules() -> Vec<Rule> {
    use Category::*;
    let mut rules = Vec::new();
    // Mental health: ICD-10 chapter F, ICPC-2 chapter P.
    for sys in [ICD10, ICD10_NO] {
        rules.push(r(None, Some(sys), Some("F"), MentalHealth));
    }
    rules.push(r(None, Some(ICPC2), Some("P"), MentalHealth));
    // Sexual health: ICD-10 A50–A64 (sexually transmitted infections), Z30 (contraception);
    // ICPC-2 X (female genital, incl. pregnancy tests) and Y (male genital).
    for sys in [ICD10, ICD10_NO] {
        for prefix in [
            "A50", "A51", "A52", "A53", "A54", "A55", "A56", "A57", "A58", "A59", "A60", "A63",
            "A64", "Z30",
        ] {
            rules.push(r(None, Some(sys), Some(prefix), SexualHealth));
        }
    }
    rules.push(r(None, Some(ICPC2), Some("X"), SexualHealth));
    rules.push(r(None, Some(ICPC2), Some("Y"), SexualHealth));
    // By observation or report category.
    rules.push(r(
        Some("Observation"),
        Some(OBS_CAT),
        Some("laboratory"),
        LabResults,
    ));
    rules.push(r(
        Some("Observation"),
        Some(OBS_CAT),
        Some("social-history"),
        Social,
    ));
    rules.push(r(
        Some("Observation"),
        Some(OBS_CAT),
        Some("survey"),
        ClinicalNotes,
    ));
    rules.push(r(
        Some("DiagnosticReport"),
        Some(V2_0074),
        Some("LAB"),
        LabResults,
    ));
    rules.push(r(
        Some("DiagnosticReport"),
        Some(V2_0074),
        Some("HM"),
        LabResults,
    ));
    rules.push(r(
        Some("DiagnosticReport"),
        Some(V2_0074),
        Some("CH"),
        LabResults,
    ));
    rules.push(r(
        Some("DiagnosticReport"),
        Some(V2_0074),
        Some("MB"),
        LabResults,
    ));
    // By type.
    for (t, c) in [
        ("Patient", Demographics),
        ("RelatedPerson", Demographics),
        ("Practitioner", Directory),
        ("PractitionerRole", Directory),
        ("Organization", Directory),
        ("Questionnaire", Directory),
        ("CareTeam", CarePlan),
        ("EpisodeOfCare", CarePlan),
        ("Consent", CarePlan),
        ("Observation", Measurements),
        ("DiagnosticReport", ClinicalNotes),
        ("Encounter", ClinicalNotes),
        ("Condition", ClinicalNotes),
        ("Procedure", ClinicalNotes),
        ("DocumentReference", ClinicalNotes),
        ("QuestionnaireResponse", ClinicalNotes),
        ("Provenance", ClinicalNotes),
        // A patient's request about a record (a correction, an erasure) takes the record's
        // category as an explicit label when Tillit makes it; others are notes.
        ("Task", ClinicalNotes),
        ("AuditEvent", ClinicalNotes),
        ("Immunization", Medications),
        ("MedicationRequest", Medications),
        ("MedicationStatement", Medications),
        ("AllergyIntolerance", Medications),
        ("Communication", Messages),
        ("Appointment", Appointments),
    ] {
        rules.push(r(Some(t), None, None, c));
    }
    rules
}

/// The codings a rule looks at: the resource's main classifying elements.
fn codings(resource: &Value) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for key in [
        "code",
        "category",
        "type",
        "class",
        "vaccineCode",
        "medicationCodeableConcept",
        "reasonCode",
    ] {
        let items: Vec<&Value> = match resource.get(key) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
            None => continue,
        };
        for item in items {
            let codings: Vec<&Value> = match item.get("coding") {
                Some(Value::Array(c)) => c.iter().collect(),
                _ => vec![item],
            };
            for c in codings {
                if let (Some(s), Some(code)) = (
                    c.get("system").and_then(Value::as_str),
                    c.get("code").and_then(Value::as_str),
                ) {
                    out.push((s, code));
                }
            }
        }
    }
    out
}

/// An explicit label a clinician set.
pub fn explicit(resource: &Value) -> Option<Category> {
    resource
        .get("meta")?
        .get("security")?
        .as_array()?
        .iter()
        .filter(|c| c.get("system").and_then(Value::as_str) == Some(SYSTEM))
        .find_map(|c| {
            c.get("code")
                .and_then(Value::as_str)
                .and_then(Category::parse)
        })
}

/// The category of a resource: an explicit label, else the first matching rule, else
/// clinical notes (the most protected ordinary category).
pub fn categorize(resource: &Value, rules: &[Rule]) -> Category {
    if let Some(c) = explicit(resource) {
        return c;
    }
    let rt = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let codes = codings(resource);
    rules
        .iter()
        .find(|rule| {
            rule.resource_type.as_deref().is_none_or(|t| t == rt)
                && match (&rule.system, &rule.code_prefix) {
                    (None, None) => true,
                    (sys, prefix) => codes.iter().any(|(s, c)| {
                        sys.as_deref().is_none_or(|x| x == *s)
                            && prefix.as_deref().is_none_or(|p| c.starts_with(p))
                    }),
                }
        })
        .map_or(Category::ClinicalNotes, |rule| rule.category)
}

/// Writes the category as the one Tillit label in `meta.security` (other labels kept).
pub fn label(resource: &mut Value, category: Category) {
    let Some(obj) = resource.as_object_mut() else {
        return;
    };
    let meta = obj.entry("meta").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let security = meta.entry("security").or_insert_with(|| json!([]));
    if let Some(arr) = security.as_array_mut() {
        arr.retain(|c| c.get("system").and_then(Value::as_str) != Some(SYSTEM));
        arr.push(json!({"system": SYSTEM, "code": category.code(), "display": category.display()}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(v: Value) -> Category {
        categorize(&v, &default_rules())
    }

    #[test]
    fn types_get_their_default_category() {
        assert_eq!(
            cat(json!({"resourceType": "Patient"})),
            Category::Demographics
        );
        assert_eq!(
            cat(json!({"resourceType": "Appointment"})),
            Category::Appointments
        );
        assert_eq!(
            cat(json!({"resourceType": "Communication"})),
            Category::Messages
        );
        assert_eq!(
            cat(json!({"resourceType": "MedicationRequest"})),
            Category::Medications
        );
        assert_eq!(
            cat(json!({"resourceType": "Practitioner"})),
            Category::Directory
        );
    }

    #[test]
    fn codes_make_a_resource_sensitive() {
        let depression = json!({"resourceType": "Condition", "code": {"coding": [{"system": ICD10, "code": "F32.1"}]}});
        assert_eq!(cat(depression), Category::MentalHealth);
        let icpc = json!({"resourceType": "Encounter", "reasonCode": [{"coding": [{"system": ICPC2, "code": "P76"}]}]});
        assert_eq!(cat(icpc), Category::MentalHealth);
        let chlamydia = json!({"resourceType": "Condition", "code": {"coding": [{"system": ICD10, "code": "A56.0"}]}});
        assert_eq!(cat(chlamydia), Category::SexualHealth);
        let lab = json!({"resourceType": "Observation", "category": [{"coding": [{"system": OBS_CAT, "code": "laboratory"}]}]});
        assert_eq!(cat(lab), Category::LabResults);
        let vitals = json!({"resourceType": "Observation", "category": [{"coding": [{"system": OBS_CAT, "code": "vital-signs"}]}]});
        assert_eq!(cat(vitals), Category::Measurements);
    }

    #[test]
    fn an_explicit_label_wins_and_labelling_replaces_only_ours() {
        let mut v = json!({"resourceType": "Observation", "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}, {"system": SYSTEM, "code": "mental-health"}]}});
        assert_eq!(cat(v.clone()), Category::MentalHealth);
        label(&mut v, Category::Social);
        let sec = v["meta"]["security"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(sec.len(), 2);
        assert_eq!(explicit(&v), Some(Category::Social));
    }

    #[test]
    fn tenant_rules_go_first() {
        let mut rules = vec![r(
            Some("Observation"),
            Some("http://loinc.org"),
            Some("44249-1"),
            Category::MentalHealth,
        )];
        rules.extend(default_rules());
        let phq = json!({"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "44249-1"}]}});
        assert_eq!(categorize(&phq, &rules), Category::MentalHealth);
    }
}
