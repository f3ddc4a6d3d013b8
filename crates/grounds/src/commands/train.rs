//! `grounds train attached|local|remote TASK`: settings resolved, the mode's executor chosen, the job (or
//! every member of a sweep) sent through the pipeline, and what it came to printed.

use std::collections::BTreeSet;

use super::Exit;
use crate::answers;
use crate::cli::{LocalArgs, RemoteArgs, TrainArgs, TrainCommand};
use crate::config::task::Task;
use crate::executors::attached::AttachedExecutor;
use crate::executors::local::LocalExecutor;
use crate::executors::remote::RemoteExecutor;
use crate::executors::Executor;
use crate::job::{Mode, Status};
use crate::printer::{Measure, Printer, Progress, Reporter};
use crate::run::lifecycle::{self, Ran};
use crate::run::pipeline::run::{self as steps, Schedule};
use crate::run::pipeline::Flow;
use crate::settings::{ContainerSettings, RemoteSettings, TrainSettings};

/// Settings are resolved, and the `.env` beside the task applied, before the runtime starts (so no other
/// thread reads the environment while it changes); AWS is reached once for every member of a sweep.
pub fn run(command: TrainCommand, printer: &Printer) -> anyhow::Result<Exit> {
    let task_file = match &command {
        TrainCommand::Attached(args) => &args.task,
        TrainCommand::Local(args) => &args.train.task,
        TrainCommand::Remote(args) => &args.train.task,
    };
    let (dotenv, unread) = crate::cloud::aws::apply_dotenv(task_file);
    for warning in unread {
        printer.warn(&warning);
    }
    if crate::run::pipeline::is_pipeline_file(task_file) {
        return run_flow(command, &dotenv, printer);
    }
    match command {
        TrainCommand::Attached(args) => {
            let settings = TrainSettings::from_args(&args, Mode::Attached)?;
            super::block_on(train(&AttachedExecutor, settings, &args, printer))?
        }
        TrainCommand::Local(args) => {
            let settings = TrainSettings::from_args(&args.train, Mode::Local)?;
            let executor = local_executor(&settings.task, &args)?;
            super::block_on(train(&executor, settings, &args.train, printer))?
        }
        TrainCommand::Remote(args) => {
            let settings = TrainSettings::from_args(&args.train, Mode::Remote)?;
            super::block_on(async {
                let executor = remote_executor(&settings.task, &args, &dotenv).await?;
                train(&executor, settings, &args.train, printer).await
            })?
        }
    }
}

/// The local mode for `task`: its container settings from the task and the flags.
fn local_executor(task: &Task, args: &LocalArgs) -> anyhow::Result<LocalExecutor> {
    let container =
        ContainerSettings::resolve(task, &args.image, args.user, args.gpus, &args.engine)?;
    Ok(LocalExecutor { container })
}

/// SageMaker for `task`: its container settings (no user, GPUs or engine of its own: SageMaker's) and
/// its remote settings, with AWS reached.
async fn remote_executor(
    task: &Task,
    args: &RemoteArgs,
    dotenv: &crate::config::dotenv::DotEnv,
) -> anyhow::Result<RemoteExecutor> {
    let container = ContainerSettings::resolve(task, &args.image, None, None, &Default::default())?;
    let remote = RemoteSettings::resolve(task, args, dotenv);
    let given_region = remote.region.is_some();
    RemoteExecutor::connect(remote, container)
        .await
        .map_err(|error| blame_region(error, given_region, dotenv))
}

/// An unknown region that the user did not pass as `--region` is blamed on where it was set: a `.env`
/// file (its path) or the environment.
fn blame_region(
    error: anyhow::Error,
    given: bool,
    dotenv: &crate::config::dotenv::DotEnv,
) -> anyhow::Error {
    use crate::cloud::aws::AwsError;
    let from = dotenv.origin(&["AWS_REGION", "AWS_DEFAULT_REGION"]);
    match (error.downcast_ref::<AwsError>(), given, from) {
        (Some(AwsError::UnknownRegion(region)), false, Some(from)) => anyhow::anyhow!(
            "unknown AWS region `{region}` ({from}): check the spelling there (e.g. us-east-1, \
             eu-west-1), or pass --region"
        ),
        _ => error,
    }
}

