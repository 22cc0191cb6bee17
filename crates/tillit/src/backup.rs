//! `tillit backup create | verify | restore`, and scheduled backups in `serve`.
//!
//! A backup is a folder:
//!
//! ```text
//! manifest.json          what it holds, with SHA-256 of every file (manifest.rs)
//! manifest.sig           Ed25519 signature of manifest.json's bytes
//! data/tillit.db.enc     the database as of one instant, sealed (seal.rs)
//! data/tls/*.enc         the data dir's TLS files, sealed, when there are any
//! ```
//!
//! The database is copied with SQLite's online backup API inside one read transaction, so
//! the server keeps running and writing; the copy is sealed with AES-256-GCM under a fresh
//! data key, which is itself sealed under a platform secret of the keyring. No key is ever in
//! a backup: opening one needs the keyring it was made with, and a patient key destroyed
//! since (erasure) leaves that patient's data unreadable in every backup.
//!
//! `verify` restores into a scratch folder and checks everything: the signature, every
//! file's hashes, the database's integrity, each tenant's audit tree head against the
//! manifest and a full audit verification (the one `tillit audit verify` runs), and opens a
//! sample of sealed records with the keyring. `restore` does the same into a new data dir,
//! gives it its own copy of the keyring, and re-applies every erasure in the keyring's
//! erasure ledger, so restoring an older backup never brings erased data back; a tenant the
//! keyring's ledger of deleted tenants names (deleted after the backup) is dropped with the
//! store's own `remove_tenant`, while a tenant whose keys are merely missing fails.
//!
//! Backups are audit events: `create` appends a `backup.created` security event to every
//! tenant's log before the backup is published, `restore` a `backup.restored` one to every
//! restored tenant's log in the new data dir.
//! See `docs/design/backups.md`.

mod manifest;
pub mod retention;
mod schedule;
mod seal;

pub use schedule::spawn as spawn_schedule;

use crate::keys;
use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use indicatif::{ProgressBar, ProgressStyle};
use manifest::Manifest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use tillit_core::{Clock, PersonId, TenantId};
use tillit_crypto::{KeyError, KeyVault, Keyring};
use tillit_server::audit::checkpoints;
use tillit_store::{
    AuditBatch, AuditStore, KeyScope, KeyringCipher, NewSecurityEvent, PatientErasure,
    SecurityEventKind, Store,
};
use tillit_store_sqlite::{SqliteKeyVault, SqliteStore, backup as snap};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

const MANIFEST: &str = "manifest.json";
const SIGNATURE: &str = "manifest.sig";
const STORED_DIR: &str = "data";
/// Platform secrets in the keyring: the seed of the manifest signing key, and the key that
/// seals each backup's data key.
const SIGNING_SECRET: &str = "backup-signing";
const WRAPPING_SECRET: &str = "backup-wrapping";
/// The tombstone draft of a tenant dropped on restore (`tillit tenant delete` will not sign
/// a receipt from it).
pub const DROPPED_ON_RESTORE: &str = "tillit-tenant-dropped-on-restore";
/// Sealed records opened per tenant by a check.
const SAMPLE_PER_TENANT: usize = 32;
/// The files of a key dir that a restored data dir gets a copy of (with `keyring.db`).
const KEY_FILES: [&str; 3] = ["kek.key", "kek.salt", "provider"];

