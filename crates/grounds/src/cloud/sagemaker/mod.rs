//! SageMaker's rules for a training job, checked before any call that costs money, and the
//! `CreateTrainingJob` request built from a job, in the API's own JSON shape (what `--dry-run` prints and
//! what the SDK call is made from).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::job::metrics;

pub mod api;
pub mod artifacts;
pub mod datasets;
pub mod packages;
pub mod sources;

pub use crate::config::task::{MAX_METRIC_DEFINITIONS, MAX_METRIC_REGEX};
pub const DEFAULT_INSTANCE_TYPE: &str = "ml.m5.large";
pub const DEFAULT_VOLUME_GB: u32 = 30;
pub const DEFAULT_MAX_RUNTIME: u64 = 24 * 3600;
/// SageMaker's longest allowed MaxRuntimeInSeconds (28 days).
pub const MAX_RUNTIME_LIMIT: u64 = 28 * 24 * 3600;

#[allow(
    clippy::expect_used,
    reason = "a constant pattern, compiled by the tests: it cannot fail at run time"
)]
static JOB_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$").expect("compiles"));
#[allow(
    clippy::expect_used,
    reason = "a constant pattern, compiled by the tests: it cannot fail at run time"
)]
static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$").expect("compiles")
});
#[allow(
    clippy::expect_used,
    reason = "a constant pattern, compiled by the tests: it cannot fail at run time"
)]
static INSTANCE_TYPE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^ml\.[a-z0-9]+\.[a-z0-9]+$").expect("compiles"));

/// A rule of SageMaker's that the job breaks; found before anything is uploaded, pushed or created.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LimitError {
    #[error(
        "job name `{0}` is not a valid SageMaker job name ([a-zA-Z0-9](-*[a-zA-Z0-9]){{0,62}})"
    )]
    JobName(String),
    #[error(
        "role `{0}` is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>); set [remote] role, \
         GROUNDS_ROLE or AWS_ROLE to the ARN of the role SageMaker should assume"
    )]
    RoleArn(String),
    #[error("instance type `{0}` is not a SageMaker training instance type (ml.<family>.<size>, e.g. ml.m5.large)")]
    InstanceType(String),
    #[error("instance count {0} is out of range: 1 to 100")]
    InstanceCount(u32),
    #[error("{0} metric definitions; SageMaker takes at most {MAX_METRIC_DEFINITIONS}: declare fewer in [remote] metrics or [metrics]")]
    TooManyMetrics(usize),
    #[error("the regex for metric `{name}` has {length} characters; SageMaker takes at most {MAX_METRIC_REGEX}: shorten the name")]
    MetricRegex { name: String, length: usize },
    #[error("`{field}` = `{text}` is not a duration like 3600, 90m, 2h or 1d")]
    Duration { field: &'static str, text: String },
    #[error("max_runtime of {0} s is beyond SageMaker's limit of 28 days")]
    RuntimeTooLong(u64),
    #[error(
        "max_wait ({wait} s) must be at least max_runtime ({runtime} s) for managed spot training"
    )]
    SpotWait { wait: u64, runtime: u64 },
}

pub fn check_job_name(name: &str) -> Result<(), LimitError> {
    if JOB_NAME.is_match(name) {
        Ok(())
    } else {
        Err(LimitError::JobName(name.to_string()))
    }
}

pub fn check_role_arn(role: &str) -> Result<(), LimitError> {
    if ROLE_ARN.is_match(role) && role.len() <= 2048 {
        Ok(())
    } else {
        Err(LimitError::RoleArn(role.to_string()))
    }
}

