//! The SageMaker training-container contract: the `/opt/ml` layout, its config files, and the `SM_*`
//! environment that sagemaker-training-toolkit derives from them.
//!
//! One module owns all of it so that attached runs (a temporary root), local Docker and SageMaker see the
//! same files and the same variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pyjson::{self, PyValue};

/// Where SageMaker mounts the contract in a container.
pub const DEFAULT_ROOT: &str = "/opt/ml";
/// The toolkit's variable for a root other than `/opt/ml`; grounds' entry honours it too.
pub const ROOT_ENV: &str = "SAGEMAKER_BASE_DIR";

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
        self.root.join("output/failure")
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

impl ResourceConfig {
    /// The config of host `current` among `count` hosts named `algo-1` … `algo-N`.
    pub fn for_host(current: usize, count: usize, instance_type: &str) -> Self {
        let hosts: Vec<String> = (1..=count).map(|i| format!("algo-{i}")).collect();
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
        Ok(JobConfig {
            hyperparameters,
            input_data_config: read_json_or_default(&layout.input_data_config_file())?,
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

/// `mapping.to_env_vars`'s value: strings as they are, `None` empty, anything else as compact JSON.
fn env_value(value: &PyValue) -> String {
    match value {
        PyValue::Str(s) => s.clone(),
        PyValue::None => String::new(),
        other => pyjson::dumps(other),
    }
}

/// The facts about the machine the entry runs on that go into the environment.
#[derive(Debug, Clone)]
pub struct Host {
    pub num_cpus: usize,
    pub num_gpus: usize,
    pub num_neurons: usize,
    pub job_name: String,
}

impl Host {
    /// What this machine has, counted as the toolkit counts it.
    pub fn detect(job_name: String, instance_type: &str) -> Host {
        Host {
            num_cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            num_gpus: count_gpus(),
            num_neurons: count_neurons(instance_type),
            job_name,
        }
    }
}

/// `nvidia-smi --list-gpus`, lines starting with `GPU `; 0 without it.
pub fn count_gpus() -> usize {
    std::process::Command::new("nvidia-smi")
        .arg("--list-gpus")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with("GPU "))
                .count()
        })
        .unwrap_or(0)
}

/// Neuron cores as the toolkit counts them: 64 on `trn2.48xlarge`, else `neuron-ls -j`; 0 without it.
pub fn count_neurons(instance_type: &str) -> usize {
    if instance_type.contains("trn2.48xlarge") {
        return 64;
    }
    std::process::Command::new("neuron-ls")
        .arg("-j")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<Vec<Value>>(&o.stdout).ok())
        .map(|devices| {
            devices
                .iter()
                .map(|d| d["nc_count"].as_u64().unwrap_or(0) as usize)
                .sum()
        })
        .unwrap_or(0)
}

/// The config files as the toolkit reads them: JSON as Python decodes it, keys in file order, unknown
/// keys kept (SageMaker adds fields, e.g. `topology`, that the toolkit passes on).
#[derive(Debug, Clone)]
pub struct RawConfig {
    pub resource: PyValue,
    pub input_data: PyValue,
}

impl RawConfig {
    pub fn read(layout: &Layout, config: &JobConfig) -> RawConfig {
        let read = |path: PathBuf, fallback: &dyn Fn() -> Option<String>| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| pyjson::loads(&text))
                .or_else(|| fallback().and_then(|text| pyjson::loads(&text)))
                .unwrap_or(PyValue::Dict(Vec::new()))
        };
        RawConfig {
            resource: read(layout.resource_config_file(), &|| {
                serde_json::to_string(&config.resource_config).ok()
            }),
            input_data: read(layout.input_data_config_file(), &|| {
                serde_json::to_string(&config.input_data_config).ok()
            }),
        }
    }
}

