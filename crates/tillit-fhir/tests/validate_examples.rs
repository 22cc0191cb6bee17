//! Every official R4 example of the types Tillit serves is accepted; broken variants of them
//! are refused with the path of the problem. The examples come from npm
//! `hl7.fhir.r4.examples@4.0.1`, fetched by `scripts/fetch-fhir-package`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{Value, json};
use std::path::PathBuf;
use tillit_fhir::resources::{READ_ONLY, SERVED};
use tillit_fhir::validate::validate;

pub fn package_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(root.join("scripts/fetch-fhir-package"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fetch-fhir-package: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim(),
    )
}

/// Official examples of our types: `package/<Type>-*.json` whose resourceType is that type.
pub fn examples() -> Vec<(String, Value)> {
    let dir = package_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some((prefix, _)) = name.split_once('-') else {
            continue;
        };
        if !(SERVED.contains(&prefix) || READ_ONLY.contains(&prefix)) || !name.ends_with(".json") {
            continue;
        }
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if v["resourceType"] == prefix {
            out.push((name, v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Official examples that are not valid R4 themselves, with the reason.
const INVALID_OFFICIAL_EXAMPLES: &[(&str, &str)] = &[(
    "Questionnaire-qs1.json",
    "its display items have no linkId, which R4 requires (Questionnaire.item.linkId is 1..1)",
)];

#[test]
fn the_known_invalid_official_example_is_refused_for_its_known_defect() {
    let v = example("Questionnaire-qs1.json");
    let issues = validate(&v).err().unwrap();
    assert!(
        issues.iter().all(|i| i
            .expression
            .as_deref()
            .is_some_and(|e| e.ends_with(".linkId"))),
        "{issues:?}"
    );
}

#[test]
fn every_official_example_of_our_types_is_accepted() {
    let all = examples();
    assert!(all.len() > 200, "only {} examples found", all.len());
    let mut failures = Vec::new();
    for (name, v) in &all {
        if INVALID_OFFICIAL_EXAMPLES.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Err(issues) = validate(v) {
            failures.push(format!(
                "{name}: {}",
                issues
                    .iter()
                    .map(|i| format!(
                        "{} {}",
                        i.expression.as_deref().unwrap_or(""),
                        i.diagnostics
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples refused:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    println!("{} official examples accepted", all.len());
}

fn example(name: &str) -> Value {
    examples().into_iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn broken_variants_of_real_examples_are_refused_at_the_right_path() {
    let obs = example("Observation-example.json");
    let patient = example("Patient-example.json");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no status",
            {
                let mut v = obs.clone();
                v.as_object_mut().unwrap().remove("status");
                v
            },
            "Observation.status",
        ),
        (
            "status is a number",
            {
                let mut v = obs.clone();
                v["status"] = json!(3);
                v
            },
            "Observation.status",
        ),
        (
            "bad date",
            {
                let mut v = patient.clone();
                v["birthDate"] = json!("1974-12-32");
                v
            },
            "Patient.birthDate",
        ),
        (
            "unknown element",
            {
                let mut v = patient.clone();
                v["favouriteColour"] = json!("blue");
                v
            },
            "Patient.favouriteColour",
        ),
        (
            "array where one",
            {
                let mut v = patient.clone();
                v["gender"] = json!(["male"]);
                v
            },
            "Patient.gender",
        ),
        (
            "one where array",
            {
                let mut v = patient.clone();
                v["name"] = json!({"family": "x"});
                v
            },
            "Patient.name",
        ),
        (
            "bad reference",
            {
                let mut v = obs.clone();
                v["subject"] = json!({"reference": "Patient example"});
                v
            },
            "Observation.subject.reference",
        ),
        (
            "two choices",
            {
                let mut v = obs.clone();
                v["valueString"] = json!("x");
                v
            },
            "Observation.valueString",
        ),
        (
            "bad id",
            {
                let mut v = patient.clone();
                v["id"] = json!("has space");
                v
            },
            "Patient.id",
        ),
        (
            "empty array",
            {
                let mut v = patient.clone();
                v["identifier"] = json!([]);
                v
            },
            "Patient.identifier",
        ),
        (
            "code system not a URI",
            {
                let mut v = obs.clone();
                v["code"]["coding"][0]["system"] = json!("LOINC");
                v
            },
            "Observation.code.coding[0].system",
        ),
    ];
    for (what, v, path) in cases {
        let issues = validate(&v)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(
            issues.iter().any(|i| i.expression.as_deref() == Some(path)),
            "{what}: wanted {path}, got {issues:?}"
        );
    }
}
