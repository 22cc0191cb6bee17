//! The patient's rights over the FHIR API: correction (request, accept with provenance,
//! refuse with a reason), restriction of processing (GDPR art. 18: readable only by the
//! patient or under emergency access, never written, each access flagged and alerted) and
//! erasure (art. 17: what retention rules allow is erased, the rest kept under the tenant key,
//! the patient's key destroyed and recorded in the keyring's ledger, the audit log verifying).

use crate::fhir::{Fhir, heart_rate};
use crate::helpers::*;
use serde_json::{Value, json};

fn params(pairs: &[(&str, &str)]) -> Value {
    json!({
        "resourceType": "Parameters",
        "parameter": pairs.iter().map(|(n, v)| json!({"name": n, "valueString": v})).collect::<Vec<_>>()
    })
}

fn patient_of(app: &TestApp, user: &str) -> String {
    app.user(user)["patient_id"].as_str().unwrap().to_string()
}

fn condition(patient: &str, text: &str) -> Value {
    json!({
        "resourceType": "Condition",
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}], "text": text},
        "subject": {"reference": format!("Patient/{patient}")},
        "onsetDateTime": "2026-02-01"
    })
}

fn policy_of(outcome: &Value) -> String {
    outcome["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_patient_asks_for_a_correction_and_the_responsible_clinician_decides() {
    let app = spawn_demo();
    let me = patient_of(&app, "astrid.haugland");
    let lege = Fhir::new(&app, "lege.lund");
    let patient = Fhir::new(&app, "astrid.haugland");
    let obs = lege
        .create(&heart_rate(&me, "2026-03-01T08:00:00Z", 180))
        .await;
    let obs_id = obs["id"].as_str().unwrap();

    // The patient asks; the request is a Task in her record with the record's category.
    let ask = params(&[
        ("what-is-wrong", "Pulsen var 80, ikke 180"),
        ("should-say", "80 slag i minuttet"),
    ]);
    let (s, task) = patient
        .post(&format!("/Observation/{obs_id}/$request-correction"), &ask)
        .await;
    assert_eq!(s, 201, "{task}");
    assert_eq!(task["status"], "requested");
    assert_eq!(task["code"]["coding"][0]["code"], "change");
    assert_eq!(task["focus"]["reference"], format!("Observation/{obs_id}"));
    assert_eq!(task["for"]["reference"], format!("Patient/{me}"));
    assert!(
        task["meta"]["security"]
            .to_string()
            .contains("measurements"),
        "{task}"
    );
    let task_id = task["id"].as_str().unwrap().to_string();

    // Nobody else asks on her behalf, and she asks only about her own record.
    let kari = Fhir::new(&app, "kari.haugland");
    let (s, _) = kari
        .post(&format!("/Observation/{obs_id}/$request-correction"), &ask)
        .await;
    assert_eq!(s, 403);
    let berit = Fhir::new(&app, "berit.solberg");
    let (s, _) = berit
        .post(&format!("/Observation/{obs_id}/$request-correction"), &ask)
        .await;
    assert!(s == 403 || s == 404, "{s}");
    let (s, oo) = patient
        .post(
            &format!("/Observation/{obs_id}/$request-correction"),
            &params(&[("should-say", "x")]),
        )
        .await;
    assert_eq!(s, 400, "{oo}");

    // The clinician finds the open requests of her patients.
    let (s, open) = lege
        .get("/Task?status=requested&code=http://hl7.org/fhir/CodeSystem/task-code|change")
        .await;
    assert_eq!(s, 200, "{open}");
    assert!(open.to_string().contains(&task_id), "{open}");
    // A secretary (demographics and appointments only) does not even see it; a clinician
    // without a care relationship may not decide it.
    let berg = Fhir::new(&app, "sekretaer.berg");
    assert_eq!(berg.get(&format!("/Task/{task_id}")).await.0, 403);
    let dahl = Fhir::new(&app, "sykepleier.dahl");
    let (s, _) = dahl
        .post(
            &format!("/Task/{task_id}/$accept-correction"),
            &params(&[("note", "Rettet")]),
        )
        .await;
    assert_eq!(s, 403);

    // Accepted: a new version of the record, a Provenance, the Task completed.
    let (s, done) = lege
        .post(
            &format!("/Task/{task_id}/$accept-correction"),
            &params(&[
                ("note", "Rettet etter pasientens ønske: 80 slag i minuttet"),
                ("reason", "Feilregistrering"),
            ]),
        )
        .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["businessStatus"]["text"], "accepted");
    let (s, now) = lege.get(&format!("/Observation/{obs_id}")).await;
    assert_eq!(s, 200);
    assert_eq!(now["meta"]["versionId"], "2");
    assert!(now["note"].to_string().contains("80 slag"), "{now}");
    let prov_ref = done["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"]["coding"][0]["code"] == "provenance")
        .unwrap()["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, prov) = lege.get(&format!("/{prov_ref}")).await;
    assert_eq!(s, 200, "{prov}");
    assert_eq!(
        prov["target"][0]["reference"],
        format!("Observation/{obs_id}/_history/2")
    );
    assert_eq!(prov["reason"][0]["coding"][0]["code"], "PATRQT");
    assert_eq!(
        prov["entity"][0]["what"]["reference"],
        format!("Task/{task_id}")
    );
    let lund = app.user("lege.lund")["person_id"].as_str().unwrap();
    assert_eq!(
        prov["agent"][0]["who"]["reference"],
        format!("Practitioner/{lund}")
    );
    // Decided once.
    let (s, _) = lege
        .post(
            &format!("/Task/{task_id}/$reject-correction"),
            &params(&[("reason", "x")]),
        )
        .await;
    assert_eq!(s, 409);

    // The patient sees the outcome, and the Provenance in her record.
    let (s, seen) = patient.get(&format!("/Task/{task_id}")).await;
    assert_eq!(s, 200);
    assert_eq!(seen["status"], "completed");
    let (s, provs) = patient
        .get(&format!("/Provenance?patient=Patient/{me}"))
        .await;
    assert_eq!(s, 200);
    assert!(provs.to_string().contains(&task_id), "{provs}");

    // Refused, with the reason she reads.
    let (s, t2) = patient
        .post(
            &format!("/Observation/{obs_id}/$request-correction"),
            &params(&[("what-is-wrong", "Det var en annen dag")]),
        )
        .await;
    assert_eq!(s, 201);
    let t2 = t2["id"].as_str().unwrap();
    let (s, oo) = lege
        .post(
            &format!("/Task/{t2}/$reject-correction"),
            &json!({"resourceType": "Parameters", "parameter": []}),
        )
        .await;
    assert_eq!(s, 400, "a refusal needs a reason: {oo}");
    let (s, r) = lege
        .post(
            &format!("/Task/{t2}/$reject-correction"),
            &params(&[("reason", "Målingen er kontrollert mot apparatets logg")]),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, seen) = patient.get(&format!("/Task/{t2}")).await;
    assert_eq!(seen["status"], "rejected");
    assert_eq!(
        seen["statusReason"]["text"],
        "Målingen er kontrollert mot apparatets logg"
    );
    // The record is unchanged by the refusal.
    assert_eq!(
        lege.get(&format!("/Observation/{obs_id}")).await.1["meta"]["versionId"],
        "2"
    );

    // A whole corrected resource is accepted too (the record system's way).
    let (_, t3) = patient
        .post(
            &format!("/Observation/{obs_id}/$request-correction"),
            &params(&[("what-is-wrong", "Verdien skal være 80")]),
        )
        .await;
    let t3 = t3["id"].as_str().unwrap();
    let mut corrected = heart_rate(&me, "2026-03-01T08:00:00Z", 80);
    corrected["id"] = json!(obs_id);
    let body = json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": corrected}]});
    let (s, r) = lege
        .post(&format!("/Task/{t3}/$accept-correction"), &body)
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, now) = lege.get(&format!("/Observation/{obs_id}")).await;
    assert_eq!(now["valueQuantity"]["value"], 80);
    assert_eq!(now["meta"]["versionId"], "3");
}

