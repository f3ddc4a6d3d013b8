//! The command line as clap sees it: raw flags only. `settings` turns them into what the work needs.

use std::io::Write;
use std::path::PathBuf;

pub use crate::docker::Gpus;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "grounds",
    version,
    about = "Deliver machine-learning training jobs: attached, in local Docker or on Amazon SageMaker",
    after_help = "Results are kept in $GROUNDS_HOME/results (default: the nearest .grounds folder here or above, else ./.grounds)."
)]
pub struct Cli {
    /// Print the answer as JSON on standard output (progress and job output stay on standard error).
    #[arg(long, global = true)]
    pub json: bool,
    /// `grounds -q train …` as well as `grounds train … -q`: the flag belongs to the commands that show
    /// a job's output (`train`, `results fetch`), where their help shows it.
    #[arg(long, short, hide = true)]
    pub quiet: bool,
    /// Colour and progress bars on standard error: auto (on a terminal, unless NO_COLOR is set), always
    /// or never.
    #[arg(
        long,
        value_enum,
        global = true,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub color: crate::printer::ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether the job's own output is kept off the screen: `-q` before the command or after it.
    pub fn quiet(&self) -> bool {
        self.quiet
            || match &self.command {
                Command::Train(TrainCommand::Attached(args)) => args.quiet,
                Command::Train(TrainCommand::Local(args)) => args.train.quiet,
                Command::Train(TrainCommand::Remote(args)) => args.train.quiet,
                Command::Results(ResultsCommand::Fetch { quiet, .. }) => *quiet,
                _ => false,
            }
    }

    /// The command line, parsed; a mistake clap cannot explain well enough is said with what to write
    /// instead (`grounds train TASK` without a mode), and the process exits as clap does (code 2).
    pub fn parse_or_explain() -> Cli {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        match <Cli as clap::Parser>::try_parse_from(&args) {
            Ok(cli) => cli,
            Err(error) => {
                if let Some(hint) = missing_mode(&error, &args) {
                    let _ = writeln!(std::io::stderr(), "{hint}");
                    std::process::exit(2);
                }
                error.exit()
            }
        }
    }
}

