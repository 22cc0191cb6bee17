//! Outside software against our server: maintained FHIR clients (fhirpy, fhirclient,
//! fhir-kit-client), independent validators (the official R4 JSON schema and
//! @medplum/core) over what the server returns, every official R4 example round-tripped, and
//! Synthea bundles imported. Tools are installed by `scripts/install-test-tools`.

use crate::fhir::Fhir;
use crate::helpers::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tools() -> PathBuf {
    let out = Command::new(repo().join("scripts/install-test-tools"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install-test-tools: {}",
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

fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

fn env_for(cmd: &mut Command, app: &TestApp, user: &str, out_dir: &Path) {
    cmd.env("FHIR_BASE", app.url("/fhir/r4"))
        .env("FHIR_CA", app.creds["ca_cert"].as_str().unwrap())
        .env(
            "NODE_EXTRA_CA_CERTS",
            app.creds["ca_cert"].as_str().unwrap(),
        )
        .env("FHIR_TOKEN", app.user(user)["api_token"].as_str().unwrap())
        .env("OUT_DIR", out_dir);
}

/// Runs a node script from tests-external inside the tools' node folder (for its packages).
fn node(tools: &Path, script: &str) -> Command {
    let dest = tools.join("node").join(script);
    std::fs::copy(repo().join("tests-external").join(script), &dest).unwrap();
    let mut c = Command::new("node");
    c.arg(dest).current_dir(tools.join("node"));
    c
}

#[tokio::test]
async fn third_party_clients_work_and_independent_validators_accept_our_output() {
    let tools = tools();
    let app = spawn_demo();
    let out_dir = app.dir.join("responses");
    std::fs::create_dir_all(&out_dir).unwrap();
    for (script, nid) in [
        ("fhirpy_client.py", "01810700021"),
        ("fhirclient_client.py", "01810700110"),
    ] {
        let mut c = Command::new(tools.join("venv/bin/python"));
        c.arg(repo().join("tests-external").join(script))
            .env("NATIONAL_ID", nid);
        env_for(&mut c, &app, "integrasjon.epj", &out_dir);
        let text = run(c, script);
        assert!(text.contains("checks passed"), "{text}");
    }
    let mut c = node(&tools, "fhir_kit_client.mjs");
    c.env("NATIONAL_ID", "01810700209");
    env_for(&mut c, &app, "integrasjon.epj", &out_dir);
    assert!(run(c, "fhir-kit-client").contains("checks passed"));

    // What the server returns: searches over every demo type, the CapabilityStatement, an
    // OperationOutcome and a history Bundle.
    let f = Fhir::new(&app, "integrasjon.epj");
    for rt in [
        "Patient",
        "Observation",
        "Condition",
        "MedicationStatement",
        "Encounter",
        "DocumentReference",
        "Appointment",
        "Practitioner",
        "Organization",
    ] {
        let (s, b) = f.get(&format!("/{rt}?_count=50")).await;
        assert_eq!(s, 200);
        std::fs::write(
            out_dir.join(format!("search-{rt}.json")),
            serde_json::to_vec(&b).unwrap(),
        )
        .unwrap();
    }
    let (_, cap) = f.get("/metadata").await;
    std::fs::write(
        out_dir.join("metadata.json"),
        serde_json::to_vec(&cap).unwrap(),
    )
    .unwrap();
    let (_, oo) = f
        .post(
            "/Patient",
            &serde_json::json!({"resourceType": "Patient", "birthDate": "1999-99-99"}),
        )
        .await;
    std::fs::write(
        out_dir.join("outcome.json"),
        serde_json::to_vec(&oo).unwrap(),
    )
    .unwrap();
    let (_, hist) = f.get("/Patient/_history?_count=20").await;
    std::fs::write(
        out_dir.join("history.json"),
        serde_json::to_vec(&hist).unwrap(),
    )
    .unwrap();
    let mut c = node(&tools, "validate_output.mjs");
    c.arg(&out_dir);
    let text = run(c, "validate_output.mjs");
    let validated: usize = text
        .split("validated ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(validated > 200, "{text}");
}

fn official_examples() -> Vec<(String, Value)> {
    let out = Command::new(repo().join("scripts/fetch-fhir-package"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = PathBuf::from(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim(),
    );
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some((prefix, _)) = name.split_once('-') else {
            continue;
        };
        if !tillit_fhir::resources::is_served(prefix) || name == "Questionnaire-qs1.json" {
            continue;
        }
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if v["resourceType"] == prefix {
            all.push((name, v));
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn without_meta(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("meta");
    v
}

#[tokio::test]
async fn every_official_example_round_trips_and_broken_ones_are_refused() {
    let app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let examples = official_examples();
    assert!(examples.len() > 200);
    let mut failures = Vec::new();
    for (name, ex) in &examples {
        let rt = ex["resourceType"].as_str().unwrap();
        let id = ex["id"].as_str().unwrap();
        let (s, stored) = f.put(&format!("/{rt}/{id}"), ex).await;
        if s != 201 {
            failures.push(format!("{name}: PUT answered {s}: {stored}"));
            continue;
        }
        let (s, back) = f.get(&format!("/{rt}/{id}")).await;
        if s != 200 || without_meta(&back) != without_meta(ex) {
            failures.push(format!("{name}: read back differs"));
        }
        // The example's own meta (profiles, tags) is kept beside ours.
        if let Some(tags) = ex["meta"].get("tag")
            && back["meta"]["tag"] != *tags
        {
            failures.push(format!("{name}: meta.tag lost"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );

    // Broken variants: refused with an OperationOutcome naming the element, nothing written.
    let (_, patient) = f.get("/Patient/example").await;
    let (_, before) = f.get("/Patient?_summary=count").await;
    for (what, change, path) in [
        (
            "bad date",
            ("birthDate", serde_json::json!("1974-12-32")),
            "Patient.birthDate",
        ),
        (
            "unknown element",
            ("shoeSize", serde_json::json!(44)),
            "Patient.shoeSize",
        ),
        (
            "wrong cardinality",
            ("gender", serde_json::json!(["male"])),
            "Patient.gender",
        ),
    ] {
        let mut v = without_meta(&patient);
        v.as_object_mut().unwrap().remove("id");
        v[change.0] = change.1;
        let (s, oo) = f.post("/Patient", &v).await;
        assert_eq!(s, 400, "{what}");
        assert!(
            oo["issue"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["expression"][0] == path),
            "{what}: {oo}"
        );
    }
    let (_, after) = f.get("/Patient?_summary=count").await;
    assert_eq!(before["total"], after["total"]);
}

#[tokio::test]
async fn synthea_bundles_import_with_every_resource_accounted_for() {
    let tools = tools();
    let app = spawn_demo();
    let gen_dir = app.dir.join("synthea");
    let mut c = Command::new(tools.join("venv/bin/synthea"));
    c.args(["-p", "2", "-s", "7", "-r", "20261101", "-o"])
        .arg(&gen_dir);
    run(c, "synthea");
    let f = Fhir::new(&app, "integrasjon.epj");
    let (_, before) = f.get("/Patient?_summary=count").await;
    let mut c = Command::new(BIN);
    c.arg("import")
        .arg(gen_dir.join("fhir"))
        .arg("--data-dir")
        .arg(&app.dir)
        .args(["--tenant", "Nordby kommune"]);
    let text = run(c, "tillit import");
    assert!(text.contains("2 bundle(s) committed, 0 refused"), "{text}");
    assert!(
        text.contains("left out, types Tillit does not serve"),
        "{text}"
    );
    let written: usize = text
        .split("resources written: ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(written > 100, "{text}");
    let (_, after) = f.get("/Patient?_summary=count").await;
    assert_eq!(
        after["total"].as_u64().unwrap(),
        before["total"].as_u64().unwrap() + 2
    );
    // A bad file in the folder: reported with its location, its bundle not committed.
    std::fs::write(gen_dir.join("fhir/zz-bad.json"), br#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","birthDate":"x"},"request":{"method":"POST","url":"Patient"}}]}"#).unwrap();
    let out = Command::new(BIN)
        .arg("import")
        .arg(gen_dir.join("fhir/zz-bad.json"))
        .arg("--data-dir")
        .arg(&app.dir)
        .args(["--tenant", "Nordby kommune"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zz-bad.json: entry[0] Patient.birthDate"),
        "{err}"
    );
}
