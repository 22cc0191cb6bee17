//! The audit log in SQLite: `audit_events` (append-only), each tenant's compact range in
//! `audit_heads`, the hashes of perfect subtrees of 256 leaves and up in `audit_nodes` (so an
//! inclusion or consistency proof reads O(log n) nodes and a few hundred leaves, however
//! long the log), and signed checkpoints in `audit_checkpoints`.

use crate::conn::{SqliteStore, driver};
use crate::queries::{from_ts, insert_event, seal_opt, tenant_id, ts};
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
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        size: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        at: from_ts(r.get(1)?)?,
        note: r.get(2)?,
    })
}
