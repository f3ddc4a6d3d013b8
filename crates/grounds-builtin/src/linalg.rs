//! The linear algebra the builtin models need, shaped by the data: a design matrix that is a view of the
//! frame's own columns (numbers standardised and imputed as they are read, categories one-hot through
//! their codes; neither a standardised copy nor a one-hot column is ever written out), the two passes a
//! Newton step makes over it (the linear predictor; the weighted Gram matrix with the gradient), and a
//! Cholesky solve.
//!
//! A split's training rows are not copied out either: the design covers every row of the frame and marks
//! the split's test rows as held out of the fit, so one frame in memory serves every split, and the
//! linear predictor of a fit is at once the prediction of its test rows.
//!
//! The passes split the rows into a fixed number of parts, run the parts on every core and add the parts'
//! sums in order, so that a result does not depend on the number of threads or on their timing.

use rayon::prelude::*;

use super::columns::MISSING;

/// A numeric feature of the design, coefficient `position`: the column's values as they are read,
/// standardised (`(v − mean) · inverse_scale`) and imputed (a missing value becomes the mean, so 0) on
/// the way into a pass.
#[derive(Debug, Clone)]
pub struct Numbers<'a> {
    pub position: usize,
    pub values: &'a [f64],
    pub mean: f64,
    pub inverse_scale: f64,
}

impl Numbers<'_> {
    /// Values already standardised, read as they are.
    #[cfg(test)]
    pub fn plain(position: usize, values: &[f64]) -> Numbers<'_> {
        Numbers {
            position,
            values,
            mean: 0.0,
            inverse_scale: 1.0,
        }
    }

    /// The standardised values of `range` into `out`.
    #[inline(always)]
    fn standardise(&self, range: std::ops::Range<usize>, out: &mut [f64]) {
        let (mean, inverse) = (self.mean, self.inverse_scale);
        for (out, v) in out.iter_mut().zip(&self.values[range]) {
            let x = (v - mean) * inverse;
            *out = if x.is_nan() { 0.0 } else { x };
        }
    }
}

/// A one-hot encoded feature: coefficients `offset .. offset + levels`. `codes` are the column's own
/// codes ([`MISSING`] for a missing value); `level` maps them to design levels: `level[0]` is the level
/// of a missing value (the imputed one), `level[c + 1]` that of code `c`, and a level of [`MISSING`] (a
/// category unseen in training) is zero in every column.
#[derive(Debug, Clone)]
pub struct Categories<'a> {
    pub offset: usize,
    pub levels: usize,
    pub codes: &'a [u32],
    pub level: Vec<u32>,
}

impl Categories<'_> {
    /// Codes that are the design levels themselves (a missing code is zero in every column).
    #[cfg(test)]
    pub fn plain(offset: usize, levels: usize, codes: &[u32]) -> Categories<'_> {
        Categories {
            offset,
            levels,
            codes,
            level: std::iter::once(MISSING).chain(0..levels as u32).collect(),
        }
    }

    /// The design level of a code.
    #[inline(always)]
    fn level_of(&self, code: u32) -> u32 {
        self.level
            .get(code.wrapping_add(1) as usize)
            .copied()
            .unwrap_or(MISSING)
    }
}

/// Rows a design holds out of its fits (a split's test part): those whose `group` is `test`. They are
/// still predicted by [`Design::linear`].
#[derive(Debug, Clone, Copy)]
pub struct HeldOut<'a> {
    pub group: &'a [u32],
    pub test: u32,
}

/// The design matrix of the rows of a frame: `width` coefficients besides the intercept.
#[derive(Debug, Clone)]
pub struct Design<'a> {
    pub rows: usize,
    pub width: usize,
    pub numbers: Vec<Numbers<'a>>,
    pub categories: Vec<Categories<'a>>,
    pub held_out: Option<HeldOut<'a>>,
}

