use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tillit_store::{FieldCipher, StoreError, StoreResult};

/// Marks a database as Tillit's (`PRAGMA application_id`), so a foreign SQLite file is refused.
const APPLICATION_ID: i32 = 0x5449_4C4C; // "TILL"

/// Migrations in order; their index + 1 is the schema version. Never edit a released one.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_foundation.sql"),
    include_str!("../migrations/0002_resources.sql"),
    include_str!("../migrations/0003_category_rules.sql"),
    include_str!("../migrations/0004_emergency_access.sql"),
    include_str!("../migrations/0005_tenant_policies.sql"),
    include_str!("../migrations/0006_access_rules.sql"),
    include_str!("../migrations/0007_support_access.sql"),
    include_str!("../migrations/0008_access_generation.sql"),
    include_str!("../migrations/0009_audit_log.sql"),
    include_str!("../migrations/0010_audit_review.sql"),
    include_str!("../migrations/0011_tenant_exit.sql"),
    include_str!("../migrations/0012_patient_rights.sql"),
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Databases up to this size are fully checked (`PRAGMA quick_check`) when opened.
const FULL_CHECK_BYTES: u64 = 512 * 1024 * 1024;

/// Reader connections kept open; queries beyond that many wait for one.
const READERS: usize = 8;

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    cipher: Arc<dyn FieldCipher>,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per pooled reader: a burst waits for a connection instead of opening
    /// (and parsing the schema of) a new one per query.
    reader_permits: Arc<tokio::sync::Semaphore>,
}

pub(crate) fn driver(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(msg.unwrap_or_else(|| "constraint violated".into()))
        }
        rusqlite::Error::SqliteFailure(f, msg)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            StoreError::Corrupt(msg.unwrap_or_else(|| f.to_string()))
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

impl SqliteStore {
    /// Opens (creating if absent) the database at `path`, refusing foreign, corrupt or newer
    /// files without modifying them, then migrates it to [`SCHEMA_VERSION`].
    pub fn open(path: &Path, cipher: Arc<dyn FieldCipher>) -> StoreResult<Self> {
        let existed = path.exists()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        if existed {
            check_existing(path)?;
        }
        let mut writer = Connection::open(path).map_err(driver)?;
        configure(&writer)?;
        restrict_permissions(path);
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open_reader(path))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                cipher,
                writer: Mutex::new(writer),
                readers: Mutex::new(readers),
                reader_permits: Arc::new(tokio::sync::Semaphore::new(READERS)),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn cipher(&self) -> Arc<dyn FieldCipher> {
        self.inner.cipher.clone()
    }

    /// Runs `f` on a reader connection on the blocking pool.
    pub(crate) async fn read<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        let permit = inner
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closing".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = inner
                .readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            let conn = match conn {
                Some(c) => c,
                None => open_reader(&inner.path)?,
            };
            let out = f(&conn);
            let mut pool = inner.readers.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("storage task failed: {e}")))?
    }

    /// Runs `f` inside one write transaction, committed only if `f` succeeds.
    pub(crate) async fn write<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(driver)?;
            let out = f(&tx)?;
            tx.commit().map_err(driver)?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("storage task failed: {e}")))?
    }
}

/// Checks an existing file before anything may write to it.
fn check_existing(path: &Path) -> StoreResult<()> {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| StoreError::Corrupt(format!("cannot read the database header: {e}")))?;
    if &header != b"SQLite format 3\0" {
        return Err(StoreError::Corrupt(format!(
            "{} is not a SQLite database",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(driver)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(driver)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(driver)?;
    if app_id != APPLICATION_ID && !(app_id == 0 && version == 0) {
        return Err(StoreError::Corrupt(format!(
            "{} is a SQLite database of another application",
            path.display()
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    // A full quick_check reads every page: seconds per GB. Above the limit only the schema
    // is read here; SQLite still refuses a corrupt page when a query reaches it.
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > FULL_CHECK_BYTES {
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(driver)?;
        return Ok(());
    }
    let check: Vec<String> = {
        let mut stmt = conn.prepare("PRAGMA quick_check").map_err(driver)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(driver)?;
        rows.collect::<Result<_, _>>().map_err(driver)?
    };
    if check != ["ok"] {
        return Err(StoreError::Corrupt(check.join("; ")));
    }
    Ok(())
}

/// The database and its WAL hold sealed data and account secrets: owner-only.
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}

fn configure(conn: &Connection) -> StoreResult<()> {
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(driver)?;
    // FULL: an acknowledged commit survives power loss, not only a process crash.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(driver)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(driver)?;
    // 64 MiB of page cache (the default is 2 MiB): the audit log's indexes by patient and
    // by actor take random keys, and a large log needs their inner pages in memory.
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(driver)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(driver)?;
    Ok(())
}

fn open_reader(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(driver)?;
    // Readers keep SQLite's default page cache: every commit (the audit log commits all the
    // time) empties their caches, and emptying a large one costs more than it saves.
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(driver)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(driver)?;
    let current: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(driver)?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
        if version <= current {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Unavailable(format!("migration {version} failed: {e}")))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(driver)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(driver)?;
    tx.commit().map_err(driver)
}
