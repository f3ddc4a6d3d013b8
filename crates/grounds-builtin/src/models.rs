//! The builtin models: L2-regularised logistic regression (Newton's method with a line search, reaching
//! the optimum scikit-learn's `LogisticRegression(C)` reaches) and linear regression (least squares,
//! optional ridge). The intercept is never penalised, as in scikit-learn.
//!
//! Newton's method here is the careful kind: it stops on the gradient as scikit-learn's `tol` means it
//! (the largest component of the gradient of the mean loss), damps the step when the Hessian is near
//! singular, and its line search tells a real decrease from rounding, so that it neither runs to
//! `max_iter` taking steps that change nothing nor stops early at a point it could still improve. A
//! design too wide for a formed Hessian (a category of many levels) solves its steps by conjugate
//! gradients on products with the Hessian instead, to the same optimum.

use rayon::prelude::*;
use serde::Serialize;

use super::linalg::{conjugate_gradient, damped_solve, sum_rows, Design};

#[derive(Debug, Clone, Serialize)]
pub struct Fitted {
    pub intercept: f64,
    pub coefficients: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
    /// The largest component of the gradient of the mean loss at the end (scikit-learn's measure for
    /// `tol`); 0 for a closed-form fit.
    pub gradient: f64,
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

/// `C · Σ logloss(z_i − t·u_i) + ½‖w − t·s‖²` over the rows in the fit: the objective scikit-learn
/// minimises (times `C·n`), at `theta − t·step` given `z = Xθ` and `u = X·step`.
#[allow(
    clippy::too_many_arguments,
    reason = "the design, the point, the step and the penalty are the arithmetic's own inputs; a struct would only rename them"
)]
fn objective_along(
    x: &Design,
    z: &[f64],
    u: &[f64],
    y: &[f64],
    t: f64,
    c: f64,
    theta: &[f64],
    step: &[f64],
) -> f64 {
    let loss = sum_rows(z.len(), |range| {
        let mut sum = 0.0;
        for i in range {
            if x.in_fit(i) {
                let zi = z[i] - t * u[i];
                sum += softplus(zi) - y[i] * zi;
            }
        }
        sum
    });
    let penalty: f64 = theta[1..]
        .iter()
        .zip(&step[1..])
        .map(|(w, s)| (w - t * s).powi(2))
        .sum();
    c * loss + 0.5 * penalty
}

/// The widest design (coefficients with the intercept) whose Newton steps solve the Hessian itself: it is
/// `width²` numbers per part of a pass and a Cholesky factorisation of `width³/6` operations. A wider one
/// (a category of many levels: names, tickets, ids) solves its steps by conjugate gradients on products
/// with the Hessian, which is never formed ([`newton_step_by_products`]).
pub const WIDEST_DENSE: usize = 512;

/// The products with the Hessian a wide fit's Newton step may take (scikit-learn's `newton-cg` allows
/// as many).
const MOST_PRODUCTS: usize = 200;

/// Whether a design is too wide for a formed Hessian (see [`WIDEST_DENSE`]).
fn solves_by_products(x: &Design) -> bool {
    x.width + 1 > WIDEST_DENSE
}

/// Rows' weights as `weigh` makes them block by block in a pass, written out for every row (in parallel):
/// the products with the Hessian of a wide design read them once per product.
fn weights_of<F>(x: &Design, weigh: &F) -> Vec<f64>
where
    F: Fn(std::ops::Range<usize>, &mut [f64], &mut [f64]) + Sync,
{
    const CHUNK: usize = 4096;
    let mut weights = vec![0.0; x.rows];
    weights
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(k, chunk)| {
            let mut residuals = vec![0.0; chunk.len()];
            weigh(k * CHUNK..k * CHUNK + chunk.len(), chunk, &mut residuals);
        });
    weights
}

