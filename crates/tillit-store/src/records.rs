use tillit_core::{AccessKind, OrgUnitId, Period, PersonId, PersonKind, Role, TenantId, Username};
use time::OffsetDateTime;

/// Internal id of a login account (distinct from the person it belongs to).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewOrgUnit {
    pub id: OrgUnitId,
    pub tenant: TenantId,
    pub parent: Option<OrgUnitId>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgUnit {
    pub id: OrgUnitId,
    pub tenant: TenantId,
    pub parent: Option<OrgUnitId>,
    pub name: String,
}

/// A person. Staff and relatives carry a display name in clear (they are not patient data);
/// patient demographics are never stored here in clear: `sealed_profile` holds them encrypted
/// and `national_id_index` is a keyed blind index for look-up.
#[derive(Debug, Clone)]
pub struct NewPerson {
    pub id: PersonId,
    pub tenant: TenantId,
    pub kind: PersonKind,
    pub display_name: Option<String>,
    pub professional_id: Option<String>,
    pub sealed_profile: Option<Vec<u8>>,
    pub national_id_index: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Person {
    pub id: PersonId,
    pub tenant: TenantId,
    pub kind: PersonKind,
    pub display_name: Option<String>,
    pub professional_id: Option<String>,
    pub sealed_profile: Option<Vec<u8>>,
    pub national_id_index: Option<Vec<u8>>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub tenant: TenantId,
    pub person: PersonId,
    pub username: Username,
    pub password_hash: String,
    pub totp_secret: Option<String>,
}

/// A login account. `Debug` leaves out the password hash and TOTP secret.
#[derive(Clone)]
pub struct User {
    pub id: UserId,
    pub tenant: TenantId,
    pub person: PersonId,
    pub kind: PersonKind,
    pub username: Username,
    pub password_hash: String,
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub failed_logins: u32,
    pub locked_until: Option<OffsetDateTime>,
    pub disabled: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("username", &self.username)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What the admin pages show of a login account: no password hash, no TOTP secret.
#[derive(Debug, Clone)]
pub struct AccountStatus {
    pub id: UserId,
    pub person: PersonId,
    pub username: Username,
    pub totp_enrolled: bool,
    pub failed_logins: u32,
    pub locked_until: Option<OffsetDateTime>,
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub struct NewRoleAssignment {
    pub tenant: TenantId,
    pub person: PersonId,
    pub role: Role,
    pub org_unit: OrgUnitId,
    pub period: Period,
}

#[derive(Debug, Clone)]
pub struct RoleAssignment {
    pub id: String,
    pub tenant: TenantId,
    pub person: PersonId,
    pub role: Role,
    pub org_unit: OrgUnitId,
    pub period: Period,
}

/// Who a care relationship gives a need to know: one staff member or a whole org unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CareParty {
    Staff(PersonId),
    OrgUnit(OrgUnitId),
}

#[derive(Debug, Clone)]
pub struct NewCareRelationship {
    pub tenant: TenantId,
    pub party: CareParty,
    pub patient: PersonId,
    pub purpose: String,
    pub period: Period,
    pub decided_by: Option<PersonId>,
}

#[derive(Debug, Clone)]
pub struct CareRelationship {
    pub id: String,
    pub tenant: TenantId,
    pub party: CareParty,
    pub patient: PersonId,
    pub purpose: String,
    pub period: Period,
    pub decided_by: Option<PersonId>,
}

/// Whom an access rule concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessParty {
    /// A staff member or a relative.
    Person(PersonId),
    OrgUnit(OrgUnitId),
    /// Every staff member (only for a patient's block).
    Everyone,
}

/// An access rule to record: a care relationship, a block, a grant, an exclusion or a
/// relative's consent. `categories` empty covers every category. `source` is `admin` or the
/// FHIR resource it was derived from (`CareTeam/<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccessRule {
    pub kind: AccessKind,
    pub party: AccessParty,
    pub patient: PersonId,
    pub categories: Vec<String>,
    pub purpose: String,
    pub period: Period,
    pub decided_by: Option<PersonId>,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub id: String,
    pub tenant: TenantId,
    pub rule: NewAccessRule,
}

