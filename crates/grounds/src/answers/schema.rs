//! The shape of every `--json` answer, in one place: each command prints one of these types and nothing
//! else, so a key lives in one field of one type, and a change to it fails a snapshot test
//! (`schema/tests.rs`, against the files in `answers/snapshots/`). The README's JSON table describes the
//! same types.
//!
//! | command | answer |
//! |---|---|
//! | `train attached\|local\|remote`, `results fetch` | [`JobAnswer`] (a [`RunAnswer`], a [`DetachedAnswer`], a [`PlanAnswer`]) |
//! | a sweep (`--set`, `[sweep]`) | `[`[`SweepRow`]`]` |
//! | a pipeline file | `[`[`StepRow`]`]` |
//! | `results list` | `[`[`ListRow`]`]` |
//! | `results show`, `open`, `compare`, `export -o`, `plot` | [`ShowAnswer`], [`OpenAnswer`], [`CompareAnswer`], [`ExportAnswer`], [`PlotAnswer`] |
//! | `results fetch` of a job that had ended, or still runs (`--no-wait`) | [`FetchedAnswer`], [`StillRunningAnswer`] |
//! | `results rm`, `results gc` | [`RemovedAnswer`] |
//! | `stop`, `init` | [`StopAnswer`], [`InitAnswer`] |
//! | `cache list\|clear` | [`CacheAnswer`] |
//! | any error | [`ErrorAnswer`] |

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

pub use crate::executors::ModeFacts;
#[allow(
    unused_imports,
    reason = "the parts of a plan and of a remote run's facts, named here so that the schema reads in one place"
)]
pub use crate::executors::{ModePlan, Submitted};
pub use crate::run::lifecycle::Plan as PlanAnswer;
#[allow(
    unused_imports,
    reason = "the common part of a plan, named here so that the schema reads in one place"
)]
pub use crate::settings::CommonPlan;
pub use crate::store::results::Summary as ListRow;

use crate::job::collect::LeftOut;
use crate::job::metrics::Metrics;
use crate::job::{JobRecord, Mode, Status};

/// Final metric values by name: numbers, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn metric_map<S: Serializer>(values: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
    crate::job::metrics::value::serialize_map(values, s)
}

/// One metric value: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricValue(pub f64);

impl Serialize for MetricValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::job::metrics::value::to_json(self.0).serialize(s)
    }
}

/// What the answer of a job that ran or was submitted starts with.
#[derive(Debug, Clone, Serialize)]
pub struct JobHead {
    pub id: String,
    pub status: Status,
    pub mode: Mode,
    /// Final values (none yet for a submitted job).
    #[serde(serialize_with = "metric_map")]
    pub metrics: BTreeMap<String, f64>,
    pub result: PathBuf,
    pub reused: bool,
}

/// A job that ran to its end, or a completed twin that stands in for it (`reused`).
#[derive(Debug, Clone, Serialize)]
pub struct RunAnswer {
    #[serde(flatten)]
    pub head: JobHead,
    pub exit_code: Option<i32>,
    pub failure_reason: Option<String>,
    pub duration_seconds: Option<f64>,
    pub fingerprint: String,
    pub left_out: Vec<LeftOut>,
    /// Lines that looked like metric lines but were not recorded, a tally per kind.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub malformed_metric_lines: Vec<crate::job::metrics::MalformedLines>,
    /// Where it ran (`image`, `remote`, `submitted`); a reused twin says where it ran (`image` or
    /// `remote`).
    #[serde(flatten)]
    pub facts: ModeFacts,
}

/// A job submitted and left running (`--detach`): stored `InProgress` for `results fetch`.
#[derive(Debug, Clone, Serialize)]
pub struct DetachedAnswer {
    #[serde(flatten)]
    pub head: JobHead,
    #[serde(flatten)]
    pub facts: ModeFacts,
}