#[derive(clap::Subcommand)]
pub enum BackupCommand {
    /// Take an encrypted, signed backup of a data dir into a new folder; the server may keep
    /// running (the database is copied as of one instant, without stopping writers).
    Create {
        /// The backup folder to write (must not exist, or be empty).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The data dir (default: the configuration's, else tillit-data).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// The server's configuration (for data_dir and audit.log_name).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Restore a backup into a scratch folder and check it: the manifest's signature, every
    /// file's hashes, a sample of records opened with the keyring, and the audit log. Exits
    /// non-zero naming the problem.
    Verify {
        /// The backup folder.
        dir: PathBuf,
        /// The keyring (a data dir's keys folder); default: the one the backup was made with.
        #[arg(long, value_name = "PATH")]
        keyring: Option<PathBuf>,
    },
    /// Restore a backup into a new data dir, with a copy of the keyring, re-applying every
    /// erasure recorded in the keyring since.
    Restore {
        /// The backup folder.
        dir: PathBuf,
        /// The data dir to create (must not exist, or be empty).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The keyring (a data dir's keys folder); default: the one the backup was made with.
        #[arg(long, value_name = "PATH")]
        keyring: Option<PathBuf>,
    },
}

pub async fn run(command: BackupCommand, clock: &dyn Clock) -> Result<()> {
    match command {
        BackupCommand::Create {
            out,
            data_dir,
            config,
        } => {
            let config = tillit_server::Config::load(config.as_deref())?;
            let data_dir = data_dir.unwrap_or(config.data_dir);
            if !data_dir.join("tillit.db").is_file() {
                bail!("{} has no database (tillit.db)", data_dir.display());
            }
            let keys = Keys::open(&data_dir.join("keys"))?;
            // The live database, for the backup's events in each tenant's log (beside a
            // running server, as `tillit tenant export` does).
            let live = SqliteStore::open(
                &data_dir.join("tillit.db"),
                Arc::new(KeyringCipher(keys.keyring.clone())),
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", data_dir.join("tillit.db").display()))?;
            let start = std::time::Instant::now();
            let r = create(
                &data_dir,
                &keys,
                &config.audit.log_name,
                &out,
                clock,
                true,
                Events::Store(&live),
            )
            .await?;
            let records: u64 = r.manifest.tenants.iter().map(|t| t.resources).sum();
            println!(
                "backup {} written to {}: {} tenant(s), {records} record(s), {} file(s), {} bytes, in {:.1} s",
                r.manifest.id,
                out.display(),
                r.manifest.tenants.len(),
                r.manifest.files.len(),
                r.bytes,
                start.elapsed().as_secs_f64()
            );
            println!("taken at {}", r.manifest.created_at);
            Ok(())
        }
        BackupCommand::Verify { dir, keyring } => {
            let m = read_manifest(&dir)?.0;
            let keys = Keys::open(&keyring_dir(keyring.as_deref(), &m))?;
            let report = verify(&dir, &keys, true).await?;
            report.print();
            println!("backup {} verifies", dir.display());
            Ok(())
        }
        BackupCommand::Restore {
            dir,
            data_dir,
            keyring,
        } => {
            let report = restore(&dir, &data_dir, keyring.as_deref(), clock, true).await?;
            report.check.print();
            for d in &report.tenants_dropped {
                println!(
                    "dropped tenant {} ({}): deleted at {} (the keyring's ledger of deleted tenants), {} row(s) removed",
                    d.name, d.id, d.deleted_at, d.rows
                );
            }
            println!(
                "restored into {} ({} erasure(s) re-applied: {} version(s) removed, {} key(s) destroyed; {} deleted tenant(s) dropped); start it with `tillit demo --data-dir {}` or `tillit serve` with data_dir = {:?}",
                data_dir.display(),
                report.erasures,
                report.payloads_dropped,
                report.keys_destroyed,
                report.tenants_dropped.len(),
                data_dir.display(),
                data_dir.display().to_string()
            );
            Ok(())
        }
    }
}

/// The keyring a backup is made, checked or restored with, and its vault.
pub struct Keys {
    pub keyring: Arc<Keyring>,
    pub vault: Arc<SqliteKeyVault>,
    /// The key dir (absolute when it could be resolved).
    pub dir: PathBuf,
    _lock: Option<keys::KeyDir>,
}

impl Keys {
    /// Opens a key dir (`<data dir>/keys`, or a copy), with a shared lock so the keys are not
    /// rotated meanwhile. `PATH/keyring.db` may be given for the dir.
    pub fn open(path: &Path) -> Result<Self> {
        let dir = if path.file_name().is_some_and(|n| n == "keyring.db") && path.is_file() {
            path.parent().unwrap_or(path).to_path_buf()
        } else {
            path.to_path_buf()
        };
        let db = dir.join("keyring.db");
        if !db.is_file() {
            bail!(
                "{} is not a Tillit keyring (no keyring.db in it)",
                dir.display()
            );
        }
        if !dir.join("kek.key").is_file() && !dir.join("provider").is_file() {
            bail!(
                "{} is not a Tillit keyring (no kek.key or provider in it)",
                dir.display()
            );
        }
        let vault = Arc::new(SqliteKeyVault::open(&db)?);
        let (lock, keyring) = keys::open_dir(&dir, vault.clone())?;
        Ok(Self {
            keyring: Arc::new(keyring),
            vault,
            dir: std::fs::canonicalize(&dir).unwrap_or(dir),
            _lock: Some(lock),
        })
    }

    /// The keys of a running server (which holds the key dir's lock itself).
    pub fn of_server(data_dir: &Path, keyring: Arc<Keyring>) -> Result<Self> {
        let dir = data_dir.join("keys");
        let vault = Arc::new(SqliteKeyVault::open(&dir.join("keyring.db"))?);
        Ok(Self {
            keyring,
            vault,
            dir: std::fs::canonicalize(&dir).unwrap_or(dir),
            _lock: None,
        })
    }

    fn has(&self, id: &str) -> Result<bool> {
        Ok(self.vault.get(id)?.is_some())
    }

    /// The keyring's ledger of deleted tenants: tenant id → when (Unix seconds).
    fn deleted_tenants(&self) -> Result<BTreeMap<String, i64>> {
        Ok(self.vault.deleted_tenants()?.into_iter().collect())
    }

    /// A platform secret that must already exist (checking never makes keys).
    fn existing_secret(&self, name: &str) -> Result<Zeroizing<[u8; 32]>> {
        let id = format!("platform/secret/{name}");
        if !self.has(&id)? {
            bail!(
                "the keyring at {} has no key {id}: it is not the keyring this backup was made with",
                self.dir.display()
            );
        }
        Ok(self.keyring.platform_secret(name)?)
    }
}

/// Where a backup's security events go: a running server's group commit (scheduled backups),
/// or straight into a store (the CLI, as `tillit tenant export` writes its events).
pub enum Events<'a> {
    Server(&'a tillit_server::AppState),
    Store(&'a dyn Store),
}

impl Events<'_> {
    fn agent(&self, what: &str) -> String {
        match self {
            Events::Server(_) => format!("tillit serve (scheduled {what})"),
            Events::Store(_) => format!("tillit {what} (CLI)"),
        }
    }

    /// Appends one security event of `kind` to each tenant's log, in one batch (durable when
    /// this returns).
    async fn append(
        &self,
        kind: SecurityEventKind,
        ok: bool,
        at: OffsetDateTime,
        per_tenant: Vec<(TenantId, String)>,
    ) -> Result<()> {
        let agent = self.agent(match kind {
            SecurityEventKind::BackupRestored => "backup restore",
            _ => "backup create",
        });
        let mut batch = AuditBatch::default();
        for (tenant, detail) in per_tenant {
            let one = tillit_server::audit::security_batch(
                NewSecurityEvent {
                    at,
                    tenant: Some(tenant),
                    user: None,
                    username: None,
                    kind,
                    outcome_ok: ok,
                    detail,
                    ip: None,
                    user_agent: Some(agent.clone()),
                },
                None,
                None,
                None,
            );
            batch.events.extend(one.events);
            batch.security.extend(one.security);
        }
        if batch.events.is_empty() {
            return Ok(());
        }
        match self {
            Events::Server(state) => state
                .audit
                .append(batch)
                .await
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}")),
            Events::Store(store) => store
                .append_audit(batch)
                .await
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("the audit log cannot be written: {e}")),
        }
    }

