//! Audit log benchmark, measured side by side in one run on one disk:
//!
//! 1. raw `fsync` rate of the disk (write 4 KiB + `sync_data`, ~2 s);
//! 2. the SQLite ceiling: 100 plain rows per commit, WAL, `synchronous=FULL` (~2 s);
//! 3. `tillit_server::audit::AuditLog::append` (the server's group commit) with N concurrent
//!    writers of one event each (N = 1, 8, 64, 256; `BENCH_AUDIT_SECS` each, default 3);
//! 4. one tenant's log filled with `BENCH_AUDIT_EVENTS` events (default 10 000 000) in
//!    batches of 5 000, then 1 000 patient access-log queries (first page of 50, newest
//!    first) and 1 000 second pages (`before`), plus N = 64 appends against the full log.
//!
//! `cargo bench -p tillit-store-sqlite --bench audit`
//! (env: BENCH_AUDIT_EVENTS, BENCH_AUDIT_SECS, BENCH_AUDIT_QUERIES, BENCH_AUDIT_DB=path to keep
//! and reuse the filled database across runs). On the project's 2-core machine the default
//! run takes about 40 minutes, nearly all of it the fill (~4 300 events/s at 10 M); a re-run
//! on a kept `BENCH_AUDIT_DB` 1–5 minutes (opening it runs `PRAGMA quick_check`);
//! `BENCH_AUDIT_EVENTS=1000000` about 2 minutes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tillit_core::TenantId;
use tillit_server::audit::AuditLog;
use tillit_store::{
    AuditActor, AuditBatch, AuditClient, AuditEvent, AuditFilter, AuditOutcome, AuditStore,
    KeyringCipher, NewAuditEvent, Store,
};
use tillit_store_sqlite::{SqliteKeyVault, SqliteStore};
use time::OffsetDateTime;
use time::macros::datetime;

const PATIENTS: u64 = 20_000;
const STAFF: u64 = 2_000;
const FILL_BATCH: u64 = 5_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// splitmix64: reproducible and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn uuid(kind: u16, n: u64) -> String {
    format!("6f1c2d3e-{kind:04x}-4bbb-8ccc-{n:012x}")
}

fn patient(n: u64) -> String {
    uuid(0xa, n)
}

/// An access event as the server writes one: a nurse or physician reads one record or
/// searches a patient's compartment; about 2 % are refused.
fn event(tenant: &TenantId, rng: &mut Rng, at: OffsetDateTime) -> NewAuditEvent {
    let staff = rng.below(STAFF);
    let p = rng.below(PATIENTS);
    let search = rng.below(10) < 3;
    let denied = rng.below(50) == 0;
    let (role, policy) = if staff.is_multiple_of(5) {
        ("physician", "tenant.physician")
    } else {
        ("nurse", "tenant.nurse")
    };
    NewAuditEvent {
        at,
        tenant: tenant.to_string(),
        action: if search { "search" } else { "read" }.into(),
        outcome: if denied {
            AuditOutcome::Denied
        } else {
            AuditOutcome::Success
        },
        actor: AuditActor {
            user: None,
            person: Some(uuid(0xb, staff)),
            kind: Some("staff".into()),
            roles: vec![role.into()],
            org_units: vec![uuid(0xc, staff % 40)],
            on_behalf_of: None,
            support: false,
        },
        patient: Some(patient(p)),
        resource_type: Some("Observation".into()),
        resource_id: (!search).then(|| uuid(0xd, rng.below(1 << 40))),
        categories: vec!["measurements".into()],
        count: if search { 1 + rng.below(40) as u32 } else { 1 },
        basis: (!denied).then(|| "care-relationship".into()),
        reason: None,
        policies: vec![policy.into()],
        detail: denied.then(|| "no care relationship".into()),
        client: AuditClient {
            ip: Some(format!("10.20.{}.{}", staff % 200, 1 + staff % 250)),
            user_agent: None,
            session: Some(format!("session/{:012x}", staff * 7919)),
        },
    }
}

fn open(path: &Path) -> SqliteStore {
    let vault = SqliteKeyVault::open(&path.with_extension("keys.db")).unwrap();
    let keyring =
        tillit_crypto::Keyring::new(tillit_crypto::Kek::from_bytes([3; 32]), Arc::new(vault));
    SqliteStore::open(path, Arc::new(KeyringCipher(Arc::new(keyring)))).unwrap()
}

