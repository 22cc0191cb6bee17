//! Signed checkpoints: the C2SP `tlog-checkpoint` body signed as a C2SP `signed-note` with
//! Ed25519, so any note verifier (such as Go's `golang.org/x/mod/sumdb/note`) can check a
//! tenant's tree head.
//!
//! ```text
//! tillit.no/audit/<tenant>        origin
//! 1234                            tree size
//! <base64 root hash>
//!
//! — tillit.no/audit <base64 of key id (4 bytes) and Ed25519 signature (64 bytes)>
//! ```
//! The key id is the first four bytes of SHA-256(name || "\n" || 0x01 || public key), and the
//! verifier key is published as `<name>+<key id in hex>+<base64 of 0x01 || public key>`.

use crate::merkle::Hash;
use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

/// The signature algorithm byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint is malformed: {0}")]
    Malformed(String),
    #[error("no signature by {0} on the checkpoint")]
    NoSignature(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("the key is invalid: {0}")]
    BadKey(String),
}

/// A tree head: which log, how many entries, and the root over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note body (every line ends with a newline).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint body; extension lines after the root are allowed and ignored.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let bad = |m: &str| CheckpointError::Malformed(m.to_string());
        if !body.ends_with('\n') {
            return Err(bad("the body must end with a newline"));
        }
        let mut lines = body.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size_text = lines.next().ok_or_else(|| bad("no tree size line"))?;
        if size_text.is_empty()
            || !size_text.bytes().all(|b| b.is_ascii_digit())
            || (size_text.len() > 1 && size_text.starts_with('0'))
        {
            return Err(bad("the tree size is not a decimal number"));
        }
        let size = size_text
            .parse()
            .map_err(|_| bad("the tree size is too large"))?;
        let root = B64
            .decode(lines.next().ok_or_else(|| bad("no root hash line"))?)
            .ok()
            .and_then(|v| <Hash>::try_from(v).ok())
            .ok_or_else(|| bad("the root hash is not 32 bytes of base64"))?;
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut c = Context::new(&SHA256);
    c.update(name.as_bytes());
    c.update(b"\n");
    c.update(&[ALG_ED25519]);
    c.update(public);
    let mut id = [0u8; 4];
    id.copy_from_slice(c.finish().as_ref().get(..4).unwrap_or(&[0; 4]));
    id
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

/// Signs checkpoints with an Ed25519 key.
pub struct CheckpointSigner {
    name: String,
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("name", &self.name)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl CheckpointSigner {
    /// A signer from a 32-byte Ed25519 seed (which the caller keeps sealed).
    pub fn from_seed(name: &str, seed: &Zeroizing<[u8; 32]>) -> Result<Self, CheckpointError> {
        if !valid_name(name) {
            return Err(CheckpointError::BadKey(format!(
                "the key name {name:?} must be non-empty without spaces or '+'"
            )));
        }
        let key = Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
            .map_err(|e| CheckpointError::BadKey(e.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            key,
        })
    }

    /// The verifier key in the signed-note text form: `name+keyid+base64(0x01||pub)`.
    pub fn verifier_key(&self) -> String {
        let public = self.key.public_key().as_ref();
        let mut k = vec![ALG_ED25519];
        k.extend_from_slice(public);
        format!(
            "{}+{}+{}",
            self.name,
            hex_lower(&key_id(&self.name, public)),
            B64.encode(k)
        )
    }

    /// The checkpoint as a signed note.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        self.sign_note(&checkpoint.body())
    }

