//! Envelope encryption: a key-encryption key (KEK) from a provider wraps one data key and one
//! blind-index key per tenant; each tenant data key wraps one data key per patient. Sealed
//! values are AES-256-GCM with the caller's context as AAD, so a ciphertext cannot be moved
//! to another tenant, patient or field. Wrapped keys live in a [`KeyVault`] kept apart from the
//! data: destroying a patient's key makes every copy of that patient's data unreadable.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

const FORMAT_V1: u8 = 1;
type KeyBytes = Zeroizing<[u8; 32]>;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("key vault: {0}")]
    Vault(String),
    #[error("the key for {0} is missing or destroyed")]
    Missing(String),
    #[error("decryption failed: wrong key or tampered data")]
    Open,
    #[error("random number generator failed")]
    Rng,
    /// The patient's data has been erased: their key is destroyed and never made again.
    #[error("the data of patient {0} has been erased; their key is destroyed")]
    Erased(String),
    /// An erasure of the patient's data is under way: nothing new is sealed for them now.
    #[error("an erasure of the data of patient {0} is in progress")]
    Erasing(String),
}

/// One entry of the erasure ledger: a patient whose key was destroyed, and when (Unix
/// seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub tenant: String,
    pub patient: String,
    pub at: i64,
}

/// One entry of the ledger of deleted tenants: a tenant whose keys were all destroyed by a
/// tenant deletion (`tillit tenant delete`), and when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDeletion {
    pub tenant: String,
    pub at: i64,
}

/// Where wrapped keys are kept (a file apart from the database). Only ciphertext goes in.
pub trait KeyVault: Send + Sync + 'static {
    fn get(&self, id: &str) -> Result<Option<Vec<u8>>, KeyError>;
    /// Stores `wrapped` under `id` unless present; returns what is stored afterwards, so
    /// two racing creators agree on one key.
    fn put_if_absent(&self, id: &str, wrapped: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// Replaces several wrapped keys at once: all or none (key rotation).
    fn replace_all(&self, items: &[(String, Vec<u8>)]) -> Result<(), KeyError>;
    fn destroy(&self, id: &str) -> Result<bool, KeyError>;
    fn ids(&self) -> Result<Vec<String>, KeyError>;
    /// Destroys several keys, in the order given; returns the ids that existed. A vault
    /// may do it in one transaction (all or none).
    fn destroy_all(&self, ids: &[String]) -> Result<Vec<String>, KeyError> {
        let mut gone = Vec::new();
        for id in ids {
            if self.destroy(id)? {
                gone.push(id.clone());
            }
        }
        Ok(gone)
    }

    /// Records in the erasure ledger (kept with the keys, never in the database) that the
    /// patient's data was erased at `at` (Unix seconds). Recording it again keeps the first
    /// time. A vault without a ledger refuses, so no erasure goes unrecorded.
    fn record_erasure(&self, tenant: &str, patient: &str, at: i64) -> Result<(), KeyError> {
        let _ = (tenant, patient, at);
        Err(KeyError::Vault(
            "this key vault keeps no erasure ledger".into(),
        ))
    }

    /// The erasure ledger, oldest first.
    fn erasures(&self) -> Result<Vec<Erasure>, KeyError> {
        Ok(Vec::new())
    }

    /// Whether the ledger names this patient: their key is never made again (tombstone).
    fn is_erased(&self, tenant: &str, patient: &str) -> Result<bool, KeyError> {
        Ok(self
            .erasures()?
            .iter()
            .any(|e| e.tenant == tenant && e.patient == patient))
    }

    /// A tenant deletion: records the tenant in the ledger of deleted tenants (kept with the
    /// keys, never in the database) and destroys `ids`, in one transaction; returns the ids
    /// that existed. Recording it again keeps the first time. A vault without that ledger
    /// refuses, so no tenant's keys go unrecorded (a backup restore tells a deleted tenant
    /// from a wrong keyring by this ledger).
    fn destroy_deleted_tenant(
        &self,
        tenant: &str,
        ids: &[String],
        at: i64,
    ) -> Result<Vec<String>, KeyError> {
        let _ = (tenant, ids, at);
        Err(KeyError::Vault(
            "this key vault keeps no ledger of deleted tenants".into(),
        ))
    }

    /// The ledger of deleted tenants, oldest first.
    fn deleted_tenants(&self) -> Result<Vec<TenantDeletion>, KeyError> {
        Ok(Vec::new())
    }
}

fn random_key() -> Result<KeyBytes, KeyError> {
    let mut k = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(k.as_mut())
        .map_err(|_| KeyError::Rng)?;
    Ok(k)
}