/// The Newton step of a wide logistic fit at the point whose (penalised) `gradient` and `weights` are
/// given, solved by conjugate gradients preconditioned by the Hessian's diagonal, a pass over the rows
/// per product (scikit-learn's `newton-cg`, a truncated Newton method). The step is solved as precisely
/// as the gradient is large (scikit-learn's forcing term: the residual's absolute sum within
/// `min(½, √Σ|g|)·Σ|g|`, the gradient in the mean loss's units), so steps far from the optimum are
/// cheap and the last ones exact enough for the test of `tol`. `None` if it is not finite.
fn newton_step_by_products(
    x: &Design,
    weights: &[f64],
    gradient: &[f64],
    c: f64,
    n: f64,
) -> Option<Vec<f64>> {
    let d = gradient.len();
    // The same tiny ridge on the intercept as the dense Hessian has.
    let intercept_ridge = 1e-10 * n;
    let mut diagonal = x.gram_diagonal(weights);
    diagonal[0] += intercept_ridge;
    diagonal[1..].iter_mut().for_each(|v| *v += 1.0);
    let magnitude: f64 = gradient.iter().map(|g| g.abs()).sum();
    let forcing = 0.5f64.min((magnitude / (c * n)).sqrt());
    let (step, _, _) = conjugate_gradient(
        |v| {
            let mut product = x.gram_times(weights, v);
            product[0] += intercept_ridge * v[0];
            product[1..d]
                .iter_mut()
                .zip(&v[1..])
                .for_each(|(p, v)| *p += v);
            product
        },
        gradient,
        &diagonal,
        forcing * magnitude,
        MOST_PRODUCTS,
    );
    step.iter().all(|v| v.is_finite()).then_some(step)
}

/// Where a fit starts: zeros, or an earlier fit's coefficients (a warm start; the optimum is unique).
pub type Start = Option<Vec<f64>>;

/// Fits `P(y=1|x) = σ(b + x·w)` minimising `C · Σ logloss + ½‖w‖²` over the design's rows in the fit
/// (`y` holds a label for every row of the design). Converged when the largest component of the gradient
/// of the mean loss and half the squared Newton decrement are at most `tol` (scikit-learn's
/// `newton-cholesky` test); one more Newton step is then taken, which costs little and puts the optimum
/// well within `tol`. After the first step the gradient is computed alone first: when it passes the test
/// with the last point's Hessian, that Hessian takes the last step and the Gram pass is saved. Returns the fit and its decision `b + x·w` for every row, held-out rows included.
pub fn fit_logistic(
    x: &Design,
    y: &[f64],
    c: f64,
    max_iter: usize,
    tol: f64,
    start: Start,
) -> (Fitted, Vec<f64>) {
    fit_logistic_solving(x, y, c, max_iter, tol, start, solves_by_products(x))
}

/// [`fit_logistic`], its Newton steps solved with the Hessian or (`by_products`) by products with it.
fn fit_logistic_solving(
    x: &Design,
    y: &[f64],
    c: f64,
    max_iter: usize,
    tol: f64,
    start: Start,
    by_products: bool,
) -> (Fitted, Vec<f64>) {
    let n = x.fitted_rows().max(1) as f64;
    let mut theta = starting_point(x, y, start);
    let mut z = x.linear(&theta);
    let zeros = vec![0.0; z.len()];
    let mut current = objective_along(x, &z, &zeros, y, 0.0, c, &theta, &theta);
    let mut iterations = 0;
    let mut converged = false;
    let mut largest = f64::INFINITY;
    // The Hessian of the last point and the Newton decrement (squared) it gave there.
    let mut last_hessian: Option<(Vec<f64>, f64)> = None;
    // The gradient is `C·n` times that of scikit-learn's mean objective.
    let threshold = tol * c * n;
    while iterations < max_iter {
        if grounds_job::signals::stop_requested().is_some() {
            // Asked to stop: the caller sees it and stops at its safe point.
            break;
        }
        let (gradient, solved, hessian) = newton_direction(
            NewtonPoint {
                x,
                y,
                z: &z,
                theta: &theta,
                c,
                threshold,
                tol,
            },
            by_products,
            &mut last_hessian,
        );
        largest = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        let Some(step) = solved else {
            converged = largest <= threshold;
            break;
        };
        let slope: f64 = step.iter().zip(&gradient).map(|(s, g)| s * g).sum();
        // scikit-learn's Newton solvers' test, in its units: the largest gradient component within
        // `tol`, and half the squared Newton decrement (about the objective still to gain) within
        // `tol²` (scikit-learn asks `tol`; so loose a test leaves directions the data barely
        // constrain, such as rare categories, visibly short of the optimum).
        let small = largest <= threshold && 0.5 * slope <= threshold * tol;
        if slope.is_nan() || slope <= 0.0 || slope.is_infinite() {
            // No direction of descent left: the gradient is rounding.
            converged = true;
            break;
        }
        let u = x.linear(&step);
        let accepted = line_search(x, y, c, (&z, &u), (&theta, &step), current, slope);
        let Some((t, value, only_rounding)) = accepted else {
            // Not even a tiny step lowers the objective: at machine precision this is the optimum.
            converged = small;
            break;
        };
        iterations += 1;
        theta.iter_mut().zip(&step).for_each(|(a, s)| *a -= t * s);
        z.par_iter_mut()
            .zip(&u)
            .with_min_len(4096)
            .for_each(|(z, u)| *z -= t * u);
        current = value;
        let moved = step.iter().fold(0.0f64, |m, s| m.max((t * s).abs()));
        let size = theta.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        if small || only_rounding || moved <= 1e-12 * size {
            converged = true;
            break;
        }
        last_hessian = hessian.map(|hessian| (hessian, slope));
    }
    let fitted = Fitted {
        intercept: theta[0],
        coefficients: theta[1..].to_vec(),
        iterations,
        converged,
        gradient: if largest.is_finite() {
            largest / (c * n)
        } else {
            largest
        },
    };
    (fitted, z)
}

