//! A tenant's exit: `tillit tenant export` (everything, encrypted to the customer's age key,
//! the audit log verifying against its checkpoints) and `tillit tenant delete` (keys
//! destroyed, rows gone, other tenants untouched, a signed receipt that catches changes).

use crate::fhir::Fhir;
use crate::helpers::*;
use age::secrecy::ExposeSecret;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

fn tillit(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// The command failed with one line naming `needle`.
fn refused(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected a refusal, got: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

fn decrypt(path: &Path, id: &age::x25519::Identity) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let d = age::Decryptor::new_buffered(&bytes[..]).unwrap();
    let mut r = d
        .decrypt(std::iter::once(id as &dyn age::Identity))
        .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

/// Every file of the export, decrypted, by name without `.age`.
fn open_export(dir: &Path, id: &age::x25519::Identity) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            match name.strip_suffix(".age") {
                Some(plain) => {
                    out.insert(plain.to_string(), decrypt(&p, id));
                }
                None => assert_eq!(name, "README.txt", "a file in clear: {name}"),
            }
        }
    }
    out
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Rows of the tenant in every table that has a tenant (and its `tenants` row).
fn rows(db: &Path, tenant: &str) -> BTreeMap<String, i64> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let tables: Vec<String> = c
        .prepare(
            "SELECT m.name FROM sqlite_schema m, pragma_table_info(m.name) p
             WHERE m.type = 'table' AND p.name = 'tenant_id' AND m.name != 'deleted_tenants'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        let n: i64 = c
            .query_row(
                &format!("SELECT COUNT(*) FROM \"{t}\" WHERE tenant_id = ?1"),
                [tenant],
                |r| r.get(0),
            )
            .unwrap();
        out.insert(t, n);
    }
    let n: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM tenants WHERE id = ?1",
            [tenant],
            |r| r.get(0),
        )
        .unwrap();
    out.insert("tenants".into(), n);
    out
}

