//! Access control with the demo users: care relationships, role × category, the patient's
//! own record, relatives, and search results filtered to what the caller may see.

use crate::fhir::Fhir;
use crate::helpers::*;
use serde_json::Value;

fn patients_of(app: &TestApp, user: &str) -> Vec<String> {
    app.user(user)["patients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

fn outcome(v: &Value) -> String {
    v["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["diagnostics"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test]
async fn staff_read_their_patients_and_are_refused_others_with_the_reason() {
    let app = spawn_demo();
    let lege = Fhir::new(&app, "lege.lund");
    let mine = patients_of(&app, "lege.lund");
    let (s, p) = lege.get(&format!("/Patient/{}", mine[0])).await;
    assert_eq!(s, 200, "{p}");
    let (s, b) = lege
        .get(&format!("/Observation?patient={}&_count=3", mine[0]))
        .await;
    assert_eq!((s, b["total"].as_u64()), (200, Some(17)));

    let not_mine = patients_of(&app, "sykepleier.dahl")
        .into_iter()
        .find(|p| !mine.contains(p))
        .unwrap();
    let (s, oo) = lege.get(&format!("/Patient/{not_mine}")).await;
    assert_eq!(s, 403);
    let text = outcome(&oo);
    assert!(
        text.contains("You have no care relationship with this patient"),
        "{text}"
    );
    assert!(text.contains("emergency access"), "{text}");
    // Searching their records shows nothing, and the total does not leak how much exists.
    let (_, b) = lege.get(&format!("/Observation?patient={not_mine}")).await;
    assert_eq!(b["total"], 0);
}

#[tokio::test]
async fn search_totals_count_only_what_the_caller_may_see() {
    let app = spawn_demo();
    let all = Fhir::new(&app, "integrasjon.epj");
    let lege = Fhir::new(&app, "lege.lund");
    let (_, everything) = all
        .get("/Observation?code=http://loinc.org|8867-4&_summary=count")
        .await;
    let (_, visible) = lege
        .get("/Observation?code=http://loinc.org|8867-4&_summary=count")
        .await;
    let n = patients_of(&app, "lege.lund").len() as u64;
    assert_eq!(
        visible["total"].as_u64(),
        Some(n * 8),
        "8 heart-rate readings per patient in the list"
    );
    assert!(everything["total"].as_u64().unwrap() > visible["total"].as_u64().unwrap());
}

#[tokio::test]
async fn a_care_assistant_is_refused_the_mental_health_category() {
    let app = spawn_demo();
    let aas = Fhir::new(&app, "helsefagarbeider.aas");
    let all = Fhir::new(&app, "integrasjon.epj");
    let mut found = false;
    for pid in patients_of(&app, "helsefagarbeider.aas") {
        let (_, b) = all.get(&format!("/Condition?patient={pid}")).await;
        let cond = &b["entry"][0]["resource"];
        let sensitive = cond["meta"]["security"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "mental-health");
        if !sensitive {
            continue;
        }
        found = true;
        let (s, oo) = aas
            .get(&format!("/Condition/{}", cond["id"].as_str().unwrap()))
            .await;
        assert_eq!(s, 403);
        assert!(
            outcome(&oo).contains("Your role does not give access to mental-health"),
            "{}",
            outcome(&oo)
        );
        let (_, hidden) = aas.get(&format!("/Condition?patient={pid}")).await;
        assert_eq!(hidden["total"], 0);
        let (_, obs) = aas
            .get(&format!("/Observation?patient={pid}&_summary=count"))
            .await;
        // 16 measurements are hers to see; the laboratory result (HbA1c) is not.
        assert_eq!(obs["total"], 16);
    }
    assert!(
        found,
        "the demo gives a patient on the care assistant's list a mental-health diagnosis"
    );
}

#[tokio::test]
async fn patients_read_their_own_record_and_relatives_what_consent_covers() {
    let app = spawn_demo();
    let astrid = Fhir::new(&app, "astrid.haugland");
    let own = app.user("astrid.haugland")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = astrid.get(&format!("/Patient/{own}")).await;
    assert_eq!(s, 200);
    let (_, b) = astrid
        .get(&format!("/Observation?patient={own}&_summary=count"))
        .await;
    assert_eq!(b["total"], 17);
    let other = app.user("berit.solberg")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, oo) = astrid.get(&format!("/Patient/{other}")).await;
    assert_eq!(s, 403, "{oo}");

    let kari = Fhir::new(&app, "kari.haugland");
    let mother = app.user("kari.haugland")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, appts) = kari.get(&format!("/Appointment?patient={mother}")).await;
    assert_eq!(appts["total"], 1);
    let (_, obs) = kari.get(&format!("/Observation?patient={mother}")).await;
    assert_eq!(obs["total"], 0);
    let (s, _) = kari.get(&format!("/Patient/{mother}")).await;
    assert_eq!(s, 403);
    let (_, meds) = kari
        .get(&format!("/MedicationStatement?patient={mother}"))
        .await;
    assert_eq!(meds["total"], 0);
    // Magnus Solberg's mother has consented to more: her medications too.
    let magnus = Fhir::new(&app, "magnus.solberg");
    let berit = app.user("magnus.solberg")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, meds) = magnus
        .get(&format!("/MedicationStatement?patient={berit}"))
        .await;
    assert_eq!(meds["total"], 1);
    let (_, obs) = magnus.get(&format!("/Observation?patient={berit}")).await;
    assert_eq!(obs["total"], 0);
}

#[tokio::test]
async fn a_secretary_sees_demographics_and_appointments_only() {
    let app = spawn_demo();
    let sec = Fhir::new(&app, "sekretaer.berg");
    let pid = patients_of(&app, "sekretaer.berg")[0].clone();
    assert_eq!(sec.get(&format!("/Patient/{pid}")).await.0, 200);
    assert_eq!(
        sec.get(&format!("/Appointment?patient={pid}")).await.1["total"],
        1
    );
    assert_eq!(
        sec.get(&format!("/Observation?patient={pid}")).await.1["total"],
        0
    );
    assert_eq!(
        sec.get(&format!("/MedicationStatement?patient={pid}"))
            .await
            .1["total"],
        0
    );
}

fn person_of(app: &TestApp, user: &str) -> String {
    app.user(user)["person_id"].as_str().unwrap().to_string()
}

fn refused_of(app: &TestApp, user: &str) -> Vec<String> {
    app.user(user)["refused_patients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

fn emergency_body() -> Value {
    serde_json::json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "Akutt forverring, trenger oversikt over medisiner"}]})
}