/// Where a fit starts: the given coefficients when they fit the design, else the best intercept alone
/// (the log-odds of the classes) rather than zero, which saves a Newton step or two.
fn starting_point(x: &Design, y: &[f64], start: Start) -> Vec<f64> {
    let d = x.width + 1;
    start
        .filter(|s| s.len() == d && s.iter().all(|v| v.is_finite()))
        .unwrap_or_else(|| {
            let n = x.fitted_rows().max(1) as f64;
            let positives: f64 = (0..x.rows).filter(|&i| x.in_fit(i)).map(|i| y[i]).sum();
            let mean = positives / n;
            let mut zero = vec![0.0; d];
            if mean > 0.0 && mean < 1.0 {
                zero[0] = (mean / (1.0 - mean)).ln();
            }
            zero
        })
}

/// One point of a logistic fit, as the Newton direction reads it.
struct NewtonPoint<'a, 'd> {
    x: &'a Design<'d>,
    y: &'a [f64],
    /// The decision `b + x·w` of every row at `theta`.
    z: &'a [f64],
    theta: &'a [f64],
    c: f64,
    /// The convergence test's bound on the gradient, in the fit's units (`tol · C · n`).
    threshold: f64,
    tol: f64,
}

/// The penalised gradient at a point, the Newton step from it (none when the system cannot be solved)
/// and, when the step was solved with it, the Hessian. `last_hessian` is the last point's Hessian and
/// the Newton decrement it gave; taken here, and reused when it still describes the objective.
fn newton_direction(
    point: NewtonPoint,
    by_products: bool,
    last_hessian: &mut Option<(Vec<f64>, f64)>,
) -> (Vec<f64>, Option<Vec<f64>>, Option<Vec<f64>>) {
    let NewtonPoint {
        x,
        y,
        z,
        theta,
        c,
        threshold,
        tol,
    } = point;
    let d = x.width + 1;
    let n = x.fitted_rows().max(1) as f64;
    // Weights and residuals of the current point, made block by block as the pass reads the rows.
    let weigh = |range: std::ops::Range<usize>, weights: &mut [f64], residuals: &mut [f64]| {
        let rows = range.clone().zip(&z[range.clone()]).zip(&y[range]);
        for (((i, z), y), (w, r)) in rows.zip(weights.iter_mut().zip(residuals.iter_mut())) {
            (*w, *r) = if x.in_fit(i) {
                let p = sigmoid(*z);
                (c * p * (1.0 - p), c * (p - y))
            } else {
                (0.0, 0.0)
            };
        }
    };
    // The gradient alone, with the penalty's part.
    let penalised_gradient = || {
        let mut gradient = x.gradient(weigh);
        gradient[1..]
            .iter_mut()
            .zip(&theta[1..])
            .for_each(|(g, t)| *g += t);
        gradient
    };
    if by_products {
        let gradient = penalised_gradient();
        let step = newton_step_by_products(x, &weights_of(x, &weigh), &gradient, c, n);
        (gradient, step, None)
    } else {
        // After a step, the gradient alone (a pass of a fraction of the Gram pass's work) may show
        // this point within `tol` as the last point's Hessian measures it; then that Hessian serves
        // the last step. Only when it still describes the objective: had the Hessian not changed
        // along the last step, a Newton step would have left no gradient at all, so what is left
        // (the decrement now against the last one, both in that Hessian's measure) tells how much it
        // changed; the last step is trusted to it when that is a tenth or less (the squares a
        // hundredth). Otherwise the full pass.
        let near = last_hessian
            .take()
            .and_then(|(hessian, last_slope): (Vec<f64>, f64)| {
                let gradient = penalised_gradient();
                let largest = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs()));
                let step = damped_solve(&hessian, &gradient)?;
                let slope: f64 = step.iter().zip(&gradient).map(|(s, g)| s * g).sum();
                let within = largest <= threshold && slope > 0.0 && 0.5 * slope <= threshold * tol;
                (within && slope <= 1e-2 * last_slope).then_some((hessian, gradient))
            });
        let (hessian, gradient) = match near {
            Some(point) => point,
            None => {
                let (mut hessian, mut gradient) = x.gram(weigh);
                for k in 1..d {
                    gradient[k] += theta[k];
                    hessian[k * d + k] += 1.0;
                }
                // A tiny ridge on the intercept keeps the system solvable when the data separate
                // perfectly.
                hessian[0] += 1e-10 * n;
                (hessian, gradient)
            }
        };
        let step = damped_solve(&hessian, &gradient);
        (gradient, step, Some(hessian))
    }
}