async fn tenant_of(store: &SqliteStore) -> TenantId {
    match store.tenant_by_name("bench").await.unwrap() {
        Some(t) => t.id,
        None => {
            store
                .create_tenant("bench", datetime!(2025-01-01 0:00 UTC))
                .await
                .unwrap()
                .id
        }
    }
}

/// Milliseconds, sorted.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The filesystem `path` is on, from /proc/self/mountinfo.
fn filesystem(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(mount), Some(fs), Some(src)) = (f.get(4), f.get(dash + 1), f.get(dash + 2))
        else {
            continue;
        };
        if path.starts_with(mount) && best.as_ref().is_none_or(|(l, _)| mount.len() >= *l) {
            best = Some((mount.len(), format!("{fs} on {src} (mounted at {mount})")));
        }
    }
    best.map(|b| b.1).unwrap_or_else(|| "unknown".into())
}

/// CPU seconds used by this process so far (user + system, from /proc/self/stat; 100 Hz ticks).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the file, counted from the state (field 3) here.
    (tick(11) + tick(12)) / 100.0
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn db_size(p: &Path) -> (u64, u64) {
    let mut wal = p.as_os_str().to_owned();
    wal.push("-wal");
    (file_size(p), file_size(Path::new(&wal)))
}

/// 1. Write 4 KiB and `sync_data`, over a 1 MiB preallocated file (as a reused WAL is).
fn fsync_rate(dir: &Path, secs: f64) -> (f64, f64) {
    let path = dir.join("fsync.bin");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.write_all(&vec![0u8; 1 << 20]).unwrap();
    f.sync_all().unwrap();
    let block = [0x5au8; 4096];
    let mut lat = Vec::new();
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f.seek(SeekFrom::Start((i % 256) * 4096)).unwrap();
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        i += 1;
    }
    let rate = i as f64 / start.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    (rate, pct(&sorted(lat), 0.5))
}

/// 2. 100 rows of ~300 bytes per commit into a plain table, WAL, synchronous=FULL.
fn sqlite_ceiling(dir: &Path, secs: f64) -> (f64, f64, f64) {
    let path = dir.join("ceiling.db");
    let mut c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v BLOB NOT NULL) STRICT",
    )
    .unwrap();
    let payload = vec![0x42u8; 300];
    let mut lat = Vec::new();
    let (mut rows, mut commits) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        let tx = c.transaction().unwrap();
        {
            let mut s = tx
                .prepare_cached("INSERT INTO t (k, v) VALUES (?1, ?2)")
                .unwrap();
            for _ in 0..100 {
                s.execute(rusqlite::params![format!("row-{rows}"), &payload])
                    .unwrap();
                rows += 1;
            }
        }
        tx.commit().unwrap();
        commits += 1;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let el = start.elapsed().as_secs_f64();
    drop(c);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(Path::new(&p));
    }
    (
        rows as f64 / el,
        commits as f64 / el,
        pct(&sorted(lat), 0.5),
    )
}

struct AppendRow {
    label: String,
    events_s: f64,
    commits_s: f64,
    per_commit: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
}

