//! The patient's and the relative's pages over real TLS: the record, the access log (with a
//! clinician's emergency access and its reason), blocks and relatives' consents that change
//! access on the very next request, downloads, and refusals for the wrong audience, another
//! tenant and forms without their CSRF token.

use crate::fhir::Fhir;
use crate::helpers::Browser as Web;
use crate::helpers::*;
use reqwest::header::{ACCEPT, COOKIE};
use serde_json::{Value, json};

fn id_of(app: &TestApp, user: &str, field: &str) -> String {
    app.user(user)[field].as_str().unwrap().to_string()
}

/// Every `value` of the hidden `consent` fields on a page, in order.
fn consents_on(page: &str) -> Vec<String> {
    page.match_indices(r#"name="consent" value=""#)
        .map(|(i, m)| page[i + m.len()..].split('"').next().unwrap().to_string())
        .collect()
}

/// A Nordby clinician with no relationship to `patient` (and not refused by a block).
fn stranger_to(app: &TestApp, patient: &str) -> String {
    app.creds["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| {
            u["tenant"] == "Nordby kommune"
                && u["roles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == "physician" || r == "nurse")
                && !u["patients"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p == patient)
                && !u["refused_patients"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p == patient)
        })
        .expect("a clinician without a relationship to the patient")["username"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_patient_sees_their_record_and_other_audiences_are_refused() {
    let app = spawn_demo();
    let astrid = Web::login(&app, "astrid.haugland").await;
    let (s, page) = astrid.get("/me/record").await;
    assert_eq!(s, 200, "{page}");
    for expected in [
        "Astrid",
        "Haugland",
        "Puls",
        "Blodtrykk",
        "<svg",
        "Metoprolol",
        "Hjemmebesøk",
        "Sykepleiernotat",
    ] {
        assert!(page.contains(expected), "the record lacks {expected}");
    }
    assert!(
        page.contains("badge ok"),
        "a final document shows its status"
    );
    assert!(
        !page.contains("bør ikke lese"),
        "the note withheld from the patient is not shown"
    );
    for path in ["/me/log", "/me/blocks", "/me/relatives", "/me/export"] {
        let (s, page) = astrid.get(path).await;
        assert_eq!(s, 200, "{path}: {page}");
        assert_eq!(page.matches("<h1").count(), 1, "{path} has one h1");
        assert!(!page.contains("style="), "{path} has no inline style");
    }
    // In English on request.
    let r = app
        .client
        .get(app.url("/me/record"))
        .header(
            COOKIE,
            format!("{}; __Host-tillit_lang=en", astrid.s.cookie),
        )
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("My record"));
    // The record page view is in the audit log, as the patient's own access.
    let fhir = Fhir::new(&app, "astrid.haugland");
    let me = id_of(&app, "astrid.haugland", "patient_id");
    let (_, b) = fhir
        .get(&format!("/AuditEvent?patient={me}&_count=500"))
        .await;
    let own: Vec<&Value> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["resource"]["agent"][0]["who"]["reference"] == format!("Patient/{me}")
                && e["resource"]["outcome"] == "0"
        })
        .collect();
    assert!(
        own.iter().any(|e| e["resource"]["entity"]
            .as_array()
            .is_some_and(|ents| ents.iter().any(|x| x["name"] == "Observation"))),
        "the page's look at the measurements is logged"
    );

    // Other audiences and anonymous visitors.
    let lege = Web::login(&app, "lege.lund").await;
    assert_eq!(lege.get("/me/record").await.0, 403);
    assert_eq!(lege.get("/relative").await.0, 403);
    let kari = Web::login(&app, "kari.haugland").await;
    assert_eq!(kari.get("/me/log").await.0, 403);
    assert_eq!(astrid.get("/relative").await.0, 403);
    let sorby = Web::login(&app, "lege.sorby").await;
    assert_eq!(sorby.get("/me/blocks").await.0, 403);
    let r = app
        .client
        .get(app.url("/me/record"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
}

#[tokio::test]
async fn the_access_log_shows_an_emergency_access_with_its_reason_in_plain_words() {
    let app = spawn_demo();
    let me = id_of(&app, "astrid.haugland", "patient_id");
    let who = stranger_to(&app, &me);
    let staff = Fhir::new(&app, &who);
    assert_eq!(staff.get(&format!("/Patient/{me}")).await.0, 403);
    let reason = "Pasienten ringte legevakten, trenger medisinlisten";
    let (s, v) = staff
        .post(
            &format!("/Patient/{me}/$emergency-access"),
            &json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": reason}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(staff.get(&format!("/Patient/{me}")).await.0, 200);
    // The daughter looks at what she may see.
    let kari = Web::login(&app, "kari.haugland").await;
    assert_eq!(kari.get(&format!("/relative/{me}")).await.0, 200);

    let astrid = Web::login(&app, "astrid.haugland").await;
    assert_eq!(astrid.get("/me/record").await.0, 200);
    let (s, page) = astrid.get("/me/log").await;
    assert_eq!(s, 200);
    let staff_name = match who.as_str() {
        "lege.lund" => "Ingrid Lund",
        "sykepleier.haugen" => "Marte Haugen",
        "sykepleier.dahl" => "Eirik Dahl",
        other => panic!("unexpected clinician {other}"),
    };
    assert!(page.contains(staff_name), "the log names the clinician");
    assert!(page.contains(reason), "the log shows the stated reason");
    assert!(page.contains(r#"id="emergency-summary""#));
    assert!(
        page.contains(r#"class="emergency""#),
        "the emergency row is highlighted"
    );
    assert!(page.contains("Nødtilgang"));
    assert!(
        page.contains("Kari Haugland"),
        "the relative's look is in the log"
    );
    assert!(page.contains("Pårørende, med ditt samtykke"));
    assert!(
        page.contains("Stoppet"),
        "the refused attempt before the emergency access is shown"
    );
    // The patient's own looks are left out unless asked for.
    assert!(!page.contains("<td data-label=\"Hvem\">Deg selv</td>"));
    let (_, with_own) = astrid.get("/me/log?own=1").await;
    assert!(with_own.contains("<td data-label=\"Hvem\">Deg selv</td>"));
    // A period without events, and a date that is not one.
    let (s, empty) = astrid.get("/me/log?from=2001-01-01&to=2001-01-31").await;
    assert_eq!(s, 200);
    assert!(!empty.contains(staff_name));
    let (s, bad) = astrid.get("/me/log?from=igår").await;
    assert_eq!(s, 400);
    assert!(bad.contains(r#"role="alert""#) && bad.contains(r#"aria-invalid="true""#));
    assert!(bad.contains(r#"value="igår""#), "what was typed is kept");
    // Looking at the log is itself logged.
    assert!(
        events(&app.dir).iter().any(|e| e["kind"] == "audit.search"
            && e["detail"].as_str().unwrap().contains("by the patient"))
    );
}

#[tokio::test]
async fn blocks_are_made_and_lifted_and_apply_on_the_very_next_request() {
    let app = spawn_demo();
    let me = id_of(&app, "astrid.haugland", "patient_id");
    let haugen = Fhir::new(&app, "sykepleier.haugen");
    let haugen_id = id_of(&app, "sykepleier.haugen", "person_id");
    assert_eq!(haugen.get(&format!("/Patient/{me}")).await.0, 200);
    let astrid = Web::login(&app, "astrid.haugland").await;
    let (_, page) = astrid.get("/me/blocks").await;
    assert!(page.contains("Marte Haugen"), "staff can be chosen by name");
    assert!(
        page.contains("nødtilgang"),
        "the page says what emergency access does to a block"
    );

    // Without the CSRF token: refused, nothing changes.
    let fields = [("kind", "person"), ("person", haugen_id.as_str())];
    let (s, _, _) = astrid.post("/me/blocks", &fields, false).await;
    assert_eq!(s, 403);
    assert_eq!(haugen.get(&format!("/Patient/{me}")).await.0, 200);
    // A block on nobody: the error in place, what was chosen kept.
    let (s, _, page) = astrid
        .post("/me/blocks", &[("kind", "person"), ("person", "")], true)
        .await;
    assert_eq!(s, 400);
    assert!(page.contains(r#"role="alert""#) && page.contains(r#"aria-invalid="true""#));
    assert!(page.contains(r#"value="person" checked"#));
    // A staff member of another tenant is nobody here.
    let sorby = id_of(&app, "lege.sorby", "person_id");
    let (s, _, _) = astrid
        .post(
            "/me/blocks",
            &[("kind", "person"), ("person", &sorby)],
            true,
        )
        .await;
    assert_eq!(s, 400);
    // An end date in the past.
    let (s, _, page) = astrid
        .post(
            "/me/blocks",
            &[
                ("kind", "person"),
                ("person", &haugen_id),
                ("until", "2001-01-01"),
            ],
            true,
        )
        .await;
    assert_eq!(s, 400);
    assert!(page.contains(r#"value="2001-01-01""#));

    let (s, loc, _) = astrid.post("/me/blocks", &fields, true).await;
    assert_eq!((s, loc.as_str()), (303, "/me/blocks?saved=created"));
    assert_eq!(haugen.get(&format!("/Patient/{me}")).await.0, 403);
    let (_, page) = astrid.get("/me/blocks?saved=created").await;
    assert!(page.contains(r#"role="status""#));
    assert!(page.contains("Marte Haugen kan ikke se journalen din."));
    let (s, _, _) = astrid.post("/me/blocks", &fields, true).await;
    assert_eq!(s, 400, "the same block twice is refused");
    assert!(events(&app.dir).iter().any(|e| {
        e["kind"] == "access.changed"
            && e["detail"]
                .as_str()
                .unwrap()
                .contains("patient block added")
    }));

    // Lifting it: access as before on the next request.
    let consent = consents_on(&page).into_iter().next().unwrap();
    let (s, _, _) = astrid
        .post("/me/blocks/lift", &[("consent", &consent)], false)
        .await;
    assert_eq!(s, 403, "lifting needs the CSRF token too");
    let (s, loc, _) = astrid
        .post("/me/blocks/lift", &[("consent", &consent)], true)
        .await;
    assert_eq!((s, loc.as_str()), (303, "/me/blocks?saved=lifted"));
    assert_eq!(haugen.get(&format!("/Patient/{me}")).await.0, 200);
    // Another patient's consent cannot be lifted from here.
    let berit = Web::login(&app, "berit.solberg").await;
    let (_, _, _) = astrid
        .post(
            "/me/blocks",
            &[("kind", "category"), ("category", "measurements")],
            true,
        )
        .await;
    let (_, page) = astrid.get("/me/blocks").await;
    let mine = consents_on(&page).into_iter().next().unwrap();
    let (s, _, _) = berit
        .post("/me/blocks/lift", &[("consent", &mine)], true)
        .await;
    assert!(s == 403 || s == 404, "got {s}");
    // The category block hides measurements from staff (the lab result stays), not the rest.
    let (_, obs) = haugen.get(&format!("/Observation?patient={me}")).await;
    assert_eq!(obs["total"], 1);
    assert_eq!(obs["entry"][0]["resource"]["code"]["text"], "HbA1c");
    let (_, meds) = haugen
        .get(&format!("/MedicationStatement?patient={me}"))
        .await;
    assert_eq!(meds["total"], 1);
}

#[tokio::test]
async fn relatives_consents_are_granted_changed_and_revoked() {
    let app = spawn_demo();
    let me = id_of(&app, "astrid.haugland", "patient_id");
    let kari_id = id_of(&app, "kari.haugland", "person_id");
    let kari_api = Fhir::new(&app, "kari.haugland");
    let astrid = Web::login(&app, "astrid.haugland").await;
    let kari = Web::login(&app, "kari.haugland").await;

    let (s, page) = astrid.get("/me/relatives").await;
    assert_eq!(s, 200);
    assert!(page.contains("Kari Haugland") && page.contains("datter"));
    assert!(page.contains("Avtaler") && page.contains("Meldinger"));
    assert!(page.contains("Lese (ikke endre)"));
    let consent = consents_on(&page).into_iter().next().unwrap();

    // The relative's own overview says the same.
    let (s, home) = kari.get("/relative").await;
    assert_eq!(s, 200);
    assert!(home.contains("Avtaler") && home.contains(&format!("/relative/{me}")));
    let (s, view) = kari.get(&format!("/relative/{me}")).await;
    assert_eq!(s, 200);
    assert!(view.contains("Hjemmebesøk"), "the appointment is shown");
    assert!(
        !view.contains("Metoprolol"),
        "medications are not consented"
    );

    // Widen the scope to medications: the next request sees them.
    let (s, _, page) = astrid
        .post("/me/relatives/scope", &[("consent", &consent)], true)
        .await;
    assert_eq!(s, 400, "no category chosen");
    assert!(page.contains(r#"role="alert""#));
    let fields = [
        ("consent", consent.as_str()),
        ("cat", "appointments"),
        ("cat", "medications"),
    ];
    let (s, _, _) = astrid.post("/me/relatives/scope", &fields, false).await;
    assert_eq!(s, 403, "no CSRF token");
    let (s, loc, _) = astrid.post("/me/relatives/scope", &fields, true).await;
    assert_eq!((s, loc.as_str()), (303, "/me/relatives?saved=changed"));
    let (_, meds) = kari_api
        .get(&format!("/MedicationStatement?patient={me}"))
        .await;
    assert_eq!(meds["total"], 1);
    let (_, view) = kari.get(&format!("/relative/{me}")).await;
    assert!(view.contains("Metoprolol"));

    // Revoke: nothing to see any more.
    let (s, loc, _) = astrid
        .post("/me/relatives/revoke", &[("consent", &consent)], true)
        .await;
    assert_eq!((s, loc.as_str()), (303, "/me/relatives?saved=revoked"));
    let (_, appts) = kari_api.get(&format!("/Appointment?patient={me}")).await;
    assert_eq!(appts["total"], 0);
    let (s, view) = kari.get(&format!("/relative/{me}")).await;
    assert_eq!(s, 200);
    assert!(!view.contains("Hjemmebesøk"));

    // Grant again, for appointments until a date.
    let (_, page) = astrid.get("/me/relatives").await;
    assert!(page.contains(r#"action="/me/relatives/grant""#));
    let (s, loc, _) = astrid
        .post(
            "/me/relatives/grant",
            &[
                ("relative", &kari_id),
                ("cat", "appointments"),
                ("until", "2099-12-31"),
            ],
            true,
        )
        .await;
    assert_eq!((s, loc.as_str()), (303, "/me/relatives?saved=granted"));
    let (_, appts) = kari_api.get(&format!("/Appointment?patient={me}")).await;
    assert_eq!(appts["total"], 1);
    let (_, page) = astrid.get("/me/relatives").await;
    assert!(page.contains("31.12.2099"));
    // Someone else's relative cannot be granted anything here.
    let magnus = id_of(&app, "magnus.solberg", "person_id");
    let (s, _, _) = astrid
        .post(
            "/me/relatives/grant",
            &[("relative", &magnus), ("cat", "appointments")],
            true,
        )
        .await;
    assert_eq!(s, 400);
    // A relative sees only patients they are linked to.
    let berit = id_of(&app, "berit.solberg", "patient_id");
    assert_eq!(kari.get(&format!("/relative/{berit}")).await.0, 404);
    assert!(
        events(&app.dir)
            .iter()
            .filter(|e| e["kind"] == "access.changed")
            .count()
            >= 3
    );
}

#[tokio::test]
async fn downloads_hold_the_record_and_the_access_log() {
    let app = spawn_demo();
    let me = id_of(&app, "astrid.haugland", "patient_id");
    let astrid = Web::login(&app, "astrid.haugland").await;
    astrid.get("/me/record").await;
    let (s, ct, cd, body) = astrid.download("/me/export/record.json").await;
    assert_eq!(s, 200, "{body}");
    assert!(ct.starts_with("application/fhir+json"));
    assert!(cd.starts_with("attachment;") && cd.contains(".json"));
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b["resourceType"], "Bundle");
    let types: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(types[0], "Patient");
    assert_eq!(b["entry"][0]["resource"]["id"], me.as_str());
    for t in [
        "Observation",
        "MedicationStatement",
        "Appointment",
        "Consent",
    ] {
        assert!(types.contains(&t), "the download lacks {t}");
    }
    assert_eq!(types.iter().filter(|t| **t == "Observation").count(), 17);
    assert!(
        !body.contains("bør ikke lese"),
        "withheld records are not in it"
    );

    let (s, ct, cd, csv) = astrid.download("/me/export/log.csv").await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("text/csv") && cd.contains(".csv"));
    assert!(csv.lines().count() > 2);
    assert!(csv.contains("\"Deg selv\""));
    let (s, _, _, json) = astrid.download("/me/export/log.json").await;
    assert_eq!(s, 200);
    let j: Value = serde_json::from_str(&json).unwrap();
    assert!(
        j["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "search" && e["basis"] == "own-record")
    );
    // Not for others.
    let kari = Web::login(&app, "kari.haugland").await;
    assert_eq!(kari.download("/me/export/record.json").await.0, 403);
}
