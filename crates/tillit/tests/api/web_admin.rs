//! The tenant admin's pages (`/manage/...`) over real TLS: each renders for the admin with the
//! tenant's data and is refused to other audiences; forms need the CSRF token, show their
//! errors in place and keep what was typed; changes take effect (a care relationship made here
//! opens a clinician's access, ending it closes it) and land in the audit log as security
//! events, through the same functions as the JSON API.

use crate::helpers::*;
use reqwest::header::{ACCEPT, COOKIE};
use serde_json::Value;

const ADMIN: &str = "admin.nilsen";

struct Page {
    status: u16,
    location: String,
    body: String,
}

async fn get(app: &TestApp, s: &Session, path: &str) -> Page {
    let r = app
        .client
        .get(app.url(path))
        .header(COOKIE, &s.cookie)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    page(r).await
}

async fn page(r: reqwest::Response) -> Page {
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    Page {
        status,
        location,
        body: r.text().await.unwrap(),
    }
}

/// Posts a form the way the browser does, with the session's CSRF token unless `csrf` is
/// false.
async fn post_form(
    app: &TestApp,
    s: &Session,
    path: &str,
    fields: &[(&str, &str)],
    csrf: bool,
) -> Page {
    let mut all: Vec<(&str, &str)> = fields.to_vec();
    if csrf {
        all.push(("csrf", s.csrf()));
    }
    let r = app
        .client
        .post(app.url(path))
        .header(COOKIE, &s.cookie)
        .header(ACCEPT, "text/html")
        .header("origin", &app.base)
        .form(&all)
        .send()
        .await
        .unwrap();
    page(r).await
}

async fn post(app: &TestApp, s: &Session, path: &str, fields: &[(&str, &str)]) -> Page {
    post_form(app, s, path, fields, true).await
}

/// The value of the first `attr="..."` after `marker` in `html`.
fn attr_after(html: &str, marker: &str, attr: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the page"));
    let rest = &html[at..];
    let start = rest.find(&format!("{attr}=\"")).unwrap() + attr.len() + 2;
    rest[start..start + rest[start..].find('"').unwrap()].to_string()
}

/// The text after `marker` up to the next tag.
fn text_of(html: &str, marker: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the page"))
        + marker.len();
    html[at..at + html[at..].find('<').unwrap()].to_string()
}

/// The `value` of the `<option>` whose text is `label`.
fn option_value(html: &str, label: &str) -> String {
    let end = html
        .find(&format!("\">{label}</option>"))
        .unwrap_or_else(|| panic!("no option {label}"));
    let start = html[..end].rfind("value=\"").unwrap() + 7;
    html[start..end].to_string()
}

