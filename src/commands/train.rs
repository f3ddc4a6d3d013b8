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

/// What one run of a task came to.
pub enum Ran {
    /// `--dry-run`: the plan.
    Plan(serde_json::Value),
    /// A completed twin stands in for the run.
    Reused(crate::results::Stored),
    /// The job ran; its record and result.
    Done {
        record: JobRecord,
        finals: BTreeMap<String, f64>,
        path: std::path::PathBuf,
        image: Option<String>,
    },
}

/// Packages, builds, runs and stores one job of `settings.task`, named `<base>-<stamp>`.
async fn execute(
    settings: &TrainSettings,
    base: &str,
    printer: &dyn Reporter,
) -> anyhow::Result<Ran> {
    let mode = settings.mode;
    let task = &settings.task;
    let package = crate::package::build(task, printer)?;
    let image = match mode {
        Mode::Local | Mode::Remote => Some(image::plan(
            task,
            &package,
            &settings.container.entry_binary,
        )?),
        Mode::Attached => None,
    };
    let image_identity = match &image {
        // An image of the user's: what it is, not what it is called, decides what runs.
        Some(plan) if plan.given => {
            let docker = crate::docker::connect().await?;
            match crate::docker::image_id(&docker, &plan.tag).await? {
                Some(id) => Some(id),
                None => {
                    return Err(image::ImageError::GivenImageMissing {
                        image: plan.tag.clone(),
                    }
                    .into())
                }
            }
        }
        Some(plan) => Some(plan.tag.clone()),
        None => None,
    };
    let fingerprint = fingerprint(
        &package.info,
        &task.spec,
        &task.channels,
        mode,
        &settings.shape(image_identity),
        &settings.data,
    )?;
    let twin = if settings.force {
        None
    } else {
        settings.store.find_completed(&fingerprint, mode)?
    };
    if settings.dry_run {
        let mut plan = settings.plan(&package.info, &fingerprint);
        plan["reuses"] = serde_json::to_value(twin.as_ref().map(|t| &t.job.id))?;
        if let Some(image) = &image {
            let gpus = settings.container.gpus.or(settings
                .container
                .gpu_instance
                .then_some(crate::cli::Gpus::All));
            let job = local_job(settings, "<id>", std::path::Path::new("<work>"), gpus);
            plan["image"] = serde_json::to_value(image)?;
            plan["containers"] = serde_json::to_value(job.plan(&image.tag, printer)?)?;
        }
        return Ok(Ran::Plan(plan));
    }
    if let Some(twin) = twin {
        say_reused(&twin, printer);
        return Ok(Ran::Reused(twin));
    }
    let what = match &task.spec.runner {
        Runner::Command(command) => format!("`{}`", command.run.join(" ")),
        Runner::Image(image) => format!("image {}", image.uri),
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
    let mut gpus = None;
    let docker = match &image {
        Some(image) => {
            let docker = crate::docker::connect().await?;
            if mode == Mode::Local {
                gpus = local_gpus(settings, &docker, printer).await?;
            }
            let orphans = crate::docker::remove_orphans(&docker).await;
            if !orphans.is_empty() {
                printer.stage(
                    "Removed",
                    &format!(
                        "{} leftover(s) of runs whose grounds process is gone: {}",
                        orphans.len(),
                        orphans.join(", ")
                    ),
                );
            }
            image::ensure(&docker, image, &package, printer).await?;
            Some(docker)
        }
        None => None,
    };
    let reservation = settings.store.reserve(base)?;
    let id = reservation.id.clone();
    let work =
        crate::owner::WorkDir::new(&id).context("creating a temporary folder for the job")?;
    printer.stage("Running", &format!("{id} {mode}: {what}"));
    let (outcome, logs) = match (mode, &docker, &image) {
        (Mode::Local, Some(docker), Some(image)) => {
            let job = local_job(settings, &id, work.path(), gpus);
            let plan = job.plan(&image.tag, printer)?;
            let outcome = job.run(docker, &plan, printer).await?;
            (outcome, job.logs_path())
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
            (outcome, job.logs_path())
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
        left_out: Vec::new(),
    };
    let finals = outcome.metrics.finals();
    let (path, record) = reservation.commit(ResultContents {
        job: &record,
        package: &package,
        metrics: &outcome.metrics,
        logs: &logs,
        files: outcome.files,
    })?;
    drop(work);
    say_left_out(&record, printer);

    Ok(Ran::Done {
        record,
        finals,
        path,
        image: image.map(|i| i.tag),
    })
}

impl Ran {
    /// The `--json` answer and the text for people.
    pub fn answer(&self) -> (serde_json::Value, String, Status) {
        match self {
            Ran::Plan(plan) => (
                plan.clone(),
                serde_json::to_string_pretty(plan).unwrap_or_default(),
                Status::Completed,
            ),
            Ran::Reused(twin) => {
                let finals = twin.metrics.finals();
                let text = format!(
                    "reused:  yes (nothing changed since this result)\n{}",
                    summary(&twin.job, &finals, &twin.path)
                );
                (
                    answer(&twin.job, &finals, &twin.path, true),
                    text,
                    twin.job.status,
                )
            }
            Ran::Done {
                record,
                finals,
                path,
                image,
            } => {
                let mut json = answer(record, finals, path, false);
                json["image"] = json!(image);
                (json, summary(record, finals, path), record.status)
            }
        }
    }
}

/// Lists the task's `s3://` channels (their ETags go into the fingerprint); with `download` (attached
/// and local runs, which read local data) fetches them into `$GROUNDS_HOME/cache/s3` and points the
/// channels at the copies. A dry run lists and downloads nothing.
pub async fn with_s3_channels(
    settings: TrainSettings,
    download: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<TrainSettings> {
    let uris = settings.s3_channels();
    if uris.is_empty() {
        return Ok(settings);
    }
    crate::aws::apply_dotenv(&settings.task.file);
    let aws = crate::aws::Aws::connect(
        settings.aws.profile.as_deref(),
        settings.aws.region.as_deref(),
    )
    .await
    .with_context(|| {
        format!(
            "channels {} are in S3, which needs AWS settings",
            uris.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let cache = settings.store.home.join("cache").join("s3");
    let resolved = crate::s3cache::resolve(
        &aws.s3(),
        &uris,
        &cache,
        download && !settings.dry_run,
        reporter,
    )
    .await?;
    let mut settings = if download {
        settings.with_local_channels(&resolved.folders)
    } else {
        settings
    };
    settings.data = resolved
        .channels
        .iter()
        .map(|(name, channel)| (name.clone(), format!("{} {}", channel.uri, channel.identity)))
        .collect();
    Ok(settings)
}

/// Removes what runs killed before they could clean up left behind: staging files in the store and job
/// roots in the temp folder whose owner is gone.
pub fn clean_leftovers(store: &crate::results::Store, reporter: &dyn Reporter) {
    let swept = crate::owner::sweep(&store.results_dir(), &std::env::temp_dir());
    if !swept.removed.is_empty() {
        reporter.stage(
            "Cleaned",
            &format!(
                "{} leftover(s) of runs whose grounds process is gone: {}",
                swept.removed.len(),
                swept
                    .removed
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    for (path, why) in swept.failed {
        reporter.warn(&format!(
            "could not remove {}, left by a run that is gone: {why}",
            path.display()
        ));
    }
}

/// Names what the job left that is not in its result.
pub fn say_left_out(record: &JobRecord, reporter: &dyn Reporter) {
    if record.left_out.is_empty() {
        return;
    }
    let shown: Vec<String> = record
        .left_out
        .iter()
        .take(5)
        .map(|l| format!("{} ({})", l.path, l.reason))
        .collect();
    reporter.warn(&format!(
        "{} file(s) the job left are not in its result: {}{}; `grounds results show {}` lists them",
        record.left_out.len(),
        shown.join("; "),
        if record.left_out.len() > 5 { "; …" } else { "" },
        record.id
    ));
}

pub fn say_reused(twin: &crate::results::Stored, reporter: &dyn Reporter) {
    reporter.stage(
        "Reused",
        &format!(
            "{} (completed {}): same code, task, hyperparameters, data and mode; --force runs again",
            twin.job.id,
            twin.job.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
    );
}

/// When a run is no sweep: the settings of its one job, with any single-valued `--set` applied.
pub fn single_member(
    settings: &TrainSettings,
    members: &[crate::sweep::Member],
) -> anyhow::Result<Option<TrainSettings>> {
    match members {
        [only] if only.auto_name.is_none() => {
            let task = settings.task.clone().with_overrides(&only.overrides)?;
            Ok(Some(settings.with_task(task)?))
        }
        _ => Ok(None),
    }
}

/// The sweep parameters: the task's `[sweep]`, with `--set` adding or replacing; a value given twice
/// runs once (and is said so).
pub fn sweep_parameters(
    settings: &TrainSettings,
    args: &TrainArgs,
    reporter: &dyn Reporter,
) -> Vec<(String, Vec<String>)> {
    let mut parameters = settings.task.sweep.clone();
    for (name, values) in &args.sweep {
        match parameters.iter_mut().find(|(n, _)| n == name) {
            Some(existing) => existing.1 = values.clone(),
            None => parameters.push((name.clone(), values.clone())),
        }
    }
    let (parameters, notes) = crate::sweep::without_repeats(parameters);
    for note in notes {
        reporter.warn(&note);
    }
    parameters
}

pub async fn run(
    args: TrainArgs,
    local: Option<LocalArgs>,
    mode: Mode,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let settings = TrainSettings::resolve(
        &args,
        local.as_ref().map(|l| &l.image),
        local.as_ref(),
        mode,
    )?;
    crate::settings::warn_about_env_secrets(&settings.task, printer);
    clean_leftovers(&settings.store, printer);
    // Channels in S3 are read from a local copy, fetched once for every member.
    let settings = with_s3_channels(settings, true, printer).await?;
    let parameters = sweep_parameters(&settings, &args, printer);
    let members = crate::sweep::members(&parameters);
    if let Some(single) = single_member(&settings, &members)? {
        let ran = execute(&single, &single.task.spec.name, printer).await?;
        let (json, text, status) = ran.answer();
        if let Ran::Plan(plan) = &ran {
            // The plan is the answer of a dry run, whatever the output format.
            println!("{}", serde_json::to_string_pretty(plan)?);
            return Ok(Exit::Success);
        }
        printer.json(&json);
        printer.out(&text);
        return Ok(exit_for(status));
    }
    run_sweep(&settings, &args, members, printer).await
}

/// A sweep member, checked and ready to run.
pub struct PreparedMember {
    pub name: String,
    pub base: String,
    pub settings: TrainSettings,
    pub overrides: Vec<(String, String)>,
}

/// Checks every member before any runs.
pub fn prepare_members(
    settings: &TrainSettings,
    members: &[crate::sweep::Member],
) -> anyhow::Result<Vec<PreparedMember>> {
    members
        .iter()
        .map(|member| {
            let task = settings.task.clone().with_overrides(&member.overrides)?;
            Ok(PreparedMember {
                name: member.auto_name.clone().unwrap_or_default(),
                base: crate::sweep::base_name(
                    &settings.task.spec.name,
                    member.auto_name.as_deref(),
                ),
                settings: settings.with_task(task)?,
                overrides: member.overrides.clone(),
            })
        })
        .collect()
}

/// What a member's run answered: its `--json` object, its text and its status.
pub type MemberAnswer = anyhow::Result<(serde_json::Value, String, Status)>;

/// Runs every member of a sweep, `--parallel` at a time; one failing member does not stop the others.
async fn run_sweep(
    settings: &TrainSettings,
    args: &TrainArgs,
    members: Vec<crate::sweep::Member>,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    use futures_util::StreamExt;
    let parallel = args
        .parallel
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    printer.stage(
        "Sweeping",
        &format!(
            "{} members of {}, {parallel} at a time",
            members.len(),
            settings.task.spec.name
        ),
    );
    let prepared = prepare_members(settings, &members)?;
    let mut answers: Vec<(usize, MemberAnswer)> =
        futures_util::stream::iter(prepared.iter().enumerate().map(|(index, member)| async move {
            let reporter = MemberReporter {
                inner: printer,
                name: &member.name,
            };
            let answer = execute(&member.settings, &member.base, &reporter)
                .await
                .map(|ran| ran.answer());
            (index, answer)
        }))
        .buffer_unordered(parallel)
        .collect()
        .await;
    // In the members' order, whatever order they ended in.
    answers.sort_by_key(|(index, _)| *index);
    let answers = answers.into_iter().map(|(_, answer)| answer).collect();
    sweep_table(settings, args, &prepared, answers, printer)
}

/// The end of a sweep: one row per member (as a table, or a JSON array), and whether all completed.
/// `answers` are in the order of `prepared`.
pub fn sweep_table(
    settings: &TrainSettings,
    args: &TrainArgs,
    prepared: &[PreparedMember],
    answers: Vec<MemberAnswer>,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let varying = crate::sweep::varying(
        &prepared
            .iter()
            .map(|m| m.overrides.clone())
            .collect::<Vec<_>>(),
    );
    let mut rows = Vec::new();
    let mut all_completed = true;
    for (member, answer) in prepared.iter().zip(answers) {
        let hyperparameters: BTreeMap<_, _> = member
            .overrides
            .iter()
            .filter(|(k, _)| varying.contains(k))
            .cloned()
            .collect();
        let mut row = json!({"name": member.name, "hyperparameters": hyperparameters});
        match answer {
            Ok((answer, _, status)) => {
                // A detached remote member is submitted, which is all that was asked.
                all_completed &= matches!(status, Status::Completed | Status::InProgress);
                for (key, value) in answer.as_object().into_iter().flatten() {
                    row[key] = value.clone();
                }
            }
            Err(error) => {
                all_completed = false;
                row["status"] = json!("Error");
                row["error"] = json!(format!("{error:#}"));
            }
        }
        rows.push(row);
    }
    if let Some(metric) = &args.sort {
        rows.sort_by(|a, b| {
            let value = |r: &serde_json::Value| crate::metrics::value::from_json(&r["metrics"][metric])
                .filter(|_| !r["metrics"][metric].is_null());
            crate::metrics::rank(value(a), value(b), true)
        });
    }
    if settings.dry_run {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Exit::Success);
    }
    printer.json(&rows);
    let metric_names: std::collections::BTreeSet<String> = rows
        .iter()
        .flat_map(|r| {
            r["metrics"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
        })
        .collect();
    let mut header: Vec<String> = vec!["NAME".into(), "ID".into(), "STATUS".into()];
    header.extend(varying.iter().cloned());
    header.extend(metric_names.iter().cloned());
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r["name"].as_str().unwrap_or_default().to_string(),
                r["id"].as_str().unwrap_or("-").to_string(),
                format!(
                    "{}{}",
                    r["status"].as_str().unwrap_or_default(),
                    if r["reused"] == true { " (reused)" } else { "" }
                ),
            ];
            cells.extend(varying.iter().map(|k| {
                r["hyperparameters"][k]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }));
            cells.extend(metric_names.iter().map(|m| {
                Some(&r["metrics"][m])
                    .filter(|v| !v.is_null())
                    .and_then(crate::metrics::value::from_json)
                    .map(printer::metric_value)
                    .unwrap_or_else(|| "-".into())
            }));
            cells
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    printer.out(&printer::table(&header, &table_rows));
    for row in rows.iter().filter(|r| r["error"].is_string()) {
        printer.error(&format!(
            "{}: {}",
            row["name"].as_str().unwrap_or_default(),
            row["error"].as_str().unwrap_or_default()
        ));
    }
    Ok(if all_completed {
        Exit::Success
    } else {
        Exit::JobFailed
    })
}

/// A member's output, prefixed with its name so that parallel members can be told apart.
pub struct MemberReporter<'a> {
    pub inner: &'a Printer,
    pub name: &'a str,
}

impl Reporter for MemberReporter<'_> {
    fn stage(&self, stage: &str, detail: &str) {
        self.inner
            .stage(stage, &format!("[{}] {detail}", self.name));
    }
    fn job_line(&self, host: Option<&str>, line: &str) {
        match host {
            Some(host) => self
                .inner
                .job_line(Some(&format!("{}/{host}", self.name)), line),
            None => self.inner.job_line(Some(self.name), line),
        }
    }
    fn warn(&self, message: &str) {
        self.inner.warn(&format!("[{}] {message}", self.name));
    }
}

/// The `--json` answer of a train command.
pub fn answer(
    record: &JobRecord,
    finals: &BTreeMap<String, f64>,
    path: &std::path::Path,
    reused: bool,
) -> serde_json::Value {
    json!({
        "id": record.id,
        "status": record.status,
        "mode": record.mode,
        "metrics": crate::metrics::value::map_to_json(finals),
        "result": path,
        "reused": reused,
        "exit_code": record.exit_code,
        "failure_reason": record.failure_reason,
        "duration_seconds": record.duration_seconds,
        "fingerprint": record.fingerprint,
        "left_out": record.left_out,
    })
}

/// The exit code for a job's status.
pub fn exit_for(status: Status) -> Exit {
    match status {
        Status::Completed => Exit::Success,
        Status::Stopped => Exit::Stopped,
        Status::Failed => Exit::JobFailed,
        // A detached remote job: submitted is success.
        Status::InProgress => Exit::Success,
    }
}

fn local_job<'a>(
    settings: &'a TrainSettings,
    id: &'a str,
    work: &'a std::path::Path,
    gpus: Option<crate::cli::Gpus>,
) -> LocalJob<'a> {
    LocalJob {
        id,
        task: &settings.task,
        work,
        grace: settings.grace,
        instance_count: settings.container.instance_count,
        user: settings.container.user,
        gpus,
    }
}

/// The GPUs a local run asks for: `--gpus` (an error, before anything runs, where the engine has no
/// GPU runtime), else every GPU for a GPU `[remote] instance_type` where the engine offers them.
async fn local_gpus(
    settings: &TrainSettings,
    docker: &bollard::Docker,
    reporter: &dyn Reporter,
) -> anyhow::Result<Option<crate::cli::Gpus>> {
    let container = &settings.container;
    if container.gpus.is_none() && !container.gpu_instance {
        return Ok(None);
    }
    let offered = crate::docker::offers_gpus(docker).await?;
    match (container.gpus, offered) {
        (Some(gpus), true) => Ok(Some(gpus)),
        (Some(gpus), false) => anyhow::bail!(
            "--gpus {gpus}: the Docker engine at {} has no GPU runtime (NVIDIA Container Toolkit), so it \
             cannot give containers GPUs; install the toolkit there, or run without --gpus",
            crate::docker::engine_address()
        ),
        (None, true) => {
            reporter.stage("GPUs", "all the engine offers, for the GPU instance type");
            Ok(Some(crate::cli::Gpus::All))
        }
        (None, false) => {
            reporter.warn(&format!(
                "[remote] instance_type {} has GPUs, but the Docker engine offers none: this run uses \
                 the CPU only (SM_NUM_GPUS=0)",
                settings.task.spec.remote.instance_type.as_deref().unwrap_or_default()
            ));
            Ok(None)
        }
    }
}

fn short_hash(hash: &str) -> &str {
    &hash[..hash.len().min(19)]
}

pub fn summary(
    record: &JobRecord,
    metrics: &BTreeMap<String, f64>,
    path: &std::path::Path,
) -> String {
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
    if !record.left_out.is_empty() {
        text.push_str(&format!(
            "left out: {} file(s) the job left (see `grounds results show {}`)\n",
            record.left_out.len(),
            record.id
        ));
    }
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
