//! `grounds results list | compare | show | fetch | open | export | plot`: finding, reading, unpacking,
//! exporting and drawing what jobs produced (`rm` and `gc` are in [`super::upkeep`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::answers::schema::{ExportAnswer, FetchedAnswer, PlotAnswer, StillRunningAnswer};
use anyhow::{bail, Context};

use super::Exit;
use crate::answers;
use crate::cli::{ListArgs, ResultsCommand};
use crate::printer::{Printer, Reporter};
use crate::store::results::export::{self, ExportFormat};
use crate::store::results::Store;
use grounds_job::archive::Limits;

pub fn run(command: ResultsCommand, printer: &Printer) -> anyhow::Result<Exit> {
    let store = Store::from_env();
    match command {
        ResultsCommand::List(filter) => list(&store, &filter, printer),
        ResultsCommand::Compare { ids, task } => compare(&store, &ids, task.as_deref(), printer),
        ResultsCommand::Show { id } => show(&store, &id, printer),
        ResultsCommand::Open { id, to, max_bytes } => open(&store, &id, to, max_bytes, printer),
        ResultsCommand::Fetch { id, no_wait, .. } => {
            super::block_on(fetch(&store, &id, no_wait, printer))?
        }
        ResultsCommand::Export {
            format,
            output,
            filter,
        } => export(&store, format, output.as_deref(), &filter, printer),
        ResultsCommand::Plot {
            ids,
            metric,
            output,
            x,
        } => plot(
            &store,
            &ids,
            &metric,
            output,
            match x {
                crate::cli::PlotAxis::Step => answers::plot::Axis::Step,
                crate::cli::PlotAxis::Time => answers::plot::Axis::Time,
            },
            printer,
        ),
        ResultsCommand::Rm {
            ids,
            all,
            force,
            dry_run,
        } => super::upkeep::rm(&store, &ids, all, force, dry_run, printer),
        ResultsCommand::Gc {
            older_than,
            status,
            keep_last,
            task,
            images,
            docker_host,
            force,
            dry_run,
        } => super::upkeep::gc(
            &store,
            crate::store::results::upkeep::Criteria {
                older_than,
                status,
                keep_last,
                task,
                force,
            },
            images.then_some(docker_host),
            dry_run,
            printer,
        ),
    }
}

/// `results fetch`: a job launched with `--detach` waited for (or, with `--no-wait`, taken as it is).
async fn fetch(
    store: &Store,
    prefix: &str,
    no_wait: bool,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    use crate::run::lifecycle::Fetched;
    match crate::run::lifecycle::fetch(store, prefix, no_wait, printer).await? {
        Fetched::Already(record, path) => {
            printer.stage(
                "Fetched",
                &format!("{} is {} already", record.id, record.status),
            );
            printer.json(&FetchedAnswer {
                id: record.id.clone(),
                status: record.status,
                mode: record.mode(),
                result: path.clone(),
            });
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
            printer.json(&StillRunningAnswer {
                id: record.id.clone(),
                status,
                secondary_status: secondary.clone(),
            });
            Ok(Exit::Success)
        }
        Fetched::Ran(ran) => {
            let (json, text, status) = crate::answers::ran(&ran);
            printer.json(&json);
            printer.out(&text);
            Ok(super::train::exit_for(status))
        }
    }
}

/// The results `filter` picks, in its order; unreadable results are warned about and skipped.
pub fn listed(
    store: &Store,
    filter: &ListArgs,
    printer: &Printer,
) -> anyhow::Result<Vec<crate::store::results::Summary>> {
    if let Some(status) = &filter.status {
        let known = ["Completed", "Failed", "Stopped", "InProgress"];
        if !known.iter().any(|k| k.eq_ignore_ascii_case(status)) {
            bail!("unknown status `{status}`: use one of {}", known.join(", "));
        }
    }
    let (rows, problems) = store.list()?;
    for problem in &problems {
        printer.warn(&format!("skipping an unreadable result: {problem}"));
    }
    let mut rows: Vec<_> = rows
        .into_iter()
        .filter(|r| filter.task.as_ref().is_none_or(|t| &r.task == t))
        .filter(|r| {
            filter
                .pipeline
                .as_ref()
                .is_none_or(|p| r.pipeline.as_ref().is_some_and(|s| &s.name == p))
        })
        .filter(|r| {
            filter
                .status
                .as_ref()
                .is_none_or(|s| r.status.to_string().eq_ignore_ascii_case(s))
        })
        .collect();
    if let Some(metric) = &filter.sort {
        // A metric no listed result has would sort nothing: a typo, said as such.
        if !rows.is_empty() && !rows.iter().any(|r| r.metrics.contains_key(metric)) {
            let known: BTreeSet<&str> = rows
                .iter()
                .flat_map(|r| r.metrics.keys().map(String::as_str))
                .collect();
            bail!(
                "--sort {metric}: no result listed has a metric `{metric}`; theirs are: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.into_iter().collect::<Vec<_>>().join(", ")
                }
            );
        }
        // Stable: equal values keep their order (oldest first); NaN and infinities after the rest.
        rows.sort_by(|a, b| {
            crate::job::metrics::rank(
                a.metrics.get(metric).copied(),
                b.metrics.get(metric).copied(),
                !filter.ascending,
            )
        });
    }
    Ok(rows)
}