    /// `backup.created` in every tenant's log of the backup.
    async fn created(&self, m: &Manifest, at: OffsetDateTime) -> Result<()> {
        let mut per_tenant = Vec::new();
        for t in &m.tenants {
            per_tenant.push((
                tenant_id(&t.id)?,
                format!(
                    "backup {} taken at {}: {} record(s) of this tenant in {} version(s), audit log size {}; encrypted, its keys kept apart in the keyring",
                    m.id, m.created_at, t.resources, t.versions, t.audit.size
                ),
            ));
        }
        self.append(SecurityEventKind::BackupCreated, true, at, per_tenant)
            .await
    }

    /// A scheduled backup that did not verify and was removed: `backup.created`, failed.
    pub async fn removed(&self, m: &Manifest, at: OffsetDateTime) -> Result<()> {
        let mut per_tenant = Vec::new();
        for t in &m.tenants {
            per_tenant.push((
                tenant_id(&t.id)?,
                format!(
                    "backup {} taken at {} did not verify and was removed",
                    m.id, m.created_at
                ),
            ));
        }
        self.append(SecurityEventKind::BackupCreated, false, at, per_tenant)
            .await
    }
}

fn tenant_id(id: &str) -> Result<TenantId> {
    TenantId::parse(id.to_string())
        .map_err(|e| anyhow::anyhow!("manifest.json: tenant id {id:?}: {e}"))
}

fn keyring_dir(given: Option<&Path>, m: &Manifest) -> PathBuf {
    given.map_or_else(|| PathBuf::from(&m.source.keyring), Path::to_path_buf)
}

fn random_hex(bytes: usize) -> Result<String> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow::anyhow!("the random number generator failed"))?;
    Ok(hex::encode(b))
}

fn random_key() -> Result<Zeroizing<[u8; 32]>> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut k = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(k.as_mut())
        .map_err(|_| anyhow::anyhow!("the random number generator failed"))?;
    Ok(k)
}

/// A folder removed when dropped unless kept: nothing half-written stays behind.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn create(path: PathBuf) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path, keep: false })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A folder to write into: absent, or an empty directory.
fn check_target(path: &Path, what: &str) -> Result<()> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: {what} only into a new or empty folder",
                    path.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// A staging folder beside `target`, renamed onto it when complete.
fn staging_beside(target: &Path) -> Result<TempDir> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    TempDir::create(parent.join(format!(".{name}.partial-{}", random_hex(4)?)))
}

/// Renames the complete staging folder onto `target` (an empty `target` is replaced).
fn publish(mut staging: TempDir, target: &Path) -> Result<()> {
    sync_dir(&staging.path);
    std::fs::rename(&staging.path, target)
        .with_context(|| format!("cannot move the result to {}", target.display()))?;
    staging.keep = true;
    if let Some(parent) = target.parent() {
        sync_dir(parent);
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn bar(show: bool, len: u64, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    // Drawn on standard error only when it is a terminal.
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{spinner} {msg:<28} {bar:40} {bytes}/{total_bytes} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_message(what.to_string());
    b
}

/// A path inside a data dir, as the manifest names it: relative, no `..`.
fn safe_relative(p: &str) -> Result<PathBuf> {
    let path = PathBuf::from(p);
    if p.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("manifest.json names an unsafe path {p:?}");
    }
    Ok(path)
}

fn file_context(id: &str, path: &str) -> Vec<u8> {
    format!("tillit-backup/v1\0{id}\0{path}").into_bytes()
}

fn data_key_context(id: &str) -> Vec<u8> {
    format!("tillit-backup/v1/data-key\0{id}").into_bytes()
}

/// AES-256-GCM of a 32-byte key: nonce || ciphertext || tag.
fn wrap_key(wrapping: &[u8; 32], aad: &[u8], key: &[u8; 32]) -> Result<Vec<u8>> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, wrapping).map_err(|_| anyhow::anyhow!("bad key"))?,
    );
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| anyhow::anyhow!("the random number generator failed"))?;
    let mut buf = key.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| anyhow::anyhow!("sealing the backup key failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

fn unwrap_key(wrapping: &[u8; 32], aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
    let bad = || {
        anyhow::anyhow!(
            "manifest.json: the backup's data key does not open with this keyring (another keyring, or the key was changed)"
        )
    };
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, wrapping).map_err(|_| bad())?);
    if wrapped.len() < NONCE_LEN {
        return Err(bad());
    }
    let (nonce, ct) = wrapped.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
    let mut buf = Zeroizing::new(ct.to_vec());
    let plain = k
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| bad())?;
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return Err(bad());
    }
    key.copy_from_slice(plain);
    Ok(key)
}

/// What `create` wrote.
pub struct Created {
    pub manifest: Manifest,
    /// Bytes on disk of the backup folder.
    pub bytes: u64,
}

/// The files of a data dir that go into a backup besides the database: its TLS material.
fn extra_files(data_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(data_dir.join("tls")) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file())
                && let Some(name) = e.file_name().to_str()
                && !name.starts_with('.')
                && !name.ends_with(".tmp")
            {
                out.push(format!("tls/{name}"));
            }
        }
    }
    out.sort();
    out
}

