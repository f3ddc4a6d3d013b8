//! `grounds train attached TASK`: package the task, run it, store the result, print what it did.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::json;

use super::Exit;
use crate::cli::TrainArgs;
use crate::executors::attached::AttachedJob;
use crate::fingerprint::fingerprint;
use crate::printer::{self, Printer, Reporter};
use crate::results::{JobRecord, Mode, ResultContents, Status};
use crate::settings::TrainSettings;
use crate::task::Runner;

pub async fn run(args: TrainArgs, mode: Mode, printer: &Printer) -> anyhow::Result<Exit> {
    let settings = TrainSettings::resolve(&args, mode)?;
    let task = &settings.task;
    let package = crate::package::build(task)?;
    let fingerprint = fingerprint(&package.info, &task.spec, &task.channels, mode)?;
    if settings.dry_run {
        let plan = settings.plan(&package.info, &fingerprint);
        // The plan is the answer of a dry run, whatever the output format.
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(Exit::Success);
    }
    let what = match &task.spec.runner {
        Runner::Command(command) => format!("`{}`", command.run.join(" ")),
        Runner::Builtin(builtin) => format!(
            "builtin {} {} on `{}`",
            serde_json::to_value(builtin.kind)?
                .as_str()
                .unwrap_or_default(),
            serde_json::to_value(builtin.model)?
                .as_str()
                .unwrap_or_default(),
            builtin.label
        ),
    };
    printer.stage(
        "Packaged",
        &format!(
            "{} {} ({} files, {})",
            package.info.name,
            package.info.version,
            package.info.files,
            short_hash(&package.info.content_hash)
        ),
    );
    let reservation = settings.store.reserve(&task.spec.name)?;
    let id = reservation.id.clone();
    let work = tempfile::Builder::new()
        .prefix(&format!("grounds-{id}-"))
        .tempdir()
        .context("creating a temporary folder for the job")?;
    printer.stage("Running", &format!("{id} {mode}: {what}"));
    let job = AttachedJob {
        id: &id,
        task,
        package: &package,
        work: work.path(),
        grace: settings.grace,
    };
    let outcome = job.run(printer).await?;

    let record = JobRecord {
        id: id.clone(),
        mode,
        status: outcome.status,
        task: task.spec.clone(),
        task_file: task.file.display().to_string(),
        hyperparameters: task.spec.hyperparameters.clone(),
        channels: settings.channel_sources(),
        hosts: outcome.hosts.clone(),
        started_at: outcome.started_at,
        ended_at: Some(outcome.ended_at),
        duration_seconds: Some(
            (outcome.ended_at - outcome.started_at).num_milliseconds() as f64 / 1000.0,
        ),
        exit_code: outcome.exit_code,
        failure_reason: outcome.failure_reason.clone(),
        fingerprint,
        package: package.info.clone(),
        grounds_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let layout = job.layout();
    let logs = job.logs_path();
    let path = reservation.commit(&ResultContents {
        job: &record,
        package: &package,
        metrics: &outcome.metrics,
        logs: &logs,
        model_dir: &layout.model_dir(),
        output_dir: &layout.output_dir(),
    })?;
    drop(work);

    let finals = outcome.metrics.finals();
    printer.json(&json!({
        "id": id,
        "status": record.status,
        "mode": mode,
        "metrics": finals,
        "result": path,
        "reused": false,
        "exit_code": record.exit_code,
        "failure_reason": record.failure_reason,
        "duration_seconds": record.duration_seconds,
        "fingerprint": record.fingerprint,
    }));
    printer.out(&summary(&record, &finals, &path));
    Ok(match record.status {
        Status::Completed => Exit::Success,
        Status::Stopped => Exit::Stopped,
        Status::Failed | Status::InProgress => Exit::JobFailed,
    })
}

fn short_hash(hash: &str) -> &str {
    &hash[..hash.len().min(19)]
}

fn summary(record: &JobRecord, metrics: &BTreeMap<String, f64>, path: &std::path::Path) -> String {
    let mut text = String::new();
    text.push_str(&format!("id:      {}\n", record.id));
    text.push_str(&format!(
        "status:  {} ({:.1}s, exit code {})\n",
        record.status,
        record.duration_seconds.unwrap_or(0.0),
        record
            .exit_code
            .map_or("none".to_string(), |c| c.to_string())
    ));
    if let Some(reason) = &record.failure_reason {
        let mut lines = reason.lines();
        text.push_str(&format!("reason:  {}\n", lines.next().unwrap_or("")));
        for line in lines {
            text.push_str(&format!("         {line}\n"));
        }
    }
    text.push_str(&format!("result:  {}\n", path.display()));
    if !metrics.is_empty() {
        text.push('\n');
        let rows: Vec<Vec<String>> = metrics
            .iter()
            .map(|(k, v)| vec![k.clone(), printer::metric_value(*v)])
            .collect();
        text.push_str(&printer::table(&["METRIC", "VALUE"], &rows));
    }
    text
}
