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
        let mut input_data = read(layout.input_data_config_file(), &|| {
            serde_json::to_string(&config.input_data_config).ok()
        });
        // The package's channel is grounds' own: the program's channels are the task's.
        if let PyValue::Dict(channels) = &mut input_data {
            channels.retain(|(name, _)| name != super::PACKAGE_CHANNEL);
        }
        RawConfig {
            resource: read(layout.resource_config_file(), &|| {
                serde_json::to_string(&config.resource_config).ok()
            }),
            input_data,
        }
    }
}

/// The hyperparameters as the toolkit sorts them: the user's, SageMaker's own (`sagemaker_*`), and of
/// those the framework's (`additional_framework_parameters`), each decoded as Python decodes JSON.
struct Hyperparameters {
    user: Vec<(String, PyValue)>,
    sagemaker: Vec<(String, PyValue)>,
    framework: Vec<(String, PyValue)>,
}

impl Hyperparameters {
    fn of(config: &JobConfig) -> Hyperparameters {
        let mut sagemaker = Vec::new();
        let mut user = Vec::new();
        for (key, text) in &config.hyperparameters {
            let value = pyjson::decode(text);
            if is_sagemaker_hyperparameter(key) {
                sagemaker.push((key.clone(), value));
            } else {
                user.push((key.clone(), value));
            }
        }
        let framework = sagemaker
            .iter()
            .filter(|(k, _)| !SAGEMAKER_HYPERPARAMETERS.contains(&k.as_str()))
            .cloned()
            .collect();
        Hyperparameters {
            user,
            sagemaker,
            framework,
        }
    }

    fn sagemaker(&self, name: &str) -> Option<&PyValue> {
        find(&self.sagemaker, name)
    }

    fn framework(&self, name: &str) -> Option<&PyValue> {
        find(&self.framework, name)
    }
}

fn find<'a>(pairs: &'a [(String, PyValue)], name: &str) -> Option<&'a PyValue> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The cluster as the toolkit reads it from `resourceconfig.json`: hosts, instance groups, the hosts of
/// a distributed run and its master.
struct Cluster {
    hosts: PyValue,
    current_host: String,
    current_instance_type: PyValue,
    current_group: PyValue,
    current_group_hosts: Vec<PyValue>,
    instance_groups: Vec<PyValue>,
    instance_groups_dict: PyValue,
    distribution_groups: PyValue,
    distribution_hosts: Vec<PyValue>,
    master: String,
    network_interface: PyValue,
    topology: PyValue,
}

/// The framework parameters that make a run distributed, as the toolkit lists them.
const DISTRIBUTED: [&str; 7] = [
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
];

fn list_of(value: Option<&PyValue>) -> Vec<PyValue> {
    match value {
        Some(PyValue::List(items)) => items.clone(),
        _ => Vec::new(),
    }
}