#[tokio::test]
async fn an_ended_care_relationship_stops_access_on_the_very_next_request() {
    let app = spawn_demo();
    let lege = Fhir::new(&app, "lege.lund");
    let epj = Fhir::new(&app, "integrasjon.epj");
    let pid = patients_of(&app, "lege.lund")[0].clone();
    assert_eq!(lege.get(&format!("/Patient/{pid}")).await.0, 200);
    // The relationship is a CareTeam of the physician's office; the EPJ ends it over FHIR.
    let (_, teams) = epj.get(&format!("/CareTeam?patient={pid}")).await;
    let mut ended = 0;
    for e in teams["entry"].as_array().unwrap() {
        let mut team = e["resource"].clone();
        if team["name"] != "Fastlege" {
            continue;
        }
        team["status"] = "inactive".into();
        let id = team["id"].as_str().unwrap().to_string();
        let (s, b) = epj.put(&format!("/CareTeam/{id}"), &team).await;
        assert_eq!(s, 200, "{b}");
        ended += 1;
    }
    assert_eq!(ended, 1, "{teams}");
    let (s, oo) = lege.get(&format!("/Patient/{pid}")).await;
    assert_eq!(s, 403, "{oo}");
    let (_, b) = lege.get(&format!("/Observation?patient={pid}")).await;
    assert_eq!(b["total"], 0);
    // A relationship made by an admin on the command line, and ended there.
    let id = stdout(&app.admin(&[
        "care",
        "add",
        "--tenant",
        "Nordby kommune",
        "--patient",
        &pid,
        "--staff",
        &person_of(&app, "lege.lund"),
        "--purpose",
        "Tilsyn",
    ]));
    let id = id.trim();
    assert_eq!(lege.get(&format!("/Patient/{pid}")).await.0, 200);
    stdout(&app.admin(&["care", "end", "--tenant", "Nordby kommune", "--id", id]));
    assert_eq!(lege.get(&format!("/Patient/{pid}")).await.0, 403);
    let rules = stdout(&app.admin(&[
        "access",
        "list",
        "--tenant",
        "Nordby kommune",
        "--patient",
        &pid,
    ]));
    assert!(
        rules
            .lines()
            .any(|l| l.starts_with(id) && l.ends_with("\tinactive")),
        "{rules}"
    );
    // A rule that comes from a FHIR resource is changed through that resource.
    let from_fhir = rules.lines().find(|l| l.contains("\tCareTeam/")).unwrap();
    let rid = from_fhir.split('\t').next().unwrap();
    let out = app.admin(&["care", "end", "--tenant", "Nordby kommune", "--id", rid]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("change or end that resource instead"));
}