#[tokio::test]
async fn a_restricted_record_is_read_only_by_the_patient_or_in_an_emergency_and_each_access_is_flagged()
 {
    let app = spawn_demo();
    let me = patient_of(&app, "astrid.haugland");
    let lege = Fhir::new(&app, "lege.lund");
    let haugen = Fhir::new(&app, "sykepleier.haugen");
    let patient = Fhir::new(&app, "astrid.haugland");
    let obs = lege
        .create(&heart_rate(&me, "2026-03-02T08:00:00Z", 72))
        .await;
    let id = obs["id"].as_str().unwrap();
    let path = format!("/Observation/{id}");
    assert_eq!(haugen.get(&path).await.0, 200);

    // Only the patient restricts her own record.
    assert_eq!(
        lege.post(&format!("{path}/$restrict"), &params(&[]))
            .await
            .0,
        403
    );
    let (s, r) = patient
        .post(
            &format!("{path}/$restrict"),
            &params(&[("reason", "Jeg bestrider at målingen er riktig")]),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["parameter"][1]["valueBoolean"], true);

    // Refused to her clinicians (and left out of their searches), never written.
    let (s, oo) = haugen.get(&path).await;
    assert_eq!(s, 403);
    assert!(policy_of(&oo).contains("platform.restricted"), "{oo}");
    let (s, found) = haugen
        .get(&format!("/Observation?patient=Patient/{me}&_count=1000"))
        .await;
    assert_eq!(s, 200);
    assert!(
        !found.to_string().contains(id),
        "a restricted record in a search"
    );
    let mut changed = obs.clone();
    changed["valueQuantity"]["value"] = json!(73);
    let (s, oo) = lege.put(&path, &changed).await;
    assert_eq!(s, 403, "{oo}");
    // The patient reads it.
    assert_eq!(patient.get(&path).await.0, 200);

    // Emergency access is the legal exception: read, still not written.
    let emergency = params(&[("reason", "Pasienten er akutt syk og trenger vurdering")]);
    let (s, _) = lege
        .post(&format!("/Patient/{me}/$emergency-access"), &emergency)
        .await;
    assert_eq!(s, 200);
    let (s, read) = lege.get(&path).await;
    assert_eq!(s, 200, "{read}");
    assert_eq!(lege.put(&path, &changed).await.0, 403);

    // The security officer is alerted to the access to a restricted record.
    let so = app.session("sikkerhet.moe").await;
    let r = app
        .client
        .get(app.url("/admin/alerts"))
        .headers(so.headers())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let alerts: Value = r.json().await.unwrap();
    let lund = app.user("lege.lund")["person_id"].as_str().unwrap();
    let alert = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "restricted-record")
        .unwrap_or_else(|| panic!("no restricted-record alert: {alerts}"));
    assert_eq!(alert["actor"]["id"], lund);
    assert_eq!(alert["patient"]["id"], me.as_str());
    assert_eq!(alert["severity"], "high");

    // The patient's own log shows the flagged read.
    let (s, log) = patient
        .get(&format!("/AuditEvent?patient=Patient/{me}&_count=200"))
        .await;
    assert_eq!(s, 200);
    let flagged = log["entry"].as_array().unwrap().iter().any(|e| {
        let agent = &e["resource"]["agent"][0];
        agent["who"]["reference"] == format!("Practitioner/{lund}")
            && agent["policy"].to_string().contains("platform.restricted")
    });
    assert!(
        flagged,
        "the emergency read is not flagged in her log: {log}"
    );

    // Lifted by her: the clinicians read and write it again.
    let (s, _) = patient
        .post(&format!("{path}/$lift-restriction"), &params(&[]))
        .await;
    assert_eq!(s, 200);
    assert_eq!(haugen.get(&path).await.0, 200);
    assert_eq!(lege.put(&path, &changed).await.0, 200);
    let (s, _) = patient
        .post(&format!("{path}/$lift-restriction"), &params(&[]))
        .await;
    assert_eq!(s, 404, "nothing to lift");

    // Restriction and lifting are security events about the patient.
    let ev = events(&app.dir);
    let kinds: Vec<&str> = ev.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(
        kinds.iter().filter(|k| **k == "record.restricted").count() >= 2,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn erasure_removes_what_retention_allows_destroys_the_key_and_the_log_still_verifies() {
    let app = spawn_demo();
    let me = patient_of(&app, "astrid.haugland");
    let tenant = app.user("astrid.haugland")["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let lege = Fhir::new(&app, "lege.lund");
    let patient = Fhir::new(&app, "astrid.haugland");
    let admin = Fhir::new(&app, "admin.nilsen");
    let pulse = lege
        .create(&heart_rate(&me, "2026-03-03T08:00:00Z", 64))
        .await;
    let pulse_id = pulse["id"].as_str().unwrap().to_string();
    let note = lege.create(&condition(&me, "Hypertensjon")).await;
    let note_id = note["id"].as_str().unwrap().to_string();

    // She asks; she and the admin see the plan (kept by law vs erased).
    let (s, req) = patient
        .post(
            &format!("/Patient/{me}/$request-erasure"),
            &params(&[(
                "note",
                "Jeg har flyttet og vil ha slettet det som kan slettes",
            )]),
        )
        .await;
    assert_eq!(s, 201, "{req}");
    let req_id = req["id"].as_str().unwrap().to_string();
    let other = patient_of(&app, "berit.solberg");
    assert_eq!(
        patient
            .post(&format!("/Patient/{other}/$request-erasure"), &params(&[]))
            .await
            .0,
        403
    );
    let (s, plan) = patient.get(&format!("/Patient/{me}/$erasure-plan")).await;
    assert_eq!(s, 200, "{plan}");
    let part = |name: &str| -> Value {
        plan["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["part"]
            .clone()
    };
    assert!(part("erase").to_string().contains("measurements"), "{plan}");
    assert!(
        part("keep").to_string().contains("clinical-notes"),
        "{plan}"
    );
    assert_eq!(
        lege.get(&format!("/Patient/{me}/$erasure-plan")).await.0,
        403
    );

    // Only a tenant admin erases, with a reason.
    let order = params(&[
        (
            "reason",
            "Pasientens krav om sletting, vurdert mot journalplikten",
        ),
        ("request", &req_id),
    ]);
    assert_eq!(
        lege.post(&format!("/Patient/{me}/$erase"), &order).await.0,
        403
    );
    assert_eq!(
        admin
            .post(&format!("/Patient/{me}/$erase"), &params(&[]))
            .await
            .0,
        400
    );
    let (s, done) = admin.post(&format!("/Patient/{me}/$erase"), &order).await;
    assert_eq!(s, 200, "{done}");
    assert!(done.to_string().contains("\"key-destroyed\""), "{done}");

    // The measurement is gone; the note is kept, readable by her clinician and by her.
    assert_eq!(lege.get(&format!("/Observation/{pulse_id}")).await.0, 404);
    let (s, kept) = lege.get(&format!("/Condition/{note_id}")).await;
    assert_eq!(s, 200, "{kept}");
    assert_eq!(kept["code"]["text"], "Hypertensjon");
    assert_eq!(patient.get(&format!("/Condition/{note_id}")).await.0, 200);
    let (s, found) = lege
        .get(&format!("/Observation?patient=Patient/{me}&_count=1000"))
        .await;
    assert_eq!(s, 200);
    assert!(!found.to_string().contains(&pulse_id));
    // Her request shows the outcome.
    let (s, seen) = patient.get(&format!("/Task/{req_id}")).await;
    assert_eq!(s, 200, "{seen}");
    assert_eq!(seen["status"], "completed");
    let out = |code: &str| {
        seen["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["type"]["coding"][0]["code"] == code)
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        out("erased")["valueInteger"].as_u64().unwrap() >= 1,
        "{seen}"
    );
    assert!(out("kept")["valueInteger"].as_u64().unwrap() >= 1, "{seen}");
    assert!(
        out("summary")["valueString"]
            .as_str()
            .unwrap()
            .contains("Erased"),
        "{seen}"
    );

    // Her key is destroyed and the erasure is in the keyring's ledger; nothing sealed under
    // her key is left in the database.
    let keys = rusqlite::Connection::open(app.dir.join("keys/keyring.db")).unwrap();
    let (n_keys, n_ledger): (i64, i64) = (
        keys.query_row(
            "SELECT count(*) FROM keys WHERE id = ?1",
            [format!("patient/{tenant}/{me}")],
            |r| r.get(0),
        )
        .unwrap(),
        keys.query_row(
            "SELECT count(*) FROM erasures WHERE tenant_id = ?1 AND patient_id = ?2",
            [&tenant, &me],
            |r| r.get(0),
        )
        .unwrap(),
    );
    assert_eq!((n_keys, n_ledger), (0, 1));
    drop(keys);
    let db = rusqlite::Connection::open(app.dir.join("tillit.db")).unwrap();
    let sealed: i64 = db
        .query_row(
            "SELECT count(*) FROM resource_versions WHERE patient_id = ?1 AND key_scope = 'patient' AND body IS NOT NULL",
            [&me],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sealed, 0);
    let gone: i64 = db
        .query_row(
            "SELECT count(*) FROM resource_versions WHERE id = ?1",
            [&pulse_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(gone, 0);
    drop(db);

    // Care goes on: a new record is written (under the tenant key, never a new key of hers).
    let later = lege
        .create(&heart_rate(&me, "2026-04-01T08:00:00Z", 70))
        .await;
    let (s, _) = lege
        .get(&format!("/Observation/{}", later["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, 200);
    let keys = rusqlite::Connection::open(app.dir.join("keys/keyring.db")).unwrap();
    let n: i64 = keys
        .query_row(
            "SELECT count(*) FROM keys WHERE id LIKE 'patient/%/' || ?1",
            [&me],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0, "an erased patient's key was made again");
    drop(keys);

    // The erasure is a security event; the audit log still verifies.
    let ev = events(&app.dir);
    assert!(ev.iter().any(|e| e["kind"] == "patient.erased"), "{ev:?}");
    let o = std::process::Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(&app.dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // A refused request: the admin gives the reason, the patient reads it.
    let (s, req2) = patient
        .post(&format!("/Patient/{me}/$request-erasure"), &params(&[]))
        .await;
    assert_eq!(s, 201);
    let req2 = req2["id"].as_str().unwrap();
    let (s, r) = admin
        .post(
            &format!("/Task/{req2}/$reject-erasure"),
            &params(&[(
                "reason",
                "Det som er igjen må oppbevares etter journalforskriften",
            )]),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, seen) = patient.get(&format!("/Task/{req2}")).await;
    assert_eq!(seen["status"], "rejected");
    assert!(
        events(&app.dir)
            .iter()
            .any(|e| e["kind"] == "erasure.refused")
    );
}

#[tokio::test]
async fn the_web_app_takes_the_patient_through_access_correction_restriction_and_erasure() {
    let app = spawn_demo();
    let me = patient_of(&app, "astrid.haugland");
    let lege = Fhir::new(&app, "lege.lund");
    let obs = lege
        .create(&heart_rate(&me, "2026-03-04T08:00:00Z", 190))
        .await;
    let obs_id = obs["id"].as_str().unwrap().to_string();
    let note = lege.create(&condition(&me, "Astma")).await;
    let note_id = note["id"].as_str().unwrap().to_string();
    let astrid = Browser::login(&app, "astrid.haugland").await;

    // Access: everything about her on one printable page; the overview links the downloads.
    let (s, page) = astrid.get("/me/rights").await;
    assert_eq!(s, 200, "{page}");
    assert!(
        page.contains("Mine rettigheter") && page.contains("/me/export"),
        "{page}"
    );
    assert!(page.contains("id=\"plan-erase\""), "{page}");
    let (s, page) = astrid.get("/me/rights/record").await;
    assert_eq!(s, 200);
    assert!(
        page.contains("Alt om meg") && page.contains("Astrid"),
        "{page}"
    );
    assert!(page.contains("Astma"), "{page}");
    // The access log downloads exist.
    let r = app
        .client
        .get(app.url("/me/export/log.csv"))
        .header(reqwest::header::COOKIE, &astrid.s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Correction: from her list of records to the form, then the clinician decides.
    let (s, page) = astrid.get("/me/rights/records").await;
    assert_eq!(s, 200);
    let link = format!("/me/rights/correct?type=Observation&amp;id={obs_id}");
    assert!(page.contains(&link), "{page}");
    let (s, form) = astrid
        .get(&format!("/me/rights/correct?type=Observation&id={obs_id}"))
        .await;
    assert_eq!(s, 200);
    assert!(form.contains("id=\"what_is_wrong\"") && form.contains("<label for=\"what_is_wrong\""));
    let fields = [
        ("type", "Observation"),
        ("id", obs_id.as_str()),
        ("what_is_wrong", "Pulsen var 90, ikke 190"),
        ("should_say", "90 slag i minuttet"),
    ];
    assert_eq!(
        astrid.post("/me/rights/correct", &fields, false).await.0,
        403
    );
    let (s, _, _) = astrid
        .post(
            "/me/rights/correct",
            &[
                ("type", "Observation"),
                ("id", obs_id.as_str()),
                ("what_is_wrong", " "),
            ],
            true,
        )
        .await;
    assert_eq!(s, 400);
    let (s, to, _) = astrid.post("/me/rights/correct", &fields, true).await;
    assert_eq!((s, to.as_str()), (303, "/me/rights?saved=correction"));
    let (_, page) = astrid.get("/me/rights").await;
    assert!(
        page.contains("Pulsen var 90, ikke 190") && page.contains("Venter på svar"),
        "{page}"
    );
    // Another patient's record is not hers to correct.
    let other = patient_of(&app, "berit.solberg");
    let theirs = lege
        .create(&heart_rate(&other, "2026-03-04T09:00:00Z", 60))
        .await;
    let (s, _) = astrid
        .get(&format!(
            "/me/rights/correct?type=Observation&id={}",
            theirs["id"].as_str().unwrap()
        ))
        .await;
    assert!(s == 403 || s == 404, "{s}");

    let lund = Browser::login(&app, "lege.lund").await;
    let (s, queue) = lund.get("/rights/corrections").await;
    assert_eq!(s, 200);
    assert!(queue.contains("Pulsen var 90, ikke 190"), "{queue}");
    let task = queue
        .split("/rights/corrections/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let (s, to, _) = lund
        .post(
            &format!("/rights/corrections/{task}/accept"),
            &[("note", "Rettet: 90 slag i minuttet")],
            true,
        )
        .await;
    assert_eq!(
        (s, to.as_str()),
        (303, "/rights/corrections?saved=accepted")
    );
    let (_, page) = astrid.get("/me/rights").await;
    assert!(
        page.contains("Gjennomført") && page.contains("Rettet i journalen"),
        "{page}"
    );
    assert!(
        lege.get(&format!("/Observation/{obs_id}")).await.1["note"]
            .to_string()
            .contains("90 slag")
    );
    // Patients and relatives do not reach the clinician's queue.
    assert_eq!(astrid.get("/rights/corrections").await.0, 403);

    // Restriction: from the list, with the flag in her log when a clinician reads it anyway.
    let (s, to, _) = astrid
        .post(
            "/me/rights/restrict",
            &[("type", "Observation"), ("id", &obs_id)],
            true,
        )
        .await;
    assert_eq!(
        (s, to.as_str()),
        (303, "/me/rights/records?saved=restricted")
    );
    let (_, page) = astrid.get("/me/rights/records").await;
    assert!(page.contains("Begrenset"), "{page}");
    assert_eq!(lege.get(&format!("/Observation/{obs_id}")).await.0, 403);
    let emergency = params(&[("reason", "Akutt forverring, trenger siste målinger")]);
    assert_eq!(
        lege.post(&format!("/Patient/{me}/$emergency-access"), &emergency)
            .await
            .0,
        200
    );
    assert_eq!(lege.get(&format!("/Observation/{obs_id}")).await.0, 200);
    let (_, log) = astrid.get("/me/log").await;
    assert!(log.contains("begrenset opplysning"), "{log}");
    let (_, page) = astrid.get("/me/rights").await;
    assert!(page.contains("id=\"my-restrictions\""), "{page}");
    let (s, to, _) = astrid
        .post(
            "/me/rights/lift",
            &[
                ("type", "Observation"),
                ("id", &obs_id),
                ("back", "overview"),
            ],
            true,
        )
        .await;
    assert_eq!((s, to.as_str()), (303, "/me/rights?saved=lifted"));

    // Erasure: she asks, the admin sees the plan and erases; she reads the outcome.
    let (s, to, _) = astrid
        .post(
            "/me/rights/erasure",
            &[("note", "Flytter fra kommunen")],
            true,
        )
        .await;
    assert_eq!((s, to.as_str()), (303, "/me/rights?saved=erasure"));
    let (_, page) = astrid.get("/me/rights").await;
    assert!(page.contains("id=\"erasure-pending\""), "{page}");
    assert_eq!(astrid.get("/manage/erasure").await.0, 403);
    let admin = Browser::login(&app, "admin.nilsen").await;
    let (s, page) = admin.get("/manage/erasure").await;
    assert_eq!(s, 200);
    assert!(
        page.contains(&me) && page.contains("Flytter fra kommunen"),
        "{page}"
    );
    assert!(!page.contains("Astma"), "the admin never sees a record");
    let task = page
        .split("name=\"task\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let (s, _, _) = admin
        .post(
            "/manage/erasure/erase",
            &[
                ("patient", me.as_str()),
                ("task", task.as_str()),
                ("reason", "kort"),
            ],
            true,
        )
        .await;
    assert_eq!(s, 400, "a decision needs its reason");
    let (s, to, _) = admin
        .post(
            "/manage/erasure/erase",
            &[
                ("patient", me.as_str()),
                ("task", task.as_str()),
                (
                    "reason",
                    "Pasientens krav etter art. 17, journalplikten vurdert",
                ),
            ],
            true,
        )
        .await;
    assert_eq!((s, to.as_str()), (303, "/manage/erasure?saved=erased"));
    let (_, page) = astrid.get("/me/rights").await;
    assert!(
        page.contains("Gjennomført") && page.contains("Slettet "),
        "{page}"
    );
    assert_eq!(lege.get(&format!("/Observation/{obs_id}")).await.0, 404);
    assert_eq!(lege.get(&format!("/Condition/{note_id}")).await.0, 200);
    let (s, page) = astrid.get("/me/rights/record").await;
    assert_eq!(s, 200);
    assert!(
        page.contains("Astma"),
        "what is kept is still hers to see: {page}"
    );

    // The retention rules are the tenant's: saved from the same page.
    let (s, to, _) = admin
        .post(
            "/manage/erasure/retention",
            &[("keep", "clinical-notes"), ("keep", "demographics")],
            true,
        )
        .await;
    assert_eq!((s, to.as_str()), (303, "/manage/erasure?saved=retention"));
    let (_, page) = admin.get("/manage/erasure").await;
    assert!(
        page.contains("id=\"keep-clinical-notes\" name=\"keep\" value=\"clinical-notes\" checked"),
        "{page}"
    );
    assert!(!page.contains("value=\"medications\" checked"), "{page}");
    assert_eq!(
        admin
            .post("/manage/erasure/retention", &[("keep", "nonsense")], true)
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn the_tenant_sets_what_it_must_keep_from_the_command_line() {
    let app = spawn_demo();
    let t = "Nordby kommune";
    let out = stdout(&app.admin(&["tenant", "retention", "--tenant", t]));
    assert!(out.starts_with("kept\tdemographics,"), "{out}");
    assert!(
        out.contains("clinical-notes") && out.contains("(defaults)"),
        "{out}"
    );
    let out = stdout(&app.admin(&[
        "tenant",
        "retention",
        "--tenant",
        t,
        "--keep",
        "clinical-notes, lab-results,clinical-notes",
    ]));
    assert_eq!(out.trim(), "kept\tclinical-notes,lab-results");
    // The plan follows: a measurement is now erasable and a medication too.
    let me = patient_of(&app, "astrid.haugland");
    let patient = Fhir::new(&app, "astrid.haugland");
    let (_, plan) = patient.get(&format!("/Patient/{me}/$erasure-plan")).await;
    assert!(
        plan.to_string().contains("\"retained-categories\"")
            && plan.to_string().contains("clinical-notes lab-results"),
        "{plan}"
    );
    let bad = app.admin(&["tenant", "retention", "--tenant", t, "--keep", "directory"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        events(&app.dir)
            .iter()
            .any(|e| e["kind"] == "policy.changed"
                && e["detail"].as_str().unwrap_or("").contains("retention")),
        "the change is a security event"
    );
}
