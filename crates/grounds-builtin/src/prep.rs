//! Preprocessing learned on the training rows of a split only: numbers imputed with the mean and
//! standardised, categories imputed with the most frequent value and one-hot encoded (categories not seen
//! in training become all zeros) — scikit-learn's SimpleImputer + StandardScaler / OneHotEncoder.
//!
//! The statistics are sums, so they are gathered once per group of rows (a fold's test part) in one
//! pass over the data, and the training rows of any split are the total less its own group: no split
//! scans the data again to learn its preprocessing.

use rayon::prelude::*;
use serde::Serialize;

use super::columns::{ColumnData, MISSING};
use super::linalg::{Categories, Design, HeldOut, Numbers};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transform {
    Numeric {
        name: String,
        mean: f64,
        scale: f64,
    },
    Categorical {
        name: String,
        fill: String,
        categories: Vec<String>,
        /// The design level of each code of the column ([`MISSING`] when unseen in training).
        #[serde(skip)]
        level_of_code: Vec<u32>,
        /// The code missing values are imputed with.
        #[serde(skip)]
        fill_code: u32,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Preprocessor {
    pub transforms: Vec<Transform>,
}

#[derive(Debug, thiserror::Error)]
#[error("feature `{column}` has no values in the training rows of {part}; drop it from `features` or fill it")]
pub struct EmptyInTraining {
    pub column: String,
    pub part: String,
}

/// What preprocessing needs to know of one feature over some rows.
#[derive(Debug, Clone)]
enum FeatureSums {
    /// Count, sum and sum of squares of the present values, each less the column's `shift` (its mean
    /// over all rows), which keeps the variance exact for columns far from zero.
    Numeric {
        count: f64,
        sum: f64,
        squares: f64,
        shift: f64,
    },
    /// Rows per code.
    Categorical(Vec<u64>),
}

/// The sums of every feature over one group of rows, or over several groups added together.
#[derive(Debug, Clone)]
pub struct Sums {
    rows: usize,
    features: Vec<FeatureSums>,
}

impl Sums {
    /// The sums of each group: `group[i]` is the group of row `i`, groups are `0..groups`.
    pub fn by_group(features: &[(String, ColumnData)], group: &[u32], groups: usize) -> Vec<Sums> {
        let per_feature: Vec<Vec<FeatureSums>> = features
            .par_iter()
            .map(|(_, data)| match data {
                ColumnData::Numeric(values) => {
                    let (total, count) = values
                        .iter()
                        .filter(|v| !v.is_nan())
                        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
                    let shift = if count > 0 { total / count as f64 } else { 0.0 };
                    let mut sums = vec![(0.0, 0.0, 0.0); groups];
                    for (value, &g) in values.iter().zip(group) {
                        if !value.is_nan() {
                            let entry = &mut sums[g as usize];
                            let centred = value - shift;
                            entry.0 += 1.0;
                            entry.1 += centred;
                            entry.2 += centred * centred;
                        }
                    }
                    sums.into_iter()
                        .map(|(count, sum, squares)| FeatureSums::Numeric {
                            count,
                            sum,
                            squares,
                            shift,
                        })
                        .collect()
                }
                ColumnData::Categorical { codes, levels } => {
                    let mut counts = vec![vec![0u64; levels.len()]; groups];
                    for (&code, &g) in codes.iter().zip(group) {
                        if code != MISSING {
                            counts[g as usize][code as usize] += 1;
                        }
                    }
                    counts.into_iter().map(FeatureSums::Categorical).collect()
                }
            })
            .collect();
        let mut rows = vec![0usize; groups];
        for &g in group {
            rows[g as usize] += 1;
        }
        (0..groups)
            .map(|g| Sums {
                rows: rows[g],
                features: per_feature.iter().map(|f| f[g].clone()).collect(),
            })
            .collect()
    }

    /// The sums over all the given groups but `except`.
    pub fn total(groups: &[Sums], except: Option<usize>) -> Sums {
        let mut kept = groups
            .iter()
            .enumerate()
            .filter(|(g, _)| Some(*g) != except)
            .map(|(_, s)| s);
        let Some(first) = kept.next() else {
            return Sums {
                rows: 0,
                features: Vec::new(),
            };
        };
        let mut total = first.clone();
        for other in kept {
            total.rows += other.rows;
            for (mine, theirs) in total.features.iter_mut().zip(&other.features) {
                match (mine, theirs) {
                    (
                        FeatureSums::Numeric {
                            count,
                            sum,
                            squares,
                            ..
                        },
                        FeatureSums::Numeric {
                            count: c,
                            sum: s,
                            squares: q,
                            ..
                        },
                    ) => {
                        *count += c;
                        *sum += s;
                        *squares += q;
                    }
                    (FeatureSums::Categorical(mine), FeatureSums::Categorical(theirs)) => {
                        mine.iter_mut().zip(theirs).for_each(|(a, b)| *a += b);
                    }
                    _ => {}
                }
            }
        }
        total
    }
}

/// scikit-learn's test for a constant feature (`_is_constant_feature`): a variance within rounding of
/// zero gives a scale of 1 instead of a division by almost nothing.
fn is_constant(variance: f64, mean: f64, rows: f64) -> bool {
    let eps = f64::EPSILON;
    variance <= rows * eps * variance + (rows * mean * eps).powi(2)
}

impl Preprocessor {
    /// The preprocessing learned from `sums`, the training rows of `part`.
    pub fn from_sums(
        features: &[(String, ColumnData)],
        sums: &Sums,
        part: &str,
    ) -> Result<Self, EmptyInTraining> {
        let mut transforms = Vec::new();
        for ((name, data), feature) in features.iter().zip(&sums.features) {
            let empty = || EmptyInTraining {
                column: name.clone(),
                part: part.to_string(),
            };
            transforms.push(match (data, feature) {
                (
                    ColumnData::Numeric(_),
                    FeatureSums::Numeric {
                        count,
                        sum,
                        squares,
                        shift,
                    },
                ) => {
                    if *count == 0.0 {
                        return Err(empty());
                    }
                    let centred_mean = sum / count;
                    let mean = shift + centred_mean;
                    // Imputed values sit at the mean and add nothing to the variance, but count in it.
                    let variance = ((squares - count * centred_mean * centred_mean)
                        / sums.rows as f64)
                        .max(0.0);
                    let scale = if is_constant(variance, mean, sums.rows as f64) {
                        1.0
                    } else {
                        variance.sqrt()
                    };
                    Transform::Numeric {
                        name: name.clone(),
                        mean,
                        scale,
                    }
                }
                (ColumnData::Categorical { levels, .. }, FeatureSums::Categorical(counts)) => {
                    // The most frequent value; among equals the smallest (codes follow the sorted
                    // values), as scikit-learn picks.
                    let fill_code = counts
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| **n > 0)
                        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
                        .map(|(code, _)| code)
                        .ok_or_else(empty)?;
                    let mut categories = Vec::new();
                    let mut level_of_code = vec![MISSING; levels.len()];
                    for (code, n) in counts.iter().enumerate() {
                        if *n > 0 {
                            level_of_code[code] = categories.len() as u32;
                            categories.push(levels[code].clone());
                        }
                    }
                    Transform::Categorical {
                        name: name.clone(),
                        fill: levels[fill_code].clone(),
                        categories,
                        level_of_code,
                        fill_code: fill_code as u32,
                    }
                }
                _ => return Err(empty()),
            });
        }
        Ok(Preprocessor { transforms })
    }

    /// Names of the design columns: `Age`, `Sex=female`, …
    pub fn column_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for transform in &self.transforms {
            match transform {
                Transform::Numeric { name, .. } => names.push(name.clone()),
                Transform::Categorical {
                    name, categories, ..
                } => names.extend(categories.iter().map(|c| format!("{name}={c}"))),
            }
        }
        names
    }

    /// The design over every row of `features` (the columns this preprocessing was learned on): a view
    /// that standardises and imputes numbers and maps categories to their levels as a pass reads them,
    /// nothing copied. `held_out` rows (a split's test part) are predicted but not fitted.
    pub fn design<'a>(
        &self,
        features: &'a [(String, ColumnData)],
        held_out: Option<HeldOut<'a>>,
    ) -> Design<'a> {
        let mut design = Design {
            rows: features.first().map_or(0, |(_, data)| data.len()),
            width: 0,
            numbers: Vec::new(),
            categories: Vec::new(),
            held_out,
        };
        for (transform, (_, data)) in self.transforms.iter().zip(features) {
            let position = design.width;
            match (transform, data) {
                (Transform::Numeric { mean, scale, .. }, ColumnData::Numeric(values)) => {
                    design.width += 1;
                    design.numbers.push(Numbers {
                        position,
                        values,
                        mean: *mean,
                        inverse_scale: 1.0 / scale,
                    });
                }
                (
                    Transform::Categorical {
                        categories,
                        level_of_code,
                        fill_code,
                        ..
                    },
                    ColumnData::Categorical { codes, .. },
                ) => {
                    design.width += categories.len();
                    let level_of = |code: u32| level_of_code.get(code as usize).copied();
                    design.categories.push(Categories {
                        offset: position,
                        levels: categories.len(),
                        codes,
                        level: std::iter::once(level_of(*fill_code))
                            .chain((0..level_of_code.len() as u32).map(level_of))
                            .map(|level| level.unwrap_or(MISSING))
                            .collect(),
                    });
                }
                // A transform is learned from its own column: the kinds always agree.
                (Transform::Numeric { .. }, _) => design.width += 1,
                (Transform::Categorical { categories, .. }, _) => design.width += categories.len(),
            }
        }
        design
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imputes_scales_and_encodes_like_scikit_learn() {
        let features = vec![
            (
                "age".to_string(),
                ColumnData::Numeric(vec![1.0, f64::NAN, 3.0, 100.0]),
            ),
            (
                "sex".to_string(),
                ColumnData::categories(&[Some("m"), Some("f"), None, Some("x")]),
            ),
        ];
        // Rows 0-2 train (group 0), row 3 is the other group.
        let group = [0, 0, 0, 1];
        let groups = Sums::by_group(&features, &group, 2);
        let prep =
            Preprocessor::from_sums(&features, &Sums::total(&groups, Some(1)), "test").unwrap();
        assert_eq!(prep.column_names(), ["age", "sex=f", "sex=m"]);
        let m = prep.design(
            &features,
            Some(HeldOut {
                group: &group,
                test: 1,
            }),
        );
        assert_eq!((m.rows, m.width, m.fitted_rows()), (4, 3, 3));
        // Mean of present values 2; imputed row counts in the variance: (1 + 0 + 1) / 3. The design
        // row of each input row, written out through the linear predictor with unit coefficients.
        let scale = (2.0f64 / 3.0).sqrt();
        let row = |k: usize| {
            let mut theta = vec![0.0; 4];
            theta[k] = 1.0;
            m.linear(&theta)
        };
        let age = row(1);
        assert!((age[0] + 1.0 / scale).abs() < 1e-12, "{age:?}");
        assert_eq!(age[1], 0.0);
        // Ties between f and m: the smallest, f, fills the missing value (level 0); a category unseen
        // in training (x, row 3) is all zeros.
        assert_eq!(
            (row(2), row(3)),
            (vec![0.0, 1.0, 1.0, 0.0], vec![1.0, 0.0, 0.0, 0.0])
        );
        let sex = &m.categories[0];
        assert_eq!((sex.offset, sex.levels), (1, 2));
    }

    #[test]
    fn sums_of_groups_add_up_to_the_sums_of_all_rows() {
        let values: Vec<f64> = (0..50).map(|i| 1e9 + (i as f64) * 0.25).collect();
        let features = vec![("x".to_string(), ColumnData::Numeric(values.clone()))];
        let group: Vec<u32> = (0..50).map(|i| i % 3).collect();
        let groups = Sums::by_group(&features, &group, 3);
        let all = Sums::by_group(&features, &[0; 50], 1);
        let from_groups =
            Preprocessor::from_sums(&features, &Sums::total(&groups, None), "a").unwrap();
        let direct = Preprocessor::from_sums(&features, &all[0], "b").unwrap();
        let (
            Transform::Numeric { mean, scale, .. },
            Transform::Numeric {
                mean: m2,
                scale: s2,
                ..
            },
        ) = (&from_groups.transforms[0], &direct.transforms[0])
        else {
            panic!("numeric transforms")
        };
        // Far from zero the shift keeps the variance exact: the values are 0.25 apart.
        let want = (values
            .iter()
            .map(|v| (v - 1e9 - 6.125).powi(2))
            .sum::<f64>()
            / 50.0)
            .sqrt();
        assert!(
            (scale - want).abs() < 1e-9 && (s2 - want).abs() < 1e-9,
            "{scale} {s2} {want}"
        );
        assert!((mean - m2).abs() < 1e-6);
    }
}
