//! The backup's manifest (`manifest.json`) and its Ed25519 signature (`manifest.sig`).
//!
//! The manifest says what the backup holds and how to check it: the format, when and from
//! where it was taken, each tenant with its record counts and audit tree head, every sealed
//! file with the SHA-256 of its plaintext and of its sealed form, and the ids of the keys
//! needed to open it (never the keys). The signature is over the exact bytes of
//! `manifest.json`, by a key whose seed is a platform secret in the keyring
//! (`platform/secret/backup-signing`), so only the keyring that made a backup can vouch
//! for it, and a changed manifest (say, a hash swapped for that of a changed file) fails.

use anyhow::{Result, bail};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FORMAT: &str = "tillit-backup";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `tillit-backup`.
    pub format: String,
    /// The manifest's format version (1).
    pub version: u32,
    /// Random; bound into the encryption of every file, so files cannot move between backups.
    pub id: String,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The Tillit version that took it, and the database schema version it holds.
    pub tillit_version: String,
    pub schema_version: i64,
    pub source: Source,
    pub keys: Keys,
    pub tenants: Vec<Tenant>,
    pub files: Vec<File>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The data dir the backup was taken of (absolute).
    pub data_dir: String,
    /// The keyring it needs (the data dir's `keys` folder, absolute): restore uses it unless
    /// told another with `--keyring`.
    pub keyring: String,
    /// `audit.log_name` of the deployment: the checkpoints' key name and origin prefix.
    pub audit_log_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// The KEK's check value when the backup was taken (it changes with `tillit keys rotate`,
    /// which does not stop a backup from opening).
    pub kek_check_value: String,
    /// The backup's data key, sealed (AES-256-GCM, base64) under the keyring's
    /// `wrapping_key` secret.
    pub wrapped_data_key: String,
    pub wrapping_key: String,
    /// The key that signs `manifest.json`: its id in the keyring and its public half.
    pub signing_key: String,
    pub signing_public_key: String,
    /// Ids of the keys the data needs (platform and tenant keys), all in the keyring.
    pub required: Vec<String>,
    /// Patient keys per tenant when the backup was taken (ids not listed: they name
    /// patients). A patient key destroyed since then has erased that patient's data.
    pub patient_keys: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub resources: u64,
    pub versions: u64,
    pub audit: AuditHead,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// Entries in the tenant's log and the RFC 9162 root over them (hex).
    pub size: u64,
    pub root: String,
    /// Size of the latest signed checkpoint.
    pub checkpoint_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Where it goes in a data dir (`tillit.db`, `tls/server.pem`).
    pub path: String,
    /// Where its sealed form is in the backup (`data/tillit.db.enc`).
    pub stored: String,
    pub size: u64,
    /// SHA-256 of the plaintext (hex).
    pub sha256: String,
    pub sealed_size: u64,
    /// SHA-256 of the sealed file (hex).
    pub sealed_sha256: String,
}

/// `manifest.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The signing key's id in the keyring.
    pub key: String,
    /// Its public key (32 bytes, base64).
    pub public_key: String,
    /// The signature of `manifest.json`'s bytes (base64).
    pub signature: String,
}

/// The backup signer from its 32-byte seed.
pub struct Signer(Ed25519KeyPair);

impl Signer {
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .map(Self)
            .map_err(|e| anyhow::anyhow!("the backup signing key is invalid: {e}"))
    }

    pub fn public_key(&self) -> String {
        B64.encode(self.0.public_key().as_ref())
    }

    pub fn sign(&self, key_id: &str, manifest: &[u8]) -> Signature {
        Signature {
            algorithm: "Ed25519".into(),
            key: key_id.into(),
            public_key: self.public_key(),
            signature: B64.encode(self.0.sign(manifest).as_ref()),
        }
    }
}

/// Checks `sig` over `manifest` against the expected public key (base64). Errors name the
/// file at fault.
pub fn check(manifest: &[u8], sig: &Signature, expected_public: &str) -> Result<()> {
    if sig.algorithm != "Ed25519" {
        bail!(
            "manifest.sig: unknown signature algorithm {:?}",
            sig.algorithm
        );
    }
    if sig.public_key != expected_public {
        bail!(
            "manifest.sig: signed by another key than this keyring's backup signing key (a backup of another deployment, or the wrong --keyring)"
        );
    }
    let public = B64
        .decode(expected_public)
        .map_err(|_| anyhow::anyhow!("manifest.sig: the public key is not base64"))?;
    let signature = B64
        .decode(&sig.signature)
        .map_err(|_| anyhow::anyhow!("manifest.sig: the signature is not base64"))?;
    UnparsedPublicKey::new(&ED25519, &public)
        .verify(manifest, &signature)
        .map_err(|_| {
            anyhow::anyhow!(
                "manifest.json: the signature does not verify: the manifest was changed after it was signed"
            )
        })
}

impl Manifest {
    /// Parses and checks the format; the signature is checked apart, on the bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| anyhow::anyhow!("manifest.json is not a Tillit backup manifest: {e}"))?;
        if m.format != FORMAT {
            bail!("manifest.json is not a Tillit backup manifest");
        }
        if m.version != VERSION {
            bail!(
                "manifest.json has format version {}; this Tillit reads version {VERSION}",
                m.version
            );
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_manifest_verifies_and_a_changed_one_does_not() {
        let s = Signer::from_seed(&[5; 32]).unwrap();
        let body = br#"{"format":"tillit-backup"}"#;
        let sig = s.sign("platform/secret/backup-signing", body);
        check(body, &sig, &s.public_key()).unwrap();
        let e = check(br#"{"format":"tillit-backup "}"#, &sig, &s.public_key()).unwrap_err();
        assert!(e.to_string().starts_with("manifest.json:"), "{e}");
        let other = Signer::from_seed(&[6; 32]).unwrap();
        let e = check(body, &sig, &other.public_key()).unwrap_err();
        assert!(e.to_string().starts_with("manifest.sig:"), "{e}");
    }
}