/// A part's scratch space: a block's weights and residuals, its standardised numbers, its design levels, its weighted numbers by
/// column and by row, and per categorical feature the sums of the weighted numbers per level.
struct Buffers {
    weights: Vec<f64>,
    residuals: Vec<f64>,
    standardised: Vec<f64>,
    levels: Vec<u32>,
    weighted: Vec<f64>,
    by_row: Vec<f64>,
    cross: Vec<Vec<f64>>,
}

/// Rows a pass handles at a time: the weighted columns of a block stay in the first-level caches.
const BLOCK: usize = 512;
/// The most parts the rows are split into for a pass (more parts than cores evens out the load).
const PARTS: usize = 16;

/// The row ranges of a pass: a fixed split of `rows`, whatever the number of threads.
fn parts(rows: usize) -> Vec<std::ops::Range<usize>> {
    parts_at_most(rows, PARTS)
}

/// As [`parts`], in at most `most` parts.
fn parts_at_most(rows: usize, most: usize) -> Vec<std::ops::Range<usize>> {
    let count = rows.div_ceil(BLOCK * 8).clamp(1, most.clamp(1, PARTS));
    let size = rows.div_ceil(count).max(1);
    (0..count)
        .map(|k| (k * size).min(rows)..((k + 1) * size).min(rows))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Sums `f` over the rows, part by part on every core, the parts added in order.
pub fn sum_rows(rows: usize, f: impl Fn(std::ops::Range<usize>) -> f64 + Sync + Send) -> f64 {
    let partial: Vec<f64> = parts(rows).into_par_iter().map(f).collect();
    partial.iter().sum()
}

/// `Σ a_i b_i`, in eight lanes the compiler turns into vector instructions; with `FMA`, each lane a
/// fused multiply-add (only called where the processor has it: see [`Design::gram`]).
#[inline(always)]
fn dot<const FMA: bool>(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len().min(b.len()));
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for k in 0..8 {
            lanes[k] = if FMA {
                x[k].mul_add(y[k], lanes[k])
            } else {
                lanes[k] + x[k] * y[k]
            };
        }
    }
    let rest: f64 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f64>() + rest
}

#[inline(always)]
fn total(a: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let (a8, rest) = a.split_at(a.len() - a.len() % 8);
    for x in a8.chunks_exact(8) {
        for k in 0..8 {
            lanes[k] += x[k];
        }
    }
    lanes.iter().sum::<f64>() + rest.iter().sum::<f64>()
}

