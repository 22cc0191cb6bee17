use crate::conn::{SqliteStore, driver};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use tillit_core::{OrgUnitId, Period, PersonId, PersonKind, Role, TenantId, Username};
use tillit_store::*;
use time::OffsetDateTime;

pub(crate) fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

pub(crate) fn from_ts(s: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

pub(crate) fn opt_ts(s: Option<i64>) -> rusqlite::Result<Option<OffsetDateTime>> {
    s.map(from_ts).transpose()
}

pub(crate) fn bad<E: std::error::Error + Send + Sync + 'static>(e: E) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

pub(crate) fn tenant_id(r: &Row<'_>, i: usize) -> rusqlite::Result<TenantId> {
    TenantId::parse(r.get::<_, String>(i)?).map_err(bad)
}

pub(crate) fn person_id(r: &Row<'_>, i: usize) -> rusqlite::Result<PersonId> {
    PersonId::parse(r.get::<_, String>(i)?).map_err(bad)
}

pub(crate) fn unit_id(r: &Row<'_>, i: usize) -> rusqlite::Result<OrgUnitId> {
    OrgUnitId::parse(r.get::<_, String>(i)?).map_err(bad)
}

pub(crate) fn period(r: &Row<'_>, from: usize, to: usize) -> rusqlite::Result<Period> {
    Period::new(from_ts(r.get(from)?)?, opt_ts(r.get(to)?)?).map_err(bad)
}

pub(crate) fn cipher_err(e: StoreError) -> rusqlite::Error {
    bad(e)
}

pub(crate) fn open_opt(
    c: &dyn FieldCipher,
    tenant: Option<&TenantId>,
    context: &str,
    v: Option<Vec<u8>>,
) -> rusqlite::Result<Option<String>> {
    v.map(|b| c.open(tenant, context, &b))
        .transpose()
        .map_err(cipher_err)
}

pub(crate) fn seal_opt(
    c: &dyn FieldCipher,
    tenant: Option<&TenantId>,
    context: &str,
    v: Option<&str>,
) -> StoreResult<Option<Vec<u8>>> {
    v.map(|s| c.seal(tenant, context, s)).transpose()
}

fn hash32(v: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| bad(tillit_core::InvalidValue::new("hash", "must be 32 bytes")))
}

pub(crate) fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> StoreResult<Vec<T>> {
    rows.collect::<Result<Vec<_>, _>>().map_err(driver)
}

fn row_tenant(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: tenant_id(r, 0)?,
        name: r.get(1)?,
        created_at: from_ts(r.get(2)?)?,
    })
}

const PERSON_COLS: &str = "tenant_id, id, kind, display_name, professional_id, sealed_profile, national_id_index, created_at";

fn row_person(r: &Row<'_>, c: &dyn FieldCipher) -> rusqlite::Result<Person> {
    let tenant = tenant_id(r, 0)?;
    let id = person_id(r, 1)?;
    let display_name = open_opt(c, Some(&tenant), &format!("display-name/{id}"), r.get(3)?)?;
    Ok(Person {
        tenant,
        id,
        kind: PersonKind::parse(&r.get::<_, String>(2)?).map_err(bad)?,
        display_name,
        professional_id: r.get(4)?,
        sealed_profile: r.get(5)?,
        national_id_index: r.get(6)?,
        created_at: from_ts(r.get(7)?)?,
    })
}

const USER_COLS: &str = "u.id, u.tenant_id, u.person_id, p.kind, u.username, u.password_hash, u.totp_secret, u.totp_last_step, u.failed_logins, u.locked_until, u.disabled";

fn row_user(r: &Row<'_>, c: &dyn FieldCipher) -> rusqlite::Result<User> {
    let id = UserId(r.get(0)?);
    let tenant = tenant_id(r, 1)?;
    let username = c
        .open(
            None,
            &format!("username/{}", id.0),
            &r.get::<_, Vec<u8>>(4)?,
        )
        .map_err(cipher_err)?;
    let totp_secret = open_opt(c, Some(&tenant), &format!("totp/{}", id.0), r.get(6)?)?;
    Ok(User {
        id,
        tenant,
        person: person_id(r, 2)?,
        kind: PersonKind::parse(&r.get::<_, String>(3)?).map_err(bad)?,
        username: Username::parse(&username).map_err(bad)?,
        password_hash: r.get(5)?,
        totp_secret,
        totp_last_step: r.get(7)?,
        failed_logins: r.get(8)?,
        locked_until: opt_ts(r.get(9)?)?,
        disabled: r.get(10)?,
    })
}

pub(crate) const ROLE_COLS: &str =
    "id, tenant_id, person_id, role, org_unit_id, valid_from, valid_to";

pub(crate) fn row_role(r: &Row<'_>) -> rusqlite::Result<RoleAssignment> {
    Ok(RoleAssignment {
        id: r.get(0)?,
        tenant: tenant_id(r, 1)?,
        person: person_id(r, 2)?,
        role: Role::parse(&r.get::<_, String>(3)?).map_err(bad)?,
        org_unit: unit_id(r, 4)?,
        period: period(r, 5, 6)?,
    })
}

