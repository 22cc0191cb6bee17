use crate::SecretString;
use aws_lc_rs::{digest, rand::SecureRandom};
use base64::Engine;

/// SHA-256 of a high-entropy token. Tokens carry 256 random bits, so a fast hash is enough to
/// make a stolen table useless; passwords get Argon2id instead.
pub type TokenHash = [u8; 32];

/// A fresh random token: `prefix` + 43 characters of base64url (256 bits).
/// The prefix tells a reader (and secret scanners) what kind of token leaked.
pub fn random_token(prefix: &str) -> SecretString {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    // The system RNG failing is unrecoverable; aws-lc aborts rather than return weak bytes.
    if aws_lc_rs::rand::SystemRandom::new()
        .fill(bytes.as_mut())
        .is_err()
    {
        std::process::abort();
    }
    SecretString::new(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())
    ))
}

pub fn token_hash(token: &str) -> TokenHash {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Constant-time equality for secrets and their hashes.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hash_stably() {
        let a = random_token("tlt_");
        let b = random_token("tlt_");
        assert!(a.expose().starts_with("tlt_"));
        assert_eq!(a.expose().len(), 4 + 43);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(token_hash(a.expose()), token_hash(a.expose()));
        assert!(ct_eq(&token_hash("x"), &token_hash("x")));
        assert!(!ct_eq(&token_hash("x"), &token_hash("y")));
        assert!(!ct_eq(b"ab", b"abc"));
        assert_eq!(format!("{a:?}"), "[redacted]");
    }
}
