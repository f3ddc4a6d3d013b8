//! The single-frame task: one data frame in, a fitted model, predictions and metrics out; the counterpart
//! of Training Grounds' `SingleFrameTrainingTask`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;

use super::columns::ColumnData;
use super::data;
use super::linalg::{Design, HeldOut};
use super::models::{self, Fitted};
use super::prep::{Preprocessor, Sums};
use super::result_file::{ResultWriter, Scores, SplitScores};
use super::scores;
use grounds_job::contract::{JobConfig, Layout};
use grounds_job::metric_line as metrics;
use grounds_job::signals;
use grounds_job::spec::{BuiltinSpec, ModelKind};

mod params;
mod splits;

use params::{Params, Split};
use splits::assign;
#[cfg(test)]
use splits::splits;

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

/// Fits the model on the design's rows in the fit; the fit and its decision for every row.
fn fit(params: &Params, x: &Design, y: &[f64], start: models::Start) -> (Fitted, Vec<f64>) {
    match params.model {
        ModelKind::LogisticRegression => {
            models::fit_logistic(x, y, params.c, params.max_iter, params.tol, start)
        }
        ModelKind::LinearRegression => models::fit_linear(x, y, params.alpha),
    }
}

/// Why a fit that did not converge stopped where it did, for its warning.
fn unconverged(params: &Params, model: &Fitted) -> String {
    match params.model {
        ModelKind::LogisticRegression => format!(
            "{} of max_iter={} iterations (largest gradient component {:.3e}, tol {})",
            model.iterations, params.max_iter, model.gradient, params.tol
        ),
        ModelKind::LinearRegression => format!(
            "{} conjugate-gradient products (largest residual of the normal equations per row {:.3e})",
            model.iterations, model.gradient
        ),
    }
}

/// Named scores, in the order they are shown.
type Metrics = Vec<(String, f64)>;

/// The scores of one part of a split (`labels` and the predictions or probabilities of its rows).
fn score(params: &Params, labels: &[f64], values: &[f64], part: &str) -> anyhow::Result<Metrics> {
    Ok(match params.model {
        ModelKind::LogisticRegression => {
            // The ranking for the AUC (a sort) beside the other two (a pass each), on another core.
            let (auc, (accuracy, log_loss)) = rayon::join(
                || scores::roc_auc(labels, values),
                || {
                    (
                        scores::accuracy(labels, values),
                        scores::log_loss(labels, values),
                    )
                },
            );
            let auc = auc.with_context(|| format!("the {part} rows hold one class only"))?;
            vec![
                ("roc_auc_score".into(), auc),
                ("accuracy_score".into(), accuracy),
                ("log_loss".into(), log_loss),
            ]
        }
        ModelKind::LinearRegression => vec![
            ("r2_score".into(), scores::r2(labels, values)),
            (
                "root_mean_squared_error".into(),
                scores::rmse(labels, values),
            ),
        ],
    })
}

