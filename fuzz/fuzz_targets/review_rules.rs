//! A tenant's log-review rules as `PUT /admin/review-rules` receives them: parsing and
//! validation never panic, and a rule set that is accepted runs over events without panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tillit_audit::review::{Observed, Outcome, Reviewer, RuleSet};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(rules) = RuleSet::from_json(s) {
        let mut r = Reviewer::new(rules);
        for i in 0..50u64 {
            let _ = r.observe(&Observed {
                seq: i,
                at: 1_700_000_000 + (i as i64) * 7,
                local_weekday: (i % 7) as u8,
                local_minute: ((i * 97) % 1440) as u16,
                actor: Some(format!("a{}", i % 3)),
                actor_kind: Some("staff".into()),
                patient: Some(format!("p{}", i % 11)),
                action: if i % 13 == 0 { "emergency.opened" } else { "read" }.into(),
                outcome: if i % 2 == 0 { Outcome::Denied } else { Outcome::Success },
                basis: None,
                facts: Default::default(),
            });
        }
    }
});
