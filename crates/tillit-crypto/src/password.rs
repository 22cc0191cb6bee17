use crate::SecretString;
use argon2::password_hash::{
    PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {0} characters")]
    TooShort(usize),
    #[error("password must be at most {0} characters")]
    TooLong(usize),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane).
///
/// It also holds a hash of a random password, verified against when a username does not exist,
/// so that an unknown user costs the same time as a wrong password (no user enumeration).
pub struct PasswordHasher {
    argon: Argon2<'static>,
    decoy: String,
}

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 256;

impl PasswordHasher {
    pub fn new() -> Result<Self, PasswordError> {
        Self::with_params(19 * 1024, 2, 1)
    }

    /// Cheaper parameters, for tests of code around hashing only.
    pub fn with_params(m_kib: u32, t: u32, p: u32) -> Result<Self, PasswordError> {
        let params =
            Params::new(m_kib, t, p, None).map_err(|e| PasswordError::Hash(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let decoy_pw = crate::random_token("");
        let salt = SaltString::generate(&mut OsRng);
        let decoy = argon
            .hash_password(decoy_pw.expose().as_bytes(), &salt)
            .map_err(|e| PasswordError::Hash(e.to_string()))?
            .to_string();
        Ok(Self { argon, decoy })
    }

    /// Checks the length policy (NIST 800-63B: length, not composition rules).
    pub fn check_policy(password: &SecretString) -> Result<(), PasswordError> {
        let n = password.expose().chars().count();
        if n < MIN_LEN {
            return Err(PasswordError::TooShort(MIN_LEN));
        }
        if n > MAX_LEN {
            return Err(PasswordError::TooLong(MAX_LEN));
        }
        Ok(())
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
    pub fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        Self::check_policy(password)?;
        let salt = SaltString::generate(&mut OsRng);
        self.argon
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    /// Verifies against a stored PHC string; `None` verifies against the decoy and fails,
    /// taking the same time as a real check.
    pub fn verify(&self, stored: Option<&str>, password: &SecretString) -> bool {
        let (phc, real) = match stored {
            Some(s) => (s, true),
            None => (self.decoy.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let ok = self
            .argon
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok();
        ok && real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_unknown_users_never_do() {
        let h = PasswordHasher::new().unwrap_or_else(|e| unreachable!("{e}"));
        let pw = SecretString::new("korrekt hest batteri");
        let phc = h.hash(&pw).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify(Some(&phc), &pw));
        assert!(!h.verify(Some(&phc), &SecretString::new("feil passord her")));
        assert!(!h.verify(None, &pw));
        assert!(!h.verify(Some("garbage"), &pw));
        assert!(h.hash(&SecretString::new("kort")).is_err());
    }
}
