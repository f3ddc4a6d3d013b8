//! What the `results` commands answer: the table of `results list`, the comparison of `results compare`,
//! the page of `results show` and what `results open` did, each as the `--json` value and the text a
//! person reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::Local;

use super::schema::{CompareAnswer, CompareColumn, FileRow, MetricValue, OpenAnswer, ShowAnswer};
use crate::job::JobRecord;
use crate::printer;
use crate::store::results::{Opened, Stored, Summary};

/// `results list`.
pub fn list(rows: &[Summary], results_dir: &Path, store_bytes: u64) -> String {
    if rows.is_empty() {
        return format!("No results yet in {}.", results_dir.display());
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.id.clone(),
                row.task.clone(),
                row.mode.to_string(),
                row.status.to_string(),
                row.created
                    .with_timezone(&Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
                row.duration_seconds
                    .map(duration)
                    .unwrap_or_else(|| "-".into()),
                main_metrics(&row.metrics),
            ]
        })
        .collect();
    let mut text = printer::table(
        &[
            "ID", "TASK", "MODE", "STATUS", "CREATED", "DURATION", "METRICS",
        ],
        &table_rows,
    );
    text.push_str(&format!(
        "\n{} shown; the store {} holds {:.1} MB\n",
        rows.len(),
        results_dir.display(),
        store_bytes as f64 / 1e6
    ));
    text
}

/// Up to three metrics, test metrics first, as `name=value`.
fn main_metrics(metrics: &BTreeMap<String, f64>) -> String {
    let mut names: Vec<&String> = metrics.keys().collect();
    names.sort_by_key(|name| (!name.ends_with("_test"), name.as_str()));
    let mut shown: Vec<String> = names
        .iter()
        .take(3)
        .map(|n| format!("{n}={}", printer::metric_value(metrics[*n])))
        .collect();
    if metrics.len() > 3 {
        shown.push(format!("(+{})", metrics.len() - 3));
    }
    shown.join(" ")
}

fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else if seconds < 3600.0 {
        format!(
            "{}m{:02}s",
            (seconds / 60.0) as u64,
            (seconds % 60.0) as u64
        )
    } else {
        format!(
            "{}h{:02}m",
            (seconds / 3600.0) as u64,
            ((seconds % 3600.0) / 60.0) as u64
        )
    }
}