/// What one job came to, as a train command answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum JobAnswer {
    Run(Box<RunAnswer>),
    Detached(Box<DetachedAnswer>),
    Plan(Box<PlanAnswer>),
}

impl JobAnswer {
    /// The head of a job that ran or was submitted (none for a plan).
    pub fn head(&self) -> Option<&JobHead> {
        match self {
            JobAnswer::Run(run) => Some(&run.head),
            JobAnswer::Detached(detached) => Some(&detached.head),
            JobAnswer::Plan(_) => None,
        }
    }

    pub fn id(&self) -> Option<&str> {
        self.head().map(|head| head.id.as_str())
    }

    pub fn status(&self) -> Option<Status> {
        self.head().map(|head| head.status)
    }

    pub fn metrics(&self) -> Option<&BTreeMap<String, f64>> {
        self.head().map(|head| &head.metrics)
    }

    pub fn reused(&self) -> bool {
        self.head().is_some_and(|head| head.reused)
    }

    pub fn duration_seconds(&self) -> Option<f64> {
        match self {
            JobAnswer::Run(run) => run.duration_seconds,
            _ => None,
        }
    }
}

/// A member of a sweep: its name, the values it sets of the parameters that vary (a dry run's plan
/// has all of its hyperparameters instead), and its answer or its error.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hyperparameters: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub outcome: MemberOutcome,
}

/// A sweep member's answer, or why it could not run (`status` is then `"Error"`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MemberOutcome {
    Answer(JobAnswer),
    Error { status: &'static str, error: String },
}

/// A step of a pipeline, in step order.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum StepRow {
    /// It ran or was reused: its answer, and the step.
    Ran {
        step: String,
        #[serde(flatten)]
        answer: JobAnswer,
    },
    /// It could not start (`status` is `"Error"`).
    Error {
        step: String,
        status: &'static str,
        error: String,
    },
    /// A step it reads did not complete (`status` is `"Skipped"`).
    Skipped {
        step: String,
        status: &'static str,
        reason: String,
    },
    /// A dry run: whether it would run or reuse a result, or (`after`) why it cannot be planned yet.
    Planned {
        step: String,
        would: &'static str,
        reuses: Option<String>,
        after: Option<String>,
        fingerprint: Option<String>,
    },
}

/// A file of a result, with its size.
#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub name: String,
    pub size: u64,
}

/// `results show`: the zip, its record, its metrics with their series, its files.
#[derive(Debug, Clone, Serialize)]
pub struct ShowAnswer {
    pub result: PathBuf,
    pub job: JobRecord,
    pub metrics: Metrics,
    pub files: Vec<FileRow>,
}

/// `results open`: where the result was unpacked, and what an opening again put back or kept.
#[derive(Debug, Clone, Serialize)]
pub struct OpenAnswer {
    pub id: String,
    pub folder: PathBuf,
    #[serde(serialize_with = "metric_map")]
    pub metrics: BTreeMap<String, f64>,
    pub status: Status,
    pub restored: usize,
    pub kept: Vec<String>,
}

/// `results compare`: hyperparameters and final metrics by name and result, and the names that differ.
#[derive(Debug, Clone, Serialize)]
pub struct CompareAnswer {
    pub results: Vec<String>,
    /// Each result's column: its short label (a sweep member's name, else its task's, told apart by the
    /// id's random part when two share one) and where it ran.
    pub columns: Vec<CompareColumn>,
    pub hyperparameters: BTreeMap<String, BTreeMap<String, String>>,
    pub metrics: BTreeMap<String, BTreeMap<String, MetricValue>>,
    pub differing: Vec<String>,
}

/// One result's column in `results compare`.
#[derive(Debug, Clone, Serialize)]
pub struct CompareColumn {
    pub id: String,
    pub label: String,
    pub mode: Mode,
}

/// `results export -o FILE`: what was written.
#[derive(Debug, Clone, Serialize)]
pub struct ExportAnswer {
    pub path: PathBuf,
    pub format: crate::store::results::export::ExportFormat,
    pub results: usize,
    pub columns: usize,
}