/// `grounds train fixtures/titanic/task.toml`: a task given where the mode belongs.
fn missing_mode(error: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    if error.kind() != clap::error::ErrorKind::InvalidSubcommand {
        return None;
    }
    // `train` as the subcommand: only flags before it.
    let train = args
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
        .map(|at| at + 1)
        .filter(|&at| args[at] == "train")?;
    let given = args.get(train + 1)?.to_string_lossy().into_owned();
    Some(format!(
        "error: `grounds train` takes where to run first: attached (here), local (in Docker) or remote \
         (on SageMaker), e.g. `grounds train attached {given}`"
    ))
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
    /// Write a commented task.toml to start from: for a script (--from) or a CSV (--builtin).
    Init(InitArgs),
    /// Print a completion script for a shell (result ids complete from the store in bash, zsh and fish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page grounds(1) (roff), or with --dir write it and a page for every subcommand
    /// (grounds-train(1), grounds-results-rm(1), …) into a folder, as `make install` does.
    Man {
        /// Write grounds.1 and every subcommand's page into this folder instead of printing grounds.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The ids of stored results, one per line (what shell completion calls).
    #[command(hide = true)]
    CompleteIds {
        /// Only ids that start with this.
        #[arg(default_value = "")]
        prefix: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// What is kept: the data sets on the engine (hash, channel, files, size, volume); with --local the
    /// caches under $GROUNDS_HOME/cache.
    List(CacheArgs),
    /// Removes what is kept (all of it, or the entries whose hash or id starts with HASH); the next run that
    /// needs something sends or unpacks it again. Entries a running job reads are kept and named.
    Clear {
        #[command(flatten)]
        args: CacheArgs,
        /// Hashes (or ids, or unique prefixes) of the entries to remove; none: all.
        hashes: Vec<String>,
    },
}

/// Which caches `grounds cache` looks at: the engine's data volumes, unless --local or --s3 is given
/// (then the engine's only with --docker-host).
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// The engine (default: DOCKER_HOST, else the local socket).
    #[arg(long, value_name = "URL")]
    pub docker_host: Option<String>,
    /// The caches on this machine: results unpacked for result:// channels, s3:// channels downloaded,
    /// content hashes of local data.
    #[arg(long)]
    pub local: bool,
    /// The data SageMaker runs read, kept in S3 by content hash (s3://BUCKET/sagemaker/datasets/); clear
    /// keeps what a training job in progress reads.
    #[arg(long)]
    pub s3: bool,
    /// The bucket for --s3 (default: GROUNDS_BUCKET, else sagemaker-<region>-<account>).
    #[arg(long, value_name = "NAME", requires = "s3")]
    pub bucket: Option<String>,
    /// With --s3: only data sets last written longer ago than AGE (default 1h, so that data uploaded
    /// for a job not created yet stays).
    #[arg(long, value_name = "AGE", requires = "s3", value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    #[command(flatten)]
    pub aws: AwsArgs,
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
    /// The static Linux x86-64 entry binary to put into the image as `train` (default: grounds-entry for a
    /// command task, grounds-builtin for a builtin task, found beside grounds).
    #[arg(long, value_name = "PATH")]
    pub entry_binary: Option<PathBuf>,
    /// Send [container] pass_env values (local) or the registry's login (remote) to a Docker engine
    /// reached over plain tcp:// on the network, which anyone on the way can read. Without it, grounds
    /// refuses to.
    #[arg(long)]
    pub allow_insecure: bool,
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
    /// Do not show the job's own output while it runs (it is still stored in the result).
    #[arg(long, short)]
    pub quiet: bool,
    /// Override a hyperparameter: --hp key=value (repeatable).
    #[arg(long = "hp", value_name = "KEY=VALUE", value_parser = crate::config::task::parse_override)]
    pub hyperparameters: Vec<(String, String)>,
    /// Print the resolved plan as JSON and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds a stopped job gets between SIGTERM and SIGKILL (at most 3600).
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=MAX_GRACE))]
    pub grace: u64,
    /// Sweep a hyperparameter: --set name=v1,v2 (repeatable); every combination runs as its own job.
    #[arg(long = "set", value_name = "NAME=V1,V2", value_parser = parse_set)]
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
    /// A table of stored results, oldest first, and the size of the store.
    List(#[command(flatten)] ListArgs),
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
        /// Do not show the job's own output while it is waited for (it is still stored in the result).
        #[arg(long, short)]
        quiet: bool,
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
    /// One row per result (id, task, mode, status, created, duration, `hp.NAME` per hyperparameter,
    /// `metric.NAME` per final metric, result path) as CSV, parquet or JSON, for pandas or polars.
    Export {
        /// The format (default: from the extension of -o, else csv).
        #[arg(long, value_enum)]
        format: Option<crate::store::results::export::ExportFormat>,
        /// Write to this file (whole or not at all) instead of standard output; parquet needs one.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        filter: ListArgs,
    },
    /// Draw metrics over their steps for one or more results, side by side, as PNG or SVG.
    Plot {
        /// Result ids or unique prefixes (a sweep's members, a pipeline's runs, …).
        #[arg(required = true)]
        ids: Vec<String>,
        /// Only these metrics (repeatable; default: every metric with more than one value, else all).
        #[arg(long, value_name = "NAME")]
        metric: Vec<String>,
        /// The picture to write, .png or .svg (default: $GROUNDS_HOME/plots/<first id>.png).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// What the horizontal axis shows: the value's step (its place in the series) or seconds since the
        /// job started.
        #[arg(long, value_enum, default_value = "step")]
        x: PlotAxis,
    },
    /// Remove results (the zip and its unpacked copy). A job that may still run (InProgress) needs --force.
    Rm {
        /// Result ids or unique prefixes; a task's name (or a prefix several ids share) names all its
        /// results, removed with --all or when you say yes at the prompt.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Remove every result a task name or shared prefix names (without it, grounds asks at a
        /// terminal and refuses elsewhere).
        #[arg(long)]
        all: bool,
        /// Remove InProgress records too (the SageMaker job itself is not stopped: `grounds stop` does that).
        #[arg(long)]
        force: bool,
        /// Say what would be removed and remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove results by age, status or number kept, and (--images) grounds' images no kept result uses.
    Gc {
        /// Results created longer ago than this: 30d, 12h, 2weeks, 90min.
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<std::time::Duration>,
        /// Results with this status: Completed, Failed, Stopped (InProgress needs --force).
        #[arg(long, value_name = "STATUS", value_parser = parse_status)]
        status: Option<crate::job::Status>,
        /// Keep the newest N results of each task; remove the rest (with the other criteria: of those).
        #[arg(long, value_name = "N")]
        keep_last: Option<usize>,
        /// Only results of this task (and, with --images, only its images).
        #[arg(long, value_name = "NAME")]
        task: Option<String>,
        /// Also remove the images grounds built (`grounds/<task>:<hash>`) that no kept result ran in.
        #[arg(long)]
        images: bool,
        /// The engine whose images to clean (default: DOCKER_HOST, else the local socket).
        #[arg(long, value_name = "URL", requires = "images")]
        docker_host: Option<String>,
        /// Remove InProgress records too.
        #[arg(long)]
        force: bool,
        /// Say what would be removed and how much it would free; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// What the horizontal axis of a plot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlotAxis {
    /// The place of each value in its series: 1, 2, 3, …
    Step,
    /// Seconds since the job started.
    Time,
}

/// Which results `results list` and `results export` show, and in which order.
#[derive(Debug, Clone, Default, Args)]
pub struct ListArgs {
    /// Only results of this task.
    #[arg(long, value_name = "NAME")]
    pub task: Option<String>,
    /// Only the steps of runs of this pipeline.
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Only results with this status (Completed, Failed, Stopped, InProgress).
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Order by this metric, highest first (results without it last).
    #[arg(long, value_name = "METRIC")]
    pub sort: Option<String>,
    /// With --sort: lowest first (for losses and errors).
    #[arg(long, requires = "sort")]
    pub ascending: bool,
}

/// An age as people write it (`30d`, `12h`, `2weeks`), by humantime's rules.
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not an age ({e}); write e.g. 30d, 12h, 2weeks or 90min"))
}

fn parse_status(text: &str) -> Result<crate::job::Status, String> {
    use crate::job::Status;
    [
        Status::Completed,
        Status::Failed,
        Status::Stopped,
        Status::InProgress,
    ]
    .into_iter()
    .find(|s| s.to_string().eq_ignore_ascii_case(text))
    .ok_or_else(|| {
        format!("unknown status `{text}`: use one of Completed, Failed, Stopped, InProgress")
    })
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to write task.toml into (default: the current one); it is never overwritten.
    pub dir: Option<PathBuf>,
    /// The script the task runs: its argparse options become hyperparameters where they can be read.
    #[arg(long, value_name = "SCRIPT", conflicts_with = "builtin")]
    pub from: Option<PathBuf>,
    /// A single-frame task of the builtin trainer on this CSV (or parquet) file.
    #[arg(long, value_name = "DATA", requires = "label")]
    pub builtin: Option<PathBuf>,
    /// With --builtin: the column to predict.
    #[arg(long, value_name = "COLUMN", requires = "builtin")]
    pub label: Option<String>,
}

/// `--set name=v1,v2,...`.
pub fn parse_set(text: &str) -> Result<(String, Vec<String>), String> {
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not name=v1,v2 (e.g. --set lr=0.1,0.01)"))?;
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if name.trim().is_empty() || values.iter().any(String::is_empty) {
        return Err(format!(
            "`{text}` is not name=v1,v2 (e.g. --set lr=0.1,0.01)"
        ));
    }
    Ok((name.trim().to_string(), values))
}