#[tokio::test]
async fn a_relationship_covers_only_its_categories_and_a_role_comes_from_practitioner_role() {
    let app = spawn_demo();
    let dahl = Fhir::new(&app, "sykepleier.dahl");
    let epj = Fhir::new(&app, "integrasjon.epj");
    // One of the nurse's patients is hers for medicine rounds only: measurements and
    // medications, not the rest of the record.
    let mut limited = None;
    for p in patients_of(&app, "sykepleier.dahl") {
        let (_, obs) = dahl
            .get(&format!("/Observation?patient={p}&_summary=count"))
            .await;
        if obs["total"].as_u64() > Some(0) && dahl.get(&format!("/Patient/{p}")).await.0 == 403 {
            limited = Some(p);
        }
    }
    let p = limited.expect("a category-limited relationship");
    assert_eq!(
        dahl.get(&format!("/MedicationStatement?patient={p}"))
            .await
            .1["total"],
        1
    );
    assert_eq!(
        dahl.get(&format!("/Condition?patient={p}")).await.1["total"],
        0
    );

    // A PractitionerRole from the EPJ puts her in Hjemmetjenesten Nord too: that unit's
    // patients are hers on the next request, and no longer once the role is deleted.
    let nord = patients_of(&app, "helsefagarbeider.aas");
    let target = nord
        .iter()
        .find(|p| !patients_of(&app, "sykepleier.dahl").contains(p))
        .unwrap();
    assert_eq!(dahl.get(&format!("/Patient/{target}")).await.0, 403);
    let (_, orgs) = epj.get("/Organization?_count=50").await;
    let unit = orgs["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["name"] == "Hjemmetjenesten Nord")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .unwrap();
    let role = serde_json::json!({"resourceType": "PractitionerRole", "active": true,
        "practitioner": {"reference": format!("Practitioner/{}", person_of(&app, "sykepleier.dahl"))},
        "organization": {"reference": format!("Organization/{unit}")},
        "code": [{"coding": [{"system": "https://tillit.no/fhir/CodeSystem/role", "code": "nurse"}]}],
        "period": {"start": "2020-01-01"}});
    let (s, created) = epj.post("/PractitionerRole", &role).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(dahl.get(&format!("/Patient/{target}")).await.0, 200);
    let id = created["id"].as_str().unwrap();
    let (s, _, _) = epj
        .send(
            reqwest::Method::DELETE,
            &format!("/PractitionerRole/{id}"),
            None,
            &[],
        )
        .await;
    assert!(s == 200 || s == 204, "{s}");
    assert_eq!(dahl.get(&format!("/Patient/{target}")).await.0, 403);
    // Staff cannot make themselves care relationships or roles.
    let (s, _) = dahl.post("/PractitionerRole", &role).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn a_patients_block_wins_over_role_and_relationship_except_by_emergency_access() {
    let app = spawn_demo();
    let haugen = Fhir::new(&app, "sykepleier.haugen");
    // Kjell Bakken has blocked this nurse, although she is his primary contact.
    let blocked = refused_of(&app, "sykepleier.haugen");
    assert_eq!(blocked.len(), 1);
    let p = &blocked[0];
    let (s, oo) = haugen.get(&format!("/Patient/{p}")).await;
    assert_eq!(s, 403);
    let text = outcome(&oo);
    assert!(
        text.contains("The patient has blocked your access"),
        "{text}"
    );
    assert!(text.contains("platform.patient-block"), "{text}");
    assert!(text.contains("emergency access"), "{text}");
    assert_eq!(
        haugen.get(&format!("/Observation?patient={p}")).await.1["total"],
        0
    );
    // The tenant's default lets emergency access override the block (the patient is told).
    let path = format!("/Patient/{p}/$emergency-access");
    assert_eq!(haugen.post(&path, &emergency_body()).await.0, 200);
    assert_eq!(haugen.get(&format!("/Patient/{p}")).await.0, 200);
    // A tenant that lets blocks stand even in emergencies: refused on the next request.
    stdout(&app.admin(&[
        "tenant",
        "settings",
        "--tenant",
        "Nordby kommune",
        "--emergency-overrides-block",
        "false",
    ]));
    assert_eq!(haugen.get(&format!("/Patient/{p}")).await.0, 403);

    // A block on a category, for everyone: Solveig Nygaard's mental-health information.
    let lege = Fhir::new(&app, "lege.lund");
    let epj = Fhir::new(&app, "integrasjon.epj");
    let mut found = None;
    for p in patients_of(&app, "lege.lund") {
        let (_, all) = epj.get(&format!("/Condition?patient={p}")).await;
        let (_, seen) = lege.get(&format!("/Condition?patient={p}")).await;
        if all["total"] == 1 && seen["total"] == 0 {
            found = Some(all["entry"][0]["resource"].clone());
        }
    }
    let cond = found.expect("a blocked category");
    assert_eq!(cond["code"]["coding"][0]["code"], "F32.1");
    let pt = cond["subject"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Patient/")
        .to_string();
    let (s, oo) = lege
        .get(&format!("/Condition/{}", cond["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, 403, "{oo}");
    assert!(outcome(&oo).contains("blocked"), "{oo}");
    assert_eq!(
        lege.get(&format!("/Condition?patient={pt}")).await.1["total"],
        0
    );
    assert_eq!(
        lege.get(&format!("/Observation?patient={pt}&_summary=count"))
            .await
            .1["total"],
        17
    );
}

#[tokio::test]
async fn a_patient_records_a_block_that_applies_on_the_next_request_and_staff_cannot_lift_it() {
    let app = spawn_demo();
    let astrid = Fhir::new(&app, "astrid.haugland");
    let lege = Fhir::new(&app, "lege.lund");
    let me = app.user("astrid.haugland")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(lege.get(&format!("/Patient/{me}")).await.0, 200);
    let consent = serde_json::json!({
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{me}")},
        "provision": {"type": "deny", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
            "reference": {"reference": format!("Practitioner/{}", person_of(&app, "lege.lund"))}}]}
    });
    let (s, made) = astrid.post("/Consent", &consent).await;
    assert_eq!(s, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_string();
    assert_eq!(lege.get(&format!("/Patient/{me}")).await.0, 403);
    assert_eq!(
        lege.get(&format!("/Observation?patient={me}")).await.1["total"],
        0
    );
    // A colleague is not blocked.
    assert_eq!(
        Fhir::new(&app, "sykepleier.haugen")
            .get(&format!("/Patient/{me}"))
            .await
            .0,
        200
    );
    // The physician cannot lift it, nor can another nurse with a relationship.
    let (s, _, _) = Fhir::new(&app, "sykepleier.haugen")
        .send(
            reqwest::Method::DELETE,
            &format!("/Consent/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 403);
    // A patient cannot block on someone else's record.
    let mut other = consent.clone();
    other["patient"]["reference"] = format!(
        "Patient/{}",
        app.user("berit.solberg")["patient_id"].as_str().unwrap()
    )
    .into();
    assert_eq!(astrid.post("/Consent", &other).await.0, 403);
    // The patient lifts it herself: access is back on the next request.
    let (s, _, _) = astrid
        .send(
            reqwest::Method::DELETE,
            &format!("/Consent/{id}"),
            None,
            &[],
        )
        .await;
    assert!(s == 200 || s == 204, "{s}");
    assert_eq!(lege.get(&format!("/Patient/{me}")).await.0, 200);
}

#[tokio::test]
async fn exclusions_beat_relationships_and_grants_end_when_the_tenant_ends_them() {
    let app = spawn_demo();
    // The care assistant is excluded from a neighbour his unit cares for.
    let aas = Fhir::new(&app, "helsefagarbeider.aas");
    let excluded = refused_of(&app, "helsefagarbeider.aas");
    assert_eq!(excluded.len(), 1);
    let (s, oo) = aas.get(&format!("/Patient/{}", excluded[0])).await;
    assert_eq!(s, 403);
    assert!(outcome(&oo).contains("excluded"), "{oo}");
    // Emergency access does not get past an exclusion.
    let path = format!("/Patient/{}/$emergency-access", excluded[0]);
    assert_eq!(aas.post(&path, &emergency_body()).await.0, 200);
    assert_eq!(aas.get(&format!("/Patient/{}", excluded[0])).await.0, 403);

    // A new exclusion takes effect on the very next request.
    let lege = Fhir::new(&app, "lege.lund");
    let pid = patients_of(&app, "lege.lund")[1].clone();
    assert_eq!(lege.get(&format!("/Patient/{pid}")).await.0, 200);
    let ex = stdout(&app.admin(&[
        "access",
        "exclude",
        "--tenant",
        "Nordby kommune",
        "--person",
        &person_of(&app, "lege.lund"),
        "--patient",
        &pid,
        "--reason",
        "Legen er i familie med pasienten",
    ]));
    assert_eq!(lege.get(&format!("/Patient/{pid}")).await.0, 403);
    stdout(&app.admin(&[
        "access",
        "end",
        "--tenant",
        "Nordby kommune",
        "--id",
        ex.trim(),
    ]));
    assert_eq!(lege.get(&format!("/Patient/{pid}")).await.0, 200);

    // A grant for a nurse covering another district: reading only, and only while it lasts.
    let dahl = Fhir::new(&app, "sykepleier.dahl");
    let mine = patients_of(&app, "sykepleier.dahl");
    let epj = Fhir::new(&app, "integrasjon.epj");
    let (_, everyone) = epj.get("/Patient?_count=100").await;
    let mut granted = None;
    for e in everyone["entry"].as_array().unwrap() {
        let p = e["resource"]["id"].as_str().unwrap().to_string();
        if !mine.contains(&p) && dahl.get(&format!("/Patient/{p}")).await.0 == 200 {
            granted = Some(p);
        }
    }
    let g = granted.expect("a granted patient");
    let rules = stdout(&app.admin(&[
        "access",
        "list",
        "--tenant",
        "Nordby kommune",
        "--patient",
        &g,
    ]));
    let grant = rules
        .lines()
        .find(|l| l.contains("\tgrant\t"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let (s, _, _) = dahl
        .send(reqwest::Method::DELETE, &format!("/Patient/{g}"), None, &[])
        .await;
    assert_eq!(s, 403);
    stdout(&app.admin(&[
        "access",
        "end",
        "--tenant",
        "Nordby kommune",
        "--id",
        &grant,
    ]));
    assert_eq!(dahl.get(&format!("/Patient/{g}")).await.0, 403);
    assert!(
        events(&app.dir)
            .iter()
            .any(|e| e["kind"] == "access.changed")
    );
}

#[tokio::test]
async fn withheld_records_are_hidden_from_the_patient_until_released() {
    let app = spawn_demo();
    let astrid = Fhir::new(&app, "astrid.haugland");
    let lege = Fhir::new(&app, "lege.lund");
    let me = app.user("astrid.haugland")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, mine) = astrid
        .get(&format!("/DocumentReference?patient={me}"))
        .await;
    let (_, all) = lege.get(&format!("/DocumentReference?patient={me}")).await;
    assert_eq!(
        all["total"].as_u64().unwrap(),
        mine["total"].as_u64().unwrap() + 1
    );
    let hidden = all["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .find(|id| {
            !mine["entry"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["resource"]["id"] == id.as_str())
        })
        .unwrap();
    let (s, oo) = astrid.get(&format!("/DocumentReference/{hidden}")).await;
    assert_eq!(s, 403);
    assert!(outcome(&oo).contains("withheld"), "{oo}");
    // The physician releases it; the patient reads it on the next request.
    let path = format!("/DocumentReference/{hidden}/$release");
    assert_eq!(
        astrid
            .post(&path, &serde_json::json!({"resourceType": "Parameters"}))
            .await
            .0,
        403
    );
    assert_eq!(
        lege.post(&path, &serde_json::json!({"resourceType": "Parameters"}))
            .await
            .0,
        200
    );
    assert_eq!(
        astrid.get(&format!("/DocumentReference/{hidden}")).await.0,
        200
    );
    // Withholding needs a reason, and is a security event.
    let path = format!("/DocumentReference/{hidden}/$withhold");
    assert_eq!(
        lege.post(&path, &serde_json::json!({"resourceType": "Parameters"}))
            .await
            .0,
        400
    );
    let reason = serde_json::json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "Pbrl. § 5-1: kan skade pasienten"}]});
    assert_eq!(lege.post(&path, &reason).await.0, 200);
    assert_eq!(
        astrid.get(&format!("/DocumentReference/{hidden}")).await.0,
        403
    );
    // The relative does not see it either way (not in her consent's scope).
    assert_eq!(
        Fhir::new(&app, "kari.haugland")
            .get(&format!("/DocumentReference/{hidden}"))
            .await
            .0,
        403
    );
    assert!(
        events(&app.dir)
            .iter()
            .any(|e| e["kind"] == "record.withheld")
    );
}

#[tokio::test]
async fn a_delegate_registers_on_behalf_of_a_colleague_without_reading() {
    let app = spawn_demo();
    let berg = Fhir::new(&app, "sekretaer.berg");
    let lege = person_of(&app, "lege.lund");
    let pid = patients_of(&app, "lege.lund")[0].clone();
    let obs = serde_json::json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{pid}")},
        "effectiveDateTime": "2026-11-30T10:00:00Z",
        "valueQuantity": {"value": 71, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}});
    // As herself, a secretary does not record measurements.
    assert_eq!(berg.post("/Observation", &obs).await.0, 403);
    let behalf = format!("Practitioner/{lege}");
    let headers = [("x-on-behalf-of", behalf.as_str())];
    let (s, _, made) = berg
        .send(reqwest::Method::POST, "/Observation", Some(&obs), &headers)
        .await;
    assert_eq!(s, 201, "{made}");
    // Registration only: reading on the physician's behalf is refused.
    let (s, _, oo) = berg
        .send(
            reqwest::Method::GET,
            &format!("/Observation/{}", made["id"].as_str().unwrap()),
            None,
            &headers,
        )
        .await;
    assert_eq!(s, 403);
    assert!(outcome(&oo).contains("registration only"), "{oo}");
    // Without a delegation, acting on someone's behalf is refused.
    let aas = Fhir::new(&app, "helsefagarbeider.aas");
    let (s, _, oo) = aas
        .send(reqwest::Method::POST, "/Observation", Some(&obs), &headers)
        .await;
    assert_eq!(s, 403);
    assert!(outcome(&oo).contains("no current delegation"), "{oo}");
}

#[tokio::test]
async fn emergency_access_opens_with_a_reason_and_is_recorded() {
    let app = spawn_demo();
    let lege = Fhir::new(&app, "lege.lund");
    let mine = patients_of(&app, "lege.lund");
    let other = patients_of(&app, "sykepleier.dahl")
        .into_iter()
        .find(|p| !mine.contains(p))
        .unwrap();
    assert_eq!(lege.get(&format!("/Patient/{other}")).await.0, 403);
    let path = format!("/Patient/{other}/$emergency-access");
    let (s, oo) = lege.post(&path, &serde_json::json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "kort"}]})).await;
    assert_eq!(s, 400);
    assert!(outcome(&oo).contains("state the reason"), "{oo}");
    let body = serde_json::json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "Pasienten funnet bevisstløs, trenger medisinliste"}]});
    let (s, params) = lege.post(&path, &body).await;
    assert_eq!(s, 200, "{params}");
    assert!(
        params["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "expires")
    );
    // Now readable, on the next request.
    let (s, _) = lege.get(&format!("/Patient/{other}")).await;
    assert_eq!(s, 200);
    let (_, obs) = lege
        .get(&format!("/Observation?patient={other}&_summary=count"))
        .await;
    assert_eq!(obs["total"], 17);
    // Reading only: no changes under emergency access without a relationship.
    let (s, _, _) = lege
        .send(
            reqwest::Method::DELETE,
            &format!("/Patient/{other}"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 403);
    // Others are not affected, and patients cannot open it.
    let aas = Fhir::new(&app, "helsefagarbeider.aas");
    if !patients_of(&app, "helsefagarbeider.aas").contains(&other) {
        assert_eq!(aas.get(&format!("/Patient/{other}")).await.0, 403);
    }
    let astrid = Fhir::new(&app, "astrid.haugland");
    assert_eq!(astrid.post(&path, &body).await.0, 403);
    // An unknown patient is 404; the opening is a security event for review.
    assert_eq!(
        lege.post(
            "/Patient/00000000-0000-0000-0000-000000000000/$emergency-access",
            &body
        )
        .await
        .0,
        404
    );
    assert!(
        events(&app.dir)
            .iter()
            .any(|e| e["kind"] == "emergency.opened" && e["username"] == "lege.lund")
    );
}

#[tokio::test]
async fn tenant_admins_read_and_replace_policies_which_apply_on_the_next_request() {
    let app = spawn_demo();
    let token = |u: &str| app.user(u)["api_token"].as_str().unwrap().to_string();
    let get = |u: &str| {
        app.client
            .get(app.url("/admin/policies"))
            .bearer_auth(token(u))
            .send()
    };
    let r = get("admin.nilsen").await.unwrap();
    assert_eq!(r.status(), 200);
    let current: Value = r.json().await.unwrap();
    assert_eq!(current["is_default"], true);
    assert_eq!(get("sikkerhet.moe").await.unwrap().status(), 200);
    assert_eq!(get("lege.lund").await.unwrap().status(), 403);

    let put = |body: String| {
        app.client
            .put(app.url("/admin/policies"))
            .bearer_auth(token("admin.nilsen"))
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    let r = put(
        "@id(\"t.x\") permit(principal, action, resource) when { resource.shoe_size > 3 };".into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert!(
        err["error"]["message"].as_str().unwrap().contains("schema"),
        "{err}"
    );
    assert_eq!(
        get("admin.nilsen")
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["is_default"],
        true,
        "nothing saved"
    );

    // Before: the care assistant sees her patients' measurements.
    let aas = Fhir::new(&app, "helsefagarbeider.aas");
    let pid = patients_of(&app, "helsefagarbeider.aas")[0].clone();
    assert_eq!(
        aas.get(&format!("/Observation?patient={pid}&_summary=count"))
            .await
            .1["total"],
        16
    );
    // The tenant drops the care-assistant rule.
    let text = current["policies"].as_str().unwrap();
    let start = text.find("@id(\"tenant.care-assistant\")").unwrap();
    let end = start + text[start..].find("};").unwrap() + 2;
    let without = format!("{}{}", &text[..start], &text[end..]);
    let r = put(without).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        aas.get(&format!("/Observation?patient={pid}&_summary=count"))
            .await
            .1["total"],
        0
    );
    let (s, oo) = aas.get(&format!("/Patient/{pid}")).await;
    assert_eq!(s, 403, "{oo}");
    assert!(
        events(&app.dir)
            .iter()
            .any(|e| e["kind"] == "policy.changed" && e["username"] == "admin.nilsen")
    );
    // A non-admin cannot write.
    let r = app
        .client
        .put(app.url("/admin/policies"))
        .bearer_auth(token("lege.lund"))
        .header("content-type", "text/plain")
        .body(text.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn operators_read_a_tenant_only_under_a_time_limited_support_grant() {
    let app = spawn_demo();
    let op = Fhir::new(&app, "drift.olsen");
    let nordby = app.user("lege.lund")["tenant"]
        .as_str()
        .unwrap()
        .to_string();
    let tenants = stdout(&app.admin(&["tenant", "list"]));
    let tenant_id = |name: &str| {
        tenants
            .lines()
            .find(|l| l.contains(name))
            .and_then(|l| l.split('\t').next())
            .unwrap()
            .to_string()
    };
    let (nordby_id, sorby_id) = (tenant_id(&nordby), tenant_id("Sørby sykehus"));
    let pid = patients_of(&app, "lege.lund")[0].clone();
    let support = [("x-support-tenant", nordby_id.as_str())];
    // No grant: nothing, in the tenant or through the header.
    assert_eq!(op.get(&format!("/Patient/{pid}")).await.0, 404);
    let (s, _, oo) = op
        .send(
            reqwest::Method::GET,
            &format!("/Patient/{pid}"),
            None,
            &support,
        )
        .await;
    assert_eq!(s, 403);
    assert!(outcome(&oo).contains("no current support access"), "{oo}");
    // Staff of a tenant cannot use the header at all.
    let (s, _, _) = Fhir::new(&app, "lege.lund")
        .send(
            reqwest::Method::GET,
            &format!("/Patient/{pid}"),
            None,
            &[("x-support-tenant", sorby_id.as_str())],
        )
        .await;
    assert_eq!(s, 403);

    // The tenant admin grants two hours over HTTP; the operator reads, but only reads.
    let admin = app.user("admin.nilsen")["api_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .client
        .post(app.url("/admin/support"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"operator": "drift.olsen", "minutes": 120, "reason": "Sak 4711: feil i import"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let grant: Value = r.json().await.unwrap();
    let (s, _, p) = op
        .send(
            reqwest::Method::GET,
            &format!("/Patient/{pid}"),
            None,
            &support,
        )
        .await;
    assert_eq!(s, 200, "{p}");
    let (s, _, b) = op
        .send(
            reqwest::Method::GET,
            &format!("/Observation?patient={pid}&_summary=count"),
            None,
            &support,
        )
        .await;
    assert_eq!((s, b["total"].as_u64()), (200, Some(17)));
    let (s, _, _) = op
        .send(
            reqwest::Method::PUT,
            &format!("/Patient/{pid}"),
            Some(&p),
            &support,
        )
        .await;
    assert_eq!(s, 403);
    // Another tenant stays closed, and a staff member cannot be granted support access.
    let (s, _, _) = op
        .send(
            reqwest::Method::GET,
            "/Patient",
            None,
            &[("x-support-tenant", sorby_id.as_str())],
        )
        .await;
    assert_eq!(s, 403);
    let r = app
        .client
        .post(app.url("/admin/support"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"operator": "lege.lund", "minutes": 60, "reason": "Sak 4712"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The tenant sees the grant and every use; revoking ends access on the next request.
    let listed: Value = app
        .client
        .get(app.url("/admin/support"))
        .bearer_auth(app.user("sikkerhet.moe")["api_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["grants"][0]["state"], "active", "{listed}");
    assert!(
        events(&app.dir)
            .iter()
            .any(|e| e["kind"] == "support.access" && e["ok"] == true)
    );
    let r = app
        .client
        .delete(app.url(&format!("/admin/support/{}", grant["id"].as_str().unwrap())))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, _, _) = op
        .send(
            reqwest::Method::GET,
            &format!("/Patient/{pid}"),
            None,
            &support,
        )
        .await;
    assert_eq!(s, 403);
    let listed = stdout(&app.admin(&["support", "list", "--tenant", &nordby]));
    assert!(listed.contains("\trevoked"), "{listed}");
    // The operator role cannot be given inside a customer tenant.
    let out = app.admin(&[
        "role",
        "assign",
        "--tenant",
        &nordby,
        "--person",
        &person_of(&app, "lege.lund"),
        "--role",
        "operator",
        "--unit",
        "Legekontoret",
    ]);
    assert!(!out.status.success());
}
