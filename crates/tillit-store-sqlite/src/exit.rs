//! A tenant's exit: paging through its current records for an export, and removing every
//! row it has (its audit log too) under a tombstone. Also the counts behind anonymous
//! statistics.
//!
//! Removal finds the tables to clear in the schema itself (every table with a `tenant_id`
//! column, then `tenants`), so a table added by a later migration is not forgotten. Table
//! names come from `sqlite_schema`, never from a caller; values are parameters.

use crate::conn::{SqliteStore, driver};
use crate::queries::{collect, from_ts, tenant_id, ts};
use crate::resources::{ms, row_version};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;
use tillit_core::TenantId;
use tillit_store::*;
use time::OffsetDateTime;

/// An SQL identifier, quoted.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn is_foreign_key_failure(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

impl SqliteStore {
    pub(crate) async fn current_resources_page_impl(
        &self,
        tenant: &TenantId,
        rt: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredVersion>> {
        let (tenant, rt, after) = (
            tenant.to_string(),
            rt.to_string(),
            after_id.map(str::to_string),
        );
        self.read(move |c| {
            let mut s = c
                .prepare(
                    "SELECT v.type, v.id, v.version, v.patient_id, v.category, v.last_updated,
                            v.deleted, v.key_scope, v.body
                     FROM resources r JOIN resource_versions v
                       ON v.tenant_id = r.tenant_id AND v.type = r.type AND v.id = r.id
                      AND v.version = r.version
                     WHERE r.tenant_id = ?1 AND r.type = ?2 AND r.deleted = 0
                       AND (?3 IS NULL OR r.id > ?3)
                     ORDER BY r.id LIMIT ?4",
                )
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant, rt, after, limit], row_version)
                    .map_err(driver)?,
            )
        })
        .await
    }

    pub(crate) async fn remove_tenant_impl(
        &self,
        tenant: &TenantId,
        draft: &str,
        at: OffsetDateTime,
    ) -> StoreResult<TenantRemoval> {
        let (tenant, draft) = (tenant.to_string(), draft.to_string());
        self.write(move |tx| {
            let operator: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM operator_tenant WHERE tenant_id = ?1)",
                    params![tenant],
                    |r| r.get(0),
                )
                .map_err(driver)?;
            if operator {
                return Err(StoreError::Invalid(
                    "the operator tenant (the platform's own) cannot be deleted".into(),
                ));
            }
            let name: String = tx
                .query_row(
                    "SELECT name FROM tenants WHERE id = ?1",
                    params![tenant],
                    |r| r.get(0),
                )
                .optional()
                .map_err(driver)?
                .ok_or(StoreError::NotFound("tenant"))?;
            // Removed rows are overwritten, not left in free pages (sealed data is shredded
            // with its keys; this also clears the pseudonymous ids and times kept in clear).
            tx.pragma_update(None, "secure_delete", "ON")
                .map_err(driver)?;
            let tables: Vec<String> = {
                let mut s = tx
                    .prepare(
                        "SELECT m.name FROM sqlite_schema m, pragma_table_info(m.name) p
                         WHERE m.type = 'table' AND p.name = 'tenant_id'
                           AND m.name != 'deleted_tenants'
                         ORDER BY m.name",
                    )
                    .map_err(driver)?;
                collect(s.query_map([], |r| r.get(0)).map_err(driver)?)?
            };
            let count = |table: &str| -> StoreResult<u64> {
                tx.query_row(
                    &format!(
                        "SELECT COUNT(*) FROM {} WHERE tenant_id = ?1",
                        quoted(table)
                    ),
                    params![tenant],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(driver)
            };
            let mut removed = BTreeMap::new();
            for t in &tables {
                let n = count(t)?;
                if n > 0 {
                    removed.insert(t.clone(), n);
                }
            }
            removed.insert("tenants".to_string(), 1);
            let removed_json =
                serde_json::to_string(&removed).map_err(|e| StoreError::Invalid(e.to_string()))?;
            // The tombstone first: it is what lets the append-only triggers allow the removal.
            tx.execute(
                "INSERT INTO deleted_tenants (tenant_id, name, deleted_at, draft, removed)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant, name, ts(at), draft, removed_json],
            )
            .map_err(driver)?;
            // Children before parents: a delete a foreign key refuses waits for a later
            // pass; triggers that touch other tables (the access generation) are swept up
            // by the next pass.
            let mut passes = 0;
            loop {
                let mut left = false;
                let mut progress = false;
                for t in &tables {
                    match tx.execute(
                        &format!("DELETE FROM {} WHERE tenant_id = ?1", quoted(t)),
                        params![tenant],
                    ) {
                        Ok(n) => progress |= n > 0,
                        Err(e) if is_foreign_key_failure(&e) => left = true,
                        Err(e) => return Err(driver(e)),
                    }
                }
                for t in &tables {
                    left |= count(t)? > 0;
                }
                if !left {
                    break;
                }
                passes += 1;
                if !progress || passes > tables.len() {
                    return Err(StoreError::Invalid(format!(
                        "the rows of tenant {tenant} could not all be removed; nothing was"
                    )));
                }
            }
            tx.execute("DELETE FROM tenants WHERE id = ?1", params![tenant])
                .map_err(driver)?;
            Ok(TenantRemoval { rows: removed })
        })
        .await
    }

    pub(crate) async fn deleted_tenant_impl(
        &self,
        id_or_name: &str,
    ) -> StoreResult<Option<DeletedTenant>> {
        let key = id_or_name.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT tenant_id, name, deleted_at, draft, removed FROM deleted_tenants
                 WHERE tenant_id = ?1 OR name = ?1 ORDER BY deleted_at DESC LIMIT 1",
                params![key],
                |r| {
                    let removed: String = r.get(4)?;
                    Ok(DeletedTenant {
                        id: tenant_id(r, 0)?,
                        name: r.get(1)?,
                        deleted_at: from_ts(r.get(2)?)?,
                        draft: r.get(3)?,
                        removed: TenantRemoval {
                            rows: serde_json::from_str(&removed).map_err(crate::queries::bad)?,
                        },
                    })
                },
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    pub(crate) async fn resource_creations_impl(
        &self,
        tenant: &TenantId,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<CreationCount>> {
        let (tenant, from, to) = (tenant.to_string(), from.map(ms), to.map(ms));
        self.read(move |c| {
            let mut s = c
                .prepare(
                    "SELECT patient_id, category, last_updated / 86400000 AS day, COUNT(*)
                     FROM resource_versions
                     WHERE tenant_id = ?1 AND version = 1
                       AND (?2 IS NULL OR last_updated >= ?2) AND (?3 IS NULL OR last_updated < ?3)
                     GROUP BY patient_id, category, day",
                )
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant, from, to], |r| {
                    let day: i64 = r.get(2)?;
                    let julian = i32::try_from(day.saturating_add(2_440_588)).unwrap_or(i32::MAX);
                    Ok(CreationCount {
                        patient: r.get(0)?,
                        category: r.get(1)?,
                        day: time::Date::from_julian_day(julian).map_err(crate::queries::bad)?,
                        count: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })
                .map_err(driver)?,
            )
        })
        .await
    }
}