/// AES-256-GCM: `version || nonce || ciphertext+tag`.
fn seal_with(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| KeyError::Open)?);
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| KeyError::Rng)?;
    let mut buf = plaintext.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| KeyError::Open)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    Ok(out)
}

fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let (version, rest) = sealed.split_first().ok_or(KeyError::Open)?;
    if *version != FORMAT_V1 || rest.len() < NONCE_LEN {
        return Err(KeyError::Open);
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Open)?;
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| KeyError::Open)?);
    let mut buf = Zeroizing::new(ct.to_vec());
    let len = k
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| KeyError::Open)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn unwrap_key(wrapping: &[u8; 32], id: &str, wrapped: &[u8]) -> Result<KeyBytes, KeyError> {
    let raw = open_with(wrapping, id.as_bytes(), wrapped)?;
    let mut k = Zeroizing::new([0u8; 32]);
    if raw.len() != 32 {
        return Err(KeyError::Open);
    }
    k.copy_from_slice(&raw);
    Ok(k)
}

/// The key-encryption key. Default provider: a 32-byte key file created with mode 0600.
pub struct Kek(KeyBytes);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

impl Kek {
    /// Loads the key file, creating it (mode 0600) if it does not exist.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |reason: String| KeyError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
            let key = random_key()?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(e.to_string()))?;
            f.write_all(key.as_ref())
                .and_then(|()| f.sync_all())
                .map_err(|e| err(e.to_string()))?;
            return Ok(Self(key));
        }
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err(
                "is readable by group or others; run chmod 600 on it".into()
            ));
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| err(e.to_string()))?);
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return Err(err("must hold exactly 32 bytes".into()));
        }
        key.copy_from_slice(&bytes);
        Ok(Self(key))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random KEK written to `path`, which must not exist (mode 0600).
    pub fn create_file(path: &Path) -> Result<Self, KeyError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |reason: String| KeyError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let key = random_key()?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        f.write_all(key.as_ref())
            .and_then(|()| f.sync_all())
            .map_err(|e| err(e.to_string()))?;
        Ok(Self(key))
    }

    /// A KEK derived from a passphrase with Argon2id (64 MiB, 3 passes); the salt is kept in
    /// `salt_path` (created on first use).
    pub fn from_passphrase(passphrase: &str, salt_path: &Path) -> Result<Self, KeyError> {
        let err = |reason: String| KeyError::KeyFile {
            path: salt_path.display().to_string(),
            reason,
        };
        if passphrase.chars().count() < 12 {
            return Err(KeyError::KeyFile {
                path: "passphrase".into(),
                reason: "must be at least 12 characters".into(),
            });
        }
        let salt = if salt_path.exists() {
            std::fs::read(salt_path).map_err(|e| err(e.to_string()))?
        } else {
            let mut salt = vec![0u8; 16];
            SystemRandom::new()
                .fill(&mut salt)
                .map_err(|_| KeyError::Rng)?;
            std::fs::write(salt_path, &salt).map_err(|e| err(e.to_string()))?;
            salt
        };
        let params =
            argon2::Params::new(64 * 1024, 3, 1, Some(32)).map_err(|e| err(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.as_bytes(), &salt, key.as_mut())
            .map_err(|e| err(e.to_string()))?;
        Ok(Self(key))
    }
}