/// 3. `writers` tasks, each appending one event at a time through the group commit.
async fn appends(
    label: String,
    store: &SqliteStore,
    tenant: &TenantId,
    writers: usize,
    secs: f64,
) -> AppendRow {
    let store: Arc<dyn Store> = Arc::new(store.clone());
    let log = Arc::new(AuditLog::new(store));
    // Warm up: start the writer task and the connection.
    log.append(AuditBatch {
        events: vec![event(
            tenant,
            &mut Rng(1),
            tillit_core::Clock::now(&tillit_core::SystemClock),
        )],
        ..AuditBatch::default()
    })
    .await
    .unwrap();
    let (c0, e0) = (
        log.stats().commits.load(Ordering::Relaxed),
        log.stats().events.load(Ordering::Relaxed),
    );
    let cpu0 = cpu_secs();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (log, tenant) = (log.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(1000 + w as u64);
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let ev = event(
                    &tenant,
                    &mut rng,
                    tillit_core::Clock::now(&tillit_core::SystemClock),
                );
                let seqs = log
                    .append(AuditBatch {
                        events: vec![ev],
                        ..AuditBatch::default()
                    })
                    .await
                    .unwrap();
                assert_eq!(seqs.len(), 1);
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let el = start.elapsed().as_secs_f64();
    let cpu = (cpu_secs() - cpu0) / el;
    let commits = log.stats().commits.load(Ordering::Relaxed) - c0;
    let events = log.stats().events.load(Ordering::Relaxed) - e0;
    assert_eq!(events, lat.len() as u64);
    let lat = sorted(lat);
    AppendRow {
        label,
        events_s: events as f64 / el,
        commits_s: commits as f64 / el,
        per_commit: events as f64 / commits.max(1) as f64,
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        cpu,
    }
}

/// 4. Fills `tenant`'s log to `target` events, building the next batch while one commits.
async fn fill(store: &SqliteStore, tenant: &TenantId, target: u64) -> (u64, f64, f64) {
    let have = store.audit_head(tenant).await.unwrap().size;
    if have >= target {
        return (0, 0.0, 0.0);
    }
    let base = datetime!(2025-01-01 0:00 UTC);
    let mut rng = Rng(42 + have);
    let mut seq = have;
    let mut payload_bytes = 0u64;
    let mut sampled = 0u64;
    let start = Instant::now();
    let mut pending: Option<tokio::task::JoinHandle<()>> = None;
    let mut next_report = have + 1_000_000;
    let cpu0 = cpu_secs();
    while seq < target {
        let n = FILL_BATCH.min(target - seq);
        let mut batch = AuditBatch::default();
        for i in 0..n {
            // Ten million events span about a year (one every ~3 s).
            let at = base + Duration::from_millis((seq + i) * 3_150);
            let ev = event(tenant, &mut rng, at);
            if (seq + i).is_multiple_of(97) {
                payload_bytes += AuditEvent {
                    seq: seq + i,
                    event: ev.clone(),
                }
                .payload()
                .len() as u64;
                sampled += 1;
            }
            batch.events.push(ev);
        }
        if let Some(p) = pending.take() {
            p.await.unwrap();
        }
        let s = store.clone();
        pending = Some(tokio::spawn(async move {
            s.append_audit(batch).await.unwrap();
        }));
        seq += n;
        if seq >= next_report {
            eprintln!(
                "  filled {seq} ({:.0} events/s)",
                (seq - have) as f64 / start.elapsed().as_secs_f64()
            );
            next_report += 1_000_000;
        }
    }
    if let Some(p) = pending.take() {
        p.await.unwrap();
    }
    let el = start.elapsed().as_secs_f64();
    eprintln!("  fill CPU {:.0} %", (cpu_secs() - cpu0) / el * 100.0);
    (
        target - have,
        el,
        payload_bytes as f64 / sampled.max(1) as f64,
    )
}

fn query_plan(path: &Path) -> String {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut s = c
        .prepare(
            "EXPLAIN QUERY PLAN SELECT seq, payload FROM audit_events WHERE tenant_id = ?
             AND patient_id = ? AND payload IS NOT NULL ORDER BY seq DESC LIMIT ?",
        )
        .unwrap();
    let rows = s
        .query_map(rusqlite::params!["t", "p", 50], |r| r.get::<_, String>(3))
        .unwrap();
    rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let target = env("BENCH_AUDIT_EVENTS", 10_000_000);
    let secs = env("BENCH_AUDIT_SECS", 3) as f64;
    let queries = env("BENCH_AUDIT_QUERIES", 1_000);
    let run_start = Instant::now();

    let tmp = std::env::temp_dir().join(format!("tillit-audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let (db_path, keep): (PathBuf, bool) = match std::env::var_os("BENCH_AUDIT_DB") {
        Some(p) => (PathBuf::from(p), true),
        None => (tmp.join("big.db"), false),
    };
    let reused = db_path.exists();
    println!("scratch dir {} — {}", tmp.display(), filesystem(&tmp));
    println!(
        "big log {} ({}) — {}",
        db_path.display(),
        if reused { "reused" } else { "new" },
        filesystem(db_path.parent().unwrap_or(Path::new("/")))
    );
    println!(
        "{} cores, release build; medians of one run, cases side by side\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1 and 2: the disk and SQLite on it.
    let (fsync_s, fsync_p50) = fsync_rate(&tmp, 2.0);
    let (ceil_rows, ceil_commits, ceil_p50) = sqlite_ceiling(&tmp, 2.0);
    println!("| case | rate | median latency |");
    println!("| --- | --- | --- |");
    println!("| write 4 KiB + fdatasync | {fsync_s:.0} syncs/s | {fsync_p50:.2} ms |");
    println!(
        "| SQLite WAL synchronous=FULL, 100 rows × 300 B per commit | {ceil_rows:.0} rows/s ({ceil_commits:.0} commits/s) | {ceil_p50:.2} ms per commit |"
    );
    println!();

    // 3: the group commit, fresh log.
    let small = open(&tmp.join("append.db"));
    let small_tenant = tenant_of(&small).await;
    let mut rows = Vec::new();
    for n in [1usize, 8, 64, 256] {
        rows.push(appends(format!("{n}"), &small, &small_tenant, n, secs).await);
    }
    drop(small);

    // 4: the big log.
    let t = Instant::now();
    let big = open(&db_path);
    println!(
        "opening the big log: {:.1} s (SqliteStore::open checks an existing file first)",
        t.elapsed().as_secs_f64()
    );
    let tenant = tenant_of(&big).await;
    let (added, fill_s, payload) = fill(&big, &tenant, target).await;
    let size = big.audit_head(&tenant).await.unwrap().size;
    if added > 0 {
        println!(
            "fill: {added} events in {fill_s:.1} s = {:.0} events/s (batches of {FILL_BATCH}, mean payload {payload:.0} B of JSON before sealing)",
            added as f64 / fill_s
        );
    } else {
        println!("fill: reused, nothing added");
    }
    let (main_b, wal_b) = db_size(&db_path);
    println!(
        "log: {size} events of one tenant, {PATIENTS} patients, {STAFF} staff; database {:.2} GB + WAL {:.0} MB ({:.0} B per event)",
        main_b as f64 / 1e9,
        wal_b as f64 / 1e6,
        (main_b + wal_b) as f64 / size.max(1) as f64
    );
    println!("query plan: {}", query_plan(&db_path));

    let mut rng = Rng(7);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let mut returned = 0usize;
    for _ in 0..queries {
        let p = patient(rng.below(PATIENTS));
        let mut f = AuditFilter {
            patient: Some(p),
            limit: 50,
            ..AuditFilter::default()
        };
        let t = Instant::now();
        let page = big.audit_search(&tenant, &f).await.unwrap();
        first.push(t.elapsed().as_secs_f64() * 1e3);
        returned += page.len();
        assert!(page.windows(2).all(|w| w[0].seq > w[1].seq));
        let Some(last) = page.last() else { continue };
        f.before = Some(last.seq);
        let t = Instant::now();
        let page2 = big.audit_search(&tenant, &f).await.unwrap();
        second.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(page2.iter().all(|e| e.seq < last.seq));
    }
    let (first, second) = (sorted(first), sorted(second));
    println!(
        "\npatient access log at {size} events ({queries} random patients, {:.1} events per page on average):",
        returned as f64 / queries.max(1) as f64
    );
    println!("| query | p50 | p99 | max |");
    println!("| --- | --- | --- | --- |");
    for (name, l) in [
        ("first page (50, newest first)", &first),
        ("second page (`before`)", &second),
    ] {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms |",
            pct(l, 0.5),
            pct(l, 0.99),
            pct(l, 1.0)
        );
    }

    rows.push(appends(format!("64, log of {size}"), &big, &tenant, 64, secs).await);
    drop(big);

    println!("\nAuditLog::append, one event per call, {secs:.0} s per case:");
    println!(
        "| writers | events/s | commits/s | events/commit | p50 | p99 | ÷ fsync/s | ÷ SQLite rows/s | CPU |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} | {:.2} ms | {:.2} ms | {:.2} | {:.2} | {:.0} % |",
            r.label,
            r.events_s,
            r.commits_s,
            r.per_commit,
            r.p50,
            r.p99,
            r.events_s / fsync_s,
            r.events_s / ceil_rows,
            r.cpu * 100.0
        );
    }

    // The scratch dir holds the big log too unless BENCH_AUDIT_DB put it elsewhere.
    let _ = std::fs::remove_dir_all(&tmp);
    if keep {
        println!("\nkept {} for the next run", db_path.display());
    }
    println!("total {:.0} s", run_start.elapsed().as_secs_f64());
}
