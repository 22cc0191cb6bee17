//! The key vault: wrapped keys in their own SQLite file (`keys/keyring.db`), apart from the
//! data, so a copy of the database without it reveals nothing and destroying a key here
//! shreds every copy of what it protected.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;
use tillit_crypto::{KeyError, KeyVault};

pub struct SqliteKeyVault {
    conn: Mutex<Connection>,
}

fn err(e: rusqlite::Error) -> KeyError {
    KeyError::Vault(e.to_string())
}

impl SqliteKeyVault {
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| KeyError::Vault(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        // Erased keys must not linger in free pages.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, wrapped BLOB NOT NULL) STRICT;",
        )
        .map_err(err)?;
        // The erasure ledger: which patients' keys were destroyed, and when. It lives with the
        // keys, not in the database, so restoring an older database can re-apply erasures.
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS erasures (
                tenant_id TEXT NOT NULL, patient_id TEXT NOT NULL, at INTEGER NOT NULL,
                PRIMARY KEY (tenant_id, patient_id)) STRICT;",
        )
        .map_err(err)?;
        // The ledger of deleted tenants: whose keys a tenant deletion destroyed, and when, so
        // restoring a backup taken before it drops the tenant instead of failing on its keys.
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS deleted_tenants (
                tenant_id TEXT PRIMARY KEY, at INTEGER NOT NULL) STRICT;",
        )
        .map_err(err)?;
        {
            use std::os::unix::fs::PermissionsExt;
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Records in the erasure ledger that the patient's data was erased at `at` (Unix
    /// seconds). Recording it again keeps the first time.
    pub fn record_erasure(&self, tenant: &str, patient: &str, at: i64) -> Result<(), KeyError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO erasures (tenant_id, patient_id, at) VALUES (?1, ?2, ?3)",
                params![tenant, patient, at],
            )
            .map(|_| ())
        })
    }

    /// The erasure ledger, oldest first: (tenant, patient, Unix seconds).
    pub fn erasures(&self) -> Result<Vec<(String, String, i64)>, KeyError> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT tenant_id, patient_id, at FROM erasures ORDER BY at, tenant_id, patient_id",
            )?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// The ledger of deleted tenants, oldest first: (tenant, Unix seconds).
    pub fn deleted_tenants(&self) -> Result<Vec<(String, i64)>, KeyError> {
        self.with(|c| {
            let mut s =
                c.prepare("SELECT tenant_id, at FROM deleted_tenants ORDER BY at, tenant_id")?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, KeyError> {
        let c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&c).map_err(err)
    }
}

impl KeyVault for SqliteKeyVault {
    fn get(&self, id: &str) -> Result<Option<Vec<u8>>, KeyError> {
        self.with(|c| {
            c.query_row("SELECT wrapped FROM keys WHERE id = ?1", [id], |r| r.get(0))
                .optional()
        })
    }

    fn put_if_absent(&self, id: &str, wrapped: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO keys (id, wrapped) VALUES (?1, ?2)",
                params![id, wrapped],
            )?;
            c.query_row("SELECT wrapped FROM keys WHERE id = ?1", [id], |r| r.get(0))
        })
    }

    fn replace_all(&self, items: &[(String, Vec<u8>)]) -> Result<(), KeyError> {
        let mut c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = c.transaction().map_err(err)?;
        for (id, wrapped) in items {
            let n = tx
                .execute(
                    "UPDATE keys SET wrapped = ?2 WHERE id = ?1",
                    params![id, wrapped],
                )
                .map_err(err)?;
            if n != 1 {
                return Err(KeyError::Missing(id.clone()));
            }
        }
        tx.commit().map_err(err)
    }

    fn destroy(&self, id: &str) -> Result<bool, KeyError> {
        self.with(|c| {
            let n = c.execute("DELETE FROM keys WHERE id = ?1", [id])?;
            // Push the deletion out of the WAL into the main file, then truncate the WAL.
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(n > 0)
        })
    }

    fn destroy_all(&self, ids: &[String]) -> Result<Vec<String>, KeyError> {
        let mut c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = c.transaction().map_err(err)?;
        let mut gone = Vec::new();
        for id in ids {
            if tx
                .execute("DELETE FROM keys WHERE id = ?1", [id])
                .map_err(err)?
                > 0
            {
                gone.push(id.clone());
            }
        }
        tx.commit().map_err(err)?;
        // As for one key: out of the WAL into the main file (secure_delete zeroes the cells).
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(err)?;
        Ok(gone)
    }

    fn ids(&self) -> Result<Vec<String>, KeyError> {
        self.with(|c| {
            let mut s = c.prepare("SELECT id FROM keys ORDER BY id")?;
            let rows = s.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    // The erasure ledger through the trait, for the keyring (the tombstone that stops an
    // erased patient's key from being made again).
    fn record_erasure(&self, tenant: &str, patient: &str, at: i64) -> Result<(), KeyError> {
        SqliteKeyVault::record_erasure(self, tenant, patient, at)
    }

    fn erasures(&self) -> Result<Vec<tillit_crypto::keyring::Erasure>, KeyError> {
        Ok(SqliteKeyVault::erasures(self)?
            .into_iter()
            .map(|(tenant, patient, at)| tillit_crypto::keyring::Erasure {
                tenant,
                patient,
                at,
            })
            .collect())
    }

    // A tenant deletion: the ledger entry and the keys' destruction commit together.
    fn destroy_deleted_tenant(
        &self,
        tenant: &str,
        ids: &[String],
        at: i64,
    ) -> Result<Vec<String>, KeyError> {
        let mut c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = c.transaction().map_err(err)?;
        tx.execute(
            "INSERT OR IGNORE INTO deleted_tenants (tenant_id, at) VALUES (?1, ?2)",
            params![tenant, at],
        )
        .map_err(err)?;
        let mut gone = Vec::new();
        for id in ids {
            if tx
                .execute("DELETE FROM keys WHERE id = ?1", [id])
                .map_err(err)?
                > 0
            {
                gone.push(id.clone());
            }
        }
        tx.commit().map_err(err)?;
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(err)?;
        Ok(gone)
    }

    fn deleted_tenants(&self) -> Result<Vec<tillit_crypto::TenantDeletion>, KeyError> {
        Ok(SqliteKeyVault::deleted_tenants(self)?
            .into_iter()
            .map(|(tenant, at)| tillit_crypto::TenantDeletion { tenant, at })
            .collect())
    }

    fn is_erased(&self, tenant: &str, patient: &str) -> Result<bool, KeyError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM erasures WHERE tenant_id = ?1 AND patient_id = ?2",
                params![tenant, patient],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        })
    }
}
