//! `grounds train attached|local|remote TASK`: settings resolved, the mode's executor chosen, the job (or
//! every member of a sweep) sent through the pipeline, and what it came to printed.

use std::collections::BTreeMap;

use anyhow::Context;

use super::Exit;
use crate::cli::{TrainArgs, TrainCommand};
use crate::executors::attached::AttachedExecutor;
use crate::executors::local::LocalExecutor;
use crate::executors::remote::RemoteExecutor;
use crate::executors::Executor;
use crate::job::{Mode, ResultInput, Status};
use crate::pipeline::{self, Ran};
use crate::printer::{Printer, Reporter};
use crate::report;
use crate::settings::{ContainerSettings, RemoteSettings, TrainSettings};
use crate::task::ChannelSource;

/// Settings are resolved, and the `.env` beside the task applied, before the runtime starts (so no other
/// thread reads the environment while it changes); AWS is reached once for every member of a sweep.
pub fn run(command: TrainCommand, printer: &Printer) -> anyhow::Result<Exit> {
    let task_file = match &command {
        TrainCommand::Attached(args) => &args.task,
        TrainCommand::Local(args) => &args.train.task,
        TrainCommand::Remote(args) => &args.train.task,
    };
    let dotenv = crate::aws::apply_dotenv(task_file);
    match command {
        TrainCommand::Attached(args) => {
            let settings = TrainSettings::resolve(&args, Mode::Attached)?;
            super::block_on(train(&AttachedExecutor, settings, &args, printer))?
        }
        TrainCommand::Local(args) => {
            let settings = TrainSettings::resolve(&args.train, Mode::Local)?;
            let container = ContainerSettings::resolve(
                &settings.task,
                &args.image,
                args.user,
                args.gpus,
                &args.engine,
            )?;
            let executor = LocalExecutor { container };
            super::block_on(train(&executor, settings, &args.train, printer))?
        }
        TrainCommand::Remote(args) => {
            let settings = TrainSettings::resolve(&args.train, Mode::Remote)?;
            let container = ContainerSettings::resolve(
                &settings.task,
                &args.image,
                None,
                None,
                &Default::default(),
            )?;
            let remote = RemoteSettings::resolve(&settings.task, &args, &dotenv);
            super::block_on(async {
                let executor = RemoteExecutor::connect(remote, container).await?;
                train(&executor, settings, &args.train, printer).await
            })?
        }
    }
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
    let settings = with_result_channels(settings, printer)?;
    let settings = with_s3_channels(settings, download, printer).await?;
    let parameters = sweep_parameters(&settings, args, printer);
    let members = pipeline::members(&settings, &parameters)?;
    if let [only] = members.as_slice() {
        if only.name.is_empty() {
            let ran = pipeline::run(executor, &only.settings, &only.base, printer).await?;
            if let Ran::Plan(plan) = &ran {
                // The plan is the answer of a dry run, whatever the output format.
                printer.plan(plan);
                return Ok(Exit::Success);
            }
            let (json, text, status) = report::ran(&ran);
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
    let answers = pipeline::sweep(executor, &members, parallel, |member| MemberReporter {
        inner: printer,
        name: member.name.clone(),
    })
    .await
    .into_iter()
    .map(|ran| ran.map(|ran| report::ran(&ran)))
    .collect();
    let named: Vec<(String, Vec<(String, String)>)> = members
        .iter()
        .map(|m| (m.name.clone(), m.overrides.clone()))
        .collect();
    let table = report::sweep(&named, answers, args.sort.as_deref());
    if settings.dry_run {
        printer.plan(&table.rows);
        return Ok(Exit::Success);
    }
    printer.json(&table.rows);
    printer.out(&table.text);
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

/// Resolves the task's `result://` channels to the files of the stored results they name (unpacked
/// once into `$GROUNDS_HOME/cache/results`), so every mode reads them as local data and the fingerprint
/// holds their content; records which results were read.
pub fn with_result_channels(
    settings: TrainSettings,
    reporter: &dyn Reporter,
) -> anyhow::Result<TrainSettings> {
    let mut folders = BTreeMap::new();
    let mut inputs = Vec::new();
    for (name, source) in &settings.task.channels {
        let ChannelSource::Result { id, folder } = source else {
            continue;
        };
        let (full, path) = settings
            .store
            .result_folder(id, *folder)
            .with_context(|| format!("channel `{name}` ({})", source.describe()))?;
        reporter.stage(
            "Reading",
            &format!(
                "channel `{name}` from result {full} ({}/)",
                folder.path_in_result()
            ),
        );
        folders.insert(name.clone(), path);
        inputs.push(ResultInput {
            channel: name.clone(),
            result: full,
            folder: *folder,
        });
    }
    if inputs.is_empty() {
        return Ok(settings);
    }
    let mut settings = settings.with_local_channels(&folders);
    for input in &inputs {
        settings.sources.insert(
            input.channel.clone(),
            format!("result://{}/{}", input.result, input.folder),
        );
    }
    settings.inputs = inputs;
    Ok(settings)
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
        .map(|(name, channel)| {
            (
                name.clone(),
                format!("{} {}", channel.uri, channel.identity),
            )
        })
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
}