/// Takes a backup of `data_dir` into the new folder `out`.
pub async fn create(
    data_dir: &Path,
    keys: &Keys,
    log_name: &str,
    out: &Path,
    clock: &dyn Clock,
    progress: bool,
    events: Events<'_>,
) -> Result<Created> {
    check_target(out, "back up")?;
    let db = data_dir.join("tillit.db");
    if !db.is_file() {
        bail!("{} has no database (tillit.db)", data_dir.display());
    }
    let staging = staging_beside(out)?;
    // The plain copy stays in the data dir, which holds the plain database anyway.
    let plain = TempDir::create(data_dir.join(format!(".backup-{}", random_hex(4)?)))?;
    let id = random_hex(16)?;
    let created_at = clock.now();

    let snapshot = plain.path.join("tillit.db");
    let b = bar(progress, 0, "copying the database");
    {
        let (db, snapshot, b) = (db.clone(), snapshot.clone(), b.clone());
        tokio::task::spawn_blocking(move || {
            snap::snapshot(&db, &snapshot, |done, total| {
                // Pages of 4 KiB.
                b.set_length(total * 4096);
                b.set_position(done * 4096);
            })
        })
        .await
        .context("the copy stopped")?
        .context("copying the database failed")?;
    }
    b.finish_and_clear();

    let (tenants, schema_version) = summarize(&snapshot, &keys.keyring).await?;
    {
        let s = snapshot.clone();
        tokio::task::spawn_blocking(move || snap::make_self_contained(&s))
            .await
            .context("the copy stopped")??;
    }

    let key_ids = required_keys(keys, &tenants)?;
    let data_key = random_key()?;
    let wrapping = keys.keyring.platform_secret(WRAPPING_SECRET)?;
    let wrapped = wrap_key(&wrapping, &data_key_context(&id), &data_key)?;
    drop(wrapping);

    let mut sources: Vec<(String, PathBuf)> = vec![("tillit.db".into(), snapshot.clone())];
    for f in extra_files(data_dir) {
        let p = data_dir.join(&f);
        sources.push((f, p));
    }
    let mut files = Vec::new();
    for (path, src) in sources {
        let stored = format!("{STORED_DIR}/{path}.enc");
        let dst = staging.path.join(&stored);
        if let Some(parent) = dst.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let len = std::fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
        let b = bar(progress && len > 1 << 20, len, &format!("sealing {path}"));
        let (key, ctx, b2) = (data_key.clone(), file_context(&id, &path), b.clone());
        let d = tokio::task::spawn_blocking(move || {
            seal::seal_file(&key, &ctx, &src, &dst, |n| b2.set_position(n))
        })
        .await
        .context("sealing stopped")?
        .with_context(|| format!("sealing {path}"))?;
        b.finish_and_clear();
        files.push(manifest::File {
            path,
            stored,
            size: d.plain_size,
            sha256: hex::encode(d.plain_sha256),
            sealed_size: d.sealed_size,
            sealed_sha256: hex::encode(d.sealed_sha256),
        });
    }
    drop(plain);

    let signer = manifest::Signer::from_seed(&*keys.keyring.platform_secret(SIGNING_SECRET)?)?;
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let mut patient_keys = std::collections::BTreeMap::new();
    for t in &tenants {
        patient_keys.insert(t.id.clone(), key_ids.1.get(&t.id).copied().unwrap_or(0));
    }
    let m = Manifest {
        format: manifest::FORMAT.into(),
        version: manifest::VERSION,
        id,
        created_at: created_at
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)?,
        tillit_version: env!("CARGO_PKG_VERSION").into(),
        schema_version,
        source: manifest::Source {
            data_dir: abs(data_dir),
            keyring: keys.dir.display().to_string(),
            audit_log_name: log_name.into(),
        },
        keys: manifest::Keys {
            kek_check_value: keys.keyring.kek_fingerprint(),
            wrapped_data_key: B64.encode(wrapped),
            wrapping_key: format!("platform/secret/{WRAPPING_SECRET}"),
            signing_key: format!("platform/secret/{SIGNING_SECRET}"),
            signing_public_key: signer.public_key(),
            required: key_ids.0,
            patient_keys,
        },
        tenants,
        files,
    };
    let mut text = serde_json::to_string_pretty(&m)?;
    text.push('\n');
    let sig = signer.sign(&m.keys.signing_key, text.as_bytes());
    crate::certs::write_private(&staging.path.join(MANIFEST), text.as_bytes())?;
    crate::certs::write_private(
        &staging.path.join(SIGNATURE),
        format!("{}\n", serde_json::to_string_pretty(&sig)?).as_bytes(),
    )?;
    let bytes = dir_size(&staging.path);
    // In every tenant's log before the backup exists (nothing leaves without its event);
    // a log that cannot be written stops the backup.
    events.created(&m, clock.now()).await?;
    publish(staging, out)?;
    Ok(Created { manifest: m, bytes })
}

/// Bytes of the files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Tenants of a copied database with their counts and audit heads, and its schema version.
async fn summarize(db: &Path, keyring: &Arc<Keyring>) -> Result<(Vec<manifest::Tenant>, i64)> {
    let store = SqliteStore::open(db, Arc::new(KeyringCipher(keyring.clone())))
        .map_err(|e| anyhow::anyhow!("the copied database does not open: {e}"))?;
    let mut ids: Vec<(TenantId, String)> = store
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    for t in store.audit_tenants().await? {
        if !ids.iter().any(|(id, _)| *id == t) {
            ids.push((t, String::new()));
        }
    }
    let mut out = Vec::new();
    for (id, name) in ids {
        let head = store.audit_head(&id).await?;
        let latest = store.latest_audit_checkpoint(&id).await?;
        let counts = store.record_counts(&id).await?;
        out.push(manifest::Tenant {
            id: id.to_string(),
            name,
            resources: counts.resources,
            versions: counts.versions,
            audit: manifest::AuditHead {
                size: head.size,
                root: hex::encode(head.root),
                checkpoint_size: latest.map(|c| c.size),
            },
        });
    }
    Ok((out, tillit_store_sqlite::SCHEMA_VERSION))
}

