//! The clinician's pages over real TLS: My patients lists exactly the active care
//! relationships, an overview shows only what the role permits (and is in the patient's access
//! log), a patient outside the care relationships is refused with the reason and the offer of
//! emergency access, whose form checks CSRF, reason and confirmation before anything opens;
//! the opening is then in the patient's log with its reason. Other audiences are refused.

use crate::fhir::Fhir;
use crate::helpers::*;
use reqwest::header::COOKIE;
use serde_json::Value;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn tour(app: &TestApp, field: &str) -> String {
    app.creds["tour"][field].as_str().unwrap().to_string()
}

#[tokio::test]
async fn my_patients_lists_the_active_care_relationships_with_basis_and_end() {
    let app = spawn_demo();
    let lund = Browser::login(&app, "lege.lund").await;
    let (s, page) = lund.get("/patients").await;
    assert_eq!(s, 200, "{page}");
    let patients = strings(&app.user("lege.lund")["patients"]);
    for p in &patients {
        assert!(
            page.contains(&format!("href=\"/patients/{p}\"")),
            "{p} missing"
        );
    }
    assert_eq!(
        page.matches("<a href=\"/patients/").count(),
        patients.len(),
        "only the patients in care are listed"
    );
    assert!(!page.contains(&tour(&app, "patient_name")));
    // The basis is the care team and its purpose; open-ended relationships say so.
    assert!(page.contains("Legekontoret: Fastlege"), "{page}");
    assert!(page.contains("uten sluttdato"));
    // In English by the language cookie.
    let r = app
        .client
        .get(app.url("/patients"))
        .header(COOKIE, format!("{}; __Host-tillit_lang=en", lund.s.cookie))
        .send()
        .await
        .unwrap();
    let en = r.text().await.unwrap();
    assert!(en.contains("<html lang=\"en\">") && en.contains("My patients"));
}

#[tokio::test]
async fn the_overview_shows_permitted_categories_charts_and_is_in_the_patients_log() {
    let app = spawn_demo();
    let astrid = app.user("astrid.haugland")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    let lund = Browser::login(&app, "lege.lund").await;
    let (s, page) = lund.get(&format!("/patients/{astrid}")).await;
    assert_eq!(s, 200, "{page}");
    assert!(
        page.contains("<svg") && page.contains("chart-range"),
        "no chart"
    );
    assert!(
        page.contains("Normalområde 50–100"),
        "no reference range in words"
    );
    assert!(page.contains("badge"), "no document status");
    assert!(!page.contains("style="), "no inline style");

    // A care assistant sees less of the same kind of record: never the lab results.
    let aas_patients = strings(&app.user("helsefagarbeider.aas")["patients"]);
    let aas = Browser::login(&app, "helsefagarbeider.aas").await;
    let (s, page) = aas.get(&format!("/patients/{}", aas_patients[0])).await;
    assert_eq!(s, 200, "{page}");
    assert!(
        !page.contains("id=\"cat-lab-results\""),
        "lab results shown to a care assistant"
    );
    assert!(page.contains("id=\"cat-measurements\""));
    // ...and is told that more exists, where that may be said (lab results are not sensitive).
    assert!(
        page.contains("Prøvesvar"),
        "the hidden category is not named"
    );

    // The page view is in Astrid's own access log, as an API read would be.
    let patient = Fhir::new(&app, "astrid.haugland");
    let (_, b) = patient.get(&format!("/AuditEvent?patient={astrid}")).await;
    let reads = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["subtype"][1]["code"] == "read")
        .count();
    assert!(reads >= 1, "{b}");
}

#[tokio::test]
async fn a_refusal_offers_emergency_access_which_checks_its_form_and_is_logged() {
    let app = spawn_demo();
    let id = tour(&app, "patient_id");
    let lund = Browser::login(&app, "lege.lund").await;

    // Found by national id (posted, never in a URL), then refused with the reason.
    let (s, loc, _) = lund
        .post(
            "/patients/find",
            &[("nid", &tour(&app, "patient_national_id"))],
            true,
        )
        .await;
    assert_eq!((s, loc.as_str()), (303, format!("/patients/{id}").as_str()));
    let (s, _, page) = lund
        .post("/patients/find", &[("nid", "12345678901")], true)
        .await;
    assert_eq!(s, 400);
    assert!(page.contains("aria-invalid=\"true\""), "{page}");
    let (s, page) = lund.get(&format!("/patients/{id}")).await;
    assert_eq!(s, 403, "{page}");
    assert!(page.contains("ingen aktiv behandlingsrelasjon"), "{page}");
    assert!(page.contains(&format!("action=\"/patients/{id}/emergency\"")));

    let path = format!("/patients/{id}/emergency");
    let reason = "Akutt innlagt, trenger medisinlisten nå";
    // Without the CSRF token: refused, nothing opens.
    let (s, _, _) = lund
        .post(
            &path,
            &[("reason", reason), ("minutes", "60"), ("confirm", "yes")],
            false,
        )
        .await;
    assert_eq!(s, 403);
    // Too short a reason, or no confirmation: the form again, with the error in place.
    let (s, _, page) = lund
        .post(
            &path,
            &[("reason", "akutt"), ("minutes", "60"), ("confirm", "yes")],
            true,
        )
        .await;
    assert_eq!(s, 400);
    assert!(page.contains("aria-invalid=\"true\"") && page.contains(">akutt</textarea>"));
    let (s, _, _) = lund
        .post(&path, &[("reason", reason), ("minutes", "60")], true)
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        lund.get(&format!("/patients/{id}")).await.0,
        403,
        "opened too early"
    );

    let (s, loc, _) = lund
        .post(
            &path,
            &[("reason", reason), ("minutes", "60"), ("confirm", "yes")],
            true,
        )
        .await;
    assert_eq!(
        (s, loc.as_str()),
        (303, format!("/patients/{id}?emergency=1").as_str())
    );
    let (s, page) = lund.get(&format!("/patients/{id}?emergency=1")).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("danger-box") && page.contains("nødtilgang"));
    let (_, list) = lund.get("/patients").await;
    assert!(
        list.contains(reason),
        "My patients does not list the open emergency access"
    );

    // The patient's log has the opening with its reason, and the reads under it.
    let patient = Fhir::new(&app, &tour(&app, "patient_username"));
    let (_, b) = patient.get(&format!("/AuditEvent?patient={id}")).await;
    let text = b.to_string();
    assert!(text.contains(reason), "{b}");
}

#[tokio::test]
async fn other_audiences_are_refused_the_clinician_pages() {
    let app = spawn_demo();
    let id = tour(&app, "patient_id");
    for user in [
        "astrid.haugland",
        "kari.haugland",
        "sikkerhet.moe",
        "admin.nilsen",
    ] {
        let b = Browser::login(&app, user).await;
        for path in ["/patients".to_string(), format!("/patients/{id}")] {
            let (s, page) = b.get(&path).await;
            assert_eq!(s, 403, "{user} {path}");
            assert!(page.contains("<h1>"), "a readable page, not JSON");
        }
        let (s, _, _) = b
            .post(
                &format!("/patients/{id}/emergency"),
                &[
                    ("reason", "Akutt innlagt, trenger medisinlisten"),
                    ("confirm", "yes"),
                ],
                true,
            )
            .await;
        assert_eq!(s, 403, "{user}");
    }
    // Another tenant's physician does not even learn that the patient exists.
    let sorby = Browser::login(&app, "lege.sorby").await;
    assert_eq!(sorby.get(&format!("/patients/{id}")).await.0, 404);
    // Without a session: to the login page.
    let r = app.client.get(app.url("/patients")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
}