/// A backtracking search along `-step` from `theta` (decisions `z`, the step's `u`): the step length,
/// the objective there, and whether it was taken only because it changes less than rounding shows.
/// None when not even a tiny step lowers the objective.
fn line_search(
    x: &Design,
    y: &[f64],
    c: f64,
    (z, u): (&[f64], &[f64]),
    (theta, step): (&[f64], &[f64]),
    current: f64,
    slope: f64,
) -> Option<(f64, f64, bool)> {
    let n = x.fitted_rows().max(1) as f64;
    // Differences of the objective below this are rounding in its sum, not progress.
    let noise = 1e-14 * current.abs().max(1.0) * n.sqrt().max(1.0);
    let mut t = 1.0;
    for _ in 0..50 {
        let value = objective_along(x, z, u, y, t, c, theta, step);
        let sufficient = value <= current - 1e-4 * t * slope;
        // A full Newton step that promises less than rounding can show: accept it if it does no
        // harm; that is the optimum. (Only the full step: shorter ones promise less and less.)
        let within_rounding = t == 1.0 && slope <= noise && value <= current + noise;
        if value.is_finite() && (sufficient || within_rounding) {
            return Some((t, value, within_rounding && !sufficient));
        }
        t *= 0.5;
    }
    None
}

/// Least squares with a ridge penalty `alpha · ‖w‖²` (0 for ordinary least squares) over the design's
/// rows in the fit; the fit and its predictions for every row, held-out rows included.
pub fn fit_linear(x: &Design, y: &[f64], alpha: f64) -> (Fitted, Vec<f64>) {
    let d = x.width + 1;
    // One-hot columns with an intercept are collinear: a vanishing ridge picks the minimum-norm
    // solution, whose predictions are those of any least-squares solution.
    let jitter = 1e-9 * (x.fitted_rows() as f64).max(1.0);
    // Every row in the fit weighs 1; its residual is its target.
    let weigh = |range: std::ops::Range<usize>, weights: &mut [f64], residuals: &mut [f64]| {
        let rows = range.clone().zip(&y[range]);
        for ((i, y), (w, r)) in rows.zip(weights.iter_mut().zip(residuals.iter_mut())) {
            (*w, *r) = if x.in_fit(i) { (1.0, *y) } else { (0.0, 0.0) };
        }
    };
    let fitted = if solves_by_products(x) {
        fit_linear_by_products(x, &weigh, alpha + jitter)
    } else {
        let (mut gram, rhs) = x.gram(weigh);
        for k in 1..d {
            gram[k * d + k] += alpha + jitter;
        }
        let theta = damped_solve(&gram, &rhs).unwrap_or_else(|| vec![0.0; d]);
        Fitted {
            intercept: theta[0],
            coefficients: theta[1..].to_vec(),
            iterations: 1,
            converged: true,
            gradient: 0.0,
        }
    };
    let decision = x.linear(&fitted.theta());
    (fitted, decision)
}

/// The products a wide least-squares fit may take.
const MOST_LEAST_SQUARES_PRODUCTS: usize = 1000;

