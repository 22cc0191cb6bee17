//! The audit log in SQLite: `audit_events` (append-only), each tenant's compact range in
//! `audit_heads`, the hashes of perfect subtrees of 256 leaves and up in `audit_nodes` (so an
//! inclusion or consistency proof reads O(log n) nodes and a few hundred leaves, however
//! long the log), and signed checkpoints in `audit_checkpoints`.

use crate::conn::{SqliteStore, driver};
use crate::queries::{from_ts, insert_event, new_id, opt_ts, seal_opt, tenant_id, ts};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use tillit_audit::tree::{self, RangeHasher};
use tillit_audit::verify::{CompactRange, entry_leaf, payload_hash};
use tillit_audit::{Hash, merkle};
use tillit_core::TenantId;
use tillit_store::*;

/// Subtrees of `2^NODE_LEVEL` leaves and more are stored.
const NODE_LEVEL: u32 = 8;
const NODE_LEAVES: u64 = 1 << NODE_LEVEL;

/// The sealing context of an event's payload: its sequence number, so payloads cannot be
/// swapped between entries.
fn payload_context(seq: u64) -> String {
    format!("audit-event/{seq}")
}

fn hash_of(bytes: &[u8]) -> StoreResult<Hash> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt("an audit hash is not 32 bytes".into()))
}

fn seq_i64(seq: u64) -> StoreResult<i64> {
    i64::try_from(seq).map_err(|_| StoreError::Invalid(format!("sequence number {seq}")))
}

fn load_range(conn: &Connection, tenant: &str) -> StoreResult<CompactRange> {
    let frontier: Option<Vec<u8>> = conn
        .query_row(
            "SELECT frontier FROM audit_heads WHERE tenant_id = ?1",
            params![tenant],
            |r| r.get(0),
        )
        .optional()
        .map_err(driver)?;
    match frontier {
        None => Ok(CompactRange::default()),
        Some(b) => CompactRange::from_bytes(&b)
            .ok_or_else(|| StoreError::Corrupt("the audit tree head is unreadable".into())),
    }
}

/// Hashes of stored ranges of one tenant's tree.
struct StoredTree<'c> {
    conn: &'c Connection,
    tenant: &'c str,
}

impl StoredTree<'_> {
    fn leaves(&self, start: u64, end: u64) -> StoreResult<Vec<Hash>> {
        let mut s = self
            .conn
            .prepare_cached(
                "SELECT seq, payload_hash FROM audit_events
                 WHERE tenant_id = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
            )
            .map_err(driver)?;
        let rows = s
            .query_map(params![self.tenant, seq_i64(start)?, seq_i64(end)?], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(driver)?;
        let mut out = Vec::new();
        for (i, row) in rows.enumerate() {
            let (seq, h) = row.map_err(driver)?;
            if u64::try_from(seq).ok() != Some(start + i as u64) {
                return Err(StoreError::Corrupt(format!(
                    "audit entry {} is missing",
                    start + i as u64
                )));
            }
            out.push(entry_leaf(self.tenant, start + i as u64, &hash_of(&h)?));
        }
        if out.len() as u64 != end - start {
            return Err(StoreError::Corrupt(format!(
                "audit entries {start}..{end} are incomplete"
            )));
        }
        Ok(out)
    }
}

impl RangeHasher for StoredTree<'_> {
    type Error = StoreError;

    fn range_hash(&mut self, start: u64, end: u64) -> StoreResult<Hash> {
        let n = end - start;
        if n.is_power_of_two() && n >= NODE_LEAVES && start.is_multiple_of(n) {
            let level = n.trailing_zeros();
            let stored: Option<Vec<u8>> = self
                .conn
                .prepare_cached(
                    "SELECT hash FROM audit_nodes WHERE tenant_id = ?1 AND level = ?2 AND idx = ?3",
                )
                .map_err(driver)?
                .query_row(params![self.tenant, level, seq_i64(start >> level)?], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(driver)?;
            if let Some(h) = stored {
                return hash_of(&h);
            }
        }
        if n <= NODE_LEAVES {
            return Ok(merkle::root(&self.leaves(start, end)?));
        }
        let k = tree::split(n);
        let left = self.range_hash(start, start + k)?;
        let right = self.range_hash(start + k, end)?;
        Ok(tree::join(&left, &right))
    }
}

fn proof_error(e: tree::ProofError<StoreError>) -> StoreError {
    match e {
        tree::ProofError::Tree(m) => StoreError::Invalid(m.to_string()),
        tree::ProofError::Source(s) => s,
    }
}