impl Design<'_> {
    /// Whether row `i` counts in fits (it is not held out).
    #[inline(always)]
    pub fn in_fit(&self, i: usize) -> bool {
        self.held_out.is_none_or(|h| h.group[i] != h.test)
    }

    /// The rows that count in fits.
    pub fn fitted_rows(&self) -> usize {
        match self.held_out {
            None => self.rows,
            Some(h) => h.group.iter().filter(|g| **g != h.test).count(),
        }
    }

    /// `theta[0] + x_i · theta[1..]` for every row, held-out rows included.
    pub fn linear(&self, theta: &[f64]) -> Vec<f64> {
        let mut z = vec![theta.first().copied().unwrap_or(0.0); self.rows];
        let ranges = parts(self.rows);
        let mut pieces: Vec<&mut [f64]> = Vec::with_capacity(ranges.len());
        let mut rest: &mut [f64] = &mut z;
        for range in &ranges {
            let (piece, tail) = rest.split_at_mut(range.len());
            pieces.push(piece);
            rest = tail;
        }
        #[cfg(target_arch = "x86_64")]
        let wide = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        pieces.into_par_iter().zip(ranges).for_each(|(out, range)| {
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: the processor has AVX2 and FMA, checked just above.
                return unsafe { self.linear_part_wide(theta, range, out) };
            }
            self.linear_part(theta, range, out)
        });
        z
    }

    /// [`Design::linear_part`] compiled for AVX2 and FMA (the same code; the compiler vectorises it wider).
    ///
    /// # Safety
    ///
    /// The processor must have AVX2 and FMA (`is_x86_feature_detected!`); on one without them the
    /// instructions are illegal.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn linear_part_wide(
        &self,
        theta: &[f64],
        range: std::ops::Range<usize>,
        out: &mut [f64],
    ) {
        self.linear_part(theta, range, out)
    }

    /// [`Design::linear`] for the rows of `range`, added into `out` (their intercepts).
    #[inline(always)]
    fn linear_part(&self, theta: &[f64], range: std::ops::Range<usize>, out: &mut [f64]) {
        for column in &self.numbers {
            let w = theta[1 + column.position];
            let (mean, inverse) = (column.mean, column.inverse_scale);
            for (z, v) in out.iter_mut().zip(&column.values[range.clone()]) {
                let x = (v - mean) * inverse;
                *z += if x.is_nan() { 0.0 } else { w * x };
            }
        }
        for feature in &self.categories {
            let levels = &theta[1 + feature.offset..1 + feature.offset + feature.levels];
            for (z, &code) in out.iter_mut().zip(&feature.codes[range.clone()]) {
                if let Some(t) = levels.get(feature.level_of(code) as usize) {
                    *z += t;
                }
            }
        }
    }

    /// `Σ weight_i · [1, x_i]ᵀ [1, x_i]` (symmetric, `(width+1)²`, row-major) and
    /// `Σ residual_i · [1, x_i]`, in one pass over every row. `weigh(range, weights, residuals)` gives
    /// the weights and residuals of a block of rows as the pass reaches it (a held-out row has both 0),
    /// so that they are never written out for every row. One-hot blocks are sums over their rows'
    /// levels. On processors with AVX2 and FMA (checked at run time) the same code is compiled for them.
    pub fn gram<F>(&self, weigh: F) -> (Vec<f64>, Vec<f64>)
    where
        F: Fn(std::ops::Range<usize>, &mut [f64], &mut [f64]) + Sync,
    {
        self.pass::<true, F>(weigh)
    }

    /// `Σ residual_i · [1, x_i]` alone, as [`Design::gram`] makes it (the weights `weigh` gives are not
    /// used): a pass that reads the rows as the Gram pass does, for a fraction of its arithmetic.
    pub fn gradient<F>(&self, weigh: F) -> Vec<f64>
    where
        F: Fn(std::ops::Range<usize>, &mut [f64], &mut [f64]) + Sync,
    {
        self.pass::<false, F>(weigh).1
    }

    /// `Σ weight_i · [1, x_i]ᵀ [1, x_i] · v`: the weighted Gram matrix times `v` without forming it
    /// (one pass: each block's `[1, x_i]·v` is made as the pass reads it, then summed back as a
    /// gradient is). `weights` has one entry per row, 0 for a held-out row. What a wide design's
    /// Newton step is solved with: a matrix of `(width+1)²` would not fit, or not pay.
    pub fn gram_times(&self, weights: &[f64], v: &[f64]) -> Vec<f64> {
        self.gradient(|range, _, residuals| {
            residuals.fill(v.first().copied().unwrap_or(0.0));
            self.linear_part(v, range.clone(), residuals);
            residuals
                .iter_mut()
                .zip(&weights[range])
                .for_each(|(r, w)| *r *= w);
        })
    }

    /// The diagonal of the weighted Gram matrix, as far as one gradient pass gives it: exact for the
    /// intercept and the one-hot levels (the weights summed per level); a standardised number's entry is
    /// taken as the weights' total, what `Σ weight_i x_i²` is on average. A preconditioner, not a result.
    pub fn gram_diagonal(&self, weights: &[f64]) -> Vec<f64> {
        let mut diagonal = self.gradient(|range, _, residuals| {
            residuals.copy_from_slice(&weights[range]);
        });
        for column in &self.numbers {
            diagonal[1 + column.position] = diagonal[0];
        }
        diagonal
    }

    /// The Gram pass, with the Hessian (`HESSIAN`) or the gradient alone (an empty matrix).
    fn pass<const HESSIAN: bool, F>(&self, weigh: F) -> (Vec<f64>, Vec<f64>)
    where
        F: Fn(std::ops::Range<usize>, &mut [f64], &mut [f64]) + Sync,
    {
        let d = self.width + 1;
        #[cfg(target_arch = "x86_64")]
        let wide = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let wide = false;
        // Each part sums into a matrix of its own: with many one-hot columns, fewer parts keep that
        // within 256 MiB (still a fixed number, whatever the threads).
        let most = (256 << 20) / (d * d * 8).max(1);
        let partial: Vec<(Vec<f64>, Vec<f64>)> = parts_at_most(self.rows, most)
            .into_par_iter()
            .map(|range| {
                #[cfg(target_arch = "x86_64")]
                if wide {
                    // SAFETY: the processor has AVX2 and FMA, checked just above.
                    return unsafe { self.gram_part_wide::<HESSIAN, F>(range, &weigh) };
                }
                self.gram_part::<false, HESSIAN, F>(range, &weigh)
            })
            .collect();
        let mut h = vec![0.0; if HESSIAN { d * d } else { 0 }];
        let mut g = vec![0.0; d];
        for (ph, pg) in partial {
            h.iter_mut().zip(&ph).for_each(|(a, b)| *a += b);
            g.iter_mut().zip(&pg).for_each(|(a, b)| *a += b);
        }
        // Every pair of distinct coefficients was added to one of its two cells: add the two.
        for a in 0..if HESSIAN { d } else { 0 } {
            for b in 0..a {
                let both = h[a * d + b] + h[b * d + a];
                h[a * d + b] = both;
                h[b * d + a] = both;
            }
        }
        (h, g)
    }

    /// [`Design::gram_part`] compiled for AVX2 and FMA (the same code; the compiler vectorises it wider).
    ///
    /// # Safety
    ///
    /// The processor must have AVX2 and FMA (`is_x86_feature_detected!`); on one without them the
    /// instructions are illegal.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gram_part_wide<const HESSIAN: bool, F>(
        &self,
        range: std::ops::Range<usize>,
        weigh: &F,
    ) -> (Vec<f64>, Vec<f64>)
    where
        F: Fn(std::ops::Range<usize>, &mut [f64], &mut [f64]) + Sync,
    {
        self.gram_part::<true, HESSIAN, F>(range, weigh)
    }

    #[inline(always)]
    fn gram_part<const FMA: bool, const HESSIAN: bool, F>(
        &self,
        range: std::ops::Range<usize>,
        weigh: &F,
    ) -> (Vec<f64>, Vec<f64>)
    where
        F: Fn(std::ops::Range<usize>, &mut [f64], &mut [f64]) + Sync,
    {
        let d = self.width + 1;
        let mut h = vec![0.0; if HESSIAN { d * d } else { 0 }];
        let mut g = vec![0.0; d];
        let p = self.numbers.len();
        let mut start = range.start;
        let mut buffers = Buffers {
            weights: vec![0.0; BLOCK],
            residuals: vec![0.0; BLOCK],
            standardised: vec![0.0; p * BLOCK],
            levels: vec![0; self.categories.len() * BLOCK],
            weighted: vec![0.0; p * BLOCK],
            by_row: vec![0.0; p * BLOCK],
            // Only the Hessian needs them (a gradient pass of many levels would zero them for nothing).
            cross: if HESSIAN {
                self.categories
                    .iter()
                    .map(|f| vec![0.0; f.levels * p])
                    .collect()
            } else {
                Vec::new()
            },
        };
        while start < range.end {
            let end = (start + BLOCK).min(range.end);
            weigh(
                start..end,
                &mut buffers.weights[..end - start],
                &mut buffers.residuals[..end - start],
            );
            if HESSIAN {
                self.gram_block::<FMA>(start..end, &mut buffers, &mut h, &mut g);
            } else {
                self.gradient_block::<FMA>(start..end, &mut buffers, &mut g);
            }
            start = end;
        }
        if !HESSIAN {
            return (h, g);
        }
        // The sums of the weighted numbers per level, into their cells.
        for (feature, cross) in self.categories.iter().zip(&buffers.cross) {
            for level in 0..feature.levels {
                let row = (1 + feature.offset + level) * d;
                for (a, column) in self.numbers.iter().enumerate() {
                    h[row + 1 + column.position] += cross[level * p + a];
                }
            }
        }
        (h, g)
    }

    /// A block's share of the gradient alone: `Σ r_i` and `Σ r_i · x_i` for the numbers, `Σ r_i` per level.
    #[inline(always)]
    fn gradient_block<const FMA: bool>(
        &self,
        range: std::ops::Range<usize>,
        buffers: &mut Buffers,
        g: &mut [f64],
    ) {
        let n = range.len();
        let r = &buffers.residuals[..n];
        g[0] += total(r);
        let x = &mut buffers.standardised[..n];
        for column in &self.numbers {
            column.standardise(range.clone(), x);
            g[1 + column.position] += dot::<FMA>(r, x);
        }
        for feature in &self.categories {
            let base = 1 + feature.offset;
            for (&code, &residual) in feature.codes[range.clone()].iter().zip(r) {
                let level = feature.level_of(code) as usize;
                if level < feature.levels {
                    g[base + level] += residual;
                }
            }
        }
    }

    #[inline(always)]
    fn gram_block<const FMA: bool>(
        &self,
        range: std::ops::Range<usize>,
        buffers: &mut Buffers,
        h: &mut [f64],
        g: &mut [f64],
    ) {
        let d = self.width + 1;
        let n = range.len();
        let p = self.numbers.len();
        let w = &buffers.weights[..n];
        let r = &buffers.residuals[..n];
        g[0] += total(r);
        h[0] += total(w);
        for (a, column) in self.numbers.iter().enumerate() {
            column.standardise(
                range.clone(),
                &mut buffers.standardised[a * BLOCK..a * BLOCK + n],
            );
        }
        for (k, feature) in self.categories.iter().enumerate() {
            let levels = &mut buffers.levels[k * BLOCK..k * BLOCK + n];
            for (level, &code) in levels.iter_mut().zip(&feature.codes[range.clone()]) {
                *level = feature.level_of(code);
            }
        }
        let standardised = &buffers.standardised;
        let weighted = &mut buffers.weighted;
        for (a, column) in self.numbers.iter().enumerate() {
            let x = &standardised[a * BLOCK..a * BLOCK + n];
            let wx = &mut weighted[a * BLOCK..a * BLOCK + n];
            for ((out, w), x) in wx.iter_mut().zip(w).zip(x) {
                *out = w * x;
            }
            let ia = 1 + column.position;
            g[ia] += dot::<FMA>(r, x);
            h[ia * d] += total(wx);
        }
        for (a, column) in self.numbers.iter().enumerate() {
            let ia = 1 + column.position;
            let wx = &weighted[a * BLOCK..a * BLOCK + n];
            for (b, other) in self.numbers[..=a].iter().enumerate() {
                let ib = 1 + other.position;
                h[ia * d + ib] += dot::<FMA>(wx, &standardised[b * BLOCK..b * BLOCK + n]);
            }
        }
        if !self.categories.is_empty() {
            // The weighted numbers row by row, for the sums per level below.
            // Written row after row (each row's `p` numbers contiguous), read from the `p` columns.
            for (i, row) in buffers.by_row[..n * p].chunks_exact_mut(p).enumerate() {
                for (a, out) in row.iter_mut().enumerate() {
                    *out = weighted[a * BLOCK + i];
                }
            }
        }
        for (k, feature) in self.categories.iter().enumerate() {
            let codes = &buffers.levels[k * BLOCK..k * BLOCK + n];
            let base = 1 + feature.offset;
            for (i, &code) in codes.iter().enumerate() {
                if (code as usize) < feature.levels {
                    let at = base + code as usize;
                    g[at] += r[i];
                    h[at * d] += w[i];
                    h[at * d + at] += w[i];
                }
            }
            // Per level, the sum of its rows' weighted numbers: each row adds its `p` weighted numbers
            // (contiguous, a few vector additions) to its level's `p` sums.
            let cross = &mut buffers.cross[k];
            for (i, &code) in codes.iter().enumerate() {
                if (code as usize) < feature.levels {
                    let sums = &mut cross[code as usize * p..(code as usize + 1) * p];
                    for (sum, value) in sums.iter_mut().zip(&buffers.by_row[i * p..(i + 1) * p]) {
                        *sum += value;
                    }
                }
            }
            for (j, other) in self.categories[..k].iter().enumerate() {
                let other_codes = &buffers.levels[j * BLOCK..j * BLOCK + n];
                let other_base = 1 + other.offset;
                for (i, (&code, &other_code)) in codes.iter().zip(other_codes).enumerate() {
                    if (code as usize) < feature.levels && (other_code as usize) < other.levels {
                        h[(base + code as usize) * d + other_base + other_code as usize] += w[i];
                    }
                }
            }
        }
        debug_assert!(MISSING as usize >= d);
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

/// Solves `A x = b`, adding a growing multiple of the identity to `A` while it is not numerically
/// positive definite (Levenberg's damping): a safe, shorter step in the same direction of descent.
pub fn damped_solve(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    if let Some(x) = cholesky_solve(a, b) {
        return Some(x);
    }
    let n = b.len();
    let largest = (0..n).map(|i| a[i * n + i].abs()).fold(0.0f64, f64::max);
    let mut damping = largest.max(1.0) * 1e-10;
    for _ in 0..24 {
        let mut shifted = a.to_vec();
        for i in 0..n {
            shifted[i * n + i] += damping;
        }
        if let Some(x) = cholesky_solve(&shifted, b) {
            return Some(x);
        }
        damping *= 10.0;
    }
    None
}

/// Solves `A x = b` for a symmetric positive definite `A` known only by its products (`times(v)` is
/// `A·v`): conjugate gradients preconditioned by `diagonal` (A's diagonal, or an estimate of it). Stops
/// when the residual's absolute sum is at most `tolerance` (converged) or after `most` products. A
/// direction of no positive curvature (rounding, in a matrix that should have none) ends it at the last
/// iterate, or at the preconditioned `b` if it comes first, which is still a direction of descent.
/// Returns the solution, the products taken and whether it converged.
pub fn conjugate_gradient(
    mut times: impl FnMut(&[f64]) -> Vec<f64>,
    b: &[f64],
    diagonal: &[f64],
    tolerance: f64,
    most: usize,
) -> (Vec<f64>, usize, bool) {
    let inverse: Vec<f64> = diagonal
        .iter()
        .map(|d| {
            if *d > 0.0 && d.is_finite() {
                1.0 / d
            } else {
                1.0
            }
        })
        .collect();
    let precondition =
        |r: &[f64]| -> Vec<f64> { r.iter().zip(&inverse).map(|(r, m)| r * m).collect() };
    let dot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(a, b)| a * b).sum() };
    let mut x = vec![0.0; b.len()];
    let mut r = b.to_vec();
    let mut z = precondition(&r);
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    let mut products = 0;
    loop {
        if r.iter().map(|v| v.abs()).sum::<f64>() <= tolerance {
            return (x, products, true);
        }
        if products >= most {
            return (x, products, false);
        }
        let q = times(&p);
        products += 1;
        let curvature = dot(&p, &q);
        if !(curvature > 0.0 && curvature.is_finite() && rz > 0.0) {
            if products == 1 {
                return (z, products, false);
            }
            return (x, products, false);
        }
        let alpha = rz / curvature;
        x.iter_mut().zip(&p).for_each(|(x, p)| *x += alpha * p);
        r.iter_mut().zip(&q).for_each(|(r, q)| *r -= alpha * q);
        z = precondition(&r);
        let next = dot(&r, &z);
        let beta = next / rz;
        rz = next;
        p.iter_mut().zip(&z).for_each(|(p, z)| *p = z + beta * *p);
    }
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
        // Singular (two equal columns): damping still gives a step.
        let singular = [1.0, 1.0, 1.0, 1.0];
        let x = damped_solve(&singular, &[1.0, 1.0]).unwrap();
        assert!(
            (x[0] - 0.5).abs() < 1e-6 && (x[1] - 0.5).abs() < 1e-6,
            "{x:?}"
        );
    }

    /// The one-hot blocks, the standardisation on the way in and the level map give what the written-out
    /// standardised, imputed, one-hot matrix gives, row for row; so does the gradient pass alone.
    #[test]
    fn gram_and_linear_match_the_dense_one_hot_matrix() {
        let rows = 1300; // more than one block and part
        let raw: Vec<Vec<f64>> = (0..3)
            .map(|a| {
                (0..rows)
                    .map(|i| match (i * (a + 3)) % 17 {
                        // Some values missing.
                        5 if a > 0 => f64::NAN,
                        k => 1e6 * a as f64 + k as f64 / 7.0 - 1.0,
                    })
                    .collect()
            })
            .collect();
        let (means, scales) = ([0.5, 1e6 + 0.2, 2e6], [1.0, 0.25, 3.0]);
        let numbers: Vec<Numbers> = (0..3)
            .map(|a| Numbers {
                position: [0, 3, 7][a],
                values: &raw[a],
                mean: means[a],
                inverse_scale: 1.0 / scales[a],
            })
            .collect();
        let first_codes: Vec<u32> = (0..rows)
            .map(|i| (i % 3) as u32)
            .map(|c| if c == 2 { MISSING } else { c })
            .collect();
        // Column codes 0..4: code 1 is unseen in training (no column), a missing value is level 0.
        let second_codes: Vec<u32> = (0..rows).map(|i| ((i / 5) % 5) as u32).collect();
        let second = Categories {
            offset: 4,
            levels: 3,
            codes: &second_codes,
            level: vec![0, 2, MISSING, 0, 1, 2],
        };
        let design = Design {
            rows,
            width: 8,
            numbers,
            categories: vec![Categories::plain(1, 2, &first_codes), second],
            held_out: None,
        };
        let dense: Vec<Vec<f64>> = (0..rows)
            .map(|i| {
                let mut x = vec![0.0; 9];
                x[0] = 1.0;
                for (a, column) in design.numbers.iter().enumerate() {
                    let v = raw[a][i];
                    x[1 + column.position] = if v.is_nan() {
                        0.0
                    } else {
                        (v - means[a]) / scales[a]
                    };
                }
                if first_codes[i] != MISSING {
                    x[2 + first_codes[i] as usize] = 1.0;
                }
                match second_codes[i] {
                    1 => {}
                    c => x[5 + [2, 0, 0, 1, 2][c as usize] as usize] = 1.0,
                }
                x
            })
            .collect();
        let weights: Vec<f64> = (0..rows).map(|i| 0.1 + (i % 7) as f64 / 10.0).collect();
        let residuals: Vec<f64> = (0..rows).map(|i| (i % 5) as f64 - 2.0).collect();
        let (h, g) = design.gram(|range, w, r| {
            w.copy_from_slice(&weights[range.clone()]);
            r.copy_from_slice(&residuals[range]);
        });
        // The gradient pass alone gives the same gradient (the weights it is handed are not used).
        let alone = design.gradient(|range, w, r| {
            w.fill(f64::NAN);
            r.copy_from_slice(&residuals[range]);
        });
        for a in 0..9 {
            let want_g: f64 = (0..rows).map(|i| residuals[i] * dense[i][a]).sum();
            assert!((g[a] - want_g).abs() < 1e-8, "g[{a}] {} vs {want_g}", g[a]);
            assert!(
                (alone[a] - want_g).abs() < 1e-8,
                "gradient alone [{a}] {} vs {want_g}",
                alone[a]
            );
            for b in 0..9 {
                let want: f64 = (0..rows)
                    .map(|i| weights[i] * dense[i][a] * dense[i][b])
                    .sum();
                assert!(
                    (h[a * 9 + b] - want).abs() < 1e-8,
                    "h[{a},{b}] {} vs {want}",
                    h[a * 9 + b]
                );
            }
        }
        let theta: Vec<f64> = (0..9).map(|k| k as f64 * 0.3 - 1.0).collect();
        let z = design.linear(&theta);
        for i in [0, 1, 511, 512, 1299] {
            let want: f64 = dense[i].iter().zip(&theta).map(|(x, t)| x * t).sum();
            assert!((z[i] - want).abs() < 1e-12);
        }
        // The Gram matrix times a vector, never formed, is the formed one times it; its diagonal is
        // exact for the intercept and the levels.
        let product = design.gram_times(&weights, &theta);
        let diagonal = design.gram_diagonal(&weights);
        for a in 0..9 {
            let want: f64 = (0..9).map(|b| h[a * 9 + b] * theta[b]).sum();
            assert!(
                (product[a] - want).abs() < 1e-8,
                "Hv[{a}] {} vs {want}",
                product[a]
            );
            if ![1, 4, 8].contains(&a) {
                assert!((diagonal[a] - h[a * 9 + a]).abs() < 1e-8, "diagonal[{a}]");
            } else {
                assert_eq!(
                    diagonal[a], h[0],
                    "a number's diagonal is the weights' total"
                );
            }
        }
    }

    #[test]
    fn conjugate_gradient_solves_what_cholesky_solves() {
        // A badly scaled symmetric positive definite matrix: a one-hot-like block beside dense numbers.
        let n = 40;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let near = 1.0 / (1.0 + (i as f64 - j as f64).abs());
                a[i * n + j] = if i < 8 && j < 8 {
                    3.0 * near
                } else {
                    0.1 * near
                };
            }
            a[i * n + i] += if i % 5 == 0 { 1000.0 } else { 1.0 + i as f64 };
        }
        let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let want = cholesky_solve(&a, &b).unwrap();
        let diagonal: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
        let times = |v: &[f64]| -> Vec<f64> {
            (0..n)
                .map(|i| (0..n).map(|j| a[i * n + j] * v[j]).sum())
                .collect()
        };
        let (x, products, converged) = conjugate_gradient(times, &b, &diagonal, 1e-12, 200);
        assert!(converged && products <= n, "{products} products");
        for (got, want) in x.iter().zip(&want) {
            assert!((got - want).abs() < 1e-10, "{got} vs {want}");
        }
        // Held to fewer products than it needs, it says so.
        let (_, products, converged) = conjugate_gradient(times, &b, &diagonal, 1e-14, 2);
        assert!(!converged && products == 2);
        // A matrix with no positive curvature along b gives the preconditioned b, still a descent.
        let (x, _, converged) =
            conjugate_gradient(|v| v.iter().map(|v| -v).collect(), &b, &diagonal, 1e-12, 10);
        assert!(!converged);
        assert!(x.iter().zip(&b).map(|(x, b)| x * b).sum::<f64>() > 0.0);
    }
}
