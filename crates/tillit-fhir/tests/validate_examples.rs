//! Every official R4 example of the types Tillit serves (and AuditEvent, Bundle and
//! OperationOutcome) is accepted, and so is every resource of those types inside the official
//! example Bundles on its own (as `tillit import` checks them); broken variants of real examples
//! are refused with the path of the problem. The examples come from npm
//! `hl7.fhir.r4.examples@4.0.1`, fetched by `scripts/fetch-fhir-package`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use tillit_fhir::resources::{READ_ONLY, SERVED};
use tillit_fhir::validate::validate;
use tillit_fhir::{Issue, IssueType};

/// Official examples that are not valid R4 themselves, with the reason.
const INVALID_OFFICIAL_EXAMPLES: &[(&str, &str)] = &[(
    "Questionnaire-qs1.json",
    "its display items have no linkId, which R4 requires (Questionnaire.item.linkId is 1..1)",
)];

fn package_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(root.join("scripts/fetch-fhir-package"))
        .output()
        .expect("scripts/fetch-fhir-package runs");
    assert!(
        out.status.success(),
        "fetch-fhir-package: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().unwrap().trim())
}

fn ours(resource_type: &str) -> bool {
    SERVED.contains(&resource_type) || READ_ONLY.contains(&resource_type)
}

/// Types the validator knows besides ours: what Tillit reads (Bundle) and writes.
const ALSO_KNOWN: &[&str] = &["Bundle", "OperationOutcome"];

struct Package {
    /// `package/<Type>-*.json` whose resourceType is that type, one the validator knows.
    examples: Vec<(String, Value)>,
    /// Resources of our types inside the example Bundles: (file, entry index, resource).
    in_bundles: Vec<(String, usize, Value)>,
}

fn package() -> &'static Package {
    static PACKAGE: OnceLock<Package> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        let mut examples = Vec::new();
        let mut in_bundles = Vec::new();
        for entry in std::fs::read_dir(package_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let Some((prefix, _)) = name.split_once('-') else {
                continue;
            };
            if !name.ends_with(".json") || !(ours(prefix) || ALSO_KNOWN.contains(&prefix)) {
                continue;
            }
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if v["resourceType"] != prefix {
                continue;
            }
            for (i, e) in v["entry"].as_array().into_iter().flatten().enumerate() {
                if e["resource"]["resourceType"].as_str().is_some_and(ours) {
                    in_bundles.push((name.clone(), i, e["resource"].clone()));
                }
            }
            examples.push((name, v));
        }
        examples.sort_by(|a, b| a.0.cmp(&b.0));
        in_bundles.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Package {
            examples,
            in_bundles,
        }
    })
}

fn example(name: &str) -> Value {
    package()
        .examples
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no example {name}"))
        .1
        .clone()
}

