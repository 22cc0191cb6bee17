//! The audit log end to end: events for reads and searches, signed checkpoints and proofs
//! checked by the client, `tillit audit verify` on intact and tampered copies, and a
//! request that fails closed when the log cannot be written.

use crate::fhir::Fhir;
use crate::helpers::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::path::Path;
use tillit_audit::merkle::{self, Hash};
use tillit_audit::{Checkpoint, CheckpointVerifier};

fn tenant_of(app: &TestApp, user: &str) -> String {
    app.user(user)["tenant_id"].as_str().unwrap().to_string()
}

fn hash(v: &Value) -> Hash {
    B64.decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(hash).collect()
}

async fn text(app: &TestApp, path: &str) -> (u16, String) {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn json_at(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

/// The latest checkpoint, verified with the published key.
async fn checkpoint(app: &TestApp, tenant: &str) -> Checkpoint {
    let (s, key) = text(app, "/audit/key").await;
    assert_eq!(s, 200);
    let verifier = CheckpointVerifier::parse(key.trim()).unwrap();
    let (s, note) = text(app, &format!("/audit/{tenant}/checkpoint")).await;
    assert_eq!(s, 200, "{note}");
    let cp = verifier.verify(&note).unwrap();
    assert_eq!(cp.origin, format!("tillit.localhost/audit/{tenant}"));
    cp
}

fn verify_cli(dir: &Path) -> (bool, String) {
    let o = std::process::Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn db(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join("tillit.db")).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c
}

#[tokio::test]
async fn reads_are_logged_and_checkpoints_and_proofs_verify() {
    let app = spawn_demo();
    let tenant = tenant_of(&app, "lege.lund");
    let lege = Fhir::new(&app, "lege.lund");
    let patient = app.user("lege.lund")["patients"][0]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = lege.get(&format!("/Patient/{patient}")).await;
    assert_eq!(s, 200);
    let (s, _) = lege.get(&format!("/Observation?patient={patient}")).await;
    assert_eq!(s, 200);

    let first = checkpoint(&app, &tenant).await;
    assert!(
        first.size >= 3,
        "token uses, a read and a search: {}",
        first.size
    );
    // The newest leaf is in the tree the checkpoint signs.
    let leaf = first.size - 1;
    let (s, p) = json_at(
        &app,
        &format!(
            "/audit/{tenant}/proof/inclusion?leaf={leaf}&size={}",
            first.size
        ),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    merkle::verify_inclusion(
        leaf,
        first.size,
        &hash(&p["leaf_hash"]),
        &hashes(&p["hashes"]),
        &first.root,
    )
    .unwrap();

    // More reads; the next checkpoint extends the first, as its consistency proof shows.
    for _ in 0..5 {
        lege.get(&format!("/Patient/{patient}")).await;
    }
    let second = checkpoint(&app, &tenant).await;
    assert!(second.size > first.size);
    let (s, c) = json_at(
        &app,
        &format!(
            "/audit/{tenant}/proof/consistency?from={}&to={}",
            first.size, second.size
        ),
    )
    .await;
    assert_eq!(s, 200, "{c}");
    merkle::verify_consistency(
        first.size,
        second.size,
        &first.root,
        &second.root,
        &hashes(&c["hashes"]),
    )
    .unwrap();

    // Bad parameters are refused with a reason; an unknown tenant is not found.
    let (s, e) = json_at(
        &app,
        &format!("/audit/{tenant}/proof/inclusion?leaf=x&size=2"),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("leaf"),
        "{e}"
    );
    let (s, _) = json_at(
        &app,
        &format!(
            "/audit/{tenant}/proof/consistency?from=5&to={}",
            second.size + 1000
        ),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = text(
        &app,
        "/audit/00000000-0000-4000-8000-000000000000/checkpoint",
    )
    .await;
    assert_eq!(s, 404);

    // A security officer signs one on demand.
    let so = app.session("sikkerhet.moe").await;
    let r = app
        .client
        .post(app.url(&format!("/audit/{tenant}/checkpoint")))
        .headers(so.headers())
        .header("x-csrf-token", so.csrf())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A clinician may not.
    let r = app
        .client
        .post(app.url(&format!("/audit/{tenant}/checkpoint")))
        .bearer_auth(&lege.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The whole log verifies while the server runs.
    let (ok, out) = verify_cli(&app.dir);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("tenant {tenant}:")) && out.contains(": ok"),
        "{out}"
    );
}

#[tokio::test]
async fn an_edit_a_deletion_a_reorder_and_a_forged_checkpoint_are_each_caught() {
    let mut app = spawn_demo();
    app.keep_dir();
    let tenant = tenant_of(&app, "lege.lund");
    let lege = Fhir::new(&app, "lege.lund");
    let patient = app.user("lege.lund")["patients"][0]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..6 {
        lege.get(&format!("/Patient/{patient}")).await;
    }
    let cp = checkpoint(&app, &tenant).await;
    let n = cp.size;
    assert!(n > 8);

    // A proof check catches an edit made behind the server's back: the leaf it serves no
    // longer leads to the signed root.
    let conn = db(&app.dir);
    conn.execute_batch("DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;")
        .unwrap();
    let original: Vec<u8> = conn
        .query_row(
            "SELECT payload_hash FROM audit_events WHERE tenant_id = ?1 AND seq = 3",
            [&tenant],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE audit_events SET payload_hash = zeroblob(32) WHERE tenant_id = ?1 AND seq = 3",
        [&tenant],
    )
    .unwrap();
    let (s, p) = json_at(
        &app,
        &format!("/audit/{tenant}/proof/inclusion?leaf=3&size={n}"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        merkle::verify_inclusion(
            3,
            n,
            &hash(&p["leaf_hash"]),
            &hashes(&p["hashes"]),
            &cp.root
        )
        .is_err()
    );
    let (ok, out) = verify_cli(&app.dir);
    assert!(!ok);
    assert!(out.contains("entry 3 was changed"), "{out}");
    conn.execute(
        "UPDATE audit_events SET payload_hash = ?2 WHERE tenant_id = ?1 AND seq = 3",
        rusqlite::params![&tenant, original],
    )
    .unwrap();
    drop(conn);
    let dir = app.dir.clone();
    drop(app);
    let (ok, out) = verify_cli(&dir);
    assert!(ok, "restored: {out}");

    // Each tampering on its own copy of the data dir.
    let copy = |tag: &str| {
        let to = tempdir(tag);
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", dir.display()))
            .arg(&to)
            .status()
            .unwrap();
        assert!(status.success());
        let c = db(&to);
        (to, c)
    };

    // An edit of the sealed payload.
    let (d, c) = copy("edit");
    let mut payload: Vec<u8> = c
        .query_row(
            "SELECT payload FROM audit_events WHERE tenant_id = ?1 AND seq = 5",
            [&tenant],
            |r| r.get(0),
        )
        .unwrap();
    payload[20] ^= 1;
    c.execute(
        "UPDATE audit_events SET payload = ?2 WHERE tenant_id = ?1 AND seq = 5",
        rusqlite::params![&tenant, payload],
    )
    .unwrap();
    let (ok, out) = verify_cli(&d);
    assert!(!ok);
    assert!(out.contains("entry 5 was changed"), "{out}");

    // A deletion.
    let (d, c) = copy("delete");
    c.execute(
        "DELETE FROM audit_events WHERE tenant_id = ?1 AND seq = 4",
        [&tenant],
    )
    .unwrap();
    let (ok, out) = verify_cli(&d);
    assert!(!ok);
    assert!(out.contains("entry 4 is missing"), "{out}");

    // A reorder: two entries swap places in storage.
    let (d, c) = copy("reorder");
    c.execute_batch(&format!(
        "UPDATE audit_events SET seq = -1 WHERE tenant_id = '{tenant}' AND seq = 2;
         UPDATE audit_events SET seq = 2 WHERE tenant_id = '{tenant}' AND seq = 6;
         UPDATE audit_events SET seq = 6 WHERE tenant_id = '{tenant}' AND seq = -1;"
    ))
    .unwrap();
    // Swapping the sequence numbers swaps the rows' order: row of 2 now comes after 6's.
    let (ok, out) = verify_cli(&d);
    assert!(!ok);
    assert!(out.contains("entry 6 is out of order"), "{out}");

    // A forged checkpoint: a root the log never had, signed by another key of the same name.
    let (d, c) = copy("forged");
    let forger = tillit_audit::CheckpointSigner::from_seed(
        "tillit.localhost/audit",
        &zeroize::Zeroizing::new([7u8; 32]),
    )
    .unwrap();
    let note = forger.sign(&Checkpoint {
        origin: format!("tillit.localhost/audit/{tenant}"),
        size: 2,
        root: [9; 32],
    });
    c.execute(
        "INSERT INTO audit_checkpoints (tenant_id, size, at, note) VALUES (?1, 2, 0, ?2)",
        rusqlite::params![&tenant, note],
    )
    .unwrap();
    let (ok, out) = verify_cli(&d);
    assert!(!ok);
    assert!(out.contains("bad signature"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_request_fails_closed_when_the_log_cannot_be_written() {
    let app = spawn_demo();
    let lege = Fhir::new(&app, "lege.lund");
    let patient = app.user("lege.lund")["patients"][0]
        .as_str()
        .unwrap()
        .to_string();
    let (s, before) = lege.get(&format!("/Patient/{patient}")).await;
    assert_eq!(s, 200);
    let name = before["name"][0]["family"].as_str().unwrap().to_string();

    // Reads cannot be logged: the read is decided and loaded, then dropped for a 503.
    let conn = db(&app.dir);
    conn.execute_batch(
        "CREATE TRIGGER unwritable BEFORE INSERT ON audit_events
         WHEN NEW.action IN ('read', 'search', 'create')
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    let r = app
        .client
        .get(app.url(&format!("/fhir/r4/Patient/{patient}")))
        .bearer_auth(&lege.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("OperationOutcome"), "{body}");
    assert!(
        !body.contains(&name) && !body.contains("\"Patient\""),
        "{body}"
    );
    let (s, b) = lege.get(&format!("/Observation?patient={patient}")).await;
    assert_eq!(s, 503);
    assert_eq!(b["resourceType"], "OperationOutcome");

    // A write whose decision cannot be logged is not made.
    let obs = json!({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "identifier": [{"system": "urn:test", "value": "fail-closed-1"}],
        "valueQuantity": {"value": 71, "unit": "/min"}
    });
    let (s, _, b) = lege
        .send(reqwest::Method::POST, "/Observation", Some(&obs), &[])
        .await;
    assert_eq!(s, 503, "{b}");

    // With every insert refused, even authentication (a token use is an event) fails closed.
    conn.execute_batch(
        "DROP TRIGGER unwritable;
         CREATE TRIGGER unwritable BEFORE INSERT ON audit_events
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    let (s, b) = lege.get(&format!("/Patient/{patient}")).await;
    assert_eq!(s, 503, "{b}");
    assert!(!b.to_string().contains(&name));

    // Once the log is writable again, so is everything else, and the refused write is absent.
    conn.execute_batch("DROP TRIGGER unwritable;").unwrap();
    let (s, _) = lege.get(&format!("/Patient/{patient}")).await;
    assert_eq!(s, 200);
    let (s, b) = lege
        .get("/Observation?identifier=urn:test|fail-closed-1")
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["total"], 0, "{b}");
    let (ok, out) = verify_cli(&app.dir);
    assert!(ok, "{out}");
}

fn entries(b: &Value) -> Vec<Value> {
    b["entry"]
        .as_array()
        .map(|a| a.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_patient_reads_who_looked_at_the_record_and_why() {
    let app = spawn_demo();
    let me = app.user("astrid.haugland")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    let patient = Fhir::new(&app, "astrid.haugland");
    let (s, b) = patient.get("/AuditEvent").await;
    assert_eq!(s, 200, "{b}");
    let before = entries(&b).len();

    // A clinician in her care reads her record.
    let reader = ["lege.lund", "sykepleier.dahl", "sykepleier.haugen"]
        .into_iter()
        .find(|u| {
            app.user(u)["patients"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == &me)
        })
        .expect("someone has Astrid in their care");
    let staff = Fhir::new(&app, reader);
    assert_eq!(staff.get(&format!("/Patient/{me}")).await.0, 200);
    assert_eq!(
        staff
            .get(&format!("/Observation?patient={me}&_count=5"))
            .await
            .0,
        200
    );
    let (_, b) = patient.get(&format!("/AuditEvent?patient={me}")).await;
    let log = entries(&b);
    assert!(log.len() >= before + 2, "{b}");
    let read = log
        .iter()
        .find(|e| e["subtype"][1]["code"] == "read")
        .unwrap();
    let agent = &read["agent"][0];
    assert_eq!(
        agent["who"]["reference"],
        format!(
            "Practitioner/{}",
            app.user(reader)["person_id"].as_str().unwrap()
        )
    );
    assert!(agent["who"]["display"].as_str().is_some(), "{read}");
    assert!(agent["role"][0]["text"].as_str().is_some(), "{read}");
    assert!(agent["location"]["display"].as_str().is_some(), "{read}");
    assert_eq!(read["purposeOfEvent"][0]["coding"][1]["code"], "TREAT");
    assert_eq!(read["outcome"], "0");
    assert_eq!(
        read["entity"][0]["what"]["reference"],
        format!("Patient/{me}")
    );
    assert!(
        read["meta"]["profile"][0]
            .as_str()
            .unwrap()
            .contains("PatientRead")
    );
    let search = log
        .iter()
        .find(|e| e["subtype"][1]["code"] == "search")
        .unwrap();
    assert_eq!(search["entity"][1]["name"], "Observation");
    assert_eq!(search["entity"][1]["detail"][0]["valueString"], "5");

    // Emergency access by a physician outside her care shows with its reason.
    let outsider = ["lege.lund", "sykepleier.dahl", "sykepleier.haugen"]
        .into_iter()
        .find(|u| {
            !app.user(u)["patients"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == &me)
        })
        .unwrap();
    let er = Fhir::new(&app, outsider);
    assert_eq!(er.get(&format!("/Patient/{me}")).await.0, 403);
    let reason = "Funnet bevisstløs i hjemmet, trenger medisinliste";
    let body = json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": reason}]});
    let (s, p) = er
        .post(&format!("/Patient/{me}/$emergency-access"), &body)
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(er.get(&format!("/Patient/{me}")).await.0, 200);
    let (_, b) = patient.get("/AuditEvent").await;
    let log = entries(&b);
    let opened = log
        .iter()
        .find(|e| e["subtype"][0]["code"] == "emergency.opened")
        .unwrap();
    assert!(
        opened["outcomeDesc"].as_str().unwrap().contains(reason),
        "{opened}"
    );
    let emergency_read = log
        .iter()
        .find(|e| {
            e["subtype"][1]["code"] == "read"
                && e["purposeOfEvent"][0]["coding"][0]["code"] == "emergency"
        })
        .unwrap();
    assert_eq!(
        emergency_read["purposeOfEvent"][0]["coding"][1]["code"],
        "ETREAT"
    );
    assert!(
        emergency_read["purposeOfEvent"][0]["text"]
            .as_str()
            .unwrap()
            .contains(reason)
    );
    // The refused attempt before it is there too.
    assert!(log.iter().any(|e| e["outcome"] == "4"
        && e["agent"][0]["who"]["reference"]
            == format!(
                "Practitioner/{}",
                app.user(outsider)["person_id"].as_str().unwrap()
            )));

    // Each one verifies: its leaf is in the signed tree.
    let tenant = tenant_of(&app, "astrid.haugland");
    let cp = checkpoint(&app, &tenant).await;
    let seq: u64 = emergency_read["id"].as_str().unwrap().parse().unwrap();
    let leaf = hash(&emergency_read["extension"][0]["extension"][1]["valueBase64Binary"]);
    let (_, p) = json_at(
        &app,
        &format!(
            "/audit/{tenant}/proof/inclusion?leaf={seq}&size={}",
            cp.size
        ),
    )
    .await;
    assert_eq!(hash(&p["leaf_hash"]), leaf);
    merkle::verify_inclusion(seq, cp.size, &leaf, &hashes(&p["hashes"]), &cp.root).unwrap();

    // Only her own log; staff see their own accesses; the security officer sees all.
    let other = app.user("berit.solberg")["patient_id"].as_str().unwrap();
    assert_eq!(
        patient.get(&format!("/AuditEvent?patient={other}")).await.0,
        403
    );
    let (s, b) = staff.get("/AuditEvent").await;
    assert_eq!(s, 200);
    let mine = format!(
        "Practitioner/{}",
        app.user(reader)["person_id"].as_str().unwrap()
    );
    assert!(
        entries(&b)
            .iter()
            .all(|e| e["agent"][0]["who"]["reference"] == mine)
    );
    let someone = app.user(outsider)["person_id"].as_str().unwrap();
    assert_eq!(
        staff
            .get(&format!("/AuditEvent?agent=Practitioner/{someone}"))
            .await
            .0,
        403
    );
    let so = Fhir::new(&app, "sikkerhet.moe");
    let (s, b) = so
        .get(&format!(
            "/AuditEvent?agent=Practitioner/{someone}&outcome=4"
        ))
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(!entries(&b).is_empty());
    assert!(entries(&b).iter().all(|e| e["outcome"] == "4"));
    let (s, oo) = so.get("/AuditEvent?date=yesterday").await;
    assert_eq!(
        (s, oo["resourceType"].as_str()),
        (400, Some("OperationOutcome"))
    );
    // The security officer's look at her log is itself in her log.
    let (_, b) = so.get(&format!("/AuditEvent?patient={me}&_count=1")).await;
    assert_eq!(entries(&b).len(), 1);
    assert_eq!(b["link"][0]["relation"], "next");
    let (_, b) = patient.get("/AuditEvent?subtype=audit.search").await;
    assert!(!entries(&b).is_empty(), "{b}");
    // FHIR's search by POST gives the same answer.
    let r = app
        .client
        .post(app.url("/fhir/r4/AuditEvent/_search"))
        .bearer_auth(&patient.token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("subtype=audit.search&_count=2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert!(!entries(&b).is_empty(), "{b}");
    // Nobody writes the log through the API.
    let (s, _, _) = so
        .send(
            reqwest::Method::POST,
            "/AuditEvent",
            Some(&json!({"resourceType": "AuditEvent"})),
            &[],
        )
        .await;
    assert_eq!(s, 405);
}

async fn so_get(app: &TestApp, so: &Session, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(app.url(path))
        .headers(so.headers())
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

async fn so_send(
    app: &TestApp,
    so: &Session,
    method: reqwest::Method,
    path: &str,
    body: &Value,
    csrf: bool,
) -> (u16, Value) {
    let mut rb = app
        .client
        .request(method, app.url(path))
        .headers(so.headers())
        .json(body);
    if csrf {
        rb = rb.header("x-csrf-token", so.csrf());
    }
    let r = rb.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_emergency_access_raises_an_alert_that_the_security_officer_closes() {
    let app = spawn_demo();
    let lege = Fhir::new(&app, "lege.lund");
    let mine: Vec<Value> = app.user("lege.lund")["patients"]
        .as_array()
        .unwrap()
        .clone();
    let others: Vec<String> = app.user("sykepleier.dahl")["patients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !mine.contains(p))
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let p = &others[0];
    let reason = "Ringt av legevakten, pasienten er akutt syk";
    let body = json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": reason}]});
    assert_eq!(
        lege.post(&format!("/Patient/{p}/$emergency-access"), &body)
            .await
            .0,
        200
    );
    assert_eq!(lege.get(&format!("/Patient/{p}")).await.0, 200);

    let so = app.session("sikkerhet.moe").await;
    let (s, b) = so_get(&app, &so, "/admin/alerts").await;
    assert_eq!(s, 200, "{b}");
    let lund = app.user("lege.lund")["person_id"].as_str().unwrap();
    let alert = b["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "emergency" && a["patient"]["id"] == p.as_str())
        .unwrap_or_else(|| panic!("no emergency alert: {b}"))
        .clone();
    assert_eq!(alert["actor"]["id"], lund);
    assert!(alert["actor"]["name"].as_str().is_some());
    assert_eq!(alert["severity"], "high");
    assert_eq!(alert["status"], "open");
    let id = alert["id"].as_str().unwrap();
    let (s, d) = so_get(&app, &so, &format!("/admin/alerts/{id}")).await;
    assert_eq!(s, 200);
    assert!(
        d["event_details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "emergency.opened" && e["reason"] == reason),
        "{d}"
    );
    // Only the security officer sees the queue.
    let r = app
        .client
        .get(app.url("/admin/alerts"))
        .bearer_auth(&lege.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Closing it: CSRF, a reason, and a breach only for a deviation.
    let path = format!("/admin/alerts/{id}/decision");
    let deviation = json!({"decision": "deviation", "note": "Ingen behandlingsrelasjon, ikke akutt", "breach": true});
    assert_eq!(
        so_send(&app, &so, reqwest::Method::POST, &path, &deviation, false)
            .await
            .0,
        403
    );
    let (s, e) = so_send(
        &app,
        &so,
        reqwest::Method::POST,
        &path,
        &json!({"decision": "deviation", "note": "nei"}),
        true,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("why"),
        "{e}"
    );
    let (s, _) = so_send(
        &app,
        &so,
        reqwest::Method::POST,
        &path,
        &json!({"decision": "justified", "note": "Akutt, ok", "breach": true}),
        true,
    )
    .await;
    assert_eq!(s, 400);
    let (s, closed) = so_send(&app, &so, reqwest::Method::POST, &path, &deviation, true).await;
    assert_eq!(s, 200, "{closed}");
    assert_eq!(closed["status"], "deviation");
    assert_eq!(closed["breach"], true);
    let left = closed["breach_hours_left"].as_f64().unwrap();
    assert!((71.0..=72.0).contains(&left), "{closed}");
    assert_eq!(
        closed["decided_by"]["id"],
        app.user("sikkerhet.moe")["person_id"]
    );
    let (s, e) = so_send(
        &app,
        &so,
        reqwest::Method::POST,
        &path,
        &json!({"decision": "justified", "note": "Likevel ok"}),
        true,
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already closed")
    );
    let (_, b) = so_get(&app, &so, "/admin/alerts?status=deviation").await;
    assert!(
        b["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id)
    );
    let (_, b) = so_get(&app, &so, "/admin/alerts").await;
    assert!(
        !b["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id)
    );

    // The tenant's thresholds are data: a bad rule set is refused in place, a good one applies.
    let (s, r) = so_get(&app, &so, "/admin/review-rules").await;
    assert_eq!(s, 200);
    let mut rules = r["rules"].clone();
    for rule in rules["rules"].as_array_mut().unwrap() {
        if rule["id"] == "denied-bulk" {
            rule["kind"]["threshold"] = json!(0);
        }
    }
    let (s, e) = so_send(
        &app,
        &so,
        reqwest::Method::PUT,
        "/admin/review-rules",
        &rules,
        true,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("threshold"),
        "{e}"
    );
    for rule in rules["rules"].as_array_mut().unwrap() {
        if rule["id"] == "denied-bulk" {
            rule["kind"]["threshold"] = json!(3);
        }
    }
    let (s, e) = so_send(
        &app,
        &so,
        reqwest::Method::PUT,
        "/admin/review-rules",
        &rules,
        true,
    )
    .await;
    assert_eq!(s, 200, "{e}");
    for q in others.iter().skip(1).take(3) {
        assert_eq!(lege.get(&format!("/Patient/{q}")).await.0, 403);
    }
    let (_, b) = so_get(&app, &so, "/admin/alerts").await;
    assert!(
        b["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "denied-bulk" && a["actor"]["id"] == lund),
        "{b}"
    );
}

fn export_cli(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["audit", "export", "--data-dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_log_exports_as_json_lines_and_as_syslog_over_tls() {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::AsyncReadExt;
    let app = spawn_demo();
    let lege = Fhir::new(&app, "lege.lund");
    let patient = app.user("lege.lund")["patients"][0]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        lege.get(&format!("/Patient/{patient}")).await;
    }
    let tenant = tenant_of(&app, "lege.lund");

    // JSON lines of a period, to a file written whole.
    let out = app.dir.join("export.jsonl");
    let o = export_cli(
        &app.dir,
        &[
            "--tenant",
            "Nordby kommune",
            "--from",
            "2020-01-01",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 6);
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64())
    );
    assert!(lines.iter().all(|l| l["tenant"] == tenant.as_str()));
    assert!(
        lines
            .iter()
            .any(|l| l["action"] == "read" && l["patient"] == patient.as_str())
    );
    // A period in the future is empty; a backwards one is refused with a reason.
    let o = export_cli(&app.dir, &["--from", "2099-01-01"]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    let o = export_cli(&app.dir, &["--from", "2026-12-01", "--to", "2026-11-01"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--from must be before --to"));
    let o = export_cli(&app.dir, &["--from", "last week"]);
    assert!(!o.status.success());

    // RFC 5424 over TLS (RFC 5425 framing) to a receiver with the demo's certificate.
    let tls = app.dir.join("tls");
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(tls.join("server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(tls.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = acceptor.accept(tcp).await.unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all).await;
        all
    });
    let dir = app.dir.clone();
    let ca = app.creds["ca_cert"].as_str().unwrap().to_string();
    let o = tokio::task::spawn_blocking(move || {
        export_cli(
            &dir,
            &[
                "--tenant",
                "Nordby kommune",
                "--syslog-tls",
                &format!("localhost:{port}"),
                "--syslog-ca",
                &ca,
            ],
        )
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = String::from_utf8(receiver.await.unwrap()).unwrap();
    // Frames: "LEN SP MSG", one after another.
    let mut rest = raw.as_str();
    let mut messages = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_once(' ').unwrap();
        let len: usize = len.parse().unwrap();
        messages.push(&tail[..len]);
        rest = &tail[len..];
    }
    // The two exports before are themselves in the log now, and so in this one.
    assert_eq!(messages.len(), lines.len() + 2);
    assert!(messages.last().unwrap().contains("audit.export"));
    let first = messages[0];
    assert!(first.starts_with("<10"), "{first}");
    assert!(first.contains(" tillit - "), "{first}");
    assert!(
        first.contains(&format!("[tillit@32473 tenant=\"{tenant}\" seq=\"0\"")),
        "{first}"
    );
    let json_part = &first[first.find("] {").unwrap() + 2..];
    let v: Value = serde_json::from_str(json_part).unwrap();
    assert_eq!(v["seq"], 0);
    // A receiver whose certificate is not trusted is refused.
    let o = export_cli(
        &app.dir,
        &[
            "--syslog-tls",
            "localhost:1",
            "--syslog-ca",
            app.creds["ca_cert"].as_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
}
