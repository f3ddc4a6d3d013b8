//! Preprocessing learned on the training rows of a split only: numbers imputed with the mean and
//! standardised, categories imputed with the most frequent value and one-hot encoded (categories not seen
//! in training become all zeros) — scikit-learn's SimpleImputer + StandardScaler / OneHotEncoder.

use std::collections::BTreeMap;

use serde::Serialize;

use super::data::ColumnData;
use super::linalg::Matrix;

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

impl Preprocessor {
    pub fn fit(
        features: &[(String, ColumnData)],
        rows: &[usize],
        part: &str,
    ) -> Result<Self, EmptyInTraining> {
        let mut transforms = Vec::new();
        for (name, data) in features {
            let empty = || EmptyInTraining {
                column: name.clone(),
                part: part.to_string(),
            };
            transforms.push(match data {
                ColumnData::Numeric(values) => {
                    let present: Vec<f64> = rows.iter().filter_map(|&i| values[i]).collect();
                    if present.is_empty() {
                        return Err(empty());
                    }
                    let mean = present.iter().sum::<f64>() / present.len() as f64;
                    // Imputed values sit at the mean and add nothing to the variance, but count in it.
                    let variance =
                        present.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / rows.len() as f64;
                    let scale = if variance > 0.0 { variance.sqrt() } else { 1.0 };
                    Transform::Numeric {
                        name: name.clone(),
                        mean,
                        scale,
                    }
                }
                ColumnData::Categorical(values) => {
                    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                    for &i in rows {
                        if let Some(v) = &values[i] {
                            *counts.entry(v.as_str()).or_default() += 1;
                        }
                    }
                    // The most frequent value; among equals the smallest, as scikit-learn picks.
                    let fill = counts
                        .iter()
                        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                        .map(|(v, _)| v.to_string())
                        .ok_or_else(empty)?;
                    let categories: Vec<String> = counts.keys().map(|c| c.to_string()).collect();
                    Transform::Categorical {
                        name: name.clone(),
                        fill,
                        categories,
                    }
                }
            });
        }
        Ok(Preprocessor { transforms })
    }

    pub fn width(&self) -> usize {
        self.transforms
            .iter()
            .map(|t| match t {
                Transform::Numeric { .. } => 1,
                Transform::Categorical { categories, .. } => categories.len(),
            })
            .sum()
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

    pub fn transform(&self, features: &[(String, ColumnData)], rows: &[usize]) -> Matrix {
        let width = self.width();
        let mut matrix = Matrix::zeros(rows.len(), width);
        let mut offset = 0;
        for (transform, (_, data)) in self.transforms.iter().zip(features) {
            match (transform, data) {
                (Transform::Numeric { mean, scale, .. }, ColumnData::Numeric(values)) => {
                    for (r, &i) in rows.iter().enumerate() {
                        matrix.data[r * width + offset] =
                            (values[i].unwrap_or(*mean) - mean) / scale;
                    }
                    offset += 1;
                }
                (
                    Transform::Categorical {
                        fill, categories, ..
                    },
                    ColumnData::Categorical(values),
                ) => {
                    for (r, &i) in rows.iter().enumerate() {
                        let value = values[i].as_deref().unwrap_or(fill);
                        if let Ok(k) = categories.binary_search_by(|c| c.as_str().cmp(value)) {
                            matrix.data[r * width + offset + k] = 1.0;
                        }
                    }
                    offset += categories.len();
                }
                _ => unreachable!("a transform is fitted on its own column"),
            }
        }
        matrix
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
                ColumnData::Numeric(vec![Some(1.0), None, Some(3.0), Some(100.0)]),
            ),
            (
                "sex".to_string(),
                ColumnData::Categorical(vec![
                    Some("m".into()),
                    Some("f".into()),
                    None,
                    Some("x".into()),
                ]),
            ),
        ];
        let train = [0, 1, 2];
        let prep = Preprocessor::fit(&features, &train, "test").unwrap();
        assert_eq!(prep.column_names(), ["age", "sex=f", "sex=m"]);
        // Mean of present values 2; imputed row counts in the variance: (1 + 0 + 1) / 3.
        let m = prep.transform(&features, &[0, 1, 2, 3]);
        let scale = (2.0f64 / 3.0).sqrt();
        assert!((m.row(0)[0] + 1.0 / scale).abs() < 1e-12);
        assert_eq!(m.row(1)[0], 0.0);
        // Ties between f and m: the smallest, f, fills the missing value.
        assert_eq!(&m.row(2)[1..], &[1.0, 0.0]);
        // A category unseen in training is all zeros.
        assert_eq!(&m.row(3)[1..], &[0.0, 0.0]);
    }
}