fn head_size(conn: &Connection, tenant: &str) -> StoreResult<u64> {
    Ok(load_range(conn, tenant)?.size())
}

fn check_size(conn: &Connection, tenant: &str, size: u64) -> StoreResult<()> {
    let have = head_size(conn, tenant)?;
    if size > have {
        return Err(StoreError::Invalid(format!(
            "the log has {have} entries, not {size}"
        )));
    }
    Ok(())
}

fn row_event(
    cipher: &dyn FieldCipher,
    tenant: &TenantId,
    seq: i64,
    sealed: &[u8],
) -> StoreResult<AuditEvent> {
    let seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative sequence".into()))?;
    let plain = cipher.open(Some(tenant), &payload_context(seq), sealed)?;
    let event = AuditEvent::from_payload(plain.as_bytes())
        .map_err(|e| StoreError::Corrupt(format!("audit event {seq}: {e}")))?;
    if event.seq != seq || event.event.tenant != tenant.as_str() {
        return Err(StoreError::Corrupt(format!(
            "audit event {seq} does not belong where it is stored"
        )));
    }
    Ok(event)
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, batch: AuditBatch) -> StoreResult<Vec<u64>> {
        let cipher = self.cipher();
        let mut security = Vec::with_capacity(batch.security.len());
        for e in batch.security {
            let username = seal_opt(
                &*cipher,
                e.tenant.as_ref(),
                "event-username",
                e.username.as_deref(),
            )?;
            security.push((e, username));
        }
        let (events, token_uses) = (batch.events, batch.token_uses);
        self.write(move |tx| {
            let mut ranges: HashMap<String, CompactRange> = HashMap::new();
            let mut seqs = Vec::with_capacity(events.len());
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO audit_events
                         (tenant_id, seq, at, action, outcome, actor_person, patient_id, payload_hash, payload)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .map_err(driver)?;
                let mut node = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO audit_nodes (tenant_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(driver)?;
                for event in events {
                    let tenant = TenantId::parse(&event.tenant)
                        .map_err(|e| StoreError::Invalid(format!("audit tenant: {e}")))?;
                    let range = match ranges.entry(event.tenant.clone()) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(load_range(tx, &event.tenant)?)
                        }
                    };
                    let seq = range.size();
                    let stored = AuditEvent { seq, event };
                    let payload = stored.payload();
                    let hash = payload_hash(&payload);
                    let leaf = entry_leaf(tenant.as_str(), seq, &hash);
                    let mut completed = Vec::new();
                    range.push_reporting(leaf, &mut |n| {
                        if n.level >= NODE_LEVEL {
                            completed.push(n);
                        }
                    });
                    for n in completed {
                        node.execute(params![
                            tenant.as_str(),
                            n.level,
                            seq_i64(n.index)?,
                            &n.hash[..]
                        ])
                        .map_err(driver)?;
                    }
                    // Payloads are JSON, so UTF-8.
                    let text = String::from_utf8(payload)
                        .map_err(|e| StoreError::Invalid(e.to_string()))?;
                    let sealed = cipher.seal(Some(&tenant), &payload_context(seq), &text)?;
                    let e = &stored.event;
                    insert
                        .execute(params![
                            tenant.as_str(),
                            seq_i64(seq)?,
                            ts(e.at),
                            e.action,
                            e.outcome.code(),
                            e.actor.person,
                            e.patient,
                            &hash[..],
                            sealed
                        ])
                        .map_err(driver)?;
                    seqs.push(seq);
                }
                let mut head = tx
                    .prepare_cached(
                        "INSERT INTO audit_heads (tenant_id, size, frontier) VALUES (?1, ?2, ?3)
                         ON CONFLICT (tenant_id) DO UPDATE SET size = excluded.size, frontier = excluded.frontier",
                    )
                    .map_err(driver)?;
                for (tenant, range) in &ranges {
                    head.execute(params![tenant, seq_i64(range.size())?, range.to_bytes()])
                        .map_err(driver)?;
                }
            }
            for (e, username) in &security {
                insert_event(tx, e, username.clone())?;
            }
            for (id, at) in &token_uses {
                tx.execute(
                    "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                    params![id, ts(*at)],
                )
                .map_err(driver)?;
            }
            Ok(seqs)
        })
        .await
    }

    async fn audit_tenants(&self) -> StoreResult<Vec<TenantId>> {
        self.read(|c| {
            let mut s = c
                .prepare("SELECT tenant_id FROM audit_heads ORDER BY tenant_id")
                .map_err(driver)?;
            let rows = s.query_map([], |r| tenant_id(r, 0)).map_err(driver)?;
            rows.collect::<Result<_, _>>().map_err(driver)
        })
        .await
    }

    async fn audit_head(&self, tenant: &TenantId) -> StoreResult<AuditHead> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let r = load_range(c, &tenant)?;
            Ok(AuditHead {
                size: r.size(),
                root: r.root(),
            })
        })
        .await
    }

    async fn audit_entries(
        &self,
        tenant: &TenantId,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        let (tenant, cipher) = (tenant.clone(), self.cipher());
        self.read(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT id, seq, payload_hash, payload FROM audit_events
                     WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(driver)?;
            let rows = s
                .query_map(params![tenant.as_str(), after_id, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, Option<Vec<u8>>>(3)?,
                    ))
                })
                .map_err(driver)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, seq, hash, sealed) = row.map_err(driver)?;
                let seq = u64::try_from(seq)
                    .map_err(|_| StoreError::Corrupt(format!("audit row {id}: negative seq")))?;
                let payload = sealed.map(|b| {
                    cipher
                        .open(Some(&tenant), &payload_context(seq), &b)
                        .map(String::into_bytes)
                        .map_err(|e| e.to_string())
                });
                out.push(AuditEntry {
                    id,
                    seq,
                    // A hash of the wrong length cannot match any payload: report it as
                    // changed rather than stop.
                    payload_hash: hash_of(&hash).unwrap_or([0; 32]),
                    payload,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn audit_search(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>> {
        let (tenant, f, cipher) = (tenant.clone(), filter.clone(), self.cipher());
        self.read(move |c| {
            // Only the clauses asked for, so SQLite can pick the matching index; every value
            // is a bound parameter.
            let mut sql = String::from("SELECT seq, payload FROM audit_events WHERE tenant_id = ?");
            let mut args: Vec<rusqlite::types::Value> = vec![tenant.to_string().into()];
            let mut clause = |sql_part: &str, v: rusqlite::types::Value| {
                sql.push_str(sql_part);
                args.push(v);
            };
            if let Some(p) = &f.patient {
                clause(" AND patient_id = ?", p.clone().into());
            }
            if let Some(a) = &f.actor {
                clause(" AND actor_person = ?", a.clone().into());
            }
            if let Some(a) = &f.action {
                clause(" AND action = ?", a.clone().into());
            }
            if let Some(o) = f.outcome {
                clause(" AND outcome = ?", o.code().to_string().into());
            }
            if let Some(t) = f.from {
                clause(" AND at >= ?", ts(t).into());
            }
            if let Some(t) = f.to {
                clause(" AND at < ?", ts(t).into());
            }
            if let Some(b) = f.before {
                clause(" AND seq < ?", seq_i64(b)?.into());
            }
            if let Some(a) = f.from_seq {
                clause(" AND seq >= ?", seq_i64(a)?.into());
            }
            sql.push_str(" AND payload IS NOT NULL ORDER BY seq");
            sql.push_str(if f.from_seq.is_some() {
                " ASC"
            } else {
                " DESC"
            });
            sql.push_str(" LIMIT ?");
            args.push(i64::from(f.limit.clamp(1, 10_000)).into());
            let mut s = c.prepare_cached(&sql).map_err(driver)?;
            let rows = s
                .query_map(rusqlite::params_from_iter(args), |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .map_err(driver)?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, sealed) = row.map_err(driver)?;
                out.push(row_event(&*cipher, &tenant, seq, &sealed)?);
            }
            Ok(out)
        })
        .await
    }

    async fn audit_event(
        &self,
        tenant: &TenantId,
        seq: u64,
    ) -> StoreResult<Option<(Hash, Option<AuditEvent>)>> {
        let (tenant, cipher) = (tenant.clone(), self.cipher());
        self.read(move |c| {
            let row: Option<(i64, Vec<u8>, Option<Vec<u8>>)> = c
                .query_row(
                    "SELECT seq, payload_hash, payload FROM audit_events WHERE tenant_id = ?1 AND seq = ?2",
                    params![tenant.as_str(), seq_i64(seq)?],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(driver)?;
            let Some((seq, hash, sealed)) = row else {
                return Ok(None);
            };
            let event = sealed
                .map(|b| row_event(&*cipher, &tenant, seq, &b))
                .transpose()?;
            Ok(Some((hash_of(&hash)?, event)))
        })
        .await
    }

    async fn audit_inclusion_proof(
        &self,
        tenant: &TenantId,
        leaf: u64,
        size: u64,
    ) -> StoreResult<Vec<Hash>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            check_size(c, &tenant, size)?;
            let mut t = StoredTree {
                conn: c,
                tenant: &tenant,
            };
            tree::inclusion_proof(&mut t, leaf, size).map_err(proof_error)
        })
        .await
    }

    async fn audit_consistency_proof(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<Hash>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            check_size(c, &tenant, to)?;
            let mut t = StoredTree {
                conn: c,
                tenant: &tenant,
            };
            tree::consistency_proof(&mut t, from, to).map_err(proof_error)
        })
        .await
    }

    async fn audit_root(&self, tenant: &TenantId, size: u64) -> StoreResult<Hash> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let range = load_range(c, &tenant)?;
            if size > range.size() {
                return Err(StoreError::Invalid(format!(
                    "the log has {} entries, not {size}",
                    range.size()
                )));
            }
            if size == range.size() {
                return Ok(range.root());
            }
            if size == 0 {
                return Ok(merkle::empty_root());
            }
            StoredTree {
                conn: c,
                tenant: &tenant,
            }
            .range_hash(0, size)
        })
        .await
    }

    async fn add_audit_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: &StoredCheckpoint,
    ) -> StoreResult<()> {
        let (tenant, cp) = (tenant.to_string(), checkpoint.clone());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO audit_checkpoints (tenant_id, size, at, note) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant_id, size) DO NOTHING",
                params![tenant, seq_i64(cp.size)?, ts(cp.at), cp.note],
            )
            .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn audit_checkpoints(&self, tenant: &TenantId) -> StoreResult<Vec<StoredCheckpoint>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let mut s = c
                .prepare(
                    "SELECT size, at, note FROM audit_checkpoints WHERE tenant_id = ?1 ORDER BY size",
                )
                .map_err(driver)?;
            let rows = s
                .query_map(params![tenant], checkpoint_row)
                .map_err(driver)?;
            rows.collect::<Result<_, _>>().map_err(driver)
        })
        .await
    }

    async fn latest_audit_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Option<StoredCheckpoint>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT size, at, note FROM audit_checkpoints WHERE tenant_id = ?1
                 ORDER BY size DESC LIMIT 1",
                params![tenant],
                checkpoint_row,
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn review_cursor(&self, tenant: &TenantId) -> StoreResult<u64> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let n: Option<i64> = c
                .query_row(
                    "SELECT next_seq FROM audit_review_cursor WHERE tenant_id = ?1",
                    params![tenant],
                    |r| r.get(0),
                )
                .optional()
                .map_err(driver)?;
            Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
        })
        .await
    }

    async fn add_alerts(
        &self,
        tenant: &TenantId,
        alerts: &[NewAlert],
        next_seq: u64,
    ) -> StoreResult<Vec<String>> {
        let (tenant, alerts) = (tenant.to_string(), alerts.to_vec());
        self.write(move |tx| {
            let mut ids = Vec::with_capacity(alerts.len());
            for a in &alerts {
                let id = new_id();
                let seqs = a
                    .seqs
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" ");
                tx.execute(
                    "INSERT INTO audit_alerts (id, tenant_id, rule, severity, actor_person, patient_id, seqs, summary, raised_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![id, tenant, a.rule, a.severity, a.actor, a.patient, seqs, a.summary, ts(a.raised_at)],
                )
                .map_err(driver)?;
                ids.push(id);
            }
            tx.execute(
                "INSERT INTO audit_review_cursor (tenant_id, next_seq) VALUES (?1, ?2)
                 ON CONFLICT (tenant_id) DO UPDATE SET next_seq = max(next_seq, excluded.next_seq)",
                params![tenant, seq_i64(next_seq)?],
            )
            .map_err(driver)?;
            Ok(ids)
        })
        .await
    }

    async fn alerts(
        &self,
        tenant: &TenantId,
        status: Option<AlertStatus>,
        limit: u32,
    ) -> StoreResult<Vec<Alert>> {
        let (tenant, cipher) = (tenant.clone(), self.cipher());
        self.read(move |c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {ALERT_COLUMNS} FROM audit_alerts
                     WHERE tenant_id = ?1 AND (?2 IS NULL OR status = ?2)
                     ORDER BY raised_at DESC, id LIMIT ?3"
                ))
                .map_err(driver)?;
            let rows = s
                .query_map(
                    params![tenant.as_str(), status.map(AlertStatus::code), limit],
                    |r| alert_row(r, &*cipher, &tenant),
                )
                .map_err(driver)?;
            rows.collect::<Result<_, _>>().map_err(driver)
        })
        .await
    }

    async fn alert(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<Alert>> {
        let (tenant, id, cipher) = (tenant.clone(), id.to_string(), self.cipher());
        self.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT {ALERT_COLUMNS} FROM audit_alerts WHERE tenant_id = ?1 AND id = ?2"
                ),
                params![tenant.as_str(), id],
                |r| alert_row(r, &*cipher, &tenant),
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn decide_alert(
        &self,
        tenant: &TenantId,
        id: &str,
        decision: &AlertDecision,
    ) -> StoreResult<Alert> {
        if decision.status == AlertStatus::Open {
            return Err(StoreError::Invalid(
                "an alert is closed as justified or as a deviation".into(),
            ));
        }
        if decision.breach && decision.status != AlertStatus::Deviation {
            return Err(StoreError::Invalid(
                "only a deviation can be a personal-data breach".into(),
            ));
        }
        let note = self
            .cipher()
            .seal(Some(tenant), &format!("alert-note/{id}"), &decision.note)?;
        let (t, i, d) = (tenant.to_string(), id.to_string(), decision.clone());
        self.write(move |tx| {
            let current: Option<(String, i64)> = tx
                .query_row(
                    "SELECT status, breach FROM audit_alerts WHERE tenant_id = ?1 AND id = ?2",
                    params![t, i],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(driver)?;
            let Some((status, breach)) = current else {
                return Err(StoreError::NotFound("alert"));
            };
            let deadline = ts(d.at + time::Duration::hours(72));
            if status == "open" {
                tx.execute(
                    "UPDATE audit_alerts SET status = ?3, decided_by = ?4, decided_at = ?5,
                     decision_note = ?6, breach = ?7, breach_deadline = ?8
                     WHERE tenant_id = ?1 AND id = ?2",
                    params![
                        t,
                        i,
                        d.status.code(),
                        d.by,
                        ts(d.at),
                        note,
                        d.breach,
                        d.breach.then_some(deadline)
                    ],
                )
                .map_err(driver)?;
            } else if status == "deviation" && d.status == AlertStatus::Deviation && d.breach && breach == 0 {
                // Found to be a breach after closing: the clock starts now.
                tx.execute(
                    "UPDATE audit_alerts SET breach = 1, breach_deadline = ?3 WHERE tenant_id = ?1 AND id = ?2",
                    params![t, i, deadline],
                )
                .map_err(driver)?;
            } else {
                return Err(StoreError::Conflict(format!(
                    "the alert is already closed as {status}"
                )));
            }
            Ok(())
        })
        .await?;
        self.alert(tenant, id)
            .await?
            .ok_or(StoreError::NotFound("alert"))
    }

    async fn review_rules(&self, tenant: &TenantId) -> StoreResult<Option<String>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT rules FROM audit_review_rules WHERE tenant_id = ?1",
                params![tenant],
                |r| r.get(0),
            )
            .optional()
            .map_err(driver)
        })
        .await
    }

    async fn set_review_rules(
        &self,
        tenant: &TenantId,
        rules: &str,
        at: time::OffsetDateTime,
    ) -> StoreResult<()> {
        let (tenant, rules) = (tenant.to_string(), rules.to_string());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO audit_review_rules (tenant_id, rules, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at",
                params![tenant, rules, ts(at)],
            )
            .map_err(driver)?;
            Ok(())
        })
        .await
    }
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        size: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        at: from_ts(r.get(1)?)?,
        note: r.get(2)?,
    })
}