/// Access rules and role assignments derived from one FHIR resource. Written with the
/// resource's version, they replace whatever that resource derived before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Derived {
    pub rules: Vec<NewAccessRule>,
    pub roles: Vec<DerivedRole>,
}

/// A role assignment derived from a PractitionerRole (persons and units that the tenant
/// does not know are skipped when written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedRole {
    pub person: PersonId,
    pub role: Role,
    pub org_unit: OrgUnitId,
    pub period: Period,
}

/// A tenant's access-control settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantSettings {
    /// How long an emergency access window stays open.
    pub emergency_minutes: u32,
    /// Whether emergency access overrides a patient's block (the patient is told either way).
    pub emergency_overrides_block: bool,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            emergency_minutes: 240,
            emergency_overrides_block: true,
        }
    }
}

/// A staff member acting on behalf of a colleague.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub id: String,
    pub tenant: TenantId,
    pub delegate: PersonId,
    pub on_behalf_of: PersonId,
    /// Registration (writing) without reading.
    pub registration_only: bool,
    pub period: Period,
}

/// Time-limited access for a platform operator to one tenant's data, granted by its admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportGrant {
    pub id: String,
    pub tenant: TenantId,
    /// The operator's user account (in the operator tenant).
    pub operator: UserId,
    pub reason: String,
    pub granted_by: Option<PersonId>,
    pub period: Period,
    pub revoked_at: Option<OffsetDateTime>,
}

impl SupportGrant {
    pub fn active_at(&self, at: OffsetDateTime) -> bool {
        self.period.contains(at) && self.revoked_at.is_none_or(|r| at < r)
    }
}

/// Who is whose relative (`relationship` as recorded: "datter", "sønn").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelativeLink {
    pub relative: PersonId,
    pub patient: PersonId,
    pub relationship: String,
    pub created_at: OffsetDateTime,
}

/// A record withheld from the patient and relatives, with the clinician's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    pub resource_type: String,
    pub id: String,
    pub patient: PersonId,
    pub reason: String,
    pub by: PersonId,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub id: String,
    pub tenant: TenantId,
    pub user: UserId,
    pub name: String,
    pub hash: [u8; 32],
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: String,
    pub tenant: TenantId,
    pub user: UserId,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

/// A server-side session. Only the SHA-256 of the cookie value is stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: [u8; 32],
    pub tenant: TenantId,
    pub user: UserId,
    pub csrf_hash: [u8; 32],
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    /// Password checked but the TOTP step (or enrolment) is still owed.
    pub pending_totp: bool,
    /// A TOTP secret shown on the enrolment page, not yet confirmed with a code.
    pub totp_enrolment: Option<String>,
}

/// Kinds of security event; the codes are stored and later mapped into the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEventKind {
    LoginSuccess,
    LoginFailure,
    EmergencyAccessOpened,
    PolicyChanged,
    Lockout,
    Logout,
    TokenUse,
    TokenCreated,
    TokenRevoked,
    TotpEnrolled,
    PasswordChanged,
    SessionExpired,
    /// A care relationship, grant, exclusion, delegation or access setting changed.
    AccessChanged,
    /// A record was withheld from the patient, or released.
    RecordWithheld,
    /// A platform operator used a support grant to reach a tenant's data.
    SupportAccess,
    /// Someone searched the access log.
    AuditSearch,
    /// A security officer closed or changed an alert.
    AlertReviewed,
    /// Audit events were exported (to a file or a SIEM).
    AuditExported,
    /// Records were imported from files by an operator.
    RecordsImported,
    /// All of a tenant's data was exported for the tenant's exit.
    TenantExported,
    /// A tenant was deleted (keys destroyed, rows removed); recorded in the operator tenant.
    TenantDeleted,
    /// A patient restricted the processing of a record (GDPR art. 18), or lifted it.
    RecordRestricted,
    /// A patient's erasable data was erased (their key destroyed; GDPR art. 17).
    PatientErased,
    /// A tenant admin refused a patient's request for erasure, with a reason.
    ErasureRefused,
    /// A backup of the data dir was taken (the CLI or the schedule), or a scheduled one was
    /// removed because it did not verify (outcome failure); in every tenant's log.
    BackupCreated,
    /// This data dir was restored from a backup; in every restored tenant's log.
    BackupRestored,
}

