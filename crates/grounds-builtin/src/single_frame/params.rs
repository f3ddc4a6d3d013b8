//! The single-frame task's settings: the task file's `[task.builtin]` overridden by hyperparameters,
//! resolved and checked once, before anything runs.

use std::collections::BTreeMap;

use anyhow::bail;

use grounds_job::spec::{BuiltinSpec, ModelKind};

pub const DEFAULT_SEED: u64 = 42;
pub const DEFAULT_FOLDS: usize = 5;
const PARAMETERS: &[&str] = &["C", "l2", "max_iter", "tol", "folds", "test_size", "seed"];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split {
    Folds(usize),
    Holdout(f64),
}

#[derive(Debug, Clone)]
pub struct Params {
    pub model: ModelKind,
    /// Inverse regularisation strength of the logistic regression.
    pub c: f64,
    /// Ridge penalty of the linear regression.
    pub alpha: f64,
    pub max_iter: usize,
    pub tol: f64,
    pub split: Split,
    pub seed: u64,
}

/// What a hyperparameter's value must be, in words a person reads (never a Rust type).
trait Expected {
    const WORDS: &'static str;
    /// Whether a value that parsed is one the task can use (a float must be finite).
    fn usable(&self) -> bool {
        true
    }
}
impl Expected for f64 {
    const WORDS: &'static str = "a finite number (such as 0.5 or 1e-4)";
    fn usable(&self) -> bool {
        self.is_finite()
    }
}
impl Expected for usize {
    const WORDS: &'static str = "a whole number, 0 or more";
}
impl Expected for u64 {
    const WORDS: &'static str = "a whole number, 0 or more";
}

fn parse<T: std::str::FromStr + Expected>(
    hyperparameters: &BTreeMap<String, String>,
    key: &str,
) -> anyhow::Result<Option<T>> {
    match hyperparameters.get(key) {
        None => Ok(None),
        Some(text) => match text.trim().parse::<T>() {
            Ok(value) if value.usable() => Ok(Some(value)),
            _ => Err(anyhow::anyhow!(
                "hyperparameter `{key}` = `{text}` is not {}",
                T::WORDS
            )),
        },
    }
}

impl Params {
    /// The task file's settings, overridden by hyperparameters.
    pub fn resolve(
        spec: &BuiltinSpec,
        hyperparameters: &BTreeMap<String, String>,
    ) -> anyhow::Result<Params> {
        if let Some(unknown) = hyperparameters
            .keys()
            .find(|k| !PARAMETERS.contains(&k.as_str()))
        {
            bail!(
                "hyperparameter `{unknown}` is not a parameter of the single-frame task; it takes {}",
                PARAMETERS.join(", ")
            );
        }
        let c: Option<f64> = parse(hyperparameters, "C")?;
        let l2: Option<f64> = parse(hyperparameters, "l2")?;
        if c.is_some() && l2.is_some() {
            bail!("give the regularisation as `C` or as `l2` (= 1/C), not both");
        }
        if let Some(bad) = c.filter(|c| !(*c > 0.0 && c.is_finite())) {
            bail!("hyperparameter `C` must be a positive number, not {bad}");
        }
        if let Some(bad) = l2.filter(|l| !(*l >= 0.0 && l.is_finite())) {
            bail!("hyperparameter `l2` must be zero or positive, not {bad}");
        }
        let hp_folds: Option<usize> = parse(hyperparameters, "folds")?;
        let hp_test_size: Option<f64> = parse(hyperparameters, "test_size")?;
        let split = match (hp_folds, hp_test_size, spec.folds, spec.test_size) {
            (Some(_), Some(_), _, _) => {
                bail!("hyperparameters `folds` and `test_size` exclude each other: give one")
            }
            (Some(k), None, _, _) => Split::Folds(k),
            (None, Some(t), _, _) => Split::Holdout(t),
            (None, None, Some(k), _) => Split::Folds(k as usize),
            (None, None, None, Some(t)) => Split::Holdout(t),
            (None, None, None, None) => Split::Folds(DEFAULT_FOLDS),
        };
        match split {
            Split::Folds(k) if k < 2 => {
                bail!("`folds` must be at least 2, not {k} (use test_size for one hold-out split)")
            }
            Split::Holdout(t) if !(t > 0.0 && t < 1.0) => {
                bail!("`test_size` must be between 0 and 1, not {t}")
            }
            _ => {}
        }
        let regularisation = match (c, l2) {
            (Some(c), _) => c,
            (_, Some(l2)) if l2 > 0.0 => 1.0 / l2,
            (_, Some(_)) => f64::INFINITY,
            _ => 1.0,
        };
        let max_iter: usize = parse(hyperparameters, "max_iter")?.unwrap_or(100);
        if max_iter == 0 {
            bail!("`max_iter` must be at least 1");
        }
        Ok(Params {
            model: spec.model,
            c: if spec.model == ModelKind::LogisticRegression && regularisation.is_infinite() {
                1e12
            } else {
                regularisation
            },
            alpha: match (c, l2) {
                (Some(c), _) => 1.0 / c,
                (_, Some(l2)) => l2,
                _ => 0.0,
            },
            max_iter,
            tol: parse(hyperparameters, "tol")?.unwrap_or(1e-4),
            split,
            seed: parse(hyperparameters, "seed")?
                .or(spec.seed)
                .unwrap_or(DEFAULT_SEED),
        })
    }
}
