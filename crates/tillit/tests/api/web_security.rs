//! The security officer's pages (issue 6) against the real server over TLS: the alert queue
//! and an alert's decision, the audit search, emergency-access reviews, deviations with the
//! breach clock, and the log's checkpoints with "verify now". Each page is for the security
//! officer of its own tenant only, every form needs its CSRF token, validation errors show in
//! place, and every look at the log is itself in the log.

use crate::fhir::Fhir;
use crate::helpers::*;
use serde_json::{Value, json};

const PAGES: &[&str] = &[
    "/security/alerts",
    "/security/audit",
    "/security/emergency",
    "/security/deviations",
    "/security/checkpoints",
];

async fn get(app: &TestApp, s: &Session, path: &str) -> (u16, String) {
    let r = app
        .client
        .get(app.url(path))
        .headers(s.headers())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// Posts a form; returns the status, the redirect target and the body.
async fn post(
    app: &TestApp,
    s: &Session,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let r = app
        .client
        .post(app.url(path))
        .headers(s.headers())
        .header("accept", "text/html")
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

/// A patient of the tenant that `user` has no care relationship with.
fn stranger_of(app: &TestApp, user: &str) -> String {
    let mine: Vec<Value> = app.user(user)["patients"].as_array().unwrap().clone();
    app.user("sykepleier.dahl")["patients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| !mine.contains(p))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// Opens emergency access for `user` to `patient` through the API; returns the access id.
async fn open_emergency(app: &TestApp, user: &str, patient: &str, reason: &str) -> String {
    let staff = Fhir::new(app, user);
    let body = json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": reason}]});
    let (s, b) = staff
        .post(&format!("/Patient/{patient}/$emergency-access"), &body)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(staff.get(&format!("/Patient/{patient}")).await.0, 200);
    b["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "id")
        .unwrap()["valueString"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The open alert of `rule` about `patient`, from the JSON queue.
async fn alert_about(app: &TestApp, so: &Session, rule: &str, patient: &str) -> String {
    let r = app
        .client
        .get(app.url("/admin/alerts"))
        .headers(so.headers())
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    b["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == rule && a["patient"]["id"] == patient)
        .unwrap_or_else(|| panic!("no {rule} alert about {patient}: {b}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The officer's own AuditEvent search: events of `subtype` about `patient` by the officer.
async fn officer_looks_at(app: &TestApp, patient: &str) -> usize {
    let so = Fhir::new(app, "sikkerhet.moe");
    let me = format!(
        "Practitioner/{}",
        app.user("sikkerhet.moe")["person_id"].as_str().unwrap()
    );
    let (s, b) = so
        .get(&format!(
            "/AuditEvent?patient={patient}&subtype=audit.search&_count=500"
        ))
        .await;
    assert_eq!(s, 200, "{b}");
    b["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["resource"]["agent"][0]["who"]["reference"] == me.as_str())
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn the_pages_are_for_the_security_officer_of_the_tenant_only() {
    let app = spawn_demo();
    let so = app.session("sikkerhet.moe").await;
    for path in PAGES {
        let (s, html) = get(&app, &so, path).await;
        assert_eq!(s, 200, "{path}: {html}");
        assert!(html.contains("<h1>"), "{path} has no heading");
        assert!(
            html.contains(&format!("href=\"{path}\" aria-current=\"page\"")),
            "{path} is not marked in the menu"
        );
        assert!(!html.contains("??"), "{path} shows a missing text");
    }
    // The area's root is the queue.
    let r = app
        .client
        .get(app.url("/security"))
        .headers(so.headers())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/security/alerts");

    // A clinician and a patient are refused with the readable 403 page.
    for user in ["lege.lund", "astrid.haugland"] {
        let other = app.session(user).await;
        for path in PAGES {
            let (s, html) = get(&app, &other, path).await;
            assert_eq!(s, 403, "{user} {path}");
            assert!(html.contains("<h1>"), "{user} {path}: {html}");
        }
        let (s, _, _) = post(
            &app,
            &other,
            "/security/checkpoints/sign",
            &[("csrf", other.csrf())],
        )
        .await;
        assert_eq!(s, 403);
    }
    // An API token is not a browser session.
    let r = app
        .client
        .get(app.url("/security/alerts"))
        .bearer_auth(app.user("sikkerhet.moe")["api_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Without a session: to the login page.
    let r = app
        .client
        .get(app.url("/security/alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // The security officer of another tenant sees nothing of this one.
    let patient = stranger_of(&app, "lege.lund");
    open_emergency(
        &app,
        "lege.lund",
        &patient,
        "Akutt innleggelse, trenger medisinliste",
    )
    .await;
    let alert = alert_about(&app, &so, "emergency", &patient).await;
    let sorby = app.user("lege.sorby");
    stdout(&app.admin(&[
        "role",
        "assign",
        "--tenant",
        sorby["tenant_id"].as_str().unwrap(),
        "--person",
        sorby["person_id"].as_str().unwrap(),
        "--role",
        "security_officer",
        "--unit",
        "Medisinsk avdeling",
        "--from",
        "2020-01-01",
    ]));
    let other = app.session("lege.sorby").await;
    let (s, _) = get(&app, &other, "/security/alerts").await;
    assert_eq!(s, 200);
    let (s, _) = get(&app, &other, &format!("/security/alerts/{alert}")).await;
    assert_eq!(s, 404);
    let (s, _, _) = post(
        &app,
        &other,
        &format!("/security/alerts/{alert}/decision"),
        &[
            ("csrf", other.csrf()),
            ("decision", "justified"),
            ("note", "Ser greit ut"),
        ],
    )
    .await;
    assert_eq!(s, 404);
    let (s, html) = get(&app, &other, &format!("/security/audit?patient={patient}")).await;
    assert_eq!(s, 400, "another tenant's patient is known");
    assert!(html.contains("id=\"patient-error\""));
    assert!(
        !html.contains("<tbody>"),
        "another tenant's events are shown"
    );
    let (s, html) = get(&app, &other, "/security/audit").await;
    assert_eq!(s, 200);
    assert!(
        !html.contains("Ingrid Lund"),
        "another tenant's staff are shown"
    );
    let (s, html) = get(&app, &other, "/security/emergency").await;
    assert_eq!(s, 200);
    assert!(!html.contains("Akutt innleggelse"));
    // The alert is still open in its own tenant.
    let (_, html) = get(&app, &so, &format!("/security/alerts/{alert}")).await;
    assert!(html.contains("id=\"decide\""));
}

#[tokio::test]
async fn an_emergency_access_is_reviewed_and_closed_as_a_breach() {
    let app = spawn_demo();
    let patient = stranger_of(&app, "lege.lund");
    let reason = "Ringt av legevakten, pasienten er akutt syk";
    open_emergency(&app, "lege.lund", &patient, reason).await;
    let so = app.session("sikkerhet.moe").await;

    // The queue lists it, newest first, with a link to the detail.
    let alert = alert_about(&app, &so, "emergency", &patient).await;
    let (s, html) = get(&app, &so, "/security/alerts").await;
    assert_eq!(s, 200);
    assert!(
        html.contains(&format!("href=\"/security/alerts/{alert}\"")),
        "{html}"
    );
    assert!(html.contains("Ingrid Lund"), "the actor is not named");

    // The emergency page shows the access, its reason, what was read and the alert.
    let (s, html) = get(&app, &so, "/security/emergency").await;
    assert_eq!(s, 200);
    assert!(html.contains(reason), "{html}");
    assert!(html.contains(&format!("href=\"/security/alerts/{alert}\"")));
    assert!(html.contains(&format!("patient={patient}")));

    // The detail shows the events behind it; looking is logged about the patient.
    let before = officer_looks_at(&app, &patient).await;
    let (s, html) = get(&app, &so, &format!("/security/alerts/{alert}")).await;
    assert_eq!(s, 200);
    assert!(html.contains(reason), "the stated reason is not shown");
    assert!(html.contains("Åpnet nødtilgang"), "{html}");
    assert!(officer_looks_at(&app, &patient).await > before);

    // The decision: CSRF first, then validation in place keeping what was typed.
    let path = format!("/security/alerts/{alert}/decision");
    let (s, _, _) = post(
        &app,
        &so,
        &path,
        &[("decision", "deviation"), ("note", "Ingen grunn")],
    )
    .await;
    assert_eq!(s, 403);
    let (s, _, _) = post(
        &app,
        &so,
        &path,
        &[
            ("csrf", "not-the-token"),
            ("decision", "deviation"),
            ("note", "Ingen grunn"),
        ],
    )
    .await;
    assert_eq!(s, 403);
    let (s, _, html) = post(
        &app,
        &so,
        &path,
        &[
            ("csrf", so.csrf()),
            ("decision", "deviation"),
            ("note", "nei"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(html.contains("id=\"note-error\" role=\"alert\""), "{html}");
    assert!(html.contains("aria-invalid=\"true\""));
    assert!(html.contains(">nei</textarea>"), "the note was not kept");
    assert!(
        html.contains("value=\"deviation\" checked"),
        "the choice was not kept"
    );
    let (s, _, html) = post(
        &app,
        &so,
        &path,
        &[
            ("csrf", so.csrf()),
            ("decision", "justified"),
            ("note", "Akutt, i orden"),
            ("breach", "1"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        html.contains("id=\"breach-error\" role=\"alert\""),
        "{html}"
    );
    let (s, _, html) = post(
        &app,
        &so,
        &path,
        &[("csrf", so.csrf()), ("note", "Uten valg her")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(html.contains("id=\"decision-error\""), "{html}");

    let note = "Ingen behandlingsrelasjon og ikke akutt";
    let (s, location, _) = post(
        &app,
        &so,
        &path,
        &[
            ("csrf", so.csrf()),
            ("decision", "deviation"),
            ("note", note),
            ("breach", "1"),
        ],
    )
    .await;
    assert_eq!(
        (s, location.as_str()),
        (303, "/security/alerts?decided=deviation")
    );
    let (_, html) = get(&app, &so, &location).await;
    assert!(html.contains("role=\"status\""), "no confirmation");
    assert!(
        !html.contains(&format!("/security/alerts/{alert}\"")),
        "still in the open queue"
    );
    let (_, html) = get(&app, &so, "/security/alerts?status=deviation").await;
    assert!(html.contains(&format!("/security/alerts/{alert}\"")));

    // The same security event as the API.
    assert!(
        events(&app.dir)
            .iter()
            .any(|e| e["kind"] == "alert.reviewed"
                && e["detail"].as_str().unwrap().contains(&alert)
                && e["detail"]
                    .as_str()
                    .unwrap()
                    .contains("personal-data breach")),
        "no alert.reviewed event"
    );

    // Deviations: the breach clock runs from the decision (71 hours and some left).
    let (s, html) = get(&app, &so, "/security/deviations").await;
    assert_eq!(s, 200);
    assert!(html.contains(&format!("href=\"/security/alerts/{alert}\"")));
    assert!(html.contains(note));
    assert!(html.contains("71 t igjen"), "{html}");
    assert!(html.contains("class=\"badge warn\">71 t igjen"));

    // Closed: the detail shows the decision instead of the form; a second decision is refused.
    let (_, html) = get(&app, &so, &format!("/security/alerts/{alert}")).await;
    assert!(!html.contains("id=\"decide\""));
    assert!(html.contains(note));
    let (s, _, html) = post(
        &app,
        &so,
        &path,
        &[
            ("csrf", so.csrf()),
            ("decision", "justified"),
            ("note", "Likevel i orden"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(html.contains("role=\"alert\""), "{html}");

    // The emergency page now shows it as reviewed.
    let (_, html) = get(&app, &so, "/security/emergency").await;
    assert!(html.contains("Se vurderingen"), "{html}");
}

#[tokio::test]
async fn an_emergency_access_without_an_alert_is_taken_up_for_review() {
    let app = spawn_demo();
    let so = app.session("sikkerhet.moe").await;
    // The tenant has switched its emergency rule off.
    let r = app
        .client
        .get(app.url("/admin/review-rules"))
        .headers(so.headers())
        .send()
        .await
        .unwrap();
    let mut rules: Value = r.json::<Value>().await.unwrap()["rules"].clone();
    for rule in rules["rules"].as_array_mut().unwrap() {
        if rule["id"] == "emergency" {
            rule["enabled"] = json!(false);
        }
    }
    let r = app
        .client
        .put(app.url("/admin/review-rules"))
        .headers(so.headers())
        .header("x-csrf-token", so.csrf())
        .json(&rules)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let patient = stranger_of(&app, "lege.lund");
    let access = open_emergency(
        &app,
        "lege.lund",
        &patient,
        "Pasienten falt, trenger oversikt",
    )
    .await;

    let (s, html) = get(&app, &so, "/security/emergency").await;
    assert_eq!(s, 200);
    let action = format!("/security/emergency/{access}/review");
    assert!(html.contains(&format!("action=\"{action}\"")), "{html}");
    let (s, _, _) = post(&app, &so, &action, &[]).await;
    assert_eq!(s, 403, "taken up without CSRF");
    let (s, location, _) = post(&app, &so, &action, &[("csrf", so.csrf())]).await;
    assert_eq!(s, 303);
    assert!(location.starts_with("/security/alerts/") && location.ends_with("#decision"));
    let alert = location
        .trim_start_matches("/security/alerts/")
        .trim_end_matches("#decision")
        .to_string();
    // Taking it up twice opens the same alert.
    let (_, again, _) = post(&app, &so, &action, &[("csrf", so.csrf())]).await;
    assert_eq!(again, location);
    let (s, html) = get(&app, &so, &format!("/security/alerts/{alert}")).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("Pasienten falt"),
        "the opening event is not behind it"
    );
    let (s, location, _) = post(
        &app,
        &so,
        &format!("/security/alerts/{alert}/decision"),
        &[
            ("csrf", so.csrf()),
            ("decision", "justified"),
            ("note", "Fall i hjemmet, akutt"),
        ],
    )
    .await;
    assert_eq!(
        (s, location.as_str()),
        (303, "/security/alerts?decided=justified")
    );
    let (_, html) = get(&app, &so, "/security/emergency").await;
    assert!(!html.contains(&format!("action=\"{action}\"")));
    assert!(html.contains("badge ok"), "{html}");
}

#[tokio::test]
async fn the_audit_search_filters_pages_and_is_itself_logged() {
    let app = spawn_demo();
    let lege = Fhir::new(&app, "lege.lund");
    let mine = app.user("lege.lund")["patients"][0]
        .as_str()
        .unwrap()
        .to_string();
    let stranger = stranger_of(&app, "lege.lund");
    // Enough events for more than one page.
    for _ in 0..55 {
        assert_eq!(lege.get(&format!("/Patient/{mine}")).await.0, 200);
    }
    assert_eq!(lege.get(&format!("/Patient/{stranger}")).await.0, 403);
    let so = app.session("sikkerhet.moe").await;
    let lund = app.user("lege.lund")["person_id"].as_str().unwrap();

    // By person and outcome: the refusal, and nothing allowed.
    let before = officer_looks_at(&app, &stranger).await;
    let (s, html) = get(
        &app,
        &so,
        &format!("/security/audit?actor={lund}&patient={stranger}&outcome=denied"),
    )
    .await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("badge danger\">Avvist"), "{html}");
    assert!(!html.contains("badge ok\">Tillatt"));
    assert!(html.contains(&format!("<option value=\"{lund}\" selected>")));
    assert!(
        officer_looks_at(&app, &stranger).await > before,
        "the search is not logged"
    );

    // By category: the demographics read, not the rest.
    let (s, html) = get(
        &app,
        &so,
        &format!("/security/audit?patient={mine}&category=demographics&action=read"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(html.contains("data-label=\"Hva\">Personalia"), "{html}");
    let (_, html) = get(
        &app,
        &so,
        &format!("/security/audit?patient={mine}&category=mental-health&action=read"),
    )
    .await;
    assert!(!html.contains("<tbody>"), "{html}");

    // Validation in place, keeping what was typed.
    let (s, html) = get(&app, &so, "/security/audit?from=2026-02-31&patient=hvem").await;
    assert_eq!(s, 400);
    assert!(html.contains("id=\"from-error\" role=\"alert\""), "{html}");
    assert!(html.contains("id=\"patient-error\" role=\"alert\""));
    assert!(html.contains("value=\"hvem\""));
    let (s, html) = get(&app, &so, "/security/audit?from=2026-03-02&to=2026-03-01").await;
    assert_eq!(s, 400);
    assert!(html.contains("id=\"to-error\""), "{html}");

    // Pages of 50, newest first, with a link to the older ones.
    let (s, html) = get(&app, &so, "/security/audit").await;
    assert_eq!(s, 200);
    let rows = html.matches("<tr>").count() - 1;
    assert_eq!(rows, 50, "a page holds 50 events");
    let older = html
        .split("href=\"/security/audit?")
        .find_map(|rest| {
            let (q, tail) = rest.split_once('"')?;
            tail.starts_with(" id=\"older\"")
                .then(|| q.replace("&amp;", "&"))
        })
        .expect("no link to older events");
    let (s, html) = get(&app, &so, &format!("/security/audit?{older}")).await;
    assert_eq!(s, 200);
    assert!(html.contains("<tbody>"));
}

#[tokio::test]
async fn checkpoints_are_signed_and_the_whole_log_is_verified() {
    let app = spawn_demo();
    let lege = Fhir::new(&app, "lege.lund");
    let mine = app.user("lege.lund")["patients"][0]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..5 {
        assert_eq!(lege.get(&format!("/Patient/{mine}")).await.0, 200);
    }
    let so = app.session("sikkerhet.moe").await;
    let (s, html) = get(&app, &so, "/security/checkpoints").await;
    assert_eq!(s, 200);
    assert!(html.contains("nøkkel-ID"), "{html}");

    let (s, _, _) = post(&app, &so, "/security/checkpoints/sign", &[]).await;
    assert_eq!(s, 403);
    let (s, location, _) = post(
        &app,
        &so,
        "/security/checkpoints/sign",
        &[("csrf", so.csrf())],
    )
    .await;
    assert_eq!(s, 303);
    assert!(
        location.starts_with("/security/checkpoints?signed="),
        "{location}"
    );
    let (_, html) = get(&app, &so, &location).await;
    assert!(
        html.contains("badge ok"),
        "the latest checkpoint does not verify: {html}"
    );

    let (s, _, _) = post(&app, &so, "/security/checkpoints/verify", &[]).await;
    assert_eq!(s, 403);
    let (s, _, html) = post(
        &app,
        &so,
        "/security/checkpoints/verify",
        &[("csrf", so.csrf())],
    )
    .await;
    assert_eq!(s, 200);
    assert!(html.contains("Loggen er hel"), "{html}");

    // An entry changed behind the server's back is named.
    let tenant = app.user("sikkerhet.moe")["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let conn = rusqlite::Connection::open(app.dir.join("tillit.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.execute_batch("DROP TRIGGER audit_events_no_update;")
        .unwrap();
    conn.execute(
        "UPDATE audit_events SET payload_hash = zeroblob(32) WHERE tenant_id = ?1 AND seq = 3",
        [&tenant],
    )
    .unwrap();
    let (s, _, html) = post(
        &app,
        &so,
        "/security/checkpoints/verify",
        &[("csrf", so.csrf())],
    )
    .await;
    assert_eq!(s, 200);
    assert!(html.contains("Loggen er endret"), "{html}");
    assert!(html.contains("Hendelse #3 er endret"), "{html}");
}