fn events_of_kind(app: &TestApp, kind: &str) -> Vec<Value> {
    events(&app.dir)
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

async fn fhir_status(app: &TestApp, token: &str, path: &str) -> u16 {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_admin_pages_are_for_the_tenant_admin_only() {
    let app = spawn_demo();
    let admin = app.session(ADMIN).await;
    let tenant_id = app.user(ADMIN)["tenant_id"].as_str().unwrap().to_string();
    let pages: [(&str, &[&str]); 7] = [
        (
            "/manage/people",
            &[
                "id=\"staff\"",
                "Ingrid Lund",
                "sykepleier.haugen",
                "Navn er skjult for administratorer",
                "Kari Haugland",
            ],
        ),
        (
            "/manage/roles",
            &[
                "id=\"roles\"",
                "Lege",
                "Legekontoret",
                "Registrert av administrator",
            ],
        ),
        (
            "/manage/care",
            &[
                "id=\"care\"",
                "Hjemmesykepleie, vedtak",
                "Fra journalsystemet (CareTeam)",
                "id=\"team-list\"",
                "Marte Haugen (Sykepleier)",
            ],
        ),
        (
            "/manage/policies",
            &[
                "<textarea id=\"policies\"",
                "tenant.physician",
                "Standardregler",
                "id=\"review-rules\"",
            ],
        ),
        (
            "/manage/support",
            &["id=\"support-grants\"", "id=\"grant-support\""],
        ),
        (
            "/manage/status",
            &[
                "tenant/",
                "id=\"kek-check\"",
                "id=\"audit-size\"",
                "id=\"backup-status\"",
                "Ingen sikkerhetskopiering er satt opp",
            ],
        ),
        ("/manage", &[]),
    ];
    for (path, expected) in pages {
        let p = get(&app, &admin, path).await;
        if path == "/manage" {
            assert_eq!((p.status, p.location.as_str()), (303, "/manage/people"));
            continue;
        }
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        for e in expected {
            assert!(p.body.contains(e), "{path} does not show {e}");
        }
        assert_eq!(p.body.matches("<h1").count(), 1, "{path} has one h1");
        assert!(!p.body.contains(" style="), "{path} has inline style");
        assert!(!p.body.contains("<script>"), "{path} has inline script");
    }
    let status = get(&app, &admin, "/manage/status").await.body;
    assert!(status.contains(&format!("tenant/{tenant_id}")));
    let check = text_of(&status, "id=\"kek-check\">");
    assert_eq!(check.len(), 16, "a check value, not a key: {check}");
    assert!(check.chars().all(|c| c.is_ascii_hexdigit()));

    // Patients appear by id only: no name, and no username (which is often a name).
    let people = get(&app, &admin, "/manage/people").await.body;
    let astrid = app.user("astrid.haugland");
    assert!(people.contains(astrid["patient_id"].as_str().unwrap()));
    assert!(!people.contains("astrid.haugland"));
    assert!(!people.contains("Astrid"));

    // Other audiences get the refusal page, the admin's English session the English page.
    let doctor = app.session("lege.lund").await;
    let patient = app.session("astrid.haugland").await;
    let officer = app.session("sikkerhet.moe").await;
    for path in [
        "/manage/people",
        "/manage/roles",
        "/manage/care",
        "/manage/policies",
        "/manage/support",
        "/manage/status",
    ] {
        for s in [&doctor, &patient, &officer] {
            let p = get(&app, s, path).await;
            assert_eq!(p.status, 403, "{path}");
            assert!(
                p.body.contains("Ingen tilgang"),
                "{path}: a readable refusal"
            );
        }
        let anonymous = app
            .client
            .get(app.url(path))
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 303, "{path}");
        // An API token is for the API, not the pages.
        let token = app
            .client
            .get(app.url(path))
            .bearer_auth(app.user(ADMIN)["api_token"].as_str().unwrap())
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 403, "{path}");
    }
    // Posts of other audiences are refused before anything changes.
    let p = post(
        &app,
        &doctor,
        "/manage/support",
        &[
            ("operator", "drift.olsen"),
            ("minutes", "60"),
            ("reason", "Sak 42"),
        ],
    )
    .await;
    assert_eq!(p.status, 403);
    let english = app
        .client
        .get(app.url("/manage/people"))
        .header(COOKIE, format!("{}; __Host-tillit_lang=en", admin.cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(english.contains("Names are hidden from administrators"));
}

#[tokio::test]
async fn a_staff_member_is_created_with_an_account_that_logs_in() {
    let app = spawn_demo();
    let admin = app.session(ADMIN).await;
    let people = get(&app, &admin, "/manage/people").await.body;
    let unit = option_value(&people, "– Legekontoret");

    // Without the CSRF token nothing happens.
    let p = post_form(
        &app,
        &admin,
        "/manage/people",
        &[("name", "Ola Nordmann"), ("username", "ola.nordmann")],
        false,
    )
    .await;
    assert_eq!(p.status, 403);

    // Errors show at the field, keep what was typed and never echo the password.
    let p = post(
        &app,
        &admin,
        "/manage/people",
        &[
            ("name", "Ola Nordmann"),
            ("hpr", "1234567"),
            ("username", "lege.lund"),
            ("password", "lang-nok-passord"),
            ("role", "nurse"),
            ("unit", &unit),
        ],
    )
    .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("Brukernavnet er allerede i bruk"));
    assert!(p.body.contains("role=\"alert\""));
    let username_input = &p.body[p.body.find("id=\"new-username\"").unwrap()..];
    let username_input = &username_input[..username_input.find('>').unwrap()];
    assert!(username_input.contains("aria-invalid=\"true\""));
    assert!(username_input.contains("value=\"lege.lund\""));
    assert!(p.body.contains("value=\"Ola Nordmann\""));
    assert!(!p.body.contains("lang-nok-passord"));
    let p = post(
        &app,
        &admin,
        "/manage/people",
        &[
            ("name", "Ola Nordmann"),
            ("username", "ola.nordmann"),
            ("password", "kort"),
        ],
    )
    .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("Passordet er for kort"));
    let p = post(
        &app,
        &admin,
        "/manage/people",
        &[
            ("name", "Ola Nordmann"),
            ("username", "ola.nordmann"),
            ("role", "nurse"),
        ],
    )
    .await;
    assert_eq!(p.status, 400, "a role needs a unit");

    // Created, with a generated password shown once and a first role.
    let p = post(
        &app,
        &admin,
        "/manage/people",
        &[
            ("name", "Ola Nordmann"),
            ("hpr", "1234567"),
            ("username", "Ola.Nordmann"),
            ("password", ""),
            ("role", "nurse"),
            ("unit", &unit),
        ],
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("Ola Nordmann er lagt til"));
    assert_eq!(text_of(&p.body, "id=\"created-username\">"), "ola.nordmann");
    let password = text_of(&p.body, "id=\"created-password\">");
    assert_eq!(password.len(), 20);
    let again = get(&app, &admin, "/manage/people").await.body;
    assert!(!again.contains(&password), "the password is shown once");
    assert!(again.contains("Sykepleier (Legekontoret)"));
    assert!(again.contains("Tofaktor er ikke satt opp"));

    // The account logs in and, as staff, goes on to set up TOTP.
    let r = app
        .login(serde_json::json!({"username": "ola.nordmann", "password": password}))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "totp_enrollment_required");

    let created = events_of_kind(&app, "access.changed");
    assert!(
        created.iter().any(|e| {
            let d = e["detail"].as_str().unwrap();
            d.contains("created with account") && d.contains("role nurse")
        }),
        "{created:?}"
    );
    // The CLI's creation goes through the same shared code and still works.
    let tenant = app.user(ADMIN)["tenant"].as_str().unwrap().to_string();
    let out = stdout(&app.admin(&[
        "person", "create", "--tenant", &tenant, "--kind", "staff", "--name", "Kari CLI",
    ]));
    let pid = out.trim().to_string();
    assert!(
        get(&app, &admin, "/manage/people")
            .await
            .body
            .contains("Kari CLI")
    );
    let out = app.admin(&[
        "user",
        "create",
        "--tenant",
        &tenant,
        "--person",
        &pid,
        "--username",
        "ola.nordmann",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("taken"));
}