impl SecurityEventKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::LoginSuccess => "login.success",
            Self::EmergencyAccessOpened => "emergency.opened",
            Self::PolicyChanged => "policy.changed",
            Self::LoginFailure => "login.failure",
            Self::Lockout => "login.lockout",
            Self::Logout => "logout",
            Self::TokenUse => "token.use",
            Self::TokenCreated => "token.created",
            Self::TokenRevoked => "token.revoked",
            Self::TotpEnrolled => "totp.enrolled",
            Self::PasswordChanged => "password.changed",
            Self::SessionExpired => "session.expired",
            Self::AccessChanged => "access.changed",
            Self::RecordWithheld => "record.withheld",
            Self::SupportAccess => "support.access",
            Self::AuditSearch => "audit.search",
            Self::AlertReviewed => "alert.reviewed",
            Self::AuditExported => "audit.export",
            Self::RecordsImported => "records.imported",
            Self::TenantExported => "tenant.exported",
            Self::TenantDeleted => "tenant.deleted",
            Self::RecordRestricted => "record.restricted",
            Self::PatientErased => "patient.erased",
            Self::ErasureRefused => "erasure.refused",
            Self::BackupCreated => "backup.created",
            Self::BackupRestored => "backup.restored",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        [
            Self::LoginSuccess,
            Self::EmergencyAccessOpened,
            Self::PolicyChanged,
            Self::LoginFailure,
            Self::Lockout,
            Self::Logout,
            Self::TokenUse,
            Self::TokenCreated,
            Self::TokenRevoked,
            Self::TotpEnrolled,
            Self::PasswordChanged,
            Self::SessionExpired,
            Self::AccessChanged,
            Self::RecordWithheld,
            Self::SupportAccess,
            Self::AuditSearch,
            Self::AlertReviewed,
            Self::AuditExported,
            Self::RecordsImported,
            Self::TenantExported,
            Self::TenantDeleted,
            Self::RecordRestricted,
            Self::PatientErased,
            Self::ErasureRefused,
            Self::BackupCreated,
            Self::BackupRestored,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }
}

/// A security event. `detail` is a short machine reason ("bad_password", "locked"), never a
/// password, token or patient datum. The username tried is kept for failed logins of unknown
/// accounts only as its hash would be useless to a reviewer; it is the reviewer's lead.
#[derive(Debug, Clone)]
pub struct NewSecurityEvent {
    pub at: OffsetDateTime,
    pub tenant: Option<TenantId>,
    pub user: Option<UserId>,
    pub username: Option<String>,
    pub kind: SecurityEventKind,
    pub outcome_ok: bool,
    pub detail: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SecurityEvent {
    pub seq: i64,
    pub at: OffsetDateTime,
    pub tenant: Option<TenantId>,
    pub user: Option<UserId>,
    pub username: Option<String>,
    pub kind: SecurityEventKind,
    pub outcome_ok: bool,
    pub detail: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An emergency access window.
#[derive(Debug, Clone)]
pub struct EmergencyAccess {
    pub id: String,
    pub tenant: TenantId,
    pub staff: PersonId,
    pub patient: PersonId,
    pub reason: String,
    pub opened_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub review: String,
}
