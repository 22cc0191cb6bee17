//! Backups (`tillit backup create | verify | restore`, and scheduled in `serve`): a backup
//! taken while the server takes writes restores every record acknowledged before it began,
//! with a verifying audit log, into a data dir that starts and serves; a changed file fails
//! verification naming the file; restore refuses a folder that is not empty; a patient
//! erased after a backup stays erased when that backup is restored; a tenant deleted after a
//! backup does not come back when it is restored (the keyring's ledger of deleted tenants),
//! while a keyring merely lacking a tenant's keys is refused; backups are events in every
//! tenant's log; scheduled backups are verified, pruned, and shown to the admin and in
//! `/metrics`.

use crate::fhir::{Fhir, heart_rate, patient};
use crate::helpers::*;
use reqwest::header::{ACCEPT, COOKIE};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn tillit(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// One write: when it was sent, its id, and when it was acknowledged.
struct Write {
    sent: Instant,
    id: String,
    acked: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_load_restores_every_acknowledged_record_and_serves_them() {
    let app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let pat = f.create(&patient("01810700021", "Kopisen")).await;
    let pid = pat["id"].as_str().unwrap().to_string();
    let work = tempdir("backup-load");
    let out = work.join("backup");
    let stop = AtomicBool::new(false);

    let writer = |k: i64| {
        let (f, pid, stop) = (&f, &pid, &stop);
        async move {
            let mut done = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let v = f
                    .create(&heart_rate(pid, "2026-05-01T08:00:00Z", 50 + k * 100 + i))
                    .await;
                done.push(Write {
                    sent,
                    id: v["id"].as_str().unwrap().to_string(),
                    acked: Instant::now(),
                });
                i = (i + 1) % 100;
            }
            done
        }
    };
    let backup = async {
        // Let the writers get going first.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (dir, out) = (app.dir.clone(), out.clone());
        let started = Instant::now();
        let o = tokio::task::spawn_blocking(move || {
            tillit(&["backup", "create", "--out", p(&out), "--data-dir", p(&dir)])
        })
        .await
        .unwrap();
        let ended = Instant::now();
        // And keep writing a little after it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
        (o, started, ended)
    };
    let ((o, started, ended), w1, w2, w3) = tokio::join!(backup, writer(1), writer(2), writer(3));
    assert!(o.status.success(), "backup create: {}", stderr(&o));
    let writes: Vec<Write> = w1.into_iter().chain(w2).chain(w3).collect();
    let before: Vec<&Write> = writes.iter().filter(|w| w.acked < started).collect();
    let during = writes
        .iter()
        .filter(|w| w.acked >= started && w.sent <= ended)
        .count();
    let after: Vec<&Write> = writes.iter().filter(|w| w.sent > ended).collect();
    eprintln!(
        "backup under load: {} writes acknowledged before it began, {during} during it ({:?}), {} sent after it",
        before.len(),
        ended - started,
        after.len()
    );
    assert!(before.len() >= 5, "only {} writes before", before.len());
    assert!(during > 0, "no write overlapped the backup");
    assert!(!after.is_empty(), "no write after the backup");

    // The backup verifies on its own...
    let v = tillit(&["backup", "verify", p(&out)]);
    assert!(v.status.success(), "backup verify: {}", stderr(&v));
    let report = String::from_utf8_lossy(&v.stdout);
    assert!(report.contains("signature ok"), "{report}");
    assert!(report.contains(": ok"), "no verified audit log: {report}");

    // ... and restores into a data dir whose audit log verifies.
    let restored = work.join("restored");
    let r = tillit(&["backup", "restore", p(&out), "--data-dir", p(&restored)]);
    assert!(r.status.success(), "backup restore: {}", stderr(&r));
    let a = tillit(&["audit", "verify", "--data-dir", p(&restored)]);
    assert!(a.status.success(), "audit verify: {}", stderr(&a));
    assert!(String::from_utf8_lossy(&a.stdout).contains(": ok"));

    // The restored data dir starts and serves what was acknowledged before the backup began;
    // nothing sent after it ended is there.
    drop(app);
    let mut app2 = spawn_demo_with(Some(restored.clone()), &[]);
    app2.keep_dir();
    let f2 = Fhir::new(&app2, "integrasjon.epj");
    let (s, p2) = f2.get(&format!("/Patient/{pid}")).await;
    assert_eq!(s, 200, "{p2}");
    assert_eq!(p2["name"][0]["family"], "Kopisen");
    for w in &before {
        let (s, v) = f2.get(&format!("/Observation/{}", w.id)).await;
        assert_eq!(
            s, 200,
            "Observation/{} acknowledged before the backup: {v}",
            w.id
        );
    }
    for w in &after {
        let (s, _) = f2.get(&format!("/Observation/{}", w.id)).await;
        assert_eq!(s, 404, "Observation/{} was sent after the backup", w.id);
    }
    let (_, all) = f2
        .get(&format!(
            "/Observation?subject=Patient/{pid}&_summary=count"
        ))
        .await;
    let total = all["total"].as_u64().unwrap() as usize;
    assert!(
        total >= before.len() && total <= writes.len() - after.len(),
        "{total} restored, {} acknowledged before, {} sent before the end",
        before.len(),
        writes.len() - after.len()
    );
    drop(app2);
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test]
async fn a_changed_backup_fails_verification_naming_the_file_and_restore_needs_an_empty_folder() {
    let app = spawn_demo();
    let work = tempdir("backup-tamper");
    let out = work.join("b");
    let o = tillit(&[
        "backup",
        "create",
        "--out",
        p(&out),
        "--data-dir",
        p(&app.dir),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(tillit(&["backup", "verify", p(&out)]).status.success());
    // No key in the backup: nothing of the keyring's files, and the KEK's bytes appear
    // nowhere.
    let kek = std::fs::read(app.dir.join("keys/kek.key")).unwrap();
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.contains("keyring") && !name.contains("kek"), "{name}");
            let bytes = std::fs::read(e.path()).unwrap();
            assert!(!bytes.windows(kek.len()).any(|w| w == kek), "{name}");
        }
    }

    let case = |name: &str, change: &dyn Fn(&Path)| -> String {
        let dir = work.join(name);
        copy_dir(&out, &dir);
        change(&dir);
        let v = tillit(&["backup", "verify", p(&dir)]);
        assert!(!v.status.success(), "{name}: a changed backup verified");
        let e = stderr(&v);
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    };
    let e = case("flipped", &|d| {
        let f = d.join("data/tillit.db.enc");
        let mut b = std::fs::read(&f).unwrap();
        let at = b.len() / 2;
        b[at] ^= 0x01;
        std::fs::write(&f, b).unwrap();
    });
    assert!(e.contains("data/tillit.db.enc"), "{e}");
    let e = case("truncated", &|d| {
        let f = d.join("data/tillit.db.enc");
        let b = std::fs::read(&f).unwrap();
        std::fs::write(&f, &b[..b.len() - 100]).unwrap();
    });
    assert!(e.contains("data/tillit.db.enc"), "{e}");
    let e = case("manifest", &|d| {
        let f = d.join("manifest.json");
        let t = std::fs::read_to_string(&f).unwrap();
        std::fs::write(&f, t.replacen("\"versions\": ", "\"versions\": 1", 1)).unwrap();
    });
    assert!(e.contains("manifest.json"), "{e}");
    let e = case("missing", &|d| {
        std::fs::remove_file(d.join("data/tillit.db.enc")).unwrap();
    });
    assert!(e.contains("data/tillit.db.enc"), "{e}");
    let e = case("extra", &|d| {
        std::fs::write(d.join("data/notes.txt"), "hello").unwrap();
    });
    assert!(e.contains("data/notes.txt"), "{e}");

    // Restore refuses a folder with anything in it, and leaves it as it was.
    let busy = work.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    let r = tillit(&["backup", "restore", p(&out), "--data-dir", p(&busy)]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("not empty"), "{}", stderr(&r));
    assert_eq!(
        std::fs::read_dir(&busy).unwrap().count(),
        1,
        "restore wrote into a folder that was not empty"
    );
    assert_eq!(
        std::fs::read_to_string(busy.join("keep.txt")).unwrap(),
        "mine"
    );
    let r = tillit(&["backup", "restore", p(&out), "--data-dir", p(&app.dir)]);
    assert!(!r.status.success());
    // An empty folder is fine, and nothing is left beside it.
    let empty = work.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = tillit(&["backup", "restore", p(&out), "--data-dir", p(&empty)]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(empty.join("tillit.db").is_file());
    assert!(empty.join("keys/keyring.db").is_file());
    let leftovers: Vec<PathBuf> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test]
async fn scheduled_backups_are_verified_pruned_and_shown_to_the_admin_and_in_metrics() {
    let backups = tempdir("backup-scheduled");
    let app = spawn_demo_with(
        None,
        &[
            ("TILLIT_BACKUP__DIR", p(&backups)),
            ("TILLIT_BACKUP__INTERVAL_SECONDS", "2"),
        ],
    );
    // Wait for runs to have happened, the latest verified.
    let start = Instant::now();
    let status = loop {
        let s: Option<serde_json::Value> = std::fs::read_to_string(backups.join("status.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        // After 5 s, two runs or more have been (one every 2 s).
        if let Some(s) = s
            && s["verified"] == true
            && s["last_success"].is_string()
            && start.elapsed() > Duration::from_secs(5)
        {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no verified scheduled backup: {}",
            std::fs::read_to_string(app.dir.with_extension("log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status["size_bytes"].as_u64().unwrap() > 0, "{status}");
    assert!(status["problem"].is_null(), "{status}");
    // Backups every 2 s all fall on one day: retention keeps the newest of the day.
    let dirs: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tillit-"))
        .collect();
    assert!(
        dirs.len() <= 2,
        "retention kept {dirs:?} (one, or two while a run is between writing and pruning)"
    );
    let latest = backups.join(status["last_success"].as_str().unwrap());
    let v = tillit(&["backup", "verify", p(&latest)]);
    assert!(v.status.success(), "{}", stderr(&v));
    // Each scheduled backup is in every tenant's log.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(latest.join("manifest.json")).unwrap())
            .unwrap();
    let id = manifest["id"].as_str().unwrap();
    let logged = events(&app.dir)
        .into_iter()
        .filter(|e| {
            e["kind"] == "backup.created"
                && e["ok"] == true
                && e["user_agent"] == "tillit serve (scheduled backup create)"
                && e["detail"].as_str().unwrap().contains(id)
        })
        .count();
    assert_eq!(logged, manifest["tenants"].as_array().unwrap().len());

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tillit_backup_last_verified 1"),
        "{metrics}"
    );
    let last: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tillit_backup_last_success_timestamp_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(last > 1_700_000_000, "{last}");
    assert!(
        !metrics.contains("tillit_backup_size_bytes 0\n"),
        "{metrics}"
    );

    let admin = app.session("admin.nilsen").await;
    let page = app
        .client
        .get(app.url("/manage/status"))
        .header(COOKIE, &admin.cookie)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"backup-verified\""), "{page}");
    assert!(page.contains("Kontrollert"), "{page}");
    assert!(page.contains("id=\"backup-next\""), "{page}");
    drop(app);
    let _ = std::fs::remove_dir_all(&backups);
}

#[tokio::test]
async fn a_record_erased_after_a_backup_stays_unreadable_when_that_backup_is_restored() {
    let mut app = spawn_demo();
    let f = Fhir::new(&app, "integrasjon.epj");
    let gone = f.create(&patient("01810700021", "Glemtesen")).await;
    let gone_id = gone["id"].as_str().unwrap().to_string();
    let obs = f
        .create(&heart_rate(&gone_id, "2026-05-01T08:00:00Z", 61))
        .await;
    let kept = f.create(&patient("01810700110", "Husketsen")).await;
    let kept_id = kept["id"].as_str().unwrap().to_string();
    let work = tempdir("backup-erasure");
    let out = work.join("b");
    let o = tillit(&[
        "backup",
        "create",
        "--out",
        p(&out),
        "--data-dir",
        p(&app.dir),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // After the backup, the patient is erased (by the tenant admin, as the patient asked).
    let admin = Fhir::new(&app, "admin.nilsen");
    let order = serde_json::json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueString": "Pasientens krav om sletting"}]
    });
    let (s, done) = admin
        .post(&format!("/Patient/{gone_id}/$erase"), &order)
        .await;
    assert_eq!(s, 200, "{done}");
    let obs_id = obs["id"].as_str().unwrap();
    assert_eq!(f.get(&format!("/Observation/{obs_id}")).await.0, 404);
    app.keep_dir();
    let dir = app.dir.clone();
    drop(app);

    // The old backup still verifies (the erased patient's records count as erased)...
    let v = tillit(&["backup", "verify", p(&out)]);
    assert!(v.status.success(), "{}", stderr(&v));
    // ... and restoring it brings nothing of the patient back.
    let restored = work.join("restored");
    let r = tillit(&["backup", "restore", p(&out), "--data-dir", p(&restored)]);
    assert!(r.status.success(), "{}", stderr(&r));
    let said = String::from_utf8_lossy(&r.stdout);
    assert!(said.contains("1 erasure(s) re-applied"), "{said}");
    let db = rusqlite::Connection::open(restored.join("tillit.db")).unwrap();
    let sealed: i64 = db
        .query_row(
            "SELECT count(*) FROM resource_versions WHERE patient_id = ?1",
            [&gone_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sealed, 0, "records of the erased patient came back");
    let kept_rows: i64 = db
        .query_row(
            "SELECT count(*) FROM resource_versions WHERE patient_id = ?1",
            [&kept_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept_rows, 1, "another patient's record went");
    drop(db);
    let keys = rusqlite::Connection::open(restored.join("keys/keyring.db")).unwrap();
    let key: i64 = keys
        .query_row(
            "SELECT count(*) FROM keys WHERE id LIKE 'patient/%/' || ?1",
            [&gone_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(key, 0);
    drop(keys);

    let mut app2 = spawn_demo_with(Some(restored.clone()), &[]);
    app2.keep_dir();
    let f2 = Fhir::new(&app2, "integrasjon.epj");
    // Gone (404 or 410, as after the erasure itself), not served.
    let (s, _) = f2.get(&format!("/Patient/{gone_id}")).await;
    assert!(s == 404 || s == 410, "the erased patient: {s}");
    let (s, _) = f2
        .get(&format!("/Observation/{}", obs["id"].as_str().unwrap()))
        .await;
    assert!(s == 404 || s == 410, "the erased patient's record: {s}");
    // Nor found by its national id, while the other patient is.
    let (_, found) = f2.get("/Patient?identifier=01810700021").await;
    assert_eq!(found["total"], 0, "{found}");
    let (_, found) = f2.get("/Patient?identifier=01810700110").await;
    assert_eq!(found["total"], 1, "{found}");
    let (s, v) = f2.get(&format!("/Patient/{kept_id}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"][0]["family"], "Husketsen");
    drop(app2);
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rows of the tenant in every table with a `tenant_id` column, and its `tenants` row.
fn tenant_rows(db: &Path, tenant: &str) -> i64 {
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
    assert!(tables.len() > 10, "{tables:?}");
    let mut n: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM tenants WHERE id = ?1",
            [tenant],
            |r| r.get(0),
        )
        .unwrap();
    for t in tables {
        n += c
            .query_row(
                &format!("SELECT COUNT(*) FROM \"{t}\" WHERE tenant_id = ?1"),
                [tenant],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
    }
    n
}

#[tokio::test]
async fn a_tenant_deleted_after_a_backup_does_not_come_back_when_it_is_restored() {
    let mut app = spawn_demo();
    app.keep_dir();
    let dir = app.dir.clone();
    let tenant_of = |u: &str| app.user(u)["tenant_id"].as_str().unwrap().to_string();
    let (sorby, nordby) = (tenant_of("lege.sorby"), tenant_of("lege.lund"));
    assert_eq!(Fhir::new(&app, "lege.sorby").get("/Patient").await.0, 200);
    assert_eq!(Fhir::new(&app, "lege.lund").get("/Patient").await.0, 200);
    let work = tempdir("backup-deleted-tenant");
    let out = work.join("b");
    let o = tillit(&["backup", "create", "--out", p(&out), "--data-dir", p(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let backup_id = manifest["id"].as_str().unwrap().to_string();
    let tenants = manifest["tenants"].as_array().unwrap().len();
    assert!(tenants >= 3, "{manifest}");

    // The backup is a security event in every tenant's log.
    let created: Vec<serde_json::Value> = events(&dir)
        .into_iter()
        .filter(|e| e["kind"] == "backup.created")
        .collect();
    assert_eq!(created.len(), tenants, "{created:?}");
    for e in &created {
        assert!(e["detail"].as_str().unwrap().contains(&backup_id), "{e}");
        assert_eq!(e["ok"], true);
        assert_eq!(e["user_agent"], "tillit backup create (CLI)");
    }
    for t in [&sorby, &nordby] {
        assert!(created.iter().any(|e| e["tenant"] == t.as_str()), "{t}");
    }

    // After the backup, Sørby leaves: keys destroyed, rows removed.
    drop(app);
    let receipt = work.join("receipt.json");
    let d = tillit(&[
        "tenant",
        "delete",
        "--tenant",
        "Sørby sykehus",
        "--confirm",
        "Sørby sykehus",
        "--receipt",
        p(&receipt),
        "--data-dir",
        p(&dir),
    ]);
    assert!(d.status.success(), "{}", stderr(&d));
    // The keyring's ledger of deleted tenants names it.
    let ledger: Vec<String> = rusqlite::Connection::open(dir.join("keys/keyring.db"))
        .unwrap()
        .prepare("SELECT tenant_id FROM deleted_tenants")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ledger, vec![sorby.clone()]);

    // The old backup verifies, with a note; nothing of Sørby is opened (no key is made).
    let v = tillit(&["backup", "verify", p(&out)]);
    assert!(v.status.success(), "{}", stderr(&v));
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(
        said.contains(&format!(
            "note: tenant Sørby sykehus ({sorby}) was deleted at"
        )),
        "{said}"
    );
    let keys_left: i64 = rusqlite::Connection::open(dir.join("keys/keyring.db"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM keys WHERE id LIKE '%' || ?1 || '%'",
            [&sorby],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        keys_left, 0,
        "checking the backup made keys for the deleted tenant"
    );

    // A keyring that merely lacks the tenant's keys (no ledger entry) is refused, clearly.
    let wrong = work.join("wrong-keys");
    copy_dir(&dir.join("keys"), &wrong);
    rusqlite::Connection::open(wrong.join("keyring.db"))
        .unwrap()
        .execute("DELETE FROM deleted_tenants", [])
        .unwrap();
    let r = tillit(&["backup", "verify", p(&out), "--keyring", p(&wrong)]);
    assert!(!r.status.success());
    let e = stderr(&r);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(
        e.contains(&sorby) && e.contains("ledger of deleted tenants"),
        "{e}"
    );
    let refused = work.join("refused");
    let r = tillit(&[
        "backup",
        "restore",
        p(&out),
        "--data-dir",
        p(&refused),
        "--keyring",
        p(&wrong),
    ]);
    assert!(!r.status.success());
    assert!(
        stderr(&r).contains("ledger of deleted tenants"),
        "{}",
        stderr(&r)
    );
    assert!(!refused.exists());

    // Restored with the live keyring: Sørby is dropped, the others are there.
    let restored = work.join("restored");
    let r = tillit(&["backup", "restore", p(&out), "--data-dir", p(&restored)]);
    assert!(r.status.success(), "{}", stderr(&r));
    let said = String::from_utf8_lossy(&r.stdout);
    assert!(
        said.contains(&format!("dropped tenant Sørby sykehus ({sorby})")),
        "{said}"
    );
    assert!(said.contains("1 deleted tenant(s) dropped"), "{said}");
    let db = restored.join("tillit.db");
    assert_eq!(
        tenant_rows(&db, &sorby),
        0,
        "rows of the deleted tenant came back"
    );
    assert!(tenant_rows(&db, &nordby) > 100);
    let listed = stdout(&admin(&restored, &["tenant", "list"]));
    assert!(
        !listed.contains(&sorby) && !listed.contains("Sørby"),
        "{listed}"
    );
    assert!(listed.contains(&nordby), "{listed}");
    // Every remaining log verifies, with the restore in it.
    let a = tillit(&["audit", "verify", "--data-dir", p(&restored)]);
    assert!(a.status.success(), "{}", stderr(&a));
    let verified = String::from_utf8_lossy(&a.stdout);
    assert!(
        verified.contains(&nordby) && !verified.contains(&sorby),
        "{verified}"
    );
    assert!(!verified.contains("FAILED"), "{verified}");
    let restored_events = events(&restored);
    let back: Vec<&serde_json::Value> = restored_events
        .iter()
        .filter(|e| e["kind"] == "backup.restored")
        .collect();
    assert_eq!(back.len(), tenants - 1, "{back:?}");
    assert!(
        back.iter()
            .all(|e| e["detail"].as_str().unwrap().contains(&backup_id))
    );
    assert!(back.iter().all(|e| e["tenant"] != sorby.as_str()));

    // It starts and serves the other tenants.
    let mut app2 = spawn_demo_with(Some(restored.clone()), &[]);
    app2.keep_dir();
    let (s, b) = Fhir::new(&app2, "lege.lund").get("/Patient").await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["total"].as_u64().unwrap_or(0) > 0 || !b["entry"].as_array().unwrap().is_empty(),
        "{b}"
    );
    drop(app2);
    // Deleting it again from the restored dir refuses: its receipt was issued already.
    let again = tillit(&[
        "tenant",
        "delete",
        "--tenant",
        &sorby,
        "--confirm",
        &sorby,
        "--receipt",
        p(&work.join("again.json")),
        "--data-dir",
        p(&restored),
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("dropped when this data dir was restored"),
        "{}",
        stderr(&again)
    );
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&dir);
}