#[tokio::test]
async fn a_locked_account_is_unlocked_by_the_admin() {
    let app = spawn_demo();
    let admin = app.session(ADMIN).await;
    for _ in 0..6 {
        let _ = app
            .login(serde_json::json!({"username": "berit.solberg", "password": "wrong-password-x"}))
            .await;
    }
    let people = get(&app, &admin, "/manage/people").await.body;
    assert!(people.contains("Låst til"), "the lockout shows");
    let at = people.find("/unlock\"").unwrap();
    let start = people[..at].rfind("action=\"").unwrap() + 8;
    let path = format!("{}/unlock", &people[start..at]);
    let p = post(&app, &admin, &path, &[]).await;
    assert_eq!(
        (p.status, p.location.as_str()),
        (303, "/manage/people?unlocked=1")
    );
    let people = get(&app, &admin, "/manage/people?unlocked=1").await.body;
    assert!(!people.contains("Låst til"));
    assert!(people.contains("Kontoen er låst opp"));
    let r = app
        .login(serde_json::json!({"username": "berit.solberg", "password": app.user("berit.solberg")["password"]}))
        .await;
    assert_eq!(r.status(), 200);
    // An unknown account is not found.
    let p = post(&app, &admin, "/manage/accounts/not-an-account/unlock", &[]).await;
    assert_eq!(p.status, 404);
}