const ALERT_COLUMNS: &str = "id, rule, severity, actor_person, patient_id, seqs, summary, raised_at, status, decided_by, decided_at, decision_note, breach, breach_deadline";

fn alert_row(
    r: &rusqlite::Row<'_>,
    cipher: &dyn FieldCipher,
    tenant: &TenantId,
) -> rusqlite::Result<Alert> {
    let id: String = r.get(0)?;
    let seqs: String = r.get(5)?;
    let note: Option<Vec<u8>> = r.get(11)?;
    let decision_note = note
        .map(|b| cipher.open(Some(tenant), &format!("alert-note/{id}"), &b))
        .transpose()
        .map_err(crate::queries::cipher_err)?;
    let status: String = r.get(8)?;
    Ok(Alert {
        alert: NewAlert {
            rule: r.get(1)?,
            severity: r.get(2)?,
            actor: r.get(3)?,
            patient: r.get(4)?,
            seqs: seqs
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect(),
            summary: r.get(6)?,
            raised_at: from_ts(r.get(7)?)?,
        },
        id,
        status: AlertStatus::parse(&status).unwrap_or(AlertStatus::Open),
        decided_by: r.get(9)?,
        decided_at: opt_ts(r.get(10)?)?,
        decision_note,
        breach: r.get::<_, i64>(12)? != 0,
        breach_deadline: opt_ts(r.get(13)?)?,
    })
}
