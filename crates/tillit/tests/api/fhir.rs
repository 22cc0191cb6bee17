//! The FHIR R4 API over TLS: interactions, versioning, search, bundles, errors, and data
//! sealed at rest.

use crate::helpers::*;
use serde_json::{Value, json};

pub struct Fhir<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

impl<'a> Fhir<'a> {
    pub fn new(app: &'a TestApp, user: &str) -> Self {
        Fhir {
            app,
            token: app.user(user)["api_token"].as_str().unwrap().to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.app.url(&format!("/fhir/r4{path}"))
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut rb = self
            .app
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/fhir+json")
                .body(serde_json::to_vec(b).unwrap());
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let h = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, h, v)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, v) = self.send(reqwest::Method::GET, path, None, &[]).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (s, _, v) = self
            .send(reqwest::Method::POST, path, Some(body), &[])
            .await;
        (s, v)
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let (s, _, v) = self.send(reqwest::Method::PUT, path, Some(body), &[]).await;
        (s, v)
    }

    pub async fn create(&self, body: &Value) -> Value {
        let rt = body["resourceType"].as_str().unwrap();
        let (s, v) = self.post(&format!("/{rt}"), body).await;
        assert_eq!(s, 201, "create {rt}: {v}");
        v
    }
}

pub fn patient(nid: &str, family: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": nid}],
        "name": [{"family": family, "given": ["Test"]}],
        "gender": "female",
        "birthDate": "1950-05-17"
    })
}

