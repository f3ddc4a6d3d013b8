//! The plan of a SageMaker run: role, bucket, image, S3 layout and the CreateTrainingJob request, with
//! every SageMaker limit checked, before anything is built, pushed, uploaded or created. `--dry-run`
//! prints it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::cloud::aws::Aws;
use crate::cloud::sagemaker::{self, CreateTrainingJob, JobInputs, LimitError};
use crate::config::task::{ChannelSource, RemoteSpec, Runner, Task};
use crate::settings::RemoteSettings;

/// Everything `train remote` will do, resolved before any call that changes anything.
#[derive(Debug, Clone, Serialize)]
pub struct RemotePlan {
    pub region: String,
    pub account: String,
    pub role: String,
    pub bucket: String,
    pub image_uri: String,
    /// `ecr`, or the `host:port` of [remote] registry.
    pub registry: String,
    /// Local channel name to (local path, S3 prefix); `s3://` channels are used as they are.
    pub uploads: BTreeMap<String, (PathBuf, String)>,
    /// Where the package goes (`s3://<bucket>/sagemaker/packages/<sha256>/`), given to the job as the
    /// channel `grounds_package`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// A framework task's `sourcedir.tar.gz` (`s3://<bucket>/sagemaker/sources/<sha256>/…`), named to
    /// the image's toolkit by `sagemaker_submit_directory`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<String>,
    pub output_path: String,
    pub create_training_job: CreateTrainingJob,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteSettingsError {
    #[error(
        "no SageMaker execution role: set [remote] role in the task file, or GROUNDS_ROLE or AWS_ROLE (in the \
         environment or a .env beside the task) to arn:aws:iam::<account>:role/<name>"
    )]
    NoRole,
    #[error(
        "role `{role}` ({from}) is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>): \
         correct it there, or set [remote] role in the task file, which comes first"
    )]
    RoleArn { role: String, from: String },
    #[error(
        "bucket `{bucket}` ({from}) is not an S3 bucket name: 3 to 63 lowercase letters, digits, dots and \
         hyphens, starting and ending with a letter or digit; correct it there"
    )]
    BucketName { bucket: String, from: String },
    #[error(transparent)]
    Limit(#[from] LimitError),
}

pub struct RemoteOptions<'a> {
    pub id: &'a str,
    pub task: &'a Task,
    pub image_tag: &'a str,
    /// The training image as named (an image task's image that is not in the local engine), instead
    /// of grounds' repository.
    pub image_uri: Option<&'a str>,
    pub instance_count: usize,
    pub fingerprint: &'a str,
    /// The content hash of each local channel, as the fingerprint read it: the S3 prefix it goes to.
    pub channel_hashes: &'a crate::job::fingerprint::ChannelHashes,
    pub package_hash: &'a str,
    /// The sha256 of the package's zip, the S3 prefix it goes to; `None` for an image task (its own
    /// entry needs no package).
    pub package_sha256: Option<&'a str>,
    /// The sha256 of a framework task's `sourcedir.tar.gz`, the S3 prefix it goes to.
    pub sources_sha256: Option<&'a str>,
    /// Role, bucket, profile and region, resolved once for the command.
    pub settings: &'a RemoteSettings,
}

impl RemotePlan {
    /// Resolves role, bucket, image, S3 layout and the request; checks every SageMaker limit.
    pub fn resolve(aws: &Aws, options: &RemoteOptions) -> Result<RemotePlan, anyhow::Error> {
        let task = options.task;
        let remote = &task.spec.remote;
        let role = options
            .settings
            .role
            .clone()
            .ok_or(RemoteSettingsError::NoRole)?;
        sagemaker::check_role_arn(&role.value).map_err(|_| RemoteSettingsError::RoleArn {
            role: role.value.clone(),
            from: role.from.clone(),
        })?;
        let role = role.value;
        let bucket = match &options.settings.bucket {
            Some(bucket) if !crate::cloud::s3sync::valid_bucket_name(&bucket.value) => {
                return Err(RemoteSettingsError::BucketName {
                    bucket: bucket.value.clone(),
                    from: bucket.from.clone(),
                }
                .into())
            }
            Some(bucket) => bucket.value.clone(),
            None => format!("sagemaker-{}-{}", aws.region, aws.account),
        };
        let name = task.spec.name.as_str();
        let (registry, image_uri) = image_destination(aws, options);
        let (channels, uploads) = channel_places(options, &bucket)?;
        let package = options
            .package_sha256
            .map(|sha| format!("s3://{bucket}/{}", sagemaker::packages::prefix_of(sha)));
        let sources = options.sources_sha256.map(|sha| {
            format!(
                "s3://{bucket}/{}{}",
                sagemaker::sources::prefix_of(sha),
                sagemaker::sources::FILE
            )
        });
        // A framework task is told what the SDK tells it; every other task gets its own values.
        let hyperparameters = match (&task.spec.runner, &sources) {
            (Runner::Command(command), Some(sources)) => sagemaker::sources::hyperparameters(
                &task.spec.hyperparameters,
                command.entry_point().unwrap_or_default(),
                sources,
                options.id,
                &aws.region,
            ),
            _ => task.spec.hyperparameters.clone(),
        };
        let output_path = format!("s3://{bucket}/sagemaker/{name}/output/");
        let metric_names = match &task.spec.runner {
            Runner::Builtin(builtin) => grounds_builtin::metric_names(builtin),
            Runner::Command(_) | Runner::Image(_) => remote.metrics.clone(),
        };
        let (max_runtime, spot_max_wait) = runtimes(remote)?;
        let inputs = JobInputs {
            job_name: options.id.to_string(),
            image_uri: image_uri.clone(),
            role_arn: role.clone(),
            channels,
            package: package.clone(),
            output_path: output_path.clone(),
            hyperparameters,
            metric_names,
            metric_regexes: task.spec.metrics.clone(),
            instance_type: remote
                .instance_type
                .clone()
                .unwrap_or_else(|| sagemaker::DEFAULT_INSTANCE_TYPE.to_string()),
            instance_count: options.instance_count as u32,
            volume_gb: remote
                .volume_size_gb
                .unwrap_or(sagemaker::DEFAULT_VOLUME_GB),
            max_runtime,
            spot_max_wait,
            checkpoint_uri: remote
                .checkpoints
                .unwrap_or(false)
                .then(|| checkpoint_uri(&bucket, name, options.fingerprint)),
            tags: BTreeMap::from([
                ("grounds:task".to_string(), name.to_string()),
                (
                    "grounds:fingerprint".to_string(),
                    options.fingerprint.to_string(),
                ),
                (
                    "grounds:package".to_string(),
                    options.package_hash.to_string(),
                ),
            ]),
        };
        let request = sagemaker::create_training_job(&inputs).map_err(RemoteSettingsError::from)?;
        Ok(RemotePlan {
            region: aws.region.clone(),
            account: aws.account.clone(),
            role,
            bucket,
            image_uri,
            registry,
            uploads,
            package,
            sources,
            output_path,
            create_training_job: request,
        })
    }
}

