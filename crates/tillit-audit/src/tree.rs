//! Proofs over a tree too large to hold: the caller answers "what is the hash of leaves
//! `start..end`" (from stored subtree hashes and a few leaves), and the proofs of RFC 9162
//! are built from those answers. Every range asked for is either a perfect subtree aligned
//! to its size or the right edge of the tree, so a store that keeps the hashes of perfect
//! subtrees from some level up answers each question with O(log n) look-ups.

use crate::merkle::{Hash, MerkleError, node_hash};

/// The hash of leaves `start..end` (non-empty).
pub trait RangeHasher {
    type Error;
    fn range_hash(&mut self, start: u64, end: u64) -> Result<Hash, Self::Error>;
}

/// A proof could not be made: bad sizes, or the source failed.
#[derive(Debug, thiserror::Error)]
pub enum ProofError<E> {
    #[error(transparent)]
    Tree(#[from] MerkleError),
    #[error("the tree's hashes could not be read")]
    Source(E),
}

/// The largest power of two smaller than `n` (n > 1).
pub fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
pub fn inclusion_proof<H: RangeHasher>(
    source: &mut H,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<H::Error>> {
    if index >= size {
        return Err(MerkleError::LeafOutOfRange { index, size }.into());
    }
    let mut out = Vec::new();
    let (mut start, mut end, mut m) = (0u64, size, index);
    // Walk down from the root, collecting siblings; RFC 9162 lists them leaf first.
    while end - start > 1 {
        let k = split(end - start);
        if m < k {
            out.push(
                source
                    .range_hash(start + k, end)
                    .map_err(ProofError::Source)?,
            );
            end = start + k;
        } else {
            out.push(
                source
                    .range_hash(start, start + k)
                    .map_err(ProofError::Source)?,
            );
            start += k;
            m -= k;
        }
    }
    out.reverse();
    Ok(out)
}

/// The consistency proof from the tree of `old_size` leaves to the tree of `new_size`.
pub fn consistency_proof<H: RangeHasher>(
    source: &mut H,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError<H::Error>> {
    if old_size > new_size {
        return Err(MerkleError::BadSizes {
            from: old_size,
            to: new_size,
        }
        .into());
    }
    let mut out = Vec::new();
    if old_size == 0 || old_size == new_size {
        return Ok(out);
    }
    // SUBPROOF(m, D[start:end], complete), unrolled; siblings are pushed innermost last,
    // so they are reversed at the end.
    let (mut start, mut end, mut m, mut complete) = (0u64, new_size, old_size, true);
    loop {
        let n = end - start;
        if m == n {
            if !complete {
                out.push(source.range_hash(start, end).map_err(ProofError::Source)?);
            }
            break;
        }
        let k = split(n);
        if m <= k {
            out.push(
                source
                    .range_hash(start + k, end)
                    .map_err(ProofError::Source)?,
            );
            end = start + k;
        } else {
            out.push(
                source
                    .range_hash(start, start + k)
                    .map_err(ProofError::Source)?,
            );
            start += k;
            m -= k;
            complete = false;
        }
    }
    out.reverse();
    Ok(out)
}

/// A perfect subtree that a growing tree completed: `level` 0 is a leaf, and the subtree
/// covers leaves `index << level .. (index + 1) << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub level: u32,
    pub index: u64,
    pub hash: Hash,
}

/// A [`RangeHasher`] over leaf hashes in memory (tests, small trees).
pub struct Leaves<'a>(pub &'a [Hash]);

impl RangeHasher for Leaves<'_> {
    type Error = MerkleError;
    fn range_hash(&mut self, start: u64, end: u64) -> Result<Hash, Self::Error> {
        self.0
            .get(start as usize..end as usize)
            .map(crate::merkle::root)
            .ok_or(MerkleError::LeafOutOfRange {
                index: end.saturating_sub(1),
                size: self.0.len() as u64,
            })
    }
}

/// Combines the hashes of two adjacent ranges, for sources that split a range themselves.
pub fn join(left: &Hash, right: &Hash) -> Hash {
    node_hash(left, right)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| merkle::leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(1 << 40), 1 << 39);
        assert_eq!(split((1 << 40) + 1), 1 << 40);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn proofs_from_ranges_equal_proofs_from_leaves(n in 1usize..300, a in 0usize..300, b in 0usize..300) {
            let l = leaves(n);
            let index = (a % n) as u64;
            let from_ranges = inclusion_proof(&mut Leaves(&l), index, n as u64).unwrap();
            prop_assert_eq!(&from_ranges, &merkle::inclusion_proof(&l, index).unwrap());
            merkle::verify_inclusion(index, n as u64, &l[index as usize], &from_ranges, &merkle::root(&l)).unwrap();
            let old = (b % (n + 1)) as u64;
            let c = consistency_proof(&mut Leaves(&l), old, n as u64).unwrap();
            prop_assert_eq!(&c, &merkle::consistency_proof(&l, old).unwrap());
            merkle::verify_consistency(old, n as u64, &merkle::root(&l[..old as usize]), &merkle::root(&l), &c).unwrap();
        }
    }
}
