//! The parts of a task that travel with a job (`task.json` in the package, `task` in `job.json`): what
//! runs, its container, its SageMaker settings and its channels, as plain serializable data.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[task.builtin]`: training that runs inside grounds itself.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuiltinSpec {
    pub kind: BuiltinKind,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(default)]
    pub model: ModelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_size: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltinKind {
    SingleFrame,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    #[default]
    LogisticRegression,
    LinearRegression,
}

/// `[container]`: how the image is made and what the container gets at run time.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_packages: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
}

/// `[remote]`: SageMaker settings; checked in detail by the remote executor.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size_gb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    /// Managed spot training; `max_wait` bounds the wait for capacity plus the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
    /// Sync /opt/ml/checkpoints to s3://<bucket>/sagemaker/<task>/checkpoints/<job>/.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<bool>,
}

// ---- the task as resolved ------------------------------------------------------------------------------

/// What the job runs: a program of the user's, or a builtin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Runner {
    Command(CommandSpec),
    Builtin(BuiltinSpec),
    Image(ImageTaskSpec),
}

/// An image task: the user's own training image, whose `train` reads `/opt/ml` itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageTaskSpec {
    pub uri: String,
}

/// A command task as it is delivered: `run` starts in the unpacked source folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommandSpec {
    pub run: Vec<String>,
    /// The requirements file, relative to the source folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<String>,
    /// A framework image (AWS's, or one with the sagemaker-training toolkit) the script runs on as it is
    /// on SageMaker, the source delivered as the SDK delivers it; attached runs go through the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_image: Option<String>,
}

impl CommandSpec {
    /// The script a framework image's toolkit starts (`sagemaker_program`): `run`'s second word.
    pub fn entry_point(&self) -> Option<&str> {
        self.framework_image.as_ref()?;
        self.run.get(1).map(String::as_str)
    }
}

/// A channel: a local file or folder (absolute here), or an `s3://` URI used as it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChannelSource {
    Local(PathBuf),
    S3(String),
    /// `result://<id or unique prefix>/model|output`: a folder of a stored result, resolved to the files
    /// of a completed result before the job is fingerprinted.
    Result {
        id: String,
        folder: ResultFolder,
    },
}

/// The folder of a stored result a channel can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultFolder {
    /// `model/`: what the job saved in `/opt/ml/model`.
    Model,
    /// `output/data/`: what the job saved in `/opt/ml/output/data`.
    Output,
}

impl ResultFolder {
    /// `model` or `output` (a trailing `/` allowed).
    pub fn parse(text: &str) -> Option<ResultFolder> {
        match text.trim_end_matches('/') {
            "model" => Some(ResultFolder::Model),
            "output" => Some(ResultFolder::Output),
            _ => None,
        }
    }

    /// Where its files are inside a result.
    pub fn path_in_result(self) -> &'static str {
        match self {
            ResultFolder::Model => "model",
            ResultFolder::Output => "output/data",
        }
    }
}

impl std::fmt::Display for ResultFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResultFolder::Model => "model",
            ResultFolder::Output => "output",
        })
    }
}

impl ChannelSource {
    pub fn describe(&self) -> String {
        match self {
            ChannelSource::Local(path) => path.display().to_string(),
            ChannelSource::S3(uri) => uri.clone(),
            ChannelSource::Result { id, folder } => format!("result://{id}/{folder}"),
        }
    }
}

/// The part of a task that travels inside the package as `task.json`: independent of where the task
/// file lies on this machine, so that the package hash identifies the code and the task, not the disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskSpec {
    pub name: String,
    pub version: String,
    pub runner: Runner,
    /// Hyperparameters as the task file gives them (strings, as SageMaker passes them).
    pub hyperparameters: BTreeMap<String, String>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub container: ContainerSpec,
    #[serde(default)]
    pub remote: RemoteSpec,
    /// `[metrics]`: name to regex, parsed from the output in every mode and sent to SageMaker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, String>,
}

impl TaskSpec {
    /// A task of `runner`, version 1, with no hyperparameters, channels, container, remote or metric
    /// settings: what the entries' own tests run.
    pub fn new(name: &str, runner: Runner) -> Self {
        TaskSpec {
            name: name.to_string(),
            version: "1".to_string(),
            runner,
            hyperparameters: BTreeMap::new(),
            channels: Vec::new(),
            container: ContainerSpec::default(),
            remote: RemoteSpec::default(),
            metrics: BTreeMap::new(),
        }
    }
}
