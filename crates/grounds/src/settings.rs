//! Settings: raw flags, the task file, `.env` files and the environment, resolved once into what a command
//! needs, before the async runtime starts: [`TrainSettings`] for every mode, [`ContainerSettings`] for the
//! modes that run the job's image (local, remote), [`RemoteSettings`] for SageMaker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{AwsArgs, EngineArgs, ImageArgs, RemoteArgs, TrainArgs};
use crate::config::dotenv::{DotEnv, Sourced};
use crate::config::task::Task;
use crate::docker::EngineAddress;
use crate::docker::Gpus;
use crate::job::package::PackageInfo;
use crate::job::ResultInput;
use crate::store::results::{Mode, Store};

#[derive(Clone)]
pub struct TrainSettings {
    pub task: Task,
    pub mode: Mode,
    pub store: Store,
    pub dry_run: bool,
    pub force: bool,
    pub grace: Duration,
    /// `--profile` and `--region`, for SageMaker and `s3://` channels.
    pub aws: AwsSettings,
    /// Where each channel's data comes from, as the task names it (kept when `s3://` channels are
    /// downloaded and read from the cache).
    pub sources: BTreeMap<String, String>,
    /// What each `s3://` channel holds now (a hash of its objects' ETags), for the fingerprint.
    pub data: BTreeMap<String, String>,
    /// The stored results `result://` channels read, for the record.
    pub inputs: Vec<ResultInput>,
    /// The pipeline step these settings run, if any.
    pub pipeline: Option<crate::job::PipelineStep>,
    /// The cache entries the job reads (`result://` and `s3://` channels), held until it has read
    /// them, so that `grounds cache clear` leaves them alone.
    pub holds: Vec<std::sync::Arc<crate::store::cache::Held>>,
}

/// `--profile` and `--region`: which AWS account and region a command reaches (for SageMaker and `s3://`
/// channels); none given, the SDK's own defaults.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    pub profile: Option<String>,
    pub region: Option<String>,
}

impl AwsSettings {
    pub fn from_args(args: &AwsArgs) -> AwsSettings {
        AwsSettings {
            profile: args.profile.clone(),
            region: args.region.clone(),
        }
    }
}

/// What every run of one command shares, whatever its task (every member of a sweep, every step of a
/// pipeline): the flags that are not the task.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub dry_run: bool,
    pub force: bool,
    pub grace: Duration,
    pub aws: AwsSettings,
}

impl RunOptions {
    pub fn from_args(args: &TrainArgs) -> RunOptions {
        RunOptions {
            dry_run: args.dry_run,
            force: args.force,
            grace: Duration::from_secs(args.grace),
            aws: AwsSettings::from_args(&args.aws),
        }
    }
}

/// What container runs (local and remote) need beyond the task.
#[derive(Clone)]
pub struct ContainerSettings {
    pub instance_count: usize,
    pub entry_binary: PathBuf,
    pub user: (u32, u32),
    /// GPUs asked for with `--gpus`.
    pub gpus: Option<Gpus>,
    /// `[remote] instance_type` is a GPU type (`ml.g*`, `ml.p*`): local runs ask for every GPU the engine
    /// offers, and run on CPU where it offers none.
    pub gpu_instance: bool,
    /// The engine that builds the image and (local runs) runs the containers.
    pub engine: EngineAddress,
    /// The job's files are copied into and out of the containers, not mounted: the engine is on another
    /// machine, or `--copy` asks for it.
    pub copy_files: bool,
    /// `--allow-insecure`: secrets may be sent to an engine reached over plain TCP on the network.
    pub allow_insecure: bool,
}

impl ContainerSettings {
    /// Says loudly that the engine is reached over plain TCP on the network, if it is; and refuses to
    /// send it `what` (secrets: pass_env values, a registry login) unless `--allow-insecure` was given.
    pub fn check_insecure_engine(
        &self,
        sends_secrets: Option<&str>,
        reporter: &dyn crate::printer::Reporter,
    ) -> anyhow::Result<()> {
        let Some(warning) = self.engine.insecure() else {
            return Ok(());
        };
        reporter.warn(&warning);
        match sends_secrets {
            Some(what) if !self.allow_insecure => anyhow::bail!(
                "refusing to send {what} to the Docker engine at {} over plain TCP, where anyone on the \
                 way can read it: reach the engine by ssh:// or with TLS (DOCKER_TLS_VERIFY=1), or give \
                 --allow-insecure if this network is yours alone",
                self.engine
            ),
            _ => Ok(()),
        }
    }
}

