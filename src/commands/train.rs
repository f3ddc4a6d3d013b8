//! `grounds train attached|local TASK`: package the task, run it, store the result, print what it did.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::json;

use super::Exit;
use crate::cli::{LocalArgs, TrainArgs};
use crate::executors::attached::AttachedJob;
use crate::executors::local::LocalJob;
use crate::fingerprint::fingerprint;
use crate::image;
use crate::printer::{self, Printer, Reporter};
use crate::results::{JobRecord, Mode, ResultContents, Status};
use crate::settings::TrainSettings;
use crate::task::Runner;

pub async fn run(
    args: TrainArgs,
    local: Option<LocalArgs>,
    mode: Mode,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let settings = TrainSettings::resolve(&args, local.as_ref(), mode)?;
    let task = &settings.task;
    let package = crate::package::build(task)?;
    let fingerprint = fingerprint(&package.info, &task.spec, &task.channels, mode)?;
    let image = match mode {
        Mode::Local | Mode::Remote => Some(image::plan(
            task,
            &package,
            &settings.container.entry_binary,
        )?),
        Mode::Attached => None,
    };
    if settings.dry_run {
        let mut plan = settings.plan(&package.info, &fingerprint);
        if let Some(image) = &image {
            let job = local_job(&settings, "<id>", std::path::Path::new("<work>"));
            plan["image"] = serde_json::to_value(image)?;
            plan["containers"] = serde_json::to_value(job.plan(&image.tag, printer)?)?;
        }
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
            "{} {} ({} source files, {})",
            package.info.name,
            package.info.version,
            package.info.files,
            short_hash(&package.info.content_hash)
        ),
    );
    // Everything that can fail before the job runs fails before an id is taken.
    let docker = match &image {
        Some(image) => {
            let docker = crate::docker::connect().await?;
            image::ensure(&docker, image, &package, printer).await?;
            Some(docker)
        }
        None => None,
    };
    let reservation = settings.store.reserve(&task.spec.name)?;
    let id = reservation.id.clone();
    let work = tempfile::Builder::new()
        .prefix(&format!("grounds-{id}-"))
        .tempdir()
        .context("creating a temporary folder for the job")?;
    printer.stage("Running", &format!("{id} {mode}: {what}"));
    let (outcome, layout, logs) = match (mode, &docker, &image) {
        (Mode::Local, Some(docker), Some(image)) => {
            let job = local_job(&settings, &id, work.path());
            let plan = job.plan(&image.tag, printer)?;
            let outcome = job.run(docker, &plan, printer).await?;
            (outcome, job.merged(), job.logs_path())
        }
        (Mode::Attached, _, _) => {
            let job = AttachedJob {
                id: &id,
                task,
                package: &package,
                work: work.path(),
                grace: settings.grace,
            };
            let outcome = job.run(printer).await?;
            (outcome, job.layout(), job.logs_path())
        }
        _ => anyhow::bail!("`train {mode}` is not available yet"),
    };

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
        remote: None,
    };
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
        "image": image.as_ref().map(|i| &i.tag),
    }));
    printer.out(&summary(&record, &finals, &path));
    Ok(match record.status {
        Status::Completed => Exit::Success,
        Status::Stopped => Exit::Stopped,
        Status::Failed | Status::InProgress => Exit::JobFailed,
    })
}

fn local_job<'a>(
    settings: &'a TrainSettings,
    id: &'a str,
    work: &'a std::path::Path,
) -> LocalJob<'a> {
    LocalJob {
        id,
        task: &settings.task,
        work,
        grace: settings.grace,
        instance_count: settings.container.instance_count,
        user: settings.container.user,
    }
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