/// The platform and tenant key ids the data needs, and patient keys counted per tenant.
fn required_keys(
    keys: &Keys,
    tenants: &[manifest::Tenant],
) -> Result<(Vec<String>, std::collections::BTreeMap<String, u64>)> {
    let ids = keys.vault.ids()?;
    let mut required = BTreeSet::new();
    required.insert(format!("platform/secret/{WRAPPING_SECRET}"));
    required.insert(format!("platform/secret/{SIGNING_SECRET}"));
    let mut patients = std::collections::BTreeMap::new();
    for id in &ids {
        if id.starts_with("platform/") {
            required.insert(id.clone());
        }
    }
    for t in tenants {
        for id in [format!("tenant/{}", t.id), format!("tenant-index/{}", t.id)] {
            if ids.contains(&id) {
                required.insert(id);
            }
        }
        let prefix = format!("patient/{}/", t.id);
        patients.insert(
            t.id.clone(),
            ids.iter().filter(|i| i.starts_with(&prefix)).count() as u64,
        );
    }
    Ok((required.into_iter().collect(), patients))
}

fn read_manifest(dir: &Path) -> Result<(Manifest, Vec<u8>, manifest::Signature)> {
    if !dir.is_dir() {
        bail!("{} is not a backup folder", dir.display());
    }
    let read = |name: &str| -> Result<Vec<u8>> {
        let p = dir.join(name);
        let len = std::fs::metadata(&p)
            .with_context(|| format!("the backup has no {name}"))?
            .len();
        if len > 64 << 20 {
            bail!("{name} is too large to be a manifest");
        }
        std::fs::read(&p).with_context(|| format!("cannot read {name}"))
    };
    let bytes = read(MANIFEST)?;
    let sig: manifest::Signature = serde_json::from_slice(&read(SIGNATURE)?)
        .map_err(|e| anyhow::anyhow!("manifest.sig is not a backup signature: {e}"))?;
    let m = Manifest::parse(&bytes)?;
    Ok((m, bytes, sig))
}

/// Opens a backup with `keys` into `dest` (an empty folder): checks the signature, that the
/// keys it needs are there, and every file's hashes. Returns the manifest and notes.
///
/// A tenant key may be missing only for a tenant the keyring's ledger of deleted tenants
/// names (`deleted`): destroyed by `tillit tenant delete` after the backup was taken. Any
/// other missing key is a wrong or damaged keyring, and fails.
fn unpack(
    dir: &Path,
    keys: &Keys,
    deleted: &BTreeMap<String, i64>,
    dest: &Path,
    progress: bool,
) -> Result<(Manifest, Vec<String>)> {
    let (m, bytes, sig) = read_manifest(dir)?;
    let signer = manifest::Signer::from_seed(&*keys.existing_secret(SIGNING_SECRET)?)?;
    manifest::check(&bytes, &sig, &signer.public_key())?;
    let notes = Vec::new();
    for id in &m.keys.required {
        if keys.has(id)? {
            continue;
        }
        match id
            .strip_prefix("tenant/")
            .or(id.strip_prefix("tenant-index/"))
        {
            // Destroyed with the tenant (tenant delete): noted by the check of the tenant.
            Some(t) if deleted.contains_key(t) => {}
            Some(t) => bail!(
                "the keyring at {} lacks key {id} of tenant {t}, which this backup needs, and its ledger of deleted tenants does not name the tenant: not the keyring the backup was made with, or keys are missing from it",
                keys.dir.display()
            ),
            None => bail!(
                "the keyring at {} lacks key {id}, which this backup needs",
                keys.dir.display()
            ),
        }
    }
    let wrapped = B64
        .decode(&m.keys.wrapped_data_key)
        .map_err(|_| anyhow::anyhow!("manifest.json: the wrapped data key is not base64"))?;
    let wrapping = keys.existing_secret(WRAPPING_SECRET)?;
    let data_key = unwrap_key(&wrapping, &data_key_context(&m.id), &wrapped)?;
    drop(wrapping);

    let mut expected: BTreeSet<PathBuf> = [MANIFEST, SIGNATURE].iter().map(PathBuf::from).collect();
    if !m.files.iter().any(|f| f.path == "tillit.db") {
        bail!("manifest.json lists no database (tillit.db)");
    }
    for f in &m.files {
        let path = safe_relative(&f.path)?;
        let stored = safe_relative(&f.stored)?;
        expected.insert(stored.clone());
        let src = dir.join(&stored);
        if !src.is_file() {
            bail!("{}: missing from the backup", f.stored);
        }
        let dst = dest.join(&path);
        if let Some(parent) = dst.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let b = bar(
            progress && f.sealed_size > 1 << 20,
            f.sealed_size,
            &format!("opening {}", f.path),
        );
        let b2 = b.clone();
        let d = seal::open_file(
            &data_key,
            &file_context(&m.id, &f.path),
            &src,
            Some(&dst),
            |n| b2.set_position(n),
        );
        b.finish_and_clear();
        let d = match d {
            Ok(d) => d,
            Err(seal::SealError::Changed) => bail!(
                "{}: the file was changed: its content does not open with the backup's key",
                f.stored
            ),
            Err(e) => bail!("{}: {e}", f.stored),
        };
        if hex::encode(d.sealed_sha256) != f.sealed_sha256 || d.sealed_size != f.sealed_size {
            bail!(
                "{}: the file was changed: its SHA-256 does not match the manifest",
                f.stored
            );
        }
        if hex::encode(d.plain_sha256) != f.sha256 || d.plain_size != f.size {
            bail!(
                "{}: the restored {} does not match the SHA-256 in the manifest",
                f.stored,
                f.path
            );
        }
    }
    // Nothing else may be in the folder.
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.join(&rel))?.flatten() {
            let r = rel.join(e.file_name());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(r);
            } else if !expected.contains(&r) {
                bail!(
                    "{}: not part of the backup (not in manifest.json)",
                    r.display()
                );
            }
        }
    }
    Ok((m, notes))
}

