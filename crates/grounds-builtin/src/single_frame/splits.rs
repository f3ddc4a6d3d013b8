//! How rows are split: a seeded shuffle (SplitMix64, so that splits depend on the seed alone) into
//! folds or a hold-out, as the group of every row.

use anyhow::bail;

use super::params::Split;

/// A small, fixed pseudo-random generator (SplitMix64), so that splits depend on the seed alone.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix(seed);
    for i in (1..n).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// The group of every row: a split's test part is one group, its training part all the others. Folds:
/// group `k` is fold `k`; a hold-out: group 0 is the test part, group 1 the rest. Returns the groups and
/// the number of splits.
pub fn assign(n: usize, split: Split, seed: u64) -> anyhow::Result<(Vec<u32>, usize, usize)> {
    let order = shuffled(n, seed);
    let mut group = vec![0u32; n];
    match split {
        Split::Folds(k) => {
            if k > n {
                bail!("{k} folds need at least {k} rows; the data has {n}");
            }
            let mut start = 0;
            for fold in 0..k {
                let size = n / k + usize::from(fold < n % k);
                for &i in &order[start..start + size] {
                    group[i] = fold as u32;
                }
                start += size;
            }
            Ok((group, k, k))
        }
        Split::Holdout(fraction) => {
            let test_rows = ((fraction * n as f64).ceil() as usize).max(1);
            if test_rows >= n {
                bail!("test_size {fraction} leaves no rows to train on ({n} rows)");
            }
            for &i in &order[test_rows..] {
                group[i] = 1;
            }
            Ok((group, 2, 1))
        }
    }
}

/// (train rows, test rows) of the split whose test part is group `test`, rows in their original order.
#[cfg(test)]
fn split_rows(group: &[u32], test: usize) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::with_capacity(group.len());
    let mut tested = Vec::new();
    for (i, &g) in group.iter().enumerate() {
        if g as usize == test {
            tested.push(i);
        } else {
            train.push(i);
        }
    }
    (train, tested)
}

/// (train rows, test rows) of each split.
#[cfg(test)]
pub fn splits(n: usize, split: Split, seed: u64) -> anyhow::Result<Vec<(Vec<usize>, Vec<usize>)>> {
    let (group, _, count) = assign(n, split, seed)?;
    Ok((0..count).map(|k| split_rows(&group, k)).collect())
}