#[tokio::test]
async fn a_care_relationship_made_here_opens_access_and_ending_it_closes_it() {
    let app = spawn_demo();
    let admin = app.session(ADMIN).await;
    let doctor = app.user("lege.lund");
    let token = doctor["api_token"].as_str().unwrap().to_string();
    // Ragnhild Fjeld's record: no one has a care relationship with her.
    let patient = app.user("ragnhild.fjeld")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        fhir_status(&app, &token, &format!("/fhir/r4/Patient/{patient}")).await,
        403
    );

    let care = get(&app, &admin, "/manage/care").await.body;
    let lund = option_value(&care, "Ingrid Lund");

    // Errors in place, nothing added.
    let p = post(
        &app,
        &admin,
        "/manage/care",
        &[
            ("patient", &patient),
            ("party", "staff"),
            ("staff", &lund),
            ("purpose", ""),
        ],
    )
    .await;
    assert_eq!(p.status, 400);
    let purpose = &p.body[p.body.find("id=\"purpose\"").unwrap()..];
    assert!(purpose[..purpose.find('>').unwrap()].contains("aria-invalid=\"true\""));
    let p = post(
        &app,
        &admin,
        "/manage/care",
        &[
            ("patient", &patient),
            ("party", "staff"),
            ("staff", &lund),
            ("purpose", "Tilsyn"),
            ("from", "2030-01-10"),
            ("to", "2030-01-01"),
        ],
    )
    .await;
    assert_eq!(p.status, 400);
    assert!(
        p.body.contains("value=\"Tilsyn\""),
        "what was typed is kept"
    );
    let p = post_form(
        &app,
        &admin,
        "/manage/care",
        &[
            ("patient", &patient),
            ("party", "staff"),
            ("staff", &lund),
            ("purpose", "Tilsyn"),
        ],
        false,
    )
    .await;
    assert_eq!(p.status, 403);
    assert_eq!(
        fhir_status(&app, &token, &format!("/fhir/r4/Patient/{patient}")).await,
        403
    );

    // Added: the doctor reads the patient on the next request.
    let p = post(
        &app,
        &admin,
        "/manage/care",
        &[
            ("patient", &patient),
            ("party", "staff"),
            ("staff", &lund),
            ("purpose", "Tilsyn"),
        ],
    )
    .await;
    assert_eq!(
        (p.status, p.location.as_str()),
        (303, "/manage/care?added=1")
    );
    assert_eq!(
        fhir_status(&app, &token, &format!("/fhir/r4/Patient/{patient}")).await,
        200
    );
    let care = get(&app, &admin, "/manage/care?added=1").await.body;
    assert!(care.contains("Behandlingsrelasjonen er lagt til"));
    let at = care.find("/end\" class=\"inline\"").unwrap();
    let start = care[..at].rfind("action=\"").unwrap() + 8;
    let end_path = format!("{}/end", &care[start..at]);

    // Ended: access stops at once.
    let p = post_form(&app, &admin, &end_path, &[], false).await;
    assert_eq!(p.status, 403, "ending needs the CSRF token");
    let p = post(&app, &admin, &end_path, &[]).await;
    assert_eq!(
        (p.status, p.location.as_str()),
        (303, "/manage/care?ended=1")
    );
    assert_eq!(
        fhir_status(&app, &token, &format!("/fhir/r4/Patient/{patient}")).await,
        403
    );
    let all = get(&app, &admin, "/manage/care?all=1").await.body;
    assert!(all.contains("Avsluttet"));

    // A relationship from the EPJ (a CareTeam) is not ended here.
    let rules = stdout(&app.admin(&[
        "care",
        "list",
        "--tenant",
        app.user(ADMIN)["tenant"].as_str().unwrap(),
        "--patient",
        doctor["patients"][0].as_str().unwrap(),
    ]));
    let from_epj = rules.lines().next().unwrap().split('\t').next().unwrap();
    let p = post(&app, &admin, &format!("/manage/care/{from_epj}/end"), &[]).await;
    assert_eq!(p.status, 400);

    let changed = events_of_kind(&app, "access.changed");
    assert!(changed.iter().any(|e| {
        e["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("to Patient/{patient}"))
    }));
    assert!(
        changed
            .iter()
            .any(|e| e["detail"].as_str().unwrap().ends_with("ended"))
    );
}