fn list(store: &Store, filter: &ListArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let rows: Vec<answers::schema::ListRow> = listed(store, filter, printer)?;
    let mut text = answers::results::list(&rows, &store.results_dir(), store.size());
    // Nothing matched the filter, but the store is not empty: say what it holds.
    if rows.is_empty() {
        let (all, _) = store.list()?;
        if !all.is_empty() {
            let tasks: BTreeSet<&str> = all.iter().map(|r| r.task.as_str()).collect();
            text = format!(
                "No results match {} in {}; it holds {} result(s), of the tasks: {}.",
                filter_words(filter),
                store.results_dir().display(),
                all.len(),
                tasks.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
    }
    printer.json(&rows);
    printer.out(&text);
    Ok(Exit::Success)
}

/// What a list's filter asks for, as words: `task nosuch, status Failed`.
fn filter_words(filter: &ListArgs) -> String {
    let mut words = Vec::new();
    if let Some(task) = &filter.task {
        words.push(format!("task `{task}`"));
    }
    if let Some(pipeline) = &filter.pipeline {
        words.push(format!("pipeline `{pipeline}`"));
    }
    if let Some(status) = &filter.status {
        words.push(format!("status {status}"));
    }
    if words.is_empty() {
        "the filter".to_string()
    } else {
        words.join(", ")
    }
}

/// `results export`: the listed results as one table, to a file or standard output.
fn export(
    store: &Store,
    format: Option<ExportFormat>,
    output: Option<&Path>,
    filter: &ListArgs,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let format = match (format, output) {
        (Some(format), _) => format,
        (None, Some(path)) => match path.extension() {
            None => ExportFormat::Csv,
            Some(extension) => ExportFormat::of_path(path).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: grounds exports CSV (.csv), parquet (.parquet or .pq) and JSON (.json), not \
                     .{}; name the file with one of those, or give --format csv|parquet|json",
                    path.display(),
                    extension.to_string_lossy()
                )
            })?,
        },
        (None, None) => ExportFormat::Csv,
    };
    let rows = listed(store, filter, printer)?;
    let bytes = export::render(&rows, format)?;
    match output {
        Some(path) => {
            export::write_file(path, &bytes)?;
            printer.stage(
                "Exported",
                &format!(
                    "{} results, {} columns to {}",
                    rows.len(),
                    export::column_count(&rows),
                    path.display()
                ),
            );
            printer.json(&ExportAnswer {
                path: path.to_path_buf(),
                format,
                results: rows.len(),
                columns: export::column_count(&rows),
            });
        }
        None if format == ExportFormat::Parquet => {
            bail!("parquet is binary: give a file to write it to, e.g. -o results.parquet")
        }
        // The export is the answer, in its own format, whatever --json says.
        None => printer.raw(&bytes),
    }
    Ok(Exit::Success)
}

/// `results plot`: the metric series of one or more results as a picture.
fn plot(
    store: &Store,
    prefixes: &[String],
    metrics: &[String],
    output: Option<PathBuf>,
    axis: answers::plot::Axis,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let ids = store.resolve_all(prefixes)?;
    let stored: Vec<_> = ids
        .iter()
        .map(|id| store.read(id))
        .collect::<anyhow::Result<_>>()?;
    let path = match output {
        Some(path) => path,
        None => {
            let dir = store.home.join("plots");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let name = if ids.len() == 1 {
                ids[0].clone()
            } else {
                format!("{}-and-{}-more", ids[0], ids.len() - 1)
            };
            dir.join(format!("{name}.png"))
        }
    };
    let drawn = answers::plot::draw(&stored, metrics, axis, &path)?;
    printer.stage(
        "Plotted",
        &format!(
            "{} of {} result(s): {}",
            plural(drawn.metrics.len(), "metric"),
            ids.len(),
            path.display()
        ),
    );
    printer.json(&PlotAnswer {
        path: path.clone(),
        metrics: drawn.metrics.clone(),
        series: drawn.series,
        results: ids.clone(),
    });
    printer.out(&path.display().to_string());
    Ok(Exit::Success)
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("1 {word}")
    } else {
        format!("{count} {word}s")
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
    let (json, text) = answers::results::compare(&stored);
    printer.json(&json);
    printer.out(&text);
    Ok(Exit::Success)
}

fn show(store: &Store, prefix: &str, printer: &Printer) -> anyhow::Result<Exit> {
    let id = store.resolve(prefix)?;
    let stored = store.read(&id)?;
    let (json, text) = answers::results::show(&stored);
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
    // A damaged zip (its job.json names another result) is refused before anything is unpacked.
    store.read(&id)?;
    let limits = Limits {
        max_bytes,
        ..Limits::default()
    };
    let (dest, ours) = match to {
        Some(dir) => (dir, false),
        None => (store.open_dir(&id), true),
    };
    // Two openings of one result at once: the second waits and finds the first's folder whole.
    let _opening = match dest.parent() {
        Some(parent) if ours => {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
            Some(
                grounds_job::owner::Hold::wait(
                    &parent.join(format!(".{id}.lock")),
                    grounds_job::owner::HoldKind::Exclusive,
                )
                .with_context(|| format!("locking the opening of {id}"))?,
            )
        }
        _ => None,
    };
    let opened = store.open_into(&id, &dest, ours, limits)?;
    let stored = store.read(&id)?;
    let (done, json, text) = answers::results::opened(&id, &opened, &stored);
    printer.stage("Opened", &done);
    printer.json(&json);
    printer.out(&text);
    Ok(Exit::Success)
}
