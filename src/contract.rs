//! The SageMaker training-container contract: the `/opt/ml` layout, its config files, and the `SM_*`
//! environment that sagemaker-training-toolkit derives from them.
//!
//! One module owns all of it so that attached runs (a temporary root), local Docker and SageMaker see the
//! same files and the same variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

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

/// A hyperparameter as the toolkit sees it: JSON text is decoded, anything else stays a string.
pub fn decode_hyperparameter(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// The toolkit's value formatting for environment variables: strings as they are, anything else as
/// compact JSON with sorted keys and ASCII escapes.
pub fn env_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => ascii_json(&sort_keys(other)),
    }
}

fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut sorted: Vec<(&String, &Value)> = map.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sort_keys(v)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// `json.dumps(..., separators=(",", ":"), ensure_ascii=True)`.
fn ascii_json(value: &Value) -> String {
    let compact = value.to_string();
    let mut out = String::with_capacity(compact.len());
    for c in compact.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Python's `str()` of a decoded hyperparameter, as the toolkit puts it on the command line.
pub fn python_str(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => python_float_repr(f),
            _ => n.to_string(),
        },
        Value::Object(map) => {
            // The toolkit writes a mapping as k=v pairs, sorted by key.
            let mut pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", python_str(v)))
                .collect();
            pairs.sort();
            pairs.join(",")
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

fn python_repr(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Null => "None".into(),
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("'{k}': {}", python_repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => python_str(other),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, scientific below 1e-4 and from 1e16.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{f:e}"); // e.g. "1.5e-5", "1e16"
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..16).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    }
}

/// The hyperparameters as command-line arguments: `--key value`, sorted by key, `-k` for one letter.
pub fn hyperparameter_args(hyperparameters: &BTreeMap<String, String>) -> Vec<String> {
    let mut args = Vec::new();
    for (key, text) in hyperparameters {
        args.push(if key.chars().count() > 1 {
            format!("--{key}")
        } else {
            format!("-{key}")
        });
        args.push(python_str(&decode_hyperparameter(text)));
    }
    args
}

/// The facts about the machine the entry runs on that go into the environment.
#[derive(Debug, Clone)]
pub struct Host {
    pub num_cpus: usize,
    pub num_gpus: usize,
    pub job_name: String,
}

/// The `SM_*` environment (and `TRAINING_JOB_NAME`) the toolkit would set for a job under `layout`.
pub fn environment(
    layout: &Layout,
    config: &JobConfig,
    host: &Host,
    module_name: &str,
) -> BTreeMap<String, String> {
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    let hyperparameters: Map<String, Value> = config
        .hyperparameters
        .iter()
        .map(|(k, v)| (k.clone(), decode_hyperparameter(v)))
        .collect();
    let channel_dirs: Map<String, Value> = config
        .input_data_config
        .keys()
        .map(|name| (name.clone(), Value::String(path(layout.channel_dir(name)))))
        .collect();
    let mut channels: Vec<&String> = config.input_data_config.keys().collect();
    channels.sort();
    let resource = &config.resource_config;
    let group_hosts = resource
        .instance_groups
        .iter()
        .find(|g| g.instance_group_name == resource.current_group_name)
        .map(|g| g.hosts.clone())
        .unwrap_or_else(|| resource.hosts.clone());
    let instance_groups: Vec<&String> = resource
        .instance_groups
        .iter()
        .map(|g| &g.instance_group_name)
        .collect();
    let instance_groups_dict: Map<String, Value> = resource
        .instance_groups
        .iter()
        .map(|g| {
            (
                g.instance_group_name.clone(),
                serde_json::to_value(g).unwrap_or(Value::Null),
            )
        })
        .collect();
    let user_args = hyperparameter_args(&config.hyperparameters);
    // Plain structs of strings and numbers: serializing them cannot fail.
    let resource_value = serde_json::to_value(resource).unwrap_or(Value::Null);
    let input_data_config =
        serde_json::to_value(&config.input_data_config).unwrap_or(Value::Null);
    let master = resource
        .hosts
        .first()
        .cloned()
        .unwrap_or_else(|| resource.current_host.clone());

    let training_env = json!({
        "additional_framework_parameters": {},
        "channel_input_dirs": channel_dirs,
        "current_host": resource.current_host,
        "current_instance_group": resource.current_group_name,
        "current_instance_group_hosts": group_hosts,
        "current_instance_type": resource.current_instance_type,
        "distribution_hosts": [],
        "distribution_instance_groups": [],
        "framework_module": Value::Null,
        "hosts": resource.hosts,
        "hyperparameters": hyperparameters,
        "input_config_dir": path(layout.config_dir()),
        "input_data_config": input_data_config,
        "input_dir": path(layout.input()),
        "instance_groups": instance_groups,
        "instance_groups_dict": instance_groups_dict,
        "is_hetero": false,
        "is_master": resource.current_host == master,
        "is_modelparallel_enabled": Value::Null,
        "is_smddpmprun_installed": false,
        "is_smddprun_installed": false,
        "job_name": host.job_name,
        "log_level": 20,
        "master_hostname": master,
        "model_dir": path(layout.model_dir()),
        "module_dir": path(layout.code_dir()),
        "module_name": module_name,
        "network_interface_name": resource.network_interface_name,
        "num_cpus": host.num_cpus,
        "num_gpus": host.num_gpus,
        "num_neurons": 0,
        "output_data_dir": path(layout.output_data_dir()),
        "output_dir": path(layout.output_dir()),
        "output_intermediate_dir": path(layout.output_intermediate_dir()),
        "resource_config": resource_value,
        "user_entry_point": module_name,
    });

    let mut source: Vec<(String, Value)> = vec![
        ("hosts".into(), json!(resource.hosts)),
        (
            "network_interface_name".into(),
            json!(resource.network_interface_name),
        ),
        ("hps".into(), Value::Object(hyperparameters.clone())),
        ("user_entry_point".into(), json!(module_name)),
        ("framework_params".into(), json!({})),
        ("resource_config".into(), resource_value),
        ("input_data_config".into(), input_data_config),
        (
            "output_data_dir".into(),
            json!(path(layout.output_data_dir())),
        ),
        ("channels".into(), json!(channels)),
        ("current_host".into(), json!(resource.current_host)),
        (
            "current_instance_type".into(),
            json!(resource.current_instance_type),
        ),
        (
            "current_instance_group".into(),
            json!(resource.current_group_name),
        ),
        ("current_instance_group_hosts".into(), json!(group_hosts)),
        ("instance_groups".into(), json!(instance_groups)),
        (
            "instance_groups_dict".into(),
            Value::Object(instance_groups_dict),
        ),
        ("distribution_instance_groups".into(), json!([])),
        ("is_hetero".into(), json!(false)),
        ("module_name".into(), json!(module_name)),
        ("log_level".into(), json!(20)),
        ("framework_module".into(), Value::Null),
        ("input_dir".into(), json!(path(layout.input()))),
        ("input_config_dir".into(), json!(path(layout.config_dir()))),
        ("output_dir".into(), json!(path(layout.output_dir()))),
        ("num_cpus".into(), json!(host.num_cpus)),
        ("num_gpus".into(), json!(host.num_gpus)),
        ("model_dir".into(), json!(path(layout.model_dir()))),
        ("module_dir".into(), json!(path(layout.code_dir()))),
        ("training_env".into(), training_env),
        ("user_args".into(), json!(user_args)),
        (
            "output_intermediate_dir".into(),
            json!(path(layout.output_intermediate_dir())),
        ),
    ];
    for name in config.input_data_config.keys() {
        source.push((
            format!("channel_{name}"),
            json!(path(layout.channel_dir(name))),
        ));
    }
    for (key, value) in &hyperparameters {
        source.push((format!("hp_{key}"), value.clone()));
    }

    let mut env: BTreeMap<String, String> = source
        .into_iter()
        .map(|(k, v)| (format!("SM_{}", k.to_uppercase()), env_value(&v)))
        .collect();
    env.insert(
        "SM_INPUT_DATA_CONFIG_FILE".into(),
        path(layout.input_data_config_file()),
    );
    env.insert(
        "SM_RESOURCE_CONFIG_FILE".into(),
        path(layout.resource_config_file()),
    );
    env.insert("SM_HP_FILE".into(), path(layout.hyperparameters_file()));
    env.insert("TRAINING_JOB_NAME".into(), host.job_name.clone());
    env
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
            job_name: "job-1".into(),
        };
        environment(&Layout::new("/opt/ml"), &config(), &host, "train.py")
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
        assert_eq!(env["SM_OUTPUT_DATA_DIR"], "/opt/ml/output/data");
        assert_eq!(env["SM_OUTPUT_DIR"], "/opt/ml/output");
        assert_eq!(env["SM_INPUT_DIR"], "/opt/ml/input");
        assert_eq!(env["SM_INPUT_CONFIG_DIR"], "/opt/ml/input/config");
        assert_eq!(env["SM_MODULE_DIR"], "/opt/ml/code");
        assert_eq!(env["SM_NETWORK_INTERFACE_NAME"], "eth0");
        assert_eq!(env["TRAINING_JOB_NAME"], "job-1");
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
    fn python_str_of_floats_matches_python() {
        for (f, expected) in [
            (0.001, "0.001"),
            (1e-5, "1e-05"),
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (123.5, "123.5"),
            (0.0001, "0.0001"),
            (-2.5e-7, "-2.5e-07"),
        ] {
            assert_eq!(python_float_repr(f), expected, "{f}");
        }
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
