//! Login timing: does a wrong password for an existing account take the same time as any
//! password for a username that does not exist? (If not, the time tells an attacker which
//! usernames exist.) Runs the real binary over HTTPS on loopback and measures both kinds
//! interleaved in one run, so machine noise hits both alike. Prints medians and the ratio.
//!
//! `cargo bench -p tillit --bench login`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use serde_json::json;
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let app = helpers::spawn_demo_with(None, &[("TILLIT_LOGIN__IP_MAX_FAILURES", "1000000")]);
    let accounts: Vec<String> = app.creds["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    // Warm up connections and caches.
    for i in 0..5 {
        app.login(json!({"username": format!("warmup{i}"), "password": "warm-up-password"}))
            .await;
    }
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    // Four failures per account stays below the lockout (five).
    for round in 0..4 {
        for (i, name) in accounts.iter().enumerate() {
            let t = Instant::now();
            let r = app
                .login(json!({"username": name, "password": format!("not-the-password-{round}")}))
                .await;
            wrong.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(r.status(), 401);
            let t = Instant::now();
            let r = app.login(json!({"username": format!("nobody.{round}.{i}"), "password": format!("not-the-password-{round}")})).await;
            unknown.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(r.status(), 401);
        }
    }
    let (mu, mw) = (median(&mut unknown), median(&mut wrong));
    println!(
        "login timing over HTTPS, {} samples each, interleaved (ms):",
        unknown.len()
    );
    println!(
        "  unknown username : median {mu:7.2}  p10 {:7.2}  p90 {:7.2}",
        pct(&unknown, 0.1),
        pct(&unknown, 0.9)
    );
    println!(
        "  wrong password   : median {mw:7.2}  p10 {:7.2}  p90 {:7.2}",
        pct(&wrong, 0.1),
        pct(&wrong, 0.9)
    );
    println!("  ratio unknown/wrong (median): {:.3}", mu / mw);
}
