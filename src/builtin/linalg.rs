//! The little linear algebra the builtin models need: a row-major matrix and a Cholesky solve.

use rayon::prelude::*;

/// A dense row-major matrix of `rows` × `cols`.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// `intercept + row · coefficients` for every row.
    pub fn linear(&self, intercept: f64, coefficients: &[f64]) -> Vec<f64> {
        self.data
            .par_chunks(self.cols.max(1))
            .map(|row| {
                intercept
                    + row
                        .iter()
                        .zip(coefficients)
                        .map(|(x, w)| x * w)
                        .sum::<f64>()
            })
            .collect()
    }

    /// The weighted Gram matrix of the rows with a leading column of ones:
    /// `Σ weight_i · [1, x_i]ᵀ [1, x_i]`, and `Σ residual_i · [1, x_i]`, in one pass.
    pub fn weighted_gram(&self, weights: &[f64], residuals: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = self.cols + 1;
        let chunk_rows = 4096;
        let cols = self.cols.max(1);
        self.data
            .par_chunks(chunk_rows * cols)
            .enumerate()
            .map(|(chunk, block)| {
                let mut gram = vec![0.0; d * d];
                let mut gradient = vec![0.0; d];
                let mut x = vec![1.0; d];
                for (k, row) in block.chunks(cols).enumerate() {
                    let i = chunk * chunk_rows + k;
                    x[1..].copy_from_slice(&row[..self.cols]);
                    let w = weights[i];
                    let r = residuals[i];
                    for a in 0..d {
                        let wa = w * x[a];
                        gradient[a] += r * x[a];
                        let row_a = &mut gram[a * d..a * d + a + 1];
                        for (b, g) in row_a.iter_mut().enumerate() {
                            *g += wa * x[b];
                        }
                    }
                }
                (gram, gradient)
            })
            .reduce(
                || (vec![0.0; d * d], vec![0.0; d]),
                |(mut g1, mut r1), (g2, r2)| {
                    g1.iter_mut().zip(&g2).for_each(|(a, b)| *a += b);
                    r1.iter_mut().zip(&r2).for_each(|(a, b)| *a += b);
                    (g1, r1)
                },
            )
            .into_mirrored(d)
    }
}

trait Mirror {
    fn into_mirrored(self, d: usize) -> Self;
}

impl Mirror for (Vec<f64>, Vec<f64>) {
    /// Fills the upper triangle from the lower one.
    fn into_mirrored(mut self, d: usize) -> Self {
        for a in 0..d {
            for b in 0..a {
                self.0[b * d + a] = self.0[a * d + b];
            }
        }
        self
    }
}

/// Solves `A x = b` for a symmetric positive definite `A` (n × n, row-major). `None` if it is not.
pub fn cholesky_solve(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[i * n + j];
            for k in 0..j {
                sum -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[i * n + i] = sum.sqrt();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let mut sum = b[i];
        for k in 0..i {
            sum -= l[i * n + k] * y[k];
        }
        y[i] = sum / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut sum = y[i];
        for k in i + 1..n {
            sum -= l[k * n + i] * x[k];
        }
        x[i] = sum / l[i * n + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let x = cholesky_solve(&a, &[2.0, 1.0]).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
        assert!(cholesky_solve(&[1.0, 2.0, 2.0, 1.0], &[1.0, 1.0]).is_none());
    }

    #[test]
    fn weighted_gram_includes_the_intercept_column() {
        let m = Matrix {
            rows: 2,
            cols: 1,
            data: vec![1.0, 2.0],
        };
        let (gram, gradient) = m.weighted_gram(&[1.0, 1.0], &[1.0, -1.0]);
        assert_eq!(gram, vec![2.0, 3.0, 3.0, 5.0]);
        assert_eq!(gradient, vec![0.0, -1.0]);
    }
}