/// Where the image goes: the registry as shown in the plan, and the image's URI (as named, in the task's
/// registry, or in the account's ECR).
fn image_destination(aws: &Aws, options: &RemoteOptions) -> (String, String) {
    let task = options.task;
    let repository = format!("grounds/{}", task.spec.name.to_lowercase());
    match (&task.spec.remote.registry, options.image_uri) {
        (_, Some(named)) => ("as named".to_string(), named.to_string()),
        (Some(host), None) => (
            host.clone(),
            format!("{host}/{repository}:{}", options.image_tag),
        ),
        (None, None) => (
            "ecr".to_string(),
            format!(
                "{}.dkr.ecr.{}.amazonaws.com/{repository}:{}",
                aws.account, aws.region, options.image_tag
            ),
        ),
    }
}

/// Where each channel is read from on SageMaker, and which local folders are uploaded where first.
type ChannelPlaces = (
    BTreeMap<String, String>,
    BTreeMap<String, (PathBuf, String)>,
);

/// The S3 URI of every channel, and the uploads of local ones: one prefix per content, so what a job
/// reads there never changes after it is submitted, and every job with the same data shares one upload.
fn channel_places(options: &RemoteOptions, bucket: &str) -> anyhow::Result<ChannelPlaces> {
    let mut uploads = BTreeMap::new();
    let mut channels = BTreeMap::new();
    for (channel, source) in &options.task.channels {
        match source {
            ChannelSource::Local(path) => {
                let hash = options
                    .channel_hashes
                    .get(channel)
                    .ok_or_else(|| anyhow::anyhow!("channel `{channel}` was not fingerprinted"))?;
                let prefix = crate::cloud::sagemaker::datasets::prefix_of(hash);
                channels.insert(channel.clone(), format!("s3://{bucket}/{prefix}"));
                uploads.insert(channel.clone(), (path.clone(), prefix));
            }
            ChannelSource::S3(uri) => {
                channels.insert(channel.clone(), uri.clone());
            }
            ChannelSource::Result { .. } => anyhow::bail!(
                "channel `{channel}`: {} was not resolved to a stored result's files",
                source.describe()
            ),
        }
    }
    Ok((channels, uploads))
}

/// The job's maximum runtime and, for a spot job, how long it may wait in all (its runtime unless said).
fn runtimes(remote: &RemoteSpec) -> Result<(u64, Option<u64>), RemoteSettingsError> {
    let max_runtime = match &remote.max_runtime {
        Some(text) => sagemaker::parse_duration("max_runtime", text)?,
        None => sagemaker::DEFAULT_MAX_RUNTIME,
    };
    let spot_max_wait = match (remote.spot.unwrap_or(false), &remote.max_wait) {
        (false, _) => None,
        (true, Some(text)) => Some(sagemaker::parse_duration("max_wait", text)?),
        (true, None) => Some(max_runtime),
    };
    Ok((max_runtime, spot_max_wait))
}

/// Checkpoints by fingerprint: a run of the same job after one that was stopped (spot capacity lost,
/// max_runtime reached) starts from its checkpoints; other jobs never share them.
fn checkpoint_uri(bucket: &str, task_name: &str, fingerprint: &str) -> String {
    let short: String = fingerprint
        .trim_start_matches("sha256:")
        .chars()
        .take(16)
        .collect();
    format!("s3://{bucket}/sagemaker/{task_name}/checkpoints/{short}/")
}