/// The steps `--force-step` names, with every step that reads them; an unknown step is an error.
fn forced_steps(flow: &Flow, args: &TrainArgs) -> anyhow::Result<BTreeSet<String>> {
    let mut force = BTreeSet::new();
    for step in &args.force_step {
        let named: Vec<&crate::run::pipeline::Step> = flow
            .steps
            .iter()
            .filter(|s| s.base_name() == step)
            .collect();
        if named.is_empty() {
            anyhow::bail!(
                "--force-step {step}: {} has no step `{step}` (steps: {})",
                args.task.display(),
                flow.steps
                    .iter()
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for found in &named {
            force.extend(flow.with_dependents(&found.name));
        }
    }
    Ok(force)
}

/// A pipeline file: checked whole, then every step run (or planned) in order.
fn run_flow(
    command: TrainCommand,
    dotenv: &crate::config::dotenv::DotEnv,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (args, mode) = match &command {
        TrainCommand::Attached(args) => (args, Mode::Attached),
        TrainCommand::Local(local) => (&local.train, Mode::Local),
        TrainCommand::Remote(remote) if remote.detach => anyhow::bail!(
            "--detach does not apply to a pipeline file: each step needs the result of the steps it reads"
        ),
        TrainCommand::Remote(remote) => (&remote.train, Mode::Remote),
    };
    if !args.hyperparameters.is_empty() {
        anyhow::bail!(
            "--hp does not apply to a pipeline file: set a step's hyperparameters in its [steps.NAME] \
             hyperparameters, or sweep one with --set STEP.NAME=V1,V2"
        );
    }
    let (parameters, notes) = crate::run::sweep::without_repeats(args.sweep.clone());
    for note in notes {
        printer.warn(&note);
    }
    let flow = Flow::load(&args.task)?.fan_out(&parameters)?;
    let schedule = Schedule {
        force: forced_steps(&flow, args)?,
        flow,
        options: crate::settings::RunOptions::from_args(args),
        mode,
        parallel: args.parallel.unwrap_or(1).max(1),
    };
    let flow = &schedule.flow;
    printer.stage(
        "Pipeline",
        &format!(
            "{}: {} step(s), {} at a time",
            flow.name,
            flow.steps.len(),
            schedule.parallel
        ),
    );
    let reporter_for = |step: &str| MemberReporter {
        inner: printer,
        name: step.to_string(),
    };
    let done = printer.progress(
        Measure::Items,
        "Pipeline",
        &format!("{}: steps ended", flow.name),
        Some(flow.steps.len() as u64),
    );
    // Each step is a task of its own, with its own container and [remote] settings.
    let answer = match &command {
        TrainCommand::Attached(_) => {
            let attached = |_: &TrainSettings| std::future::ready(Ok(AttachedExecutor));
            super::block_on(steps::run(&attached, &schedule, reporter_for, &done))?
        }
        TrainCommand::Local(local) => {
            let local = |settings: &TrainSettings| {
                std::future::ready(local_executor(&settings.task, local))
            };
            super::block_on(steps::run(&local, &schedule, reporter_for, &done))?
        }
        TrainCommand::Remote(remote) => {
            let remote = |settings: &TrainSettings| {
                let task = settings.task.clone();
                async move { remote_executor(&task, remote, dotenv).await }
            };
            super::block_on(steps::run(&remote, &schedule, reporter_for, &done))?
        }
    };
    drop(done);
    let (json, text) = answers::flow(&answer);
    if args.dry_run {
        printer.plan(&json);
        return Ok(Exit::Success);
    }
    printer.json(&json);
    printer.out(&text);
    Ok(if answer.all_completed() {
        Exit::Success
    } else {
        Exit::JobFailed
    })
}

/// One job, or a sweep, of any mode.
async fn train<E: Executor>(
    executor: &E,
    settings: TrainSettings,
    args: &TrainArgs,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    crate::settings::warn_about_env_secrets(&settings.task, printer);
    clean_leftovers(&settings.store, printer);
    // Channels in S3 are listed once for every member (their ETags are in the fingerprint); runs that
    // read local data get a local copy, fetched once.
    let download = !executor.reads_s3();
    let settings = lifecycle::with_result_channels(settings, printer)?;
    let settings = lifecycle::with_s3_channels(settings, download, printer).await?;
    let parameters = sweep_parameters(&settings, args, printer);
    let members = lifecycle::members(&settings, &parameters)?;
    if let [only] = members.as_slice() {
        if only.name.is_empty() {
            let ran = lifecycle::run(executor, &only.settings, &only.base, printer).await?;
            if let Ran::Plan(plan) = &ran {
                // The plan is the answer of a dry run, whatever the output format.
                printer.plan(plan);
                return Ok(Exit::Success);
            }
            let (json, text, status) = answers::ran(&ran);
            printer.json(&json);
            printer.out(&text);
            return Ok(exit_for(status));
        }
    }
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
        &if executor.launch_all_first() {
            format!(
                "{} members of {}, all launched at once",
                members.len(),
                settings.task.spec.name
            )
        } else {
            format!(
                "{} members of {}, {parallel} at a time",
                members.len(),
                settings.task.spec.name
            )
        },
    );
    let done = printer.progress(
        Measure::Items,
        "Sweeping",
        &format!("{}: members ended", settings.task.spec.name),
        Some(members.len() as u64),
    );
    let reporter_for = |member: &lifecycle::Member| MemberReporter {
        inner: printer,
        name: member.name.clone(),
    };
    let answers = lifecycle::run_sweep(executor, &members, parallel, reporter_for, &done)
        .await
        .into_iter()
        .map(|ran| ran.map(|ran| answers::ran(&ran)))
        .collect();
    drop(done);
    let named: Vec<(String, Vec<(String, String)>)> = members
        .iter()
        .map(|m| (m.name.clone(), m.overrides.clone()))
        .collect();
    let table = answers::sweep_table(&named, answers, args.sort.as_deref());
    if settings.dry_run {
        printer.plan(&table.rows);
        return Ok(Exit::Success);
    }
    printer.json(&table.rows);
    printer.out(&table.text);
    for warning in &table.warnings {
        printer.warn(warning);
    }
    for error in &table.errors {
        printer.error(error);
    }
    Ok(if table.all_completed {
        Exit::Success
    } else {
        Exit::JobFailed
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

/// Removes what runs killed before they could clean up left behind: staging files in the store and job
/// roots in the temp folder whose owner is gone.
pub fn clean_leftovers(store: &crate::store::results::Store, reporter: &dyn Reporter) {
    let swept = grounds_job::owner::remove_leftovers(&store.results_dir(), &std::env::temp_dir());
    if !swept.removed.is_empty() {
        let removed: Vec<String> = swept
            .removed
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        reporter.stage("Cleaned", &grounds_job::owner::removed_leftovers(&removed));
    }
    for (path, why) in swept.failed {
        reporter.warn(&format!(
            "could not remove {}, left by a run that is gone: {why}",
            path.display()
        ));
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
    let (parameters, notes) = crate::run::sweep::without_repeats(parameters);
    for note in notes {
        reporter.warn(&note);
    }
    parameters
}

/// A member's output, prefixed with its name so that parallel members can be told apart.
pub struct MemberReporter<'a> {
    pub inner: &'a Printer,
    pub name: String,
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
            None => self.inner.job_line(Some(&self.name), line),
        }
    }
    fn warn(&self, message: &str) {
        self.inner.warn(&format!("[{}] {message}", self.name));
    }
    fn progress(
        &self,
        measure: Measure,
        stage: &str,
        what: &str,
        total: Option<u64>,
    ) -> Progress<'_> {
        self.inner
            .progress_for(self, Some(&self.name), measure, stage, what, total)
    }
}
