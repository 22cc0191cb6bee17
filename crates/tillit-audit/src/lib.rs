//! Tillit's tamper-evident audit log: an RFC 9162 Merkle tree over each tenant's events,
//! with inclusion and consistency proofs that anyone can check.
//!
//! This crate is pure: it hashes and proves over leaf hashes handed in, and never does I/O
//! or reads a clock. A leaf commits to an event by its hash, so an event's payload can later
//! be erased (retention, erasure) while the tree still verifies.

pub mod checkpoint;
pub mod merkle;
pub mod review;
pub mod tree;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointSigner, CheckpointVerifier};
pub use merkle::{Hash, MerkleError};