/// Rotates a key-file KEK crash-safely: the new key is written beside the old one
/// (`kek.key.new`), every KEK-wrapped key is re-wrapped in one vault transaction, then the
/// new file replaces the old. [`load_key_file`] finishes or undoes an interrupted rotation.
pub fn rotate_key_file(path: &Path, vault: Arc<dyn KeyVault>) -> Result<usize, KeyError> {
    let old = load_key_file(path, vault.as_ref())?;
    let new_path = path.with_extension("key.new");
    let new = Kek::create_file(&new_path)?;
    let copy = Kek(new.0.clone());
    let mut ring = Keyring::new(old, vault);
    let n = ring.rotate_kek(copy)?;
    std::fs::rename(&new_path, path).map_err(|e| KeyError::KeyFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    drop(new);
    Ok(n)
}

/// Loads (creating if absent) the key file, completing or rolling back a rotation that a
/// crash interrupted.
pub fn load_key_file(path: &Path, vault: &dyn KeyVault) -> Result<Kek, KeyError> {
    let new_path = path.with_extension("key.new");
    if new_path.exists() {
        let new = Kek::from_file(&new_path)?;
        if path.exists() && !Keyring::kek_matches(&new, vault)? {
            // The vault was not re-wrapped: the rotation never happened.
            let _ = std::fs::remove_file(&new_path);
        } else {
            std::fs::rename(&new_path, path).map_err(|e| KeyError::KeyFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    Kek::from_file(path)
}

/// The keyring: unwraps keys on demand and caches them in memory (zeroized on drop).
pub struct Keyring {
    kek: Kek,
    vault: Arc<dyn KeyVault>,
    cache: Mutex<HashMap<String, KeyBytes>>,
    /// Patient key ids with an erasure under way: nothing is sealed under them.
    erasing: Mutex<std::collections::HashSet<String>>,
}

fn tenant_key_id(tenant: &str) -> String {
    format!("tenant/{tenant}")
}
fn index_key_id(tenant: &str) -> String {
    format!("tenant-index/{tenant}")
}
const PLATFORM_DATA_KEY: &str = "platform/data";
const PLATFORM_INDEX_KEY: &str = "platform/index";

fn patient_key_id(tenant: &str, patient: &str) -> String {
    format!("patient/{tenant}/{patient}")
}

impl Keyring {
    pub fn new(kek: Kek, vault: Arc<dyn KeyVault>) -> Self {
        Self {
            kek,
            vault,
            cache: Mutex::default(),
            erasing: Mutex::default(),
        }
    }

    fn cached(&self, id: &str) -> Option<KeyBytes> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    fn remember(&self, id: &str, key: &KeyBytes) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), key.clone());
    }

    /// Gets a key wrapped by `wrapping`, creating it if `create`.
    fn key(&self, id: &str, wrapping: &[u8; 32], create: bool) -> Result<KeyBytes, KeyError> {
        if let Some(k) = self.cached(id) {
            return Ok(k);
        }
        let wrapped = match self.vault.get(id)? {
            Some(w) => w,
            None if create => {
                let fresh = random_key()?;
                let wrapped = seal_with(wrapping, id.as_bytes(), fresh.as_ref())?;
                self.vault.put_if_absent(id, &wrapped)?
            }
            None => return Err(KeyError::Missing(id.to_string())),
        };
        let key = unwrap_key(wrapping, id, &wrapped)?;
        self.remember(id, &key);
        Ok(key)
    }

    fn tenant_key(&self, tenant: &str, create: bool) -> Result<KeyBytes, KeyError> {
        self.key(&tenant_key_id(tenant), &self.kek.0, create)
    }

    fn patient_key(&self, tenant: &str, patient: &str, create: bool) -> Result<KeyBytes, KeyError> {
        let tk = self.tenant_key(tenant, create)?;
        self.key(&patient_key_id(tenant, patient), &tk, create)
    }

    /// Encrypts a patient's data under that patient's key (created on first use).
    /// `context` names what it is (type, id, version) and is bound as AAD.
    pub fn seal_for_patient(
        &self,
        tenant: &str,
        patient: &str,
        context: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let id = patient_key_id(tenant, patient);
        if self
            .erasing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
        {
            return Err(KeyError::Erasing(patient.to_string()));
        }
        // A key not yet in memory is looked up once per process; an erased patient's key is
        // never used or made again (the ledger is the tombstone).
        if self.cached(&id).is_none() && self.vault.is_erased(tenant, patient)? {
            return Err(KeyError::Erased(patient.to_string()));
        }
        let key = self.patient_key(tenant, patient, true)?;
        seal_with(&key, &aad(tenant, patient, context), plaintext)
    }

    pub fn open_for_patient(
        &self,
        tenant: &str,
        patient: &str,
        context: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        // An erased patient's key opens nothing, even in the moment between the ledger entry
        // and the key's destruction (a crash there is finished by erasing again).
        let id = patient_key_id(tenant, patient);
        if self.cached(&id).is_none() && self.vault.is_erased(tenant, patient)? {
            return Err(KeyError::Missing(id));
        }
        let key = self.patient_key(tenant, patient, false)?;
        open_with(&key, &aad(tenant, patient, context), sealed)
    }

    /// A keyed blind index of an identifying value: equal values match, and without the
    /// tenant's index key nobody can test a guess.
    pub fn blind_index(
        &self,
        tenant: &str,
        field: &str,
        value: &str,
    ) -> Result<[u8; 32], KeyError> {
        let key = self.key(&index_key_id(tenant), &self.kek.0, true)?;
        Ok(hmac_index(&key, field, value))
    }

    /// Encrypts tenant-level personal data (account secrets, names of staff and relatives)
    /// under the tenant's data key; `None` uses the platform key (data not yet tied to a
    /// tenant, such as a username someone tried).
    pub fn seal_for_tenant(
        &self,
        tenant: Option<&str>,
        context: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let key = self.tenant_or_platform_key(tenant)?;
        seal_with(&key, &aad(tenant.unwrap_or("-"), "-", context), plaintext)
    }

    pub fn open_for_tenant(
        &self,
        tenant: Option<&str>,
        context: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let key = self.tenant_or_platform_key(tenant)?;
        open_with(&key, &aad(tenant.unwrap_or("-"), "-", context), sealed)
    }

    fn tenant_or_platform_key(&self, tenant: Option<&str>) -> Result<KeyBytes, KeyError> {
        match tenant {
            Some(t) => self.tenant_key(t, true),
            None => self.key(PLATFORM_DATA_KEY, &self.kek.0, true),
        }
    }

    /// A blind index across tenants (usernames are unique platform-wide).
    /// A random 32-byte secret of the platform, wrapped by the KEK in the vault and made on
    /// first use (`name` e.g. `audit-signing`, the seed of the checkpoint signing key). It
    /// lives with the keys, never in the database.
    pub fn platform_secret(&self, name: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        self.key(&format!("platform/secret/{name}"), &self.kek.0, true)
    }

    pub fn platform_index(&self, field: &str, value: &str) -> Result<[u8; 32], KeyError> {
        let key = self.key(PLATFORM_INDEX_KEY, &self.kek.0, true)?;
        Ok(hmac_index(&key, field, value))
    }

    /// Crypto-shredding: destroys a patient's key. Returns whether a key existed.
    pub fn destroy_patient_key(&self, tenant: &str, patient: &str) -> Result<bool, KeyError> {
        let id = patient_key_id(tenant, patient);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.vault.destroy(&id)
    }

    /// Starts erasing a patient's data: until the guard is dropped nothing is sealed under
    /// their key (a write in that moment is refused with [`KeyError::Erasing`], never sealed
    /// under a key about to be destroyed).
    pub fn begin_patient_erasure(&self, tenant: &str, patient: &str) -> ErasureGuard<'_> {
        let id = patient_key_id(tenant, patient);
        self.erasing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        ErasureGuard { ring: self, id }
    }

    /// Finishes an erasure: records it in the vault's ledger (from then on the patient's key
    /// is never made again), then destroys the key. Returns whether a key existed. Running it
    /// again after a crash finishes it.
    pub fn erase_patient(&self, tenant: &str, patient: &str, at: i64) -> Result<bool, KeyError> {
        self.vault.record_erasure(tenant, patient, at)?;
        self.destroy_patient_key(tenant, patient)
    }

    /// Whether the patient's data has been erased (the ledger names them).
    pub fn is_patient_erased(&self, tenant: &str, patient: &str) -> Result<bool, KeyError> {
        self.vault.is_erased(tenant, patient)
    }

    /// The erasure ledger, oldest first.
    pub fn erasures(&self) -> Result<Vec<Erasure>, KeyError> {
        self.vault.erasures()
    }

    /// The vault ids of every key of a tenant: its data key, its index key and each of its
    /// patients' keys (for a tenant's deletion receipt).
    pub fn tenant_key_ids(&self, tenant: &str) -> Result<Vec<String>, KeyError> {
        let (data, index) = (tenant_key_id(tenant), index_key_id(tenant));
        let patients = format!("patient/{tenant}/");
        Ok(self
            .vault
            .ids()?
            .into_iter()
            .filter(|id| *id == data || *id == index || id.starts_with(&patients))
            .collect())
    }

    /// Crypto-shredding of a whole tenant: destroys every patient key of the tenant, its index
    /// key and its data key, in one vault transaction where the vault has them (SQLite does);
    /// otherwise in that order, the data key last, so running it again after a crash
    /// finishes. Returns the ids destroyed.
    pub fn destroy_tenant_keys(&self, tenant: &str) -> Result<Vec<String>, KeyError> {
        let (data, index) = (tenant_key_id(tenant), index_key_id(tenant));
        let mut ids = self.tenant_key_ids(tenant)?;
        // Patient keys first, the tenant's data key last.
        ids.sort_by_key(|id| {
            if *id == data {
                2
            } else if *id == index {
                1
            } else {
                0
            }
        });
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for id in &ids {
                cache.remove(id);
            }
        }
        self.vault.destroy_all(&ids)
    }

    /// A tenant's deletion (crypto-shredding of the whole tenant, recorded): destroys every
    /// key of the tenant as [`Keyring::destroy_tenant_keys`] does and records the tenant in
    /// the vault's ledger of deleted tenants, in one vault transaction. Running it again
    /// (after a crash) finishes and keeps the first time. Returns the ids destroyed.
    pub fn delete_tenant(&self, tenant: &str, at: i64) -> Result<Vec<String>, KeyError> {
        let (data, index) = (tenant_key_id(tenant), index_key_id(tenant));
        let mut ids = self.tenant_key_ids(tenant)?;
        // Patient keys first, the tenant's data key last.
        ids.sort_by_key(|id| u8::from(*id == index) + 2 * u8::from(*id == data));
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for id in &ids {
                cache.remove(id);
            }
        }
        self.vault.destroy_deleted_tenant(tenant, &ids, at)
    }

    /// The ledger of deleted tenants, oldest first.
    pub fn deleted_tenants(&self) -> Result<Vec<TenantDeletion>, KeyError> {
        self.vault.deleted_tenants()
    }

    /// Re-wraps every tenant key under `new_kek` (and keeps patient keys as they are: they are
    /// wrapped by tenant keys, which do not change). No data is re-encrypted.
    pub fn rotate_kek(&mut self, new_kek: Kek) -> Result<usize, KeyError> {
        let mut rewrapped = Vec::new();
        for id in self.vault.ids()? {
            if !is_kek_wrapped(&id) {
                continue;
            }
            let Some(wrapped) = self.vault.get(&id)? else {
                continue;
            };
            let key = unwrap_key(&self.kek.0, &id, &wrapped)?;
            rewrapped.push((
                id.clone(),
                seal_with(&new_kek.0, id.as_bytes(), key.as_ref())?,
            ));
        }
        self.vault.replace_all(&rewrapped)?;
        self.kek = new_kek;
        Ok(rewrapped.len())
    }

    /// Whether `kek` opens the keys in the vault (checked on one of them).
    pub fn kek_matches(kek: &Kek, vault: &dyn KeyVault) -> Result<bool, KeyError> {
        for id in vault.ids()? {
            if is_kek_wrapped(&id)
                && let Some(w) = vault.get(&id)?
            {
                return Ok(unwrap_key(&kek.0, &id, &w).is_ok());
            }
        }
        Ok(true)
    }
}