pub fn heart_rate(patient_id: &str, when: &str, bpm: i64) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "effectiveDateTime": when,
        "valueQuantity": {"value": bpm, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

fn outcome_text(v: &Value) -> String {
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    v["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["diagnostics"].as_str().unwrap_or(""),
                i["expression"]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn create_read_update_with_versions_and_delete_keeping_history() {
    let app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let (s, h, created) = f
        .send(
            reqwest::Method::POST,
            "/Patient",
            Some(&patient("01810700021", "Versjonsen")),
            &[],
        )
        .await;
    assert_eq!(s, 201);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(h["etag"], "W/\"1\"");
    assert!(
        h["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/fhir/r4/Patient/{id}/_history/1"))
    );
    assert_eq!(created["meta"]["versionId"], "1");
    assert!(
        created["meta"]["security"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "demographics")
    );

    let (s, read) = f.get(&format!("/Patient/{id}")).await;
    assert_eq!(
        (s, read["name"][0]["family"].as_str()),
        (200, Some("Versjonsen"))
    );

    let mut changed = read.clone();
    changed["name"][0]["family"] = json!("Endretsen");
    let (s, h, v2) = f
        .send(
            reqwest::Method::PUT,
            &format!("/Patient/{id}"),
            Some(&changed),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!((s, h["etag"].to_str().unwrap()), (200, "W/\"2\""));
    assert_eq!(v2["meta"]["versionId"], "2");
    // A stale If-Match is refused with 412 and changes nothing.
    changed["name"][0]["family"] = json!("Feilsen");
    let (s, _, oo) = f
        .send(
            reqwest::Method::PUT,
            &format!("/Patient/{id}"),
            Some(&changed),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(s, 412, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(
        f.get(&format!("/Patient/{id}")).await.1["name"][0]["family"],
        "Endretsen"
    );
    // vread of the first version.
    let (s, v1) = f.get(&format!("/Patient/{id}/_history/1")).await;
    assert_eq!(
        (s, v1["name"][0]["family"].as_str()),
        (200, Some("Versjonsen"))
    );

    // Delete is logical: reads answer 410, history keeps every version.
    let (s, _, _) = f
        .send(
            reqwest::Method::DELETE,
            &format!("/Patient/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(f.get(&format!("/Patient/{id}")).await.0, 410);
    let (s, hist) = f.get(&format!("/Patient/{id}/_history")).await;
    assert_eq!(s, 200);
    assert_eq!(hist["type"], "history");
    let methods: Vec<&str> = hist["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["DELETE", "PUT", "POST"]);
    assert_eq!(f.get(&format!("/Patient/{id}/_history/2")).await.0, 200);
    // Not found in searches any more.
    let (_, b) = f
        .get("/Patient?identifier=urn:oid:2.16.578.1.12.4.1.4.1|01810700021")
        .await;
    assert_eq!(b["total"], 0);
    // Type history lists it too.
    let (s, th) = f.get("/Patient/_history?_count=50").await;
    assert_eq!(s, 200);
    assert!(
        th["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["fullUrl"].as_str().unwrap().ends_with(&id))
    );
}

#[tokio::test]
async fn conditional_create_by_identifier_does_not_duplicate() {
    let app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let cond = "identifier=urn:oid:2.16.578.1.12.4.1.4.1|01810700021";
    let (s1, _, a) = f
        .send(
            reqwest::Method::POST,
            "/Patient",
            Some(&patient("01810700021", "Betinget")),
            &[("if-none-exist", cond)],
        )
        .await;
    let (s2, _, b) = f
        .send(
            reqwest::Method::POST,
            "/Patient",
            Some(&patient("01810700021", "Betinget")),
            &[("if-none-exist", cond)],
        )
        .await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(a["id"], b["id"]);
    let (_, found) = f.get(&format!("/Patient?{cond}")).await;
    assert_eq!(found["total"], 1);
}

#[tokio::test]
async fn search_by_every_supported_parameter_with_paging_sort_include_and_count() {
    let app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let p = f.create(&patient("01810700021", "Søkesen")).await;
    let pid = p["id"].as_str().unwrap();
    let other = f.create(&patient("01810700110", "Annensen")).await;
    for (i, day) in [
        "2026-01-05",
        "2026-02-10",
        "2026-03-15",
        "2026-04-20",
        "2026-05-25",
    ]
    .iter()
    .enumerate()
    {
        f.create(&heart_rate(pid, &format!("{day}T08:00:00Z"), 60 + i as i64))
            .await;
    }
    f.create(&heart_rate(
        other["id"].as_str().unwrap(),
        "2026-03-01T08:00:00Z",
        90,
    ))
    .await;
    let mut lab = heart_rate(pid, "2026-03-02T08:00:00Z", 1);
    lab["category"][0]["coding"][0]["code"] = json!("laboratory");
    lab["code"]["coding"][0] = json!({"system": "http://loinc.org", "code": "2345-7"});
    lab["status"] = json!("preliminary");
    let lab = f.create(&lab).await;
    assert!(
        lab["meta"]["security"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "lab-results")
    );

    async fn total(f: &Fhir<'_>, q: impl AsRef<str>) -> u64 {
        let q = q.as_ref();
        let (s, b) = f.get(q).await;
        assert_eq!(s, 200, "{q}: {b}");
        b["total"].as_u64().unwrap()
    }
    assert_eq!(total(&f, format!("/Observation?patient={pid}")).await, 6);
    assert_eq!(
        total(&f, format!("/Observation?subject=Patient/{pid}")).await,
        6
    );
    assert_eq!(
        total(
            &f,
            format!("/Observation?patient={pid}&code=http://loinc.org|8867-4")
        )
        .await,
        5
    );
    assert_eq!(
        total(&f, format!("/Observation?patient={pid}&code=8867-4")).await,
        5
    );
    assert_eq!(
        total(
            &f,
            format!("/Observation?patient={pid}&code=http://snomed.info/sct|8867-4")
        )
        .await,
        0
    );
    assert_eq!(
        total(
            &f,
            format!("/Observation?patient={pid}&category=laboratory")
        )
        .await,
        1
    );
    assert_eq!(
        total(&f, format!("/Observation?patient={pid}&status=preliminary")).await,
        1
    );
    assert_eq!(
        total(
            &f,
            format!("/Observation?patient={pid}&status=final,preliminary")
        )
        .await,
        6
    );
    assert_eq!(
        total(&f, format!("/Observation?patient={pid}&date=2026-03")).await,
        2
    );
    assert_eq!(
        total(&f, format!("/Observation?patient={pid}&date=ge2026-03-15")).await,
        3
    );
    assert_eq!(
        total(&f, format!("/Observation?patient={pid}&date=gt2026-03-15")).await,
        2
    );
    assert_eq!(
        total(&f, format!("/Observation?patient={pid}&date=lt2026-02-10")).await,
        1
    );
    assert_eq!(
        total(&f, format!("/Observation?patient={pid}&date=le2026-02-10")).await,
        2
    );
    assert_eq!(
        total(&f, format!("/Observation?patient={pid}&date=ne2026-03-15")).await,
        5
    );
    assert_eq!(
        total(
            &f,
            format!("/Observation?patient={pid}&date=ge2026-02&date=lt2026-04")
        )
        .await,
        3
    );
    assert_eq!(
        total(
            &f,
            format!("/Observation?_id={}", lab["id"].as_str().unwrap())
        )
        .await,
        1
    );
    assert_eq!(total(&f, "/Patient?identifier=01810700021").await, 1);
    assert_eq!(
        total(
            &f,
            format!("/Observation?patient={pid}&_lastUpdated=ge2020-01-01")
        )
        .await,
        6
    );
    assert_eq!(
        total(
            &f,
            format!("/Observation?patient={pid}&_lastUpdated=lt2020-01-01")
        )
        .await,
        0
    );

    // Paging: _count with next/previous links, sorted by date descending.
    let (_, page1) = f
        .get(&format!(
            "/Observation?patient={pid}&code=8867-4&_sort=-date&_count=2"
        ))
        .await;
    assert_eq!(page1["total"], 5);
    let entries = page1["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0]["resource"]["effectiveDateTime"],
        "2026-05-25T08:00:00Z"
    );
    let next = page1["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let path = next.split("/fhir/r4").nth(1).unwrap();
    let (_, page2) = f.get(path).await;
    assert_eq!(
        page2["entry"][0]["resource"]["effectiveDateTime"],
        "2026-03-15T08:00:00Z"
    );
    assert!(
        page2["link"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["relation"] == "previous")
    );
    let (_, asc) = f
        .get(&format!(
            "/Observation?patient={pid}&code=8867-4&_sort=date&_count=1"
        ))
        .await;
    assert_eq!(
        asc["entry"][0]["resource"]["effectiveDateTime"],
        "2026-01-05T08:00:00Z"
    );
    let (_, by_updated) = f
        .get(&format!(
            "/Observation?patient={pid}&_sort=-_lastUpdated&_count=1"
        ))
        .await;
    assert_eq!(by_updated["entry"][0]["resource"]["id"], lab["id"]);

    // _include the patient, _summary=count.
    let (_, inc) = f
        .get(&format!(
            "/Observation?patient={pid}&_include=Observation:patient&_count=3"
        ))
        .await;
    let modes: Vec<&str> = inc["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["search"]["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["match", "match", "match", "include"]);
    let (_, cnt) = f
        .get(&format!("/Observation?patient={pid}&_summary=count"))
        .await;
    assert_eq!(cnt["total"], 6);
    assert!(cnt.get("entry").is_none());

    // POST _search works like GET.
    let r = app
        .client
        .post(f.url("/Observation/_search"))
        .bearer_auth(&f.token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("patient={pid}&code=8867-4"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["total"], 5);
}

#[tokio::test]
async fn unknown_search_parameters_warn_by_default_and_fail_when_strict() {
    let app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let (s, b) = f.get("/Observation?nonsense=1").await;
    assert_eq!(s, 200);
    let outcome = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .unwrap();
    assert_eq!(outcome["resource"]["issue"][0]["severity"], "warning");
    assert!(outcome_text(&outcome["resource"]).contains("nonsense"));
    let (s, _, oo) = f
        .send(
            reqwest::Method::GET,
            "/Observation?nonsense=1",
            None,
            &[("prefer", "handling=strict")],
        )
        .await;
    assert_eq!(s, 400);
    assert!(outcome_text(&oo).contains("nonsense"));
    let (s, oo) = f.get("/Observation?date=yesterday").await;
    assert_eq!(s, 400);
    assert!(outcome_text(&oo).contains("not a date"));
}

#[tokio::test]
async fn a_transaction_is_all_or_nothing_and_resolves_references() {
    let app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let pat = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a";
    let mut obs = heart_rate("x", "2026-03-01T10:00:00+01:00", 72);
    obs["subject"]["reference"] = json!(pat);
    let mut p = patient("01810700021", "Transaksjonsen");
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pat, "resource": p.clone(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": obs.clone(), "request": {"method": "POST", "url": "Observation"}}
    ]});
    let (s, resp) = f.post("", &tx).await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(resp["type"], "transaction-response");
    let statuses: Vec<&str> = resp["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201 Created", "201 Created"]);
    let new_pid = resp["entry"][0]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        resp["entry"][1]["resource"]["subject"]["reference"],
        format!("Patient/{new_pid}")
    );

    // One bad entry: nothing of the bundle is written.
    p["identifier"][0]["value"] = json!("01810700110");
    p["name"][0]["family"] = json!("Halvveis");
    let mut bad = obs.clone();
    bad["subject"]["reference"] = json!("Patient/does-not-matter");
    bad["resourceType"] = json!("Medication");
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pat, "resource": p, "request": {"method": "POST", "url": "Patient"}},
        {"resource": bad, "request": {"method": "POST", "url": "Medication"}}
    ]});
    let (s, oo) = f.post("", &tx).await;
    assert_eq!(s, 404, "{oo}");
    assert!(outcome_text(&oo).contains("Bundle.entry[1]"), "{oo}");
    let (_, b) = f.get("/Patient?identifier=01810700110").await;
    assert_eq!(b["total"], 0, "a failed transaction left a patient behind");

    // A batch runs entries on their own.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient("01810700209", "Batchesen"), "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/nope"}},
        {"request": {"method": "GET", "url": format!("Patient/{new_pid}")}}
    ]});
    let (s, resp) = f.post("", &batch).await;
    assert_eq!(s, 200);
    let statuses: Vec<&str> = resp["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201 Created", "404", "200 OK"]);
}

