//! The job pipeline, written once for every mode: package, prepare what runs it, fingerprint, reuse, dry
//! run, get ready, reserve an id, launch, wait, commit; for one job, for every member of a sweep, and for
//! a job launched earlier that is fetched now. It drives an [`Executor`], returns data, and never renders:
//! the commands print what it returns.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::task::Runner;
use crate::executors::{Ended, Executor, Job, Launched, ModeFacts, ModePlan, Reattach};
use crate::job::fingerprint::fingerprint;
use crate::job::metrics::Metrics;
use crate::job::package::Package;
use crate::job::{JobRecord, Started as StartedRecord, Status, Waited};
use crate::printer::{Progress, Reporter};
use crate::settings::TrainSettings;
use crate::store::results::{Reservation, ResultContents, Store, Stored};
use grounds_job::owner::WorkDir;

/// A `--dry-run` plan of one job: what would run, and where (see `crate::answers::schema`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    #[serde(flatten)]
    pub common: crate::settings::CommonPlan,
    /// The completed result that would stand in for the run.
    pub reuses: Option<String>,
    #[serde(flatten)]
    pub mode: ModePlan,
}

/// What one job came to.
pub enum Ran {
    /// `--dry-run`: the plan.
    Plan(Box<Plan>),
    /// A completed twin stands in for the run.
    Reused(Stored),
    /// The job ran and ended; its record, final metrics, result and the mode's facts for the answer.
    Done {
        record: JobRecord,
        finals: BTreeMap<String, f64>,
        path: PathBuf,
        facts: ModeFacts,
    },
    /// The job goes on elsewhere; its result is stored as `InProgress`.
    Detached {
        record: JobRecord,
        path: PathBuf,
        facts: ModeFacts,
    },
}

/// A job launched and not yet waited for.
pub struct Running<E: Executor> {
    settings: TrainSettings,
    package: Package,
    fingerprint: String,
    channel_hashes: crate::job::fingerprint::ChannelHashes,
    prepared: E::Prepared,
    reservation: Reservation,
    work: WorkDir,
    record: JobRecord,
    handle: E::Handle,
}

/// How far `start` took a job: to an answer already (a plan, a reuse), or to a launch.
/// Ctrl-C (or SIGTERM, SIGHUP) while a mode got ready (an image build, a push, an upload): nothing ran,
/// nothing is kept; the command exits as a stopped run does.
#[derive(Debug, thiserror::Error)]
#[error("stopped ({}) while getting the job ready (building, pushing or uploading): nothing ran, and nothing of it is kept", grounds_job::signals::name(*.signal))]
pub struct StoppedBeforeRunning {
    pub signal: i32,
}

/// A mode's `ready` until it ends or a stop signal comes: then its work is dropped (a build's context,
/// the package: temporary files, removed as they are dropped) and the answer is [`StoppedBeforeRunning`].
async fn ready_or_stopped<T>(
    ready: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let Ok(mut stops) = grounds_job::signals::StopSignals::listen() else {
        return ready.await;
    };
    tokio::select! {
        result = ready => result,
        signal = stops.recv() => Err(StoppedBeforeRunning { signal }.into()),
    }
}

pub enum Begun<E: Executor> {
    Answered(Box<Ran>),
    Launched(Box<Running<E>>),
}