/// What is known of a tenant's keys without opening any (the admin's status page): which
/// exist in the vault, never their material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeyStatus {
    /// The vault id of the tenant's data key (`tenant/<tenant id>`).
    pub data_key_id: String,
    pub data_key: bool,
    pub index_key: bool,
    /// Patients with a key of their own (a destroyed key is no longer counted).
    pub patient_keys: usize,
}

impl Keyring {
    /// Which of the tenant's keys are in the vault.
    pub fn tenant_key_status(&self, tenant: &str) -> Result<TenantKeyStatus, KeyError> {
        let ids = self.vault.ids()?;
        let data_key_id = tenant_key_id(tenant);
        let index_id = index_key_id(tenant);
        let patient_prefix = format!("patient/{tenant}/");
        Ok(TenantKeyStatus {
            data_key: ids.contains(&data_key_id),
            index_key: ids.contains(&index_id),
            patient_keys: ids
                .iter()
                .filter(|i| i.starts_with(&patient_prefix))
                .count(),
            data_key_id,
        })
    }

    /// A key check value of the KEK: 8 bytes of HMAC-SHA256 under it, in hex. It tells which
    /// KEK is in use (it changes with every rotation) and reveals nothing of the key.
    pub fn kek_fingerprint(&self) -> String {
        let tag = hmac_index(&self.kek.0, "tillit/kek-check-value/v1", "");
        tag.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// While alive, an erasure of one patient is under way (see [`Keyring::begin_patient_erasure`]).
pub struct ErasureGuard<'a> {
    ring: &'a Keyring,
    id: String,
}

impl Drop for ErasureGuard<'_> {
    fn drop(&mut self) {
        self.ring
            .erasing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

fn is_kek_wrapped(id: &str) -> bool {
    id.starts_with("tenant/") || id.starts_with("tenant-index/") || id.starts_with("platform/")
}

fn hmac_index(key: &[u8; 32], field: &str, value: &str) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_ref());
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(field.as_bytes());
    ctx.update(&[0]);
    ctx.update(value.trim().to_lowercase().as_bytes());
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn aad(tenant: &str, patient: &str, context: &str) -> Vec<u8> {
    format!("tillit/v1\0{tenant}\0{patient}\0{context}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct MemVault(Mutex<HashMap<String, Vec<u8>>>);

    impl KeyVault for MemVault {
        fn get(&self, id: &str) -> Result<Option<Vec<u8>>, KeyError> {
            Ok(self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .cloned())
        }
        fn put_if_absent(&self, id: &str, w: &[u8]) -> Result<Vec<u8>, KeyError> {
            Ok(self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id.into())
                .or_insert_with(|| w.to_vec())
                .clone())
        }
        fn replace_all(&self, items: &[(String, Vec<u8>)]) -> Result<(), KeyError> {
            let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
            for (id, w) in items {
                m.insert(id.clone(), w.clone());
            }
            Ok(())
        }
        fn destroy(&self, id: &str) -> Result<bool, KeyError> {
            Ok(self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id)
                .is_some())
        }
        fn ids(&self) -> Result<Vec<String>, KeyError> {
            Ok(self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned()
                .collect())
        }
    }