/// The environment the sagemaker-training toolkit gives a program (`Environment().to_env_vars()`, the
/// variables it sets while building it, and `PYTHONPATH` with the code folder first), for a job under
/// `layout`. `program` is the entry point (`train.py`); `lookup` reads this process's environment.
pub fn environment(
    layout: &Layout,
    config: &JobConfig,
    raw: &RawConfig,
    host: &Host,
    program: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    let path = |p: PathBuf| PyValue::Str(p.to_string_lossy().into_owned());
    let mut sagemaker: Vec<(String, PyValue)> = Vec::new();
    let mut hyperparameters: Vec<(String, PyValue)> = Vec::new();
    for (key, text) in &config.hyperparameters {
        let value = pyjson::decode(text);
        if is_sagemaker_hyperparameter(key) {
            sagemaker.push((key.clone(), value));
        } else {
            hyperparameters.push((key.clone(), value));
        }
    }
    let sm = |name: &str| sagemaker.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let framework_params: Vec<(String, PyValue)> = sagemaker
        .iter()
        .filter(|(k, _)| !SAGEMAKER_HYPERPARAMETERS.contains(&k.as_str()))
        .cloned()
        .collect();
    let framework = |name: &str| framework_params.iter().find(|(k, _)| k == name).map(|(_, v)| v);

    let resource = &raw.resource;
    let text_of = |value: Option<&PyValue>, default: &str| match value {
        Some(PyValue::Str(s)) => s.clone(),
        Some(other) => pyjson::str(other),
        None => default.to_string(),
    };
    let hosts = resource.get("hosts").cloned().unwrap_or(PyValue::List(Vec::new()));
    let host_names: Vec<String> = match &hosts {
        PyValue::List(items) => items.iter().map(pyjson::str).collect(),
        _ => Vec::new(),
    };
    let current_host = text_of(resource.get("current_host"), "");
    let current_instance_type = resource
        .get("current_instance_type")
        .cloned()
        .unwrap_or_else(|| PyValue::str("local"));
    let current_group = resource
        .get("current_group_name")
        .cloned()
        .unwrap_or_else(|| PyValue::str("homogeneousCluster"));
    let groups: Vec<&PyValue> = match resource.get("instance_groups") {
        Some(PyValue::List(items)) => items.iter().collect(),
        _ => Vec::new(),
    };
    let group_name = |g: &PyValue| g.get("instance_group_name").cloned().unwrap_or(PyValue::None);
    let group_hosts = |g: &PyValue| match g.get("hosts") {
        Some(PyValue::List(items)) => items.clone(),
        _ => Vec::new(),
    };
    let current_group_hosts: Vec<PyValue> = groups
        .iter()
        .find(|g| group_name(g) == current_group)
        .map(|g| group_hosts(g))
        .unwrap_or_default();
    let instance_groups: Vec<PyValue> = groups.iter().map(|g| group_name(g)).collect();
    let is_hetero = instance_groups.len() > 1;
    let instance_groups_dict = PyValue::Dict(
        groups
            .iter()
            .map(|g| (pyjson::str(&group_name(g)), (*g).clone()))
            .collect(),
    );
    let distributed = [
        "sagemaker_mpi_enabled",
        "sagemaker_parameter_server_enabled",
        "sagemaker_distributed_dataparallel_enabled",
        "sagemaker_pytorch_ddp_enabled",
        "sagemaker_pytorch_xla_multi_worker_enabled",
        "sagemaker_multi_worker_mirrored_strategy_enabled",
        "sagemaker_torch_distributed_enabled",
    ]
    .iter()
    .any(|name| framework(name).is_some_and(PyValue::truthy));
    let distribution_groups = match framework("sagemaker_distribution_instance_groups") {
        Some(value) => value.clone(),
        None if distributed => PyValue::List(vec![current_group.clone()]),
        None => PyValue::List(Vec::new()),
    };
    let distribution_group_names: Vec<PyValue> = match &distribution_groups {
        PyValue::List(items) => items.clone(),
        _ => Vec::new(),
    };
    let distribution_hosts: Vec<PyValue> = if groups.is_empty() {
        match &hosts {
            PyValue::List(items) => items.clone(),
            _ => Vec::new(),
        }
    } else {
        groups
            .iter()
            .filter(|g| distribution_group_names.contains(&group_name(g)))
            .flat_map(|g| group_hosts(g))
            .collect()
    };
    let master = distribution_hosts
        .first()
        .map(pyjson::str)
        .or_else(|| host_names.first().cloned())
        .unwrap_or_default();
    let network_interface = resource
        .get("network_interface_name")
        .cloned()
        .unwrap_or_else(|| PyValue::str("eth0"));
    let topology = resource
        .get("topology")
        .cloned()
        .unwrap_or(PyValue::List(Vec::new()));
    let channels: Vec<String> = match &raw.input_data {
        PyValue::Dict(entries) => entries.iter().map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    };
    let channel_dirs = PyValue::Dict(
        channels
            .iter()
            .map(|name| (name.clone(), path(layout.channel_dir(name))))
            .collect(),
    );
    let mut sorted_channels = channels.clone();
    sorted_channels.sort();

    let user_entry_point = lookup("SAGEMAKER_PROGRAM")
        .map(PyValue::Str)
        .or_else(|| sm("sagemaker_program").cloned())
        .unwrap_or_else(|| PyValue::str(program));
    let module_name = {
        let name = pyjson::str(&user_entry_point);
        PyValue::Str(name.strip_suffix(".py").unwrap_or(&name).to_string())
    };
    let module_dir = sm("sagemaker_submit_directory")
        .map(|v| PyValue::Str(pyjson::str(v)))
        .unwrap_or_else(|| path(layout.code_dir()));
    let log_level = sm("sagemaker_container_log_level")
        .cloned()
        .unwrap_or_else(|| PyValue::int(20));
    let framework_module = lookup("SAGEMAKER_TRAINING_MODULE")
        .map(PyValue::Str)
        .unwrap_or(PyValue::None);
    let job_name = lookup("TRAINING_JOB_NAME")
        .map(PyValue::Str)
        .unwrap_or_else(|| PyValue::str(&host.job_name));
    let model_parallel = match lookup("SM_HP_MP_PARAMETERS") {
        None => PyValue::None,
        Some(p) if p.is_empty() => PyValue::str(""),
        Some(p) => PyValue::Bool(p != "{}"),
    };
    let user_args = PyValue::strs(hyperparameter_args(&config.hyperparameters));
    let hps = PyValue::Dict(hyperparameters.clone());

    let training_env = PyValue::Dict(vec![
        ("additional_framework_parameters".into(), PyValue::Dict(framework_params.clone())),
        ("channel_input_dirs".into(), channel_dirs.clone()),
        ("current_host".into(), PyValue::str(&current_host)),
        ("current_instance_group".into(), current_group.clone()),
        ("current_instance_group_hosts".into(), PyValue::List(current_group_hosts.clone())),
        ("current_instance_type".into(), current_instance_type.clone()),
        ("distribution_hosts".into(), PyValue::List(distribution_hosts)),
        ("distribution_instance_groups".into(), distribution_groups.clone()),
        ("framework_module".into(), framework_module.clone()),
        ("hosts".into(), hosts.clone()),
        ("hyperparameters".into(), hps.clone()),
        ("input_config_dir".into(), path(layout.config_dir())),
        ("input_data_config".into(), raw.input_data.clone()),
        ("input_dir".into(), path(layout.input())),
        ("instance_groups".into(), PyValue::List(instance_groups.clone())),
        ("instance_groups_dict".into(), instance_groups_dict.clone()),
        ("is_hetero".into(), PyValue::Bool(is_hetero)),
        ("is_master".into(), PyValue::Bool(current_host == master)),
        ("is_modelparallel_enabled".into(), model_parallel),
        ("is_smddpmprun_installed".into(), PyValue::Bool(on_path("smddpmprun"))),
        ("is_smddprun_installed".into(), PyValue::Bool(on_path("smddprun"))),
        ("job_name".into(), job_name),
        ("log_level".into(), log_level.clone()),
        ("master_hostname".into(), PyValue::str(master)),
        ("model_dir".into(), path(layout.model_dir())),
        ("module_dir".into(), module_dir.clone()),
        ("module_name".into(), module_name.clone()),
        ("network_interface_name".into(), network_interface.clone()),
        ("num_cpus".into(), PyValue::int(host.num_cpus)),
        ("num_gpus".into(), PyValue::int(host.num_gpus)),
        ("num_neurons".into(), PyValue::int(host.num_neurons)),
        ("output_data_dir".into(), path(layout.output_data_dir())),
        ("output_dir".into(), path(layout.output_dir())),
        ("output_intermediate_dir".into(), path(layout.output_intermediate_dir())),
        ("resource_config".into(), resource.clone()),
        ("topology".into(), topology.clone()),
        ("user_entry_point".into(), user_entry_point.clone()),
    ]);

    let mut source: Vec<(String, PyValue)> = vec![
        ("hosts".into(), hosts),
        ("network_interface_name".into(), network_interface),
        ("hps".into(), hps),
        ("user_entry_point".into(), user_entry_point),
        ("framework_params".into(), PyValue::Dict(framework_params)),
        ("resource_config".into(), resource.clone()),
        ("input_data_config".into(), raw.input_data.clone()),
        ("output_data_dir".into(), path(layout.output_data_dir())),
        ("channels".into(), PyValue::strs(sorted_channels)),
        ("current_host".into(), PyValue::str(&current_host)),
        ("current_instance_type".into(), current_instance_type),
        ("current_instance_group".into(), current_group),
        ("current_instance_group_hosts".into(), PyValue::List(current_group_hosts)),
        ("instance_groups".into(), PyValue::List(instance_groups)),
        ("instance_groups_dict".into(), instance_groups_dict),
        ("distribution_instance_groups".into(), distribution_groups),
        ("is_hetero".into(), PyValue::Bool(is_hetero)),
        ("module_name".into(), module_name),
        ("log_level".into(), log_level),
        ("framework_module".into(), framework_module),
        ("input_dir".into(), path(layout.input())),
        ("input_config_dir".into(), path(layout.config_dir())),
        ("output_dir".into(), path(layout.output_dir())),
        ("num_cpus".into(), PyValue::int(host.num_cpus)),
        ("num_gpus".into(), PyValue::int(host.num_gpus)),
        ("num_neurons".into(), PyValue::int(host.num_neurons)),
        ("model_dir".into(), path(layout.model_dir())),
        ("module_dir".into(), module_dir),
        ("training_env".into(), training_env.clone()),
        ("user_args".into(), user_args),
        ("output_intermediate_dir".into(), path(layout.output_intermediate_dir())),
    ];
    if topology.truthy() {
        source.push(("topology".into(), topology));
    }
    for name in &channels {
        source.push((format!("channel_{name}"), path(layout.channel_dir(name))));
    }
    for (key, value) in &hyperparameters {
        source.push((format!("hp_{key}"), value.clone()));
    }
    let mut env: BTreeMap<String, String> = source
        .into_iter()
        .map(|(k, v)| (format!("SM_{}", k.to_uppercase()), env_value(&v)))
        .collect();

    // What building the toolkit's Environment sets in its own environment, which the program inherits.
    env.insert("CURRENT_HOST".into(), current_host);
    env.insert(
        "SAGEMAKER_JOB_NAME".into(),
        sm("sagemaker_job_name").map(pyjson::str).unwrap_or_default(),
    );
    env.insert(
        "SAGEMAKER_REGION".into(),
        sm("sagemaker_region")
            .map(pyjson::str)
            .or_else(|| boto3_region(lookup))
            .unwrap_or_default(),
    );
    env.insert("TRAINING_JOB_NAME".into(), host.job_name.clone());
    // The code folder first, as the toolkit's sys.path has it.
    let code = layout.code_dir().to_string_lossy().into_owned();
    env.insert(
        "PYTHONPATH".into(),
        match lookup("PYTHONPATH").filter(|p| !p.is_empty()) {
            Some(rest) => format!("{code}:{rest}"),
            None => code,
        },
    );
    env
}

