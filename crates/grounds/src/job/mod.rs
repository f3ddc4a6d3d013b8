//! A job: what ran (mode, status) and its record, `job.json`, made by one constructor when the job starts
//! and finished from one `Outcome` when it ends. The lowest floor every mode, the store and the commands
//! share; it knows nothing of how a job runs.

pub mod channels;
pub mod collect;
pub mod datahash;
pub mod entries;
pub mod fingerprint;
pub mod log;
pub mod metrics;
pub mod package;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::task::TaskSpec;
use crate::job::collect::{Collected, LeftOut};
use crate::job::metrics::Metrics;
use crate::job::package::PackageInfo;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Attached,
    Local,
    Remote,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Attached => "attached",
            Mode::Local => "local",
            Mode::Remote => "remote",
        })
    }
}

/// The status names of SageMaker's `TrainingJobStatus`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Completed,
    Failed,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::InProgress => "InProgress",
            Status::Completed => "Completed",
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
        })
    }
}

/// Where a job runs, and for a job that outlives grounds, how to find it again. In `job.json` it is
/// `mode`, with `remote` beside it for a SageMaker job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "PlacementFields", try_from = "PlacementFields")]
pub enum Placement {
    Attached,
    Local,
    SageMaker(SageMakerJob),
}

/// [`Placement`] as `job.json` spells it.
#[derive(Serialize, Deserialize)]
struct PlacementFields {
    mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote: Option<SageMakerJob>,
}

impl From<Placement> for PlacementFields {
    fn from(placement: Placement) -> Self {
        let mode = placement.mode();
        let remote = match placement {
            Placement::SageMaker(job) => Some(job),
            Placement::Attached | Placement::Local => None,
        };
        PlacementFields { mode, remote }
    }
}

impl TryFrom<PlacementFields> for Placement {
    type Error = String;

    fn try_from(fields: PlacementFields) -> Result<Self, String> {
        match (fields.mode, fields.remote) {
            (Mode::Attached, _) => Ok(Placement::Attached),
            (Mode::Local, _) => Ok(Placement::Local),
            (Mode::Remote, Some(job)) => Ok(Placement::SageMaker(job)),
            (Mode::Remote, None) => Err(
                "a remote job without `remote` (where it runs on SageMaker): the record is damaged"
                    .into(),
            ),
        }
    }
}

impl Placement {
    pub fn mode(&self) -> Mode {
        match self {
            Placement::Attached => Mode::Attached,
            Placement::Local => Mode::Local,
            Placement::SageMaker(_) => Mode::Remote,
        }
    }

    /// The job goes on without grounds, so `results fetch` and `grounds stop` can reach it.
    pub fn outlives_grounds(&self) -> bool {
        match self {
            Placement::SageMaker(_) => true,
            Placement::Attached | Placement::Local => false,
        }
    }
}

/// `job.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    /// `mode`, and `remote` for a SageMaker job.
    #[serde(flatten)]
    pub placement: Placement,
    pub status: Status,
    /// The task as resolved, hyperparameters included.
    pub task: TaskSpec,
    pub task_file: String,
    pub hyperparameters: BTreeMap<String, String>,
    /// Channel name to where its data came from.
    pub channels: BTreeMap<String, String>,
    /// Stored results read through `result://` channels: the provenance of this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ResultInput>,
    /// The pipeline and step it ran as, if it ran as one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineStep>,
    pub hosts: Vec<String>,
    /// The image it ran in, as grounds tagged it (`grounds/<task>:<hash>`; none for an attached job):
    /// what `results gc --images` keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub exit_code: Option<i32>,
    pub failure_reason: Option<String>,
    pub fingerprint: String,
    pub package: PackageInfo,
    pub grounds_version: String,
    /// What the job left in `model/` and `output/` that is not in the result, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<LeftOut>,
    /// Lines the job printed that looked like metric lines but were not, a tally per kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub malformed_metric_lines: Vec<crate::job::metrics::MalformedLines>,
}

/// Where a SageMaker job lives; kept in job.json so that `results fetch` and `stop` can find it again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SageMakerJob {
    pub job_name: String,
    pub region: String,
    pub profile: Option<String>,
    pub bucket: String,
    pub output_path: String,
    pub image_uri: String,
}

