//! FHIR resource storage: versions, current rows, search indexes, queries.

use crate::conn::{SqliteStore, driver};
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, Row, Transaction, params, params_from_iter};
use tillit_core::TenantId;
use tillit_store::*;
use time::OffsetDateTime;

pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_ms(v: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

const META_COLS: &str = "type, id, version, patient_id, category, last_updated, deleted";

fn row_meta(r: &Row<'_>) -> rusqlite::Result<ResourceMeta> {
    Ok(ResourceMeta {
        resource_type: r.get(0)?,
        id: r.get(1)?,
        version: r.get(2)?,
        patient: r.get(3)?,
        category: r.get(4)?,
        last_updated: from_ms(r.get(5)?)?,
        deleted: r.get(6)?,
    })
}

pub(crate) fn row_version(r: &Row<'_>) -> rusqlite::Result<StoredVersion> {
    let scope: String = r.get(7)?;
    Ok(StoredVersion {
        meta: row_meta(r)?,
        key_scope: if scope == "patient" {
            KeyScope::Patient
        } else {
            KeyScope::Tenant
        },
        body: r.get(8)?,
    })
}

fn write_one(tx: &Transaction<'_>, tenant: &str, w: &ResourceWrite) -> StoreResult<()> {
    let m = &w.meta;
    let current: Option<i64> = tx
        .query_row(
            "SELECT version FROM resources WHERE tenant_id = ?1 AND type = ?2 AND id = ?3",
            params![tenant, m.resource_type, m.id],
            |r| r.get(0),
        )
        .optional()
        .map_err(driver)?;
    if current != w.expected {
        return Err(StoreError::Conflict(format!(
            "{}/{} is at version {} (expected {})",
            m.resource_type,
            m.id,
            current.map_or_else(|| "none".to_string(), |v| v.to_string()),
            w.expected
                .map_or_else(|| "none".to_string(), |v| v.to_string())
        )));
    }
    tx.execute(
        "INSERT INTO resource_versions (tenant_id, type, id, version, patient_id, category, last_updated, deleted, key_scope, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![tenant, m.resource_type, m.id, m.version, m.patient, m.category, ms(m.last_updated), m.deleted, w.key_scope.code(), w.body],
    )
    .map_err(driver)?;
    tx.execute(
        "INSERT INTO resources (tenant_id, type, id, version, patient_id, category, last_updated, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (tenant_id, type, id) DO UPDATE SET version = excluded.version, patient_id = excluded.patient_id,
           category = excluded.category, last_updated = excluded.last_updated, deleted = excluded.deleted",
        params![tenant, m.resource_type, m.id, m.version, m.patient, m.category, ms(m.last_updated), m.deleted],
    )
    .map_err(driver)?;
    if let Some(derived) = &w.derived {
        let source = format!("{}/{}", m.resource_type, m.id);
        crate::access::write_derived(tx, tenant, &source, derived, m.last_updated)?;
    }
    for table in ["search_tokens", "search_dates", "search_refs"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE tenant_id = ?1 AND type = ?2 AND id = ?3"),
            params![tenant, m.resource_type, m.id],
        )
        .map_err(driver)?;
    }
    let mut tok = tx
        .prepare_cached("INSERT INTO search_tokens (tenant_id, type, id, param, full_hash, code_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .map_err(driver)?;
    let mut date = tx
        .prepare_cached("INSERT INTO search_dates (tenant_id, type, id, param, low, high) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .map_err(driver)?;
    let mut reference = tx
        .prepare_cached("INSERT INTO search_refs (tenant_id, type, id, param, target_type, target_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .map_err(driver)?;
    for row in &w.index {
        match row {
            IndexRow::Token { param, full, code } => {
                tok.execute(params![
                    tenant,
                    m.resource_type,
                    m.id,
                    param,
                    full.to_vec(),
                    code.to_vec()
                ])
                .map_err(driver)?;
            }
            IndexRow::Date { param, low, high } => {
                date.execute(params![tenant, m.resource_type, m.id, param, low, high])
                    .map_err(driver)?;
            }
            IndexRow::Reference {
                param,
                target_type,
                target_id,
            } => {
                reference
                    .execute(params![
                        tenant,
                        m.resource_type,
                        m.id,
                        param,
                        target_type,
                        target_id
                    ])
                    .map_err(driver)?;
            }
        }
    }
    Ok(())
}

/// SQL for one criterion against the current-row alias `r`, with its parameters.
fn criterion_sql(c: &Criterion, args: &mut Vec<Sql>) -> String {
    let owner = "x.tenant_id = r.tenant_id AND x.type = r.type AND x.id = r.id";
    match c {
        Criterion::Id(id) => {
            args.push(Sql::Text(id.clone()));
            "r.id = ?".into()
        }
        Criterion::LastUpdated { prefix, low, high } => date_sql(
            "r.last_updated",
            "r.last_updated + 1",
            *prefix,
            *low,
            *high,
            args,
        ),
        Criterion::TokenFull { param, hash } => {
            args.push(Sql::Text(param.clone()));
            args.push(Sql::Blob(hash.to_vec()));
            format!(
                "EXISTS (SELECT 1 FROM search_tokens x WHERE {owner} AND x.param = ? AND x.full_hash = ?)"
            )
        }
        Criterion::TokenCode { param, hash } => {
            args.push(Sql::Text(param.clone()));
            args.push(Sql::Blob(hash.to_vec()));
            format!(
                "EXISTS (SELECT 1 FROM search_tokens x WHERE {owner} AND x.param = ? AND x.code_hash = ?)"
            )
        }
        Criterion::Reference {
            param,
            target_type,
            target_id,
        } => {
            args.push(Sql::Text(param.clone()));
            args.push(Sql::Text(target_type.clone()));
            args.push(Sql::Text(target_id.clone()));
            format!(
                "EXISTS (SELECT 1 FROM search_refs x WHERE {owner} AND x.param = ? AND x.target_type = ? AND x.target_id = ?)"
            )
        }
        Criterion::Date {
            param,
            prefix,
            low,
            high,
        } => {
            args.push(Sql::Text(param.clone()));
            let cond = date_sql("x.low", "x.high", *prefix, *low, *high, args);
            format!(
                "EXISTS (SELECT 1 FROM search_dates x WHERE {owner} AND x.param = ? AND {cond})"
            )
        }
    }
}

/// The ids matching one criterion, as a subquery to drive a search from.
fn driver_sql(tenant: &str, rt: &str, c: &Criterion) -> (String, Vec<Sql>) {
    let base = vec![Sql::Text(tenant.to_string()), Sql::Text(rt.to_string())];
    let owner = "x.tenant_id = ? AND x.type = ?";
    match c {
        Criterion::Id(id) => ("SELECT ? AS id".into(), vec![Sql::Text(id.clone())]),
        Criterion::Reference {
            param,
            target_type,
            target_id,
        } => {
            let mut a = base;
            a.extend([
                Sql::Text(param.clone()),
                Sql::Text(target_type.clone()),
                Sql::Text(target_id.clone()),
            ]);
            (
                format!(
                    "SELECT DISTINCT x.id FROM search_refs x WHERE {owner} AND x.param = ? AND x.target_type = ? AND x.target_id = ?"
                ),
                a,
            )
        }
        Criterion::TokenFull { param, hash } => {
            let mut a = base;
            a.extend([Sql::Text(param.clone()), Sql::Blob(hash.to_vec())]);
            (
                format!(
                    "SELECT DISTINCT x.id FROM search_tokens x WHERE {owner} AND x.param = ? AND x.full_hash = ?"
                ),
                a,
            )
        }
        Criterion::TokenCode { param, hash } => {
            let mut a = base;
            a.extend([Sql::Text(param.clone()), Sql::Blob(hash.to_vec())]);
            (
                format!(
                    "SELECT DISTINCT x.id FROM search_tokens x WHERE {owner} AND x.param = ? AND x.code_hash = ?"
                ),
                a,
            )
        }
        // Not used as drivers (see the ranking in the search).
        _ => ("SELECT NULL AS id WHERE 0".into(), Vec::new()),
    }
}

/// Range semantics on half-open ranges `[lo, hi)` against the search value `[low, high)`.
fn date_sql(
    lo: &str,
    hi: &str,
    prefix: DatePrefix,
    low: i64,
    high: i64,
    args: &mut Vec<Sql>,
) -> String {
    match prefix {
        DatePrefix::Eq => {
            args.extend([Sql::Integer(low), Sql::Integer(high)]);
            format!("({lo} >= ? AND {hi} <= ?)")
        }
        DatePrefix::Ne => {
            args.extend([Sql::Integer(low), Sql::Integer(high)]);
            format!("NOT ({lo} >= ? AND {hi} <= ?)")
        }
        DatePrefix::Gt => {
            args.push(Sql::Integer(high));
            format!("{hi} > ?")
        }
        DatePrefix::Lt => {
            args.push(Sql::Integer(low));
            format!("{lo} < ?")
        }
        DatePrefix::Ge => {
            args.push(Sql::Integer(low));
            format!("{hi} > ?")
        }
        DatePrefix::Le => {
            args.push(Sql::Integer(high));
            format!("{lo} < ?")
        }
    }
}

impl SqliteStore {
    pub(crate) async fn write_resources_impl(
        &self,
        tenant: &TenantId,
        writes: Vec<ResourceWrite>,
    ) -> StoreResult<()> {
        let tenant = tenant.to_string();
        self.write(move |tx| {
            for w in &writes {
                write_one(tx, &tenant, w)?;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn current_resource_impl(
        &self,
        tenant: &TenantId,
        rt: &str,
        id: &str,
    ) -> StoreResult<Option<StoredVersion>> {
        let (tenant, rt, id) = (tenant.to_string(), rt.to_string(), id.to_string());
        self.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT v.{}, v.key_scope, v.body FROM resources r JOIN resource_versions v
                     ON v.tenant_id = r.tenant_id AND v.type = r.type AND v.id = r.id AND v.version = r.version
                     WHERE r.tenant_id = ?1 AND r.type = ?2 AND r.id = ?3",
                    META_COLS.replace(", ", ", v.")
                ),
                params![tenant, rt, id],
                row_version,
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    pub(crate) async fn resource_version_impl(
        &self,
        tenant: &TenantId,
        rt: &str,
        id: &str,
        version: i64,
    ) -> StoreResult<Option<StoredVersion>> {
        let (tenant, rt, id) = (tenant.to_string(), rt.to_string(), id.to_string());
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {META_COLS}, key_scope, body FROM resource_versions WHERE tenant_id = ?1 AND type = ?2 AND id = ?3 AND version = ?4"),
                params![tenant, rt, id, version],
                row_version,
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    pub(crate) async fn resource_versions_impl(
        &self,
        tenant: &TenantId,
        rt: &str,
        versions: &[(String, i64)],
    ) -> StoreResult<Vec<StoredVersion>> {
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let (tenant, rt, versions) = (tenant.to_string(), rt.to_string(), versions.to_vec());
        self.read(move |c| {
            let mut out = Vec::with_capacity(versions.len());
            // SQLite's parameter limit is generous, but pages are capped anyway; chunk to be safe.
            for chunk in versions.chunks(200) {
                let values = vec!["(?, ?)"; chunk.len()].join(", ");
                let sql = format!(
                    "SELECT {META_COLS}, key_scope, body FROM resource_versions WHERE tenant_id = ? AND type = ? AND (id, version) IN (VALUES {values})"
                );
                let mut args: Vec<Sql> = vec![Sql::Text(tenant.clone()), Sql::Text(rt.clone())];
                for (id, v) in chunk {
                    args.push(Sql::Text(id.clone()));
                    args.push(Sql::Integer(*v));
                }
                let mut s = c.prepare(&sql).map_err(driver)?;
                let rows = s.query_map(params_from_iter(args), row_version).map_err(driver)?;
                for r in rows {
                    out.push(r.map_err(driver)?);
                }
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn resource_history_impl(
        &self,
        tenant: &TenantId,
        rt: &str,
        id: Option<&str>,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> StoreResult<Vec<StoredVersion>> {
        let (tenant, rt, id) = (tenant.to_string(), rt.to_string(), id.map(str::to_string));
        let since = since.map(ms);
        self.read(move |c| {
            let mut s = c
                .prepare(&format!(
                    "SELECT {META_COLS}, key_scope, body FROM resource_versions
                     WHERE tenant_id = ?1 AND type = ?2 AND (?3 IS NULL OR id = ?3) AND (?4 IS NULL OR last_updated >= ?4)
                     ORDER BY last_updated DESC, version DESC LIMIT ?5"
                ))
                .map_err(driver)?;
            let rows = s.query_map(params![tenant, rt, id, since, limit], row_version).map_err(driver)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(driver)
        })
        .await
    }

    pub(crate) async fn search_resources_impl(
        &self,
        tenant: &TenantId,
        q: &Query,
    ) -> StoreResult<Vec<ResourceMeta>> {
        let (tenant, q) = (tenant.to_string(), q.clone());
        self.read(move |c| {
            let mut args: Vec<Sql> = Vec::new();
            let cols = META_COLS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ");
            // Drive the query from the most selective single criterion (an id, a reference or
            // a token), so it reads only the matching index entries instead of every resource
            // of the type.
            let rank = |c: &Criterion| match c {
                Criterion::Id(_) => 0,
                Criterion::Reference { .. } => 1,
                Criterion::TokenFull { .. } => 2,
                Criterion::TokenCode { .. } => 3,
                _ => 9,
            };
            let driver = q
                .all_of
                .iter()
                .enumerate()
                .filter_map(|(i, g)| match g.as_slice() {
                    [one] if rank(one) < 9 => Some((rank(one), i)),
                    _ => None,
                })
                .min()
                .map(|(_, i)| i);
            let mut sql = format!("SELECT {cols} FROM resources r");
            if let Some(i) = driver
                && let Some([c]) = q.all_of.get(i).map(Vec::as_slice)
            {
                let (sub, sub_args) = driver_sql(&tenant, &q.resource_type, c);
                sql.push_str(&format!(" JOIN ({sub}) d ON r.id = d.id"));
                args.extend(sub_args);
            }
            sql.push_str(" WHERE r.tenant_id = ? AND r.type = ? AND r.deleted = 0");
            args.push(Sql::Text(tenant.clone()));
            args.push(Sql::Text(q.resource_type.clone()));
            for (i, any_of) in q.all_of.iter().enumerate() {
                if any_of.is_empty() || Some(i) == driver {
                    continue;
                }
                let parts: Vec<String> = any_of.iter().map(|c| criterion_sql(c, &mut args)).collect();
                sql.push_str(&format!(" AND ({})", parts.join(" OR ")));
            }
            let order = match (q.sort, &q.sort_param) {
                (Some((SortKey::DateParam, desc)), Some(param)) => {
                    args.push(Sql::Text(param.clone()));
                    let dir = if desc { "DESC" } else { "ASC" };
                    format!(
                        " ORDER BY (SELECT {} FROM search_dates x WHERE x.tenant_id = r.tenant_id AND x.type = r.type AND x.id = r.id AND x.param = ?) {dir} NULLS LAST, r.id",
                        if desc { "MAX(x.high)" } else { "MIN(x.low)" }
                    )
                }
                (Some((SortKey::LastUpdated, true)), _) => " ORDER BY r.last_updated DESC, r.id".into(),
                _ => " ORDER BY r.last_updated ASC, r.id".into(),
            };
            sql.push_str(&order);
            args.push(Sql::Integer(i64::from(q.limit)));
            sql.push_str(" LIMIT ?");
            let mut s = c.prepare(&sql).map_err(crate::conn::driver)?;
            let rows = s.query_map(params_from_iter(args), row_meta).map_err(crate::conn::driver)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(crate::conn::driver)
        })
        .await
    }

    pub(crate) async fn count_resources_impl(
        &self,
        tenant: &TenantId,
        rt: &str,
    ) -> StoreResult<u64> {
        let (tenant, rt) = (tenant.to_string(), rt.to_string());
        self.read(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM resources WHERE tenant_id = ?1 AND type = ?2 AND deleted = 0",
                params![tenant, rt],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(driver)
        })
        .await
    }

    pub(crate) async fn category_rules_impl(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<CategoryRuleRow>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let mut s = c
                .prepare("SELECT resource_type, system, code_prefix, category FROM category_rules WHERE tenant_id = ?1 ORDER BY position")
                .map_err(driver)?;
            let rows = s
                .query_map([tenant], |r| Ok(CategoryRuleRow { resource_type: r.get(0)?, system: r.get(1)?, code_prefix: r.get(2)?, category: r.get(3)? }))
                .map_err(driver)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(driver)
        })
        .await
    }

    pub(crate) async fn set_category_rules_impl(
        &self,
        tenant: &TenantId,
        rules: &[CategoryRuleRow],
    ) -> StoreResult<()> {
        let (tenant, rules) = (tenant.to_string(), rules.to_vec());
        self.write(move |tx| {
            tx.execute("DELETE FROM category_rules WHERE tenant_id = ?1", [&tenant]).map_err(driver)?;
            for (i, r) in rules.iter().enumerate() {
                tx.execute(
                    "INSERT INTO category_rules (tenant_id, position, resource_type, system, code_prefix, category) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![tenant, i64::try_from(i).unwrap_or(i64::MAX), r.resource_type, r.system, r.code_prefix, r.category],
                )
                .map_err(driver)?;
            }
            Ok(())
        })
        .await
    }
}
