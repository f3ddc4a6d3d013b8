//! Scores of predictions, computed the way scikit-learn's metrics compute them.

/// ROC AUC with tied scores given their average rank (Mann-Whitney U). `None` when a class is absent.
pub fn roc_auc(labels: &[f64], scores: &[f64]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_positive = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let average_rank = (i + j + 2) as f64 / 2.0;
        for &index in &order[i..=j] {
            if labels[index] > 0.5 {
                rank_sum_positive += average_rank;
            }
        }
        i = j + 1;
    }
    let positives = labels.iter().filter(|&&y| y > 0.5).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    Some((rank_sum_positive - positives * (positives + 1.0) / 2.0) / (positives * negatives))
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
