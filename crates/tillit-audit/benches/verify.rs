//! Log verification throughput against raw SHA-256 throughput over the same bytes, measured
//! side by side in one run. `cargo bench -p tillit-audit --bench verify` (BENCH_ENTRIES=N).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;
use tillit_audit::checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier};
use tillit_audit::verify::{CompactRange, Entry, entry_leaf, payload_hash, verify_log};
use zeroize::Zeroizing;

fn main() {
    let n: u64 = std::env::var("BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // Payloads of about the size of an audit event (~300 bytes of JSON).
    let entries: Vec<Entry> = (0..n)
        .map(|seq| {
            let p = format!(
                "{{\"seq\":{seq},\"at\":1796000000000,\"actor\":\"6f1c2d3e-aaaa-bbbb-cccc-000000000001\",\"role\":\"nurse\",\"unit\":\"6f1c2d3e-aaaa-bbbb-cccc-000000000002\",\"patient\":\"6f1c2d3e-aaaa-bbbb-cccc-{seq:012}\",\"action\":\"read\",\"resource\":\"Observation/6f1c2d3e-aaaa-bbbb-cccc-000000000003\",\"category\":\"measurements\",\"basis\":\"care\",\"outcome\":\"permit\",\"policy\":\"tenant.nurse\"}}"
            )
            .into_bytes();
            Entry {
                seq,
                payload_hash: payload_hash(&p),
                payload: Some(p),
            }
        })
        .collect();
    let bytes: u64 = entries
        .iter()
        .map(|e| e.payload.as_ref().unwrap().len() as u64)
        .sum();
    let signer = CheckpointSigner::from_seed("bench", &Zeroizing::new([5; 32])).unwrap();
    let mut r = CompactRange::default();
    for e in &entries {
        r.push(entry_leaf("t", e.seq, &e.payload_hash));
    }
    let cps = vec![signer.sign(&Checkpoint {
        origin: "bench/t".into(),
        size: n,
        root: r.root(),
    })];
    let verifier = CheckpointVerifier::parse(&signer.verifier_key()).unwrap();

    let mut verify_s = Vec::new();
    let mut sha_s = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let mut acc = 0u8;
        for e in &entries {
            acc ^= payload_hash(e.payload.as_ref().unwrap())[0];
        }
        sha_s.push(t.elapsed().as_secs_f64());
        std::hint::black_box(acc);
        let t = Instant::now();
        let ok = verify_log(
            "t",
            "bench/t",
            entries.iter().cloned(),
            &cps,
            &verifier,
            &mut |_| {},
        );
        verify_s.push(t.elapsed().as_secs_f64());
        assert!(ok.is_ok());
    }
    verify_s.sort_by(f64::total_cmp);
    sha_s.sort_by(f64::total_cmp);
    let (v, s) = (verify_s[1], sha_s[1]);
    println!(
        "{n} entries, {:.0} MB of payload; median of 3 runs, interleaved",
        bytes as f64 / 1e6
    );
    println!(
        "  raw SHA-256 of the payloads: {:.0} entries/s ({:.0} MB/s)",
        n as f64 / s,
        bytes as f64 / s / 1e6
    );
    println!(
        "  verify (payload hash, leaf, tree, checkpoint): {:.0} entries/s",
        n as f64 / v
    );
    println!("  ratio verify / raw SHA-256 (throughput): {:.2}", s / v);
}
