//! Access rules (care relationships, blocks, grants, exclusions, relatives' consents), the
//! rules and role assignments derived from FHIR resources, tenant settings, delegations and
//! withheld records.

use crate::conn::{SqliteStore, driver};
use crate::queries::{
    bad, cipher_err, collect, expect_changed, from_ts, new_id, period, person_id, tenant_id, ts,
};
use rusqlite::{OptionalExtension, Row, Transaction, params};
use tillit_core::{AccessKind, OrgUnitId, PersonId, TenantId};
use tillit_store::*;
use time::OffsetDateTime;

pub(crate) const RULE_COLS: &str = "id, tenant_id, kind, person_id, org_unit_id, patient_id, categories, purpose, valid_from, valid_to, decided_by, source";

pub(crate) fn row_rule(r: &Row<'_>) -> rusqlite::Result<AccessRule> {
    let kind: String = r.get(2)?;
    let kind = AccessKind::parse(&kind).ok_or_else(|| {
        bad(tillit_core::InvalidValue::new(
            "access rule",
            format!("unknown kind {kind}"),
        ))
    })?;
    let person: Option<String> = r.get(3)?;
    let unit: Option<String> = r.get(4)?;
    let party = match (person, unit) {
        (Some(p), _) => AccessParty::Person(PersonId::parse(p).map_err(bad)?),
        (None, Some(u)) => AccessParty::OrgUnit(OrgUnitId::parse(u).map_err(bad)?),
        (None, None) => AccessParty::Everyone,
    };
    let categories: String = r.get(6)?;
    Ok(AccessRule {
        id: r.get(0)?,
        tenant: tenant_id(r, 1)?,
        rule: NewAccessRule {
            kind,
            party,
            patient: person_id(r, 5)?,
            categories: categories.split_whitespace().map(str::to_string).collect(),
            purpose: r.get(7)?,
            period: period(r, 8, 9)?,
            decided_by: r
                .get::<_, Option<String>>(10)?
                .map(PersonId::parse)
                .transpose()
                .map_err(bad)?,
            source: r.get(11)?,
        },
    })
}

fn party_columns(p: &AccessParty) -> (Option<&str>, Option<&str>) {
    match p {
        AccessParty::Person(p) => (Some(p.as_str()), None),
        AccessParty::OrgUnit(u) => (None, Some(u.as_str())),
        AccessParty::Everyone => (None, None),
    }
}

/// Inserts a rule if its patient, person and org unit are the tenant's; returns its id, or
/// `None` when one of them is unknown (a FHIR reference to someone Tillit does not know).
fn insert_rule(
    tx: &Transaction<'_>,
    tenant: &str,
    rule: &NewAccessRule,
    at: OffsetDateTime,
) -> StoreResult<Option<String>> {
    let (person, unit) = party_columns(&rule.party);
    if rule.party == AccessParty::Everyone && rule.kind != AccessKind::Block {
        return Err(StoreError::Invalid(
            "only a block can concern every staff member".into(),
        ));
    }
    let id = new_id();
    let n = tx
        .execute(
            "INSERT INTO access_rules (id, tenant_id, kind, person_id, org_unit_id, patient_id, categories, purpose, valid_from, valid_to, decided_by, source, created_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13
             WHERE (EXISTS (SELECT 1 FROM persons WHERE tenant_id = ?2 AND id = ?6 AND kind = 'patient')
                    OR EXISTS (SELECT 1 FROM resources WHERE tenant_id = ?2 AND type = 'Patient' AND id = ?6 AND deleted = 0))
               AND (?4 IS NULL OR EXISTS (SELECT 1 FROM persons WHERE tenant_id = ?2 AND id = ?4 AND kind <> 'patient'))
               AND (?5 IS NULL OR EXISTS (SELECT 1 FROM org_units WHERE tenant_id = ?2 AND id = ?5))
               AND (?11 IS NULL OR EXISTS (SELECT 1 FROM persons WHERE tenant_id = ?2 AND id = ?11))",
            params![
                id,
                tenant,
                rule.kind.code(),
                person,
                unit,
                rule.patient.as_str(),
                rule.categories.join(" "),
                rule.purpose,
                ts(rule.period.start()),
                rule.period.end().map(ts),
                rule.decided_by.as_ref().map(|p| p.as_str()),
                rule.source,
                ts(at)
            ],
        )
        .map_err(driver)?;
    Ok((n == 1).then_some(id))
}

