//! Against the Certificate Transparency test vectors (the eight-leaf tree of RFC 6962's
//! reference implementation, carried over unchanged by RFC 9162), then properties.

use super::*;

fn h(s: &str) -> Hash {
    let v = hex::decode(s).unwrap();
    v.try_into().unwrap()
}

/// The leaf inputs of the reference test tree.
fn inputs() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        (0x60..=0x6f).collect(),
    ]
}

fn leaves() -> Vec<Hash> {
    inputs().iter().map(|d| leaf_hash(d)).collect()
}

const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn the_empty_tree_hashes_to_sha256_of_nothing() {
    assert_eq!(
        root(&[]),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
}

#[test]
fn roots_match_the_reference_vectors() {
    let l = leaves();
    for (n, want) in ROOTS.iter().enumerate() {
        assert_eq!(root(&l[..=n]), h(want), "tree of size {}", n + 1);
    }
}

#[test]
fn inclusion_proofs_match_the_reference_vectors() {
    let l = leaves();
    let cases: &[(u64, usize, &[&str])] = &[
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, want) in cases {
        let tree = &l[..*size];
        let proof = inclusion_proof(tree, *index).unwrap();
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(proof, want, "leaf {index} of {size}");
        verify_inclusion(
            *index,
            *size as u64,
            &l[*index as usize],
            &proof,
            &root(tree),
        )
        .unwrap();
    }
}

#[test]
fn consistency_proofs_match_the_reference_vectors() {
    let l = leaves();
    let cases: &[(u64, usize, &[&str])] = &[
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, new, want) in cases {
        let proof = consistency_proof(&l[..*new], *old).unwrap();
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(proof, want, "{old} -> {new}");
        verify_consistency(
            *old,
            *new as u64,
            &root(&l[..*old as usize]),
            &root(&l[..*new]),
            &proof,
        )
        .unwrap();
    }
}

#[test]
fn a_changed_leaf_a_wrong_size_or_a_forged_root_is_caught() {
    let l = leaves();
    let proof = inclusion_proof(&l, 3).unwrap();
    let r = root(&l);
    assert_eq!(
        verify_inclusion(3, 8, &leaf_hash(b"edited"), &proof, &r),
        Err(MerkleError::RootMismatch)
    );
    assert!(verify_inclusion(3, 4, &l[3], &proof, &r).is_err());
    assert!(verify_inclusion(4, 8, &l[3], &proof, &r).is_err());
    assert_eq!(
        verify_inclusion(3, 8, &l[3], &proof[..2], &r),
        Err(MerkleError::ProofLength)
    );
    let c = consistency_proof(&l, 3).unwrap();
    let old = root(&l[..3]);
    assert!(verify_consistency(3, 8, &old, &r, &c).is_ok());
    // A rewritten history: an old head whose leaves were changed is not a prefix.
    let mut rewritten = l.clone();
    rewritten[1] = leaf_hash(b"rewritten");
    assert_eq!(
        verify_consistency(3, 8, &root(&rewritten[..3]), &r, &c),
        Err(MerkleError::RootMismatch)
    );
    assert!(verify_consistency(8, 3, &r, &old, &c).is_err());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn every_proof_made_verifies_and_a_changed_leaf_never_does(
            data in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 1..70),
            pick in any::<u64>(),
            old_pick in any::<u64>(),
        ) {
            let l: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
            let n = l.len() as u64;
            let i = pick % n;
            let r = root(&l);
            let p = inclusion_proof(&l, i).unwrap();
            prop_assert!(verify_inclusion(i, n, &l[i as usize], &p, &r).is_ok());
            prop_assert!(verify_inclusion(i, n, &leaf_hash(b"\xffnot a leaf"), &p, &r).is_err());
            let m = old_pick % (n + 1);
            let c = consistency_proof(&l, m).unwrap();
            prop_assert!(verify_consistency(m, n, &root(&l[..m as usize]), &r, &c).is_ok());
            if m > 0 && m < n {
                let mut changed = l.clone();
                changed[(pick % m) as usize] = leaf_hash(b"\xffchanged");
                prop_assert!(verify_consistency(m, n, &root(&changed[..m as usize]), &r, &c).is_err());
            }
        }
    }
}
