//! The contract: paths, config files, hyperparameters and environment as the toolkit makes them.
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
    for gone in [
        "SM_HP_FILE",
        "SM_INPUT_DATA_CONFIG_FILE",
        "SM_RESOURCE_CONFIG_FILE",
    ] {
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
    assert!(
        !args
            .iter()
            .any(|a| a.contains("sagemaker") || a.contains("tuning")),
        "{args:?}"
    );
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
    assert_eq!(
        env["SM_FRAMEWORK_PARAMS"],
        r#"{"sagemaker_mpi_enabled":true}"#
    );
    assert_eq!(env["SAGEMAKER_REGION"], "eu-west-1");
    assert!(!env.contains_key("SM_HP_SAGEMAKER_REGION"));
    let training_env: Value = serde_json::from_str(&env["SM_TRAINING_ENV"]).unwrap();
    assert_eq!(
        training_env["distribution_instance_groups"],
        serde_json::json!(["homogeneousCluster"])
    );
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