/// Replaces what the FHIR resource `source` (`Type/id`) derived before with `derived`, in the
/// transaction that writes the resource's new version.
pub(crate) fn write_derived(
    tx: &Transaction<'_>,
    tenant: &str,
    source: &str,
    derived: &Derived,
    at: OffsetDateTime,
) -> StoreResult<()> {
    tx.execute(
        "DELETE FROM access_rules WHERE tenant_id = ?1 AND source = ?2",
        params![tenant, source],
    )
    .map_err(driver)?;
    tx.execute(
        "DELETE FROM role_assignments WHERE tenant_id = ?1 AND source = ?2",
        params![tenant, source],
    )
    .map_err(driver)?;
    for rule in &derived.rules {
        let mut rule = rule.clone();
        rule.source = source.to_string();
        insert_rule(tx, tenant, &rule, at)?;
    }
    for role in &derived.roles {
        tx.execute(
            "INSERT INTO role_assignments (id, tenant_id, person_id, role, org_unit_id, valid_from, valid_to, created_at, source)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
             WHERE EXISTS (SELECT 1 FROM persons WHERE tenant_id = ?2 AND id = ?3 AND kind = 'staff')
               AND EXISTS (SELECT 1 FROM org_units WHERE tenant_id = ?2 AND id = ?5)",
            params![
                new_id(),
                tenant,
                role.person.as_str(),
                role.role.code(),
                role.org_unit.as_str(),
                ts(role.period.start()),
                role.period.end().map(ts),
                ts(at),
                source
            ],
        )
        .map_err(driver)?;
    }
    Ok(())
}

fn care_of(rule: AccessRule) -> Option<CareRelationship> {
    if rule.rule.kind != AccessKind::Care {
        return None;
    }
    let party = match rule.rule.party {
        AccessParty::Person(p) => CareParty::Staff(p),
        AccessParty::OrgUnit(u) => CareParty::OrgUnit(u),
        AccessParty::Everyone => return None,
    };
    Some(CareRelationship {
        id: rule.id,
        tenant: rule.tenant,
        party,
        patient: rule.rule.patient,
        purpose: rule.rule.purpose,
        period: rule.rule.period,
        decided_by: rule.rule.decided_by,
    })
}

impl SqliteStore {
    pub(crate) async fn add_access_rule_impl(
        &self,
        tenant: &TenantId,
        rule: &NewAccessRule,
        at: OffsetDateTime,
    ) -> StoreResult<AccessRule> {
        let (tenant, rule) = (tenant.clone(), rule.clone());
        self.write(move |tx| {
            let id = insert_rule(tx, tenant.as_str(), &rule, at)?
                .ok_or(StoreError::NotFound("patient, person or org unit"))?;
            Ok(AccessRule { id, tenant, rule })
        })
        .await
    }

    pub(crate) async fn end_access_rule_impl(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.write(move |tx| {
            let source: Option<String> = tx
                .query_row(
                    "SELECT source FROM access_rules WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(driver)?;
            match source.as_deref() {
                None => return Err(StoreError::NotFound("access rule")),
                Some("admin") => {}
                Some(other) => {
                    return Err(StoreError::Invalid(format!(
                        "this rule comes from {other}; change or end that resource instead"
                    )));
                }
            }
            // Only shortens: an end already in the past stays where it was. A rule that has
            // not begun yet (or began this very second) is moved so that it ends now too.
            let n = tx
                .execute(
                    "UPDATE access_rules SET
                       valid_from = CASE WHEN valid_to IS NULL OR valid_to > ?3 THEN MIN(valid_from, ?3 - 1) ELSE valid_from END,
                       valid_to = CASE WHEN valid_to IS NULL OR valid_to > ?3 THEN ?3 ELSE valid_to END
                     WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant, id, ts(at)],
                )
                .map_err(driver)?;
            expect_changed(n, "access rule")
        })
        .await
    }