    fn ring(vault: Arc<MemVault>) -> Keyring {
        Keyring::new(Kek::from_bytes([7; 32]), vault)
    }

    #[test]
    fn sealed_data_opens_only_in_its_context() {
        let k = ring(Arc::default());
        let s = k
            .seal_for_patient("t1", "p1", "Patient/p1/1", b"Astrid")
            .unwrap_or_default();
        assert!(!s.windows(6).any(|w| w == b"Astrid"));
        assert_eq!(
            k.open_for_patient("t1", "p1", "Patient/p1/1", &s)
                .map(|v| v.to_vec())
                .ok(),
            Some(b"Astrid".to_vec())
        );
        assert!(k.open_for_patient("t1", "p1", "Patient/p1/2", &s).is_err());
        assert!(k.open_for_patient("t1", "p2", "Patient/p1/1", &s).is_err());
        assert!(k.open_for_patient("t2", "p1", "Patient/p1/1", &s).is_err());
    }

    /// A vault with an erasure ledger (the SQLite vault's behaviour).
    #[derive(Default)]
    struct LedgerVault {
        keys: MemVault,
        ledger: Mutex<Vec<Erasure>>,
    }

    impl KeyVault for LedgerVault {
        fn get(&self, id: &str) -> Result<Option<Vec<u8>>, KeyError> {
            self.keys.get(id)
        }
        fn put_if_absent(&self, id: &str, w: &[u8]) -> Result<Vec<u8>, KeyError> {
            self.keys.put_if_absent(id, w)
        }
        fn replace_all(&self, items: &[(String, Vec<u8>)]) -> Result<(), KeyError> {
            self.keys.replace_all(items)
        }
        fn destroy(&self, id: &str) -> Result<bool, KeyError> {
            self.keys.destroy(id)
        }
        fn ids(&self) -> Result<Vec<String>, KeyError> {
            self.keys.ids()
        }
        fn record_erasure(&self, tenant: &str, patient: &str, at: i64) -> Result<(), KeyError> {
            let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            if !l.iter().any(|e| e.tenant == tenant && e.patient == patient) {
                l.push(Erasure {
                    tenant: tenant.into(),
                    patient: patient.into(),
                    at,
                });
            }
            Ok(())
        }
        fn erasures(&self) -> Result<Vec<Erasure>, KeyError> {
            Ok(self
                .ledger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone())
        }
    }

