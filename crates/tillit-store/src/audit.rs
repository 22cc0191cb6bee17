//! The audit log's records and storage contract.
//!
//! An event is appended with the next sequence number of its tenant. Its payload (the event
//! as JSON) is sealed under the tenant's key; the SHA-256 of the plain payload is stored
//! beside it and enters the tenant's RFC 9162 tree through its leaf, so a payload can later
//! be erased while the tree still verifies. A few fields are also kept in plain columns
//! (patient, actor, action, outcome, time) so the log can be searched without opening it.

use crate::{NewSecurityEvent, StoreResult};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tillit_audit::Hash;
use tillit_core::TenantId;
use time::OffsetDateTime;

/// How an access or event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditOutcome {
    /// Permitted, or the event succeeded.
    Success,
    /// Refused by authorization.
    Denied,
    /// Failed (a wrong password, an expired code).
    Failure,
}

impl AuditOutcome {
    pub fn code(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "denied" => Some(Self::Denied),
            "failure" => Some(Self::Failure),
            _ => None,
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    pub user: Option<String>,
    pub person: Option<String>,
    /// staff, patient, relative, integration, operator, system
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The org units the actor worked in at the time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub org_units: Vec<String>,
    /// The colleague whose authority the actor used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// A platform operator under a support grant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub support: bool,
}

/// Where the request came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditClient {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A short, non-secret reference to the session or token (never the secret itself).
    pub session: Option<String>,
}

/// One event, before it has its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub tenant: String,
    /// read, search, history, create, update, delete, export, or a security event code
    /// (login.success, emergency.opened, policy.changed, ...).
    pub action: String,
    pub outcome: AuditOutcome,
    pub actor: AuditActor,
    /// The patient whose compartment was touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The one resource read or written; none for a search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Categories touched (one for a read; several for a search of a compartment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Records of the compartment this event covers (a search returns many).
    #[serde(default)]
    pub count: u32,
    /// Why it was allowed: care-relationship, emergency, own-record, relative, grant, role,
    /// integration, support, system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// The stated reason of an emergency access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// The denial's reason, or what a security event was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub client: AuditClient,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub event: NewAuditEvent,
}

impl AuditEvent {
    /// The payload the leaf commits to: this event as JSON, exactly as stored.
    pub fn payload(&self) -> Vec<u8> {
        // Serializing plain structs of strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a payload back.
    pub fn from_payload(payload: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    }
}

/// What one group commit writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct AuditBatch {
    pub events: Vec<NewAuditEvent>,
    /// Security events kept in their own table as well (they predate the audit log, and
    /// those without a tenant have no tree).
    pub security: Vec<NewSecurityEvent>,
    /// API tokens used: (token id, when).
    pub token_uses: Vec<(String, OffsetDateTime)>,
}

/// A stored entry as verification reads it.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Storage order.
    pub id: i64,
    pub seq: u64,
    pub payload_hash: Hash,
    /// `None` once erased; `Some(Err)` when the sealed payload would not open.
    pub payload: Option<Result<Vec<u8>, String>>,
}

/// A tenant's tree now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub size: u64,
    pub root: Hash,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub at: OffsetDateTime,
    /// The signed note (C2SP tlog-checkpoint).
    pub note: String,
}

/// What a search of the log asks for. Every field narrows; `before` pages backwards.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub patient: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Only events with a sequence number below this.
    pub before: Option<u64>,
    /// Only events from this sequence number on, oldest first (reading forwards).
    pub from_seq: Option<u64>,
    pub limit: u32,
}

/// An alert raised by a review rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub rule: String,
    /// low, medium, high
    pub severity: String,
    pub actor: Option<String>,
    pub patient: Option<String>,
    pub seqs: Vec<u64>,
    pub summary: String,
    pub raised_at: OffsetDateTime,
}

/// How an alert was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Open,
    /// The access had a legitimate reason.
    Justified,
    /// A deviation (avvik): the access should not have happened.
    Deviation,
}

impl AlertStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Justified => "justified",
            Self::Deviation => "deviation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "justified" => Some(Self::Justified),
            "deviation" => Some(Self::Deviation),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: String,
    pub alert: NewAlert,
    pub status: AlertStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub decision_note: Option<String>,
    pub breach: bool,
    /// When the data protection authority must have been notified (72 hours).
    pub breach_deadline: Option<OffsetDateTime>,
}

/// A security officer's decision on an alert.
#[derive(Debug, Clone)]
pub struct AlertDecision {
    pub status: AlertStatus,
    pub by: String,
    pub note: String,
    /// A deviation that is a personal-data breach: starts the 72-hour clock.
    pub breach: bool,
    pub at: OffsetDateTime,
}

#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends a batch in one transaction and one sync, assigning each event the next
    /// sequence number of its tenant. Returns the sequence numbers in order.
    async fn append_audit(&self, batch: AuditBatch) -> StoreResult<Vec<u64>>;
    /// Tenants with a log.
    async fn audit_tenants(&self) -> StoreResult<Vec<TenantId>>;
    async fn audit_head(&self, tenant: &TenantId) -> StoreResult<AuditHead>;
    /// Entries in storage order with `id > after_id`, at most `limit`, payloads opened.
    async fn audit_entries(
        &self,
        tenant: &TenantId,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>>;
    /// Events matching `filter`, newest first (oldest first when `filter.from_seq` is set).
    /// Events whose payload was erased are left out.
    async fn audit_search(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// One event by sequence number, with its payload hash.
    async fn audit_event(
        &self,
        tenant: &TenantId,
        seq: u64,
    ) -> StoreResult<Option<(Hash, Option<AuditEvent>)>>;
    async fn audit_inclusion_proof(
        &self,
        tenant: &TenantId,
        leaf: u64,
        size: u64,
    ) -> StoreResult<Vec<Hash>>;
    async fn audit_consistency_proof(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<Hash>>;
    /// The root of the first `size` entries.
    async fn audit_root(&self, tenant: &TenantId, size: u64) -> StoreResult<Hash>;
    async fn add_audit_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: &StoredCheckpoint,
    ) -> StoreResult<()>;
    /// Checkpoints oldest first.
    async fn audit_checkpoints(&self, tenant: &TenantId) -> StoreResult<Vec<StoredCheckpoint>>;
    async fn latest_audit_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Option<StoredCheckpoint>>;

    /// The next sequence number the tenant's review rules have not read.
    async fn review_cursor(&self, tenant: &TenantId) -> StoreResult<u64>;
    /// Records the alerts raised over events up to `next_seq` (exclusive), and moves the
    /// cursor there, in one transaction. Returns the alerts' ids.
    async fn add_alerts(
        &self,
        tenant: &TenantId,
        alerts: &[NewAlert],
        next_seq: u64,
    ) -> StoreResult<Vec<String>>;
    /// Alerts, newest first; `status` None for all.
    async fn alerts(
        &self,
        tenant: &TenantId,
        status: Option<AlertStatus>,
        limit: u32,
    ) -> StoreResult<Vec<Alert>>;
    async fn alert(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<Alert>>;
    /// Closes an open alert (justified or deviation), or marks a closed deviation a breach.
    async fn decide_alert(
        &self,
        tenant: &TenantId,
        id: &str,
        decision: &AlertDecision,
    ) -> StoreResult<Alert>;
    /// The tenant's review rules (JSON), if it has replaced the defaults.
    async fn review_rules(&self, tenant: &TenantId) -> StoreResult<Option<String>>;
    async fn set_review_rules(
        &self,
        tenant: &TenantId,
        rules: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
}