fn describe(settings: &TrainSettings) -> String {
    match &settings.task.spec.runner {
        Runner::Command(command) => format!("`{}`", command.run.join(" ")),
        Runner::Image(image) => format!("image {}", image.uri),
        Runner::Builtin(builtin) => format!(
            "builtin {} {} on `{}`",
            serde_json::to_value(builtin.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            serde_json::to_value(builtin.model)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            builtin.label
        ),
    }
}

/// Everything up to the launch: nothing that can fail before the job runs fails after an id is taken.
pub async fn start<E: Executor>(
    executor: &E,
    settings: &TrainSettings,
    base: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<Begun<E>> {
    let mode = executor.mode();
    let task = &settings.task;
    let package = crate::job::package::build(task, reporter)?;
    let prepared = executor.prepare(settings, &package).await?;
    let (fingerprint, channel_hashes) = fingerprint(
        &package.info,
        &task.spec,
        &task.channels,
        mode,
        &executor.shape(settings, &prepared),
        &settings.data,
        &settings.store.hash_cache(),
    )?;
    let twin = if settings.force {
        None
    } else {
        settings.store.find_completed(&fingerprint, mode)?
    };
    let job = Job {
        settings,
        package: &package,
        fingerprint: &fingerprint,
        channel_hashes: &channel_hashes,
        prepared: &prepared,
    };
    if settings.dry_run {
        let plan = Plan {
            common: settings.dry_run_plan(&package.info, &fingerprint),
            reuses: twin.as_ref().map(|t| t.job.id.clone()),
            mode: executor.dry_run(&job, reporter).await?,
        };
        return Ok(Begun::Answered(Box::new(Ran::Plan(Box::new(plan)))));
    }
    if let Some(twin) = twin {
        say_reused(&twin, reporter);
        return Ok(Begun::Answered(Box::new(Ran::Reused(twin))));
    }
    reporter.stage(
        "Packaged",
        &format!(
            "{} {} ({} source files, {})",
            package.info.name,
            package.info.version,
            package.info.files,
            package
                .info
                .content_hash
                .chars()
                .take(19)
                .collect::<String>()
        ),
    );
    let ready = ready_or_stopped(executor.ready(&job, reporter)).await?;
    let reservation = settings.store.reserve(base)?;
    let id = reservation.id.clone();
    let work = WorkDir::new(&id).context("creating a temporary folder for the job")?;
    reporter.stage("Running", &format!("{id} {mode}: {}", describe(settings)));
    let Launched {
        handle,
        placement,
        hosts,
        image,
    } = executor
        .launch(&job, ready, &id, work.path(), reporter)
        .await?;
    let record = JobRecord::started(StartedRecord {
        id: &id,
        placement,
        task: &task.spec,
        task_file: &task.file,
        channels: settings.channel_sources(),
        inputs: settings.inputs.clone(),
        pipeline: settings.pipeline.clone(),
        hosts,
        image,
        fingerprint: &fingerprint,
        package: &package.info,
    });
    Ok(Begun::Launched(Box::new(Running {
        settings: settings.clone(),
        package,
        fingerprint,
        channel_hashes,
        prepared,
        reservation,
        work,
        record,
        handle,
    })))
}

/// Waits for a launched job and stores what it came to.
pub async fn finish<E: Executor>(
    executor: &E,
    running: Running<E>,
    reporter: &dyn Reporter,
) -> anyhow::Result<Ran> {
    let Running {
        settings,
        package,
        fingerprint,
        channel_hashes,
        prepared,
        reservation,
        work,
        record,
        handle,
    } = running;
    let job = Job {
        settings: &settings,
        package: &package,
        fingerprint: &fingerprint,
        channel_hashes: &channel_hashes,
        prepared: &prepared,
    };
    let ended = executor
        .wait(&job, handle, &record, work.path(), reporter)
        .await?;
    let ran = commit(reservation, record, &package, ended, reporter);
    drop(work);
    ran
}

/// One job, start to finish.
pub async fn run<E: Executor>(
    executor: &E,
    settings: &TrainSettings,
    base: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<Ran> {
    match start(executor, settings, base, reporter).await? {
        Begun::Answered(ran) => Ok(*ran),
        Begun::Launched(running) => finish(executor, *running, reporter).await,
    }
}

/// Stores how a job ended: its full result, or (detached) an `InProgress` one to be fetched later.
fn commit(
    reservation: Reservation,
    mut record: JobRecord,
    package: &Package,
    ended: Ended,
    reporter: &dyn Reporter,
) -> anyhow::Result<Ran> {
    let Ended { waited, facts } = ended;
    match waited {
        Waited::Ended(outcome) => {
            record.finish(&outcome);
            let finals = outcome.metrics.finals();
            let (path, record) = reservation.commit(ResultContents {
                job: &record,
                package,
                metrics: &outcome.metrics,
                logs: &outcome.logs,
                files: outcome.files,
            })?;
            say_left_out(&record, reporter);
            Ok(Ran::Done {
                record,
                finals,
                path,
                facts,
            })
        }
        Waited::Detached => {
            let empty = tempfile::tempdir()?;
            let logs = empty.path().join("logs.txt");
            std::fs::write(&logs, b"")?;
            let (path, record) = reservation.commit(ResultContents {
                job: &record,
                package,
                metrics: &Metrics::default(),
                logs: &logs,
                files: crate::job::collect::Collected::default(),
            })?;
            Ok(Ran::Detached {
                record,
                path,
                facts,
            })
        }
    }
}

/// What `results fetch` came to.
pub enum Fetched {
    /// The result was complete already.
    Already(Box<JobRecord>, PathBuf),
    /// The job is still running (with `--no-wait`): its status and secondary status.
    Running(Box<JobRecord>, Status, String),
    /// The job ended (`Ran::Done`: its result replaced the `InProgress` one), or Ctrl-C detached from it
    /// again (`Ran::Detached`: it stays `InProgress`).
    Ran(Box<Ran>),
}

/// `results fetch`: a job launched earlier that outlives grounds (`--detach`) is waited for again and its
/// result completed, through the mode that launched it.
pub async fn fetch(
    store: &Store,
    prefix: &str,
    no_wait: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<Fetched> {
    let id = store.resolve(prefix)?;
    let stored = store.read(&id)?;
    let record = stored.job;
    crate::executors::check_reattachable(&record)?;
    if record.status != Status::InProgress {
        return Ok(Fetched::Already(Box::new(record), stored.path));
    }
    let package = store.package(&id)?;
    let work = WorkDir::new(&id).context("creating a temporary folder for the job")?;
    let mode = crate::executors::reattach_to(&record).await?;
    if no_wait {
        let (status, secondary) = mode.status(&record).await?;
        if status == Status::InProgress {
            return Ok(Fetched::Running(Box::new(record), status, secondary));
        }
    }
    let waited = mode.reattach(&record, work.path(), reporter).await?;
    let facts = ModeFacts {
        image: None,
        remote: record.sagemaker().cloned(),
        submitted: Some(None),
    };
    let Waited::Ended(outcome) = waited else {
        return Ok(Fetched::Ran(Box::new(Ran::Detached {
            record,
            path: stored.path,
            facts,
        })));
    };
    let reservation = store.rewrite(&id)?;
    Ok(Fetched::Ran(Box::new(commit(
        reservation,
        record,
        &package,
        Ended::finished(outcome, facts),
        reporter,
    )?)))
}

pub fn say_reused(twin: &Stored, reporter: &dyn Reporter) {
    reporter.stage(
        "Reused",
        &format!(
            "{} (completed {}): same code, task, hyperparameters, data and mode; --force runs again",
            twin.job.id,
            twin.job.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
    );
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
        if record.left_out.len() > 5 {
            "; …"
        } else {
            ""
        },
        record.id
    ));
}

// ---- sweeps ------------------------------------------------------------------------------------------------

/// A sweep member, checked and ready to run.
pub struct Member {
    pub name: String,
    pub base: String,
    pub settings: TrainSettings,
    pub overrides: Vec<(String, String)>,
}

/// The members of a run: one unnamed member when nothing is swept, else one per combination; every
/// member is checked before any runs.
pub fn members(
    settings: &TrainSettings,
    parameters: &[(String, Vec<String>)],
) -> anyhow::Result<Vec<Member>> {
    crate::run::sweep::members(parameters)
        .into_iter()
        .map(|member| {
            let task = settings.task.clone().with_overrides(&member.overrides)?;
            Ok(Member {
                name: member.auto_name.clone().unwrap_or_default(),
                base: crate::run::sweep::base_name(
                    &settings.task.spec.name,
                    member.auto_name.as_deref(),
                ),
                settings: settings.with_task(task)?,
                overrides: member.overrides,
            })
        })
        .collect()
}

/// Runs every member: `parallel` at a time, or, for a mode whose jobs run elsewhere, every member launched
/// first and then each waited for. One failing member does not stop the others. In the members' order;
/// `done` counts the members that ended.
pub async fn run_sweep<E: Executor, R: Reporter>(
    executor: &E,
    members: &[Member],
    parallel: usize,
    reporter_for: impl Fn(&Member) -> R,
    done: &Progress<'_>,
) -> Vec<anyhow::Result<Ran>> {
    use futures_util::StreamExt;
    if executor.launch_all_first() {
        let mut begun = Vec::new();
        for member in members {
            let reporter = reporter_for(member);
            begun.push(start(executor, &member.settings, &member.base, &reporter).await);
        }
        let mut ran = Vec::new();
        for (member, begun) in members.iter().zip(begun) {
            let reporter = reporter_for(member);
            ran.push(match begun {
                Ok(Begun::Answered(answer)) => Ok(*answer),
                Ok(Begun::Launched(running)) => finish(executor, *running, &reporter).await,
                Err(error) => Err(error),
            });
            done.add(1);
        }
        return ran;
    }
    let reporter_for = &reporter_for;
    let mut ran: Vec<(usize, anyhow::Result<Ran>)> = futures_util::stream::iter(
        members
            .iter()
            .enumerate()
            .map(|(index, member)| async move {
                let reporter = reporter_for(member);
                let ran = run(executor, &member.settings, &member.base, &reporter).await;
                done.add(1);
                (index, ran)
            }),
    )
    .buffer_unordered(parallel.max(1))
    .collect()
    .await;
    ran.sort_by_key(|(index, _)| *index);
    ran.into_iter().map(|(_, ran)| ran).collect()
}

mod inputs;
#[cfg(test)]
mod tests;

pub use inputs::{with_result_channels, with_s3_channels};