/// Least squares of a wide design (see [`WIDEST_DENSE`]), `ridge` on every coefficient but the
/// intercept, `weigh` giving the rows' weights and targets as [`Design::gram`] takes them: the normal
/// equations solved by conjugate gradients on products with `XᵀX`, never formed, to a residual of `1e-10`
/// of the right-hand side's. `iterations` are the products taken, `gradient` the largest component of
/// the normal equations' residual per row.
fn fit_linear_by_products<F>(x: &Design, weigh: &F, ridge: f64) -> Fitted
where
    F: Fn(std::ops::Range<usize>, &mut [f64], &mut [f64]) + Sync,
{
    let d = x.width + 1;
    let weights = weights_of(x, weigh);
    let rhs = x.gradient(weigh);
    let mut diagonal = x.gram_diagonal(&weights);
    diagonal[1..].iter_mut().for_each(|v| *v += ridge);
    let times = |v: &[f64]| {
        let mut product = x.gram_times(&weights, v);
        product[1..d]
            .iter_mut()
            .zip(&v[1..])
            .for_each(|(p, v)| *p += ridge * v);
        product
    };
    let magnitude: f64 = rhs.iter().map(|v| v.abs()).sum();
    let (theta, products, converged) = conjugate_gradient(
        times,
        &rhs,
        &diagonal,
        1e-10 * magnitude,
        MOST_LEAST_SQUARES_PRODUCTS,
    );
    let theta: Vec<f64> = if theta.iter().all(|v| v.is_finite()) {
        theta
    } else {
        vec![0.0; d]
    };
    let left = times(&theta)
        .iter()
        .zip(&rhs)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    Fitted {
        intercept: theta[0],
        coefficients: theta[1..].to_vec(),
        iterations: products,
        converged,
        gradient: left / (x.fitted_rows().max(1) as f64),
    }
}

impl Fitted {
    pub fn theta(&self) -> Vec<f64> {
        std::iter::once(self.intercept)
            .chain(self.coefficients.iter().copied())
            .collect()
    }

    /// The decision `b + x·w` of every row of `x`.
    #[cfg(test)]
    pub fn decision(&self, x: &Design) -> Vec<f64> {
        x.linear(&self.theta())
    }
}

/// The probabilities of decisions `z` (in place).
pub fn probabilities(mut z: Vec<f64>) -> Vec<f64> {
    z.par_iter_mut()
        .with_min_len(4096)
        .for_each(|v| *v = sigmoid(*v));
    z
}

#[cfg(test)]
mod tests {
    use super::super::columns::MISSING;
    use super::super::linalg::{Categories, HeldOut, Numbers};
    use super::*;

    /// The columns of rows written out row by row.
    fn columns(rows: &[&[f64]]) -> Vec<Vec<f64>> {
        (0..rows[0].len())
            .map(|a| rows.iter().map(|r| r[a]).collect())
            .collect()
    }

