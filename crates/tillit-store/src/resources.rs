//! Records for FHIR resources: sealed versions, their metadata, index rows and queries.
//! The store never sees plaintext resources: bodies arrive sealed and index tokens hashed.

use time::OffsetDateTime;

/// Which key sealed a version: the patient's (inside a patient compartment) or the tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    Patient,
    Tenant,
}

impl KeyScope {
    pub fn code(self) -> &'static str {
        match self {
            KeyScope::Patient => "patient",
            KeyScope::Tenant => "tenant",
        }
    }
}

/// What is known about a resource version without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMeta {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub patient: Option<String>,
    pub category: String,
    pub last_updated: OffsetDateTime,
    pub deleted: bool,
}

/// A stored version with its sealed body (`None` for a deletion).
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub meta: ResourceMeta,
    pub key_scope: KeyScope,
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexRow {
    /// Keyed hashes of `system|code` and of `code` alone.
    Token {
        param: String,
        full: [u8; 32],
        code: [u8; 32],
    },
    Date {
        param: String,
        low: i64,
        high: i64,
    },
    Reference {
        param: String,
        target_type: String,
        target_id: String,
    },
}

/// One version to write. `expected` is the optimistic-concurrency check: `None` means the
/// resource must not exist yet; `Some(v)` means its current version must be `v`.
#[derive(Debug, Clone)]
pub struct ResourceWrite {
    pub meta: ResourceMeta,
    pub expected: Option<i64>,
    pub key_scope: KeyScope,
    pub body: Option<Vec<u8>>,
    pub index: Vec<IndexRow>,
    /// For resources that carry access rules (CareTeam, EpisodeOfCare, Consent,
    /// PractitionerRole): what replaces the rules this resource derived before.
    pub derived: Option<crate::Derived>,
}

/// Search prefixes for dates (FHIR `eq`, `ne`, `lt`, `gt`, `le`, `ge`), on half-open ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePrefix {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criterion {
    Id(String),
    LastUpdated {
        prefix: DatePrefix,
        low: i64,
        high: i64,
    },
    TokenFull {
        param: String,
        hash: [u8; 32],
    },
    TokenCode {
        param: String,
        hash: [u8; 32],
    },
    Date {
        param: String,
        prefix: DatePrefix,
        low: i64,
        high: i64,
    },
    Reference {
        param: String,
        target_type: String,
        target_id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    LastUpdated,
    /// The earliest value of a date parameter (by name in `Query::sort_param`).
    DateParam,
}

/// A search within one tenant and type: every inner list is OR, the lists are AND.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub resource_type: String,
    pub all_of: Vec<Vec<Criterion>>,
    pub sort: Option<(SortKey, bool)>,
    pub sort_param: Option<String>,
    /// At most this many matches are returned (authorization filters them afterwards).
    pub limit: u32,
}

/// A tenant's category rule as stored (the category is a code, checked by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryRuleRow {
    pub resource_type: Option<String>,
    pub system: Option<String>,
    pub code_prefix: Option<String>,
    pub category: String,
}