    pub(crate) async fn access_rules_for_patient_impl(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<AccessRule>> {
        let (tenant, patient) = (tenant.clone(), patient.clone());
        self.read(move |c| {
            let mut s = c
                .prepare_cached(&format!("SELECT {RULE_COLS} FROM access_rules WHERE tenant_id = ?1 AND patient_id = ?2 ORDER BY valid_from, id"))
                .map_err(driver)?;
            collect(s.query_map(params![tenant.as_str(), patient.as_str()], row_rule).map_err(driver)?)
        })
        .await
    }

    pub(crate) async fn access_rules_concerning_impl(
        &self,
        tenant: &TenantId,
        person: &PersonId,
        units: &[OrgUnitId],
    ) -> StoreResult<Vec<AccessRule>> {
        let (tenant, person) = (tenant.clone(), person.clone());
        let units: Vec<String> = units.iter().map(|u| u.to_string()).collect();
        self.read(move |c| {
            let mut out = Vec::new();
            let mut s = c
                .prepare_cached(&format!("SELECT {RULE_COLS} FROM access_rules WHERE tenant_id = ?1 AND person_id = ?2"))
                .map_err(driver)?;
            out.extend(collect(s.query_map(params![tenant.as_str(), person.as_str()], row_rule).map_err(driver)?)?);
            let mut s = c
                .prepare_cached(&format!("SELECT {RULE_COLS} FROM access_rules WHERE tenant_id = ?1 AND org_unit_id = ?2"))
                .map_err(driver)?;
            for unit in units {
                out.extend(collect(s.query_map(params![tenant.as_str(), unit], row_rule).map_err(driver)?)?);
            }
            let mut s = c
                .prepare_cached(&format!("SELECT {RULE_COLS} FROM access_rules WHERE tenant_id = ?1 AND kind = 'block' AND person_id IS NULL AND org_unit_id IS NULL"))
                .map_err(driver)?;
            out.extend(collect(s.query_map(params![tenant.as_str()], row_rule).map_err(driver)?)?);
            Ok(out)
        })
        .await
    }

    pub(crate) async fn care_relationships_for_patient_impl(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<CareRelationship>> {
        Ok(self
            .access_rules_for_patient_impl(tenant, patient)
            .await?
            .into_iter()
            .filter_map(care_of)
            .collect())
    }

    pub(crate) async fn care_relationships_for_staff_impl(
        &self,
        tenant: &TenantId,
        staff: &PersonId,
        units: &[OrgUnitId],
    ) -> StoreResult<Vec<CareRelationship>> {
        Ok(self
            .access_rules_concerning_impl(tenant, staff, units)
            .await?
            .into_iter()
            .filter_map(care_of)
            .collect())
    }

    pub(crate) async fn tenant_settings_impl(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<TenantSettings> {
        let tenant = tenant.clone();
        self.read(move |c| {
            let row: Option<(i64, i64)> = c
                .prepare_cached("SELECT emergency_minutes, emergency_overrides_block FROM tenant_settings WHERE tenant_id = ?1")
                .map_err(driver)?
                .query_row(params![tenant.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(driver)?;
            Ok(match row {
                None => TenantSettings::default(),
                Some((minutes, overrides)) => TenantSettings {
                    emergency_minutes: u32::try_from(minutes).map_err(|_| StoreError::Invalid("emergency_minutes".into()))?,
                    emergency_overrides_block: overrides != 0,
                },
            })
        })
        .await
    }

    pub(crate) async fn set_tenant_settings_impl(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let (tenant, s) = (tenant.clone(), *settings);
        if !(1..=1440).contains(&s.emergency_minutes) {
            return Err(StoreError::Invalid(
                "emergency access lasts from 1 minute to 24 hours".into(),
            ));
        }
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO tenant_settings (tenant_id, emergency_minutes, emergency_overrides_block, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant_id) DO UPDATE SET emergency_minutes = excluded.emergency_minutes,
                   emergency_overrides_block = excluded.emergency_overrides_block, updated_at = excluded.updated_at",
                params![tenant.as_str(), s.emergency_minutes, s.emergency_overrides_block, ts(at)],
            )
            .map_err(|e| match driver(e) {
                StoreError::Conflict(_) => StoreError::NotFound("tenant"),
                other => other,
            })?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn add_delegation_impl(
        &self,
        d: &Delegation,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let d = d.clone();
        self.write(move |tx| {
            let n = tx
                .execute(
                    "INSERT INTO delegations (id, tenant_id, delegate_id, on_behalf_of_id, registration_only, valid_from, valid_to, created_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
                     WHERE (SELECT COUNT(*) FROM persons WHERE tenant_id = ?2 AND id IN (?3, ?4) AND kind = 'staff') = 2",
                    params![d.id, d.tenant.as_str(), d.delegate.as_str(), d.on_behalf_of.as_str(), d.registration_only,
                            ts(d.period.start()), d.period.end().map(ts), ts(at)],
                )
                .map_err(driver)?;
            expect_changed(n, "staff members")
        })
        .await
    }

    pub(crate) async fn delegations_of_impl(
        &self,
        tenant: &TenantId,
        delegate: &PersonId,
    ) -> StoreResult<Vec<Delegation>> {
        let (tenant, delegate) = (tenant.clone(), delegate.clone());
        self.read(move |c| {
            let mut s = c
                .prepare_cached("SELECT id, tenant_id, delegate_id, on_behalf_of_id, registration_only, valid_from, valid_to FROM delegations WHERE tenant_id = ?1 AND delegate_id = ?2 ORDER BY valid_from")
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant.as_str(), delegate.as_str()], |r| {
                    Ok(Delegation {
                        id: r.get(0)?,
                        tenant: tenant_id(r, 1)?,
                        delegate: person_id(r, 2)?,
                        on_behalf_of: person_id(r, 3)?,
                        registration_only: r.get(4)?,
                        period: period(r, 5, 6)?,
                    })
                })
                .map_err(driver)?,
            )
        })
        .await
    }

    pub(crate) async fn set_operator_tenant_impl(&self, tenant: &TenantId) -> StoreResult<()> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            let existing: Option<String> = tx
                .query_row(
                    "SELECT tenant_id FROM operator_tenant WHERE singleton = 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(driver)?;
            match existing {
                Some(t) if t == tenant.as_str() => Ok(()),
                Some(_) => Err(StoreError::Conflict("an operator tenant".into())),
                None => {
                    tx.execute(
                        "INSERT INTO operator_tenant (singleton, tenant_id) VALUES (1, ?1)",
                        params![tenant.as_str()],
                    )
                    .map_err(|e| match driver(e) {
                        StoreError::Conflict(_) => StoreError::NotFound("tenant"),
                        other => other,
                    })?;
                    Ok(())
                }
            }
        })
        .await
    }

