//! Keys: rotation re-wraps without re-encrypting, refuses to run under a live server, and a
//! passphrase can stand in for the key file.

use crate::fhir::{Fhir, patient};
use crate::helpers::*;
use std::process::Command;

#[tokio::test]
async fn rotation_rewraps_keys_and_the_data_still_opens() {
    let mut app = spawn_demo();
    app.keep_dir();
    let dir = app.dir.clone();
    let f = Fhir::new(&app, "integrasjon.epj");
    let p = f.create(&patient("01810700021", "Rotasjonsen")).await;
    let id = p["id"].as_str().unwrap().to_string();
    // Refused while the server holds the keys.
    let out = Command::new(BIN)
        .args(["keys", "rotate", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop it"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(app);
    let kek_before = std::fs::read(dir.join("keys/kek.key")).unwrap();
    let db_before = std::fs::read(dir.join("tillit.db")).unwrap();
    let out = Command::new(BIN)
        .args(["keys", "rotate", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no data was re-encrypted"));
    assert_ne!(std::fs::read(dir.join("keys/kek.key")).unwrap(), kek_before);
    assert_eq!(
        std::fs::read(dir.join("tillit.db")).unwrap(),
        db_before,
        "rotation must not touch the data"
    );
    let app = spawn_demo_with(Some(dir), &[]);
    let f = Fhir::new(&app, "integrasjon.epj");
    let (s, back) = f.get(&format!("/Patient/{id}")).await;
    assert_eq!(
        (s, back["name"][0]["family"].as_str()),
        (200, Some("Rotasjonsen"))
    );
    // And demo logins (sealed usernames, TOTP secrets) still work.
    app.session("lege.lund").await;
}

#[test]
fn a_passphrase_can_protect_the_keys() {
    let dir = tempdir("pass");
    let run = |pass: Option<&str>, args: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("admin").arg("--data-dir").arg(&dir).args(args);
        match pass {
            Some(p) => c.env("TILLIT_KEK_PASSPHRASE", p),
            None => c.env_remove("TILLIT_KEK_PASSPHRASE"),
        };
        c.output().unwrap()
    };
    let ok = run(
        Some("en lang og hemmelig setning"),
        &["tenant", "create", "--name", "P kommune"],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = run(
        Some("en lang og hemmelig setning"),
        &[
            "person",
            "create",
            "--tenant",
            "P kommune",
            "--kind",
            "patient",
            "--name",
            "Per Pass",
            "--national-id",
            "01810700021",
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!dir.join("keys/kek.key").exists());
    let wrong = run(
        Some("feil setning som er lang nok"),
        &["person", "list", "--tenant", "P kommune"],
    );
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("does not open"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let none = run(None, &["person", "list", "--tenant", "P kommune"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("TILLIT_KEK_PASSPHRASE"));
    let _ = std::fs::remove_dir_all(&dir);
}
