//! Small-count suppression for one group of cells that add up to a published total.
//!
//! Primary: a cell counting fewer than `k` events, or drawn from fewer than `k` patients or
//! actors (but at least one), is suppressed; so is a cell the caller forces (a total that a
//! finer table withheld).
//! Secondary (complementary): with the group total published, a reader knows the sum of the
//! suppressed cells, and that each is at least 1 (only non-zero cells are listed). With `m`
//! suppressed cells summing to `s`, each lies anywhere in `1 ..= s - m + 1`. So suppression
//! goes on, smallest published cell first, until `m = 0`, or `m >= 2` and
//! `s - m + 1 >= k`: then every value from 1 to `k` stays possible for every suppressed
//! cell, and neither its value nor whether it is below `k` can be worked out. When every
//! cell is suppressed and that still fails, the total is withheld instead (and then it
//! says nothing). A total is never published below `k`: such a group fails the rule.

/// One cell before suppression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell<K> {
    pub key: K,
    pub count: u64,
    /// Distinct patients behind the count (0: not about patients).
    pub patients: u64,
    /// Distinct people who acted (staff, patients reading their own record), 0: not about
    /// actions.
    pub actors: u64,
    /// Suppressed whatever its count (a total a finer table withheld).
    pub forced: bool,
}

/// A group after suppression: each cell's count or `None`, and the total or `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed<K> {
    pub cells: Vec<(K, Option<u64>)>,
    pub total: Option<u64>,
}

fn small(n: u64, k: u64) -> bool {
    n > 0 && n < k
}

/// Whether a cell must be suppressed on its own.
pub fn primary<K>(c: &Cell<K>, k: u64) -> bool {
    c.forced || small(c.count, k) || small(c.patients, k) || small(c.actors, k)
}

