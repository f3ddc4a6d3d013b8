//! The environment a program gets under the contract: what the sagemaker-training toolkit sets (`SM_*`,
//! its framework variables, `PYTHONPATH`), computed from the config files and the host, as the toolkit
//! computes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    hyperparameter_args, is_sagemaker_hyperparameter, JobConfig, Layout, SAGEMAKER_HYPERPARAMETERS,
};
use crate::pyjson::{self, PyValue};

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
    let framework = |name: &str| {
        framework_params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    };

    let resource = &raw.resource;
    let text_of = |value: Option<&PyValue>, default: &str| match value {
        Some(PyValue::Str(s)) => s.clone(),
        Some(other) => pyjson::str(other),
        None => default.to_string(),
    };
    let hosts = resource
        .get("hosts")
        .cloned()
        .unwrap_or(PyValue::List(Vec::new()));
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
    let group_name = |g: &PyValue| {
        g.get("instance_group_name")
            .cloned()
            .unwrap_or(PyValue::None)
    };
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
        (
            "additional_framework_parameters".into(),
            PyValue::Dict(framework_params.clone()),
        ),
        ("channel_input_dirs".into(), channel_dirs.clone()),
        ("current_host".into(), PyValue::str(&current_host)),
        ("current_instance_group".into(), current_group.clone()),
        (
            "current_instance_group_hosts".into(),
            PyValue::List(current_group_hosts.clone()),
        ),
        (
            "current_instance_type".into(),
            current_instance_type.clone(),
        ),
        (
            "distribution_hosts".into(),
            PyValue::List(distribution_hosts),
        ),
        (
            "distribution_instance_groups".into(),
            distribution_groups.clone(),
        ),
        ("framework_module".into(), framework_module.clone()),
        ("hosts".into(), hosts.clone()),
        ("hyperparameters".into(), hps.clone()),
        ("input_config_dir".into(), path(layout.config_dir())),
        ("input_data_config".into(), raw.input_data.clone()),
        ("input_dir".into(), path(layout.input())),
        (
            "instance_groups".into(),
            PyValue::List(instance_groups.clone()),
        ),
        ("instance_groups_dict".into(), instance_groups_dict.clone()),
        ("is_hetero".into(), PyValue::Bool(is_hetero)),
        ("is_master".into(), PyValue::Bool(current_host == master)),
        ("is_modelparallel_enabled".into(), model_parallel),
        (
            "is_smddpmprun_installed".into(),
            PyValue::Bool(on_path("smddpmprun")),
        ),
        (
            "is_smddprun_installed".into(),
            PyValue::Bool(on_path("smddprun")),
        ),
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
        (
            "output_intermediate_dir".into(),
            path(layout.output_intermediate_dir()),
        ),
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
        (
            "current_instance_group_hosts".into(),
            PyValue::List(current_group_hosts),
        ),
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
        (
            "output_intermediate_dir".into(),
            path(layout.output_intermediate_dir()),
        ),
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
        sm("sagemaker_job_name")
            .map(pyjson::str)
            .unwrap_or_default(),
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