    pub(crate) async fn operator_tenant_impl(&self) -> StoreResult<Option<TenantId>> {
        self.read(move |c| {
            c.prepare_cached("SELECT tenant_id FROM operator_tenant WHERE singleton = 1")
                .map_err(driver)?
                .query_row([], |r| tenant_id(r, 0))
                .optional()
                .map_err(driver)
        })
        .await
    }

    pub(crate) async fn add_support_grant_impl(
        &self,
        g: &SupportGrant,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let (g, cipher) = (g.clone(), self.cipher());
        let Some(end) = g.period.end() else {
            return Err(StoreError::Invalid("support access must end".into()));
        };
        self.write(move |tx| {
            // The operator must be an operator: a user of the operator tenant with the role.
            let ok: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM users u JOIN operator_tenant o ON o.tenant_id = u.tenant_id
                                     JOIN role_assignments r ON r.tenant_id = u.tenant_id AND r.person_id = u.person_id AND r.role = 'operator'
                                     WHERE u.id = ?1)",
                    params![g.operator.0],
                    |r| r.get(0),
                )
                .map_err(driver)?;
            if !ok {
                return Err(StoreError::NotFound("platform operator"));
            }
            let reason = cipher.seal(Some(&g.tenant), &format!("support-reason/{}", g.id), &g.reason)?;
            tx.execute(
                "INSERT INTO support_grants (id, tenant_id, operator_user_id, reason, granted_by, valid_from, valid_to, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![g.id, g.tenant.as_str(), g.operator.0, reason, g.granted_by.as_ref().map(|p| p.as_str()),
                        ts(g.period.start()), ts(end), ts(at)],
            )
            .map_err(|e| match driver(e) {
                StoreError::Conflict(_) => StoreError::NotFound("tenant"),
                other => other,
            })?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn support_grants_impl(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<SupportGrant>> {
        let (tenant, cipher) = (tenant.clone(), self.cipher());
        self.read(move |c| {
            let mut s = c
                .prepare_cached("SELECT id, tenant_id, operator_user_id, reason, granted_by, valid_from, valid_to, revoked_at FROM support_grants WHERE tenant_id = ?1 ORDER BY valid_from DESC, id")
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant.as_str()], |r| {
                    let id: String = r.get(0)?;
                    let reason = cipher
                        .open(Some(&tenant), &format!("support-reason/{id}"), &r.get::<_, Vec<u8>>(3)?)
                        .map_err(cipher_err)?;
                    Ok(SupportGrant {
                        id,
                        tenant: tenant_id(r, 1)?,
                        operator: UserId(r.get(2)?),
                        reason,
                        granted_by: r.get::<_, Option<String>>(4)?.map(PersonId::parse).transpose().map_err(bad)?,
                        period: period(r, 5, 6)?,
                        revoked_at: r.get::<_, Option<i64>>(7)?.map(from_ts).transpose()?,
                    })
                })
                .map_err(driver)?,
            )
        })
        .await
    }

    pub(crate) async fn revoke_support_grant_impl(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE support_grants SET revoked_at = ?3 WHERE tenant_id = ?1 AND id = ?2 AND revoked_at IS NULL",
                    params![tenant, id, ts(at)],
                )
                .map_err(driver)?;
            expect_changed(n, "support grant")
        })
        .await
    }

    pub(crate) async fn set_withheld_impl(
        &self,
        tenant: &TenantId,
        rt: &str,
        id: &str,
        withheld: Option<&Withheld>,
    ) -> StoreResult<()> {
        let (tenant, rt, id, w, cipher) = (
            tenant.clone(),
            rt.to_string(),
            id.to_string(),
            withheld.cloned(),
            self.cipher(),
        );
        self.write(move |tx| {
            match w {
                None => {
                    let n = tx
                        .execute(
                            "DELETE FROM withheld_records WHERE tenant_id = ?1 AND type = ?2 AND id = ?3",
                            params![tenant.as_str(), rt, id],
                        )
                        .map_err(driver)?;
                    expect_changed(n, "withheld record")?;
                }
                Some(w) => {
                    let reason = cipher.seal(Some(&tenant), &format!("withheld-reason/{rt}/{id}"), &w.reason)?;
                    tx.execute(
                        "INSERT INTO withheld_records (tenant_id, type, id, patient_id, reason, withheld_by, withheld_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (tenant_id, type, id) DO UPDATE SET reason = excluded.reason, withheld_by = excluded.withheld_by, withheld_at = excluded.withheld_at",
                        params![tenant.as_str(), rt, id, w.patient.as_str(), reason, w.by.as_str(), ts(w.at)],
                    )
                    .map_err(driver)?;
                }
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn withheld_for_patient_impl(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<Withheld>> {
        let (tenant, patient, cipher) = (tenant.clone(), patient.clone(), self.cipher());
        self.read(move |c| {
            let mut s = c
                .prepare_cached("SELECT type, id, patient_id, reason, withheld_by, withheld_at FROM withheld_records WHERE tenant_id = ?1 AND patient_id = ?2 ORDER BY withheld_at")
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant.as_str(), patient.as_str()], |r| {
                    let (rt, id): (String, String) = (r.get(0)?, r.get(1)?);
                    let reason = cipher
                        .open(Some(&tenant), &format!("withheld-reason/{rt}/{id}"), &r.get::<_, Vec<u8>>(3)?)
                        .map_err(cipher_err)?;
                    Ok(Withheld {
                        resource_type: rt,
                        id,
                        patient: person_id(r, 2)?,
                        reason,
                        by: person_id(r, 4)?,
                        at: from_ts(r.get(5)?)?,
                    })
                })
                .map_err(driver)?,
            )
        })
        .await
    }
}
