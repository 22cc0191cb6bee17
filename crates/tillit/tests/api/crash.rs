//! Crash safety: several tasks write FHIR resources at once (creates, updates with
//! `If-Match`, transactions of three), the server is killed with SIGKILL at a random moment,
//! and a new server on the same data dir must show that
//!
//! - every write whose response was received is there, with the content that was sent (the
//!   acknowledged version read back with `vread`, the current version being that one or the
//!   next, unacknowledged, update in full);
//! - nothing unacknowledged is half there: an unacknowledged create is absent or fully
//!   readable, a transaction's three resources are all there or none, and every search match
//!   reads back as the same version with the same content (no index row without its version,
//!   no version without its index rows);
//! - `tillit audit verify` passes on the killed server's data dir.
//!
//! The loop count is `CRASH_LOOPS` (default 20, about a minute); `CRASH_SEED` replays a run
//! (the seed is printed). Not `TILLIT_*`: the server reads those as its configuration.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SYSTEM: &str = "urn:tillit:crash";
const WRITERS: usize = 6;

/// xorshift64*: reproducible from the printed seed, no extra crate.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One server's API as a writer task sees it ('static, so it can be moved into a task).
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(app: &TestApp, user: &str) -> Self {
        Api {
            client: app.client.clone(),
            base: app.url("/fhir/r4"),
            token: app.user(user)["api_token"].as_str().unwrap().to_string(),
        }
    }

    /// `None` when no complete response arrived (the server died first).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<i64>,
    ) -> Option<(u16, Value)> {
        let mut rb = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(20));
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/fhir+json")
                .body(serde_json::to_vec(b).unwrap());
        }
        if let Some(v) = if_match {
            rb = rb.header("if-match", format!("W/\"{v}\""));
        }
        let r = rb.send().await.ok()?;
        let status = r.status().as_u16();
        let text = r.text().await.ok()?;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).ok()?
        };
        Some((status, v))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None, None)
            .await
            .unwrap_or_else(|| panic!("GET {path}: no response from the restarted server"))
    }
}

fn observation(patient: &str, marker: &str, value: i64) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": SYSTEM, "value": marker}],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": "2026-01-01T10:00:00Z",
        "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

fn value_of(v: &Value) -> Option<i64> {
    v["valueQuantity"]["value"].as_i64()
}

fn version_of(v: &Value) -> Option<i64> {
    v["meta"]["versionId"].as_str().and_then(|s| s.parse().ok())
}

