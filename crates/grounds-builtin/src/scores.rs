//! Scores of predictions, computed the way scikit-learn's metrics compute them.

/// ROC AUC with tied scores given their average rank (Mann-Whitney U). `None` when a class is absent.
/// The scores are ranked by a radix sort (linear in the rows), then one pass over runs of equal scores.
pub fn roc_auc(labels: &[f64], scores: &[f64]) -> Option<f64> {
    let (keys, positive) = radix_sorted(scores, labels);
    let mut rank_sum_positive = 0.0;
    let mut positives = 0usize;
    let mut i = 0;
    while i < keys.len() {
        let mut j = i;
        let mut run_positives = usize::from(positive[i]);
        while j + 1 < keys.len() && same_score(keys[j + 1], keys[i]) {
            j += 1;
            run_positives += usize::from(positive[j]);
        }
        // Ranks i+1 ..= j+1 share their average.
        rank_sum_positive += run_positives as f64 * (i + j + 2) as f64 / 2.0;
        positives += run_positives;
        i = j + 1;
    }
    let positives = positives as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    Some((rank_sum_positive - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// The bits of `x` as an unsigned number in the order of `f64::total_cmp`.
fn ordered_bits(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Equal as numbers (so 0.0 and -0.0 tie, as they do for scikit-learn).
fn same_score(a: u64, b: u64) -> bool {
    let back = |k: u64| f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k });
    a == b || back(a) == back(b)
}

/// The scores' ordered bits sorted, with each row's class alongside: least significant digit first,
/// 11 bits at a time, skipping the digits all scores share (probabilities share their top bits).
fn radix_sorted(scores: &[f64], labels: &[f64]) -> (Vec<u64>, Vec<bool>) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    let mut keys: Vec<u64> = scores.iter().map(|s| ordered_bits(*s)).collect();
    let mut positive: Vec<bool> = labels.iter().map(|y| *y > 0.5).collect();
    let mut keys_out = vec![0u64; keys.len()];
    let mut positive_out = vec![false; keys.len()];
    let mut shift = 0;
    while shift < 64 {
        let mut counts = vec![0usize; BUCKETS];
        for k in &keys {
            counts[((k >> shift) as usize) & (BUCKETS - 1)] += 1;
        }
        if counts.contains(&keys.len()) {
            shift += BITS;
            continue;
        }
        let mut start = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = start;
            start += n;
        }
        for (k, p) in keys.iter().zip(&positive) {
            let bucket = ((k >> shift) as usize) & (BUCKETS - 1);
            keys_out[counts[bucket]] = *k;
            positive_out[counts[bucket]] = *p;
            counts[bucket] += 1;
        }
        std::mem::swap(&mut keys, &mut keys_out);
        std::mem::swap(&mut positive, &mut positive_out);
        shift += BITS;
    }
    (keys, positive)
}

/// Share of rows whose class (probability above one half) is the label.
pub fn accuracy(labels: &[f64], probabilities: &[f64]) -> f64 {
    let right = labels
        .iter()
        .zip(probabilities)
        .filter(|(y, p)| (**p > 0.5) == (**y > 0.5))
        .count();
    right as f64 / labels.len() as f64
}

/// Mean cross-entropy, probabilities clipped to [eps, 1 - eps] with eps the f64 machine epsilon.
pub fn log_loss(labels: &[f64], probabilities: &[f64]) -> f64 {
    let eps = f64::EPSILON;
    let total: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(y, p)| {
            let p = p.clamp(eps, 1.0 - eps);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum();
    total / labels.len() as f64
}

/// Coefficient of determination; 1.0 for a perfect fit of a constant, 0.0 for an imperfect one.
pub fn r2(labels: &[f64], predictions: &[f64]) -> f64 {
    let mean = labels.iter().sum::<f64>() / labels.len() as f64;
    let total: f64 = labels.iter().map(|y| (y - mean).powi(2)).sum();
    let residual: f64 = labels
        .iter()
        .zip(predictions)
        .map(|(y, p)| (y - p).powi(2))
        .sum();
    if total == 0.0 {
        return if residual == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - residual / total
}

pub fn rmse(labels: &[f64], predictions: &[f64]) -> f64 {
    let squared: f64 = labels
        .iter()
        .zip(predictions)
        .map(|(y, p)| (y - p).powi(2))
        .sum();
    (squared / labels.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from scikit-learn 1.x:
    /// roc_auc_score([0,0,1,1,0,1], [0.1,0.4,0.35,0.8,0.4,0.4]) = 0.6666666666666667 (ties at 0.4),
    /// log_loss(same) = 0.5527113618128084, accuracy_score(same labels, p > 0.5) = 0.6666666666666666.
    /// (scikit-learn 1.9.1)
    #[test]
    fn classification_scores_match_scikit_learn() {
        let y = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let p = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4];
        assert!((roc_auc(&y, &p).unwrap() - 0.6666666666666667).abs() < 1e-12);
        assert!((log_loss(&y, &p) - 0.5527113618128084).abs() < 1e-12);
        assert!((accuracy(&y, &p) - 0.6666666666666666).abs() < 1e-12);
        assert_eq!(roc_auc(&[1.0, 1.0], &[0.2, 0.3]), None);
        // All scores tied: AUC one half.
        assert_eq!(roc_auc(&[0.0, 1.0, 0.0, 1.0], &[0.5; 4]), Some(0.5));
        // Negative scores, a zero of each sign (tied) and values a bit apart rank as numbers do.
        let s = [
            -3.0,
            0.0,
            -0.0,
            1e-300,
            2.5,
            -1e-300,
            2.5 + 4.0 * f64::EPSILON,
        ];
        let y = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        // Ranks: -3 → 1, -1e-300 → 2, ±0 → 3.5, 1e-300 → 5, 2.5 → 6, 2.5+ → 7; positives 3.5 + 5 + 7.
        let want = (15.5 - 6.0) / 12.0;
        assert!((roc_auc(&y, &s).unwrap() - want).abs() < 1e-12);
        // Many rows: the same as counting every pair.
        let scores: Vec<f64> = (0..3000)
            .map(|i| ((i * 7919) % 1000) as f64 / 37.0 - 10.0)
            .collect();
        let labels: Vec<f64> = (0..3000).map(|i| f64::from((i * 31) % 7 < 3)).collect();
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (a, ya) in scores.iter().zip(&labels) {
            for (b, yb) in scores.iter().zip(&labels) {
                if *ya > 0.5 && *yb < 0.5 {
                    pairs += 1.0;
                    wins += if a > b {
                        1.0
                    } else if a == b {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((roc_auc(&labels, &scores).unwrap() - wins / pairs).abs() < 1e-12);
    }

    /// r2_score([3,-0.5,2,7], [2.5,0,2,8]) = 0.9486081370449679 (scikit-learn's docstring example);
    /// root_mean_squared_error of the same = 0.6123724356957945.
    #[test]
    fn regression_scores_match_scikit_learn() {
        let y = [3.0, -0.5, 2.0, 7.0];
        let p = [2.5, 0.0, 2.0, 8.0];
        assert!((r2(&y, &p) - 0.9486081370449679).abs() < 1e-12);
        assert!((rmse(&y, &p) - 0.6123724356957945).abs() < 1e-12);
    }
}