    /// Any note text (ending in a newline) as a signed note.
    pub fn sign_note(&self, body: &str) -> String {
        let sig = self.key.sign(body.as_bytes());
        let mut blob = key_id(&self.name, self.key.public_key().as_ref()).to_vec();
        blob.extend_from_slice(sig.as_ref());
        format!("{body}\n\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A verifier key parsed from its text form.
#[derive(Debug, Clone)]
pub struct CheckpointVerifier {
    name: String,
    id: [u8; 4],
    public: Vec<u8>,
}

impl CheckpointVerifier {
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let bad = |m: &str| CheckpointError::BadKey(m.to_string());
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected name+keyid+key"));
        };
        let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        let public = match raw.split_first() {
            Some((&ALG_ED25519, public)) if public.len() == 32 => public.to_vec(),
            _ => return Err(bad("not an Ed25519 key")),
        };
        let id = key_id(name, &public);
        if !valid_name(name) || hex_lower(&id) != id_hex {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(Self {
            name: name.to_string(),
            id,
            public,
        })
    }

    /// Verifies a signed note carrying a checkpoint and returns the checkpoint.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::parse_body(&self.verify_note(note)?)
    }

    /// Verifies any signed note (such as a deletion receipt's) and returns its body.
    pub fn verify_note(&self, note: &str) -> Result<String, CheckpointError> {
        let (body, sigs) = note
            .rsplit_once("\n\n")
            .map(|(b, s)| (format!("{b}\n"), s))
            .ok_or_else(|| CheckpointError::Malformed("no signature block".into()))?;
        let mut found = false;
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(CheckpointError::Malformed(format!(
                    "not a signature line: {line:?}"
                )));
            };
            let Some((name, blob)) = rest.split_once(' ') else {
                return Err(CheckpointError::Malformed(
                    "a signature line without a signature".into(),
                ));
            };
            let blob = B64
                .decode(blob)
                .map_err(|_| CheckpointError::Malformed("a signature is not base64".into()))?;
            if name != self.name || blob.get(..4) != Some(&self.id[..]) {
                continue; // someone else's signature (a witness, say)
            }
            found = true;
            let sig = blob.get(4..).unwrap_or_default();
            UnparsedPublicKey::new(&ED25519, &self.public)
                .verify(body.as_bytes(), sig)
                .map_err(|_| CheckpointError::BadSignature(self.name.clone()))?;
        }
        if !found {
            return Err(CheckpointError::NoSignature(self.name.clone()));
        }
        Ok(body)
    }

    /// The verifier key in its text form (`name+keyid+base64`).
    pub fn key_text(&self) -> String {
        let mut k = vec![ALG_ED25519];
        k.extend_from_slice(&self.public);
        format!("{}+{}+{}", self.name, hex_lower(&self.id), B64.encode(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> CheckpointSigner {
        CheckpointSigner::from_seed("tillit.example/audit", &Zeroizing::new([seed; 32])).unwrap()
    }

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "tillit.example/audit/nordby".into(),
            size: 1234,
            root: crate::merkle::leaf_hash(b"x"),
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_reads_back() {
        let s = signer(7);
        let note = s.sign(&cp());
        assert!(note.starts_with("tillit.example/audit/nordby\n1234\n"));
        assert!(note.contains("\n\n\u{2014} tillit.example/audit "));
        let v = CheckpointVerifier::parse(&s.verifier_key()).unwrap();
        assert_eq!(v.verify(&note).unwrap(), cp());
    }

    #[test]
    fn a_changed_body_another_key_or_a_missing_signature_is_refused() {
        let s = signer(7);
        let v = CheckpointVerifier::parse(&s.verifier_key()).unwrap();
        let note = s.sign(&cp());
        let forged = note.replacen("1234", "1235", 1);
        assert_eq!(
            v.verify(&forged),
            Err(CheckpointError::BadSignature("tillit.example/audit".into()))
        );
        let other = CheckpointVerifier::parse(&signer(8).verifier_key()).unwrap();
        assert_eq!(
            other.verify(&note),
            Err(CheckpointError::NoSignature("tillit.example/audit".into()))
        );
        let body_only = cp().body();
        assert!(v.verify(&body_only).is_err());
        // Another signer's line (a witness) is skipped, ours still counts.
        let witness = signer(9).sign(&cp());
        let extra = witness.rsplit_once("\n\n").unwrap().1;
        let both = format!("{note}{extra}");
        assert_eq!(v.verify(&both).unwrap(), cp());
    }

    /// The example of the signed-note specification (and of Go's `sumdb/note` tests):
    /// Ed25519 signatures are deterministic, so the same key and text give the same note.
    #[test]
    fn signs_the_signed_note_specification_example_byte_for_byte() {
        let private = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let raw = B64.decode(private).unwrap();
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&raw[1..]);
        let s = CheckpointSigner::from_seed("PeterNeumann", &seed).unwrap();
        assert_eq!(
            s.verifier_key(),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
        let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        assert_eq!(
            s.sign_note(text),
            format!(
                "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            )
        );
    }

    #[test]
    fn bodies_and_keys_are_parsed_strictly() {
        for bad in [
            "",
            "origin\n",
            "origin\n12\n",
            "origin\n012\nAAAA\n",
            "origin\n-1\nAAAA\n",
            "origin\n12\nnot base64!\n",
            "origin\n12\nAAAA\n",
            "origin\n12\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        ] {
            assert!(Checkpoint::parse_body(bad).is_err(), "{bad:?}");
        }
        let ok = "origin\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextension\n";
        assert_eq!(Checkpoint::parse_body(ok).unwrap().size, 0);
        let key = signer(1).verifier_key();
        assert!(CheckpointVerifier::parse(&key.replacen('+', "x+", 1)).is_err());
        assert!(CheckpointVerifier::parse("name+00000000+AAAA").is_err());
        assert!(CheckpointSigner::from_seed("has space", &Zeroizing::new([0; 32])).is_err());
    }
}
