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
        ResultsCommand::List {
            task,
            status,
            sort,
            ascending,
        } => list(
            &store,
            &Filter {
                task,
                status,
                sort,
                ascending,
            },
            printer,
        ),
        ResultsCommand::Compare { ids, task } => compare(&store, &ids, task.as_deref(), printer),
        ResultsCommand::Show { id } => show(&store, &id, printer),
        ResultsCommand::Open { id, to, max_bytes } => open(&store, &id, to, max_bytes, printer),
        ResultsCommand::Fetch { id, no_wait } => fetch(&store, &id, no_wait, printer).await,
    }
}

/// `results fetch`: a job launched with `--detach` waited for (or, with `--no-wait`, taken as it is).
async fn fetch(store: &Store, prefix: &str, no_wait: bool, printer: &Printer) -> anyhow::Result<Exit> {
    use crate::pipeline::Fetched;
    match crate::pipeline::fetch(store, prefix, no_wait, printer).await? {
        Fetched::Already(record, path) => {
            printer.stage("Fetched", &format!("{} is {} already", record.id, record.status));
            printer.json(&json!({"id": record.id, "status": record.status, "mode": record.mode, "result": path}));
            printer.out(&format!("id:      {}\nstatus:  {}\n", record.id, record.status));
            Ok(Exit::Success)
        }
        Fetched::Running(record, status, secondary) => {
            printer.stage(
                "Running",
                &format!("{} is still {status} / {secondary}", record.id),
            );
            printer.json(&json!({"id": record.id, "status": status, "secondary_status": secondary}));
            Ok(Exit::Success)
        }
        Fetched::Detached(record) => {
            printer.warn(&format!("detached again; {} stays InProgress", record.id));
            Ok(Exit::Success)
        }
        Fetched::Ran(ran) => {
            let (json, text, status) = crate::report::ran(&ran);
            printer.json(&json);
            printer.out(&text);
            Ok(super::train::exit_for(status))
        }
    }
}

/// What `results list` shows, and in which order.
pub struct Filter {
    pub task: Option<String>,
    pub status: Option<String>,
    pub sort: Option<String>,
    pub ascending: bool,
}

impl Filter {
    fn apply(
        &self,
        rows: Vec<crate::results::Summary>,
    ) -> anyhow::Result<Vec<crate::results::Summary>> {
        if let Some(status) = &self.status {
            let known = ["Completed", "Failed", "Stopped", "InProgress"];
            if !known.iter().any(|k| k.eq_ignore_ascii_case(status)) {
                bail!("unknown status `{status}`: use one of {}", known.join(", "));
            }
        }
        let mut rows: Vec<_> = rows
            .into_iter()
            .filter(|r| self.task.as_ref().is_none_or(|t| &r.task == t))
            .filter(|r| {
                self.status
                    .as_ref()
                    .is_none_or(|s| r.status.to_string().eq_ignore_ascii_case(s))
            })
            .collect();
        if let Some(metric) = &self.sort {
            // Stable: equal values keep their order (oldest first); NaN and infinities after the rest.
            rows.sort_by(|a, b| {
                crate::metrics::rank(
                    a.metrics.get(metric).copied(),
                    b.metrics.get(metric).copied(),
                    !self.ascending,
                )
            });
        }
        Ok(rows)
    }
}

fn list(store: &Store, filter: &Filter, printer: &Printer) -> anyhow::Result<Exit> {
    let (rows, problems) = store.list()?;
    let rows = filter.apply(rows)?;
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

fn compare(
    store: &Store,
    prefixes: &[String],
    task: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let mut ids: Vec<String> = prefixes
        .iter()
        .map(|p| store.resolve(p))
        .collect::<anyhow::Result<_>>()?;
    if let Some(task) = task {
        let (rows, _) = store.list()?;
        ids.extend(rows.into_iter().filter(|r| r.task == task).map(|r| r.id));
    }
    ids.dedup();
    if ids.len() < 2 {
        bail!("give at least two results to compare (ids, prefixes, or --task NAME with two or more results)");
    }
    let stored: Vec<_> = ids
        .iter()
        .map(|id| store.read(id))
        .collect::<anyhow::Result<_>>()?;
    let mut hyperparameters: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut metrics: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for result in &stored {
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
        values.len() < ids.len()
            || values
                .values()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1
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
    let metrics_json: BTreeMap<&String, serde_json::Value> = metrics
        .iter()
        .map(|(name, values)| (name, crate::metrics::value::map_to_json(values)))
        .collect();
    printer.json(&json!({"results": ids, "hyperparameters": hyperparameters, "metrics": metrics_json, "differing": differing}));
    let mut header: Vec<String> = vec!["".into(), "NAME".into()];
    header.extend(ids.iter().cloned());
    let mut rows = Vec::new();
    for (name, values) in &hyperparameters {
        let mut row = vec![
            if differs_text(values) {
                "*".into()
            } else {
                " ".into()
            },
            format!("hp {name}"),
        ];
        row.extend(
            ids.iter()
                .map(|id| values.get(id).cloned().unwrap_or_else(|| "-".into())),
        );
        rows.push(row);
    }
    for (name, values) in &metrics {
        let mut row = vec![
            if differs_number(values) {
                "*".into()
            } else {
                " ".into()
            },
            name.clone(),
        ];
        row.extend(ids.iter().map(|id| {
            values
                .get(id)
                .map(|v| printer::metric_value(*v))
                .unwrap_or_else(|| "-".into())
        }));
        rows.push(row);
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    printer.out(&format!("{}(* differs)\n", printer::table(&header, &rows)));
    Ok(Exit::Success)
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
    if !job.left_out.is_empty() {
        text.push_str(&format!(
            "\nleft out ({} file(s) the job left that are not in the result):\n",
            job.left_out.len()
        ));
        for left in &job.left_out {
            text.push_str(&format!("  {}  {}\n", left.path, left.reason));
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
    let limits = Limits {
        max_bytes,
        ..Limits::default()
    };
    let (dest, ours) = match to {
        Some(dir) => (dir, false),
        None => (store.open_dir(&id), true),
    };
    let opened = store.open_into(&id, &dest, ours, limits)?;
    let stored = store.read(&id)?;
    let metrics = stored.metrics.finals();
    if opened.restored > 0 || !opened.kept.is_empty() {
        printer.stage(
            "Opened",
            &format!(
                "{id} again: {} file(s) of the result put back, {} file(s) you added kept",
                opened.restored,
                opened.kept.len()
            ),
        );
    } else if opened.written == 0 {
        printer.stage("Opened", &format!("{id} (already open, unchanged)"));
    } else {
        printer.stage("Opened", &format!("{id} ({} bytes)", opened.written));
    }
    printer.json(&json!({
        "id": id,
        "folder": opened.folder,
        "metrics": crate::metrics::value::map_to_json(&metrics),
        "status": stored.job.status,
        "restored": opened.restored,
        "kept": opened.kept,
    }));
    let mut text = format!("{}\n", opened.folder.display());
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