    #[test]
    fn an_erased_patients_key_is_destroyed_recorded_and_never_made_again() {
        let vault = Arc::new(LedgerVault::default());
        let k = Keyring::new(Kek::from_bytes([7; 32]), vault.clone());
        let s = k
            .seal_for_patient("t1", "p1", "x", b"secret")
            .unwrap_or_default();
        let other = k
            .seal_for_patient("t1", "p2", "x", b"kept")
            .unwrap_or_default();
        {
            let _guard = k.begin_patient_erasure("t1", "p1");
            // Nothing new is sealed under a key about to go; reads still work meanwhile.
            assert!(matches!(
                k.seal_for_patient("t1", "p1", "y", b"late"),
                Err(KeyError::Erasing(_))
            ));
            assert!(k.open_for_patient("t1", "p1", "x", &s).is_ok());
            assert!(k.seal_for_patient("t1", "p2", "y", b"fine").is_ok());
        }
        assert!(k.erase_patient("t1", "p1", 1_700_000_000).unwrap_or(false));
        assert!(matches!(
            k.open_for_patient("t1", "p1", "x", &s),
            Err(KeyError::Missing(_))
        ));
        // The tombstone: a later seal does not silently make a new key, in this process or
        // another one.
        assert!(matches!(
            k.seal_for_patient("t1", "p1", "z", b"new"),
            Err(KeyError::Erased(_))
        ));
        let again = Keyring::new(Kek::from_bytes([7; 32]), vault.clone());
        assert!(matches!(
            again.seal_for_patient("t1", "p1", "z", b"new"),
            Err(KeyError::Erased(_))
        ));
        assert_eq!(vault.keys.get("patient/t1/p1").ok().flatten(), None);
        assert!(again.is_patient_erased("t1", "p1").unwrap_or(false));
        assert!(!again.is_patient_erased("t1", "p2").unwrap_or(true));
        assert_eq!(
            again
                .open_for_patient("t1", "p2", "x", &other)
                .map(|v| v.to_vec())
                .ok(),
            Some(b"kept".to_vec())
        );
        // Erasing again (after a crash, or on restore) finishes and keeps the first time.
        assert!(!k.erase_patient("t1", "p1", 1_800_000_000).unwrap_or(true));
        assert_eq!(
            k.erasures().unwrap_or_default(),
            vec![Erasure {
                tenant: "t1".into(),
                patient: "p1".into(),
                at: 1_700_000_000
            }]
        );
        // A vault without a ledger refuses to erase rather than erase unrecorded.
        let plain = ring(Arc::default());
        let _ = plain.seal_for_patient("t1", "p1", "x", b"d");
        assert!(plain.erase_patient("t1", "p1", 1).is_err());
        assert!(plain.open_for_patient("t1", "p1", "x", &[]).is_err());
    }