/// What a check of a restored database found.
pub struct Check {
    pub backup_id: String,
    pub created_at: String,
    pub files: usize,
    pub tenants: Vec<TenantCheck>,
    pub notes: Vec<String>,
}

pub struct TenantCheck {
    pub id: String,
    pub name: String,
    pub resources: u64,
    pub audit: String,
    pub sampled: usize,
    pub opened: usize,
    /// Sampled records whose patient key is destroyed (erased).
    pub erased: usize,
    /// When the tenant was deleted, if the keyring's ledger of deleted tenants names it
    /// (after the backup was taken): nothing of it is opened, and a restore drops it.
    pub deleted_at: Option<String>,
}

impl Check {
    pub fn print(&self) {
        println!(
            "backup {} taken {}: signature ok, {} file(s) match their SHA-256",
            self.backup_id, self.created_at, self.files
        );
        for t in &self.tenants {
            match &t.deleted_at {
                Some(at) => println!(
                    "tenant {} ({}): {} record(s); deleted at {at} (the keyring's ledger of deleted tenants): its keys are destroyed, nothing of it opened",
                    t.id, t.name, t.resources
                ),
                None => println!(
                    "tenant {} ({}): {} record(s); sampled {}: {} opened, {} erased; audit log: {}",
                    t.id, t.name, t.resources, t.sampled, t.opened, t.erased, t.audit
                ),
            }
        }
        for n in &self.notes {
            println!("note: {n}");
        }
    }
}