#[tokio::test]
async fn roles_are_assigned_and_ended_but_not_the_admins_own() {
    let app = spawn_demo();
    let admin = app.session(ADMIN).await;
    let roles = get(&app, &admin, "/manage/roles").await.body;
    let berg = option_value(&roles, "Lise Berg");
    let unit = option_value(&roles, "– Hjemmetjenesten Nord");
    let p = post(
        &app,
        &admin,
        "/manage/roles",
        &[("person", &berg), ("role", "operator"), ("unit", &unit)],
    )
    .await;
    assert_eq!(p.status, 400, "no operator role in a tenant");
    let p = post(
        &app,
        &admin,
        "/manage/roles",
        &[
            ("person", &berg),
            ("role", "nurse"),
            ("unit", &unit),
            ("from", "1.1.2026"),
        ],
    )
    .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("åååå-mm-dd"));
    let p = post(
        &app,
        &admin,
        "/manage/roles",
        &[
            ("person", &berg),
            ("role", "nurse"),
            ("unit", &unit),
            ("to", "2099-12-31"),
        ],
    )
    .await;
    assert_eq!(
        (p.status, p.location.as_str()),
        (303, "/manage/roles?assigned=1")
    );
    let roles = get(&app, &admin, "/manage/roles?assigned=1").await.body;
    let row = roles
        .find("31.12.2099")
        .expect("the new assignment with its last day");
    let at = row + roles[row..].find("/end\"").unwrap();
    let start = roles[..at].rfind("action=\"").unwrap() + 8;
    let end_path = format!("{}/end", &roles[start..at]);
    let p = post(&app, &admin, &end_path, &[]).await;
    assert_eq!(
        (p.status, p.location.as_str()),
        (303, "/manage/roles?ended=1")
    );
    assert!(
        !get(&app, &admin, "/manage/roles")
            .await
            .body
            .contains("31.12.2099")
    );
    assert!(
        get(&app, &admin, "/manage/roles?all=1")
            .await
            .body
            .contains("Avsluttet")
    );

    // The admin's own admin role has no button, and a forged post is refused.
    let own = get(&app, &admin, "/manage/roles").await.body;
    let own_id = attr_after(
        &own,
        "<span class=\"muted\" data-own-admin",
        "data-own-admin",
    );
    let p = post(&app, &admin, &format!("/manage/roles/{own_id}/end"), &[]).await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("din egen administratorrolle"));
    // Another tenant's assignment is not found here.
    let sorby = app.user("lege.sorby");
    let list = stdout(&app.admin(&[
        "role",
        "list",
        "--tenant",
        sorby["tenant"].as_str().unwrap(),
        "--person",
        sorby["person_id"].as_str().unwrap(),
    ]));
    let other = list.lines().next().unwrap().split('\t').next().unwrap();
    let p = post(&app, &admin, &format!("/manage/roles/{other}/end"), &[]).await;
    assert_eq!(p.status, 404);
    let after = stdout(&app.admin(&[
        "role",
        "list",
        "--tenant",
        sorby["tenant"].as_str().unwrap(),
        "--person",
        sorby["person_id"].as_str().unwrap(),
    ]));
    assert!(
        after.lines().next().unwrap().ends_with("\tactive"),
        "{after}"
    );
    let changed = events_of_kind(&app, "access.changed");
    assert!(changed.iter().any(|e| {
        let d = e["detail"].as_str().unwrap();
        d.starts_with("role nurse assignment") && d.ends_with("ended")
    }));
}