/// The scores of a split's training and test parts, from the scores of every row.
fn score_split(
    params: &Params,
    values: &[f64],
    y: &[f64],
    group: &[u32],
    test: u32,
    part: &str,
) -> anyhow::Result<(Metrics, Metrics)> {
    let in_test = group.iter().filter(|g| **g == test).count();
    let room = |rows: usize| (Vec::with_capacity(rows), Vec::with_capacity(rows));
    let (mut train, mut tested) = (room(group.len() - in_test), room(in_test));
    for ((&g, &label), &value) in group.iter().zip(y).zip(values) {
        let into = if g == test { &mut tested } else { &mut train };
        into.0.push(label);
        into.1.push(value);
    }
    // Both parts scored at once: each is mostly one sort.
    let (on_train, on_test) = rayon::join(
        || {
            score(
                params,
                &train.0,
                &train.1,
                &format!("training rows of {part}"),
            )
        },
        || {
            score(
                params,
                &tested.0,
                &tested.1,
                &format!("test rows of {part}"),
            )
        },
    );
    Ok((on_train?, on_test?))
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

/// Rows of a sample that gives the first split its start.
const SAMPLE_ROWS: usize = 50_000;

/// Where the first split starts on a large frame: the fit on an evenly spaced sample of its training
/// rows, which lands near the optimum for a sixteenth of the cost or less, so that the full fit needs
/// a Newton step or two fewer. The optimum is the same from any start.
fn sample_start(
    params: &Params,
    prep: &Preprocessor,
    features: &[(String, ColumnData)],
    held_out: HeldOut<'_>,
    y: &[f64],
) -> models::Start {
    let in_fit = |i: &usize| held_out.group[*i] != held_out.test;
    let train = (0..y.len()).filter(in_fit).count();
    if params.model != ModelKind::LogisticRegression || train < 4 * SAMPLE_ROWS {
        return None;
    }
    let every = train / SAMPLE_ROWS;
    let sample: Vec<usize> = (0..y.len()).filter(in_fit).step_by(every).collect();
    let columns: Vec<(String, ColumnData)> = features
        .iter()
        .map(|(name, data)| (name.clone(), data.take(&sample)))
        .collect();
    let x = prep.design(&columns, None);
    let y_sample: Vec<f64> = sample.iter().map(|&i| y[i]).collect();
    // The sample's rows stand for `every` rows each: C scaled so the penalty weighs as on all rows.
    let (fitted, _) = models::fit_logistic(
        &x,
        &y_sample,
        params.c * every as f64,
        params.max_iter,
        params.tol,
        None,
    );
    Some(fitted.theta())
}

/// Reads the training channel, saying what it read and how.
fn load(spec: &BuiltinSpec, layout: &Layout, started: Instant) -> anyhow::Result<data::Frame> {
    let channel = layout.channel_dir("training");
    say(&format!(
        "[single-frame] stage load: reading {}",
        channel.display()
    ));
    let frame = data::load(&channel, &spec.label, spec.features.as_deref())?;
    say(&format!(
        "[single-frame] read {} rows, {} features from {} file(s) in {:.2}s ({})",
        frame.rows,
        frame.features.len(),
        frame.files.len(),
        started.elapsed().as_secs_f64(),
        frame.read_by
    ));
    signals::check(|| "loading the data".into())?;
    // What the CSV parse used and freed goes back to the system now, not at exit: it would otherwise
    // stay counted in the job's memory through every split.
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe { libc::malloc_trim(0) };
    Ok(frame)
}

/// A classification's splits each need both classes in their training and test parts: says which split
/// lacks which class, and what to change.
fn check_both_classes(
    label: &str,
    y: &[f64],
    classes: &Option<[String; 2]>,
    group: &[u32],
    groups: usize,
    count: usize,
) -> anyhow::Result<()> {
    let mut rows = vec![0usize; groups];
    let mut positives = vec![0usize; groups];
    for (&g, &value) in group.iter().zip(y) {
        rows[g as usize] += 1;
        positives[g as usize] += usize::from(value > 0.5);
    }
    let (all_rows, all_positives) = (y.len(), positives.iter().sum::<usize>());
    for k in 0..count {
        let test = (rows[k], positives[k]);
        let train = (all_rows - rows[k], all_positives - positives[k]);
        for ((rows, positives), part) in [(train, "training"), (test, "test")] {
            if positives == 0 || positives == rows {
                let absent = match (classes, positives == 0) {
                    (Some([_, positive]), true) => positive.as_str(),
                    (Some([negative, _]), false) => negative.as_str(),
                    (None, _) => "one class",
                };
                bail!(
                    "split {} of {count}: its {part} part has no rows with {label} = {absent}; use fewer folds, a larger test_size or more data",
                    k + 1,
                );
            }
        }
    }
    Ok(())
}

/// The frame split into groups of rows, with what every split's fit needs.
struct Splits<'a> {
    params: &'a Params,
    frame: &'a data::Frame,
    group_sums: &'a [Sums],
    group: std::sync::Arc<[u32]>,
    y: std::sync::Arc<[f64]>,
    count: usize,
}

/// What one split's fit came to.
struct SplitFit {
    scores: Scores,
    on_train: Metrics,
    on_test: Metrics,
    model: Fitted,
    columns: Vec<String>,
}

impl Splits<'_> {
    /// Fits split `k` (its test rows held out), warm-started from the previous split's fit when there
    /// is one, and scores every row.
    fn fit(&self, k: usize, last: &Option<(Vec<String>, Vec<f64>)>) -> anyhow::Result<SplitFit> {
        let (params, frame, count) = (self.params, self.frame, self.count);
        let part = format!("split {} of {count}", k + 1);
        signals::check(|| format!("{k} of {count} splits"))?;
        let prep = Preprocessor::from_sums(
            &frame.features,
            &Sums::total(self.group_sums, Some(k)),
            &part,
        )?;
        // Every row of the frame, the split's test rows held out of the fit: nothing is copied.
        let held_out = HeldOut {
            group: &self.group,
            test: k as u32,
        };
        let design = prep.design(&frame.features, Some(held_out));
        let start = match warm_start(last, &prep) {
            Some(start) => Some(start),
            None => sample_start(params, &prep, &frame.features, held_out, &self.y),
        };
        let (model, decision) = fit(params, &design, &self.y, start);
        drop(design);
        signals::check(|| format!("{k} of {count} splits, during {part}"))?;
        if !model.converged {
            say(&format!(
                "[single-frame] warning: {part} did not converge: {}",
                unconverged(params, &model)
            ));
        }
        // The fit's decisions are already the predictions of every row, test rows included.
        let scores = match params.model {
            ModelKind::LogisticRegression => Scores::Probabilities(models::probabilities(decision)),
            ModelKind::LinearRegression => Scores::Predictions(decision),
        };
        let values = match &scores {
            Scores::Probabilities(v) | Scores::Predictions(v) => v,
        };
        let (on_train, on_test) =
            score_split(params, values, &self.y, &self.group, k as u32, &part)?;
        Ok(SplitFit {
            scores,
            on_train,
            on_test,
            model,
            columns: prep.column_names(),
        })
    }
}

