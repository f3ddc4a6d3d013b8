//! `grounds results list | show | open`: finding, reading and unpacking what jobs produced.

use std::path::PathBuf;

use anyhow::bail;
use serde_json::json;

use super::Exit;
use crate::archive::Limits;
use crate::cli::ResultsCommand;
use crate::printer::{Printer, Reporter};
use crate::report;
use crate::results::Store;

pub fn run(command: ResultsCommand, printer: &Printer) -> anyhow::Result<Exit> {
    let store = Store::from_env();
    match command {
        ResultsCommand::List {
            task,
            pipeline,
            status,
            sort,
            ascending,
        } => list(
            &store,
            &Filter {
                task,
                pipeline,
                status,
                sort,
                ascending,
            },
            printer,
        ),
        ResultsCommand::Compare { ids, task } => compare(&store, &ids, task.as_deref(), printer),
        ResultsCommand::Show { id } => show(&store, &id, printer),
        ResultsCommand::Open { id, to, max_bytes } => open(&store, &id, to, max_bytes, printer),
        ResultsCommand::Fetch { id, no_wait } => {
            super::block_on(fetch(&store, &id, no_wait, printer))?
        }
    }
}

/// `results fetch`: a job launched with `--detach` waited for (or, with `--no-wait`, taken as it is).
async fn fetch(
    store: &Store,
    prefix: &str,
    no_wait: bool,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    use crate::pipeline::Fetched;
    match crate::pipeline::fetch(store, prefix, no_wait, printer).await? {
        Fetched::Already(record, path) => {
            printer.stage(
                "Fetched",
                &format!("{} is {} already", record.id, record.status),
            );
            printer.json(&json!({"id": record.id, "status": record.status, "mode": record.mode(), "result": path}));
            printer.out(&format!(
                "id:      {}\nstatus:  {}\n",
                record.id, record.status
            ));
            Ok(Exit::Success)
        }
        Fetched::Running(record, status, secondary) => {
            printer.stage(
                "Running",
                &format!("{} is still {status} / {secondary}", record.id),
            );
            printer
                .json(&json!({"id": record.id, "status": status, "secondary_status": secondary}));
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
    pub pipeline: Option<String>,
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
                self.pipeline
                    .as_ref()
                    .is_none_or(|p| r.pipeline.as_ref().is_some_and(|s| &s.name == p))
            })
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
    let (json, text) = report::results::list(&rows, &store.results_dir());
    printer.json(&json);
    printer.out(&text);
    Ok(Exit::Success)
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
    let (json, text) = report::results::compare(&stored);
    printer.json(&json);
    printer.out(&text);
    Ok(Exit::Success)
}

fn show(store: &Store, prefix: &str, printer: &Printer) -> anyhow::Result<Exit> {
    let id = store.resolve(prefix)?;
    let stored = store.read(&id)?;
    let (json, text) = report::results::show(&stored);
    printer.json(&json);
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
    let (done, json, text) = report::results::opened(&id, &opened, &stored);
    printer.stage("Opened", &done);
    printer.json(&json);
    printer.out(&text);
    Ok(Exit::Success)
}
