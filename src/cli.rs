//! The command line as clap sees it: raw flags only. `settings` turns them into what the work needs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "grounds",
    version,
    about = "Deliver machine-learning training jobs: attached, in local Docker or on Amazon SageMaker",
    after_help = "Results are kept in $GROUNDS_HOME/results (default ./.grounds). See README.md."
)]
pub struct Cli {
    /// Print the answer as JSON on standard output (progress and job output stay on standard error).
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not show the job's own output while it runs (it is still stored in the result).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a task as a job.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Find, read and unpack stored results.
    #[command(subcommand)]
    Results(ResultsCommand),
    /// Ask SageMaker to stop a remote job (StopTrainingJob).
    Stop {
        /// A result id, or any unique prefix of one.
        id: String,
    },
    /// Channel data kept on a Docker engine that does not share this disk (`--docker-host ssh://…`).
    #[command(subcommand)]
    Cache(CacheCommand),
    /// The container entry (what SageMaker starts as `train`); reads the /opt/ml contract.
    #[command(hide = true)]
    Entry(EntryArgs),
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// The data sets kept on the engine: hash, channel, files, size, volume.
    List {
        /// The engine (default: DOCKER_HOST, else the local socket).
        #[arg(long, value_name = "URL")]
        docker_host: Option<String>,
    },
    /// Removes data sets from the engine (all of them, or those whose hash starts with HASH); the next run
    /// that needs one sends it again.
    Clear {
        /// The engine (default: DOCKER_HOST, else the local socket).
        #[arg(long, value_name = "URL")]
        docker_host: Option<String>,
        /// Hashes (or unique prefixes) of the data sets to remove; none: all.
        hashes: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// In this process tree, on a temporary folder laid out like /opt/ml: for debugging in seconds.
    Attached(TrainArgs),
    /// In the local Docker engine, /opt/ml mounted: proves the job is deliverable.
    Local(LocalArgs),
    /// On Amazon SageMaker: image to ECR (or [remote] registry), data to S3, a training job, results home.
    Remote(RemoteArgs),
}

#[derive(Debug, Args)]
pub struct RemoteArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    #[command(flatten)]
    pub image: ImageArgs,
    /// Submit and return at once; `grounds results fetch ID` completes the result later.
    #[arg(long)]
    pub detach: bool,
    /// On Ctrl-C while waiting, stop the training job (StopTrainingJob) instead of detaching from it.
    #[arg(long)]
    pub stop_on_interrupt: bool,
}

#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// The AWS profile (default: AWS_PROFILE, else the default profile).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The AWS region (default: AWS_REGION, else the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

/// What container runs (local and remote) take beyond the task.
#[derive(Debug, Clone, Args)]
pub struct ImageArgs {
    /// How many hosts: algo-1 … algo-N (default: [remote] instance_count, else 1).
    #[arg(long, value_name = "N")]
    pub instance_count: Option<u32>,
    /// The static Linux x86-64 grounds binary to put into the image as its entry (default: this one).
    #[arg(long, value_name = "PATH")]
    pub entry_binary: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LocalArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    #[command(flatten)]
    pub image: ImageArgs,
    /// Run the containers as UID:GID (default: you).
    #[arg(long, value_name = "UID:GID", value_parser = parse_user)]
    pub user: Option<(u32, u32)>,
    /// GPUs for each container, as `docker run --gpus`: `all` or a number (needs a GPU runtime).
    #[arg(long, value_name = "all|N", value_parser = parse_gpus)]
    pub gpus: Option<Gpus>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Which Docker engine runs the containers, and how the job's files reach it.
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArgs {
    /// The engine: unix:///path, ssh://[user@]host[:port] (its `docker` over SSH) or tcp://host:port
    /// (TLS as DOCKER_TLS_VERIFY and DOCKER_CERT_PATH say). Default: DOCKER_HOST, else the local socket.
    #[arg(long, value_name = "URL")]
    pub docker_host: Option<String>,
    /// Copy the job's files into and out of the containers instead of mounting them, as for an engine on
    /// another machine (which always copies).
    #[arg(long)]
    pub copy: bool,
}

/// GPUs asked of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gpus {
    All,
    #[serde(untagged)]
    Count(u32),
}

impl std::fmt::Display for Gpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gpus::All => f.write_str("all"),
            Gpus::Count(n) => write!(f, "{n}"),
        }
    }
}