    fn design(columns: &[Vec<f64>]) -> Design<'_> {
        Design {
            rows: columns[0].len(),
            width: columns.len(),
            numbers: columns
                .iter()
                .enumerate()
                .map(|(a, values)| Numbers::plain(a, values))
                .collect(),
            categories: Vec::new(),
            held_out: None,
        }
    }

    /// Reference from scikit-learn:
    /// LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(X, y) with
    /// X = [[-1.5,0.2],[-0.8,-1.0],[-0.3,0.5],[0.1,-0.4],[0.4,1.1],[0.9,-0.2],[1.3,0.8],[1.8,-1.3]],
    /// y = [0,0,1,0,1,0,1,1] gives intercept_ and coef_ recorded below.
    #[test]
    fn logistic_regression_matches_scikit_learn() {
        let columns = columns(&[
            &[-1.5, 0.2],
            &[-0.8, -1.0],
            &[-0.3, 0.5],
            &[0.1, -0.4],
            &[0.4, 1.1],
            &[0.9, -0.2],
            &[1.3, 0.8],
            &[1.8, -1.3],
        ]);
        let x = design(&columns);
        let y = [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        for tol in [1e-10, 1e-4] {
            let (fitted, _) = fit_logistic(&x, &y, 1.0, 100, tol, None);
            assert!(fitted.converged);
            let (b, w) = (REFERENCE_LOGISTIC.0, REFERENCE_LOGISTIC.1);
            assert!((fitted.intercept - b).abs() < 1e-6, "{fitted:?}");
            for (got, want) in fitted.coefficients.iter().zip(w) {
                assert!((got - want).abs() < 1e-6, "{fitted:?}");
            }
        }
        // Stronger regularisation shrinks the coefficients.
        let (shrunk, _) = fit_logistic(&x, &y, 0.01, 100, 1e-10, None);
        let (full, _) = fit_logistic(&x, &y, 1.0, 100, 1e-10, None);
        assert!(shrunk.coefficients[0].abs() < full.coefficients[0].abs());
    }

    /// A fixed pseudo-random stream for the synthetic folds below.
    struct Stream(u64);
    impl Stream {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }

        /// `rows` values `low + span·u`, each missing (NaN) where `u < missing`.
        fn values_with_gaps(&mut self, rows: usize, missing: f64, low: f64, span: f64) -> Vec<f64> {
            (0..rows)
                .map(|_| match self.next() {
                    u if u < missing => f64::NAN,
                    u => low + span * u,
                })
                .collect()
        }

        /// `rows` codes `0..count-1`, uniformly, or missing (one chance in `count`).
        fn codes_with_gaps(&mut self, rows: usize, count: u32) -> Vec<u32> {
            (0..rows)
                .map(|_| match (self.next() * count as f64) as u32 {
                    k if k == count - 1 => MISSING,
                    k => k,
                })
                .collect()
        }
    }

    /// The kind of data that left the old solver at `max_iter`: many rows, one-hot features with rare
    /// and nearly separating levels, a feature that copies another, one that is almost constant, and a
    /// row count that makes a raw gradient sum large. Every fold must converge in a few Newton steps to
    /// a point where the mean gradient is within `tol`, and reach the same optimum from another start.
    #[test]
    fn newton_converges_on_one_hot_folds_with_rare_and_separating_levels() {
        let rows = 60_000;
        let mut s = Stream(7);
        let a: Vec<f64> = (0..rows).map(|_| s.next() * 2.0 - 1.0).collect();
        let b: Vec<f64> = (0..rows).map(|_| s.next() * 2.0 - 1.0).collect();
        let flat: Vec<f64> = (0..rows)
            .map(|i| if i == 17 { 40.0 } else { 0.0 })
            .collect();
        // Level 0 common, 1-3 middling, 4 in five rows only, 5 always positive (nearly separating).
        let level = |u: f64| match u {
            u if u < 0.5 => 0,
            u if u < 0.7 => 1,
            u if u < 0.85 => 2,
            u if u < 0.97 => 3,
            _ => 5,
        };
        let mut codes: Vec<u32> = (0..rows).map(|_| level(s.next())).collect();
        for i in [3, 1000, 2000, 30_000, 59_000] {
            codes[i] = 4;
        }
        let other: Vec<u32> = (0..rows)
            .map(|_| match (s.next() * 40.0) as u32 {
                39 => MISSING,
                k => k,
            })
            .collect();
        let y: Vec<f64> = (0..rows)
            .map(|i| {
                let logit = 1.5 * a[i] - b[i] + [0.0, 0.5, -0.5, 1.0, 0.0, 9.0][codes[i] as usize];
                f64::from(s.next() < 1.0 / (1.0 + (-logit).exp()))
            })
            .collect();
        let x = Design {
            rows,
            width: 3 + 6 + 40,
            numbers: vec![
                Numbers::plain(0, &a),
                Numbers::plain(1, &a),
                Numbers::plain(2, &flat),
            ],
            categories: vec![
                Categories::plain(3, 6, &codes),
                Categories::plain(9, 40, &other),
            ],
            held_out: None,
        };
        let mut with_b = x.clone();
        with_b.numbers[2].values = &b;
        for (design, c) in [
            (&x, 1.0),
            (&with_b, 1.0),
            (&with_b, 1000.0),
            (&with_b, 0.01),
        ] {
            let (fitted, z1) = fit_logistic(design, &y, c, 100, 1e-4, None);
            assert!(fitted.converged, "C={c}: {fitted:?}");
            assert!(
                fitted.iterations <= 15,
                "C={c}: {} iterations",
                fitted.iterations
            );
            assert!(
                fitted.gradient <= 1e-4,
                "C={c}: gradient {}",
                fitted.gradient
            );
            // A tight tol reaches the one optimum, from zero and from a start far away.
            let (tight, z2) = fit_logistic(design, &y, c, 100, 1e-9, None);
            let far = vec![3.0; design.width + 1];
            let (again, _) = fit_logistic(design, &y, c, 100, 1e-9, Some(far));
            for fit in [&tight, &again] {
                assert!(fit.converged && fit.iterations <= 25, "C={c}: {fit:?}");
            }
            for (p, q) in tight.theta().iter().zip(again.theta()) {
                assert!((p - q).abs() < 1e-6 * (1.0 + p.abs()), "C={c}: {p} vs {q}");
            }
            // And the fit at the default tol predicts as the optimum does.
            // The decisions a fit returns are those of its coefficients.
            let recomputed = fitted.decision(design);
            assert!(z1
                .iter()
                .zip(&recomputed)
                .all(|(a, b)| (a - b).abs() < 1e-9));
            let worst = z1
                .iter()
                .zip(&z2)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            let mean = z1.iter().zip(&z2).map(|(a, b)| (a - b).abs()).sum::<f64>() / rows as f64;
            assert!(
                worst < 1e-2 && mean < 1e-3,
                "C={c}: decisions differ by {worst} at most, {mean} on average"
            );
        }
    }

    /// A category of many levels (names, tickets: most levels in one or two rows) beside numbers and a
    /// category with missing values, some rows held out: Newton steps solved by products with the
    /// Hessian reach the optimum the solved Hessian reaches, in as few Newton iterations, at strong and
    /// weak regularisation; and so does least squares.
    #[test]
    fn steps_solved_by_products_reach_the_optimum_of_the_solved_hessian() {
        let rows = 6_000;
        let levels = 400;
        let mut s = Stream(23);
        let a: Vec<f64> = (0..rows).map(|_| s.next() * 2.0 - 1.0).collect();
        let b = s.values_with_gaps(rows, 0.1, 50.0, 10.0);
        // Zipf-like: a few common levels, most in a handful of rows.
        let name: Vec<u32> = (0..rows)
            .map(|_| ((1.0 / (1.0 - 0.995 * s.next())) as u32 - 1).min(levels as u32 - 1))
            .collect();
        let effect: Vec<f64> = (0..levels).map(|_| 2.0 * s.next() - 1.0).collect();
        let other = s.codes_with_gaps(rows, 9);
        let y: Vec<f64> = (0..rows)
            .map(|i| {
                let logit = 1.2 * a[i] + effect[name[i] as usize] + 0.1 * f64::from(other[i] % 3);
                f64::from(s.next() < 1.0 / (1.0 + (-logit).exp()))
            })
            .collect();
        let group: Vec<u32> = (0..rows).map(|_| (s.next() * 4.0) as u32).collect();
        let x = Design {
            rows,
            width: 2 + levels + 8,
            numbers: vec![
                Numbers::plain(0, &a),
                Numbers {
                    position: 1,
                    values: &b,
                    mean: 55.0,
                    inverse_scale: 1.0 / 3.0,
                },
            ],
            categories: vec![
                Categories::plain(2, levels, &name),
                Categories::plain(2 + levels, 8, &other),
            ],
            held_out: Some(HeldOut {
                group: &group,
                test: 2,
            }),
        };
        for c in [0.05, 1.0, 100.0] {
            let (dense, _) = fit_logistic_solving(&x, &y, c, 100, 1e-10, None, false);
            let (products, z) = fit_logistic_solving(&x, &y, c, 100, 1e-10, None, true);
            assert!(dense.converged && products.converged, "C={c}: {products:?}");
            assert!(
                products.iterations <= dense.iterations + 3,
                "C={c}: {} iterations by products, {} solved",
                products.iterations,
                dense.iterations
            );
            assert!(products.gradient <= 1e-10, "C={c}: {}", products.gradient);
            for (p, q) in dense.theta().iter().zip(products.theta()) {
                assert!((p - q).abs() < 1e-6 * (1.0 + p.abs()), "C={c}: {p} vs {q}");
            }
            let recomputed = products.decision(&x);
            assert!(z.iter().zip(&recomputed).all(|(p, q)| (p - q).abs() < 1e-9));
            // At the default tol it stops sooner, near the same point.
            let (loose, _) = fit_logistic_solving(&x, &y, c, 100, 1e-4, None, true);
            assert!(
                loose.converged && loose.gradient <= 1e-4,
                "C={c}: {loose:?}"
            );
        }
        let target: Vec<f64> = (0..rows)
            .map(|i| a[i] * 3.0 + effect[name[i] as usize])
            .collect();
        for ridge in [1e-6, 0.5] {
            let weigh =
                |range: std::ops::Range<usize>, weights: &mut [f64], residuals: &mut [f64]| {
                    for (i, (w, r)) in range.zip(weights.iter_mut().zip(residuals.iter_mut())) {
                        (*w, *r) = if x.in_fit(i) {
                            (1.0, target[i])
                        } else {
                            (0.0, 0.0)
                        };
                    }
                };
            let mut gram = x.gram(weigh);
            let d = x.width + 1;
            for k in 1..d {
                gram.0[k * d + k] += ridge;
            }
            let want = damped_solve(&gram.0, &gram.1).unwrap();
            let fitted = fit_linear_by_products(&x, &weigh, ridge);
            assert!(fitted.converged, "ridge {ridge}: {fitted:?}");
            for (p, q) in want.iter().zip(fitted.theta()) {
                assert!(
                    (p - q).abs() < 1e-6 * (1.0 + p.abs()),
                    "ridge {ridge}: {p} vs {q}"
                );
            }
        }
    }

    /// A design that holds rows out fits exactly what a design of only the other rows fits (standardised
    /// on the way in, categories through a level map), and predicts the held-out rows with that fit.
    #[test]
    fn held_out_rows_do_not_count_in_a_fit_and_are_predicted() {
        let rows = 5000;
        let mut s = Stream(11);
        let raw = s.values_with_gaps(rows, 0.05, 100.0, 40.0);
        let codes = s.codes_with_gaps(rows, 5);
        let y: Vec<f64> = (0..rows)
            .map(|i| {
                let x = if raw[i].is_nan() {
                    0.0
                } else {
                    (raw[i] - 120.0) / 10.0
                };
                let logit = x + [0.5, -0.5, 1.0, 0.0, 0.2][codes[i].min(4) as usize];
                f64::from(s.next() < 1.0 / (1.0 + (-logit).exp()))
            })
            .collect();
        let group: Vec<u32> = (0..rows).map(|_| (s.next() * 3.0) as u32).collect();
        // Code 3 is unseen in training, a missing category is imputed as code 1.
        let level = vec![1, 0, 1, 2, MISSING];
        fn view<'a>(
            values: &'a [f64],
            codes: &'a [u32],
            level: &[u32],
            held_out: Option<HeldOut<'a>>,
        ) -> Design<'a> {
            Design {
                rows: values.len(),
                width: 4,
                numbers: vec![Numbers {
                    position: 0,
                    values,
                    mean: 118.0,
                    inverse_scale: 0.1,
                }],
                categories: vec![Categories {
                    offset: 1,
                    levels: 3,
                    codes,
                    level: level.to_vec(),
                }],
                held_out,
            }
        }
        let held = view(
            &raw,
            &codes,
            &level,
            Some(HeldOut {
                group: &group,
                test: 1,
            }),
        );
        assert_eq!(
            held.fitted_rows(),
            group.iter().filter(|g| **g != 1).count()
        );
        let kept: Vec<usize> = (0..rows).filter(|&i| group[i] != 1).collect();
        let kept_raw: Vec<f64> = kept.iter().map(|&i| raw[i]).collect();
        let kept_codes: Vec<u32> = kept.iter().map(|&i| codes[i]).collect();
        let kept_y: Vec<f64> = kept.iter().map(|&i| y[i]).collect();
        let alone = view(&kept_raw, &kept_codes, &level, None);
        let (a, z) = fit_logistic(&held, &y, 1.0, 100, 1e-10, None);
        let (b, _) = fit_logistic(&alone, &kept_y, 1.0, 100, 1e-10, None);
        assert!(a.converged && b.converged);
        for (p, q) in a.theta().iter().zip(b.theta()) {
            assert!((p - q).abs() < 1e-8, "{:?} vs {:?}", a.theta(), b.theta());
        }
        let all = view(&raw, &codes, &level, None);
        let direct = b.decision(&all);
        assert!(z.iter().zip(&direct).all(|(p, q)| (p - q).abs() < 1e-7));
        let (a, predicted) = fit_linear(&held, &y, 0.5);
        let (b, _) = fit_linear(&alone, &kept_y, 0.5);
        for (p, q) in a.theta().iter().zip(b.theta()) {
            assert!((p - q).abs() < 1e-9, "{:?} vs {:?}", a.theta(), b.theta());
        }
        let direct = b.decision(&all);
        assert!(predicted
            .iter()
            .zip(&direct)
            .all(|(p, q)| (p - q).abs() < 1e-8));
    }

    /// Reference from scikit-learn: LinearRegression().fit(X, y) and Ridge(alpha=1.0).fit(X, y) with
    /// X = [[1,2],[2,1],[3,4],[4,3],[5,6]], y = [3.1,3.9,7.2,7.8,11.1].
    #[test]
    fn linear_regression_matches_scikit_learn() {
        let columns = columns(&[
            &[1.0, 2.0],
            &[2.0, 1.0],
            &[3.0, 4.0],
            &[4.0, 3.0],
            &[5.0, 6.0],
        ]);
        let x = design(&columns);
        let y = [3.1, 3.9, 7.2, 7.8, 11.1];
        let (ols, predictions) = fit_linear(&x, &y, 0.0);
        assert!((predictions[4] - ols.decision(&x)[4]).abs() < 1e-12);
        assert!((ols.intercept - REFERENCE_OLS.0).abs() < 1e-6, "{ols:?}");
        for (got, want) in ols.coefficients.iter().zip(REFERENCE_OLS.1) {
            assert!((got - want).abs() < 1e-6, "{ols:?}");
        }
        let (ridge, _) = fit_linear(&x, &y, 1.0);
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
