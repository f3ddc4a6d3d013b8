//! The single-frame task: one data frame in, a fitted model, predictions and metrics out; the counterpart
//! of Training Grounds' `SingleFrameTrainingTask`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;

use super::data::{self, ColumnData, ResultPart, ResultWriter};
use super::linalg::Design;
use super::models::{self, Fitted};
use super::prep::{Preprocessor, Sums};
use super::scores;
use crate::contract::{JobConfig, Layout};
use crate::metrics;
use crate::signals;
use crate::task::{BuiltinSpec, ModelKind};

pub const DEFAULT_SEED: u64 = 42;
pub const DEFAULT_FOLDS: usize = 5;
const PARAMETERS: &[&str] = &["C", "l2", "max_iter", "tol", "folds", "test_size", "seed"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Split {
    Folds(usize),
    Holdout(f64),
}

#[derive(Debug, Clone)]
struct Params {
    model: ModelKind,
    /// Inverse regularisation strength of the logistic regression.
    c: f64,
    /// Ridge penalty of the linear regression.
    alpha: f64,
    max_iter: usize,
    tol: f64,
    split: Split,
    seed: u64,
}

fn parse<T: std::str::FromStr>(
    hyperparameters: &BTreeMap<String, String>,
    key: &str,
) -> anyhow::Result<Option<T>> {
    match hyperparameters.get(key) {
        None => Ok(None),
        Some(text) => text.trim().parse::<T>().map(Some).map_err(|_| {
            anyhow::anyhow!(
                "hyperparameter `{key}` = `{text}` is not a valid {}",
                std::any::type_name::<T>()
            )
        }),
    }
}

impl Params {
    /// The task file's settings, overridden by hyperparameters.
    fn resolve(
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

/// Checks the task's settings and hyperparameters as the job will resolve them.
pub fn check(spec: &BuiltinSpec, hyperparameters: &BTreeMap<String, String>) -> anyhow::Result<()> {
    Params::resolve(spec, hyperparameters).map(|_| ())
}

pub fn metric_names(model: ModelKind) -> Vec<String> {
    let base: &[&str] = match model {
        ModelKind::LogisticRegression => &["roc_auc_score", "accuracy_score", "log_loss"],
        ModelKind::LinearRegression => &["r2_score", "root_mean_squared_error"],
    };
    base.iter()
        .flat_map(|m| [format!("{m}_test"), format!("{m}_train")])
        .collect()
}

/// The job's own output: what a script would print.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The label as numbers: 0/1 for a classification (with the class names), the values for a regression.
fn encode_label(
    name: &str,
    data: &ColumnData,
    model: ModelKind,
) -> anyhow::Result<(Vec<f64>, Option<[String; 2]>)> {
    let missing = data.missing();
    if missing > 0 {
        bail!(
            "label `{name}` is missing in {missing} of {} rows; remove or fill those rows",
            data.len()
        );
    }
    match (model, data) {
        (ModelKind::LinearRegression, ColumnData::Numeric(values)) => Ok((values.clone(), None)),
        (ModelKind::LinearRegression, ColumnData::Categorical { .. }) => {
            bail!("label `{name}` holds text; linear-regression needs a numeric label (use logistic-regression for two classes)")
        }
        (ModelKind::LogisticRegression, ColumnData::Numeric(values)) => {
            // The distinct values, stopping at three (two is all a classification may have).
            let mut distinct: Vec<f64> = Vec::new();
            for v in values {
                if !distinct.contains(v) {
                    distinct.push(*v);
                    if distinct.len() > 2 {
                        break;
                    }
                }
            }
            if distinct.len() != 2 {
                let mut all = values.clone();
                all.sort_unstable_by(f64::total_cmp);
                all.dedup();
                let texts: Vec<String> = all.iter().map(|v| format_number(*v)).collect();
                return Err(not_two_classes(name, &texts));
            }
            distinct.sort_unstable_by(f64::total_cmp);
            let positive = distinct[1];
            Ok((
                values.iter().map(|v| f64::from(*v == positive)).collect(),
                Some([format_number(distinct[0]), format_number(positive)]),
            ))
        }
        (ModelKind::LogisticRegression, ColumnData::Categorical { codes, levels }) => {
            let mut classes: Vec<&String> = levels.iter().collect();
            classes.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => a.cmp(b),
            });
            if classes.len() != 2 {
                let texts: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
                return Err(not_two_classes(name, &texts));
            }
            let positive = levels
                .iter()
                .position(|l| l == classes[1])
                .unwrap_or_default() as u32;
            Ok((
                codes.iter().map(|c| f64::from(*c == positive)).collect(),
                Some([classes[0].clone(), classes[1].clone()]),
            ))
        }
    }
}

fn not_two_classes(name: &str, classes: &[String]) -> anyhow::Error {
    let shown: Vec<&str> = classes.iter().take(6).map(|s| s.as_str()).collect();
    anyhow::anyhow!(
        "label `{name}` has {} distinct value(s) ({}{}); logistic-regression needs exactly two{}",
        classes.len(),
        shown.join(", "),
        if classes.len() > 6 { ", …" } else { "" },
        if classes.len() > 2 {
            " (use linear-regression for a numeric target)"
        } else {
            ""
        }
    )
}

fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

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
fn assign(n: usize, split: Split, seed: u64) -> anyhow::Result<(Vec<u32>, usize, usize)> {
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
fn splits(n: usize, split: Split, seed: u64) -> anyhow::Result<Vec<(Vec<usize>, Vec<usize>)>> {
    let (group, _, count) = assign(n, split, seed)?;
    Ok((0..count).map(|k| split_rows(&group, k)).collect())
}

struct Scored {
    predictions: Vec<f64>,
    probabilities: Option<Vec<f64>>,
    metrics: Vec<(String, f64)>,
}

fn fit(params: &Params, x: &Design, y: &[f64], start: models::Start) -> Fitted {
    match params.model {
        ModelKind::LogisticRegression => {
            models::fit_logistic(x, y, params.c, params.max_iter, params.tol, start)
        }
        ModelKind::LinearRegression => models::fit_linear(x, y, params.alpha),
    }
}

fn score(
    params: &Params,
    model: &Fitted,
    x: &Design,
    y: &[f64],
    part: &str,
) -> anyhow::Result<Scored> {
    Ok(match params.model {
        ModelKind::LogisticRegression => {
            let probabilities = model.probabilities(x);
            let auc = scores::roc_auc(y, &probabilities)
                .with_context(|| format!("the {part} rows hold one class only"))?;
            Scored {
                predictions: probabilities
                    .iter()
                    .map(|p| if *p > 0.5 { 1.0 } else { 0.0 })
                    .collect(),
                metrics: vec![
                    ("roc_auc_score".into(), auc),
                    ("accuracy_score".into(), scores::accuracy(y, &probabilities)),
                    ("log_loss".into(), scores::log_loss(y, &probabilities)),
                ],
                probabilities: Some(probabilities),
            }
        }
        ModelKind::LinearRegression => {
            let predictions = model.decision(x);
            Scored {
                metrics: vec![
                    ("r2_score".into(), scores::r2(y, &predictions)),
                    (
                        "root_mean_squared_error".into(),
                        scores::rmse(y, &predictions),
                    ),
                ],
                predictions,
                probabilities: None,
            }
        }
    })
}

/// Where the next fit starts: the last fit's coefficients, matched by column name (a split may see
/// categories another did not); the optimum is the same from any start, it is only reached sooner.
fn warm_start(last: &Option<(Vec<String>, Vec<f64>)>, prep: &Preprocessor) -> models::Start {
    let (names, theta) = last.as_ref()?;
    let by_name: BTreeMap<&str, f64> = names
        .iter()
        .map(String::as_str)
        .zip(theta.iter().skip(1).copied())
        .collect();
    Some(
        std::iter::once(theta[0])
            .chain(
                prep.column_names()
                    .iter()
                    .map(|n| by_name.get(n.as_str()).copied().unwrap_or(0.0)),
            )
            .collect(),
    )
}

pub fn run(spec: &BuiltinSpec, layout: &Layout, config: &JobConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let params = Params::resolve(spec, &config.hyperparameters)?;
    signals::check(|| "reading its settings".into())?;
    let channel = layout.channel_dir("training");
    say(&format!(
        "[single-frame] stage load: reading {}",
        channel.display()
    ));
    let frame = data::load(&channel, &spec.label, spec.features.as_deref())?;
    say(&format!(
        "[single-frame] read {} rows, {} features from {} file(s) in {:.2}s",
        frame.rows,
        frame.features.len(),
        frame.files.len(),
        started.elapsed().as_secs_f64()
    ));
    signals::check(|| "loading the data".into())?;
    let (y, classes) = encode_label(&frame.label.0, &frame.label.1, params.model)?;
    let (group, groups, count) = assign(frame.rows, params.split, params.seed)?;
    if params.model == ModelKind::LogisticRegression {
        let mut rows = vec![0usize; groups];
        let mut positives = vec![0usize; groups];
        for (&g, &label) in group.iter().zip(&y) {
            rows[g as usize] += 1;
            positives[g as usize] += usize::from(label > 0.5);
        }
        let (all_rows, all_positives) = (frame.rows, positives.iter().sum::<usize>());
        for k in 0..count {
            let test = (rows[k], positives[k]);
            let train = (all_rows - rows[k], all_positives - positives[k]);
            for ((rows, positives), part) in [(train, "training"), (test, "test")] {
                if positives == 0 || positives == rows {
                    let absent = match (&classes, positives == 0) {
                        (Some([_, positive]), true) => positive.as_str(),
                        (Some([negative, _]), false) => negative.as_str(),
                        (None, _) => "one class",
                    };
                    bail!(
                        "split {} of {count}: its {part} part has no rows with {} = {absent}; use fewer folds, a larger test_size or more data",
                        k + 1,
                        frame.label.0
                    );
                }
            }
        }
    }
    // What preprocessing needs, gathered once for every group of rows.
    let group_sums = Sums::by_group(&frame.features, &group, groups);
    let model_dir = layout.model_dir();
    std::fs::create_dir_all(&model_dir)?;
    let mut result_df = ResultWriter::create(&model_dir.join("result_df.parquet"))
        .context("writing result_df.parquet")?;

    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut fits = Vec::new();
    let mut last: Option<(Vec<String>, Vec<f64>)> = None;
    for k in 0..count {
        let fold_started = Instant::now();
        let part = format!("split {} of {count}", k + 1);
        signals::check(|| format!("{k} of {count} splits"))?;
        let (train, test) = split_rows(&group, k);
        let prep =
            Preprocessor::from_sums(&frame.features, &Sums::total(&group_sums, Some(k)), &part)?;
        let x_train = prep.design(&frame.features, &train);
        let y_train: Vec<f64> = train.iter().map(|&i| y[i]).collect();
        let model = fit(&params, &x_train, &y_train, warm_start(&last, &prep));
        signals::check(|| format!("{k} of {count} splits, during {part}"))?;
        if !model.converged {
            say(&format!(
                "[single-frame] warning: {part} did not converge in max_iter={} iterations (largest gradient component {:.3e}, tol {})",
                params.max_iter, model.gradient, params.tol
            ));
        }
        let x_test = prep.design(&frame.features, &test);
        let y_test: Vec<f64> = test.iter().map(|&i| y[i]).collect();
        // Both parts scored at once: each is mostly one sort.
        let (on_train, on_test) = rayon::join(
            || {
                score(
                    &params,
                    &model,
                    &x_train,
                    &y_train,
                    &format!("training rows of {part}"),
                )
            },
            || {
                score(
                    &params,
                    &model,
                    &x_test,
                    &y_test,
                    &format!("test rows of {part}"),
                )
            },
        );
        let (on_train, on_test) = (on_train?, on_test?);
        drop(x_train);
        drop(x_test);
        let mut shown = Vec::new();
        for (suffix, scored) in [("test", &on_test), ("train", &on_train)] {
            for (name, value) in &scored.metrics {
                let key = format!("{name}_{suffix}");
                *sums.entry(key.clone()).or_default() += value;
                shown.push(format!("{key}={value:.4}"));
            }
        }
        say(&format!(
            "[single-frame] stage fit: {part}: {} train / {} test rows, {} iterations, {:.2}s: {}",
            train.len(),
            test.len(),
            model.iterations,
            fold_started.elapsed().as_secs_f64(),
            shown.join(" ")
        ));
        // The running mean over the splits so far; after the last split it is the reported figure.
        for (name, total) in &sums {
            say(&metrics::format_line(name, total / (k + 1) as f64));
        }
        for (rows, labels, scored, split) in [
            (&test, &y_test, &on_test, "test"),
            (&train, &y_train, &on_train, "train"),
        ] {
            result_df
                .write(ResultPart {
                    fold: k as u32 + 1,
                    split,
                    rows,
                    labels,
                    predictions: &scored.predictions,
                    probabilities: scored.probabilities.as_deref(),
                })
                .context("writing result_df.parquet")?;
        }
        fits.push(json!({
            "split": k + 1,
            "iterations": model.iterations,
            "converged": model.converged,
            "gradient": model.gradient,
            "seconds": fold_started.elapsed().as_secs_f64(),
        }));
        last = Some((prep.column_names(), model.theta()));
    }
    let result_rows = result_df.finish().context("writing result_df.parquet")?;
    let averaged: BTreeMap<String, f64> = sums
        .iter()
        .map(|(k, v)| (k.clone(), v / count as f64))
        .collect();

    say("[single-frame] stage refit: fitting on all rows");
    let all: Vec<usize> = (0..frame.rows).collect();
    let prep =
        Preprocessor::from_sums(&frame.features, &Sums::total(&group_sums, None), "all rows")?;
    let x_all = prep.design(&frame.features, &all);
    drop(all);
    signals::check(|| format!("all {count} splits, before the refit on all rows"))?;
    let final_model = fit(&params, &x_all, &y, warm_start(&last, &prep));
    drop(x_all);
    signals::check(|| format!("all {count} splits, during the refit on all rows"))?;
    if !final_model.converged {
        say(&format!(
            "[single-frame] warning: the refit on all rows did not converge in max_iter={} iterations (largest gradient component {:.3e}, tol {})",
            params.max_iter, final_model.gradient, params.tol
        ));
    }
    let model_json = json!({
        "kind": "single-frame",
        "model": params.model,
        "label": frame.label.0,
        "classes": classes,
        "features": prep.transforms,
        "columns": prep.column_names(),
        "intercept": final_model.intercept,
        "coefficients": final_model.coefficients,
        "iterations": final_model.iterations,
        "converged": final_model.converged,
        "gradient": final_model.gradient,
        "splits": fits,
        "rows": frame.rows,
        "parameters": {
            "C": params.c, "alpha": params.alpha, "max_iter": params.max_iter, "tol": params.tol, "seed": params.seed,
            "folds": match params.split { Split::Folds(k) => Some(k), Split::Holdout(_) => None },
            "test_size": match params.split { Split::Holdout(t) => Some(t), Split::Folds(_) => None },
        },
    });
    std::fs::write(
        model_dir.join("model.json"),
        serde_json::to_vec_pretty(&model_json)?,
    )?;
    let folds: Vec<usize> = (1..=count).collect();
    std::fs::write(
        model_dir.join("metrics.json"),
        serde_json::to_vec_pretty(&json!({"metrics": averaged, "splits": folds.len()}))?,
    )?;
    say(&format!(
        "[single-frame] stage save: model.json, result_df.parquet ({result_rows} rows), metrics.json; done in {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

#[cfg(test)]
mod tests;