#[tokio::test]
async fn bad_requests_get_operation_outcomes_and_write_nothing() {
    let app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let (_, before) = f.get("/Patient?_summary=count").await;
    let raw = |ct: &'static str, body: Vec<u8>| {
        app.client
            .post(f.url("/Patient"))
            .bearer_auth(&f.token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let cases: Vec<(&str, reqwest::Response, u16, &str)> = vec![
        (
            "xml",
            raw("application/fhir+xml", b"<Patient/>".to_vec())
                .await
                .unwrap(),
            415,
            "Content-Type",
        ),
        (
            "not utf-8",
            raw("application/fhir+json", vec![b'{', 0xff, b'}'])
                .await
                .unwrap(),
            400,
            "UTF-8",
        ),
        (
            "duplicate key",
            raw(
                "application/fhir+json",
                br#"{"resourceType":"Patient","gender":"male","gender":"female"}"#.to_vec(),
            )
            .await
            .unwrap(),
            400,
            "duplicate key",
        ),
        (
            "too deep",
            raw(
                "application/fhir+json",
                format!("{}{}", "[".repeat(60), "]".repeat(60)).into_bytes(),
            )
            .await
            .unwrap(),
            400,
            "nesting",
        ),
        (
            "wrong type",
            raw(
                "application/fhir+json",
                br#"{"resourceType":"Observation","status":"final"}"#.to_vec(),
            )
            .await
            .unwrap(),
            400,
            "URL is for Patient",
        ),
        (
            "no type",
            raw("application/fhir+json", br#"{"gender":"female"}"#.to_vec())
                .await
                .unwrap(),
            400,
            "resourceType",
        ),
        (
            "truncated",
            raw(
                "application/json",
                br#"{"resourceType":"Patient","#.to_vec(),
            )
            .await
            .unwrap(),
            400,
            "invalid JSON",
        ),
    ];
    for (what, r, status, needle) in cases {
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/fhir+json"),
            "{what}"
        );
        let oo: Value = r.json().await.unwrap();
        assert!(outcome_text(&oo).contains(needle), "{what}: {oo}");
    }
    let (s, oo) = f
        .post("/Medication", &json!({"resourceType": "Medication"}))
        .await;
    assert_eq!(s, 404);
    assert_eq!(oo["issue"][0]["code"], "not-supported");
    let (s, _) = f
        .post("/AuditEvent", &json!({"resourceType": "AuditEvent"}))
        .await;
    assert_eq!(s, 405);
    // The access log answers from the audit log, not from stored resources; an
    // integration has no access to it.
    let (s, b) = f.get("/AuditEvent").await;
    assert_eq!(
        (s, b["resourceType"].as_str()),
        (403, Some("OperationOutcome"))
    );
    // No token: 401 OperationOutcome.
    let r = app.client.get(f.url("/Patient")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["resourceType"],
        "OperationOutcome"
    );
    let (_, after) = f.get("/Patient?_summary=count").await;
    assert_eq!(
        after["total"], before["total"],
        "a refused write left something behind"
    );
}

#[tokio::test]
async fn another_tenants_resource_answers_404_like_a_missing_one() {
    let app = spawn_demo();
    let nordby = Fhir::new(&app, "integrasjon.epj");
    let sorby = Fhir::new(&app, "lege.sorby");
    let p = nordby.create(&patient("01810700021", "Isolert")).await;
    let id = p["id"].as_str().unwrap();
    let (s1, a) = sorby.get(&format!("/Patient/{id}")).await;
    let (s2, b) = sorby
        .get("/Patient/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!((s1, s2), (404, 404));
    assert_eq!(a["issue"][0]["code"], b["issue"][0]["code"]);
    let (_, found) = sorby.get("/Patient?identifier=01810700021").await;
    assert_eq!(found["total"], 0);
    let mut upd = p.clone();
    upd["gender"] = json!("male");
    // Sørby cannot overwrite it either: the id does not exist there, and its physician has
    // no care relationship with a patient it would create.
    let (s, oo) = sorby.put(&format!("/Patient/{id}"), &upd).await;
    assert_eq!(s, 403, "{oo}");
    assert_eq!(
        nordby.get(&format!("/Patient/{id}")).await.1["gender"],
        "female"
    );
}

#[tokio::test]
async fn the_database_files_never_hold_resource_content_in_clear() {
    let app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let marker = "Zyxwvutsrq Unikmarkør";
    let mut p = patient("01810700021", "Klartekstsjekk");
    p["name"][0]["text"] = json!(marker);
    let p = f.create(&p).await;
    let note = json!({
        "resourceType": "Condition",
        "subject": {"reference": format!("Patient/{}", p["id"].as_str().unwrap())},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "F32.1", "display": "Moderate depressive episode"}], "text": "Qwertzuiop diagnose"},
        "note": [{"text": "Asdfghjkl notat om pasienten"}]
    });
    let cond = f.create(&note).await;
    assert!(
        cond["meta"]["security"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "mental-health")
    );
    let needles = [
        "Zyxwvutsrq",
        "Klartekstsjekk",
        "01810700021",
        "Qwertzuiop",
        "Asdfghjkl",
        "F32.1",
        "depressive",
        "8867-4",
    ];
    let mut files = 0;
    for entry in std::fs::read_dir(&app.dir)
        .unwrap()
        .chain(std::fs::read_dir(app.dir.join("keys")).unwrap())
    {
        let path = entry.unwrap().path();
        if !path.is_file() || path.extension().is_some_and(|e| e == "json") {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "'{n}' in clear in {}",
                path.display()
            );
        }
    }
    assert!(
        files >= 4,
        "expected the database, its WAL and the keyring files"
    );
}

