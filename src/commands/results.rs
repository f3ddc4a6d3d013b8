//! `grounds results list | show | open`: finding, reading and unpacking what jobs produced.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use chrono::Local;
use serde_json::json;

use super::Exit;
use crate::archive::Limits;
use crate::cli::ResultsCommand;
use crate::printer::{self, Printer, Reporter};
use crate::results::Store;

pub async fn run(command: ResultsCommand, printer: &Printer) -> anyhow::Result<Exit> {
    let store = Store::from_env();
    match command {
        ResultsCommand::List => list(&store, printer),
        ResultsCommand::Show { id } => show(&store, &id, printer),
        ResultsCommand::Open { id, to, max_bytes } => open(&store, &id, to, max_bytes, printer),
        ResultsCommand::Fetch { .. } => unreachable!("dispatched to commands::remote"),
    }
}

fn list(store: &Store, printer: &Printer) -> anyhow::Result<Exit> {
    let (rows, problems) = store.list()?;
    for problem in &problems {
        printer.warn(&format!("skipping an unreadable result: {problem}"));
    }
    printer.json(&rows);
    if rows.is_empty() {
        printer.out(&format!(
            "No results yet in {}.",
            store.results_dir().display()
        ));
        return Ok(Exit::Success);
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
    printer.out(&printer::table(
        &[
            "ID", "TASK", "MODE", "STATUS", "CREATED", "DURATION", "METRICS",
        ],
        &table_rows,
    ));
    Ok(Exit::Success)
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

pub fn duration(seconds: f64) -> String {
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

fn show(store: &Store, prefix: &str, printer: &Printer) -> anyhow::Result<Exit> {
    let id = store.resolve(prefix)?;
    let stored = store.read(&id)?;
    let job = &stored.job;
    let files: Vec<_> = stored
        .files
        .iter()
        .map(|(name, size)| json!({"name": name, "size": size}))
        .collect();
    printer.json(&json!({
        "result": stored.path,
        "job": job,
        "metrics": stored.metrics,
        "files": files,
    }));
    let mut text = String::new();
    text.push_str(&format!("id:           {}\n", job.id));
    text.push_str(&format!(
        "task:         {} (version {}) from {}\n",
        job.task.name, job.task.version, job.task_file
    ));
    text.push_str(&format!("mode:         {}\n", job.mode));
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
    text.push_str(&format!("fingerprint:  {}\n", job.fingerprint));
    text.push_str(&format!("result:       {}\n", stored.path.display()));
    if let Some(reason) = &job.failure_reason {
        text.push_str("failure:\n");
        for line in reason.lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    if !job.channels.is_empty() {
        text.push_str("\nchannels:\n");
        for (name, source) in &job.channels {
            text.push_str(&format!("  {name}  {source}\n"));
        }
    }
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
                vec![
                    format!("  {k}"),
                    printer::metric_value(s.last),
                    s.series.len().to_string(),
                ]
            })
            .collect();
        text.push_str(&printer::table(&["  NAME", "FINAL", "SAMPLES"], &rows));
    }
    text.push_str("\nfiles:\n");
    let rows: Vec<Vec<String>> = stored
        .files
        .iter()
        .map(|(name, size)| vec![format!("  {size}"), name.clone()])
        .collect();
    text.push_str(&printer::table(&["  BYTES", "NAME"], &rows));
    printer.out(&text);
    Ok(Exit::Success)
}

fn open(
    store: &Store,
    prefix: &str,
    to: Option<PathBuf>,
    max_bytes: u64,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let id = store.resolve(prefix)?;
    let dest = match to {
        Some(dir) => {
            let occupied = std::fs::read_dir(&dir)
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(false);
            if occupied {
                bail!(
                    "{} exists and is not empty; give --to a new or empty folder",
                    dir.display()
                );
            }
            std::path::absolute(&dir)?
        }
        None => store.open_dir(&id),
    };
    let limits = Limits {
        max_bytes,
        ..Limits::default()
    };
    let bytes = store.unpack(&id, &dest, limits)?;
    let stored = store.read(&id)?;
    let metrics = stored.metrics.finals();
    printer.stage("Opened", &format!("{id} ({bytes} bytes)"));
    printer
        .json(&json!({"id": id, "folder": dest, "metrics": metrics, "status": stored.job.status}));
    let mut text = format!("{}\n", dest.display());
    if !metrics.is_empty() {
        let rows: Vec<Vec<String>> = metrics
            .iter()
            .map(|(k, v)| vec![k.clone(), printer::metric_value(*v)])
            .collect();
        text.push('\n');
        text.push_str(&printer::table(&["METRIC", "VALUE"], &rows));
    }
    printer.out(&text);
    Ok(Exit::Success)
}
