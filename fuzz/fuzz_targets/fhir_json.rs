//! Everything a FHIR request body goes through before storage: strict parse, validation,
//! search-value extraction, categorisation. None of it may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = tillit_fhir::json::Limits { max_bytes: 1 << 20, max_depth: 48, max_array: 10_000 };
    if let Ok(v) = tillit_fhir::json::parse(data, &limits) {
        let _ = tillit_fhir::validate::validate(&v);
        let _ = tillit_fhir::search::extract(&v);
        let _ = tillit_fhir::search::patient_of(&v);
        let _ = tillit_fhir::category::categorize(&v, &tillit_fhir::category::default_rules());
    }
});
