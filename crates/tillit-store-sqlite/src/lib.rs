//! The SQLite backend of [`tillit_store::Store`]: one file in WAL mode, migrations embedded in
//! the binary, one writer connection and a small pool of readers.
//!
//! A database that is not ours, is corrupt, or was written by a newer schema is refused before
//! anything is written to it. This crate is the only one that sees `rusqlite` types.

mod access;
mod admin;
mod audit;
pub mod backup;
mod conn;
mod exit;
mod queries;
mod resources;
mod rights;
mod vault;

pub use conn::{SCHEMA_VERSION, SqliteStore};
pub use vault::SqliteKeyVault;