impl Cluster {
    fn of(resource: &PyValue, hyperparameters: &Hyperparameters) -> Cluster {
        let text_of = |value: Option<&PyValue>| match value {
            Some(PyValue::Str(s)) => s.clone(),
            Some(other) => pyjson::str(other),
            None => String::new(),
        };
        let or = |name: &str, default: PyValue| resource.get(name).cloned().unwrap_or(default);
        let hosts = or("hosts", PyValue::List(Vec::new()));
        let current_group = or("current_group_name", PyValue::str("homogeneousCluster"));
        let groups = list_of(resource.get("instance_groups"));
        let group_name = |g: &PyValue| {
            g.get("instance_group_name")
                .cloned()
                .unwrap_or(PyValue::None)
        };
        let group_hosts = |g: &PyValue| list_of(g.get("hosts"));
        let distributed = DISTRIBUTED
            .iter()
            .any(|name| hyperparameters.framework(name).is_some_and(PyValue::truthy));
        let distribution_groups =
            match hyperparameters.framework("sagemaker_distribution_instance_groups") {
                Some(value) => value.clone(),
                None if distributed => PyValue::List(vec![current_group.clone()]),
                None => PyValue::List(Vec::new()),
            };
        let distribution_group_names = list_of(Some(&distribution_groups));
        let all_hosts = list_of(Some(&hosts));
        let distribution_hosts: Vec<PyValue> = if groups.is_empty() {
            all_hosts.clone()
        } else {
            groups
                .iter()
                .filter(|g| distribution_group_names.contains(&group_name(g)))
                .flat_map(group_hosts)
                .collect()
        };
        // The first host of the distribution, else of the cluster.
        let master = distribution_hosts
            .first()
            .or(all_hosts.first())
            .map(pyjson::str)
            .unwrap_or_default();
        Cluster {
            current_host: text_of(resource.get("current_host")),
            current_instance_type: or("current_instance_type", PyValue::str("local")),
            current_group_hosts: groups
                .iter()
                .find(|g| group_name(g) == current_group)
                .map(group_hosts)
                .unwrap_or_default(),
            instance_groups: groups.iter().map(group_name).collect(),
            instance_groups_dict: PyValue::Dict(
                groups
                    .iter()
                    .map(|g| (pyjson::str(&group_name(g)), g.clone()))
                    .collect(),
            ),
            current_group,
            distribution_groups,
            distribution_hosts,
            master,
            network_interface: or("network_interface_name", PyValue::str("eth0")),
            topology: or("topology", PyValue::List(Vec::new())),
            hosts,
        }
    }

    fn is_hetero(&self) -> bool {
        self.instance_groups.len() > 1
    }
}

/// The program as the toolkit names it: its entry point, module, folder, log level and framework module.
struct Program {
    user_entry_point: PyValue,
    module_name: PyValue,
    module_dir: PyValue,
    log_level: PyValue,
    framework_module: PyValue,
}

