//! Search parameters: which values each resource type is searchable by, and extracting them.
//!
//! The table follows the R4 search parameter definitions for the parameters Tillit serves
//! (`identifier`, `code`, `category`, `status`, `date`, `patient`/`subject`), with each
//! FHIRPath reduced to the JSON element names it reads. `_id` and `_lastUpdated` come from
//! the stored row and are not extracted here.

use crate::dates::{self, DateRange};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Token,
    Date,
    Reference,
}

#[derive(Debug)]
pub struct ParamDef {
    pub name: &'static str,
    pub kind: Kind,
    /// Element paths from the resource root, dot-separated; choice types list each variant.
    pub paths: &'static [&'static str],
}

const fn p(name: &'static str, kind: Kind, paths: &'static [&'static str]) -> ParamDef {
    ParamDef { name, kind, paths }
}

use Kind::{Date as D, Reference as R, Token as T};

const ID: ParamDef = p("identifier", T, &["identifier"]);
const SUBJECT: ParamDef = p("subject", R, &["subject"]);
const PATIENT_SUBJECT: ParamDef = p("patient", R, &["subject"]);
const PATIENT: ParamDef = p("patient", R, &["patient"]);
const STATUS: ParamDef = p("status", T, &["status"]);
const CATEGORY: ParamDef = p("category", T, &["category"]);
const CODE: ParamDef = p("code", T, &["code"]);

static PATIENT_P: &[ParamDef] = &[ID, p("birthdate", D, &["birthDate"])];
static PRACTITIONER: &[ParamDef] = &[ID];
static PRACTITIONER_ROLE: &[ParamDef] = &[ID, p("date", D, &["period"])];
static ORGANIZATION: &[ParamDef] = &[ID];
static CARE_TEAM: &[ParamDef] = &[
    ID,
    CATEGORY,
    STATUS,
    SUBJECT,
    PATIENT_SUBJECT,
    p("date", D, &["period"]),
];
static EPISODE: &[ParamDef] = &[ID, STATUS, PATIENT, p("date", D, &["period"])];
static RELATED: &[ParamDef] = &[ID, PATIENT];
static CONSENT: &[ParamDef] = &[ID, CATEGORY, STATUS, PATIENT, p("date", D, &["dateTime"])];
static ENCOUNTER: &[ParamDef] = &[
    ID,
    STATUS,
    SUBJECT,
    PATIENT_SUBJECT,
    p("date", D, &["period"]),
];
static OBSERVATION: &[ParamDef] = &[
    ID,
    CODE,
    CATEGORY,
    STATUS,
    SUBJECT,
    PATIENT_SUBJECT,
    p(
        "date",
        D,
        &[
            "effectiveDateTime",
            "effectivePeriod",
            "effectiveInstant",
            "effectiveTiming.event",
        ],
    ),
];
static DIAGNOSTIC_REPORT: &[ParamDef] = &[
    ID,
    CODE,
    CATEGORY,
    STATUS,
    SUBJECT,
    PATIENT_SUBJECT,
    p("date", D, &["effectiveDateTime", "effectivePeriod"]),
];
static CONDITION: &[ParamDef] = &[ID, CODE, CATEGORY, SUBJECT, PATIENT_SUBJECT];
static PROCEDURE: &[ParamDef] = &[
    ID,
    CODE,
    CATEGORY,
    STATUS,
    SUBJECT,
    PATIENT_SUBJECT,
    p(
        "date",
        D,
        &["performedDateTime", "performedPeriod", "performedString"],
    ),
];
static IMMUNIZATION: &[ParamDef] = &[ID, STATUS, PATIENT, p("date", D, &["occurrenceDateTime"])];
static MEDICATION_REQUEST: &[ParamDef] = &[
    ID,
    CATEGORY,
    STATUS,
    SUBJECT,
    PATIENT_SUBJECT,
    p("code", T, &["medicationCodeableConcept"]),
];
static MEDICATION_STATEMENT: &[ParamDef] = &[
    ID,
    CATEGORY,
    STATUS,
    SUBJECT,
    PATIENT_SUBJECT,
    p("code", T, &["medicationCodeableConcept"]),
];
static ALLERGY: &[ParamDef] = &[
    ID,
    CODE,
    p("category", T, &["category"]),
    PATIENT,
    p("date", D, &["recordedDate"]),
];
static DOCUMENT_REFERENCE: &[ParamDef] = &[
    ID,
    CATEGORY,
    STATUS,
    SUBJECT,
    PATIENT_SUBJECT,
    p("date", D, &["date"]),
];
static COMMUNICATION: &[ParamDef] = &[ID, CATEGORY, STATUS, SUBJECT, PATIENT_SUBJECT];
static APPOINTMENT: &[ParamDef] = &[
    ID,
    STATUS,
    p("patient", R, &["participant.actor"]),
    p("date", D, &["start"]),
];
static QUESTIONNAIRE: &[ParamDef] = &[
    ID,
    STATUS,
    p("code", T, &["code", "item.code"]),
    p("date", D, &["date"]),
];
static QUESTIONNAIRE_RESPONSE: &[ParamDef] = &[ID, STATUS, SUBJECT, PATIENT_SUBJECT];
static PROVENANCE: &[ParamDef] = &[p("patient", R, &["target"])];
static TASK: &[ParamDef] = &[
    ID,
    STATUS,
    CODE,
    p("patient", R, &["for"]),
    p("subject", R, &["for"]),
    p("focus", R, &["focus"]),
    p("owner", R, &["owner"]),
    p("requester", R, &["requester"]),
    p("authored-on", D, &["authoredOn"]),
];
static AUDIT_EVENT: &[ParamDef] = &[
    p("patient", R, &["entity.what"]),
    p("date", D, &["recorded"]),
];

/// The search parameters of a resource type (empty for types we do not serve).
pub fn params(resource_type: &str) -> &'static [ParamDef] {
    match resource_type {
        "Patient" => PATIENT_P,
        "Practitioner" => PRACTITIONER,
        "PractitionerRole" => PRACTITIONER_ROLE,
        "Organization" => ORGANIZATION,
        "CareTeam" => CARE_TEAM,
        "EpisodeOfCare" => EPISODE,
        "RelatedPerson" => RELATED,
        "Consent" => CONSENT,
        "Encounter" => ENCOUNTER,
        "Observation" => OBSERVATION,
        "DiagnosticReport" => DIAGNOSTIC_REPORT,
        "Condition" => CONDITION,
        "Procedure" => PROCEDURE,
        "Immunization" => IMMUNIZATION,
        "MedicationRequest" => MEDICATION_REQUEST,
        "MedicationStatement" => MEDICATION_STATEMENT,
        "AllergyIntolerance" => ALLERGY,
        "DocumentReference" => DOCUMENT_REFERENCE,
        "Communication" => COMMUNICATION,
        "Appointment" => APPOINTMENT,
        "Questionnaire" => QUESTIONNAIRE,
        "QuestionnaireResponse" => QUESTIONNAIRE_RESPONSE,
        "Provenance" => PROVENANCE,
        "Task" => TASK,
        "AuditEvent" => AUDIT_EVENT,
        _ => &[],
    }
}