/// `results compare`: hyperparameters and final metrics side by side, what differs marked.
pub fn compare(stored: &[Stored]) -> (CompareAnswer, String) {
    let ids: Vec<String> = stored.iter().map(|s| s.job.id.clone()).collect();
    let mut hyperparameters: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut metrics: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for result in stored {
        for (name, value) in &result.job.hyperparameters {
            hyperparameters
                .entry(name.clone())
                .or_default()
                .insert(result.job.id.clone(), value.clone());
        }
        for (name, value) in result.metrics.finals() {
            metrics
                .entry(name)
                .or_default()
                .insert(result.job.id.clone(), value);
        }
    }
    let differs_text = |values: &BTreeMap<String, String>| {
        values.len() < ids.len() || values.values().collect::<BTreeSet<_>>().len() > 1
    };
    let differs_number = |values: &BTreeMap<String, f64>| {
        values.len() < ids.len()
            || values
                .values()
                .any(|v| v.to_bits() != values.values().next().unwrap_or(&0.0).to_bits())
    };
    let differing: Vec<String> = hyperparameters
        .iter()
        .filter(|(_, v)| differs_text(v))
        .map(|(k, _)| k.clone())
        .chain(
            metrics
                .iter()
                .filter(|(_, v)| differs_number(v))
                .map(|(k, _)| k.clone()),
        )
        .collect();
    let columns = compare_columns(stored);
    let answer = CompareAnswer {
        results: ids.clone(),
        columns: columns.clone(),
        hyperparameters: hyperparameters.clone(),
        metrics: metrics
            .iter()
            .map(|(name, values)| {
                let values = values
                    .iter()
                    .map(|(id, value)| (id.clone(), MetricValue(*value)))
                    .collect();
                (name.clone(), values)
            })
            .collect(),
        differing,
    };
    let mark = |differs: bool| if differs { "*" } else { " " }.to_string();
    let mut header: Vec<String> = vec!["".into(), "NAME".into()];
    header.extend(columns.iter().map(|c| c.label.clone()));
    let mut rows = Vec::new();
    let modes: BTreeSet<String> = columns.iter().map(|c| c.mode.to_string()).collect();
    let mut mode_row = vec![mark(modes.len() > 1), "mode".to_string()];
    mode_row.extend(columns.iter().map(|c| c.mode.to_string()));
    rows.push(mode_row);
    for (name, values) in &hyperparameters {
        let mut row = vec![mark(differs_text(values)), format!("hp {name}")];
        row.extend(
            ids.iter()
                .map(|id| values.get(id).cloned().unwrap_or_else(|| "-".into())),
        );
        rows.push(row);
    }
    for (name, values) in &metrics {
        let mut row = vec![mark(differs_number(values)), name.clone()];
        row.extend(ids.iter().map(|id| {
            values
                .get(id)
                .map(|v| printer::metric_value(*v))
                .unwrap_or_else(|| "-".into())
        }));
        rows.push(row);
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut text = format!("{}(* differs)\n\n", printer::table(&header, &rows));
    let legend: Vec<(String, String)> = columns
        .iter()
        .map(|c| (c.label.clone(), c.id.clone()))
        .collect();
    text.push_str(&two_columns(&legend));
    (answer, text)
}

/// Short labels for compared results: a sweep member's name without its task's (`LR0p05`), else the
/// task's name; results that would share a label are told apart by their ids' random parts, then by
/// their whole ids.
fn compare_columns(stored: &[Stored]) -> Vec<CompareColumn> {
    let short = |result: &Stored| {
        let id = &result.job.id;
        let name = crate::store::results::name_of(id).unwrap_or(id);
        let task = &result.job.task.name;
        match name
            .strip_prefix(task.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
        {
            Some(member) if !member.is_empty() => member.to_string(),
            _ => name.to_string(),
        }
    };
    let mut labels: Vec<String> = stored.iter().map(short).collect();
    let repeated =
        |labels: &[String], label: &String| labels.iter().filter(|l| *l == label).count() > 1;
    let snapshot = labels.clone();
    for (label, result) in labels.iter_mut().zip(stored) {
        if repeated(&snapshot, label) {
            let random = result.job.id.rsplit('-').next().unwrap_or_default();
            *label = format!("{label}-{random}");
        }
    }
    let snapshot = labels.clone();
    for (label, result) in labels.iter_mut().zip(stored) {
        if repeated(&snapshot, label) {
            *label = result.job.id.clone();
        }
    }
    stored
        .iter()
        .zip(labels)
        .map(|(result, label)| CompareColumn {
            id: result.job.id.clone(),
            label,
            mode: result.job.mode(),
        })
        .collect()
}

/// `results show`: everything about one result.
pub fn show(stored: &Stored) -> (ShowAnswer, String) {
    let job = &stored.job;
    let answer = ShowAnswer {
        result: stored.path.clone(),
        job: job.clone(),
        metrics: stored.metrics.clone(),
        files: stored
            .files
            .iter()
            .map(|(name, size)| FileRow {
                name: name.clone(),
                size: *size,
            })
            .collect(),
    };
    let mut text = head_text(stored);
    text.push_str(&provenance_text(job));
    text.push_str(&hyperparameters_and_metrics_text(stored));
    text.push_str("\nfiles:\n");
    let rows: Vec<Vec<String>> = stored
        .files
        .iter()
        .map(|(name, size)| vec![format!("  {size}"), name.clone()])
        .collect();
    text.push_str(&printer::table(&["  BYTES", "NAME"], &rows));
    (answer, text)
}

/// The lines of `results show` about the run itself: id, task, mode, status, times, package, result and
/// the failure reason.
fn head_text(stored: &Stored) -> String {
    let job = &stored.job;
    let mut text = String::new();
    text.push_str(&format!("id:           {}\n", job.id));
    text.push_str(&format!(
        "task:         {} (version {}) from {}\n",
        job.task.name, job.task.version, job.task_file
    ));
    if let Some(pipeline) = &job.pipeline {
        text.push_str(&format!(
            "pipeline:     {}, step {}\n",
            pipeline.name, pipeline.step
        ));
    }
    text.push_str(&format!("mode:         {}\n", job.mode()));
    text.push_str(&format!(
        "status:       {}{}\n",
        job.status,
        job.exit_code
            .map(|c| format!(", exit code {c}"))
            .unwrap_or_default()
    ));
    text.push_str(&format!(
        "started:      {}\n",
        job.started_at
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S")
    ));
    if let Some(seconds) = job.duration_seconds {
        text.push_str(&format!("duration:     {}\n", duration(seconds)));
    }
    text.push_str(&format!(
        "package:      {} {} {}\n",
        job.package.name, job.package.version, job.package.content_hash
    ));
    // The image that ran the package (it holds no code): grounds' tag, and on SageMaker its URI there.
    match (&job.image, job.sagemaker()) {
        (_, Some(remote)) => text.push_str(&format!("image:        {}\n", remote.image_uri)),
        (Some(image), None) => text.push_str(&format!("image:        {image}\n")),
        (None, None) => {}
    }
    text.push_str(&format!("fingerprint:  {}\n", job.fingerprint));
    text.push_str(&format!("result:       {}\n", stored.path.display()));
    if let Some(reason) = &job.failure_reason {
        text.push_str("failure:\n");
        for line in reason.lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

/// What the job left out and where its data came from: channels and results it read.
fn provenance_text(job: &JobRecord) -> String {
    let mut text = String::new();
    if !job.left_out.is_empty() {
        text.push_str(&format!(
            "\nleft out ({} file(s) the job left that are not in the result):\n",
            job.left_out.len()
        ));
        let rows: Vec<(String, String)> = job
            .left_out
            .iter()
            .map(|left| (left.path.clone(), left.reason.clone()))
            .collect();
        text.push_str(&two_columns(&rows));
    }
    if !job.malformed_metric_lines.is_empty() {
        let lines: u64 = job.malformed_metric_lines.iter().map(|m| m.lines).sum();
        text.push_str(&format!(
            "\nnot recorded as metrics ({lines} line(s) that look like metric lines; one is \
             `###METRIC###name:value###`):\n"
        ));
        let rows: Vec<(String, String)> = job
            .malformed_metric_lines
            .iter()
            .map(|m| {
                (
                    format!("{} line(s)", m.lines),
                    format!("{}, first: {}", m.problem, m.first),
                )
            })
            .collect();
        text.push_str(&two_columns(&rows));
    }
    if !job.channels.is_empty() {
        text.push_str("\nchannels:\n");
        let rows: Vec<(String, String)> = job
            .channels
            .iter()
            .map(|(name, source)| (name.clone(), source.clone()))
            .collect();
        text.push_str(&two_columns(&rows));
    }
    if !job.inputs.is_empty() {
        text.push_str("\nread from results:\n");
        let rows: Vec<(String, String)> = job
            .inputs
            .iter()
            .map(|input| {
                let from = format!("{} ({}/)", input.result, input.folder.path_in_result());
                (input.channel.clone(), from)
            })
            .collect();
        text.push_str(&two_columns(&rows));
    }
    text
}

/// Rows of a name and a value, indented, the values in one column whatever the names' lengths.
fn two_columns(rows: &[(String, String)]) -> String {
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(name, value)| {
            let pad = " ".repeat(width - name.chars().count());
            format!("  {name}{pad}  {value}\n")
        })
        .collect()
}

/// The hyperparameters and the metrics (final value, samples, a sparkline) as tables.
fn hyperparameters_and_metrics_text(stored: &Stored) -> String {
    let job = &stored.job;
    let mut text = String::new();
    if !job.hyperparameters.is_empty() {
        text.push_str("\nhyperparameters:\n");
        let rows: Vec<Vec<String>> = job
            .hyperparameters
            .iter()
            .map(|(k, v)| vec![format!("  {k}"), v.clone()])
            .collect();
        text.push_str(&printer::table(&["  NAME", "VALUE"], &rows));
    }
    if !stored.metrics.is_empty() {
        text.push_str("\nmetrics:\n");
        let rows: Vec<Vec<String>> = stored
            .metrics
            .0
            .iter()
            .map(|(k, s)| {
                let values: Vec<f64> = s.series.iter().map(|v| v.value).collect();
                vec![
                    format!("  {k}"),
                    printer::metric_value(s.last),
                    match s.thinned {
                        Some(t) => {
                            format!("{} of {} (every {})", s.series.len(), t.reported, t.every)
                        }
                        None => s.series.len().to_string(),
                    },
                    if values.len() > 1 {
                        super::plot::sparkline(&values, 24)
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        text.push_str(&printer::table(
            &["  NAME", "FINAL", "SAMPLES", "CURVE"],
            &rows,
        ));
    }
    text
}

/// `results open`: what was done (for the stage line), and where the result is, with its final metrics.
pub fn opened(id: &str, opened: &Opened, stored: &Stored) -> (String, OpenAnswer, String) {
    let metrics = stored.metrics.finals();
    let done = if opened.restored > 0 || !opened.kept.is_empty() {
        format!(
            "{id} again: {} file(s) of the result put back, {} file(s) you added kept",
            opened.restored,
            opened.kept.len()
        )
    } else if opened.written == 0 {
        format!("{id} (already open, unchanged)")
    } else {
        format!("{id} ({} bytes)", opened.written)
    };
    let answer = OpenAnswer {
        id: id.to_string(),
        folder: opened.folder.clone(),
        metrics: metrics.clone(),
        status: stored.job.status,
        restored: opened.restored,
        kept: opened.kept.clone(),
    };
    let mut text = format!("{}\n", opened.folder.display());
    if !metrics.is_empty() {
        let rows: Vec<Vec<String>> = metrics
            .iter()
            .map(|(k, v)| vec![k.clone(), printer::metric_value(*v)])
            .collect();
        text.push('\n');
        text.push_str(&printer::table(&["METRIC", "VALUE"], &rows));
    }
    (done, answer, text)
}
