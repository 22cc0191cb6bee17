//! Decision latency of the Cedar engine with the default tenant policies: p50/p99 over many
//! decisions of mixed outcomes. `cargo bench -p tillit-authz --bench decide`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;
use tillit_authz::*;
use tillit_core::Period;
use time::{Duration, OffsetDateTime};

fn percentiles(mut lat: Vec<f64>) -> (f64, f64, f64) {
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    (pct(0.5), pct(0.99), pct(1.0))
}

/// A realistic caller: a home-care nurse with 500 care relationships (personal and through
/// two org units, some ended, some limited to categories), and patients with 10 blocks each
/// on the ones she reads. Measures the per-request work (building the knowledge from the
/// rules the store returns) and the per-record work (facts + Cedar decision).
fn realistic(e: &Engine, pol: &TenantPolicies) {
    let now = OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap();
    let open = Period::new(now - Duration::days(300), None).unwrap();
    let ended = Period::new(now - Duration::days(300), Some(now - Duration::days(10))).unwrap();
    let cats = [
        "measurements",
        "medications",
        "clinical-notes",
        "care-plan",
        "mental-health",
    ];
    let mut rules = Vec::new();
    for i in 0..500 {
        rules.push(AccessRule {
            kind: RuleKind::Care,
            party: match i % 3 {
                0 => Party::Person("nurse".into()),
                1 => Party::OrgUnit("night".into()),
                _ => Party::OrgUnit("district".into()),
            },
            patient: format!("p{i}"),
            categories: if i % 7 == 0 {
                vec![cats[i % 5].to_string()]
            } else {
                vec![]
            },
            period: if i % 11 == 0 { ended } else { open },
        });
    }
    // Ten blocks on each of the first 50 patients: other staff, other units, categories.
    for i in 0..50 {
        for b in 0..10 {
            rules.push(AccessRule {
                kind: RuleKind::Block,
                party: match b % 3 {
                    0 => Party::Person(format!("colleague{b}")),
                    1 => Party::OrgUnit(format!("unit{b}")),
                    _ => Party::Everyone,
                },
                patient: format!("p{i}"),
                categories: vec![cats[b % 5].to_string()],
                period: open,
            });
        }
    }
    let units = ["night".to_string(), "district".to_string()];
    let principal = Principal {
        id: "nurse".into(),
        tenant: "nordby".into(),
        kind: "staff".into(),
        roles: vec!["nurse".into()],
    };
    let n = 2_000;
    let mut build = Vec::with_capacity(n);
    let mut knowledge = None;
    for _ in 0..n {
        let t = Instant::now();
        let k = Knowledge::new("nurse", "staff", units.clone(), rules.clone())
            .with_emergency_overrides_block(true);
        build.push(t.elapsed().as_nanos() as f64 / 1000.0);
        knowledge = Some(k);
    }
    let k = knowledge.unwrap();
    let n = 100_000;
    let mut lat = Vec::with_capacity(n);
    let mut permitted = 0;
    for i in 0..n {
        let patient = format!("p{}", (i * 7) % 600);
        let r = Record {
            tenant: "nordby".into(),
            resource_type: "Observation".into(),
            category: cats[i % 5].into(),
            withheld: false,
            restricted: false,
        };
        let t = Instant::now();
        let f = k.facts(Some(&patient), &r.category, now);
        let d = e.decide(pol, &principal, Action::Read, &r, &f);
        lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
        permitted += usize::from(d.permitted);
    }
    let (b50, b99, _) = percentiles(build);
    let (p50, p99, max) = percentiles(lat);
    println!(
        "realistic: {} rules ({} care relationships, 500 blocks); per request: knowledge built in p50 {b50:.1} µs, p99 {b99:.1} µs",
        rules.len(),
        500
    );
    println!(
        "realistic: {n} decisions ({permitted} permitted) incl. facts: p50 {p50:.1} µs, p99 {p99:.1} µs, max {max:.1} µs"
    );
}

fn main() {
    let e = Engine::new().unwrap();
    let pol = e.compile(DEFAULT_TENANT_POLICIES).unwrap();
    let roles = ["physician", "nurse", "care_assistant", "secretary"];
    let cats = [
        "demographics",
        "measurements",
        "clinical-notes",
        "mental-health",
        "appointments",
    ];
    let n = 100_000;
    let mut lat = Vec::with_capacity(n);
    let mut permitted = 0;
    for i in 0..n {
        let p = Principal {
            id: format!("u{}", i % 500),
            tenant: "nordby".into(),
            kind: "staff".into(),
            roles: vec![roles[i % 4].into()],
        };
        let r = Record {
            tenant: "nordby".into(),
            resource_type: "Observation".into(),
            category: cats[i % 5].into(),
            withheld: false,
            restricted: false,
        };
        let f = Facts {
            care_relationship: i % 3 != 0,
            blocked: i % 17 == 0,
            ..Facts::default()
        };
        let t = Instant::now();
        let d = e.decide(&pol, &p, Action::Read, &r, &f);
        lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
        permitted += usize::from(d.permitted);
    }
    let (p50, p99, max) = percentiles(lat);
    println!(
        "{n} decisions ({permitted} permitted): p50 {p50:.1} µs, p99 {p99:.1} µs, max {max:.1} µs"
    );
    realistic(&e, &pol);
}
