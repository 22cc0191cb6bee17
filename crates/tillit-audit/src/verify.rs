//! Recomputing a tenant's log: what `tillit audit verify` runs over the stored entries and
//! checkpoints. It reports the first problem with the sequence number it concerns:
//! a changed entry, a missing one, one out of order, a checkpoint that does not match the
//! entries, or a checkpoint whose signature does not verify.
//!
//! An entry is its sequence number and the hash of its payload (the event); the payload
//! itself may have been erased (retention, a patient's erasure), in which case only the hash
//! takes part, and the tree still verifies.

use crate::checkpoint::{Checkpoint, CheckpointVerifier};
use crate::merkle::{Hash, leaf_hash, node_hash};
use aws_lc_rs::digest::{SHA256, digest};

/// Domain separation of Tillit's leaves.
const LEAF_PREFIX: &[u8] = b"tillit/audit/v1\0";

/// The hash of an event's payload, as stored beside it.
pub fn payload_hash(payload: &[u8]) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, payload).as_ref());
    out
}

/// The Merkle leaf of an entry: it commits to the tenant, the sequence number and the
/// payload's hash, so a payload can be erased while its leaf stays.
pub fn entry_leaf(tenant: &str, seq: u64, payload_hash: &Hash) -> Hash {
    let mut data = Vec::with_capacity(LEAF_PREFIX.len() + tenant.len() + 41);
    data.extend_from_slice(LEAF_PREFIX);
    data.extend_from_slice(tenant.as_bytes());
    data.push(0);
    data.extend_from_slice(&seq.to_be_bytes());
    data.extend_from_slice(payload_hash);
    leaf_hash(&data)
}

/// The roots of the perfect subtrees of a growing tree (at most 64): appending is O(log n)
/// and memory stays small however long the log.
#[derive(Debug, Clone, Default)]
pub struct CompactRange {
    size: u64,
    /// Subtree roots from the largest (leftmost) to the smallest.
    nodes: Vec<Hash>,
}

impl CompactRange {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        self.push_reporting(leaf, &mut |_| {});
    }

    /// Appends a leaf and reports every perfect subtree of level one and up that it
    /// completes (a store keeps those from some level up, to make proofs without the leaves).
    pub fn push_reporting(&mut self, leaf: Hash, completed: &mut dyn FnMut(crate::tree::Node)) {
        let index = self.size;
        let mut node = leaf;
        let mut size = self.size;
        let mut level = 0u32;
        while size & 1 == 1 {
            if let Some(left) = self.nodes.pop() {
                node = node_hash(&left, &node);
            }
            size >>= 1;
            level += 1;
            completed(crate::tree::Node {
                level,
                index: index >> level,
                hash: node,
            });
        }
        self.nodes.push(node);
        self.size += 1;
    }

    /// The range as bytes: the size (8 bytes, big-endian) and then the subtree roots.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.nodes.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for n in &self.nodes {
            out.extend_from_slice(n);
        }
        out
    }

    /// Reads [`CompactRange::to_bytes`]; `None` when the bytes cannot be a range.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (size, rest) = bytes.split_first_chunk::<8>()?;
        let size = u64::from_be_bytes(*size);
        if rest.len() != 32 * size.count_ones() as usize {
            return None;
        }
        let nodes = rest
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Some(Self { size, nodes })
    }

    /// The RFC 9162 root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(first) = it.next() else {
            return crate::merkle::empty_root();
        };
        it.fold(*first, |acc, left| node_hash(left, &acc))
    }
}

/// One stored entry as verification reads it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub payload_hash: Hash,
    /// `None` once the payload has been erased.
    pub payload: Option<Vec<u8>>,
}

/// What is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("entry {seq} was changed: its content does not match its recorded hash")]
    Changed { seq: u64 },
    #[error("entry {seq} is missing (the next entry found is {found})")]
    Missing { seq: u64, found: u64 },
    #[error("entry {seq} is out of order or repeated (expected {expected} next)")]
    Reordered { seq: u64, expected: u64 },
    #[error(
        "the checkpoint at size {size} does not match the log: an entry before {size} was rewritten"
    )]
    RootMismatch { size: u64 },
    #[error("the checkpoint at size {size} has a bad signature: {reason}")]
    BadSignature { size: u64, reason: String },
    #[error(
        "the checkpoint at size {size} is beyond the log, which ends at {end}: entries were removed"
    )]
    Truncated { size: u64, end: u64 },
    #[error("a checkpoint names origin {found}, not {expected}")]
    WrongOrigin { expected: String, found: String },
}

