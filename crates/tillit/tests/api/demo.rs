//! The demo: the credentials contract, reuse of a data dir, data sealed at rest, and a
//! database that is corrupt or too new is refused untouched.

use crate::helpers::*;
use std::collections::HashSet;

#[tokio::test]
async fn demo_credentials_follow_the_contract() {
    let app = spawn_demo();
    let c = &app.creds;
    assert!(
        c["base_url"]
            .as_str()
            .unwrap()
            .starts_with("https://localhost:")
    );
    assert!(std::path::Path::new(c["ca_cert"].as_str().unwrap()).is_file());
    let users = c["users"].as_array().unwrap();
    let roles: HashSet<&str> = users
        .iter()
        .filter(|u| u["tenant"] == "Nordby kommune")
        .flat_map(|u| {
            u["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
        })
        .collect();
    for r in [
        "physician",
        "nurse",
        "care_assistant",
        "secretary",
        "security_officer",
        "tenant_admin",
    ] {
        assert!(roles.contains(r), "no {r} in Nordby");
    }
    assert!(
        users
            .iter()
            .any(|u| u["tenant"] == "Sørby sykehus"
                && u["roles"] == serde_json::json!(["physician"]))
    );
    for u in users {
        for key in [
            "username",
            "password",
            "totp_secret",
            "kind",
            "roles",
            "tenant",
            "api_token",
            "person_id",
            "patients",
            "patient_id",
        ] {
            assert!(u.get(key).is_some(), "{} lacks {key}", u["username"]);
        }
        match u["kind"].as_str().unwrap() {
            "staff" => assert!(u["totp_secret"].is_string()),
            "patient" => assert_eq!(u["patient_id"], u["person_id"]),
            "relative" => assert!(u["patient_id"].is_string()),
            other => panic!("kind {other}"),
        }
        // Every listed login works, and so does every token.
        let me = app
            .client
            .get(app.url("/api/me"))
            .bearer_auth(u["api_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200, "{}", u["username"]);
    }
    assert_eq!(users.iter().filter(|u| u["kind"] == "relative").count(), 2);
    // The access cases the later issues show: shared patients, patients outside a list, a
    // patient with a login whom some staff member may read, and one whom nobody may.
    let list = |name: &str| -> HashSet<String> {
        app.user(name)["patients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    let (lege, haugen, aas) = (
        list("lege.lund"),
        list("sykepleier.haugen"),
        list("helsefagarbeider.aas"),
    );
    assert!(!lege.is_disjoint(&haugen), "staff share patients");
    assert!(!lege.is_subset(&aas) && !aas.is_subset(&lege));
    let astrid = app.user("astrid.haugland")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lege.contains(&astrid));
    let ragnhild = app.user("ragnhild.fjeld")["patient_id"]
        .as_str()
        .unwrap()
        .to_string();
    let all: HashSet<String> = users
        .iter()
        .flat_map(|u| {
            u["patients"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
        })
        .collect();
    assert!(!all.contains(&ragnhild));
    let patients = stdout(&app.admin(&[
        "person",
        "list",
        "--tenant",
        "Nordby kommune",
        "--kind",
        "patient",
    ]));
    assert!(patients.lines().count() >= 20);
}

#[tokio::test]
async fn demo_reuses_a_data_dir_and_rotates_only_the_tokens() {
    let mut first = spawn_demo();
    first.keep_dir();
    let dir = first.dir.clone();
    let before = first.creds.clone();
    // Make a change that a reseed would lose.
    stdout(&first.admin(&["tenant", "create", "--name", "Midtby legesenter"]));
    drop(first);
    let second = spawn_demo_with(Some(dir.clone()), &[]);
    let after = &second.creds;
    assert_eq!(
        before["users"].as_array().unwrap().len(),
        after["users"].as_array().unwrap().len()
    );
    // The local CA and certificate are reused, not made anew.
    assert_eq!(
        before["ca_fingerprint_sha256"],
        after["ca_fingerprint_sha256"]
    );
    assert_eq!(
        before["ca_fingerprint_sha256"].as_str().unwrap().len(),
        32 * 3 - 1
    );
    for (a, b) in before["users"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["users"].as_array().unwrap())
    {
        assert_eq!(a["username"], b["username"]);
        assert_eq!(a["password"], b["password"]);
        assert_eq!(a["totp_secret"], b["totp_secret"]);
        assert_eq!(a["person_id"], b["person_id"]);
        assert_ne!(a["api_token"], b["api_token"]);
    }
    assert!(stdout(&second.admin(&["tenant", "list"])).contains("Midtby legesenter"));
    second.session("astrid.haugland").await;
}

#[tokio::test]
async fn patient_names_and_national_ids_are_not_in_the_database_files() {
    let app = spawn_demo();
    let mut files = vec![];
    for entry in std::fs::read_dir(&app.dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tillit.db")
        {
            files.push(p);
        }
    }
    assert!(
        files.len() >= 2,
        "expected the database and its WAL: {files:?}"
    );
    // Names of demo patients and the shape of their synthetic national ids.
    // Patients' names, their usernames (which contain names), relatives' names, TOTP secrets.
    let mut needles: Vec<Vec<u8>> = [
        "Haugland",
        "haugland",
        "Solveig",
        "Kristiansen",
        "Ragnhild",
        "Rønning",
        "Magnus",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    for u in app.creds["users"].as_array().unwrap() {
        needles.push(u["username"].as_str().unwrap().as_bytes().to_vec());
        if let Some(t) = u["totp_secret"].as_str() {
            needles.push(t.as_bytes().to_vec());
        }
    }
    // Make sure the log has seen a login, a failure with an unknown name, and a token use.
    app.session("astrid.haugland").await;
    app.login(serde_json::json!({"username": "ukjent.person", "password": "wrong-password"}))
        .await;
    let tok = app.user("lege.lund")["api_token"]
        .as_str()
        .unwrap()
        .to_string();
    app.client
        .get(app.url("/api/me"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    needles.push(b"ukjent.person".to_vec());
    let fhir = crate::fhir::Fhir::new(&app, "integrasjon.epj");
    let (_, bundle) = fhir.get("/Patient?_count=100").await;
    let national_ids: Vec<String> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["resource"]["identifier"][0]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(national_ids.len() >= 20, "{bundle}");
    assert!(
        national_ids
            .iter()
            .all(|n| n.len() == 11 && n[2..4].parse::<u32>().unwrap() > 80)
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for n in &needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_slice()),
                "{} found in {}",
                String::from_utf8_lossy(n),
                f.display()
            );
        }
        // The demo patients' national ids, as the API returns them.
        for nid in &national_ids {
            assert!(
                !bytes.windows(nid.len()).any(|w| w == nid.as_bytes()),
                "national id in {}",
                f.display()
            );
        }
    }
}

#[test]
fn a_corrupt_or_newer_database_is_refused_and_not_modified() {
    let dir = tempdir("corrupt");
    std::fs::write(
        dir.join("tillit.db"),
        b"definitely not sqlite, but some bytes here",
    )
    .unwrap();
    let before = std::fs::read(dir.join("tillit.db")).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["demo", "--data-dir"])
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a SQLite database"), "{err}");
    assert_eq!(std::fs::read(dir.join("tillit.db")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}