fn marker_of(v: &Value) -> Option<String> {
    v["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == SYSTEM)
        .and_then(|i| i["value"].as_str())
        .map(str::to_string)
}

/// What a writer knows of one resource it created.
#[derive(Debug, Clone)]
struct Known {
    marker: String,
    patient: String,
    version: i64,
    value: i64,
    /// An update sent without a response: (version it would make, value).
    maybe: Option<(i64, i64)>,
}

/// Everything the writers did, by what the server answered.
#[derive(Debug, Default)]
struct Ledger {
    /// Acknowledged resources by id.
    known: HashMap<String, Known>,
    /// Creates without a response: (marker, value).
    unacked: Vec<(String, i64)>,
    /// Creates the server answered with an error: must not be there.
    refused: Vec<String>,
    /// Transactions without a response: all of their (marker, value) or none.
    groups: Vec<Vec<(String, i64)>>,
    writes_acked: usize,
}

impl Ledger {
    fn merge(&mut self, other: Ledger) {
        self.known.extend(other.known);
        self.unacked.extend(other.unacked);
        self.refused.extend(other.refused);
        self.groups.extend(other.groups);
        self.writes_acked += other.writes_acked;
    }
}

async fn writer(
    api: Api,
    patients: Vec<String>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
    tag: String,
) -> Ledger {
    let mut l = Ledger::default();
    let mut n: i64 = 0;
    let mut ids: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let patient = patients[rng.below(patients.len() as u64) as usize].clone();
        let value = n;
        let roll = rng.below(10);
        let updatable: Vec<&String> = ids
            .iter()
            .filter(|id| l.known.get(*id).is_some_and(|k| k.maybe.is_none()))
            .collect();
        if (6..9).contains(&roll) && !updatable.is_empty() {
            let id = updatable[rng.below(updatable.len() as u64) as usize].clone();
            let k = l.known.get(&id).unwrap().clone();
            let mut body = observation(&k.patient, &k.marker, value);
            body["id"] = json!(id);
            let r = api
                .send(
                    reqwest::Method::PUT,
                    &format!("/Observation/{id}"),
                    Some(&body),
                    Some(k.version),
                )
                .await;
            let entry = l.known.get_mut(&id).unwrap();
            match r {
                Some((200, v)) => {
                    assert_eq!(version_of(&v), Some(k.version + 1), "{v}");
                    entry.version = k.version + 1;
                    entry.value = value;
                    l.writes_acked += 1;
                }
                // An answered failure changed nothing, but stop guessing about this one.
                Some((_, _)) | None => entry.maybe = Some((k.version + 1, value)),
            }
        } else if roll == 9 {
            let members: Vec<(String, i64)> = (0..3)
                .map(|i| (format!("{tag}-{n}-t{i}"), value * 10 + i))
                .collect();
            let bundle = json!({
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": members.iter().map(|(m, v)| json!({
                    "resource": observation(&patient, m, *v),
                    "request": {"method": "POST", "url": "Observation"}
                })).collect::<Vec<_>>()
            });
            match api
                .send(reqwest::Method::POST, "", Some(&bundle), None)
                .await
            {
                Some((200, v)) => {
                    let entries = v["entry"].as_array().unwrap();
                    assert_eq!(entries.len(), 3, "{v}");
                    for ((marker, val), e) in members.iter().zip(entries) {
                        let loc = e["response"]["location"].as_str().unwrap();
                        let id = loc.split('/').rev().nth(2).unwrap().to_string();
                        l.known.insert(
                            id.clone(),
                            Known {
                                marker: marker.clone(),
                                patient: patient.clone(),
                                version: 1,
                                value: *val,
                                maybe: None,
                            },
                        );
                        ids.push(id);
                    }
                    l.writes_acked += 1;
                }
                Some((_, _)) => l.refused.extend(members.into_iter().map(|(m, _)| m)),
                None => l.groups.push(members),
            }
        } else {
            let marker = format!("{tag}-{n}");
            let body = observation(&patient, &marker, value);
            match api
                .send(reqwest::Method::POST, "/Observation", Some(&body), None)
                .await
            {
                Some((201, v)) => {
                    let id = v["id"].as_str().unwrap().to_string();
                    assert_eq!(value_of(&v), Some(value));
                    l.known.insert(
                        id.clone(),
                        Known {
                            marker,
                            patient: patient.clone(),
                            version: 1,
                            value,
                            maybe: None,
                        },
                    );
                    ids.push(id);
                    l.writes_acked += 1;
                }
                Some((_, _)) => l.refused.push(marker),
                None => l.unacked.push((marker, value)),
            }
        }
    }
    l
}

