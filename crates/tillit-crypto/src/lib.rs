//! Cryptography for Tillit: password hashing, TOTP, API and session tokens, constant-time
//! comparison. Secrets live in zeroizing types whose `Debug` prints `[redacted]`.
//!
//! This crate must never log, never hand-roll a primitive, and never compare secrets with `==`.

pub mod keyring;
mod password;
mod secret;
mod token;
mod totp;

pub use keyring::{Erasure, ErasureGuard, Kek, KeyError, KeyVault, Keyring, TenantDeletion};
pub use password::{MIN_LEN as PASSWORD_MIN_LEN, PasswordError, PasswordHasher};
pub use secret::SecretString;
pub use token::{TokenHash, ct_eq, random_token, token_hash};
pub use totp::{TotpError, TotpSecret, totp_qr_svg};