/// `results plot`: the picture and what is in it.
#[derive(Debug, Clone, Serialize)]
pub struct PlotAnswer {
    pub path: PathBuf,
    pub metrics: Vec<String>,
    pub series: usize,
    pub results: Vec<String>,
}

/// `results fetch` of a job whose result was complete already.
#[derive(Debug, Clone, Serialize)]
pub struct FetchedAnswer {
    pub id: String,
    pub status: Status,
    pub mode: Mode,
    pub result: PathBuf,
}

/// `results fetch --no-wait` of a job still running.
#[derive(Debug, Clone, Serialize)]
pub struct StillRunningAnswer {
    pub id: String,
    pub status: Status,
    pub secondary_status: String,
}

/// `results rm` and `results gc`: what went (or, with `--dry-run`, would go), what was kept and why.
#[derive(Debug, Serialize)]
pub struct RemovedAnswer {
    pub dry_run: bool,
    pub removed: Vec<String>,
    pub bytes: u64,
    pub spared: Vec<crate::store::results::upkeep::Spared>,
    pub failed: Vec<crate::store::results::upkeep::Spared>,
    pub kept_open: Vec<crate::store::results::upkeep::KeptOpen>,
    /// With `gc --images`.
    pub images: Option<ImagesAnswer>,
}

/// What `gc --images` did to grounds' images.
#[derive(Debug, Serialize)]
pub struct ImagesAnswer {
    pub removed: Vec<crate::store::results::upkeep::Image>,
    pub bytes: u64,
    pub failed: Vec<crate::store::results::upkeep::Spared>,
}

/// `stop`.
#[derive(Debug, Clone, Serialize)]
pub struct StopAnswer {
    pub id: String,
    pub stopping: bool,
}

/// `init`: the task file written.
#[derive(Debug, Clone, Serialize)]
pub struct InitAnswer {
    pub task_file: PathBuf,
}

/// `cache list` and `cache clear`: the engine's part at the top level (as it always was), the local
/// caches under `local`, the data in S3 under `s3`.
#[derive(Debug, Default, Serialize)]
pub struct CacheAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_host: Option<String>,
    /// `cache list`: the data sets on the engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<crate::docker::volumes::CachedData>>,
    /// `cache clear`: the data sets removed from the engine, what that freed, and what could not go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<Vec<crate::docker::volumes::CachedData>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freed_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_removed: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalCache>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Cache>,
}

/// How many files a cache folder holds, and their bytes; with `clear`, whether they went.
#[derive(Debug, Clone, Serialize)]
pub struct FilesAndBytes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<bool>,
    pub files: usize,
    pub bytes: u64,
}

/// `cache list|clear --local`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LocalCache {
    Listed {
        results: Vec<crate::store::cache::Listed>,
        s3: Vec<crate::store::cache::Listed>,
        s3_objects: FilesAndBytes,
        hashes: FilesAndBytes,
    },
    Cleared {
        results: crate::store::cache::Cleared,
        s3: crate::store::cache::Cleared,
        #[serde(skip_serializing_if = "Option::is_none")]
        s3_objects: Option<FilesAndBytes>,
        #[serde(skip_serializing_if = "Option::is_none")]
        hashes: Option<FilesAndBytes>,
        freed_bytes: u64,
    },
}

/// `cache list|clear --s3`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum S3Cache {
    Listed {
        bucket: String,
        data: Vec<crate::cloud::sagemaker::datasets::Dataset>,
    },
    Cleared {
        bucket: String,
        removed: Vec<crate::cloud::sagemaker::datasets::Dataset>,
        kept: Vec<(String, String)>,
        freed_bytes: u64,
    },
}

/// Any command that could not do what was asked (exit code 2).
#[derive(Debug, Clone, Serialize)]
pub struct ErrorAnswer {
    pub error: String,
}

#[cfg(test)]
mod tests;