const TOKEN_COLS: &str =
    "id, tenant_id, user_id, name, created_at, expires_at, revoked_at, last_used_at";

fn row_token(r: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get(0)?,
        tenant: tenant_id(r, 1)?,
        user: UserId(r.get(2)?),
        name: r.get(3)?,
        created_at: from_ts(r.get(4)?)?,
        expires_at: from_ts(r.get(5)?)?,
        revoked_at: opt_ts(r.get(6)?)?,
        last_used_at: opt_ts(r.get(7)?)?,
    })
}

fn row_session(r: &Row<'_>, c: &dyn FieldCipher) -> rusqlite::Result<Session> {
    let id_hash = hash32(r.get(0)?)?;
    let tenant = tenant_id(r, 1)?;
    let totp_enrolment = open_opt(c, Some(&tenant), &enrolment_context(&id_hash), r.get(7)?)?;
    Ok(Session {
        id_hash,
        tenant,
        user: UserId(r.get(2)?),
        csrf_hash: hash32(r.get(3)?)?,
        created_at: from_ts(r.get(4)?)?,
        last_seen_at: from_ts(r.get(5)?)?,
        pending_totp: r.get(6)?,
        totp_enrolment,
    })
}

fn enrolment_context(id_hash: &[u8; 32]) -> String {
    let hex: String = id_hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("totp-enrolment/{hex}")
}

fn row_event(r: &Row<'_>, c: &dyn FieldCipher) -> rusqlite::Result<SecurityEvent> {
    let kind: String = r.get(5)?;
    let tenant = r
        .get::<_, Option<String>>(2)?
        .map(TenantId::parse)
        .transpose()
        .map_err(bad)?;
    let username = open_opt(c, tenant.as_ref(), "event-username", r.get(4)?)?;
    Ok(SecurityEvent {
        seq: r.get(0)?,
        at: from_ts(r.get(1)?)?,
        tenant,
        user: r.get::<_, Option<String>>(3)?.map(UserId),
        username,
        kind: SecurityEventKind::parse(&kind).ok_or_else(|| {
            bad(tillit_core::InvalidValue::new(
                "security event kind",
                kind.clone(),
            ))
        })?,
        outcome_ok: r.get(6)?,
        detail: r.get(7)?,
        ip: r.get(8)?,
        user_agent: r.get(9)?,
    })
}

pub(crate) fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    e: &NewSecurityEvent,
    username: Option<Vec<u8>>,
) -> StoreResult<i64> {
    tx.execute(
        "INSERT INTO security_events (at, tenant_id, user_id, username, kind, outcome_ok, detail, ip, user_agent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            ts(e.at),
            e.tenant.as_ref().map(|t| t.as_str()),
            e.user.as_ref().map(|u| u.0.as_str()),
            username,
            e.kind.code(),
            e.outcome_ok,
            e.detail,
            e.ip,
            e.user_agent
        ],
    )
    .map_err(driver)?;
    Ok(tx.last_insert_rowid())
}

pub(crate) fn new_id() -> String {
    // Same shape as the domain ids; rows that are not domain entities still get opaque ids.
    PersonId::random().to_string()
}