pub fn param(resource_type: &str, name: &str) -> Option<&'static ParamDef> {
    params(resource_type).iter().find(|p| p.name == name)
}

/// A value a resource can be found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexValue {
    /// A coded value or identifier; `system` is empty when the value has none.
    Token {
        system: String,
        code: String,
    },
    Date(DateRange),
    /// A reference to another resource in this server (`Type/id`).
    Reference {
        target_type: String,
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub param: &'static str,
    pub value: IndexValue,
}

/// Every value at a dotted path, descending through arrays.
fn values_at<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let Some(next) = v.get(head) else { return };
    let items: Vec<&Value> = match next {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    for item in items {
        match rest {
            Some(r) => values_at(item, r, out),
            None => out.push(item),
        }
    }
}

fn tokens(v: &Value, out: &mut Vec<IndexValue>) {
    let s = |x: Option<&Value>| x.and_then(Value::as_str).unwrap_or("").to_string();
    match v {
        Value::String(code) => out.push(IndexValue::Token {
            system: String::new(),
            code: code.clone(),
        }),
        Value::Object(o) if o.contains_key("coding") => {
            for c in o
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                tokens(c, out);
            }
        }
        // Coding
        Value::Object(o) if o.contains_key("code") => {
            out.push(IndexValue::Token {
                system: s(o.get("system")),
                code: s(o.get("code")),
            });
        }
        // Identifier
        Value::Object(o) if o.contains_key("value") => {
            out.push(IndexValue::Token {
                system: s(o.get("system")),
                code: s(o.get("value")),
            });
        }
        _ => {}
    }
}

fn date(v: &Value) -> Option<DateRange> {
    match v {
        Value::String(s) => dates::parse_range(s),
        Value::Object(o) => {
            // Period: open ends reach the far past / future.
            let start = o
                .get("start")
                .and_then(Value::as_str)
                .and_then(dates::parse_range);
            let end = o
                .get("end")
                .and_then(Value::as_str)
                .and_then(dates::parse_range);
            if start.is_none() && end.is_none() {
                return None;
            }
            Some(DateRange {
                low: start.map_or(dates::MIN, |r| r.low),
                high: end.map_or(dates::MAX, |r| r.high),
            })
        }
        _ => None,
    }
}

/// Parses a relative reference `Type/id` (or `Type/id/_history/v`).
pub fn parse_reference(r: &str) -> Option<(String, String)> {
    let mut parts = r.split('/');
    let t = parts.next()?;
    let id = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    let ok_rest = rest.is_empty() || (rest.len() == 2 && rest.first() == Some(&"_history"));
    let ok_type = t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphanumeric());
    let ok_id = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (ok_rest && ok_type && ok_id).then(|| (t.to_string(), id.to_string()))
}