fn current_counts(db: &Path, tenant: &str) -> BTreeMap<String, u64> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    c.prepare(
        "SELECT type, COUNT(*) FROM resources WHERE tenant_id = ?1 AND deleted = 0 GROUP BY type",
    )
    .unwrap()
    .query_map([tenant], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn keyring(dir: &Path) -> tillit_crypto::Keyring {
    let vault =
        Arc::new(tillit_store_sqlite::SqliteKeyVault::open(&dir.join("keys/keyring.db")).unwrap());
    let kek =
        tillit_crypto::keyring::load_key_file(&dir.join("keys/kek.key"), vault.as_ref()).unwrap();
    tillit_crypto::Keyring::new(kek, vault)
}

#[tokio::test]
async fn a_tenant_leaves_with_all_its_data_encrypted_and_a_signed_deletion_receipt() {
    let mut app = spawn_demo();
    app.keep_dir();
    let dir = app.dir.clone();
    let d = dir.to_str().unwrap().to_string();
    let db = dir.join("tillit.db");
    let sorby = app.user("lege.sorby")["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let nordby = app.user("lege.lund")["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Some use of both tenants, in their logs.
    assert_eq!(Fhir::new(&app, "lege.sorby").get("/Patient").await.0, 200);
    assert_eq!(Fhir::new(&app, "lege.lund").get("/Patient").await.0, 200);

    let work = tempdir("exit");
    let out = work.join("export");
    let identity = age::x25519::Identity::generate();
    let recipient = work.join("recipient.txt");
    std::fs::write(
        &recipient,
        format!("# Sørby's key\n{}\n", identity.to_public()),
    )
    .unwrap();
    let secret = work.join("secret.txt");
    std::fs::write(&secret, identity.to_string().expose_secret()).unwrap();
    let export = |recipient: &Path| {
        tillit(&[
            "tenant",
            "export",
            "--tenant",
            "Sørby sykehus",
            "--out",
            out.to_str().unwrap(),
            "--recipient",
            recipient.to_str().unwrap(),
            "--data-dir",
            &d,
        ])
    };
    refused(&export(&secret), "secret key");
    assert!(!out.exists());
    // While the server runs.
    let started = std::time::Instant::now();
    let o = export(&recipient);
    let text = stdout(&o);
    eprintln!("export: {} ({:?})", text.trim(), started.elapsed());
    refused(&export(&recipient), "already exists");
    // Nothing half-written is left beside it.
    let beside: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(beside.iter().all(|n| !n.contains("partial")), "{beside:?}");

    let files = open_export(&out, &identity);
    // Another key cannot open it.
    let stranger = age::x25519::Identity::generate();
    let bytes = std::fs::read(out.join("manifest.json.age")).unwrap();
    assert!(
        age::Decryptor::new_buffered(&bytes[..])
            .unwrap()
            .decrypt(std::iter::once(&stranger as &dyn age::Identity))
            .is_err()
    );
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["extension"]["tillit"]["tenant"]["id"], sorby);
    assert!(manifest["transactionTime"].is_string());
    let expected = current_counts(&db, &sorby);
    assert!(!expected.is_empty());
    let mut listed = BTreeMap::new();
    for o in manifest["output"].as_array().unwrap() {
        let (rt, url) = (o["type"].as_str().unwrap(), o["url"].as_str().unwrap());
        let resources = lines(&files[url]);
        assert_eq!(resources.len() as u64, o["count"].as_u64().unwrap());
        for r in &resources {
            assert_eq!(r["resourceType"], rt);
            assert!(r["id"].is_string());
        }
        listed.insert(rt.to_string(), o["count"].as_u64().unwrap());
    }
    assert_eq!(listed, expected, "every current record, per type");
    // Nothing of the other tenant.
    let all: String = files
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(!all.contains(&nordby));
    let c = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let nordby_ids: Vec<String> = c
        .prepare("SELECT id FROM resources WHERE tenant_id = ?1")
        .unwrap()
        .query_map([&nordby], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(nordby_ids.len() > 10);
    for id in &nordby_ids {
        assert!(
            !all.contains(id.as_str()),
            "Nordby's {id} is in Sørby's export"
        );
    }

    // The audit log verifies against its checkpoints with the key in the export.
    let audit = &manifest["extension"]["tillit"]["audit"];
    let key = String::from_utf8(files["audit/key.txt"].clone()).unwrap();
    let verifier = tillit_audit::CheckpointVerifier::parse(key.trim()).unwrap();
    let notes: Vec<String> = lines(&files["audit/checkpoints.ndjson"])
        .iter()
        .map(|c| c["note"].as_str().unwrap().to_string())
        .collect();
    let events = lines(&files["audit/events.ndjson"]);
    let entries: Vec<tillit_audit::verify::Entry> = events
        .iter()
        .map(|e| {
            let hash: [u8; 32] = hex::decode(e["payload_hash"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            let seq = e["seq"].as_u64().unwrap();
            assert_eq!(
                e["leaf_hash"].as_str().unwrap(),
                hex::encode(tillit_audit::verify::entry_leaf(&sorby, seq, &hash))
            );
            tillit_audit::verify::Entry {
                seq,
                payload_hash: hash,
                payload: e["payload"].as_str().map(|p| p.as_bytes().to_vec()),
            }
        })
        .collect();
    let verified = tillit_audit::verify::verify_log(
        &sorby,
        audit["origin"].as_str().unwrap(),
        entries,
        &notes,
        &verifier,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(verified.entries, audit["size"].as_u64().unwrap());
    assert_eq!(hex::encode(verified.root), audit["root"].as_str().unwrap());
    assert!(verified.checkpoints >= 1);
    // The export itself is in the log: an `export` event for each patient it read, and
    // the summary; and the doctor's search from before.
    let payloads: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(e["payload"].as_str().unwrap()).unwrap())
        .collect();
    let patients = listed["Patient"];
    let exported: Vec<&Value> = payloads
        .iter()
        .filter(|p| p["action"] == "export" && p["patient"].is_string())
        .collect();
    assert_eq!(exported.len() as u64, patients);
    assert!(exported.iter().all(|p| p["actor"]["kind"] == "system"));
    assert!(payloads.iter().any(|p| p["action"] == "tenant.exported"));
    assert!(payloads.iter().any(|p| p["action"] == "search"));

    // A sealed record of Sørby, to try to open after the deletion.
    let (patient, rt, id, version, body): (String, String, String, i64, Vec<u8>) = c
        .query_row(
            "SELECT patient_id, type, id, version, body FROM resource_versions
             WHERE tenant_id = ?1 AND key_scope = 'patient' LIMIT 1",
            [&sorby],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    drop(c);
    let context = format!("{rt}/{id}/_history/{version}");
    assert!(
        keyring(&dir)
            .open_for_patient(&sorby, &patient, &context, &body)
            .is_ok()
    );

    // Deletion: refused while the server runs, without confirmation, or of the operator.
    let receipt = work.join("receipt.json");
    let delete = |tenant: &str, confirm: Option<&str>, receipt: &Path| {
        let mut args = vec![
            "tenant",
            "delete",
            "--tenant",
            tenant,
            "--receipt",
            receipt.to_str().unwrap(),
            "--data-dir",
            &d,
        ];
        if let Some(c) = confirm {
            args.extend(["--confirm", c]);
        }
        tillit(&args)
    };
    refused(
        &delete("Sørby sykehus", Some("Sørby sykehus"), &receipt),
        "is the server running?",
    );
    drop(app);
    refused(&delete("Sørby sykehus", None, &receipt), "--confirm");
    refused(
        &delete("Sørby sykehus", Some("Nordby kommune"), &receipt),
        "does not name the tenant",
    );
    refused(
        &delete("Tillit drift", Some("Tillit drift"), &receipt),
        "operator tenant",
    );
    assert!(!receipt.exists());
    assert!(rows(&db, &sorby)["resources"] > 0);

    let nordby_before = rows(&db, &nordby);
    let nordby_records = current_counts(&db, &nordby);
    let started = std::time::Instant::now();
    let text = stdout(&delete("Sørby sykehus", Some("Sørby sykehus"), &receipt));
    eprintln!("delete: {} ({:?})", text.trim(), started.elapsed());

    // Rows gone, keys gone, sealed data unreadable.
    let left = rows(&db, &sorby);
    assert!(left.values().all(|n| *n == 0), "rows left: {left:?}");
    let ring = keyring(&dir);
    assert_eq!(ring.tenant_key_ids(&sorby).unwrap(), Vec::<String>::new());
    assert!(
        ring.open_for_patient(&sorby, &patient, &context, &body)
            .is_err()
    );
    // Other tenants untouched, and every remaining log verifies.
    assert_eq!(rows(&db, &nordby), nordby_before);
    assert_eq!(current_counts(&db, &nordby), nordby_records);
    let o = tillit(&["audit", "verify", "--data-dir", &d]);
    let verify = stdout(&o);
    assert!(verify.contains(&nordby), "{verify}");
    assert!(!verify.contains(&sorby), "{verify}");
    assert!(!verify.contains("FAILED"), "{verify}");
    // The platform's log records the deletion.
    assert!(
        crate::helpers::events(&dir).iter().any(
            |e| e["kind"] == "tenant.deleted" && e["detail"].as_str().unwrap().contains(&sorby)
        )
    );

    // The receipt: what it says, and that it verifies (against the key in the export, the
    // data dir's key, and the export's manifest) and fails when changed.
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&receipt).unwrap()).unwrap();
    let r = &doc["receipt"];
    assert_eq!(r["tenant"]["id"], sorby);
    let keys: Vec<&str> = r["keys_destroyed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(keys.contains(&format!("tenant/{sorby}").as_str()));
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("patient/")).count() as u64,
        patients
    );
    assert!(r["rows_removed"]["resources"].as_u64().unwrap() >= expected.values().sum::<u64>());
    assert!(r["audit_log"]["size"].as_u64().unwrap() > audit["size"].as_u64().unwrap());
    let key_file = work.join("key.txt");
    std::fs::write(&key_file, &key).unwrap();
    let manifest_file = work.join("manifest.json");
    std::fs::write(&manifest_file, &files["manifest.json"]).unwrap();
    let check = |file: &Path, extra: &[&str]| {
        let mut args = vec!["tenant", "verify-receipt", file.to_str().unwrap()];
        args.extend(extra);
        tillit(&args)
    };
    let ok = stdout(&check(
        &receipt,
        &[
            "--key",
            key_file.to_str().unwrap(),
            "--manifest",
            manifest_file.to_str().unwrap(),
        ],
    ));
    assert!(ok.contains("extends the exported log"), "{ok}");
    stdout(&check(&receipt, &["--data-dir", &d]));
    let altered = work.join("altered.json");
    let mut bad = doc.clone();
    bad["receipt"]["rows_removed"]["resources"] = serde_json::json!(1);
    std::fs::write(&altered, serde_json::to_string_pretty(&bad).unwrap()).unwrap();
    refused(
        &check(&altered, &["--key", key_file.to_str().unwrap()]),
        "changed",
    );
    let mut bad = doc.clone();
    bad["receipt"]["keys_destroyed"] = serde_json::json!([]);
    std::fs::write(&altered, serde_json::to_string(&bad).unwrap()).unwrap();
    refused(&check(&altered, &[]), "changed");

    // Run again (a lost receipt, or an interrupted deletion): finished from the tombstone.
    let again = work.join("receipt-again.json");
    let text = stdout(&delete("Sørby sykehus", Some("Sørby sykehus"), &again));
    assert!(text.contains("finishing"), "{text}");
    stdout(&check(&again, &["--key", key_file.to_str().unwrap()]));

    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&dir);
}