    #[test]
    fn destroying_a_patient_key_shreds_the_data_and_survives_restart() {
        let vault = Arc::new(MemVault::default());
        let k = ring(vault.clone());
        let s = k
            .seal_for_patient("t1", "p1", "x", b"secret")
            .unwrap_or_default();
        assert!(k.destroy_patient_key("t1", "p1").unwrap_or(false));
        assert!(matches!(
            k.open_for_patient("t1", "p1", "x", &s),
            Err(KeyError::Missing(_))
        ));
        assert!(ring(vault).open_for_patient("t1", "p1", "x", &s).is_err());
    }

    #[test]
    fn destroying_a_tenants_keys_shreds_all_its_data_and_no_other_tenants() {
        let vault = Arc::new(MemVault::default());
        let k = ring(vault.clone());
        let p1 = k
            .seal_for_patient("t1", "p1", "x", b"one")
            .unwrap_or_default();
        let t1 = k
            .seal_for_tenant(Some("t1"), "x", b"org")
            .unwrap_or_default();
        let _ = k.blind_index("t1", "f", "v");
        let p3 = k
            .seal_for_patient("t10", "p3", "x", b"three")
            .unwrap_or_default();
        let mut ids = k.tenant_key_ids("t1").unwrap_or_default();
        ids.sort();
        assert_eq!(ids, ["patient/t1/p1", "tenant-index/t1", "tenant/t1"]);
        let gone = k.destroy_tenant_keys("t1").unwrap_or_default();
        assert_eq!(gone.len(), 3);
        assert_eq!(gone.last().map(String::as_str), Some("tenant/t1"));
        let fresh = ring(vault);
        assert_eq!(fresh.tenant_key_ids("t1").map(|v| v.len()).ok(), Some(0));
        assert!(fresh.open_for_patient("t1", "p1", "x", &p1).is_err());
        assert!(k.open_for_patient("t1", "p1", "x", &p1).is_err());
        // (Opening tenant data makes a new, different tenant key: it still cannot open.)
        assert!(fresh.open_for_tenant(Some("t1"), "x", &t1).is_err());
        assert!(fresh.open_for_patient("t10", "p3", "x", &p3).is_ok());
    }

    #[test]
    fn a_tenant_deletion_without_a_ledger_is_refused_and_destroys_nothing() {
        let vault = Arc::new(MemVault::default());
        let k = ring(vault);
        let _ = k.seal_for_patient("t1", "p1", "x", b"one");
        assert!(k.delete_tenant("t1", 1).is_err());
        assert_eq!(k.tenant_key_ids("t1").map(|v| v.len()).ok(), Some(2));
        assert_eq!(k.deleted_tenants().map(|v| v.len()).ok(), Some(0));
    }