#[tokio::test]
async fn a_tenant_rule_puts_a_resource_in_another_category() {
    let app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let p = f.create(&patient("01810700021", "Kategorisen")).await;
    let mut phq = heart_rate(p["id"].as_str().unwrap(), "2026-03-01T08:00:00Z", 1);
    phq["code"]["coding"][0] =
        json!({"system": "http://loinc.org", "code": "44249-1", "display": "PHQ-9"});
    phq["category"][0]["coding"][0]["code"] = json!("survey");
    let before = f.create(&phq).await;
    let label = |v: &Value| {
        v["meta"]["security"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["system"] == "https://tillit.no/fhir/CodeSystem/category")
            .unwrap()["code"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(label(&before), "clinical-notes");
    let rules = app.dir.join("rules.json");
    std::fs::write(&rules, r#"[{"resource_type": "Observation", "system": "http://loinc.org", "code_prefix": "44249-1", "category": "mental-health"}]"#).unwrap();
    stdout(&app.admin(&[
        "categories",
        "set",
        "--tenant",
        "Nordby kommune",
        "--file",
        rules.to_str().unwrap(),
    ]));
    let listed = stdout(&app.admin(&["categories", "list", "--tenant", "Nordby kommune"]));
    assert!(
        listed
            .lines()
            .next()
            .unwrap()
            .starts_with("tenant\tObservation\thttp://loinc.org\t44249-1*\tmental-health"),
        "{listed}"
    );
    assert_eq!(label(&f.create(&phq).await), "mental-health");
    std::fs::write(&rules, r#"[{"category": "secret"}]"#).unwrap();
    let out = app.admin(&[
        "categories",
        "set",
        "--tenant",
        "Nordby kommune",
        "--file",
        rules.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown category 'secret'"));
}
