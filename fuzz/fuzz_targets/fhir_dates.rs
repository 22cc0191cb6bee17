//! FHIR dates as they arrive in search parameters.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(r) = tillit_fhir::dates::parse_range(s) {
            assert!(r.low < r.high);
        }
        let _ = tillit_fhir::search::parse_reference(s);
    }
});
