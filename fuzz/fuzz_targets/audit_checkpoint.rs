//! Signed checkpoints and verifier keys as an outside witness or `tillit audit verify` reads
//! them: parsing never panics, and a note that verifies re-signs to the same body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tillit_audit::{Checkpoint, CheckpointSigner, CheckpointVerifier};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = CheckpointVerifier::parse(s);
    if let Ok(cp) = Checkpoint::parse_body(s) {
        // A body that parses renders back to a body that parses to the same checkpoint.
        assert_eq!(Checkpoint::parse_body(&cp.body()).ok(), Some(cp));
    }
    let signer = CheckpointSigner::from_seed("fuzz/audit", &zeroize::Zeroizing::new([1; 32]))
        .unwrap_or_else(|_| unreachable!());
    let verifier = CheckpointVerifier::parse(&signer.verifier_key()).unwrap_or_else(|_| unreachable!());
    let _ = verifier.verify(s);
});