fn parse_gpus(text: &str) -> Result<Gpus, String> {
    match text {
        "all" => Ok(Gpus::All),
        n => match n.parse::<u32>() {
            Ok(count) if count > 0 => Ok(Gpus::Count(count)),
            _ => Err(format!(
                "`{text}` is not `all` or a number of GPUs, e.g. --gpus all or --gpus 2"
            )),
        },
    }
}

fn parse_user(text: &str) -> Result<(u32, u32), String> {
    let parse = |part: &str| {
        part.parse::<u32>()
            .map_err(|_| format!("`{text}` is not UID:GID, e.g. 1000:1000"))
    };
    match text.split_once(':') {
        Some((uid, gid)) => Ok((parse(uid)?, parse(gid)?)),
        None => Err(format!("`{text}` is not UID:GID, e.g. 1000:1000")),
    }
}

/// The longest grace a stopped job may get: an hour (SageMaker gives 120 seconds).
pub const MAX_GRACE: u64 = 3600;

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The task file (TOML).
    pub task: PathBuf,
    /// Override a hyperparameter: --hp key=value (repeatable).
    #[arg(long = "hp", value_name = "KEY=VALUE", value_parser = crate::task::parse_override)]
    pub hyperparameters: Vec<(String, String)>,
    /// Print the resolved plan as JSON and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds a stopped job gets between SIGTERM and SIGKILL (at most 3600).
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=MAX_GRACE))]
    pub grace: u64,
    /// Sweep a hyperparameter: --set name=v1,v2 (repeatable); every combination runs as its own job.
    #[arg(long = "set", value_name = "NAME=V1,V2", value_parser = crate::sweep::parse_set)]
    pub sweep: Vec<(String, Vec<String>)>,
    /// How many sweep members run at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Order a sweep's table by this metric, highest first.
    #[arg(long, value_name = "METRIC")]
    pub sort: Option<String>,
    /// Run even when a completed result with the same fingerprint (code, task, hyperparameters, data, mode)
    /// exists; without it that result is reused.
    #[arg(long)]
    pub force: bool,
    /// (pipelines) Run this step and every step that reads it even when nothing changed (repeatable).
    #[arg(long, value_name = "STEP")]
    pub force_step: Vec<String>,
    /// AWS settings, for SageMaker and for `s3://` channels in every mode.
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Subcommand)]
pub enum ResultsCommand {
    /// A table of stored results, oldest first.
    List {
        /// Only results of this task.
        #[arg(long, value_name = "NAME")]
        task: Option<String>,
        /// Only the steps of runs of this pipeline.
        #[arg(long, value_name = "NAME")]
        pipeline: Option<String>,
        /// Only results with this status (Completed, Failed, Stopped, InProgress).
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// Order by this metric, highest first (results without it last).
        #[arg(long, value_name = "METRIC")]
        sort: Option<String>,
        /// With --sort: lowest first (for losses and errors).
        #[arg(long, requires = "sort")]
        ascending: bool,
    },
    /// Hyperparameters and metrics of several results side by side, differing values marked.
    Compare {
        /// Result ids or unique prefixes.
        ids: Vec<String>,
        /// Compare every result of this task.
        #[arg(long, value_name = "NAME")]
        task: Option<String>,
    },
    /// One result: job, hyperparameters, metrics and files.
    Show {
        /// A result id, or any unique prefix of one.
        id: String,
    },
    /// Wait for a remote job submitted with --detach (or left by Ctrl-C) and complete its result.
    Fetch {
        /// A result id, or any unique prefix of one.
        id: String,
        /// Take the job as it is now instead of waiting for it to end.
        #[arg(long)]
        no_wait: bool,
    },
    /// Unpack a result into a folder and print the folder and the metrics.
    Open {
        /// A result id, or any unique prefix of one.
        id: String,
        /// Where to unpack (default: $GROUNDS_HOME/open/<id>); must be new or empty.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Refuse results that would unpack to more than this many bytes.
        #[arg(long, value_name = "BYTES", default_value_t = 16 << 30)]
        max_bytes: u64,
    },
}

#[derive(Debug, Args)]
pub struct EntryArgs {
    /// The contract root (default: $SAGEMAKER_BASE_DIR, else /opt/ml).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// The package (default: $GROUNDS_PACKAGE, else /opt/grounds/package.zip).
    #[arg(long)]
    pub package: Option<PathBuf>,
}
