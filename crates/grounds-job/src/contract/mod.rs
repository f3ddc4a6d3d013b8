//! The SageMaker training-container contract: the `/opt/ml` layout, its config files, and the `SM_*`
//! environment that sagemaker-training-toolkit derives from them.
//!
//! One module owns all of it so that attached runs (a temporary root), local Docker and SageMaker see the
//! same files and the same variables. The `SM_*` environment is built in [`env`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pyjson::{self, PyValue};

mod env;
pub use env::{environment, Host, RawConfig};

/// Where SageMaker mounts the contract in a container.
pub const DEFAULT_ROOT: &str = "/opt/ml";
/// The toolkit's variable for a root other than `/opt/ml`; grounds' entry honours it too.
pub const ROOT_ENV: &str = "SAGEMAKER_BASE_DIR";

/// Where a job leaves the reason it failed, below its root.
pub const FAILURE_FILE: &str = "output/failure";

/// The channel that delivers a job's package (its code and task) at run time, as the SDK's `code` channel
/// delivers the source of network-isolated jobs: images hold no code, so a code change never builds or
/// pushes one. The entry unpacks it into `code/`; the program does not see it among its channels.
pub const PACKAGE_CHANNEL: &str = "grounds_package";
/// The package's file name in [`PACKAGE_CHANNEL`].
pub const PACKAGE_FILE: &str = "package.zip";

/// Paths under one root.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }
    pub fn input(&self) -> PathBuf {
        self.root.join("input")
    }
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("input/config")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("input/data")
    }
    pub fn channel_dir(&self, channel: &str) -> PathBuf {
        self.data_dir().join(channel)
    }
    /// The package in its channel, relative to the root.
    pub fn package_in_channel() -> PathBuf {
        Path::new("input/data")
            .join(PACKAGE_CHANNEL)
            .join(PACKAGE_FILE)
    }
    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }
    pub fn output_dir(&self) -> PathBuf {
        self.root.join("output")
    }
    pub fn output_data_dir(&self) -> PathBuf {
        self.root.join("output/data")
    }
    pub fn output_intermediate_dir(&self) -> PathBuf {
        self.root.join("output/intermediate")
    }
    pub fn failure_file(&self) -> PathBuf {
        self.root.join(FAILURE_FILE)
    }
    pub fn code_dir(&self) -> PathBuf {
        self.root.join("code")
    }
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn hyperparameters_file(&self) -> PathBuf {
        self.config_dir().join("hyperparameters.json")
    }
    pub fn input_data_config_file(&self) -> PathBuf {
        self.config_dir().join("inputdataconfig.json")
    }
    pub fn resource_config_file(&self) -> PathBuf {
        self.config_dir().join("resourceconfig.json")
    }

    /// Creates the folders a job expects to exist before it starts.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        for dir in [
            self.config_dir(),
            self.data_dir(),
            self.model_dir(),
            self.output_data_dir(),
            self.checkpoints_dir(),
        ] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }
}

/// `resourceconfig.json`, as SageMaker writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceConfig {
    pub current_host: String,
    pub hosts: Vec<String>,
    #[serde(default = "default_interface")]
    pub network_interface_name: String,
    #[serde(default = "default_instance_type")]
    pub current_instance_type: String,
    #[serde(default = "default_group")]
    pub current_group_name: String,
    #[serde(default)]
    pub instance_groups: Vec<InstanceGroup>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceGroup {
    pub instance_group_name: String,
    pub instance_type: String,
    pub hosts: Vec<String>,
}

fn default_interface() -> String {
    "eth0".into()
}
fn default_instance_type() -> String {
    "local".into()
}
fn default_group() -> String {
    "homogeneousCluster".into()
}

/// The names of a job's `count` hosts, as SageMaker gives them: `algo-1` … `algo-N`.
pub fn host_names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("algo-{i}")).collect()
}

impl ResourceConfig {
    /// The config of host `current` among `count` hosts named `algo-1` … `algo-N`.
    pub fn for_host(current: usize, count: usize, instance_type: &str) -> Self {
        let hosts = host_names(count);
        ResourceConfig {
            current_host: hosts[current - 1].clone(),
            network_interface_name: default_interface(),
            current_instance_type: instance_type.to_string(),
            current_group_name: default_group(),
            instance_groups: vec![InstanceGroup {
                instance_group_name: default_group(),
                instance_type: instance_type.to_string(),
                hosts: hosts.clone(),
            }],
            hosts,
        }
    }
}