pub fn run(spec: &BuiltinSpec, layout: &Layout, config: &JobConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let params = Params::resolve(spec, &config.hyperparameters)?;
    signals::check(|| "reading its settings".into())?;
    let frame = load(spec, layout, started)?;
    let (y, classes) = encode_label(&frame.label.0, &frame.label.1, params.model)?;
    let (group, groups, count) = assign(frame.rows, params.split, params.seed)?;
    if params.model == ModelKind::LogisticRegression {
        check_both_classes(&frame.label.0, &y, &classes, &group, groups, count)?;
    }
    // What preprocessing needs, gathered once for every group of rows.
    let group_sums = Sums::by_group(&frame.features, &group, groups);
    let splits = Splits {
        params: &params,
        frame: &frame,
        group_sums: &group_sums,
        group: group.into(),
        y: y.into(),
        count,
    };
    let model_dir = layout.model_dir();
    std::fs::create_dir_all(&model_dir)?;
    let mut result_df = ResultWriter::create(
        &model_dir.join("result_df.parquet"),
        splits.group.clone(),
        splits.y.clone(),
    )
    .context("writing result_df.parquet")?;

    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut fits = Vec::new();
    let mut last: Option<(Vec<String>, Vec<f64>)> = None;
    for k in 0..count {
        let fold_started = Instant::now();
        let split = splits.fit(k, &last)?;
        let test_rows = splits.group.iter().filter(|g| **g == k as u32).count();
        say_split(k, &splits, test_rows, &split, fold_started, &mut sums);
        result_df
            .write(SplitScores {
                fold: k as u32 + 1,
                test: k as u32,
                scores: split.scores,
            })
            .context("writing result_df.parquet")?;
        fits.push(json!({
            "split": k + 1,
            "iterations": split.model.iterations,
            "converged": split.model.converged,
            "gradient": split.model.gradient,
        }));
        last = Some((split.columns, split.model.theta()));
        // No malloc_trim here: the next split needs as much again, and pages handed back would only
        // be faulted in anew.
    }
    let averaged: BTreeMap<String, f64> = sums
        .iter()
        .map(|(k, v)| (k.clone(), v / count as f64))
        .collect();

    say("[single-frame] stage refit: fitting on all rows");
    let prep =
        Preprocessor::from_sums(&frame.features, &Sums::total(&group_sums, None), "all rows")?;
    signals::check(|| format!("all {count} splits, before the refit on all rows"))?;
    let design = prep.design(&frame.features, None);
    let (final_model, _) = fit(&params, &design, &splits.y, warm_start(&last, &prep));
    drop(design);
    // The last split's rows were written on the writer's thread while the refit ran.
    let result_rows = result_df.finish().context("writing result_df.parquet")?;
    signals::check(|| format!("all {count} splits, during the refit on all rows"))?;
    if !final_model.converged {
        say(&format!(
            "[single-frame] warning: the refit on all rows did not converge: {}",
            unconverged(&params, &final_model)
        ));
    }
    let model_json = model_description(&params, &frame, &classes, &prep, &final_model, fits);
    std::fs::write(
        model_dir.join("model.json"),
        serde_json::to_vec_pretty(&model_json)?,
    )?;
    std::fs::write(
        model_dir.join("metrics.json"),
        serde_json::to_vec_pretty(&json!({"metrics": averaged, "splits": count}))?,
    )?;
    say(&format!(
        "[single-frame] stage save: model.json, result_df.parquet ({result_rows} rows), metrics.json; done in {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Says how split `k` went (rows, iterations, time, each metric on test and train rows) and the running
/// mean of every metric over the splits so far, adding this split's metrics to `sums`; after the last
/// split the mean is the reported figure.
fn say_split(
    k: usize,
    splits: &Splits,
    test_rows: usize,
    split: &SplitFit,
    fold_started: Instant,
    sums: &mut BTreeMap<String, f64>,
) {
    let mut shown = Vec::new();
    for (suffix, metrics) in [("test", &split.on_test), ("train", &split.on_train)] {
        for (name, value) in metrics {
            let key = format!("{name}_{suffix}");
            *sums.entry(key.clone()).or_default() += value;
            shown.push(format!("{key}={value:.4}"));
        }
    }
    say(&format!(
        "[single-frame] stage fit: split {} of {}: {} train / {} test rows, {} iterations, {:.2}s: {}",
        k + 1,
        splits.count,
        splits.frame.rows - test_rows,
        test_rows,
        split.model.iterations,
        fold_started.elapsed().as_secs_f64(),
        shown.join(" ")
    ));
    for (name, total) in sums.iter() {
        say(&metrics::format_line(name, total / (k + 1) as f64));
    }
}

/// What `model.json` holds: the model fitted on all rows, how it was preprocessed, the splits' fits and
/// the parameters it was fitted with.
fn model_description(
    params: &Params,
    frame: &crate::data::Frame,
    classes: &Option<[String; 2]>,
    prep: &Preprocessor,
    final_model: &Fitted,
    fits: Vec<serde_json::Value>,
) -> serde_json::Value {
    json!({
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
    })
}

#[cfg(test)]
mod tests;
