//! Norwegian national ids as typed by an administrator.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(id) = tillit_core::national_id::NationalId::parse(s)
    {
        assert_eq!(id.expose(), s);
    }
});