/// How waiting for a job ended, wherever one is waited for (SageMaker's API, a mode, `results fetch`):
/// it ended, and `T` is what it came to; or it goes on elsewhere (`--detach`, Ctrl-C without
/// `--stop-on-interrupt`) and `results fetch` completes it later.
#[derive(Debug)]
pub enum Waited<T> {
    Ended(T),
    Detached,
}

/// What a run of a job came to, in any mode.
#[derive(Debug)]
pub struct Outcome {
    pub status: Status,
    pub exit_code: Option<i32>,
    pub failure_reason: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub metrics: Metrics,
    /// Lines that looked like metric lines but were not, a tally per kind.
    pub malformed_metric_lines: Vec<crate::job::metrics::MalformedLines>,
    pub hosts: Vec<String>,
    /// What the job left in `model/` and `output/`, to be stored.
    pub files: Collected,
    /// Everything the job printed.
    pub logs: std::path::PathBuf,
}

/// What a job is, once launched.
/// A stored result a job read through a `result://` channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultInput {
    pub channel: String,
    /// The full id of the result read.
    pub result: String,
    pub folder: crate::config::task::ResultFolder,
}

/// The pipeline and step a job ran as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineStep {
    pub name: String,
    pub step: String,
}

pub struct Started<'a> {
    pub id: &'a str,
    pub placement: Placement,
    pub task: &'a TaskSpec,
    pub task_file: &'a Path,
    /// Channel name to where its data comes from.
    pub channels: BTreeMap<String, String>,
    /// The stored results it reads (`result://` channels).
    pub inputs: Vec<ResultInput>,
    pub pipeline: Option<PipelineStep>,
    pub hosts: Vec<String>,
    pub image: Option<String>,
    pub fingerprint: &'a str,
    pub package: &'a PackageInfo,
}

impl JobRecord {
    /// The record of a job launched now: `InProgress`, nothing known of its end.
    pub fn started(job: Started) -> JobRecord {
        JobRecord {
            id: job.id.to_string(),
            placement: job.placement,
            status: Status::InProgress,
            task: job.task.clone(),
            task_file: job.task_file.display().to_string(),
            hyperparameters: job.task.hyperparameters.clone(),
            channels: job.channels,
            inputs: job.inputs,
            pipeline: job.pipeline,
            hosts: job.hosts,
            image: job.image,
            started_at: Utc::now(),
            ended_at: None,
            duration_seconds: None,
            exit_code: None,
            failure_reason: None,
            fingerprint: job.fingerprint.to_string(),
            package: job.package.clone(),
            grounds_version: env!("CARGO_PKG_VERSION").to_string(),
            left_out: Vec::new(),
            malformed_metric_lines: Vec::new(),
        }
    }

    /// The record of the job as it ended. A job that ran here keeps the time the outcome says it started;
    /// one that runs elsewhere (SageMaker), the time it was submitted.
    pub fn finish(&mut self, outcome: &Outcome) {
        if !self.placement.outlives_grounds() {
            self.started_at = outcome.started_at;
        }
        self.status = outcome.status;
        self.hosts = outcome.hosts.clone();
        self.ended_at = Some(outcome.ended_at);
        self.duration_seconds =
            Some((outcome.ended_at - self.started_at).num_milliseconds() as f64 / 1000.0);
        self.exit_code = outcome.exit_code;
        self.failure_reason = outcome.failure_reason.clone();
        self.malformed_metric_lines = outcome.malformed_metric_lines.clone();
    }

    pub fn mode(&self) -> Mode {
        self.placement.mode()
    }

    /// Where the job runs on SageMaker, if it does.
    pub fn sagemaker(&self) -> Option<&SageMakerJob> {
        match &self.placement {
            Placement::SageMaker(job) => Some(job),
            Placement::Attached | Placement::Local => None,
        }
    }
}

/// The failure reason of a job the user stopped, keeping what the job itself said.
pub fn stopped_reason(theirs: Option<String>) -> String {
    let reason = "Stopped by the user (Ctrl-C or SIGTERM)";
    match theirs {
        Some(theirs) => format!("{reason}; the job said: {theirs}"),
        None => reason.to_string(),
    }
}
