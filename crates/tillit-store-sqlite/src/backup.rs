//! What backups need from the SQLite files: a consistent copy of a live database (the data,
//! or the key vault) without stopping its writers, record counts, and a sample of sealed
//! versions to open. (Erasures are re-applied to a restored database with
//! `Store::erase_patient_data`, as the erasure itself does.)
//!
//! The copy is SQLite's online backup API run inside one read transaction on the source: in
//! WAL mode the reader sees the database as of the transaction's start while writers go on,
//! so every step copies pages of the same snapshot and the backup never restarts. The copy
//! is left in rollback-journal mode, one self-contained file.

use crate::SqliteStore;
use crate::conn::driver;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags, params};
use std::path::Path;
use tillit_core::TenantId;
use tillit_store::{StoreError, StoreResult};

/// Pages copied per step (4 KiB pages: 4 MiB), between which progress is reported.
const PAGES_PER_STEP: i32 = 1024;

/// Copies the database at `src` (which other connections may be writing) to a new file
/// `dst`, as of one instant. `progress` is told (pages done, pages in all) after each step.
pub fn snapshot(src: &Path, dst: &Path, mut progress: impl FnMut(u64, u64)) -> StoreResult<()> {
    if dst.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists already",
            dst.display()
        )));
    }
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(driver)?;
    source
        .busy_timeout(std::time::Duration::from_secs(10))
        .map_err(driver)?;
    // The read transaction that fixes the snapshot: every step below reads inside it.
    source.execute_batch("BEGIN DEFERRED").map_err(driver)?;
    source
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(driver)?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Created owner-only before SQLite opens it.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", dst.display())))?;
    }
    let mut dest = Connection::open(dst).map_err(driver)?;
    {
        let backup = Backup::new(&source, &mut dest).map_err(driver)?;
        loop {
            let step = backup.step(PAGES_PER_STEP).map_err(driver)?;
            let p = backup.progress();
            let total = u64::try_from(p.pagecount).unwrap_or(0);
            let left = u64::try_from(p.remaining).unwrap_or(0);
            progress(total.saturating_sub(left), total);
            match step {
                StepResult::Done => break,
                StepResult::More => {}
                // Transient: another connection holds a lock for a moment.
                _ => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }
    source.execute_batch("COMMIT").map_err(driver)?;
    drop(source);
    finish_copy(dest)
}

/// Leaves a copied database as one file: rollback journal, nothing in a WAL beside it.
fn finish_copy(dest: Connection) -> StoreResult<()> {
    let mode: String = dest
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(driver)?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::Unavailable(format!(
            "the copy stayed in {mode} mode"
        )));
    }
    dest.close().map_err(|(_, e)| driver(e))
}

/// Makes a database file self-contained again after it was opened (in WAL mode) for reading:
/// checkpoints the WAL into the file and switches to a rollback journal.
pub fn make_self_contained(path: &Path) -> StoreResult<()> {
    let conn = Connection::open(path).map_err(driver)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(driver)?;
    finish_copy(conn)
}

/// A sealed resource version, as stored, for a backup check to open with the keyring.
#[derive(Debug, Clone)]
pub struct SealedVersion {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    /// The patient whose key sealed it; `None` when the tenant's key did.
    pub patient: Option<String>,
    pub body: Vec<u8>,
}

/// What a backup's manifest says of a tenant's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    /// Resources (current versions, deleted ones included).
    pub resources: u64,
    /// Stored versions.
    pub versions: u64,
}

impl SqliteStore {
    /// Up to `n` sealed versions of the tenant, picked at random.
    pub async fn sample_sealed_versions(
        &self,
        tenant: &TenantId,
        n: usize,
    ) -> StoreResult<Vec<SealedVersion>> {
        let tenant = tenant.to_string();
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut s = c
                .prepare(
                    "SELECT type, id, version, patient_id, key_scope, body FROM resource_versions
                     WHERE tenant_id = ?1 AND body IS NOT NULL ORDER BY random() LIMIT ?2",
                )
                .map_err(driver)?;
            let rows = s
                .query_map(params![tenant, n], |r| {
                    let patient: Option<String> = r.get(3)?;
                    let scope: String = r.get(4)?;
                    Ok(SealedVersion {
                        resource_type: r.get(0)?,
                        id: r.get(1)?,
                        version: r.get(2)?,
                        patient: if scope == "patient" { patient } else { None },
                        body: r.get(5)?,
                    })
                })
                .map_err(driver)?;
            rows.collect::<Result<_, _>>().map_err(driver)
        })
        .await
    }

    /// How many resources and versions the tenant has.
    pub async fn record_counts(&self, tenant: &TenantId) -> StoreResult<RecordCounts> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let resources: i64 = c
                .query_row(
                    "SELECT count(*) FROM resources WHERE tenant_id = ?1",
                    [&tenant],
                    |r| r.get(0),
                )
                .map_err(driver)?;
            let versions: i64 = c
                .query_row(
                    "SELECT count(*) FROM resource_versions WHERE tenant_id = ?1",
                    [&tenant],
                    |r| r.get(0),
                )
                .map_err(driver)?;
            Ok(RecordCounts {
                resources: u64::try_from(resources).unwrap_or(0),
                versions: u64::try_from(versions).unwrap_or(0),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tillit-snap-{tag}-{}-{}",
            std::process::id(),
            tillit_core::PersonId::random()
        ));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| unreachable!("{e}"));
        d
    }

    fn count(path: &Path) -> usize {
        let c = Connection::open(path).unwrap_or_else(|e| unreachable!("{e}"));
        c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .map(|n| usize::try_from(n).unwrap_or(0))
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// Writers go on while the copy runs; the copy holds what was committed when it began,
    /// and is one file in rollback-journal mode.
    #[test]
    fn a_snapshot_of_a_database_being_written_is_consistent() {
        let dir = tmp("live");
        let src = dir.join("live.db");
        let w = Connection::open(&src).unwrap_or_else(|e| unreachable!("{e}"));
        w.pragma_update(None, "journal_mode", "WAL")
            .unwrap_or_else(|e| unreachable!("{e}"));
        // About 6 MB: more than one step of the copy.
        w.execute_batch(
            "CREATE TABLE t (x BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
             INSERT INTO t SELECT randomblob(1000) FROM n;",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let dst = dir.join("copy.db");
        let mut steps = 0;
        let mut last = (0, 0);
        snapshot(&src, &dst, |done, total| {
            // A write between steps: the copy must not see it, nor restart.
            if steps < 3 {
                w.execute("INSERT INTO t VALUES (randomblob(1000))", [])
                    .unwrap_or_else(|e| unreachable!("{e}"));
            }
            steps += 1;
            last = (done, total);
        })
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(steps > 1, "the copy ran in {steps} step(s)");
        assert_eq!(last.0, last.1);
        assert_eq!(count(&dst), 6000);
        assert_eq!(count(&src), 6000 + steps.min(3));
        assert!(!dir.join("copy.db-wal").exists());
        let c = Connection::open(&dst).unwrap_or_else(|e| unreachable!("{e}"));
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(mode, "delete");
        // Never over an existing file.
        assert!(snapshot(&src, &dst, |_, _| {}).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
