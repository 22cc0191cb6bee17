//! The key-encryption key's provider and `tillit keys rotate`.
//!
//! Default provider: a 32-byte key file `keys/kek.key` (mode 0600). Alternative: a passphrase
//! in `TILLIT_KEK_PASSPHRASE`, stretched with Argon2id (salt in `keys/kek.salt`). The choice is
//! recorded in `keys/provider` when the data dir is created and checked every start.
//! Every command holds a shared lock on `keys/.lock`; rotation needs it exclusively, so keys
//! are never re-wrapped under a running server's feet.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use tillit_crypto::keyring::{load_key_file, rotate_key_file};
use tillit_crypto::{Kek, KeyVault, Keyring};

pub const PASSPHRASE_ENV: &str = "TILLIT_KEK_PASSPHRASE";
pub const NEW_PASSPHRASE_ENV: &str = "TILLIT_NEW_KEK_PASSPHRASE";

pub struct KeyDir {
    _lock: File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    File,
    Passphrase,
}

fn lock_file(dir: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .with_context(|| format!("cannot open {}", dir.join(".lock").display()))
}

fn provider(dir: &Path) -> Result<Provider> {
    let marker = dir.join("provider");
    let env = std::env::var(PASSPHRASE_ENV).is_ok();
    let recorded = std::fs::read_to_string(&marker)
        .ok()
        .map(|s| s.trim().to_string());
    let p = match recorded.as_deref() {
        Some("passphrase") => Provider::Passphrase,
        Some("file") => Provider::File,
        Some(other) => bail!("{}: unknown key provider '{other}'", marker.display()),
        // Data dirs made before the marker existed use the key file.
        None if dir.join("kek.key").exists() => Provider::File,
        None if env => Provider::Passphrase,
        None => Provider::File,
    };
    if recorded.is_none() {
        std::fs::write(
            &marker,
            if p == Provider::File {
                "file\n"
            } else {
                "passphrase\n"
            },
        )?;
    }
    match (p, env) {
        (Provider::Passphrase, false) => {
            bail!("this data dir's keys are protected by a passphrase; set {PASSPHRASE_ENV}")
        }
        (Provider::File, true) => {
            bail!("this data dir's keys use the key file keys/kek.key; unset {PASSPHRASE_ENV}")
        }
        _ => Ok(p),
    }
}

fn kek(dir: &Path, p: Provider, vault: &dyn KeyVault) -> Result<Kek> {
    Ok(match p {
        Provider::File => load_key_file(&dir.join("kek.key"), vault)?,
        Provider::Passphrase => {
            let pass = zeroize::Zeroizing::new(std::env::var(PASSPHRASE_ENV).unwrap_or_default());
            let kek = Kek::from_passphrase(&pass, &dir.join("kek.salt"))?;
            if !Keyring::kek_matches(&kek, vault)? {
                bail!("the passphrase in {PASSPHRASE_ENV} does not open this data dir's keys");
            }
            kek
        }
    })
}

/// Opens the key dir with a shared lock and returns the keyring.
pub fn open(data_dir: &Path, vault: Arc<dyn KeyVault>) -> Result<(KeyDir, Keyring)> {
    open_dir(&data_dir.join("keys"), vault)
}

/// Opens a key dir (the `keys` folder of a data dir, or a copy of one) with a shared lock.
pub fn open_dir(dir: &Path, vault: Arc<dyn KeyVault>) -> Result<(KeyDir, Keyring)> {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    let lock = lock_file(&dir)?;
    lock.try_lock_shared().map_err(|_| {
        anyhow::anyhow!(
            "the keys are being rotated; try again when `tillit keys rotate` has finished"
        )
    })?;
    let p = provider(&dir)?;
    let kek = kek(&dir, p, vault.as_ref())?;
    Ok((KeyDir { _lock: lock }, Keyring::new(kek, vault)))
}

/// Re-wraps every tenant key under a new KEK. No data is re-encrypted.
pub fn rotate(data_dir: &Path, vault: Arc<dyn KeyVault>) -> Result<usize> {
    let dir = data_dir.join("keys");
    if !dir.is_dir() {
        bail!("{} has no keys", data_dir.display());
    }
    let lock = lock_file(&dir)?;
    lock.try_lock().map_err(|_| anyhow::anyhow!("the keys are in use (is the server running?); stop it and run `tillit keys rotate` again"))?;
    let n = match provider(&dir)? {
        Provider::File => rotate_key_file(&dir.join("kek.key"), vault)?,
        Provider::Passphrase => {
            let new =
                zeroize::Zeroizing::new(std::env::var(NEW_PASSPHRASE_ENV).map_err(|_| {
                    anyhow::anyhow!("set the new passphrase in {NEW_PASSPHRASE_ENV}")
                })?);
            let old = kek(&dir, Provider::Passphrase, vault.as_ref())?;
            let new_kek = Kek::from_passphrase(&new, &dir.join("kek.salt"))?;
            Keyring::new(old, vault).rotate_kek(new_kek)?
        }
    };
    drop(lock);
    Ok(n)
}

impl KeyDir {
    /// Turns this command's shared lock into an exclusive one, for work that must not run
    /// beside a server or any other command on the same keys (deleting a tenant). Fails,
    /// and the command must stop, while another process holds the keys.
    pub fn make_exclusive(&self) -> Result<()> {
        self._lock.try_lock().map_err(|_| {
            anyhow::anyhow!(
                "the keys are in use by another Tillit process (is the server running?); stop it and run this again"
            )
        })
    }
}