impl Problem {
    /// The first sequence number the problem concerns.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Problem::Changed { seq }
            | Problem::Missing { seq, .. }
            | Problem::Reordered { seq, .. } => Some(*seq),
            Problem::RootMismatch { size }
            | Problem::BadSignature { size, .. }
            | Problem::Truncated { size, .. } => Some(size.saturating_sub(1)),
            Problem::WrongOrigin { .. } => None,
        }
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    pub erased_payloads: u64,
    pub checkpoints: u64,
    pub root: Hash,
}

/// Verifies a tenant's entries (in stored order) against its signed checkpoints (any order).
/// `progress` is told the number of entries done, now and then.
pub fn verify_log(
    tenant: &str,
    origin: &str,
    entries: impl IntoIterator<Item = Entry>,
    signed_checkpoints: &[String],
    verifier: &CheckpointVerifier,
    progress: &mut dyn FnMut(u64),
) -> Result<Verified, Problem> {
    // Checkpoints first: a forged one is caught before any work on the entries.
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for note in signed_checkpoints {
        let size_hint = note
            .lines()
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        let cp = verifier.verify(note).map_err(|e| Problem::BadSignature {
            size: size_hint,
            reason: e.to_string(),
        })?;
        if cp.origin != origin {
            return Err(Problem::WrongOrigin {
                expected: origin.to_string(),
                found: cp.origin,
            });
        }
        checkpoints.push(cp);
    }
    checkpoints.sort_by_key(|c| c.size);
    let mut next_checkpoint = checkpoints.iter().peekable();
    let mut range = CompactRange::default();
    let mut erased = 0;
    let check = |range: &CompactRange,
                 next: &mut std::iter::Peekable<std::slice::Iter<'_, Checkpoint>>|
     -> Result<(), Problem> {
        while let Some(cp) = next.peek() {
            if cp.size != range.size() {
                break;
            }
            if cp.root != range.root() {
                return Err(Problem::RootMismatch { size: cp.size });
            }
            next.next();
        }
        Ok(())
    };
    check(&range, &mut next_checkpoint)?;
    let mut entries = entries.into_iter();
    while let Some(e) = entries.next() {
        let expected = range.size();
        if e.seq > expected {
            // A gap: the expected entry further on means the order was changed.
            if entries.any(|later| later.seq == expected) {
                return Err(Problem::Reordered {
                    seq: e.seq,
                    expected,
                });
            }
            return Err(Problem::Missing {
                seq: expected,
                found: e.seq,
            });
        }
        if e.seq < expected {
            return Err(Problem::Reordered {
                seq: e.seq,
                expected,
            });
        }
        match &e.payload {
            Some(p) if payload_hash(p) != e.payload_hash => {
                return Err(Problem::Changed { seq: e.seq });
            }
            Some(_) => {}
            None => erased += 1,
        }
        range.push(entry_leaf(tenant, e.seq, &e.payload_hash));
        check(&range, &mut next_checkpoint)?;
        if range.size() % 65_536 == 0 {
            progress(range.size());
        }
    }
    progress(range.size());
    if let Some(cp) = next_checkpoint.next() {
        return Err(Problem::Truncated {
            size: cp.size,
            end: range.size(),
        });
    }
    Ok(Verified {
        entries: range.size(),
        erased_payloads: erased,
        checkpoints: checkpoints.len() as u64,
        root: range.root(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointSigner;
    use crate::merkle;
    use zeroize::Zeroizing;

    const T: &str = "tenant-1";
    const ORIGIN: &str = "tillit.example/audit/tenant-1";

    fn log(n: u64) -> Vec<Entry> {
        (0..n)
            .map(|seq| {
                let payload = format!("{{\"seq\":{seq},\"action\":\"read\"}}").into_bytes();
                Entry {
                    seq,
                    payload_hash: payload_hash(&payload),
                    payload: Some(payload),
                }
            })
            .collect()
    }

    fn signer() -> CheckpointSigner {
        CheckpointSigner::from_seed("tillit.example/audit", &Zeroizing::new([3; 32])).unwrap()
    }

    fn checkpoints(entries: &[Entry], sizes: &[u64]) -> Vec<String> {
        let s = signer();
        sizes
            .iter()
            .map(|&size| {
                let mut r = CompactRange::default();
                for e in entries.iter().take(size as usize) {
                    r.push(entry_leaf(T, e.seq, &e.payload_hash));
                }
                s.sign(&Checkpoint {
                    origin: ORIGIN.into(),
                    size,
                    root: r.root(),
                })
            })
            .collect()
    }

    fn run(entries: Vec<Entry>, cps: &[String]) -> Result<Verified, Problem> {
        let v = CheckpointVerifier::parse(&signer().verifier_key()).unwrap();
        verify_log(T, ORIGIN, entries, cps, &v, &mut |_| {})
    }

    #[test]
    fn the_compact_range_reports_completed_subtrees_and_round_trips() {
        let leaves: Vec<Hash> = (0..37u64)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut r = CompactRange::default();
        let mut nodes = Vec::new();
        for l in &leaves {
            r.push_reporting(*l, &mut |n| nodes.push(n));
            let back = CompactRange::from_bytes(&r.to_bytes()).unwrap();
            assert_eq!(back.root(), r.root());
            assert_eq!(back.size(), r.size());
        }
        // 37 leaves complete 18 + 9 + 4 + 2 + 1 subtrees of levels 1 to 5.
        assert_eq!(nodes.len(), 34);
        for n in nodes {
            let start = (n.index << n.level) as usize;
            let end = ((n.index + 1) << n.level) as usize;
            assert_eq!(n.hash, merkle::root(&leaves[start..end]), "{n:?}");
        }
        assert!(CompactRange::from_bytes(&[0; 7]).is_none());
        assert!(CompactRange::from_bytes(&3u64.to_be_bytes()).is_none());
    }

    #[test]
    fn the_compact_range_gives_the_rfc_9162_root_at_every_size() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut r = CompactRange::default();
        assert_eq!(r.root(), merkle::root(&[]));
        for (i, l) in leaves.iter().enumerate() {
            r.push(*l);
            assert_eq!(r.root(), merkle::root(&leaves[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn an_intact_log_verifies_even_with_erased_payloads() {
        let mut entries = log(100);
        let cps = checkpoints(&entries, &[0, 1, 37, 64, 100]);
        entries[10].payload = None;
        let ok = run(entries, &cps).unwrap();
        assert_eq!(
            (ok.entries, ok.erased_payloads, ok.checkpoints),
            (100, 1, 5)
        );
    }

    #[test]
    fn an_edit_a_deletion_a_reorder_and_a_forged_checkpoint_are_each_named() {
        let entries = log(50);
        let cps = checkpoints(&entries, &[20, 50]);

        let mut edited = entries.clone();
        edited[17].payload = Some(b"{\"seq\":17,\"action\":\"nothing\"}".to_vec());
        assert_eq!(run(edited, &cps), Err(Problem::Changed { seq: 17 }));

        // An edit that also rewrote the stored hash: the checkpoint catches it.
        let mut rewritten = entries.clone();
        let p = b"{\"seq\":5,\"action\":\"nothing\"}".to_vec();
        rewritten[5].payload_hash = payload_hash(&p);
        rewritten[5].payload = Some(p);
        assert_eq!(
            run(rewritten, &cps),
            Err(Problem::RootMismatch { size: 20 })
        );

        let mut deleted = entries.clone();
        deleted.remove(30);
        assert_eq!(
            run(deleted, &cps),
            Err(Problem::Missing { seq: 30, found: 31 })
        );

        let mut reordered = entries.clone();
        reordered.swap(40, 41);
        assert_eq!(
            run(reordered, &cps),
            Err(Problem::Reordered {
                seq: 41,
                expected: 40
            })
        );
        let mut repeated = entries.clone();
        repeated.insert(12, repeated[11].clone());
        assert_eq!(
            run(repeated, &cps),
            Err(Problem::Reordered {
                seq: 11,
                expected: 12
            })
        );

        let forged = vec![cps[0].clone(), cps[1].replacen("\n50\n", "\n49\n", 1)];
        assert!(matches!(
            run(entries.clone(), &forged),
            Err(Problem::BadSignature { size: 49, .. })
        ));

        let mut truncated = entries.clone();
        truncated.truncate(45);
        assert_eq!(
            run(truncated, &cps),
            Err(Problem::Truncated { size: 50, end: 45 })
        );
        assert_eq!(Problem::Changed { seq: 17 }.seq(), Some(17));
    }
}