/// Every search value of a resource, by parameter.
pub fn extract(resource: &Value) -> Vec<IndexEntry> {
    let Some(rt) = resource.get("resourceType").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for def in params(rt) {
        let mut found = Vec::new();
        for path in def.paths {
            values_at(resource, path, &mut found);
        }
        for v in found {
            match def.kind {
                Kind::Token => {
                    let mut ts = Vec::new();
                    tokens(v, &mut ts);
                    out.extend(
                        ts.into_iter()
                            .filter(
                                |t| matches!(t, IndexValue::Token { code, .. } if !code.is_empty()),
                            )
                            .map(|value| IndexEntry {
                                param: def.name,
                                value,
                            }),
                    );
                }
                Kind::Date => {
                    if let Some(r) = date(v) {
                        out.push(IndexEntry {
                            param: def.name,
                            value: IndexValue::Date(r),
                        });
                    }
                }
                Kind::Reference => {
                    if let Some((target_type, id)) = v
                        .get("reference")
                        .and_then(Value::as_str)
                        .and_then(parse_reference)
                    {
                        out.push(IndexEntry {
                            param: def.name,
                            value: IndexValue::Reference { target_type, id },
                        });
                    }
                }
            }
        }
    }
    out.dedup();
    out
}

/// The patient whose compartment the resource is in: the Patient itself, or the patient it
/// is about. `None` for resources outside any patient's compartment (Practitioner, ...).
pub fn patient_of(resource: &Value) -> Option<String> {
    let rt = resource.get("resourceType").and_then(Value::as_str)?;
    if rt == "Patient" {
        return resource
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    extract(resource).into_iter().find_map(|e| match e.value {
        IndexValue::Reference { target_type, id }
            if e.param == "patient" && target_type == "Patient" =>
        {
            Some(id)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obs() -> Value {
        json!({
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "identifier": [{"system": "urn:x", "value": "42"}],
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}, {"system": "urn:local", "code": "hr"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-03-01T12:00:00Z"
        })
    }

    #[test]
    fn extracts_every_parameter_of_an_observation() {
        let e = extract(&obs());
        let has = |param: &str, v: IndexValue| {
            e.contains(&IndexEntry {
                param: params("Observation")
                    .iter()
                    .find(|p| p.name == param)
                    .map(|p| p.name)
                    .unwrap_or(""),
                value: v,
            })
        };
        assert!(has(
            "code",
            IndexValue::Token {
                system: "http://loinc.org".into(),
                code: "8867-4".into()
            }
        ));
        assert!(has(
            "code",
            IndexValue::Token {
                system: "urn:local".into(),
                code: "hr".into()
            }
        ));
        assert!(has(
            "status",
            IndexValue::Token {
                system: String::new(),
                code: "final".into()
            }
        ));
        assert!(has(
            "identifier",
            IndexValue::Token {
                system: "urn:x".into(),
                code: "42".into()
            }
        ));
        assert!(has(
            "patient",
            IndexValue::Reference {
                target_type: "Patient".into(),
                id: "p1".into()
            }
        ));
        assert!(has(
            "subject",
            IndexValue::Reference {
                target_type: "Patient".into(),
                id: "p1".into()
            }
        ));
        assert!(e.iter().any(|x| x.param == "date"));
        assert_eq!(patient_of(&obs()), Some("p1".into()));
    }

    #[test]
    fn periods_with_open_ends_reach_far() {
        let enc = json!({"resourceType": "Encounter", "period": {"start": "2026-01-01"}, "subject": {"reference": "Patient/p"}});
        let d = extract(&enc).into_iter().find(|e| e.param == "date");
        assert!(matches!(
            d,
            Some(IndexEntry {
                value: IndexValue::Date(DateRange {
                    high: dates::MAX,
                    ..
                }),
                ..
            })
        ));
    }

    #[test]
    fn compartments() {
        assert_eq!(
            patient_of(&json!({"resourceType": "Patient", "id": "p9"})),
            Some("p9".into())
        );
        assert_eq!(
            patient_of(&json!({"resourceType": "Practitioner", "id": "x"})),
            None
        );
        assert_eq!(
            patient_of(
                &json!({"resourceType": "Observation", "subject": {"reference": "Group/g"}})
            ),
            None
        );
        let appt = json!({"resourceType": "Appointment", "participant": [{"actor": {"reference": "Practitioner/d"}}, {"actor": {"reference": "Patient/p2"}}]});
        assert_eq!(patient_of(&appt), Some("p2".into()));
    }

    #[test]
    fn references_parse_strictly() {
        assert_eq!(
            parse_reference("Patient/abc"),
            Some(("Patient".into(), "abc".into()))
        );
        assert_eq!(
            parse_reference("Patient/abc/_history/2"),
            Some(("Patient".into(), "abc".into()))
        );
        for bad in [
            "Patient",
            "patient/abc",
            "Patient/",
            "Patient/a b",
            "http://x/Patient/1",
            "#c1",
            "Patient/a/b",
        ] {
            assert_eq!(parse_reference(bad), None, "{bad}");
        }
    }
}