fn describe(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i.expression.as_deref().unwrap_or(""),
                i.diagnostics
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn every_official_example_of_the_types_we_know_is_accepted() {
    let all = &package().examples;
    let mut failures = Vec::new();
    let mut accepted: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, v) in all {
        if INVALID_OFFICIAL_EXAMPLES.iter().any(|(n, _)| n == name) {
            continue;
        }
        match validate(v) {
            Ok(()) => {
                *accepted
                    .entry(v["resourceType"].as_str().unwrap())
                    .or_default() += 1
            }
            Err(issues) => failures.push(format!("{name}: {}", describe(&issues))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples refused:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    for t in SERVED.iter().chain(READ_ONLY).chain(ALSO_KNOWN) {
        assert!(accepted.contains_key(t), "no official example of {t}");
    }
    let total: usize = accepted.values().sum();
    assert!(total > 300, "only {total} examples found");
    println!(
        "{total} official examples accepted ({} allow-listed as invalid R4): {accepted:?}",
        INVALID_OFFICIAL_EXAMPLES.len()
    );
}

#[test]
fn every_resource_of_our_types_in_the_official_example_bundles_is_accepted() {
    let all = &package().in_bundles;
    let failures: Vec<String> = all
        .iter()
        .filter_map(|(file, i, v)| {
            validate(v)
                .err()
                .map(|issues| format!("{file} entry[{i}]: {}", describe(&issues)))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} refused:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    assert!(all.len() > 50, "only {} bundled resources found", all.len());
    println!(
        "{} resources from official example bundles accepted",
        all.len()
    );
}

#[test]
fn the_allow_listed_official_examples_are_refused_for_their_known_defect_only() {
    let issues = validate(&example("Questionnaire-qs1.json")).unwrap_err();
    assert!(
        issues.iter().all(|i| i.code == IssueType::Required
            && i.expression
                .as_deref()
                .is_some_and(|e| e.ends_with(".linkId"))),
        "{issues:?}"
    );
}

/// A copy of `v` changed by `f`.
fn variant(v: &Value, f: impl FnOnce(&mut Value)) -> Value {
    let mut v = v.clone();
    f(&mut v);
    v
}

#[test]
fn broken_variants_of_real_examples_are_refused_at_the_right_path() {
    let obs = example("Observation-example.json");
    let patient = example("Patient-example.json");
    let questionnaire = example("Questionnaire-f201.json");
    let med = example("MedicationRequest-medrx0302.json");
    let cases: Vec<(&str, Value, &str, IssueType)> = vec![
        (
            "required element removed",
            variant(&obs, |v| {
                v.as_object_mut().unwrap().remove("status");
            }),
            "Observation.status",
            IssueType::Required,
        ),
        (
            "required choice removed",
            variant(&med, |v| {
                v.as_object_mut().unwrap().remove("medicationReference");
            }),
            "MedicationRequest.medication[x]",
            IssueType::Required,
        ),
        (
            "code given as a number",
            variant(&obs, |v| v["status"] = json!(3)),
            "Observation.status",
            IssueType::Value,
        ),
        (
            "decimal given as a string",
            variant(&obs, |v| v["valueQuantity"]["value"] = json!("185")),
            "Observation.valueQuantity.value",
            IssueType::Value,
        ),
        (
            "boolean given as a string",
            variant(&patient, |v| v["active"] = json!("true")),
            "Patient.active",
            IssueType::Value,
        ),
        (
            "impossible date",
            variant(&patient, |v| v["birthDate"] = json!("1974-12-32")),
            "Patient.birthDate",
            IssueType::Value,
        ),
        (
            "dateTime without a zone",
            variant(&obs, |v| {
                v["effectiveDateTime"] = json!("2016-03-28T10:00:00");
            }),
            "Observation.effectiveDateTime",
            IssueType::Value,
        ),
        (
            "unknown element",
            variant(&patient, |v| v["favouriteColour"] = json!("blue")),
            "Patient.favouriteColour",
            IssueType::Structure,
        ),
        (
            "unknown element in a datatype",
            variant(&patient, |v| v["name"][0]["nickname"] = json!("Jim")),
            "Patient.name[0].nickname",
            IssueType::Structure,
        ),
        (
            "array where one value",
            variant(&patient, |v| v["gender"] = json!(["male"])),
            "Patient.gender",
            IssueType::Structure,
        ),
        (
            "one value where an array",
            variant(&patient, |v| v["name"] = json!({"family": "x"})),
            "Patient.name",
            IssueType::Structure,
        ),
        (
            "malformed reference",
            variant(&obs, |v| {
                v["subject"] = json!({"reference": "Patient example"});
            }),
            "Observation.subject.reference",
            IssueType::Value,
        ),
        (
            "reference to a type FHIR does not have",
            variant(&obs, |v| v["subject"] = json!({"reference": "Client/1"})),
            "Observation.subject.reference",
            IssueType::Value,
        ),
        (
            "two choices of one element",
            variant(&obs, |v| v["valueString"] = json!("x")),
            "Observation.valueString",
            IssueType::Structure,
        ),
        (
            "choice with a type it does not allow",
            variant(&obs, |v| {
                let q = v.as_object_mut().unwrap().remove("valueQuantity").unwrap();
                v["valueMoney"] = q;
            }),
            "Observation.valueMoney",
            IssueType::Structure,
        ),
        (
            "bad resource id",
            variant(&patient, |v| v["id"] = json!("has space")),
            "Patient.id",
            IssueType::Value,
        ),
        (
            "empty array",
            variant(&patient, |v| v["identifier"] = json!([])),
            "Patient.identifier",
            IssueType::Invalid,
        ),
        (
            "empty string",
            variant(&patient, |v| v["name"][0]["family"] = json!("")),
            "Patient.name[0].family",
            IssueType::Value,
        ),
        (
            "null value",
            variant(&patient, |v| v["gender"] = Value::Null),
            "Patient.gender",
            IssueType::Invalid,
        ),
        (
            "code system not a URI",
            variant(&obs, |v| v["code"]["coding"][0]["system"] = json!("LOINC")),
            "Observation.code.coding[0].system",
            IssueType::Value,
        ),
        (
            "extension without a url",
            variant(&patient, |v| {
                v["_birthDate"]["extension"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("url");
            }),
            "Patient.birthDate.extension[0].url",
            IssueType::Required,
        ),
        (
            "nested item without its linkId (content reference)",
            variant(&questionnaire, |v| {
                v["item"][1]["item"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("linkId");
            }),
            "Questionnaire.item[1].item[0].linkId",
            IssueType::Required,
        ),
        (
            "contained resource with a broken element",
            variant(&obs, |v| {
                v["contained"] = json!([{"resourceType": "Patient", "id": "p", "gender": 1}]);
            }),
            "Observation.contained[0].gender",
            IssueType::Value,
        ),
    ];
    for (what, v, path, code) in &cases {
        let issues = validate(v)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(
            issues
                .iter()
                .any(|i| i.expression.as_deref() == Some(path) && i.code == *code),
            "{what}: wanted {code:?} at {path}, got {issues:?}"
        );
        // Only the damage is reported, not the rest of a valid example.
        assert!(
            issues.iter().all(|i| i.expression.as_deref() == Some(path)),
            "{what}: more than {path}: {issues:?}"
        );
    }
    println!("{} broken variants refused", cases.len());
}