pub(crate) fn expect_changed(n: usize, what: &'static str) -> StoreResult<()> {
    if n == 0 {
        Err(StoreError::NotFound(what))
    } else {
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn tenant_policies(&self, tenant: &TenantId) -> StoreResult<Option<String>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT policies FROM tenant_policies WHERE tenant_id = ?1",
                [tenant],
                |r| r.get(0),
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn set_tenant_policies(
        &self,
        tenant: &TenantId,
        policies: &str,
        by: &PersonId,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let (tenant, policies, by) = (tenant.to_string(), policies.to_string(), by.to_string());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO tenant_policies (tenant_id, policies, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant_id) DO UPDATE SET policies = excluded.policies, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                params![tenant, policies, ts(at), by],
            )
            .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn open_emergency_access(&self, a: &EmergencyAccess) -> StoreResult<()> {
        let a = a.clone();
        let reason = self.cipher().seal(
            Some(&a.tenant),
            &format!("emergency-reason/{}", a.id),
            &a.reason,
        )?;
        self.write(move |tx| {
            let kind: Option<String> = tx
                .query_row("SELECT kind FROM persons WHERE tenant_id = ?1 AND id = ?2", params![a.tenant.as_str(), a.patient.as_str()], |r| r.get(0))
                .optional()
                .map_err(driver)?;
            if kind.as_deref() != Some("patient") {
                return Err(StoreError::NotFound("patient"));
            }
            tx.execute(
                "INSERT INTO emergency_access (id, tenant_id, staff_id, patient_id, reason, opened_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![a.id, a.tenant.as_str(), a.staff.as_str(), a.patient.as_str(), reason, ts(a.opened_at), ts(a.expires_at)],
            )
            .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn emergency_patients(
        &self,
        tenant: &TenantId,
        staff: &PersonId,
        at: OffsetDateTime,
    ) -> StoreResult<Vec<PersonId>> {
        let (tenant, staff) = (tenant.clone(), staff.clone());
        self.read(move |c| {
            let mut s = c
                .prepare("SELECT DISTINCT patient_id FROM emergency_access WHERE tenant_id = ?1 AND staff_id = ?2 AND expires_at > ?3 AND opened_at <= ?3")
                .map_err(driver)?;
            collect(s.query_map(params![tenant.as_str(), staff.as_str(), ts(at)], |r| person_id(r, 0)).map_err(driver)?)
        })
        .await
    }

    async fn emergency_accesses(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> StoreResult<Vec<EmergencyAccess>> {
        let (tenant, cipher) = (tenant.clone(), self.cipher());
        self.read(move |c| {
            let mut s = c
                .prepare("SELECT id, tenant_id, staff_id, patient_id, reason, opened_at, expires_at, review FROM emergency_access WHERE tenant_id = ?1 ORDER BY opened_at DESC LIMIT ?2")
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant.as_str(), limit], |r| {
                    let id: String = r.get(0)?;
                    let t = tenant_id(r, 1)?;
                    let reason = cipher.open(Some(&t), &format!("emergency-reason/{id}"), &r.get::<_, Vec<u8>>(4)?).map_err(cipher_err)?;
                    Ok(EmergencyAccess {
                        id,
                        tenant: t,
                        staff: person_id(r, 2)?,
                        patient: person_id(r, 3)?,
                        reason,
                        opened_at: from_ts(r.get(5)?)?,
                        expires_at: from_ts(r.get(6)?)?,
                        review: r.get(7)?,
                    })
                })
                .map_err(driver)?,
            )
        })
        .await
    }

    async fn end_care_relationship(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.end_access_rule_impl(tenant, id, at).await
    }

    async fn add_access_rule(
        &self,
        tenant: &TenantId,
        rule: &NewAccessRule,
        at: OffsetDateTime,
    ) -> StoreResult<AccessRule> {
        self.add_access_rule_impl(tenant, rule, at).await
    }

    async fn end_access_rule(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.end_access_rule_impl(tenant, id, at).await
    }

    async fn access_rules_for_patient(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<AccessRule>> {
        self.access_rules_for_patient_impl(tenant, patient).await
    }

    async fn access_rules_of_kind(
        &self,
        tenant: &TenantId,
        kind: AccessKind,
    ) -> StoreResult<Vec<AccessRule>> {
        self.access_rules_of_kind_impl(tenant, kind).await
    }

    async fn account_statuses(&self, tenant: &TenantId) -> StoreResult<Vec<AccountStatus>> {
        self.account_statuses_impl(tenant).await
    }

    async fn tenant_role_assignments(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<(RoleAssignment, String)>> {
        self.tenant_role_assignments_impl(tenant).await
    }

    async fn end_role_assignment(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.end_role_assignment_impl(tenant, id, at).await
    }

    async fn access_rules_concerning(
        &self,
        tenant: &TenantId,
        person: &PersonId,
        units: &[OrgUnitId],
    ) -> StoreResult<Vec<AccessRule>> {
        self.access_rules_concerning_impl(tenant, person, units)
            .await
    }

    async fn tenant_settings(&self, tenant: &TenantId) -> StoreResult<TenantSettings> {
        self.tenant_settings_impl(tenant).await
    }

    async fn set_tenant_settings(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.set_tenant_settings_impl(tenant, settings, at).await
    }

    async fn add_delegation(&self, d: &Delegation, at: OffsetDateTime) -> StoreResult<()> {
        self.add_delegation_impl(d, at).await
    }

    async fn delegations_of(
        &self,
        tenant: &TenantId,
        delegate: &PersonId,
    ) -> StoreResult<Vec<Delegation>> {
        self.delegations_of_impl(tenant, delegate).await
    }

    async fn access_generation(&self, tenant: &TenantId) -> StoreResult<i64> {
        let tenant = tenant.clone();
        self.read(move |c| {
            c.prepare_cached("SELECT generation FROM access_generation WHERE tenant_id = ?1")
                .map_err(driver)?
                .query_row(params![tenant.as_str()], |r| r.get(0))
                .optional()
                .map(|g| g.unwrap_or(0))
                .map_err(driver)
        })
        .await
    }

    async fn set_operator_tenant(&self, tenant: &TenantId) -> StoreResult<()> {
        self.set_operator_tenant_impl(tenant).await
    }

    async fn operator_tenant(&self) -> StoreResult<Option<TenantId>> {
        self.operator_tenant_impl().await
    }

    async fn add_support_grant(&self, grant: &SupportGrant, at: OffsetDateTime) -> StoreResult<()> {
        self.add_support_grant_impl(grant, at).await
    }

    async fn support_grants(&self, tenant: &TenantId) -> StoreResult<Vec<SupportGrant>> {
        self.support_grants_impl(tenant).await
    }

    async fn revoke_support_grant(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.revoke_support_grant_impl(tenant, id, at).await
    }

    async fn set_withheld(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
        withheld: Option<&Withheld>,
    ) -> StoreResult<()> {
        self.set_withheld_impl(tenant, resource_type, id, withheld)
            .await
    }

    async fn withheld_for_patient(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<Withheld>> {
        self.withheld_for_patient_impl(tenant, patient).await
    }

    async fn resource_versions(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        versions: &[(String, i64)],
    ) -> StoreResult<Vec<StoredVersion>> {
        self.resource_versions_impl(tenant, resource_type, versions)
            .await
    }

    async fn category_rules(&self, tenant: &TenantId) -> StoreResult<Vec<CategoryRuleRow>> {
        self.category_rules_impl(tenant).await
    }

    async fn set_category_rules(
        &self,
        tenant: &TenantId,
        rules: &[CategoryRuleRow],
    ) -> StoreResult<()> {
        self.set_category_rules_impl(tenant, rules).await
    }

    async fn write_resources(
        &self,
        tenant: &TenantId,
        writes: Vec<ResourceWrite>,
    ) -> StoreResult<()> {
        self.write_resources_impl(tenant, writes).await
    }

    async fn current_resource(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
    ) -> StoreResult<Option<StoredVersion>> {
        self.current_resource_impl(tenant, resource_type, id).await
    }

    async fn resource_version(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> StoreResult<Option<StoredVersion>> {
        self.resource_version_impl(tenant, resource_type, id, version)
            .await
    }

    async fn resource_history(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: Option<&str>,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> StoreResult<Vec<StoredVersion>> {
        self.resource_history_impl(tenant, resource_type, id, since, limit)
            .await
    }

    async fn search_resources(
        &self,
        tenant: &TenantId,
        query: &Query,
    ) -> StoreResult<Vec<ResourceMeta>> {
        self.search_resources_impl(tenant, query).await
    }

    async fn count_resources(&self, tenant: &TenantId, resource_type: &str) -> StoreResult<u64> {
        self.count_resources_impl(tenant, resource_type).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(driver))
            .await
    }

    async fn is_empty(&self) -> StoreResult<bool> {
        self.read(|c| {
            c.query_row("SELECT NOT EXISTS (SELECT 1 FROM tenants)", [], |r| {
                r.get(0)
            })
            .map_err(driver)
        })
        .await
    }

    async fn create_tenant(&self, name: &str, at: OffsetDateTime) -> StoreResult<Tenant> {
        let t = Tenant {
            id: TenantId::derived(name),
            name: name.to_string(),
            created_at: at,
        };
        let row = t.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![row.id.as_str(), row.name, ts(row.created_at)],
            )
            .map_err(|e| match driver(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("tenant '{}'", row.name)),
                other => other,
            })?;
            Ok(())
        })
        .await?;
        Ok(t)
    }

    async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>> {
        let name = name.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT id, name, created_at FROM tenants WHERE name = ?1",
                [name],
                row_tenant,
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        let id = id.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT id, name, created_at FROM tenants WHERE id = ?1",
                [id],
                row_tenant,
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.read(|c| {
            let mut s = c
                .prepare("SELECT id, name, created_at FROM tenants ORDER BY name")
                .map_err(driver)?;
            collect(s.query_map([], row_tenant).map_err(driver)?)
        })
        .await
    }

    async fn create_org_unit(&self, unit: &NewOrgUnit, at: OffsetDateTime) -> StoreResult<OrgUnit> {
        let u = unit.clone();
        self.write(move |tx| {
            if let Some(parent) = &u.parent {
                let exists: bool = tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM org_units WHERE tenant_id = ?1 AND id = ?2)",
                        params![u.tenant.as_str(), parent.as_str()],
                        |r| r.get(0),
                    )
                    .map_err(driver)?;
                if !exists {
                    return Err(StoreError::NotFound("parent org unit"));
                }
            }
            tx.execute(
                "INSERT INTO org_units (tenant_id, id, parent_id, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![u.tenant.as_str(), u.id.as_str(), u.parent.as_ref().map(|p| p.as_str()), u.name, ts(at)],
            )
            .map_err(|e| match driver(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("org unit '{}'", u.name)),
                other => other,
            })?;
            Ok(OrgUnit { id: u.id, tenant: u.tenant, parent: u.parent, name: u.name })
        })
        .await
    }

    async fn list_org_units(&self, tenant: &TenantId) -> StoreResult<Vec<OrgUnit>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            let mut s = c
                .prepare("SELECT id, tenant_id, parent_id, name FROM org_units WHERE tenant_id = ?1 ORDER BY name")
                .map_err(driver)?;
            collect(
                s.query_map([tenant.as_str()], |r| {
                    Ok(OrgUnit {
                        id: unit_id(r, 0)?,
                        tenant: tenant_id(r, 1)?,
                        parent: r.get::<_, Option<String>>(2)?.map(OrgUnitId::parse).transpose().map_err(bad)?,
                        name: r.get(3)?,
                    })
                })
                .map_err(driver)?,
            )
        })
        .await
    }

    async fn create_person(&self, person: &NewPerson, at: OffsetDateTime) -> StoreResult<Person> {
        let p = person.clone();
        let sealed_name = seal_opt(
            &*self.cipher(),
            Some(&p.tenant),
            &format!("display-name/{}", p.id),
            p.display_name.as_deref(),
        )?;
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO persons (tenant_id, id, kind, display_name, professional_id, sealed_profile, national_id_index, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    p.tenant.as_str(), p.id.as_str(), p.kind.code(), sealed_name,
                    p.professional_id, p.sealed_profile, p.national_id_index, ts(at)
                ],
            )
            .map_err(|e| match driver(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("person {}", p.id)),
                other => other,
            })?;
            Ok(Person {
                id: p.id,
                tenant: p.tenant,
                kind: p.kind,
                display_name: p.display_name,
                professional_id: p.professional_id,
                sealed_profile: p.sealed_profile,
                national_id_index: p.national_id_index,
                created_at: at,
            })
        })
        .await
    }

    async fn person(&self, tenant: &TenantId, id: &PersonId) -> StoreResult<Option<Person>> {
        let (tenant, id, cipher) = (tenant.clone(), id.clone(), self.cipher());
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {PERSON_COLS} FROM persons WHERE tenant_id = ?1 AND id = ?2"),
                params![tenant.as_str(), id.as_str()],
                |r| row_person(r, &*cipher),
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn list_persons(
        &self,
        tenant: &TenantId,
        kind: Option<PersonKind>,
    ) -> StoreResult<Vec<Person>> {
        let (tenant, cipher) = (tenant.clone(), self.cipher());
        self.read(move |c| {
            let mut s = c
                .prepare(&format!(
                    "SELECT {PERSON_COLS} FROM persons WHERE tenant_id = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY created_at, id"
                ))
                .map_err(driver)?;
            collect(s.query_map(params![tenant.as_str(), kind.map(PersonKind::code)], |r| row_person(r, &*cipher)).map_err(driver)?)
        })
        .await
    }

    async fn create_user(&self, user: &NewUser, at: OffsetDateTime) -> StoreResult<User> {
        let u = user.clone();
        let c = self.cipher();
        let name_index = c.index("username", u.username.as_str())?;
        let name_sealed = c.seal(None, &format!("username/{}", u.id.0), u.username.as_str())?;
        let totp_sealed = seal_opt(
            &*c,
            Some(&u.tenant),
            &format!("totp/{}", u.id.0),
            u.totp_secret.as_deref(),
        )?;
        self.write(move |tx| {
            let kind: Option<String> = tx
                .query_row(
                    "SELECT kind FROM persons WHERE tenant_id = ?1 AND id = ?2",
                    params![u.tenant.as_str(), u.person.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(driver)?;
            let kind = PersonKind::parse(&kind.ok_or(StoreError::NotFound("person"))?)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            tx.execute(
                "INSERT INTO users (id, tenant_id, person_id, username_index, username, password_hash, totp_secret, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![u.id.0, u.tenant.as_str(), u.person.as_str(), name_index.to_vec(), name_sealed, u.password_hash, totp_sealed, ts(at)],
            )
            .map_err(|e| match driver(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("username '{}'", u.username)),
                other => other,
            })?;
            Ok(User {
                id: u.id,
                tenant: u.tenant,
                person: u.person,
                kind,
                username: u.username,
                password_hash: u.password_hash,
                totp_secret: u.totp_secret,
                totp_last_step: None,
                failed_logins: 0,
                locked_until: None,
                disabled: false,
            })
        })
        .await
    }

    async fn user_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        let cipher = self.cipher();
        let index = cipher.index("username", username.as_str())?.to_vec();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLS} FROM users u JOIN persons p ON p.tenant_id = u.tenant_id AND p.id = u.person_id WHERE u.username_index = ?1"),
                [index],
                |r| row_user(r, &*cipher),
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let (id, cipher) = (id.0.clone(), self.cipher());
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLS} FROM users u JOIN persons p ON p.tenant_id = u.tenant_id AND p.id = u.person_id WHERE u.id = ?1"),
                [id],
                |r| row_user(r, &*cipher),
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn set_password(&self, user: &UserId, password_hash: &str) -> StoreResult<()> {
        let (id, hash) = (user.0.clone(), password_hash.to_string());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                    params![id, hash],
                )
                .map_err(driver)?;
            expect_changed(n, "user")
        })
        .await
    }

    async fn set_totp_secret(&self, user: &UserId, secret_b32: Option<&str>) -> StoreResult<()> {
        let (id, secret, cipher) = (
            user.0.clone(),
            secret_b32.map(str::to_string),
            self.cipher(),
        );
        self.write(move |tx| {
            let tenant: Option<String> = tx
                .query_row("SELECT tenant_id FROM users WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(driver)?;
            let tenant = TenantId::parse(tenant.ok_or(StoreError::NotFound("user"))?)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            let secret = seal_opt(
                &*cipher,
                Some(&tenant),
                &format!("totp/{id}"),
                secret.as_deref(),
            )?;
            let n = tx
                .execute(
                    "UPDATE users SET totp_secret = ?2, totp_last_step = NULL WHERE id = ?1",
                    params![id, secret],
                )
                .map_err(driver)?;
            expect_changed(n, "user")
        })
        .await
    }

    async fn use_totp_step(&self, user: &UserId, step: i64) -> StoreResult<bool> {
        let id = user.0.clone();
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                    params![id, step],
                )
                .map_err(driver)?;
            Ok(n == 1)
        })
        .await
    }

    async fn record_login_failure(
        &self,
        user: &UserId,
        locked_until: Option<OffsetDateTime>,
    ) -> StoreResult<u32> {
        let id = user.0.clone();
        self.write(move |tx| {
            tx.query_row(
                "UPDATE users SET failed_logins = failed_logins + 1, locked_until = COALESCE(?2, locked_until)
                 WHERE id = ?1 RETURNING failed_logins",
                params![id, locked_until.map(ts)],
                |r| r.get(0),
            )
            .optional()
            .map_err(driver)?
            .ok_or(StoreError::NotFound("user"))
        })
        .await
    }

    async fn lock_user(&self, user: &UserId, until: OffsetDateTime) -> StoreResult<()> {
        let id = user.0.clone();
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE users SET locked_until = ?2 WHERE id = ?1",
                    params![id, ts(until)],
                )
                .map_err(driver)?;
            expect_changed(n, "user")
        })
        .await
    }

    async fn reset_login_failures(&self, user: &UserId) -> StoreResult<()> {
        let id = user.0.clone();
        self.write(move |tx| {
            tx.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?1 AND (failed_logins <> 0 OR locked_until IS NOT NULL)",
                [id],
            )
            .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn assign_role(
        &self,
        a: &NewRoleAssignment,
        at: OffsetDateTime,
    ) -> StoreResult<RoleAssignment> {
        let a = a.clone();
        self.write(move |tx| {
            let kind: Option<String> = tx
                .query_row(
                    "SELECT kind FROM persons WHERE tenant_id = ?1 AND id = ?2",
                    params![a.tenant.as_str(), a.person.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(driver)?;
            match kind.as_deref() {
                None => return Err(StoreError::NotFound("person")),
                Some("staff") => {}
                Some(_) => return Err(StoreError::Invalid("roles can be assigned to staff only".into())),
            }
            // Operators belong to the platform's operator tenant, and only operators do.
            let in_operator_tenant: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM operator_tenant WHERE tenant_id = ?1)",
                    params![a.tenant.as_str()],
                    |r| r.get(0),
                )
                .map_err(driver)?;
            if (a.role == Role::Operator) != in_operator_tenant {
                return Err(StoreError::Invalid(if in_operator_tenant {
                    "the operator tenant has operators only".into()
                } else {
                    "the operator role exists only in the operator tenant".into()
                }));
            }
            let id = new_id();
            tx.execute(
                "INSERT INTO role_assignments (id, tenant_id, person_id, role, org_unit_id, valid_from, valid_to, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id, a.tenant.as_str(), a.person.as_str(), a.role.code(), a.org_unit.as_str(),
                    ts(a.period.start()), a.period.end().map(ts), ts(at)
                ],
            )
            .map_err(|e| match driver(e) {
                StoreError::Conflict(_) => StoreError::NotFound("org unit"),
                other => other,
            })?;
            Ok(RoleAssignment { id, tenant: a.tenant, person: a.person, role: a.role, org_unit: a.org_unit, period: a.period })
        })
        .await
    }

    async fn role_assignments(
        &self,
        tenant: &TenantId,
        person: &PersonId,
    ) -> StoreResult<Vec<RoleAssignment>> {
        let (tenant, person) = (tenant.clone(), person.clone());
        self.read(move |c| {
            let mut s = c
                .prepare(&format!("SELECT {ROLE_COLS} FROM role_assignments WHERE tenant_id = ?1 AND person_id = ?2 ORDER BY valid_from"))
                .map_err(driver)?;
            collect(s.query_map(params![tenant.as_str(), person.as_str()], row_role).map_err(driver)?)
        })
        .await
    }

    async fn add_care_relationship(
        &self,
        rel: &NewCareRelationship,
        at: OffsetDateTime,
    ) -> StoreResult<CareRelationship> {
        let rule = NewAccessRule {
            kind: AccessKind::Care,
            party: match &rel.party {
                CareParty::Staff(p) => AccessParty::Person(p.clone()),
                CareParty::OrgUnit(u) => AccessParty::OrgUnit(u.clone()),
            },
            patient: rel.patient.clone(),
            categories: Vec::new(),
            purpose: rel.purpose.clone(),
            period: rel.period,
            decided_by: rel.decided_by.clone(),
            source: "admin".into(),
        };
        let made = self.add_access_rule_impl(&rel.tenant, &rule, at).await?;
        Ok(CareRelationship {
            id: made.id,
            tenant: rel.tenant.clone(),
            party: rel.party.clone(),
            patient: rel.patient.clone(),
            purpose: rel.purpose.clone(),
            period: rel.period,
            decided_by: rel.decided_by.clone(),
        })
    }

    async fn care_relationships_for_patient(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<CareRelationship>> {
        self.care_relationships_for_patient_impl(tenant, patient)
            .await
    }

    async fn care_relationships_for_staff(
        &self,
        tenant: &TenantId,
        staff: &PersonId,
        units: &[OrgUnitId],
    ) -> StoreResult<Vec<CareRelationship>> {
        self.care_relationships_for_staff_impl(tenant, staff, units)
            .await
    }

    async fn link_relative(
        &self,
        tenant: &TenantId,
        relative: &PersonId,
        patient: &PersonId,
        relationship: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let (tenant, relative, patient, relationship) = (
            tenant.clone(),
            relative.clone(),
            patient.clone(),
            relationship.to_string(),
        );
        self.write(move |tx| {
            let kinds: Vec<String> = {
                let mut s = tx
                    .prepare("SELECT kind FROM persons WHERE tenant_id = ?1 AND id IN (?2, ?3) ORDER BY id = ?2 DESC")
                    .map_err(driver)?;
                collect(s.query_map(params![tenant.as_str(), relative.as_str(), patient.as_str()], |r| r.get(0)).map_err(driver)?)?
            };
            if kinds != ["relative", "patient"] {
                return Err(StoreError::NotFound("relative and patient"));
            }
            tx.execute(
                "INSERT INTO relative_links (tenant_id, relative_id, patient_id, relationship, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant.as_str(), relative.as_str(), patient.as_str(), relationship, ts(at)],
            )
            .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn patients_of_relative(
        &self,
        tenant: &TenantId,
        relative: &PersonId,
    ) -> StoreResult<Vec<PersonId>> {
        let (tenant, relative) = (tenant.clone(), relative.clone());
        self.read(move |c| {
            let mut s = c
                .prepare("SELECT patient_id FROM relative_links WHERE tenant_id = ?1 AND relative_id = ?2 ORDER BY patient_id")
                .map_err(driver)?;
            collect(s.query_map(params![tenant.as_str(), relative.as_str()], |r| person_id(r, 0)).map_err(driver)?)
        })
        .await
    }

    async fn relative_links(
        &self,
        tenant: &TenantId,
        person: &PersonId,
    ) -> StoreResult<Vec<RelativeLink>> {
        let (tenant, person) = (tenant.clone(), person.clone());
        self.read(move |c| {
            let mut s = c
                .prepare("SELECT relative_id, patient_id, relationship, created_at FROM relative_links WHERE tenant_id = ?1 AND (relative_id = ?2 OR patient_id = ?2) ORDER BY created_at, relative_id, patient_id")
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant.as_str(), person.as_str()], |r| {
                    Ok(RelativeLink {
                        relative: person_id(r, 0)?,
                        patient: person_id(r, 1)?,
                        relationship: r.get(2)?,
                        created_at: from_ts(r.get(3)?)?,
                    })
                })
                .map_err(driver)?,
            )
        })
        .await
    }

    async fn create_api_token(&self, t: &NewApiToken, at: OffsetDateTime) -> StoreResult<ApiToken> {
        let t = t.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO api_tokens (id, tenant_id, user_id, name, token_hash, created_at, expires_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?3 AND tenant_id = ?2)",
                params![t.id, t.tenant.as_str(), t.user.0, t.name, t.hash.to_vec(), ts(at), ts(t.expires_at)],
            )
            .map_err(driver)
            .and_then(|n| expect_changed(n, "user"))?;
            Ok(ApiToken {
                id: t.id,
                tenant: t.tenant,
                user: t.user,
                name: t.name,
                created_at: at,
                expires_at: t.expires_at,
                revoked_at: None,
                last_used_at: None,
            })
        })
        .await
    }

    async fn api_token_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<ApiToken>> {
        let hash = hash.to_vec();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = ?1"),
                [hash],
                row_token,
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn list_api_tokens(&self, user: &UserId) -> StoreResult<Vec<ApiToken>> {
        let id = user.0.clone();
        self.read(move |c| {
            let mut s = c
                .prepare(&format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens WHERE user_id = ?1 ORDER BY created_at"
                ))
                .map_err(driver)?;
            collect(s.query_map([id], row_token).map_err(driver)?)
        })
        .await
    }

    async fn revoke_api_token(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?3) WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant.as_str(), id, ts(at)],
                )
                .map_err(driver)?;
            expect_changed(n, "API token")
        })
        .await
    }

    async fn create_session(&self, s: &Session) -> StoreResult<()> {
        let s = s.clone();
        let enrolment = seal_opt(
            &*self.cipher(),
            Some(&s.tenant),
            &enrolment_context(&s.id_hash),
            s.totp_enrolment.as_deref(),
        )?;
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO sessions (id_hash, tenant_id, user_id, csrf_hash, created_at, last_seen_at, pending_totp, totp_enrolment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    s.id_hash.to_vec(), s.tenant.as_str(), s.user.0, s.csrf_hash.to_vec(),
                    ts(s.created_at), ts(s.last_seen_at), s.pending_totp, enrolment
                ],
            )
            .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn session_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<Session>> {
        let (hash, cipher) = (hash.to_vec(), self.cipher());
        self.read(move |c| {
            c.query_row(
                "SELECT id_hash, tenant_id, user_id, csrf_hash, created_at, last_seen_at, pending_totp, totp_enrolment FROM sessions WHERE id_hash = ?1",
                [hash],
                |r| row_session(r, &*cipher),
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn touch_session(&self, hash: &[u8; 32], at: OffsetDateTime) -> StoreResult<()> {
        let hash = hash.to_vec();
        self.write(move |tx| {
            tx.execute(
                "UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1",
                params![hash, ts(at)],
            )
            .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn delete_session(&self, hash: &[u8; 32]) -> StoreResult<()> {
        let hash = hash.to_vec();
        self.write(move |tx| {
            tx.execute("DELETE FROM sessions WHERE id_hash = ?1", [hash])
                .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn delete_sessions_of_user(&self, user: &UserId) -> StoreResult<()> {
        let id = user.0.clone();
        self.write(move |tx| {
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])
                .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn set_session_totp_enrolment(
        &self,
        hash: &[u8; 32],
        secret_b32: Option<&str>,
    ) -> StoreResult<()> {
        let (id_hash, secret, cipher) = (*hash, secret_b32.map(str::to_string), self.cipher());
        let hash = id_hash.to_vec();
        self.write(move |tx| {
            let tenant: Option<String> = tx
                .query_row(
                    "SELECT tenant_id FROM sessions WHERE id_hash = ?1",
                    [&hash],
                    |r| r.get(0),
                )
                .optional()
                .map_err(driver)?;
            let tenant = TenantId::parse(tenant.ok_or(StoreError::NotFound("session"))?)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            let secret = seal_opt(
                &*cipher,
                Some(&tenant),
                &enrolment_context(&id_hash),
                secret.as_deref(),
            )?;
            let n = tx
                .execute(
                    "UPDATE sessions SET totp_enrolment = ?2 WHERE id_hash = ?1",
                    params![hash, secret],
                )
                .map_err(driver)?;
            expect_changed(n, "session")
        })
        .await
    }

    async fn delete_expired_sessions(
        &self,
        idle_before: OffsetDateTime,
        created_before: OffsetDateTime,
    ) -> StoreResult<u64> {
        self.write(move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM sessions WHERE last_seen_at < ?1 OR created_at < ?2",
                    params![ts(idle_before), ts(created_before)],
                )
                .map_err(driver)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn append_security_event(&self, e: &NewSecurityEvent) -> StoreResult<i64> {
        let e = e.clone();
        let username = seal_opt(
            &*self.cipher(),
            e.tenant.as_ref(),
            "event-username",
            e.username.as_deref(),
        )?;
        self.write(move |tx| insert_event(tx, &e, username)).await
    }

    async fn security_events(
        &self,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> StoreResult<Vec<SecurityEvent>> {
        let (tenant, cipher) = (tenant.map(|t| t.to_string()), self.cipher());
        self.read(move |c| {
            let mut s = c
                .prepare(
                    "SELECT seq, at, tenant_id, user_id, username, kind, outcome_ok, detail, ip, user_agent
                     FROM security_events WHERE (?1 IS NULL OR tenant_id = ?1) ORDER BY seq DESC LIMIT ?2",
                )
                .map_err(driver)?;
            collect(s.query_map(params![tenant, limit], |r| row_event(r, &*cipher)).map_err(driver)?)
        })
        .await
    }

    async fn current_resources_page(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredVersion>> {
        self.current_resources_page_impl(tenant, resource_type, after_id, limit)
            .await
    }

    async fn remove_tenant(
        &self,
        tenant: &TenantId,
        draft: &str,
        at: OffsetDateTime,
    ) -> StoreResult<TenantRemoval> {
        self.remove_tenant_impl(tenant, draft, at).await
    }

    async fn deleted_tenant(&self, id_or_name: &str) -> StoreResult<Option<DeletedTenant>> {
        self.deleted_tenant_impl(id_or_name).await
    }

    async fn resource_creations(
        &self,
        tenant: &TenantId,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<CreationCount>> {
        self.resource_creations_impl(tenant, from, to).await
    }

    async fn set_restricted(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
        restriction: Option<&Restriction>,
    ) -> StoreResult<()> {
        self.set_restricted_impl(tenant, resource_type, id, restriction)
            .await
    }

    async fn restricted_records(&self, tenant: &TenantId) -> StoreResult<Vec<Restriction>> {
        self.restricted_records_impl(tenant).await
    }

    async fn retained_categories(&self, tenant: &TenantId) -> StoreResult<Option<Vec<String>>> {
        self.retained_categories_impl(tenant).await
    }

    async fn set_retained_categories(
        &self,
        tenant: &TenantId,
        categories: &[String],
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.set_retained_categories_impl(tenant, categories, at)
            .await
    }

    async fn patient_versions(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<StoredVersion>> {
        self.patient_versions_impl(tenant, patient).await
    }

    async fn erase_patient_data(
        &self,
        tenant: &TenantId,
        erasure: &PatientErasure,
    ) -> StoreResult<ErasureDone> {
        self.erase_patient_data_impl(tenant, erasure).await
    }
}