/// Checks a restored database against its manifest: tenants, counts and audit heads, a
/// full audit verification of each tenant's log, and a sample of records opened. A tenant in
/// `deleted` (the keyring's ledger of deleted tenants) is checked for counts and audit head
/// only: its keys are destroyed, and nothing of it is opened (opening would make new keys).
async fn check_restored(
    store: &SqliteStore,
    keys: &Keys,
    m: &Manifest,
    deleted: &BTreeMap<String, i64>,
    progress: bool,
) -> Result<Vec<TenantCheck>> {
    let mut found: Vec<String> = store
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| t.id.to_string())
        .collect();
    for t in store.audit_tenants().await? {
        if !found.contains(&t.to_string()) {
            found.push(t.to_string());
        }
    }
    let listed: BTreeSet<&str> = m.tenants.iter().map(|t| t.id.as_str()).collect();
    if let Some(extra) = found.iter().find(|t| !listed.contains(t.as_str())) {
        bail!("tillit.db holds tenant {extra}, which manifest.json does not list");
    }
    let log_name = &m.source.audit_log_name;
    let any_log = m.tenants.iter().any(|t| t.audit.size > 0);
    let verifier = if !any_log {
        None
    } else if keys.has("platform/secret/audit-signing")? {
        Some(checkpoints::verifier(&keys.keyring, log_name).map_err(|e| anyhow::anyhow!("{e}"))?)
    } else {
        // No checkpoint was ever signed (the signing key is made with the first one): a
        // verifier of a throwaway key, which any checkpoint in the log would fail.
        let seed = random_key()?;
        let key = tillit_audit::CheckpointSigner::from_seed(log_name, &seed)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .verifier_key();
        Some(tillit_audit::CheckpointVerifier::parse(&key).map_err(|e| anyhow::anyhow!("{e}"))?)
    };
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    let mut out = Vec::new();
    for t in &m.tenants {
        let id = TenantId::parse(t.id.clone())
            .map_err(|e| anyhow::anyhow!("manifest.json: tenant id {:?}: {e}", t.id))?;
        if !found.contains(&t.id) {
            bail!("tillit.db lacks tenant {} that manifest.json lists", t.id);
        }
        let counts = store.record_counts(&id).await?;
        if counts.resources != t.resources || counts.versions != t.versions {
            bail!(
                "tillit.db: tenant {} has {} record(s) in {} version(s), the manifest says {} in {}",
                t.id,
                counts.resources,
                counts.versions,
                t.resources,
                t.versions
            );
        }
        let head = store.audit_head(&id).await?;
        if head.size != t.audit.size || hex::encode(head.root) != t.audit.root {
            bail!(
                "tillit.db: the audit log of tenant {} has {} entries (root {}), the manifest says {} (root {})",
                t.id,
                head.size,
                hex::encode(head.root),
                t.audit.size,
                t.audit.root
            );
        }
        if let Some(at) = deleted.get(&t.id) {
            out.push(TenantCheck {
                id: t.id.clone(),
                name: t.name.clone(),
                resources: counts.resources,
                audit: "not verified: the tenant was deleted".into(),
                sampled: 0,
                opened: 0,
                erased: 0,
                deleted_at: Some(unix_time(*at)),
            });
            continue;
        }
        let audit = match &verifier {
            Some(v) if head.size > 0 => {
                let b = bar(progress && head.size > 10_000, head.size, "audit log");
                b.set_style(
                    ProgressStyle::with_template("{spinner} {msg:<28} {bar:40} {pos}/{len}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                let b2 = b.clone();
                let check = checkpoints::verify_tenant(&shared, v, log_name, &id, move |n| {
                    b2.set_position(n)
                })
                .await?;
                b.finish_and_clear();
                if !check.is_ok() {
                    bail!(
                        "tillit.db: the audit log of tenant {} does not verify: {check}",
                        t.id
                    );
                }
                check.to_string()
            }
            _ => "empty".to_string(),
        };
        let (mut sampled, mut opened, mut erased) = (0, 0, 0);
        if keys.has(&format!("tenant/{}", t.id))? {
            for v in store.sample_sealed_versions(&id, SAMPLE_PER_TENANT).await? {
                sampled += 1;
                let ctx = format!("{}/{}/_history/{}", v.resource_type, v.id, v.version);
                let r = match &v.patient {
                    Some(p) => keys.keyring.open_for_patient(&t.id, p, &ctx, &v.body),
                    None => keys.keyring.open_for_tenant(Some(&t.id), &ctx, &v.body),
                };
                match r {
                    Ok(_) => opened += 1,
                    Err(KeyError::Missing(_)) if v.patient.is_some() => erased += 1,
                    Err(e) => bail!(
                        "tillit.db: record {ctx} of tenant {} does not open with the keyring: {e}",
                        t.id
                    ),
                }
            }
        }
        out.push(TenantCheck {
            id: t.id.clone(),
            name: t.name.clone(),
            resources: counts.resources,
            audit,
            sampled,
            opened,
            erased,
            deleted_at: None,
        });
    }
    Ok(out)
}

/// Unix seconds as RFC 3339.
fn unix_time(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

/// The notes of a check about tenants deleted since the backup was taken.
fn deleted_notes(tenants: &[TenantCheck], restoring: bool) -> Vec<String> {
    tenants
        .iter()
        .filter_map(|t| {
            t.deleted_at.as_ref().map(|at| {
                format!(
                    "tenant {} ({}) was deleted at {at}, after this backup was taken: its keys are destroyed and its data cannot be read; {}",
                    t.name,
                    t.id,
                    if restoring {
                        "its rows are dropped from the restored data dir"
                    } else {
                        "a restore drops it"
                    }
                )
            })
        })
        .collect()
}

fn open_restored(db: &Path, keyring: &Arc<Keyring>) -> Result<SqliteStore> {
    SqliteStore::open(db, Arc::new(KeyringCipher(keyring.clone())))
        .map_err(|e| anyhow::anyhow!("tillit.db: the restored database does not open: {e}"))
}

/// `tillit backup verify`: restores into a scratch folder (removed afterwards) and checks.
pub async fn verify(dir: &Path, keys: &Keys, progress: bool) -> Result<Check> {
    let scratch = TempDir::create(
        std::env::temp_dir().join(format!("tillit-backup-verify-{}", random_hex(8)?)),
    )?;
    let deleted = keys.deleted_tenants()?;
    let (m, mut notes) = {
        let (dir, dest) = (dir.to_path_buf(), scratch.path.clone());
        // Reads and decrypts: blocking work.
        tokio::task::block_in_place(|| unpack(&dir, keys, &deleted, &dest, progress))?
    };
    let store = open_restored(&scratch.path.join("tillit.db"), &keys.keyring)?;
    let tenants = check_restored(&store, keys, &m, &deleted, progress).await?;
    drop(store);
    notes.extend(deleted_notes(&tenants, false));
    Ok(Check {
        backup_id: m.id.clone(),
        created_at: m.created_at.clone(),
        files: m.files.len(),
        tenants,
        notes,
    })
}

/// What `restore` did.
pub struct Restored {
    pub check: Check,
    pub erasures: usize,
    /// Record versions removed by re-applied erasures.
    pub payloads_dropped: u64,
    pub keys_destroyed: usize,
    /// Tenants deleted after the backup was taken, dropped from the restored data dir.
    pub tenants_dropped: Vec<DroppedTenant>,
}

/// A tenant the keyring's ledger of deleted tenants names, dropped on restore.
pub struct DroppedTenant {
    pub id: String,
    pub name: String,
    pub deleted_at: String,
    /// Rows removed, all tables together.
    pub rows: u64,
}

/// `tillit backup restore`: a new data dir from a backup, with a copy of the keyring.
pub async fn restore(
    dir: &Path,
    new: &Path,
    keyring: Option<&Path>,
    clock: &dyn Clock,
    progress: bool,
) -> Result<Restored> {
    check_target(new, "restore")?;
    let (m, ..) = read_manifest(dir)?;
    let live = Keys::open(&keyring_dir(keyring, &m))?;
    // Read under the keyring's lock, with the copy below: the same ledger.
    let deleted = live.deleted_tenants()?;
    let staging = staging_beside(new)?;
    let (m, mut notes) =
        tokio::task::block_in_place(|| unpack(dir, &live, &deleted, &staging.path, progress))?;

    // The restored data dir's own keyring: a consistent copy of the one given, taken under
    // its shared lock (so not mid-rotation), erasures ledger included.
    let keys_dir = staging.path.join("keys");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(&keys_dir)?;
    }
    {
        let (src, dst) = (live.dir.join("keyring.db"), keys_dir.join("keyring.db"));
        tokio::task::spawn_blocking(move || snap::snapshot(&src, &dst, |_, _| {}))
            .await
            .context("copying the keyring stopped")?
            .context("copying the keyring failed")?;
    }
    for f in KEY_FILES {
        let src = live.dir.join(f);
        if src.is_file() {
            let bytes = Zeroizing::new(std::fs::read(&src)?);
            crate::certs::write_private(&keys_dir.join(f), &bytes)?;
        }
    }
    drop(live);
    let keys = Keys::open(&keys_dir)?;

    let store = open_restored(&staging.path.join("tillit.db"), &keys.keyring)?;
    // The backup as it was taken checks out...
    let tenants = check_restored(&store, &keys, &m, &deleted, progress).await?;
    notes.extend(deleted_notes(&tenants, true));
    // ... then tenants deleted since go, with the store's own removal (every table the
    // deletion itself clears), under a tombstone in the restored database...
    let mut tenants_dropped = Vec::new();
    for t in tenants.iter().filter(|t| t.deleted_at.is_some()) {
        let at = deleted.get(&t.id).copied().unwrap_or_default();
        let when = OffsetDateTime::from_unix_timestamp(at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let draft = serde_json::json!({
            "type": DROPPED_ON_RESTORE,
            "version": 1,
            "tenant": {"id": t.id, "name": t.name},
            "deleted_at": unix_time(at),
            "backup": {"id": m.id, "created_at": m.created_at},
            "note": "deleted after this backup was taken (the keyring's ledger of deleted tenants); dropped on restore. Its deletion receipt is the one issued when it was deleted.",
        });
        let removal = store
            .remove_tenant(&tenant_id(&t.id)?, &draft.to_string(), when)
            .await
            .with_context(|| {
                format!(
                    "dropping tenant {} ({}), deleted after the backup was taken, failed",
                    t.name, t.id
                )
            })?;
        tenants_dropped.push(DroppedTenant {
            id: t.id.clone(),
            name: t.name.clone(),
            deleted_at: unix_time(at),
            rows: removal.rows.values().sum(),
        });
    }
    // ... then re-apply every erasure the ledger knows (those before the backup are already in it;
    // doing them again changes nothing).
    let listed: BTreeSet<&str> = m.tenants.iter().map(|t| t.id.as_str()).collect();
    let taken = taken_at(&m).map_or(i64::MIN, OffsetDateTime::unix_timestamp);
    let (mut erasures, mut since, mut dropped, mut destroyed) = (0, 0, 0, 0);
    for (tenant, patient, at) in keys.vault.erasures()? {
        if !listed.contains(tenant.as_str()) || deleted.contains_key(&tenant) {
            continue;
        }
        erasures += 1;
        if at >= taken {
            since += 1;
        }
        dropped += reapply_erasure(&store, &tenant, &patient).await?;
        if keys.keyring.destroy_patient_key(&tenant, &patient)? {
            destroyed += 1;
        }
    }
    // The restore is in every restored tenant's log.
    let mut per_tenant = Vec::new();
    for t in tenants.iter().filter(|t| t.deleted_at.is_none()) {
        per_tenant.push((
            tenant_id(&t.id)?,
            format!(
                "data dir restored from backup {} taken at {}: {erasures} erasure(s) re-applied, {} deleted tenant(s) dropped",
                m.id,
                m.created_at,
                tenants_dropped.len()
            ),
        ));
    }
    Events::Store(&store)
        .append(
            SecurityEventKind::BackupRestored,
            true,
            clock.now(),
            per_tenant,
        )
        .await?;
    drop(store);
    drop(keys);
    let _ = std::fs::remove_file(keys_dir.join(".lock"));
    if erasures > 0 {
        notes.push(format!(
            "{erasures} erasure(s) from the keyring's ledger re-applied ({since} recorded after the backup was taken)"
        ));
    }
    publish(staging, new)?;
    Ok(Restored {
        check: Check {
            backup_id: m.id.clone(),
            created_at: m.created_at.clone(),
            files: m.files.len(),
            tenants,
            notes,
        },
        erasures,
        payloads_dropped: dropped,
        keys_destroyed: destroyed,
        tenants_dropped,
    })
}

/// Re-applies a patient's erasure to a restored database with the store's own erasure (the
/// same rows go as in the erasure itself): every resource with a version sealed under the
/// patient's key is removed, with its index rows and what it derived; the patient's sealed
/// profile is cleared. (A live erasure first re-seals what the law requires kept under the
/// tenant key; from a backup taken before it, those versions cannot be opened any more, the
/// key being gone.) Versions already re-sealed under the tenant key stay. Returns the
/// versions removed.
async fn reapply_erasure(store: &SqliteStore, tenant: &str, patient: &str) -> Result<u64> {
    let (t, p) = (
        TenantId::parse(tenant.to_string())
            .map_err(|e| anyhow::anyhow!("the erasure ledger names tenant {tenant:?}: {e}"))?,
        PersonId::parse(patient.to_string())
            .map_err(|e| anyhow::anyhow!("the erasure ledger names patient {patient:?}: {e}"))?,
    );
    let mut remove = BTreeSet::new();
    for v in store.patient_versions(&t, &p).await? {
        if v.key_scope == KeyScope::Patient && v.meta.patient.as_deref() == Some(patient) {
            remove.insert((v.meta.resource_type.clone(), v.meta.id.clone()));
        }
    }
    let done = store
        .erase_patient_data(
            &t,
            &PatientErasure {
                patient: p,
                remove: remove.into_iter().collect(),
                reseal: Vec::new(),
            },
        )
        .await?;
    Ok(done.versions_removed)
}

/// When a backup was taken, from its manifest.
pub fn taken_at(m: &Manifest) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(&m.created_at, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside_the_folder() {
        assert!(safe_relative("tillit.db").is_ok());
        assert!(safe_relative("data/tls/server.pem.enc").is_ok());
        for bad in ["", "/etc/passwd", "../x", "data/../../x", "./x"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_data_key_opens_only_with_its_wrapping_key_and_backup_id() {
        let (w, k) = ([1u8; 32], [2u8; 32]);
        let wrapped = wrap_key(&w, &data_key_context("a"), &k).unwrap();
        assert_eq!(
            *unwrap_key(&w, &data_key_context("a"), &wrapped).unwrap(),
            k
        );
        assert!(unwrap_key(&w, &data_key_context("b"), &wrapped).is_err());
        assert!(unwrap_key(&[3u8; 32], &data_key_context("a"), &wrapped).is_err());
        assert!(unwrap_key(&w, &data_key_context("a"), &wrapped[..10]).is_err());
    }

    #[test]
    fn a_target_must_be_absent_or_empty() {
        let d = std::env::temp_dir().join(format!("tillit-target-{}", random_hex(8).unwrap()));
        assert!(check_target(&d, "restore").is_ok());
        std::fs::create_dir_all(&d).unwrap();
        assert!(check_target(&d, "restore").is_ok());
        std::fs::write(d.join("x"), "x").unwrap();
        let e = check_target(&d, "restore").unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
