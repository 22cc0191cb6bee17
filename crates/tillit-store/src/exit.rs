//! Records for a tenant's exit (export and deletion) and for anonymous statistics.

use std::collections::BTreeMap;
use time::OffsetDateTime;

/// What removing a tenant took away: rows per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRemoval {
    pub rows: BTreeMap<String, u64>,
}

/// A deleted tenant as the platform remembers it (a tombstone): its id and name, when, the
/// deletion receipt's draft as prepared before anything was removed and the rows removed,
/// so an interrupted deletion can be finished and its receipt written again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedTenant {
    pub id: tillit_core::TenantId,
    pub name: String,
    pub deleted_at: OffsetDateTime,
    /// The receipt's draft (JSON), without the rows removed and without its signature.
    pub draft: String,
    pub removed: TenantRemoval,
}

/// Records created (first versions) in one patient compartment (`None`: outside any), in
/// one category, on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationCount {
    pub patient: Option<String>,
    pub category: String,
    pub day: time::Date,
    pub count: u64,
}