/// The resources with `marker` that a search finds, each checked against its own read.
async fn find(api: &Api, marker: &str) -> Vec<Value> {
    let (s, b) = api
        .get(&format!("/Observation?identifier={SYSTEM}|{marker}"))
        .await;
    assert_eq!(s, 200, "{b}");
    let found: Vec<Value> = b["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect();
    assert_eq!(b["total"].as_u64(), Some(found.len() as u64), "{b}");
    for r in &found {
        let id = r["id"].as_str().unwrap();
        let (s, read) = api.get(&format!("/Observation/{id}")).await;
        assert_eq!(s, 200, "a search match that does not read: {read}");
        assert_eq!(&read, r, "search and read disagree on {id}");
        assert_eq!(marker_of(&read).as_deref(), Some(marker));
    }
    found
}

/// Checks everything one round's ledger says against the restarted server. `all` holds the
/// marker of every write ever sent.
async fn check(
    api: &Api,
    l: &Ledger,
    patients: &[String],
    all: &std::collections::HashSet<String>,
    since: time::OffsetDateTime,
) -> usize {
    let mut checked = 0;
    for (id, k) in &l.known {
        let (s, cur) = api.get(&format!("/Observation/{id}")).await;
        assert_eq!(s, 200, "acknowledged {id} is gone: {cur}");
        let v = version_of(&cur).unwrap();
        match k.maybe {
            Some((mv, mval)) if v == mv => {
                assert_eq!(value_of(&cur), Some(mval), "half an update of {id}");
                let (s, old) = api
                    .get(&format!("/Observation/{id}/_history/{}", k.version))
                    .await;
                assert_eq!(s, 200, "{old}");
                assert_eq!(
                    value_of(&old),
                    Some(k.value),
                    "acknowledged version of {id}"
                );
            }
            _ => {
                assert_eq!(v, k.version, "{id} is at {v}, acknowledged {}", k.version);
                assert_eq!(value_of(&cur), Some(k.value), "{id} lost its content");
            }
        }
        checked += 1;
    }
    for (marker, value) in &l.unacked {
        let found = find(api, marker).await;
        assert!(found.len() <= 1, "{marker} created twice");
        if let Some(r) = found.first() {
            assert_eq!(value_of(r), Some(*value), "half a create of {marker}");
            assert_eq!(version_of(r), Some(1));
        }
    }
    for marker in &l.refused {
        assert!(
            find(api, marker).await.is_empty(),
            "refused {marker} is there"
        );
    }
    for g in &l.groups {
        let mut present = 0;
        for (marker, value) in g {
            let found = find(api, marker).await;
            if let Some(r) = found.first() {
                assert_eq!(value_of(r), Some(*value));
                present += 1;
            }
        }
        assert!(
            present == 0 || present == g.len(),
            "half a transaction: {present} of {}",
            g.len()
        );
    }
    // Every crash-test record of this round that a compartment search returns reads back
    // the same, none is unknown to the writers, and every acknowledged one is found once.
    let since = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for p in patients {
        let (s, b) = api
            .get(&format!(
                "/Observation?patient=Patient/{p}&_lastUpdated=ge{since}&_count=1000"
            ))
            .await;
        assert_eq!(s, 200, "{b}");
        let entries = b["entry"].as_array().cloned().unwrap_or_default();
        assert_eq!(b["total"].as_u64(), Some(entries.len() as u64), "one page");
        for e in entries {
            let r = &e["resource"];
            let Some(marker) = marker_of(r) else { continue };
            assert!(all.contains(&marker), "{marker} was never written");
            let id = r["id"].as_str().unwrap().to_string();
            if let Some(k) = l.known.get(&id) {
                assert_eq!(k.marker, marker);
                let want = match k.maybe {
                    Some((mv, mval)) if version_of(r) == Some(mv) => mval,
                    _ => k.value,
                };
                assert_eq!(value_of(r), Some(want), "search shows another {id}");
            } else {
                let (s, read) = api.get(&format!("/Observation/{id}")).await;
                assert_eq!(s, 200, "a search match that does not read: {read}");
                assert_eq!(&read, r, "search and read disagree on {id}");
            }
            *seen.entry(id).or_default() += 1;
        }
    }
    for id in l.known.keys() {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "{id} is not found by search exactly once"
        );
    }
    checked
}

/// Resources settled in earlier rounds are still there, as they were, after later crashes
/// (a sample of them, to keep the loop fast).
async fn check_older(api: &Api, older: &[(String, Known)], rng: &mut Rng) -> usize {
    let n = older.len().min(20);
    for _ in 0..n {
        let (id, k) = &older[rng.below(older.len() as u64) as usize];
        let (s, cur) = api.get(&format!("/Observation/{id}")).await;
        assert_eq!(s, 200, "{id} of an earlier round is gone: {cur}");
        assert_eq!(version_of(&cur), Some(k.version), "{id}");
        assert_eq!(value_of(&cur), Some(k.value), "{id}");
    }
    n
}