/// One channel's entry in `inputdataconfig.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChannelConfig {
    #[serde(rename = "TrainingInputMode", default = "default_input_mode")]
    pub training_input_mode: String,
    #[serde(rename = "S3DistributionType", default = "default_distribution")]
    pub s3_distribution_type: String,
    #[serde(rename = "RecordWrapperType", default = "default_wrapper")]
    pub record_wrapper_type: String,
    #[serde(
        rename = "ContentType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_type: Option<String>,
}

fn default_input_mode() -> String {
    "File".into()
}
fn default_distribution() -> String {
    "FullyReplicated".into()
}
fn default_wrapper() -> String {
    "None".into()
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            training_input_mode: default_input_mode(),
            s3_distribution_type: default_distribution(),
            record_wrapper_type: default_wrapper(),
            content_type: None,
        }
    }
}

/// Everything under `input/config`, read or about to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    pub hyperparameters: BTreeMap<String, String>,
    pub input_data_config: BTreeMap<String, ChannelConfig>,
    pub resource_config: ResourceConfig,
}

impl JobConfig {
    pub fn write(&self, layout: &Layout) -> anyhow::Result<()> {
        std::fs::create_dir_all(layout.config_dir())?;
        write_json(&layout.hyperparameters_file(), &self.hyperparameters)?;
        write_json(&layout.input_data_config_file(), &self.input_data_config)?;
        write_json(&layout.resource_config_file(), &self.resource_config)?;
        Ok(())
    }

    pub fn read(layout: &Layout) -> anyhow::Result<JobConfig> {
        // SageMaker always writes all three; a hand-made root may omit the first two.
        let hyperparameters: BTreeMap<String, Value> =
            read_json_or_default(&layout.hyperparameters_file())?;
        let hyperparameters = hyperparameters
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        let mut input_data_config: BTreeMap<String, ChannelConfig> =
            read_json_or_default(&layout.input_data_config_file())?;
        // The package's channel is grounds' own, not one of the task's.
        input_data_config.remove(PACKAGE_CHANNEL);
        Ok(JobConfig {
            hyperparameters,
            input_data_config,
            resource_config: match read_json_or_default::<Option<ResourceConfig>>(
                &layout.resource_config_file(),
            )? {
                Some(config) => config,
                None => ResourceConfig::for_host(1, 1, "local"),
            },
        })
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn read_json_or_default<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
) -> anyhow::Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not valid JSON of the SageMaker contract",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The hyperparameter names the toolkit takes for itself (`params.SAGEMAKER_HYPERPARAMETERS`), besides
/// every other name that starts with `sagemaker_` (the framework parameters).
pub const SAGEMAKER_HYPERPARAMETERS: &[&str] = &[
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "default_user_module_name",
    "_tuning_objective_metric",
    "sagemaker_s3_output",
];

/// Whether a hyperparameter is the toolkit's (never an argument or `SM_HP_*` of the program).
pub fn is_sagemaker_hyperparameter(name: &str) -> bool {
    SAGEMAKER_HYPERPARAMETERS.contains(&name) || name.starts_with("sagemaker_")
}

/// The program's own hyperparameters, decoded as the toolkit decodes them, in name order.
pub fn user_hyperparameters(hyperparameters: &BTreeMap<String, String>) -> Vec<(String, PyValue)> {
    hyperparameters
        .iter()
        .filter(|(k, _)| !is_sagemaker_hyperparameter(k))
        .map(|(k, v)| (k.clone(), pyjson::decode(v)))
        .collect()
}

/// `mapping.to_cmd_args`: `--key value` sorted by key (`-k` for one letter); a dict as `k=v` pairs
/// sorted by key, everything else as Python's `str()`, `None` as an empty string.
pub fn hyperparameter_args(hyperparameters: &BTreeMap<String, String>) -> Vec<String> {
    let mut args = Vec::new();
    for (key, value) in user_hyperparameters(hyperparameters) {
        args.push(if key.chars().count() > 1 {
            format!("--{key}")
        } else {
            format!("-{key}")
        });
        args.push(match &value {
            PyValue::None => String::new(),
            PyValue::Dict(entries) => {
                let mut sorted: Vec<&(String, PyValue)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                sorted
                    .iter()
                    .map(|(k, v)| format!("{k}={}", pyjson::str(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            }
            other => pyjson::str(other),
        });
    }
    args
}

#[cfg(test)]
mod tests;
