//! The patient's rights (docs/design/patient-rights.md): restriction of processing (GDPR
//! art. 18) and erasure (art. 17).

use tillit_core::PersonId;
use time::OffsetDateTime;

/// A record whose processing the patient has restricted: while it stands, the record is read
/// only by the patient or under emergency access, and changed by no one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub resource_type: String,
    pub id: String,
    pub patient: PersonId,
    /// The patient's stated reason (sealed at rest; may be empty).
    pub reason: String,
    pub by: PersonId,
    pub at: OffsetDateTime,
}

/// One version kept through an erasure, sealed again under the tenant key.
#[derive(Debug, Clone)]
pub struct ResealedVersion {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub body: Vec<u8>,
}

/// What an erasure does to the database, in one transaction: the erasable resources go
/// (every version, their search index rows, the access rules derived from them, their
/// withheld and restricted marks), the kept versions are sealed again under the tenant key,
/// and the patient's sealed profile and national-id index are cleared. The patient's key is
/// destroyed afterwards, in the keyring.
#[derive(Debug, Clone)]
pub struct PatientErasure {
    pub patient: PersonId,
    /// Resources removed entirely: (type, id).
    pub remove: Vec<(String, String)>,
    /// Versions kept.
    pub reseal: Vec<ResealedVersion>,
}

/// What an erasure changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErasureDone {
    pub resources_removed: u64,
    pub versions_removed: u64,
    pub versions_resealed: u64,
}