    #[test]
    fn key_status_shows_which_keys_exist_and_the_check_value_follows_rotation() {
        let vault = Arc::new(MemVault::default());
        let mut k = ring(vault);
        let before = k.tenant_key_status("t1").ok();
        assert_eq!(
            before.as_ref().map(|s| (s.data_key, s.patient_keys)),
            Some((false, 0))
        );
        let _ = k.seal_for_patient("t1", "p1", "x", b"data");
        let _ = k.seal_for_patient("t1", "p2", "x", b"data");
        let _ = k.seal_for_patient("t2", "p3", "x", b"data");
        let st = k.tenant_key_status("t1").ok();
        assert_eq!(
            st.as_ref().map(|s| (
                s.data_key_id.as_str(),
                s.data_key,
                s.index_key,
                s.patient_keys
            )),
            Some(("tenant/t1", true, false, 2))
        );
        let fp = k.kek_fingerprint();
        assert_eq!(fp.len(), 16);
        assert_eq!(fp, ring(Arc::default()).kek_fingerprint());
        assert!(k.rotate_kek(Kek::from_bytes([9; 32])).is_ok());
        assert_ne!(k.kek_fingerprint(), fp);
    }

    #[test]
    fn kek_rotation_rewraps_without_touching_data() {
        let vault = Arc::new(MemVault::default());
        let mut k = ring(vault.clone());
        let s = k
            .seal_for_patient("t1", "p1", "x", b"data")
            .unwrap_or_default();
        let idx = k.blind_index("t1", "nid", "123").unwrap_or_default();
        assert_eq!(k.rotate_kek(Kek::from_bytes([9; 32])).unwrap_or(0), 2);
        let fresh = Keyring::new(Kek::from_bytes([9; 32]), vault.clone());
        assert_eq!(
            fresh
                .open_for_patient("t1", "p1", "x", &s)
                .map(|v| v.to_vec())
                .ok(),
            Some(b"data".to_vec())
        );
        assert_eq!(
            fresh.blind_index("t1", "nid", "123").unwrap_or_default(),
            idx
        );
        let old = Keyring::new(Kek::from_bytes([7; 32]), vault);
        assert!(old.open_for_patient("t1", "p1", "x", &s).is_err());
    }

    #[test]
    fn key_file_rotation_is_crash_safe() {
        let dir = std::env::temp_dir().join(format!(
            "tillit-kek-{}",
            crate::random_token("").expose().get(..8).unwrap_or("x")
        ));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("kek.key");
        let vault: Arc<MemVault> = Arc::default();
        let kek = load_key_file(&path, vault.as_ref()).unwrap_or_else(|e| unreachable!("{e}"));
        let ring = Keyring::new(kek, vault.clone());
        let s = ring
            .seal_for_patient("t", "p", "x", b"data")
            .unwrap_or_default();
        assert_eq!(rotate_key_file(&path, vault.clone()).unwrap_or(0), 1);
        let reopened = Keyring::new(
            load_key_file(&path, vault.as_ref()).unwrap_or_else(|e| unreachable!("{e}")),
            vault.clone(),
        );
        assert_eq!(
            reopened
                .open_for_patient("t", "p", "x", &s)
                .map(|v| v.to_vec())
                .ok(),
            Some(b"data".to_vec())
        );
        // A crash after writing kek.key.new but before re-wrapping: the new file is dropped.
        let stray = Kek::create_file(&path.with_extension("key.new"))
            .unwrap_or_else(|e| unreachable!("{e}"));
        drop(stray);
        let again = Keyring::new(
            load_key_file(&path, vault.as_ref()).unwrap_or_else(|e| unreachable!("{e}")),
            vault.clone(),
        );
        assert!(again.open_for_patient("t", "p", "x", &s).is_ok());
        assert!(!path.with_extension("key.new").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_passphrase_derives_the_same_kek_with_the_same_salt() {
        let dir = std::env::temp_dir().join(format!(
            "tillit-pp-{}",
            crate::random_token("").expose().get(..8).unwrap_or("x")
        ));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let salt = dir.join("kek.salt");
        let a = Kek::from_passphrase("correct horse battery staple", &salt)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let b = Kek::from_passphrase("correct horse battery staple", &salt)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let c = Kek::from_passphrase("another long passphrase", &salt)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(a.0.as_ref(), b.0.as_ref());
        assert_ne!(a.0.as_ref(), c.0.as_ref());
        assert!(Kek::from_passphrase("short", &salt).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn blind_indexes_differ_per_tenant_and_field() {
        let k = ring(Arc::default());
        let a = k
            .blind_index("t1", "nid", "12345678901")
            .unwrap_or_default();
        assert_eq!(
            a,
            k.blind_index("t1", "nid", " 12345678901 ")
                .unwrap_or_default()
        );
        assert_ne!(
            a,
            k.blind_index("t2", "nid", "12345678901")
                .unwrap_or_default()
        );
        assert_ne!(
            a,
            k.blind_index("t1", "name", "12345678901")
                .unwrap_or_default()
        );
    }
}