/// Suppresses a group. Cells counting zero are left out (a reader may take an absent cell
/// as zero). `k` is at least 2.
pub fn suppress<K: Clone + Ord>(cells: Vec<Cell<K>>, k: u64) -> Suppressed<K> {
    let k = k.max(2);
    let mut cells: Vec<Cell<K>> = cells.into_iter().filter(|c| c.count > 0).collect();
    cells.sort_by(|a, b| a.key.cmp(&b.key));
    let total: u64 = cells.iter().map(|c| c.count).sum();
    let mut hidden: Vec<bool> = cells.iter().map(|c| primary(c, k)).collect();
    let total_shown = loop {
        let (m, s) = cells
            .iter()
            .zip(&hidden)
            .filter(|(_, h)| **h)
            .fold((0u64, 0u64), |(m, s), (c, _)| (m + 1, s + c.count));
        if m == 0 || (m >= 2 && s + 1 >= k + m) {
            break true;
        }
        // The smallest cell still shown (ties: the first by key) is suppressed as well.
        let next = cells
            .iter()
            .zip(&hidden)
            .enumerate()
            .filter(|(_, (_, h))| !**h)
            .min_by_key(|(i, (c, _))| (c.count, *i))
            .map(|(i, _)| i);
        match next.and_then(|i| hidden.get_mut(i)) {
            Some(h) => *h = true,
            None => break false,
        }
    };
    Suppressed {
        cells: cells
            .into_iter()
            .zip(hidden)
            .map(|(c, h)| (c.key, (!h).then_some(c.count)))
            .collect(),
        total: (total_shown && !small(total, k)).then_some(total),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    fn cell(key: &str, count: u64) -> Cell<String> {
        Cell {
            key: key.into(),
            count,
            patients: 0,
            actors: 0,
            forced: false,
        }
    }

    fn shown(s: &Suppressed<String>) -> Vec<(&str, Option<u64>)> {
        s.cells.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }

    #[test]
    fn nothing_small_means_nothing_suppressed() {
        let s = suppress(vec![cell("a", 7), cell("b", 12), cell("c", 0)], 5);
        assert_eq!(shown(&s), [("a", Some(7)), ("b", Some(12))]);
        assert_eq!(s.total, Some(19));
    }

    #[test]
    fn one_small_cell_takes_the_smallest_other_with_it() {
        // Total 30 with "b" hidden alone would give b = 30 - 7 - 20 = 3.
        let s = suppress(vec![cell("a", 7), cell("b", 3), cell("c", 20)], 5);
        assert_eq!(shown(&s), [("a", None), ("b", None), ("c", Some(20))]);
        assert_eq!(s.total, Some(30));
    }

    #[test]
    fn two_small_cells_whose_sum_tells_too_much_take_a_third() {
        // a + b = 2 with both at least 1 gives a = b = 1: a third cell is suppressed.
        let s = suppress(
            vec![cell("a", 1), cell("b", 1), cell("c", 9), cell("d", 40)],
            5,
        );
        assert_eq!(
            shown(&s),
            [("a", None), ("b", None), ("c", None), ("d", Some(40))]
        );
        assert_eq!(s.total, Some(51));
        // a + b = 7: each of a, b could be anything from 1 to 6. Both hidden is enough.
        let s = suppress(vec![cell("a", 3), cell("b", 4), cell("c", 9)], 5);
        assert_eq!(shown(&s), [("a", None), ("b", None), ("c", Some(9))]);
        assert_eq!(s.total, Some(16));
    }

    #[test]
    fn a_group_that_cannot_be_protected_withholds_its_total() {
        let s = suppress(vec![cell("a", 2), cell("b", 1)], 5);
        assert_eq!(shown(&s), [("a", None), ("b", None)]);
        assert_eq!(s.total, None);
        let s = suppress(vec![cell("a", 4)], 5);
        assert_eq!(s.total, None);
        // One large cell from three patients: suppressed, and alone it cannot be hidden.
        let mut c = cell("a", 40);
        c.patients = 3;
        let s = suppress(vec![c], 5);
        assert_eq!(shown(&s), [("a", None)]);
        assert_eq!(s.total, None);
    }

    #[test]
    fn few_patients_or_staff_suppress_a_large_count() {
        let mut a = cell("a", 30);
        a.actors = 1;
        let s = suppress(vec![a, cell("b", 8), cell("c", 9)], 5);
        assert_eq!(shown(&s), [("a", None), ("b", None), ("c", Some(9))]);
        assert_eq!(s.total, Some(47));
    }

    #[test]
    fn a_forced_cell_is_suppressed_and_protected() {
        let mut a = cell("a", 12);
        a.forced = true;
        let s = suppress(vec![a, cell("b", 30), cell("c", 8)], 5);
        assert_eq!(shown(&s), [("a", None), ("b", Some(30)), ("c", None)]);
    }

    /// For each suppressed cell, every value it can take given what was published: each
    /// hidden cell is at least 1 (only non-zero cells are listed) and at most `bound`, and
    /// together they make up the total less the published cells. Worked out by reachable
    /// sums, as a reader would, not from the rule being tested.
    fn feasible(s: &Suppressed<String>, bound: u64) -> Vec<std::collections::BTreeSet<u64>> {
        use std::collections::BTreeSet;
        let hidden = s.cells.iter().filter(|(_, v)| v.is_none()).count();
        let known: u64 = s.cells.iter().filter_map(|(_, v)| *v).sum();
        let rest = s.total.unwrap_or(0).saturating_sub(known);
        // Sums reachable by `n` hidden cells.
        let sums = |n: usize| -> BTreeSet<u64> {
            let mut reach: BTreeSet<u64> = [0].into();
            for _ in 0..n {
                reach = reach
                    .iter()
                    .flat_map(|r| (1..=bound).map(move |x| r + x))
                    .filter(|v| *v <= rest)
                    .collect();
            }
            reach
        };
        let others = sums(hidden.saturating_sub(1));
        (0..hidden)
            .map(|_| {
                (1..=bound)
                    .filter(|x| *x <= rest && others.contains(&(rest - x)))
                    .collect()
            })
            .collect()
    }

    fn arb_cells() -> impl Strategy<Value = Vec<Cell<String>>> {
        prop::collection::vec(
            (0u64..14, 0u64..8, 0u64..8, prop::bool::weighted(0.1)),
            0..6,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (count, p, st, forced))| Cell {
                    key: format!("c{i}"),
                    count,
                    patients: p.min(count),
                    actors: st.min(count),
                    forced,
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn no_published_number_is_between_1_and_k_minus_1(cells in arb_cells(), k in 2u64..9) {
            let s = suppress(cells.clone(), k);
            for (_, v) in &s.cells {
                if let Some(v) = v {
                    prop_assert!(*v == 0 || *v >= k, "cell {v} below k = {k}");
                }
            }
            if let Some(t) = s.total {
                prop_assert!(t == 0 || t >= k, "total {t} below k = {k}");
            }
            // What is published is true.
            let true_total: u64 = cells.iter().map(|c| c.count).sum();
            prop_assert!(s.total.is_none() || s.total == Some(true_total));
            for (key, v) in &s.cells {
                let c = cells.iter().find(|c| &c.key == key).unwrap();
                prop_assert!(v.is_none() || *v == Some(c.count));
                prop_assert!(v.is_some() || c.count > 0);
                if primary(c, k) {
                    prop_assert!(v.is_none(), "a primary cell was published");
                }
            }
        }

        #[test]
        fn no_suppressed_cell_can_be_worked_out_from_the_total(cells in arb_cells(), k in 2u64..7) {
            let s = suppress(cells, k);
            if s.total.is_some() && s.cells.iter().any(|(_, v)| v.is_none()) {
                let bound = s.total.unwrap_or(0).max(k);
                for (i, values) in feasible(&s, bound).iter().enumerate() {
                    // Every value 1..=k stays possible: not recoverable, and not even
                    // provably below k.
                    for x in 1..=k {
                        prop_assert!(values.contains(&x), "suppressed cell {i} cannot be {x}: {values:?}");
                    }
                }
            }
        }
    }
}