fn verify_audit(dir: &std::path::Path) {
    let o = std::process::Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "audit verify after a crash: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_concurrent_writes_the_server_loses_nothing_acknowledged() {
    let loops: usize = std::env::var("CRASH_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            (tillit_core::Clock::now(&tillit_core::SystemClock).unix_timestamp_nanos() as u64) | 1
        });
    println!("crash loop: {loops} kills, CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut app = spawn_demo();
    let patients: Vec<String> = app.user("lege.lund")["patients"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert!(!patients.is_empty());
    let mut older: Vec<(String, Known)> = Vec::new();
    let mut all = std::collections::HashSet::new();
    let mut acked_total = 0;
    let mut checked_total = 0;
    let mut timings = [Duration::ZERO; 3];
    for round in 0..loops {
        let api = Api::new(&app, "integrasjon.epj");
        let since = tillit_core::Clock::now(&tillit_core::SystemClock) - time::Duration::seconds(2);
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    api.clone(),
                    patients.clone(),
                    stop.clone(),
                    Rng(rng.next() | 1),
                    format!("r{round}w{w}"),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + rng.below(1100))).await;
        let dir = app.kill_hard();
        stop.store(true, Ordering::Relaxed);
        let mut this = Ledger::default();
        for t in tasks {
            this.merge(t.await.unwrap());
        }
        acked_total += this.writes_acked;
        all.extend(this.known.values().map(|k| k.marker.clone()));
        all.extend(this.unacked.iter().map(|(m, _)| m.clone()));
        all.extend(this.groups.iter().flatten().map(|(m, _)| m.clone()));
        all.extend(this.refused.iter().cloned());
        let t = Instant::now();
        verify_audit(&dir);
        timings[0] += t.elapsed();
        let t = Instant::now();
        app = spawn_demo_with(Some(dir), &[]);
        timings[1] += t.elapsed();
        let t = Instant::now();
        let api = Api::new(&app, "integrasjon.epj");
        checked_total += check(&api, &this, &patients, &all, since).await;
        checked_total += check_older(&api, &older, &mut rng).await;
        // What was in doubt is now settled: later rounds check it as known.
        settle(&api, &mut this).await;
        timings[2] += t.elapsed();
        older.extend(this.known);
    }
    println!(
        "crash loop: audit verify {:.1} s, restarts {:.1} s, checks {:.1} s",
        timings[0].as_secs_f64(),
        timings[1].as_secs_f64(),
        timings[2].as_secs_f64()
    );
    println!(
        "crash loop: {loops} kills, {acked_total} acknowledged writes, {} resources, {checked_total} checks, {:.1} s",
        older.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(acked_total > 0, "no write was acknowledged");
}

/// After a check, the unacknowledged writes that made it become known (so later rounds
/// check them too) and those that did not are dropped.
async fn settle(api: &Api, l: &mut Ledger) {
    for k in l.known.values_mut() {
        if let Some((mv, mval)) = k.maybe.take() {
            let found = find(api, &k.marker).await;
            let cur = found.first().unwrap();
            if version_of(cur) == Some(mv) {
                k.version = mv;
                k.value = mval;
            }
        }
    }
    let unacked = std::mem::take(&mut l.unacked);
    let groups = std::mem::take(&mut l.groups);
    for (marker, _) in unacked.into_iter().chain(groups.into_iter().flatten()) {
        if let Some(r) = find(api, &marker).await.first() {
            let id = r["id"].as_str().unwrap().to_string();
            let patient = r["subject"]["reference"]
                .as_str()
                .unwrap()
                .trim_start_matches("Patient/")
                .to_string();
            l.known.insert(
                id,
                Known {
                    marker,
                    patient,
                    version: version_of(r).unwrap(),
                    value: value_of(r).unwrap(),
                    maybe: None,
                },
            );
        }
    }
    l.refused.clear();
}