impl ContainerSettings {
    /// `user`, `gpus` and `engine` are local runs' (`--user`, `--gpus`, `--docker-host`, `--copy`).
    pub fn resolve(
        task: &Task,
        image: &ImageArgs,
        user: Option<(u32, u32)>,
        gpus: Option<Gpus>,
        engine: &EngineArgs,
    ) -> anyhow::Result<Self> {
        let address = EngineAddress::resolve(engine.docker_host.as_deref())?;
        let instance_count = image
            .instance_count
            .or(task.spec.remote.instance_count)
            .unwrap_or(1);
        if instance_count == 0 {
            anyhow::bail!("the instance count must be at least 1");
        }
        // An image task brings its own `train`: it has no entry binary.
        let entry_binary = match image.entry_binary.clone() {
            Some(path) => path,
            None => crate::job::entries::for_runner(&task.spec.runner)?.unwrap_or_default(),
        };
        Ok(ContainerSettings {
            instance_count: instance_count as usize,
            entry_binary,
            user: user.unwrap_or_else(grounds_job::owner::current_user),
            gpus,
            gpu_instance: task
                .spec
                .remote
                .instance_type
                .as_deref()
                .is_some_and(is_gpu_instance_type),
            copy_files: engine.copy || !address.shares_disk(),
            engine: address,
            allow_insecure: image.allow_insecure,
        })
    }

    /// The GPUs a local run asks for, as they enter the fingerprint.
    pub fn gpus_shape(&self) -> Option<String> {
        self.gpus
            .map(|g| g.to_string())
            .or_else(|| self.gpu_instance.then(|| "instance type".into()))
    }
}

/// What SageMaker runs need beyond the task, resolved once for every member of a sweep. Region and
/// account are proven when AWS is reached (`crate::cloud::aws::Aws::connect`); endpoints are the SDK's own
/// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`), read by `crate::cloud::aws` alone.
#[derive(Clone, Debug)]
pub struct RemoteSettings {
    /// `--profile`, else `AWS_PROFILE`; kept with the job so `results fetch` and `stop` reach it again.
    pub profile: Option<String>,
    /// `--region`, else the SDK's (`AWS_REGION`, the profile's).
    pub region: Option<String>,
    /// `[remote] role`, else `GROUNDS_ROLE`, else `AWS_ROLE` (environment, then `.env`), with where it
    /// came from; checked when the job is planned, after AWS is reached.
    pub role: Option<Sourced>,
    /// `[remote] bucket`, else `GROUNDS_BUCKET`, with where it came from; without either,
    /// `sagemaker-<region>-<account>`.
    pub bucket: Option<Sourced>,
    /// `--detach`: submit, store the job `InProgress`, and return.
    pub detach: bool,
    /// `--stop-on-interrupt`: Ctrl-C stops the job instead of detaching from it.
    pub stop_on_interrupt: bool,
}

impl RemoteSettings {
    /// `dotenv` holds the `.env` values, consulted after the environment.
    pub fn resolve(task: &Task, args: &RemoteArgs, dotenv: &DotEnv) -> RemoteSettings {
        let remote = &task.spec.remote;
        let in_task = |field: &str, value: &Option<String>| {
            value.clone().map(|value| Sourced {
                value,
                from: format!("[remote] {field} in {}", task.file.display()),
            })
        };
        RemoteSettings {
            profile: args
                .train
                .aws
                .profile
                .clone()
                .or_else(|| std::env::var("AWS_PROFILE").ok()),
            region: args.train.aws.region.clone(),
            role: in_task("role", &remote.role)
                .or_else(|| dotenv.lookup("GROUNDS_ROLE"))
                .or_else(|| dotenv.lookup("AWS_ROLE")),
            bucket: in_task("bucket", &remote.bucket).or_else(|| dotenv.lookup("GROUNDS_BUCKET")),
            detach: args.detach,
            stop_on_interrupt: args.stop_on_interrupt,
        }
    }
}

impl TrainSettings {
    /// The settings of a run of the task file the command names, with its `--hp` overrides.
    pub fn from_args(args: &TrainArgs, mode: Mode) -> anyhow::Result<Self> {
        Self::resolve(
            &args.task,
            &args.hyperparameters,
            &RunOptions::from_args(args),
            mode,
        )
    }

    /// The settings of a run of the task in `task_file` with `overrides` of its hyperparameters.
    pub fn resolve(
        task_file: &Path,
        overrides: &[(String, String)],
        options: &RunOptions,
        mode: Mode,
    ) -> anyhow::Result<Self> {
        // The file's own values are blamed on the file, those of --hp on the flag.
        let task = Task::load(task_file)?;
        check_task(&task, mode, &task.file.display().to_string())?;
        let task = task.with_overrides(overrides)?;
        if !overrides.is_empty() {
            let given: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
            check_task(&task, mode, &format!("--hp {}", given.join(" --hp ")))?;
        }
        let sources = task
            .channels
            .iter()
            .map(|(name, source)| (name.clone(), source.describe()))
            .collect();
        Ok(TrainSettings {
            task,
            mode,
            store: Store::for_task(task_file),
            dry_run: options.dry_run,
            force: options.force,
            grace: options.grace,
            aws: options.aws.clone(),
            sources,
            data: BTreeMap::new(),
            inputs: Vec::new(),
            pipeline: None,
            holds: Vec::new(),
        })
    }

    pub fn channel_sources(&self) -> BTreeMap<String, String> {
        self.sources.clone()
    }

    /// The task's `s3://` channels, by name.
    pub fn s3_channels(&self) -> BTreeMap<String, String> {
        self.task
            .channels
            .iter()
            .filter_map(|(name, source)| match source {
                crate::config::task::ChannelSource::S3(uri) => Some((name.clone(), uri.clone())),
                crate::config::task::ChannelSource::Local(_)
                | crate::config::task::ChannelSource::Result { .. } => None,
            })
            .collect()
    }