impl Program {
    fn of(
        layout: &Layout,
        hyperparameters: &Hyperparameters,
        program: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Program {
        let user_entry_point = lookup("SAGEMAKER_PROGRAM")
            .map(PyValue::Str)
            .or_else(|| hyperparameters.sagemaker("sagemaker_program").cloned())
            .unwrap_or_else(|| PyValue::str(program));
        let name = pyjson::str(&user_entry_point);
        Program {
            module_name: PyValue::Str(name.strip_suffix(".py").unwrap_or(&name).to_string()),
            user_entry_point,
            module_dir: hyperparameters
                .sagemaker("sagemaker_submit_directory")
                .map(|v| PyValue::Str(pyjson::str(v)))
                .unwrap_or_else(|| path_value(layout.code_dir())),
            log_level: hyperparameters
                .sagemaker("sagemaker_container_log_level")
                .cloned()
                .unwrap_or_else(|| PyValue::int(20)),
            framework_module: lookup("SAGEMAKER_TRAINING_MODULE")
                .map(PyValue::Str)
                .unwrap_or(PyValue::None),
        }
    }
}

fn path_value(p: PathBuf) -> PyValue {
    PyValue::Str(p.to_string_lossy().into_owned())
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
    let hyperparameters = Hyperparameters::of(config);
    let cluster = Cluster::of(&raw.resource, &hyperparameters);
    let program = Program::of(layout, &hyperparameters, program, lookup);
    let channels: Vec<String> = match &raw.input_data {
        PyValue::Dict(entries) => entries.iter().map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    };
    let facts = Facts {
        layout,
        config,
        raw,
        host,
        hyperparameters: &hyperparameters,
        cluster: &cluster,
        program: &program,
        channels: &channels,
        lookup,
    };
    let mut env: BTreeMap<String, String> = facts
        .sm_variables()
        .into_iter()
        .map(|(k, v)| (format!("SM_{}", k.to_uppercase()), env_value(&v)))
        .collect();

    // What building the toolkit's Environment sets in its own environment, which the program inherits.
    env.insert("CURRENT_HOST".into(), cluster.current_host.clone());
    env.insert(
        "SAGEMAKER_JOB_NAME".into(),
        hyperparameters
            .sagemaker("sagemaker_job_name")
            .map(pyjson::str)
            .unwrap_or_default(),
    );
    env.insert(
        "SAGEMAKER_REGION".into(),
        hyperparameters
            .sagemaker("sagemaker_region")
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

/// Everything the toolkit's `Environment` is made of, for the job under `layout`.
struct Facts<'a> {
    layout: &'a Layout,
    config: &'a JobConfig,
    raw: &'a RawConfig,
    host: &'a Host,
    hyperparameters: &'a Hyperparameters,
    cluster: &'a Cluster,
    program: &'a Program,
    channels: &'a [String],
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Facts<'_> {
    fn channel_dirs(&self) -> PyValue {
        PyValue::Dict(
            self.channels
                .iter()
                .map(|name| (name.clone(), path_value(self.layout.channel_dir(name))))
                .collect(),
        )
    }

    /// `Environment().to_env_vars()` before the `SM_` prefix: its properties in the toolkit's order,
    /// then `topology` when there is one, the channels and the user's hyperparameters.
    fn sm_variables(&self) -> Vec<(String, PyValue)> {
        let (layout, host, cluster, program) = (self.layout, self.host, self.cluster, self.program);
        let mut sorted_channels = self.channels.to_vec();
        sorted_channels.sort();
        let mut variables: Vec<(String, PyValue)> = vec![
            ("hosts".into(), cluster.hosts.clone()),
            (
                "network_interface_name".into(),
                cluster.network_interface.clone(),
            ),
            (
                "hps".into(),
                PyValue::Dict(self.hyperparameters.user.clone()),
            ),
            ("user_entry_point".into(), program.user_entry_point.clone()),
            (
                "framework_params".into(),
                PyValue::Dict(self.hyperparameters.framework.clone()),
            ),
            ("resource_config".into(), self.raw.resource.clone()),
            ("input_data_config".into(), self.raw.input_data.clone()),
            (
                "output_data_dir".into(),
                path_value(layout.output_data_dir()),
            ),
            ("channels".into(), PyValue::strs(sorted_channels)),
            ("current_host".into(), PyValue::str(&cluster.current_host)),
            (
                "current_instance_type".into(),
                cluster.current_instance_type.clone(),
            ),
            (
                "current_instance_group".into(),
                cluster.current_group.clone(),
            ),
            (
                "current_instance_group_hosts".into(),
                PyValue::List(cluster.current_group_hosts.clone()),
            ),
            (
                "instance_groups".into(),
                PyValue::List(cluster.instance_groups.clone()),
            ),
            (
                "instance_groups_dict".into(),
                cluster.instance_groups_dict.clone(),
            ),
            (
                "distribution_instance_groups".into(),
                cluster.distribution_groups.clone(),
            ),
            ("is_hetero".into(), PyValue::Bool(cluster.is_hetero())),
            ("module_name".into(), program.module_name.clone()),
            ("log_level".into(), program.log_level.clone()),
            ("framework_module".into(), program.framework_module.clone()),
            ("input_dir".into(), path_value(layout.input())),
            ("input_config_dir".into(), path_value(layout.config_dir())),
            ("output_dir".into(), path_value(layout.output_dir())),
            ("num_cpus".into(), PyValue::int(host.num_cpus)),
            ("num_gpus".into(), PyValue::int(host.num_gpus)),
            ("num_neurons".into(), PyValue::int(host.num_neurons)),
            ("model_dir".into(), path_value(layout.model_dir())),
            ("module_dir".into(), program.module_dir.clone()),
            ("training_env".into(), self.training_env()),
            (
                "user_args".into(),
                PyValue::strs(hyperparameter_args(&self.config.hyperparameters)),
            ),
            (
                "output_intermediate_dir".into(),
                path_value(layout.output_intermediate_dir()),
            ),
        ];
        if cluster.topology.truthy() {
            variables.push(("topology".into(), cluster.topology.clone()));
        }
        for name in self.channels {
            variables.push((
                format!("channel_{name}"),
                path_value(layout.channel_dir(name)),
            ));
        }
        for (key, value) in &self.hyperparameters.user {
            variables.push((format!("hp_{key}"), value.clone()));
        }
        variables
    }

    /// `SM_TRAINING_ENV`: the toolkit's `Environment` as a dict, keys sorted.
    fn training_env(&self) -> PyValue {
        let (layout, host, cluster, program) = (self.layout, self.host, self.cluster, self.program);
        let model_parallel = match (self.lookup)("SM_HP_MP_PARAMETERS") {
            None => PyValue::None,
            Some(p) if p.is_empty() => PyValue::str(""),
            Some(p) => PyValue::Bool(p != "{}"),
        };
        let job_name = (self.lookup)("TRAINING_JOB_NAME")
            .map(PyValue::Str)
            .unwrap_or_else(|| PyValue::str(&host.job_name));
        PyValue::Dict(vec![
            (
                "additional_framework_parameters".into(),
                PyValue::Dict(self.hyperparameters.framework.clone()),
            ),
            ("channel_input_dirs".into(), self.channel_dirs()),
            ("current_host".into(), PyValue::str(&cluster.current_host)),
            (
                "current_instance_group".into(),
                cluster.current_group.clone(),
            ),
            (
                "current_instance_group_hosts".into(),
                PyValue::List(cluster.current_group_hosts.clone()),
            ),
            (
                "current_instance_type".into(),
                cluster.current_instance_type.clone(),
            ),
            (
                "distribution_hosts".into(),
                PyValue::List(cluster.distribution_hosts.clone()),
            ),
            (
                "distribution_instance_groups".into(),
                cluster.distribution_groups.clone(),
            ),
            ("framework_module".into(), program.framework_module.clone()),
            ("hosts".into(), cluster.hosts.clone()),
            (
                "hyperparameters".into(),
                PyValue::Dict(self.hyperparameters.user.clone()),
            ),
            ("input_config_dir".into(), path_value(layout.config_dir())),
            ("input_data_config".into(), self.raw.input_data.clone()),
            ("input_dir".into(), path_value(layout.input())),
            (
                "instance_groups".into(),
                PyValue::List(cluster.instance_groups.clone()),
            ),
            (
                "instance_groups_dict".into(),
                cluster.instance_groups_dict.clone(),
            ),
            ("is_hetero".into(), PyValue::Bool(cluster.is_hetero())),
            (
                "is_master".into(),
                PyValue::Bool(cluster.current_host == cluster.master),
            ),
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
            ("log_level".into(), program.log_level.clone()),
            ("master_hostname".into(), PyValue::str(&cluster.master)),
            ("model_dir".into(), path_value(layout.model_dir())),
            ("module_dir".into(), program.module_dir.clone()),
            ("module_name".into(), program.module_name.clone()),
            (
                "network_interface_name".into(),
                cluster.network_interface.clone(),
            ),
            ("num_cpus".into(), PyValue::int(host.num_cpus)),
            ("num_gpus".into(), PyValue::int(host.num_gpus)),
            ("num_neurons".into(), PyValue::int(host.num_neurons)),
            (
                "output_data_dir".into(),
                path_value(layout.output_data_dir()),
            ),
            ("output_dir".into(), path_value(layout.output_dir())),
            (
                "output_intermediate_dir".into(),
                path_value(layout.output_intermediate_dir()),
            ),
            ("resource_config".into(), self.raw.resource.clone()),
            ("topology".into(), cluster.topology.clone()),
            ("user_entry_point".into(), program.user_entry_point.clone()),
        ])
    }
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
