//! Storage traits of Tillit and the records they move. Backends (`tillit-store-sqlite`, later
//! PostgreSQL) implement [`Store`]; callers hold an `Arc<dyn Store>` and never see a driver type.
//!
//! Every method that reads tenant data takes the tenant, so isolation is part of each query,
//! not a filter applied afterwards. Timestamps are `OffsetDateTime` handed in by the caller's
//! clock: a backend never reads the time itself.

use async_trait::async_trait;
pub use tillit_core::AccessKind;
use tillit_core::{OrgUnitId, PersonId, PersonKind, Role, TenantId, Username};
use time::OffsetDateTime;

mod audit;
mod exit;
mod records;
mod resources;
mod rights;
pub use audit::*;
pub use exit::*;
pub use records::*;
pub use resources::*;
pub use rights::*;

/// Why a storage operation failed, in words a caller can act on. Driver details are flattened
/// into the message so no driver type crosses this boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("the database is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the database was written by a newer Tillit (schema version {found}, this build knows up to {known}); refusing to touch it"
    )]
    TooNew { found: i64, known: i64 },
    #[error("invalid stored value: {0}")]
    Invalid(String),
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Encryption of personal fields that are not patient records but still identify people:
/// usernames, names of staff and relatives, TOTP secrets, usernames in security events.
/// A backend seals them on write and opens them on read with this, so callers see plain
/// values and a copied database file shows none of them. Look-ups go through `index`.
pub trait FieldCipher: Send + Sync + 'static {
    /// A keyed, deterministic index for equality look-up (platform-wide).
    fn index(&self, field: &str, value: &str) -> StoreResult<[u8; 32]>;
    /// `tenant` None: the platform key (for data not tied to a tenant).
    fn seal(&self, tenant: Option<&TenantId>, context: &str, value: &str) -> StoreResult<Vec<u8>>;
    fn open(&self, tenant: Option<&TenantId>, context: &str, sealed: &[u8]) -> StoreResult<String>;
}

/// The [`FieldCipher`] backed by the keyring.
pub struct KeyringCipher(pub std::sync::Arc<tillit_crypto::Keyring>);

fn key_error(e: tillit_crypto::KeyError) -> StoreError {
    StoreError::Unavailable(format!("keyring: {e}"))
}

impl FieldCipher for KeyringCipher {
    fn index(&self, field: &str, value: &str) -> StoreResult<[u8; 32]> {
        self.0.platform_index(field, value).map_err(key_error)
    }

    fn seal(&self, tenant: Option<&TenantId>, context: &str, value: &str) -> StoreResult<Vec<u8>> {
        self.0
            .seal_for_tenant(tenant.map(TenantId::as_str), context, value.as_bytes())
            .map_err(key_error)
    }

    fn open(&self, tenant: Option<&TenantId>, context: &str, sealed: &[u8]) -> StoreResult<String> {
        let plain = self
            .0
            .open_for_tenant(tenant.map(TenantId::as_str), context, sealed)
            .map_err(key_error)?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Invalid("sealed field is not UTF-8".into()))
    }
}