    /// These settings with channels read from local folders instead (`s3://` channels downloaded).
    pub fn with_local_channels(&self, folders: &BTreeMap<String, PathBuf>) -> TrainSettings {
        let mut settings = self.clone();
        for (name, folder) in folders {
            settings.task.channels.insert(
                name.clone(),
                crate::config::task::ChannelSource::Local(folder.clone()),
            );
        }
        settings
    }

    /// Settings for a task derived from this one (a sweep member), checked as the task was.
    pub fn with_task(&self, task: Task) -> anyhow::Result<TrainSettings> {
        check_task(
            &task,
            self.mode,
            &format!(
                "a sweep member of {} (its values from --set or [sweep])",
                task.file.display()
            ),
        )?;
        Ok(TrainSettings {
            task,
            ..self.clone()
        })
    }

    /// The plan `--dry-run` prints; values of secret-looking `[container] env` names and hyperparameters
    /// are masked, and so are credentials inside any of their values (`user:password@`, key shapes).
    pub fn dry_run_plan(&self, package: &PackageInfo, fingerprint: &str) -> CommonPlan {
        let mut task = self.task.spec.clone();
        task.container.env = crate::config::secrets::shown_map(&task.container.env);
        task.hyperparameters = crate::config::secrets::shown_map(&task.hyperparameters);
        CommonPlan {
            mode: self.mode,
            task_file: self.task.file.clone(),
            hyperparameters: task.hyperparameters.clone(),
            task,
            channels: self.channel_sources(),
            package: package.clone(),
            fingerprint: fingerprint.to_string(),
            result_store: self.store.results_dir(),
            grace_seconds: self.grace.as_secs(),
        }
    }
}

/// The part of a `--dry-run` plan every mode has (see `crate::answers::schema`): the task as it would
/// run, secret-looking values masked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommonPlan {
    pub mode: Mode,
    pub task_file: PathBuf,
    pub hyperparameters: BTreeMap<String, String>,
    pub task: crate::config::task::TaskSpec,
    pub channels: BTreeMap<String, String>,
    pub package: PackageInfo,
    pub fingerprint: String,
    pub result_store: PathBuf,
    pub grace_seconds: u64,
}

/// What can only be checked with the mode and the final hyperparameters known, before anything runs: a
/// builtin's hyperparameters, and channels the mode cannot read. `source` is where the hyperparameters
/// came from (the task file, `--hp`, a sweep), which a bad value is blamed on.
pub fn check_task(task: &Task, mode: Mode, source: &str) -> anyhow::Result<()> {
    if let (crate::config::task::Runner::Image(image), Mode::Attached) = (&task.spec.runner, mode) {
        anyhow::bail!(
            "{}: [task.image] {} runs its own entry in a container, so it cannot run attached: use \
             `grounds train local` (Docker here) or `grounds train remote` (SageMaker)",
            task.file.display(),
            image.uri
        );
    }
    if let (crate::config::task::Runner::Command(command), Mode::Local) = (&task.spec.runner, mode)
    {
        if let Some(image) = &command.framework_image {
            anyhow::bail!(
                "{}: framework_image {image}: `train local` of a framework task is not supported yet; \
                 run it attached (the same script through grounds' entry, which gives it what the toolkit \
                 gives) or on SageMaker with `grounds train remote`",
                task.file.display()
            );
        }
    }
    if let crate::config::task::Runner::Builtin(builtin) = &task.spec.runner {
        grounds_builtin::check(builtin, &task.spec.hyperparameters)
            .map_err(|e| anyhow::anyhow!("{source}: {e:#}"))?;
        // The label and features against the data's columns, before the data is copied anywhere.
        if let Some(crate::config::task::ChannelSource::Local(data)) = task.channels.get("training")
        {
            grounds_builtin::check_columns(data, &builtin.label, builtin.features.as_deref())
                .map_err(|e| anyhow::anyhow!("{}: [task.builtin]: {e}", task.file.display()))?;
        }
    }
    Ok(())
}

/// Warns about `[container] env` values whose names look secret: they are part of the task, so they are
/// in `task.json`, the image and every result.
pub fn warn_about_env_secrets(task: &Task, reporter: &dyn crate::printer::Reporter) {
    for name in task.spec.container.env.keys() {
        if crate::config::secrets::is_secret_env_name(name) {
            reporter.warn(&format!(
                "{}: [container] env sets `{name}`, which looks like a secret; env values are part of the \
                 task and are stored in task.json, the image and every result. Pass secrets with \
                 [container] pass_env = [\"{name}\"] instead (taken from your environment at run time)",
                task.file.display()
            ));
        }
    }
}

/// SageMaker's GPU instance families: `ml.g4dn.xlarge`, `ml.p3.2xlarge`, ...
pub fn is_gpu_instance_type(instance_type: &str) -> bool {
    instance_type
        .strip_prefix("ml.")
        .is_some_and(|rest| rest.starts_with('g') || rest.starts_with('p'))
}
