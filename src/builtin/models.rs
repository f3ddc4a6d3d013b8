//! The builtin models: L2-regularised logistic regression (Newton's method with a line search, reaching
//! the optimum scikit-learn's `LogisticRegression(C)` reaches) and linear regression (least squares,
//! optional ridge). The intercept is never penalised, as in scikit-learn.

use serde::Serialize;

use super::linalg::{cholesky_solve, Matrix};

#[derive(Debug, Clone, Serialize)]
pub struct Fitted {
    pub intercept: f64,
    pub coefficients: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + exp(z))` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// `C · Σ logloss + ½‖w‖²`, the objective scikit-learn minimises.
fn objective(x: &Matrix, y: &[f64], c: f64, theta: &[f64]) -> f64 {
    let z = x.linear(theta[0], &theta[1..]);
    let loss: f64 = z.iter().zip(y).map(|(z, y)| softplus(*z) - y * z).sum();
    c * loss + 0.5 * theta[1..].iter().map(|w| w * w).sum::<f64>()
}

/// Fits `P(y=1|x) = σ(b + x·w)` minimising `C · Σ logloss + ½‖w‖²`.
/// `tol` bounds the largest gradient component, scaled by the number of rows.
pub fn fit_logistic(x: &Matrix, y: &[f64], c: f64, max_iter: usize, tol: f64) -> Fitted {
    let d = x.cols + 1;
    let mut theta = vec![0.0; d];
    let mut iterations = 0;
    let mut converged = false;
    let mut current = objective(x, y, c, &theta);
    while iterations < max_iter {
        if crate::signals::stop_requested().is_some() {
            // Asked to stop: the caller sees it and stops at its safe point.
            break;
        }
        let z = x.linear(theta[0], &theta[1..]);
        let p: Vec<f64> = z.iter().map(|z| sigmoid(*z)).collect();
        let weights: Vec<f64> = p.iter().map(|p| c * p * (1.0 - p)).collect();
        let residuals: Vec<f64> = p.iter().zip(y).map(|(p, y)| c * (p - y)).collect();
        let (mut hessian, mut gradient) = x.weighted_gram(&weights, &residuals);
        for k in 1..d {
            gradient[k] += theta[k];
            hessian[k * d + k] += 1.0;
        }
        let largest = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        if largest <= tol * c.max(1.0) {
            converged = true;
            break;
        }
        iterations += 1;
        // A tiny ridge on the intercept keeps the system solvable when the data separate perfectly.
        hessian[0] += 1e-10 * x.rows as f64;
        let Some(step) = cholesky_solve(&hessian, &gradient) else {
            break;
        };
        let slope: f64 = step.iter().zip(&gradient).map(|(s, g)| s * g).sum();
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            let candidate: Vec<f64> = theta.iter().zip(&step).map(|(a, s)| a - t * s).collect();
            let value = objective(x, y, c, &candidate);
            if value <= current - 1e-4 * t * slope {
                theta = candidate;
                current = value;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            // No descent left at machine precision: this is the optimum.
            converged = true;
            break;
        }
    }
    Fitted {
        intercept: theta[0],
        coefficients: theta[1..].to_vec(),
        iterations,
        converged,
    }
}

/// Least squares with a ridge penalty `alpha · ‖w‖²` (0 for ordinary least squares).
pub fn fit_linear(x: &Matrix, y: &[f64], alpha: f64) -> Fitted {
    let d = x.cols + 1;
    let ones = vec![1.0; x.rows];
    let (mut gram, _) = x.weighted_gram(&ones, &vec![0.0; x.rows]);
    let mut rhs = vec![0.0; d];
    for (i, target) in y.iter().enumerate() {
        rhs[0] += target;
        for (k, value) in x.row(i).iter().enumerate() {
            rhs[k + 1] += value * target;
        }
    }
    // One-hot columns with an intercept are collinear: a vanishing ridge picks the minimum-norm
    // solution, whose predictions are those of any least-squares solution.
    let jitter = 1e-9 * (x.rows as f64).max(1.0);
    for k in 1..d {
        gram[k * d + k] += alpha + jitter;
    }
    let theta = cholesky_solve(&gram, &rhs).unwrap_or_else(|| {
        let mut g = gram.clone();
        for k in 0..d {
            g[k * d + k] += 1e-6 * (x.rows as f64).max(1.0);
        }
        cholesky_solve(&g, &rhs).unwrap_or(vec![0.0; d])
    });
    Fitted {
        intercept: theta[0],
        coefficients: theta[1..].to_vec(),
        iterations: 1,
        converged: true,
    }
}

impl Fitted {
    pub fn decision(&self, x: &Matrix) -> Vec<f64> {
        x.linear(self.intercept, &self.coefficients)
    }

    pub fn probabilities(&self, x: &Matrix) -> Vec<f64> {
        self.decision(x).into_iter().map(sigmoid).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[&[f64]]) -> Matrix {
        Matrix {
            rows: rows.len(),
            cols: rows[0].len(),
            data: rows.iter().flat_map(|r| r.iter().copied()).collect(),
        }
    }

    /// Reference from scikit-learn:
    /// LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(X, y) with
    /// X = [[-1.5,0.2],[-0.8,-1.0],[-0.3,0.5],[0.1,-0.4],[0.4,1.1],[0.9,-0.2],[1.3,0.8],[1.8,-1.3]],
    /// y = [0,0,1,0,1,0,1,1] gives intercept_ and coef_ recorded below.
    #[test]
    fn logistic_regression_matches_scikit_learn() {
        let x = matrix(&[
            &[-1.5, 0.2],
            &[-0.8, -1.0],
            &[-0.3, 0.5],
            &[0.1, -0.4],
            &[0.4, 1.1],
            &[0.9, -0.2],
            &[1.3, 0.8],
            &[1.8, -1.3],
        ]);
        let y = [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        let fitted = fit_logistic(&x, &y, 1.0, 100, 1e-10);
        assert!(fitted.converged);
        let (b, w) = (REFERENCE_LOGISTIC.0, REFERENCE_LOGISTIC.1);
        assert!((fitted.intercept - b).abs() < 1e-6, "{fitted:?}");
        for (got, want) in fitted.coefficients.iter().zip(w) {
            assert!((got - want).abs() < 1e-6, "{fitted:?}");
        }
        // Stronger regularisation shrinks the coefficients.
        let shrunk = fit_logistic(&x, &y, 0.01, 100, 1e-10);
        assert!(shrunk.coefficients[0].abs() < fitted.coefficients[0].abs());
    }

    /// Reference from scikit-learn: LinearRegression().fit(X, y) and Ridge(alpha=1.0).fit(X, y) with
    /// X = [[1,2],[2,1],[3,4],[4,3],[5,6]], y = [3.1,3.9,7.2,7.8,11.1].
    #[test]
    fn linear_regression_matches_scikit_learn() {
        let x = matrix(&[
            &[1.0, 2.0],
            &[2.0, 1.0],
            &[3.0, 4.0],
            &[4.0, 3.0],
            &[5.0, 6.0],
        ]);
        let y = [3.1, 3.9, 7.2, 7.8, 11.1];
        let ols = fit_linear(&x, &y, 0.0);
        assert!((ols.intercept - REFERENCE_OLS.0).abs() < 1e-6, "{ols:?}");
        for (got, want) in ols.coefficients.iter().zip(REFERENCE_OLS.1) {
            assert!((got - want).abs() < 1e-6, "{ols:?}");
        }
        let ridge = fit_linear(&x, &y, 1.0);
        assert!(
            (ridge.intercept - REFERENCE_RIDGE.0).abs() < 1e-6,
            "{ridge:?}"
        );
        for (got, want) in ridge.coefficients.iter().zip(REFERENCE_RIDGE.1) {
            assert!((got - want).abs() < 1e-6, "{ridge:?}");
        }
    }

    // scikit-learn 1.9.1
    const REFERENCE_LOGISTIC: (f64, [f64; 2]) = (
        -0.18516530870179992,
        [0.816583057709281, 0.6577758791403083],
    );
    const REFERENCE_OLS: (f64, [f64; 2]) =
        (0.5216666666666674, [1.3483333333333334, 0.6416666666666665]);
    const REFERENCE_RIDGE: (f64, [f64; 2]) =
        (0.8482384823848248, [1.1466124661246606, 0.7287262872628731]);
}