/// The region `boto3.session.Session().region_name` finds: `AWS_DEFAULT_REGION`, else `region` of the
/// profile (`AWS_PROFILE`, else `default`) in the AWS config file.
fn boto3_region(lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(region) = lookup("AWS_DEFAULT_REGION").filter(|r| !r.is_empty()) {
        return Some(region);
    }
    let file = lookup("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| lookup("HOME").map(|home| Path::new(&home).join(".aws/config")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let profile = lookup("AWS_PROFILE")
        .or_else(|| lookup("AWS_DEFAULT_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let wanted = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == wanted;
        } else if inside {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "region" {
                    return Some(value.trim().to_string());
                }
            }
        }
    }
    None
}

/// Whether a program is on PATH (`which`).
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join(program))
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> JobConfig {
        JobConfig {
            hyperparameters: [
                ("batch_size".to_string(), "25".to_string()),
                ("lr".to_string(), "0.001".to_string()),
                ("optimizer".to_string(), "adam".to_string()),
                ("use_bn".to_string(), "true".to_string()),
                ("layers".to_string(), "[64, 32]".to_string()),
                ("n".to_string(), "héllo".to_string()),
            ]
            .into_iter()
            .collect(),
            input_data_config: [
                ("training".to_string(), ChannelConfig::default()),
                ("testing".to_string(), ChannelConfig::default()),
            ]
            .into_iter()
            .collect(),
            resource_config: ResourceConfig::for_host(2, 2, "ml.m5.large"),
        }
    }

    fn env() -> BTreeMap<String, String> {
        let host = Host {
            num_cpus: 4,
            num_gpus: 0,
            num_neurons: 0,
            job_name: "job-1".into(),
        };
        let layout = Layout::new("/opt/ml");
        let config = config();
        let raw = RawConfig::read(&layout, &config);
        environment(&layout, &config, &raw, &host, "train.py", &|_| None)
    }

    /// Values as sagemaker-training-toolkit's ENVIRONMENT_VARIABLES.md documents them for /opt/ml.
    #[test]
    fn documented_paths_and_lists() {
        let env = env();
        assert_eq!(env["SM_MODEL_DIR"], "/opt/ml/model");
        assert_eq!(env["SM_CHANNELS"], r#"["testing","training"]"#);
        assert_eq!(env["SM_CHANNEL_TRAINING"], "/opt/ml/input/data/training");
        assert_eq!(env["SM_CHANNEL_TESTING"], "/opt/ml/input/data/testing");
        assert_eq!(env["SM_HOSTS"], r#"["algo-1","algo-2"]"#);
        assert_eq!(env["SM_CURRENT_HOST"], "algo-2");
        assert_eq!(env["SM_NUM_CPUS"], "4");
        assert_eq!(env["SM_NUM_GPUS"], "0");
        assert_eq!(env["SM_NUM_NEURONS"], "0");
        assert_eq!(env["SM_OUTPUT_DATA_DIR"], "/opt/ml/output/data");
        assert_eq!(env["SM_OUTPUT_DIR"], "/opt/ml/output");
        assert_eq!(env["SM_INPUT_DIR"], "/opt/ml/input");
        assert_eq!(env["SM_INPUT_CONFIG_DIR"], "/opt/ml/input/config");
        assert_eq!(env["SM_MODULE_DIR"], "/opt/ml/code");
        assert_eq!(env["SM_MODULE_NAME"], "train");
        assert_eq!(env["SM_USER_ENTRY_POINT"], "train.py");
        assert_eq!(env["SM_NETWORK_INTERFACE_NAME"], "eth0");
        assert_eq!(env["TRAINING_JOB_NAME"], "job-1");
        assert_eq!(env["CURRENT_HOST"], "algo-2");
        assert_eq!(env["PYTHONPATH"], "/opt/ml/code");
        for gone in ["SM_HP_FILE", "SM_INPUT_DATA_CONFIG_FILE", "SM_RESOURCE_CONFIG_FILE"] {
            assert!(!env.contains_key(gone), "{gone}");
        }
    }

    /// Strings pass as they are; everything else is compact JSON with sorted keys and ASCII escapes.
    #[test]
    fn hyperparameters_follow_toolkit_formatting() {
        let env = env();
        assert_eq!(env["SM_HP_BATCH_SIZE"], "25");
        assert_eq!(env["SM_HP_LR"], "0.001");
        assert_eq!(env["SM_HP_OPTIMIZER"], "adam");
        assert_eq!(env["SM_HP_USE_BN"], "true");
        assert_eq!(env["SM_HP_LAYERS"], "[64,32]");
        assert_eq!(env["SM_HP_N"], "héllo");
        assert_eq!(
            env["SM_HPS"],
            r#"{"batch_size":25,"layers":[64,32],"lr":0.001,"n":"h\u00e9llo","optimizer":"adam","use_bn":true}"#
        );
        assert_eq!(
            env["SM_USER_ARGS"],
            r#"["--batch_size","25","--layers","[64, 32]","--lr","0.001","-n","h\u00e9llo","--optimizer","adam","--use_bn","True"]"#
        );
        let training_env: Value = serde_json::from_str(&env["SM_TRAINING_ENV"]).unwrap();
        assert_eq!(training_env["hyperparameters"]["batch_size"], 25);
        assert_eq!(training_env["current_host"], "algo-2");
        assert_eq!(
            training_env["channel_input_dirs"]["training"],
            "/opt/ml/input/data/training"
        );
        let resource: Value = serde_json::from_str(&env["SM_RESOURCE_CONFIG"]).unwrap();
        assert_eq!(resource["current_instance_type"], "ml.m5.large");
        assert_eq!(resource["instance_groups"][0]["hosts"][1], "algo-2");
        let input: Value = serde_json::from_str(&env["SM_INPUT_DATA_CONFIG"]).unwrap();
        assert_eq!(input["training"]["TrainingInputMode"], "File");
    }

    #[test]
    fn sagemaker_hyperparameters_are_the_toolkits_not_the_programs() {
        let mut config = config();
        for (k, v) in [
            ("sagemaker_program", "\"train.py\""),
            ("sagemaker_region", "\"eu-west-1\""),
            ("sagemaker_mpi_enabled", "true"),
            ("_tuning_objective_metric", "\"loss\""),
            ("file", "x.csv"),
        ] {
            config.hyperparameters.insert(k.into(), v.into());
        }
        let args = hyperparameter_args(&config.hyperparameters);
        assert!(!args.iter().any(|a| a.contains("sagemaker") || a.contains("tuning")), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["--file", "x.csv"]));
        let layout = Layout::new("/opt/ml");
        let raw = RawConfig::read(&layout, &config);
        let host = Host {
            num_cpus: 1,
            num_gpus: 0,
            num_neurons: 0,
            job_name: "j".into(),
        };
        let env = environment(&layout, &config, &raw, &host, "train.py", &|_| None);
        assert_eq!(env["SM_HP_FILE"], "x.csv");
        assert_eq!(env["SM_FRAMEWORK_PARAMS"], r#"{"sagemaker_mpi_enabled":true}"#);
        assert_eq!(env["SAGEMAKER_REGION"], "eu-west-1");
        assert!(!env.contains_key("SM_HP_SAGEMAKER_REGION"));
        let training_env: Value = serde_json::from_str(&env["SM_TRAINING_ENV"]).unwrap();
        assert_eq!(training_env["distribution_instance_groups"], serde_json::json!(["homogeneousCluster"]));
    }

    #[test]
    fn config_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        config().write(&layout).unwrap();
        assert_eq!(JobConfig::read(&layout).unwrap(), config());
        let written: Value =
            serde_json::from_slice(&std::fs::read(layout.hyperparameters_file()).unwrap()).unwrap();
        assert!(
            written.as_object().unwrap().values().all(Value::is_string),
            "all values are strings"
        );
    }
}