/// `3600`, `90s`, `90m`, `2h`, `1d`, or combinations like `1h30m`.
pub fn parse_duration(field: &'static str, text: &str) -> Result<u64, LimitError> {
    let bad = || LimitError::Duration {
        field,
        text: text.to_string(),
    };
    let trimmed = text.trim();
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(seconds);
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        total += value * unit;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDefinition {
    pub name: String,
    pub regex: String,
}

/// One `MetricDefinitions` entry per `###METRIC###` name, with the regex the parser agrees with, then
/// the task's `[metrics]` regexes as they are.
pub fn metric_definitions(
    names: &[String],
    regexes: &BTreeMap<String, String>,
) -> Result<Vec<MetricDefinition>, LimitError> {
    let count = names.len() + regexes.len();
    if count > MAX_METRIC_DEFINITIONS {
        return Err(LimitError::TooManyMetrics(count));
    }
    names
        .iter()
        .map(|name| (name.clone(), metrics::sagemaker_regex(name)))
        .chain(regexes.iter().map(|(n, r)| (n.clone(), r.clone())))
        .map(|(name, regex)| {
            if regex.chars().count() > MAX_METRIC_REGEX {
                return Err(LimitError::MetricRegex {
                    length: regex.chars().count(),
                    name,
                });
            }
            Ok(MetricDefinition { name, regex })
        })
        .collect()
}

/// What a training job is made of, resolved.
#[derive(Debug, Clone)]
pub struct JobInputs {
    pub job_name: String,
    pub image_uri: String,
    pub role_arn: String,
    /// Channel name to `s3://` prefix.
    pub channels: BTreeMap<String, String>,
    /// The `s3://` prefix of the job's package, given as the channel `grounds_package` after the task's
    /// (none for an image task, whose own entry needs no package).
    pub package: Option<String>,
    pub output_path: String,
    pub hyperparameters: BTreeMap<String, String>,
    pub metric_names: Vec<String>,
    /// `[metrics]`: name to regex.
    pub metric_regexes: BTreeMap<String, String>,
    pub instance_type: String,
    pub instance_count: u32,
    pub volume_gb: u32,
    pub max_runtime: u64,
    /// Managed spot training with this MaxWaitTimeInSeconds.
    pub spot_max_wait: Option<u64>,
    pub checkpoint_uri: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// The `CreateTrainingJob` request, field for field as the API names them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTrainingJob {
    pub training_job_name: String,
    pub algorithm_specification: AlgorithmSpecification,
    pub role_arn: String,
    pub input_data_config: Vec<Channel>,
    pub output_data_config: OutputDataConfig,
    pub resource_config: ResourceConfig,
    pub stopping_condition: StoppingCondition,
    pub hyper_parameters: BTreeMap<String, String>,
    pub enable_managed_spot_training: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_config: Option<CheckpointConfig>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlgorithmSpecification {
    pub training_image: String,
    pub training_input_mode: String,
    pub metric_definitions: Vec<MetricDefinition>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Channel {
    pub channel_name: String,
    pub data_source: DataSource,
    pub input_mode: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataSource {
    pub s3_data_source: S3DataSource,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3DataSource {
    pub s3_data_type: String,
    pub s3_uri: String,
    pub s3_data_distribution_type: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutputDataConfig {
    pub s3_output_path: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceConfig {
    pub instance_type: String,
    pub instance_count: u32,
    #[serde(rename = "VolumeSizeInGB")]
    pub volume_size_in_gb: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoppingCondition {
    pub max_runtime_in_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wait_time_in_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckpointConfig {
    pub s3_uri: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Checks every limit and builds the request; nothing here calls AWS.
pub fn create_training_job(inputs: &JobInputs) -> Result<CreateTrainingJob, LimitError> {
    check_job_name(&inputs.job_name)?;
    check_role_arn(&inputs.role_arn)?;
    if !INSTANCE_TYPE.is_match(&inputs.instance_type) {
        return Err(LimitError::InstanceType(inputs.instance_type.clone()));
    }
    if !(1..=100).contains(&inputs.instance_count) {
        return Err(LimitError::InstanceCount(inputs.instance_count));
    }
    if inputs.max_runtime > MAX_RUNTIME_LIMIT {
        return Err(LimitError::RuntimeTooLong(inputs.max_runtime));
    }
    if let Some(wait) = inputs.spot_max_wait {
        if wait < inputs.max_runtime {
            return Err(LimitError::SpotWait {
                wait,
                runtime: inputs.max_runtime,
            });
        }
    }
    let package_channel = grounds_job::contract::PACKAGE_CHANNEL.to_string();
    Ok(CreateTrainingJob {
        training_job_name: inputs.job_name.clone(),
        algorithm_specification: AlgorithmSpecification {
            training_image: inputs.image_uri.clone(),
            training_input_mode: "File".into(),
            metric_definitions: metric_definitions(&inputs.metric_names, &inputs.metric_regexes)?,
        },
        role_arn: inputs.role_arn.clone(),
        input_data_config: inputs
            .channels
            .iter()
            .chain(inputs.package.iter().map(|uri| (&package_channel, uri)))
            .map(|(name, uri)| Channel {
                channel_name: name.clone(),
                data_source: DataSource {
                    s3_data_source: S3DataSource {
                        s3_data_type: "S3Prefix".into(),
                        s3_uri: uri.clone(),
                        s3_data_distribution_type: "FullyReplicated".into(),
                    },
                },
                input_mode: "File".into(),
            })
            .collect(),
        output_data_config: OutputDataConfig {
            s3_output_path: inputs.output_path.clone(),
        },
        resource_config: ResourceConfig {
            instance_type: inputs.instance_type.clone(),
            instance_count: inputs.instance_count,
            volume_size_in_gb: inputs.volume_gb,
        },
        stopping_condition: StoppingCondition {
            max_runtime_in_seconds: inputs.max_runtime,
            max_wait_time_in_seconds: inputs.spot_max_wait,
        },
        hyper_parameters: inputs.hyperparameters.clone(),
        enable_managed_spot_training: inputs.spot_max_wait.is_some(),
        checkpoint_config: inputs
            .checkpoint_uri
            .clone()
            .map(|s3_uri| CheckpointConfig { s3_uri }),
        tags: inputs
            .tags
            .iter()
            .map(|(key, value)| Tag {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> JobInputs {
        JobInputs {
            job_name: "titanic-20261122-143012-a1b2".into(),
            image_uri: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/grounds/titanic:abc".into(),
            role_arn: "arn:aws:iam::123456789012:role/service-role/SageMakerRole".into(),
            channels: BTreeMap::from([(
                "training".into(),
                "s3://b/sagemaker/titanic/datasets/training/".into(),
            )]),
            package: Some("s3://b/sagemaker/packages/0123/".into()),
            output_path: "s3://b/sagemaker/titanic/output/".into(),
            hyperparameters: BTreeMap::from([("max_iter".into(), "1000".into())]),
            metric_names: vec!["roc_auc_score_test".into()],
            metric_regexes: [("ae50".to_string(), "AE: ([0-9.]+)".to_string())]
                .into_iter()
                .collect(),
            instance_type: "ml.m5.large".into(),
            instance_count: 1,
            volume_gb: 30,
            max_runtime: 3600,
            spot_max_wait: None,
            checkpoint_uri: None,
            tags: BTreeMap::from([("grounds:task".into(), "titanic".into())]),
        }
    }

    #[test]
    fn the_request_has_the_api_shape() {
        let request = serde_json::to_value(create_training_job(&inputs()).unwrap()).unwrap();
        assert_eq!(request["TrainingJobName"], "titanic-20261122-143012-a1b2");
        assert_eq!(
            request["AlgorithmSpecification"]["TrainingInputMode"],
            "File"
        );
        assert_eq!(
            request["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"],
            "roc_auc_score_test"
        );
        assert_eq!(
            request["AlgorithmSpecification"]["MetricDefinitions"][1],
            serde_json::json!({"Name": "ae50", "Regex": "AE: ([0-9.]+)"})
        );
        assert_eq!(
            request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataType"],
            "S3Prefix"
        );
        // The package comes after the task's channels, as a channel of its own.
        assert_eq!(request["InputDataConfig"][0]["ChannelName"], "training");
        assert_eq!(
            request["InputDataConfig"][1]["ChannelName"],
            "grounds_package"
        );
        assert_eq!(
            request["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"],
            "s3://b/sagemaker/packages/0123/"
        );
        assert_eq!(request["ResourceConfig"]["VolumeSizeInGB"], 30);
        assert_eq!(request["StoppingCondition"]["MaxRuntimeInSeconds"], 3600);
        assert_eq!(request["HyperParameters"]["max_iter"], "1000");
        assert_eq!(request["Tags"][0]["Key"], "grounds:task");
        assert!(request.get("CheckpointConfig").is_none());
    }

    #[test]
    fn limits_are_checked_before_any_call() {
        let mut bad = inputs();
        bad.role_arn = "SageMakerRole".into();
        assert!(matches!(
            create_training_job(&bad),
            Err(LimitError::RoleArn(_))
        ));
        let mut bad = inputs();
        bad.job_name = "x".repeat(64);
        assert!(matches!(
            create_training_job(&bad),
            Err(LimitError::JobName(_))
        ));
        let mut bad = inputs();
        bad.metric_names = (0..40).map(|i| format!("m{i}")).collect();
        assert_eq!(
            create_training_job(&bad).unwrap_err(),
            LimitError::TooManyMetrics(41),
            "the ###METRIC### names and the [metrics] regexes count together"
        );
        let mut bad = inputs();
        bad.metric_names = vec!["n".repeat(480)];
        assert!(matches!(
            create_training_job(&bad),
            Err(LimitError::MetricRegex { .. })
        ));
        let mut bad = inputs();
        bad.instance_type = "m5.large".into();
        assert!(matches!(
            create_training_job(&bad),
            Err(LimitError::InstanceType(_))
        ));
        let mut bad = inputs();
        bad.spot_max_wait = Some(60);
        assert!(matches!(
            create_training_job(&bad),
            Err(LimitError::SpotWait { .. })
        ));
        for role in [
            "arn:aws:iam::123456789012:role/x",
            "arn:aws-cn:iam::123456789012:role/path/x",
        ] {
            check_role_arn(role).unwrap();
        }
        for role in [
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:user/x",
        ] {
            assert!(check_role_arn(role).is_err(), "{role}");
        }
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("max_runtime", "3600").unwrap(), 3600);
        assert_eq!(parse_duration("max_runtime", "1h").unwrap(), 3600);
        assert_eq!(parse_duration("max_runtime", "1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("max_runtime", "2d").unwrap(), 172800);
        assert!(parse_duration("max_runtime", "1 hour").is_err());
        assert!(parse_duration("max_runtime", "h").is_err());
    }
}
