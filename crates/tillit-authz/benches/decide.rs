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
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    println!(
        "{n} decisions ({permitted} permitted): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}
