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

#[tokio::test]
async fn an_ended_care_relationship_stops_access_on_the_very_next_request() {
    let app = spawn_demo();
    let lege = Fhir::new(&app, "lege.lund");
    let pid = patients_of(&app, "lege.lund")[0].clone();
    assert_eq!(lege.get(&format!("/Patient/{pid}")).await.0, 200);
    let rels = stdout(&app.admin(&[
        "care",
        "list",
        "--tenant",
        "Nordby kommune",
        "--patient",
        &pid,
    ]));
    // The Legekontoret unit relationship is what gives the physician access.
    let ids: Vec<String> = rels
        .lines()
        .filter(|l| l.contains("\tunit ") && l.ends_with("\tactive"))
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert!(!ids.is_empty(), "{rels}");
    for id in &ids {
        stdout(&app.admin(&["care", "end", "--tenant", "Nordby kommune", "--id", id]));
    }
    let (s, oo) = lege.get(&format!("/Patient/{pid}")).await;
    assert_eq!(s, 403, "{oo}");
    let (_, b) = lege.get(&format!("/Observation?patient={pid}")).await;
    assert_eq!(b["total"], 0);
    let after = stdout(&app.admin(&[
        "care",
        "list",
        "--tenant",
        "Nordby kommune",
        "--patient",
        &pid,
    ]));
    assert!(
        ids.iter().all(|id| after
            .lines()
            .any(|l| l.starts_with(id.as_str()) && l.ends_with("\tinactive"))),
        "{after}"
    );
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
