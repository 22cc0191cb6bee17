//! Domain vocabulary of Tillit: identifiers, roles, periods, the clock and Norwegian national ids.
//!
//! Every type here is validated when it is constructed, so code that holds one can rely on it.
//! This crate must never do I/O, know a wire format beyond plain strings, or see a database type.

mod access;
mod clock;
mod ids;
pub mod national_id;
mod period;
mod role;

pub use access::AccessKind;
pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{OrgUnitId, PersonId, TenantId, Username};
pub use period::Period;
pub use role::{PersonKind, Role};

/// A value that failed domain validation; the message says which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct InvalidValue {
    pub what: &'static str,
    pub reason: String,
}

impl InvalidValue {
    pub fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self {
            what,
            reason: reason.into(),
        }
    }
}