#[tokio::test]
async fn policies_are_validated_in_place_and_saved_like_the_api() {
    let app = spawn_demo();
    let admin = app.session(ADMIN).await;
    let bad = "@id(\"t.a\")\npermit(principal, action, resource) when { context.care_relationship };\n@id(\"t.b\")\npermit(principal, action, resource) when { resource.nonsense == 1 };";
    let p = post(&app, &admin, "/manage/policies", &[("policies", bad)]).await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("id=\"policies-error\""));
    assert!(p.body.contains("nonsense"), "the validator's message");
    assert!(p.body.contains("linje 4"), "the line");
    assert!(
        p.body.contains("resource.nonsense == 1 };</textarea>"),
        "the text is kept"
    );
    let textarea = &p.body[p.body.find("<textarea").unwrap()..];
    assert!(textarea[..textarea.find('>').unwrap()].contains("aria-invalid=\"true\""));
    let p = post_form(
        &app,
        &admin,
        "/manage/policies",
        &[("policies", "x")],
        false,
    )
    .await;
    assert_eq!(p.status, 403);

    // A valid text is saved, records PolicyChanged, and the API sees it.
    let own = format!(
        "{}\n@id(\"t.extra\")\nforbid (principal, action, resource) when {{ resource.category == \"sexual-health\" && principal.kind == \"relative\" }};\n",
        include_str!("../../../tillit-authz/policies/tenant-default.cedar")
    );
    let p = post(
        &app,
        &admin,
        "/manage/policies",
        &[("policies", &own.replace('\n', "\r\n"))],
    )
    .await;
    assert_eq!(
        (p.status, p.location.as_str()),
        (303, "/manage/policies?saved=1")
    );
    let page = get(&app, &admin, "/manage/policies?saved=1").await.body;
    assert!(page.contains("Egne regler"));
    assert!(page.contains("t.extra"));
    let api: Value = app
        .client
        .get(app.url("/admin/policies"))
        .bearer_auth(app.user(ADMIN)["api_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["is_default"], false);
    assert!(api["policies"].as_str().unwrap().contains("t.extra"));
    assert!(!api["policies"].as_str().unwrap().contains('\r'));
    assert!(events_of_kind(&app, "policy.changed").iter().any(|e| {
        e["detail"]
            .as_str()
            .unwrap()
            .contains("tenant policies saved")
    }));
    // Back to the defaults.
    let p = post(&app, &admin, "/manage/policies", &[("reset", "1")]).await;
    assert_eq!(
        (p.status, p.location.as_str()),
        (303, "/manage/policies?reset=1")
    );
    assert!(
        !get(&app, &admin, "/manage/policies")
            .await
            .body
            .contains("t.extra")
    );
}

#[tokio::test]
async fn support_access_is_granted_and_revoked_like_the_api() {
    let app = spawn_demo();
    let admin = app.session(ADMIN).await;
    let api_support = || async {
        let v: Value = app
            .client
            .get(app.url("/admin/support"))
            .bearer_auth(app.user(ADMIN)["api_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v
    };
    for (fields, message) in [
        (
            [
                ("operator", "lege.lund"),
                ("minutes", "60"),
                ("reason", "Sak 1234"),
            ],
            "ingen driftsperson",
        ),
        (
            [
                ("operator", "drift.olsen"),
                ("minutes", "6000"),
                ("reason", "Sak 1234"),
            ],
            "høyst 24 timer",
        ),
        (
            [
                ("operator", "drift.olsen"),
                ("minutes", "60"),
                ("reason", "kort"),
            ],
            "5–500 tegn",
        ),
    ] {
        let p = post(&app, &admin, "/manage/support", &fields).await;
        assert_eq!(p.status, 400);
        assert!(p.body.contains(message), "{message}");
        assert!(p.body.contains("aria-invalid=\"true\""));
    }
    assert_eq!(api_support().await["grants"].as_array().unwrap().len(), 0);
    let p = post_form(
        &app,
        &admin,
        "/manage/support",
        &[
            ("operator", "drift.olsen"),
            ("minutes", "60"),
            ("reason", "Sak 1234"),
        ],
        false,
    )
    .await;
    assert_eq!(p.status, 403);

    let p = post(
        &app,
        &admin,
        "/manage/support",
        &[
            ("operator", "drift.olsen"),
            ("minutes", "60"),
            ("reason", "Sak 1234: feilsøking"),
        ],
    )
    .await;
    assert_eq!(
        (p.status, p.location.as_str()),
        (303, "/manage/support?granted=1")
    );
    let grants = api_support().await;
    assert_eq!(grants["grants"][0]["state"], "active");
    assert_eq!(grants["grants"][0]["reason"], "Sak 1234: feilsøking");
    let page = get(&app, &admin, "/manage/support?granted=1").await.body;
    assert!(page.contains("drift.olsen"));
    assert!(page.contains("Aktiv nå"));
    let id = grants["grants"][0]["id"].as_str().unwrap();
    let p = post(&app, &admin, &format!("/manage/support/{id}/revoke"), &[]).await;
    assert_eq!(
        (p.status, p.location.as_str()),
        (303, "/manage/support?revoked=1")
    );
    assert_eq!(api_support().await["grants"][0]["state"], "revoked");
    assert!(
        get(&app, &admin, "/manage/support")
            .await
            .body
            .contains("Trukket tilbake")
    );
    let changed = events_of_kind(&app, "access.changed");
    assert!(
        changed
            .iter()
            .any(|e| e["detail"] == format!("support grant {id} revoked"))
    );
    assert!(
        changed
            .iter()
            .any(|e| e["detail"] == format!("support grant {id} for 60 min"))
    );
}
