//! The patient's rights: restricted records (GDPR art. 18), the tenant's retained categories
//! and the database part of an erasure (art. 17). See docs/design/patient-rights.md.

use crate::conn::{SqliteStore, driver};
use crate::queries::{cipher_err, collect, expect_changed, from_ts, person_id, ts};
use rusqlite::{OptionalExtension, params};
use tillit_core::{PersonId, TenantId};
use tillit_store::*;
use time::OffsetDateTime;

fn reason_context(rt: &str, id: &str) -> String {
    format!("restriction-reason/{rt}/{id}")
}

impl SqliteStore {
    pub(crate) async fn set_restricted_impl(
        &self,
        tenant: &TenantId,
        rt: &str,
        id: &str,
        restriction: Option<&Restriction>,
    ) -> StoreResult<()> {
        let (tenant, rt, id, r, cipher) = (
            tenant.clone(),
            rt.to_string(),
            id.to_string(),
            restriction.cloned(),
            self.cipher(),
        );
        self.write(move |tx| {
            match r {
                None => {
                    let n = tx
                        .execute(
                            "DELETE FROM restricted_records WHERE tenant_id = ?1 AND type = ?2 AND id = ?3",
                            params![tenant.as_str(), rt, id],
                        )
                        .map_err(driver)?;
                    expect_changed(n, "restricted record")?;
                }
                Some(r) => {
                    let reason = cipher.seal(Some(&tenant), &reason_context(&rt, &id), &r.reason)?;
                    tx.execute(
                        "INSERT INTO restricted_records (tenant_id, type, id, patient_id, reason, restricted_by, restricted_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (tenant_id, type, id) DO UPDATE SET reason = excluded.reason,
                           restricted_by = excluded.restricted_by, restricted_at = excluded.restricted_at",
                        params![tenant.as_str(), rt, id, r.patient.as_str(), reason, r.by.as_str(), ts(r.at)],
                    )
                    .map_err(driver)?;
                }
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn restricted_records_impl(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<Restriction>> {
        let (tenant, cipher) = (tenant.clone(), self.cipher());
        self.read(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT type, id, patient_id, reason, restricted_by, restricted_at FROM restricted_records
                     WHERE tenant_id = ?1 ORDER BY restricted_at, type, id",
                )
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant.as_str()], |r| {
                    let (rt, id): (String, String) = (r.get(0)?, r.get(1)?);
                    let reason = cipher
                        .open(Some(&tenant), &reason_context(&rt, &id), &r.get::<_, Vec<u8>>(3)?)
                        .map_err(cipher_err)?;
                    Ok(Restriction {
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

    pub(crate) async fn retained_categories_impl(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Option<Vec<String>>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let row: Option<String> = c
                .query_row(
                    "SELECT categories FROM retention_rules WHERE tenant_id = ?1",
                    params![tenant],
                    |r| r.get(0),
                )
                .optional()
                .map_err(driver)?;
            Ok(row.map(|s| s.split_whitespace().map(str::to_string).collect()))
        })
        .await
    }

    pub(crate) async fn set_retained_categories_impl(
        &self,
        tenant: &TenantId,
        categories: &[String],
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        if categories
            .iter()
            .any(|c| c.is_empty() || c.contains(char::is_whitespace))
        {
            return Err(StoreError::Invalid("a category code has no spaces".into()));
        }
        let (tenant, list) = (tenant.to_string(), categories.join(" "));
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO retention_rules (tenant_id, categories, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id) DO UPDATE SET categories = excluded.categories, updated_at = excluded.updated_at",
                params![tenant, list, ts(at)],
            )
            .map_err(|e| match driver(e) {
                StoreError::Conflict(_) => StoreError::NotFound("tenant"),
                other => other,
            })?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn patient_versions_impl(
        &self,
        tenant: &TenantId,
        patient: &PersonId,
    ) -> StoreResult<Vec<StoredVersion>> {
        let (tenant, patient) = (tenant.to_string(), patient.to_string());
        self.read(move |c| {
            // Every version of every resource whose current version is in the compartment, and
            // every version that was in it (a resource may have moved).
            let mut s = c
                .prepare(
                    "SELECT v.type, v.id, v.version, v.patient_id, v.category, v.last_updated, v.deleted, v.key_scope, v.body
                     FROM resource_versions v
                     WHERE v.tenant_id = ?1 AND (v.patient_id = ?2 OR EXISTS (
                         SELECT 1 FROM resources r WHERE r.tenant_id = v.tenant_id AND r.type = v.type
                           AND r.id = v.id AND r.patient_id = ?2))
                     ORDER BY v.type, v.id, v.version",
                )
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant, patient], crate::resources::row_version)
                    .map_err(driver)?,
            )
        })
        .await
    }

    pub(crate) async fn erase_patient_data_impl(
        &self,
        tenant: &TenantId,
        erasure: &PatientErasure,
    ) -> StoreResult<ErasureDone> {
        let (tenant, e) = (tenant.to_string(), erasure.clone());
        self.write(move |tx| {
            // What is removed is overwritten, not left in free pages.
            tx.pragma_update(None, "secure_delete", "ON")
                .map_err(driver)?;
            let mut done = ErasureDone::default();
            for (rt, id) in &e.remove {
                let versions = tx
                    .execute(
                        "DELETE FROM resource_versions WHERE tenant_id = ?1 AND type = ?2 AND id = ?3",
                        params![tenant, rt, id],
                    )
                    .map_err(driver)?;
                done.versions_removed += u64::try_from(versions).unwrap_or(0);
                let current = tx
                    .execute(
                        "DELETE FROM resources WHERE tenant_id = ?1 AND type = ?2 AND id = ?3",
                        params![tenant, rt, id],
                    )
                    .map_err(driver)?;
                done.resources_removed += u64::try_from(current).unwrap_or(0);
                for table in [
                    "search_tokens",
                    "search_dates",
                    "search_refs",
                    "withheld_records",
                    "restricted_records",
                ] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE tenant_id = ?1 AND type = ?2 AND id = ?3"),
                        params![tenant, rt, id],
                    )
                    .map_err(driver)?;
                }
                // What the resource derived (a Consent's blocks, a CareTeam's relationships)
                // goes with it, as with a deletion.
                let source = format!("{rt}/{id}");
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
            }
            for v in &e.reseal {
                let n = tx
                    .execute(
                        "UPDATE resource_versions SET body = ?5, key_scope = 'tenant'
                         WHERE tenant_id = ?1 AND type = ?2 AND id = ?3 AND version = ?4",
                        params![tenant, v.resource_type, v.id, v.version, v.body],
                    )
                    .map_err(driver)?;
                expect_changed(n, "resource version")?;
                done.versions_resealed += 1;
            }
            tx.execute(
                "UPDATE persons SET sealed_profile = NULL, national_id_index = NULL
                 WHERE tenant_id = ?1 AND id = ?2 AND kind = 'patient'",
                params![tenant, e.patient.as_str()],
            )
            .map_err(driver)?;
            Ok(done)
        })
        .await
    }
}