/// Everything Tillit persists, behind one trait so a second engine can follow without touching
/// callers. Methods are grouped by the capability that owns them.
#[async_trait]
pub trait Store: AuditStore + Send + Sync + 'static {
    /// Cheap round trip to prove the store answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// True when no tenant exists yet (the demo seeds only such a store).
    async fn is_empty(&self) -> StoreResult<bool>;

    // --- tenants and organisation ---
    async fn create_tenant(&self, name: &str, at: OffsetDateTime) -> StoreResult<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>>;
    async fn tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn create_org_unit(&self, unit: &NewOrgUnit, at: OffsetDateTime) -> StoreResult<OrgUnit>;
    async fn list_org_units(&self, tenant: &TenantId) -> StoreResult<Vec<OrgUnit>>;

    // --- people and accounts ---
    async fn create_person(&self, person: &NewPerson, at: OffsetDateTime) -> StoreResult<Person>;
    async fn person(&self, tenant: &TenantId, id: &PersonId) -> StoreResult<Option<Person>>;
    async fn list_persons(
        &self,
        tenant: &TenantId,
        kind: Option<PersonKind>,
    ) -> StoreResult<Vec<Person>>;
    async fn create_user(&self, user: &NewUser, at: OffsetDateTime) -> StoreResult<User>;
    /// Usernames are unique across tenants: a login form does not ask for the tenant.
    async fn user_by_username(&self, username: &Username) -> StoreResult<Option<User>>;
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    async fn set_password(&self, user: &UserId, password_hash: &str) -> StoreResult<()>;
    /// Sets (or clears) the TOTP secret; a new secret resets the replay guard.
    async fn set_totp_secret(&self, user: &UserId, secret_b32: Option<&str>) -> StoreResult<()>;
    /// Records that a TOTP code of `step` was used. Returns false, changing nothing, when a code
    /// of this step or a later one was already used: the replay guard, atomic in the store.
    async fn use_totp_step(&self, user: &UserId, step: i64) -> StoreResult<bool>;
    /// Counts a failed login; returns the failure count after it.
    async fn record_login_failure(
        &self,
        user: &UserId,
        locked_until: Option<OffsetDateTime>,
    ) -> StoreResult<u32>;
    async fn lock_user(&self, user: &UserId, until: OffsetDateTime) -> StoreResult<()>;
    async fn reset_login_failures(&self, user: &UserId) -> StoreResult<()>;

    /// Every login account of the tenant, for the admin pages (no secrets).
    async fn account_statuses(&self, tenant: &TenantId) -> StoreResult<Vec<AccountStatus>>;

    // --- roles and care relationships ---
    async fn assign_role(
        &self,
        assignment: &NewRoleAssignment,
        at: OffsetDateTime,
    ) -> StoreResult<RoleAssignment>;
    async fn role_assignments(
        &self,
        tenant: &TenantId,
        person: &PersonId,
    ) -> StoreResult<Vec<RoleAssignment>>;
    /// Every role assignment of the tenant with its source (`admin`, or the FHIR resource
    /// it was derived from), ordered by person and start.
    async fn tenant_role_assignments(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<(RoleAssignment, String)>>;
    /// Ends a role assignment made by an admin at `at` (it stays on record); one derived from
    /// a FHIR resource is ended by changing that resource.
    async fn end_role_assignment(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn add_care_relationship(
        &self,
        rel: &NewCareRelationship,
        at: OffsetDateTime,
    ) -> StoreResult<CareRelationship>;
    /// Ends a care relationship at `at` (it stays on record, no longer active).
    async fn end_care_relationship(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn care_relationships_for_patient(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<CareRelationship>>;
    /// Relationships naming the staff member personally or one of `units` (their org units).
    async fn care_relationships_for_staff(
        &self,
        tenant: &TenantId,
        staff: &PersonId,
        units: &[OrgUnitId],
    ) -> StoreResult<Vec<CareRelationship>>;

    /// Records an access rule (the patient, person and org unit must be the tenant's).
    async fn add_access_rule(
        &self,
        tenant: &TenantId,
        rule: &NewAccessRule,
        at: OffsetDateTime,
    ) -> StoreResult<AccessRule>;
    /// Ends an access rule at `at` (it stays on record). Rules derived from a FHIR resource
    /// are ended by updating that resource instead.
    async fn end_access_rule(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Every rule about a patient, active or not.
    async fn access_rules_for_patient(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<AccessRule>>;
    /// Every rule of one kind in the tenant, active or not (the admin's overview).
    async fn access_rules_of_kind(
        &self,
        tenant: &TenantId,
        kind: AccessKind,
    ) -> StoreResult<Vec<AccessRule>>;
    /// Rules that concern a person: naming them, one of `units`, or every staff member.
    async fn access_rules_concerning(
        &self,
        tenant: &TenantId,
        person: &PersonId,
        units: &[OrgUnitId],
    ) -> StoreResult<Vec<AccessRule>>;

    async fn tenant_settings(&self, tenant: &TenantId) -> StoreResult<TenantSettings>;
    async fn set_tenant_settings(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
        at: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Lets `delegate` act on behalf of a colleague (both staff of the tenant).
    async fn add_delegation(&self, d: &Delegation, at: OffsetDateTime) -> StoreResult<()>;
    async fn delegations_of(
        &self,
        tenant: &TenantId,
        delegate: &PersonId,
    ) -> StoreResult<Vec<Delegation>>;

    /// The tenant's access generation: changes whenever access rules, role assignments,
    /// delegations, withheld records or access settings of the tenant change (in the same
    /// transaction), so a caller's facts may be reused while it stays the same.
    async fn access_generation(&self, tenant: &TenantId) -> StoreResult<i64>;

    /// Marks `tenant` as the platform's own operator tenant (there is at most one).
    async fn set_operator_tenant(&self, tenant: &TenantId) -> StoreResult<()>;
    async fn operator_tenant(&self) -> StoreResult<Option<TenantId>>;
    async fn add_support_grant(&self, grant: &SupportGrant, at: OffsetDateTime) -> StoreResult<()>;
    /// A tenant's support grants, newest first (revoked and expired ones too).
    async fn support_grants(&self, tenant: &TenantId) -> StoreResult<Vec<SupportGrant>>;
    async fn revoke_support_grant(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Withholds a record from the patient and relatives (`Some`), or releases it (`None`).
    async fn set_withheld(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
        withheld: Option<&Withheld>,
    ) -> StoreResult<()>;
    /// Records withheld in a patient's compartment.
    async fn withheld_for_patient(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<Withheld>>;

    /// Records that `relative` is a relative of `patient` (both persons of the tenant).
    async fn link_relative(
        &self,
        tenant: &TenantId,
        relative: &PersonId,
        patient: &PersonId,
        relationship: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn patients_of_relative(
        &self,
        tenant: &TenantId,
        relative: &PersonId,
    ) -> StoreResult<Vec<PersonId>>;
    /// The relative links naming `person` as the relative or as the patient, with the
    /// relationship (the patient's relatives page, the relative's own page).
    async fn relative_links(
        &self,
        tenant: &TenantId,
        person: &PersonId,
    ) -> StoreResult<Vec<RelativeLink>>;

    /// Opens an emergency access window (the patient must be a patient of the tenant).
    async fn open_emergency_access(&self, access: &EmergencyAccess) -> StoreResult<()>;
    /// Patients with an emergency window open for `staff` at `at`.
    async fn emergency_patients(
        &self,
        tenant: &TenantId,
        staff: &PersonId,
        at: OffsetDateTime,
    ) -> StoreResult<Vec<PersonId>>;
    async fn emergency_accesses(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> StoreResult<Vec<EmergencyAccess>>;

    /// The tenant's own policy text, if it has replaced the defaults.
    async fn tenant_policies(&self, tenant: &TenantId) -> StoreResult<Option<String>>;
    async fn set_tenant_policies(
        &self,
        tenant: &TenantId,
        policies: &str,
        by: &PersonId,
        at: OffsetDateTime,
    ) -> StoreResult<()>;

    // --- API tokens ---
    async fn create_api_token(
        &self,
        token: &NewApiToken,
        at: OffsetDateTime,
    ) -> StoreResult<ApiToken>;
    async fn api_token_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<ApiToken>>;
    async fn list_api_tokens(&self, user: &UserId) -> StoreResult<Vec<ApiToken>>;
    async fn revoke_api_token(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()>;

    // --- sessions ---
    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    async fn session_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<Session>>;
    async fn touch_session(&self, hash: &[u8; 32], at: OffsetDateTime) -> StoreResult<()>;
    async fn delete_session(&self, hash: &[u8; 32]) -> StoreResult<()>;
    async fn delete_sessions_of_user(&self, user: &UserId) -> StoreResult<()>;
    async fn set_session_totp_enrolment(
        &self,
        hash: &[u8; 32],
        secret_b32: Option<&str>,
    ) -> StoreResult<()>;
    async fn delete_expired_sessions(
        &self,
        idle_before: OffsetDateTime,
        created_before: OffsetDateTime,
    ) -> StoreResult<u64>;

    // --- FHIR resources (sealed) ---
    /// Writes versions atomically: all or none. A failed version check is `Conflict`.
    async fn write_resources(
        &self,
        tenant: &TenantId,
        writes: Vec<ResourceWrite>,
    ) -> StoreResult<()>;
    /// The current version (possibly a deletion), with its sealed body.
    async fn current_resource(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
    ) -> StoreResult<Option<StoredVersion>>;
    async fn resource_version(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> StoreResult<Option<StoredVersion>>;
    /// Several versions of one type at once (a search page), in no particular order.
    async fn resource_versions(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        versions: &[(String, i64)],
    ) -> StoreResult<Vec<StoredVersion>>;
    /// Versions newest first: of one resource (`id`) or of a whole type, optionally since a time.
    async fn resource_history(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: Option<&str>,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> StoreResult<Vec<StoredVersion>>;
    /// Current, not deleted resources matching `query`, sorted, metadata only.
    async fn search_resources(
        &self,
        tenant: &TenantId,
        query: &Query,
    ) -> StoreResult<Vec<ResourceMeta>>;
    /// Counts of current, not deleted resources by type (for the CapabilityStatement / stats).
    async fn count_resources(&self, tenant: &TenantId, resource_type: &str) -> StoreResult<u64>;

    /// The tenant's own category rules, in order.
    async fn category_rules(&self, tenant: &TenantId) -> StoreResult<Vec<CategoryRuleRow>>;
    /// Replaces the tenant's category rules.
    async fn set_category_rules(
        &self,
        tenant: &TenantId,
        rules: &[CategoryRuleRow],
    ) -> StoreResult<()>;

    // --- security events (taken over by the audit log later) ---
    async fn append_security_event(&self, event: &NewSecurityEvent) -> StoreResult<i64>;
    async fn security_events(
        &self,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> StoreResult<Vec<SecurityEvent>>;

    // --- tenant exit and statistics ---
    /// Current, not deleted versions of one type with their sealed bodies, in id order,
    /// after `after_id`, at most `limit`: a tenant export pages through every record.
    async fn current_resources_page(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredVersion>>;
    /// Removes every row of the tenant from every table (its audit log too) in one
    /// transaction, leaving a tombstone with `draft` (the deletion receipt's draft) and the
    /// rows removed. The operator tenant is refused. Returns the rows removed per table.
    async fn remove_tenant(
        &self,
        tenant: &TenantId,
        draft: &str,
        at: OffsetDateTime,
    ) -> StoreResult<TenantRemoval>;
    /// A deleted tenant's tombstone, by id or name.
    async fn deleted_tenant(&self, id_or_name: &str) -> StoreResult<Option<DeletedTenant>>;
    /// First versions written in `[from, to)`, counted per patient compartment, category
    /// and UTC day (for anonymous statistics; never returned to a caller as such).
    async fn resource_creations(
        &self,
        tenant: &TenantId,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<CreationCount>>;

    // --- the patient's rights (docs/design/patient-rights.md) ---
    /// Restricts processing of a record (`Some`), or lifts the restriction (`None`).
    async fn set_restricted(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
        restriction: Option<&Restriction>,
    ) -> StoreResult<()>;
    /// Every restricted record of the tenant (what every decision needs to know).
    async fn restricted_records(&self, tenant: &TenantId) -> StoreResult<Vec<Restriction>>;
    /// The categories the tenant has a legal duty to keep (never erased); `None` until the
    /// tenant sets them (the platform's defaults apply).
    async fn retained_categories(&self, tenant: &TenantId) -> StoreResult<Option<Vec<String>>>;
    async fn set_retained_categories(
        &self,
        tenant: &TenantId,
        categories: &[String],
        at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Every version (with its sealed body) of every resource in a patient's compartment.
    async fn patient_versions(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<StoredVersion>>;
    /// Carries out the database part of an erasure in one transaction.
    async fn erase_patient_data(
        &self,
        tenant: &TenantId,
        erasure: &PatientErasure,
    ) -> StoreResult<ErasureDone>;
}

/// Convenience for callers that need a role list at a moment.
pub fn active_roles(assignments: &[RoleAssignment], at: OffsetDateTime) -> Vec<Role> {
    let mut roles: Vec<Role> = assignments
        .iter()
        .filter(|a| a.period.contains(at))
        .map(|a| a.role)
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

/// Patients with an active relationship at `at`, sorted and without duplicates.
pub fn active_patients(rels: &[CareRelationship], at: OffsetDateTime) -> Vec<PersonId> {
    let mut ids: Vec<PersonId> = rels
        .iter()
        .filter(|r| r.period.contains(at))
        .map(|r| r.patient.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}
