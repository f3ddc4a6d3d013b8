//! Remote runs: the job's image in ECR (or a registry of your choice), its local channels synced to S3, a
//! SageMaker training job created from the same contract, waited for with its logs tailed live from
//! CloudWatch, and its artifacts brought home in the same result format as the other modes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sagemaker::types as sm;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{JobLog, Outcome};
use crate::aws::{call_error, Aws};
use crate::collect::{Collected, LeftOut};
use crate::printer::Reporter;
use crate::results::Status;
use crate::sagemaker::{self, CreateTrainingJob, JobInputs, LimitError};
use crate::task::{ChannelSource, Runner, Task};

pub const LOG_GROUP: &str = "/aws/sagemaker/TrainingJobs";
/// The first pause between two DescribeTrainingJob calls; it grows by half each time, up to 30 s.
pub const FIRST_POLL: Duration = Duration::from_secs(2);

/// Where a remote job lives; kept in job.json so that `results fetch` and `stop` can find it again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RemoteJob {
    pub job_name: String,
    pub region: String,
    pub profile: Option<String>,
    pub bucket: String,
    pub output_path: String,
    pub image_uri: String,
}

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
    pub package_hash: &'a str,
    /// Variables from `.env` files, consulted after the environment.
    pub dotenv: &'a BTreeMap<String, String>,
}

fn s3_parts(uri: &str) -> anyhow::Result<(&str, &str)> {
    let rest = uri
        .strip_prefix("s3://")
        .with_context(|| format!("`{uri}` is not an s3:// URI"))?;
    Ok(rest.split_once('/').unwrap_or((rest, "")))
}

/// Resolves role, bucket, image, S3 layout and the request; checks every SageMaker limit.
pub fn plan(aws: &Aws, options: &RemoteOptions) -> Result<RemotePlan, anyhow::Error> {
    let task = options.task;
    let remote = &task.spec.remote;
    let role = remote
        .role
        .clone()
        .or_else(|| crate::dotenv::lookup(options.dotenv, "GROUNDS_ROLE"))
        .or_else(|| crate::dotenv::lookup(options.dotenv, "AWS_ROLE"))
        .ok_or(RemoteSettingsError::NoRole)?;
    sagemaker::check_role_arn(&role).map_err(RemoteSettingsError::from)?;
    let bucket = remote
        .bucket
        .clone()
        .or_else(|| crate::dotenv::lookup(options.dotenv, "GROUNDS_BUCKET"))
        .unwrap_or_else(|| format!("sagemaker-{}-{}", aws.region, aws.account));
    let name = task.spec.name.as_str();
    let repository = format!("grounds/{}", name.to_lowercase());
    let (registry, image_uri) = match (&remote.registry, options.image_uri) {
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
    };
    let mut uploads = BTreeMap::new();
    let mut channels = BTreeMap::new();
    for (channel, source) in &task.channels {
        match source {
            ChannelSource::Local(path) => {
                let prefix = format!("sagemaker/{name}/datasets/{channel}/");
                channels.insert(channel.clone(), format!("s3://{bucket}/{prefix}"));
                uploads.insert(channel.clone(), (path.clone(), prefix));
            }
            ChannelSource::S3(uri) => {
                channels.insert(channel.clone(), uri.clone());
            }
        }
    }
    let output_path = format!("s3://{bucket}/sagemaker/{name}/output/");
    let metric_names = match &task.spec.runner {
        Runner::Builtin(builtin) => crate::builtin::metric_names(builtin),
        Runner::Command(_) | Runner::Image(_) => remote.metrics.clone(),
    };
    let max_runtime = match &remote.max_runtime {
        Some(text) => {
            sagemaker::parse_duration("max_runtime", text).map_err(RemoteSettingsError::from)?
        }
        None => sagemaker::DEFAULT_MAX_RUNTIME,
    };
    let spot_max_wait = match (remote.spot.unwrap_or(false), &remote.max_wait) {
        (false, _) => None,
        (true, Some(text)) => {
            Some(sagemaker::parse_duration("max_wait", text).map_err(RemoteSettingsError::from)?)
        }
        (true, None) => Some(max_runtime),
    };
    let inputs = JobInputs {
        job_name: options.id.to_string(),
        image_uri: image_uri.clone(),
        role_arn: role.clone(),
        channels,
        output_path: output_path.clone(),
        hyperparameters: task.spec.hyperparameters.clone(),
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
            // By fingerprint: a run of the same job after one that was stopped (spot capacity lost,
            // max_runtime reached) starts from its checkpoints; other jobs never share them.
            .then(|| {
                format!(
                    "s3://{bucket}/sagemaker/{name}/checkpoints/{}/",
                    options
                        .fingerprint
                        .trim_start_matches("sha256:")
                        .chars()
                        .take(16)
                        .collect::<String>()
                )
            }),
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
        output_path,
        create_training_job: request,
    })
}

/// The SDK request made from the plan's request, field for field.
pub async fn create(
    client: &aws_sdk_sagemaker::Client,
    request: &CreateTrainingJob,
) -> anyhow::Result<()> {
    let algorithm = &request.algorithm_specification;
    let mut spec = sm::AlgorithmSpecification::builder()
        .training_image(&algorithm.training_image)
        .training_input_mode(sm::TrainingInputMode::File);
    for definition in &algorithm.metric_definitions {
        spec = spec.metric_definitions(
            sm::MetricDefinition::builder()
                .name(&definition.name)
                .regex(&definition.regex)
                .build(),
        );
    }
    let mut call = client
        .create_training_job()
        .training_job_name(&request.training_job_name)
        .algorithm_specification(spec.build())
        .role_arn(&request.role_arn)
        .output_data_config(
            sm::OutputDataConfig::builder()
                .s3_output_path(&request.output_data_config.s3_output_path)
                .build(),
        )
        .resource_config(
            sm::ResourceConfig::builder()
                .instance_type(sm::TrainingInstanceType::from(
                    request.resource_config.instance_type.as_str(),
                ))
                .instance_count(request.resource_config.instance_count as i32)
                .volume_size_in_gb(request.resource_config.volume_size_in_gb as i32)
                .build(),
        )
        .stopping_condition(
            sm::StoppingCondition::builder()
                .max_runtime_in_seconds(request.stopping_condition.max_runtime_in_seconds as i32)
                .set_max_wait_time_in_seconds(
                    request
                        .stopping_condition
                        .max_wait_time_in_seconds
                        .map(|s| s as i32),
                )
                .build(),
        )
        .enable_managed_spot_training(request.enable_managed_spot_training)
        .set_hyper_parameters(Some(request.hyper_parameters.clone().into_iter().collect()));
    for channel in &request.input_data_config {
        let source = &channel.data_source.s3_data_source;
        call = call.input_data_config(
            sm::Channel::builder()
                .channel_name(&channel.channel_name)
                .input_mode(sm::TrainingInputMode::File)
                .data_source(
                    sm::DataSource::builder()
                        .s3_data_source(
                            sm::S3DataSource::builder()
                                .s3_data_type(sm::S3DataType::S3Prefix)
                                .s3_uri(&source.s3_uri)
                                .s3_data_distribution_type(sm::S3DataDistribution::FullyReplicated)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        );
    }
    if let Some(checkpoint) = &request.checkpoint_config {
        call = call.checkpoint_config(
            sm::CheckpointConfig::builder()
                .s3_uri(&checkpoint.s3_uri)
                .build(),
        );
    }
    for tag in &request.tags {
        call = call.tags(sm::Tag::builder().key(&tag.key).value(&tag.value).build());
    }
    call.send()
        .await
        .map_err(|e| call_error("sagemaker:CreateTrainingJob", e))?;
    Ok(())
}

/// One observation of a job's state.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub status: Status,
    pub secondary: String,
    /// Every secondary status the job went through, in order (`SecondaryStatusTransitions`).
    pub transitions: Vec<String>,
    pub failure_reason: Option<String>,
    pub model_artifacts: Option<String>,
    pub final_metrics: Vec<(String, f64, Option<DateTime<Utc>>)>,
}

fn is_throttling(message: &str) -> bool {
    message.contains("Throttling")
        || message.contains("ThrottlingException")
        || message.contains("Rate exceeded")
}

/// DescribeTrainingJob, retried with backoff when AWS throttles.
pub async fn describe(client: &aws_sdk_sagemaker::Client, job: &str) -> anyhow::Result<JobState> {
    let mut delay = Duration::from_millis(500);
    for attempt in 0.. {
        match client
            .describe_training_job()
            .training_job_name(job)
            .send()
            .await
        {
            Ok(out) => {
                let status = match out.training_job_status() {
                    Some(sm::TrainingJobStatus::Completed) => Status::Completed,
                    Some(sm::TrainingJobStatus::Failed) => Status::Failed,
                    Some(sm::TrainingJobStatus::Stopped) => Status::Stopped,
                    _ => Status::InProgress,
                };
                return Ok(JobState {
                    status,
                    secondary: out
                        .secondary_status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    transitions: out
                        .secondary_status_transitions()
                        .iter()
                        .filter_map(|t| t.status().map(|s| s.as_str().to_string()))
                        .collect(),
                    failure_reason: out.failure_reason().map(str::to_string),
                    model_artifacts: out
                        .model_artifacts()
                        .and_then(|m| m.s3_model_artifacts())
                        .map(str::to_string),
                    final_metrics: out
                        .final_metric_data_list()
                        .iter()
                        .filter_map(|m| {
                            let time = m.timestamp().and_then(|t| {
                                Utc.timestamp_opt(t.secs(), t.subsec_nanos()).single()
                            });
                            Some((m.metric_name()?.to_string(), m.value()? as f64, time))
                        })
                        .collect(),
                });
            }
            Err(e) => {
                let message = crate::aws::explain(&e);
                if is_throttling(&message) && attempt < 8 {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(20));
                    continue;
                }
                return Err(anyhow::anyhow!(
                    "sagemaker:DescribeTrainingJob {job}: {message}"
                ));
            }
        }
    }
    unreachable!("the loop returns")
}

/// Follows the job's CloudWatch streams (`<job>/algo-*`), each from where it was left.
pub struct LogTail {
    client: aws_sdk_cloudwatchlogs::Client,
    job: String,
    tokens: BTreeMap<String, Option<String>>,
}

impl LogTail {
    pub fn new(client: aws_sdk_cloudwatchlogs::Client, job: &str) -> Self {
        LogTail {
            client,
            job: job.to_string(),
            tokens: BTreeMap::new(),
        }
    }

    /// New lines since the last call, as (host, line).
    pub async fn poll(&mut self) -> Vec<(String, String)> {
        let prefix = format!("{}/", self.job);
        if let Ok(streams) = self
            .client
            .describe_log_streams()
            .log_group_name(LOG_GROUP)
            .log_stream_name_prefix(&prefix)
            .send()
            .await
        {
            for stream in streams.log_streams() {
                if let Some(name) = stream.log_stream_name() {
                    self.tokens.entry(name.to_string()).or_insert(None);
                }
            }
        }
        let mut lines = Vec::new();
        let names: Vec<String> = self.tokens.keys().cloned().collect();
        for name in names {
            // Stream names are <job>/algo-1-<epoch>: the host is algo-1.
            let host = name
                .trim_start_matches(&prefix)
                .rsplit_once('-')
                .map(|(h, _)| h.to_string())
                .unwrap_or(name.clone());
            loop {
                let token = self.tokens.get(&name).cloned().flatten();
                let Ok(out) = self
                    .client
                    .get_log_events()
                    .log_group_name(LOG_GROUP)
                    .log_stream_name(&name)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await
                else {
                    break;
                };
                for event in out.events() {
                    for line in event.message().unwrap_or_default().lines() {
                        lines.push((host.clone(), line.to_string()));
                    }
                }
                let next = out.next_forward_token().map(str::to_string);
                let exhausted = next == token || out.events().is_empty();
                self.tokens.insert(name.clone(), next);
                if exhausted {
                    break;
                }
            }
        }
        lines
    }
}

/// How a wait ended.
pub enum WaitEnd {
    Finished(JobState),
    /// Ctrl-C without --stop-on-interrupt: the job goes on.
    Detached,
}

/// Polls with backoff until the job ends, printing each status change and tailing its logs.
pub async fn wait(
    sagemaker: &aws_sdk_sagemaker::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    job: &str,
    log: &mut JobLog<'_>,
    stop_on_interrupt: bool,
    first_delay: Duration,
    reporter: &dyn Reporter,
) -> anyhow::Result<WaitEnd> {
    let mut tail = LogTail::new(logs, job);
    let mut seen = (Status::InProgress, String::new());
    let mut shown = 0;
    let mut delay = first_delay;
    let mut stopping = false;
    // Made once, before the loop: a Ctrl-C that arrives while DescribeTrainingJob runs is kept, not lost.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        let state = describe(sagemaker, job).await?;
        if state.transitions.len() > shown {
            // Every transition once, in order, even those that came and went between two polls.
            let last = state.transitions.len() - 1;
            for (index, secondary) in state.transitions.iter().enumerate().skip(shown) {
                let primary = if index == last {
                    state.status
                } else {
                    Status::InProgress
                };
                reporter.stage("Status", &format!("{job}: {primary} / {secondary}"));
            }
            shown = state.transitions.len();
            seen = (state.status, state.secondary.clone());
            delay = first_delay;
        } else if (state.status, state.secondary.clone()) != seen {
            reporter.stage(
                "Status",
                &format!("{job}: {} / {}", state.status, state.secondary),
            );
            seen = (state.status, state.secondary.clone());
            delay = first_delay;
        }
        for (host, line) in tail.poll().await {
            log.line(Some(&host), &line);
        }
        if state.status != Status::InProgress {
            return Ok(WaitEnd::Finished(state));
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = interrupt.recv(), if !stopping => {
                if !stop_on_interrupt {
                    return Ok(WaitEnd::Detached);
                }
                stopping = true;
                reporter.stage("Stopping", &format!("{job} (StopTrainingJob; SageMaker sends SIGTERM, then SIGKILL after 120 s)"));
                stop(sagemaker, job).await?;
            }
        }
        delay = (delay.mul_f64(1.5)).min(Duration::from_secs(30));
    }
}

pub async fn stop(client: &aws_sdk_sagemaker::Client, job: &str) -> anyhow::Result<()> {
    client
        .stop_training_job()
        .training_job_name(job)
        .send()
        .await
        .map_err(|e| call_error("sagemaker:StopTrainingJob", e))?;
    Ok(())
}

/// Downloads a `.tar.gz` from S3 (streamed to disk, never held in memory) and unpacks its regular files
/// and folders into `into`. Entries that are links, devices or pipes, or that would land outside, are
/// left out and recorded as `<prefix>/<name>`; they never fail the download. Returns whether it was there.
pub async fn download_tarball(
    s3: &aws_sdk_s3::Client,
    uri: &str,
    into: &Path,
    prefix: &str,
    left_out: &mut Vec<LeftOut>,
) -> anyhow::Result<bool> {
    let (bucket, key) = s3_parts(uri)?;
    let object = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => object,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(false),
        Err(e) => return Err(call_error(&format!("s3:GetObject {uri}"), e).into()),
    };
    let mut download = tempfile::tempfile().context("creating a temporary file for the download")?;
    crate::s3cache::save_body(object.body, &mut download, uri).await?;
    std::io::Seek::rewind(&mut download)?;
    std::fs::create_dir_all(into)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(
        download,
    )));
    for entry in archive
        .entries()
        .with_context(|| format!("{uri} is not a .tar.gz"))?
    {
        let mut entry = entry.with_context(|| format!("reading {uri}"))?;
        let path = entry
            .path()
            .with_context(|| format!("reading {uri}"))?
            .into_owned();
        let name = format!("{prefix}/{}", path.display());
        let kind = entry.header().entry_type();
        let why = if path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            Some("an entry of the archive that would land outside the result")
        } else if kind.is_symlink() || kind.is_hard_link() {
            Some("a link in the archive: links in downloaded archives are not followed")
        } else if !(kind.is_file() || kind.is_dir()) {
            Some("not a regular file or folder in the archive")
        } else {
            None
        };
        if let Some(why) = why {
            left_out.push(LeftOut {
                path: name,
                reason: format!("{why} ({uri})"),
            });
            continue;
        }
        entry
            .unpack_in(into)
            .with_context(|| format!("unpacking {name} from {uri}"))?;
    }
    Ok(true)
}

/// Brings a finished job home (model/ and output/ under `work`) and describes its end.
pub async fn collect(
    aws: &Aws,
    remote: &RemoteJob,
    state: &JobState,
    work: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<Collected> {
    let s3 = aws.s3();
    let root = work.join("ml");
    let model_dir = root.join("model");
    let output_dir = root.join("output");
    std::fs::create_dir_all(&model_dir)?;
    std::fs::create_dir_all(output_dir.join("data"))?;
    let mut left_out = Vec::new();
    let model_uri = state.model_artifacts.clone().unwrap_or_else(|| {
        format!(
            "{}{}/output/model.tar.gz",
            remote.output_path, remote.job_name
        )
    });
    if download_tarball(&s3, &model_uri, &model_dir, "model", &mut left_out).await? {
        reporter.stage("Downloaded", &model_uri);
    } else if state.status == Status::Completed {
        reporter.warn(&format!("{model_uri} is not there: the job wrote no model"));
    }
    let output_uri = model_uri.replace("/model.tar.gz", "/output.tar.gz");
    if download_tarball(
        &s3,
        &output_uri,
        &output_dir.join("data"),
        "output/data",
        &mut left_out,
    )
    .await?
    {
        reporter.stage("Downloaded", &output_uri);
    }
    if let Some(reason) = &state.failure_reason {
        std::fs::write(output_dir.join("failure"), reason)?;
    }
    let mut files = Collected::from_root(&root, &root);
    files.left_out.extend(left_out);
    Ok(files)
}

pub fn outcome(
    state: &JobState,
    log: JobLog,
    started_at: DateTime<Utc>,
    hosts: usize,
    files: Collected,
) -> anyhow::Result<Outcome> {
    let mut metrics = log.finish()?;
    for (name, value, time) in &state.final_metrics {
        if !metrics.0.contains_key(name) {
            metrics.record(name, *value, time.unwrap_or_else(Utc::now));
        }
    }
    Ok(Outcome {
        status: state.status,
        exit_code: match state.status {
            Status::Completed => Some(0),
            _ => None,
        },
        failure_reason: state.failure_reason.clone().or_else(|| {
            (state.status == Status::Stopped && state.secondary == "MaxRuntimeExceeded").then(|| {
                "Stopped by SageMaker: the job ran longer than max_runtime (MaxRuntimeExceeded)"
                    .to_string()
            })
        }),
        started_at,
        ended_at: Utc::now(),
        metrics,
        hosts: (1..=hosts).map(|i| format!("algo-{i}")).collect(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
    use aws_sdk_sagemaker::operation::stop_training_job::StopTrainingJobOutput;
    use aws_sdk_sagemaker::Client as SageMaker;
    use aws_smithy_mocks::{mock, mock_client};

    fn state(
        status: sm::TrainingJobStatus,
        secondary: sm::SecondaryStatus,
    ) -> DescribeTrainingJobOutput {
        DescribeTrainingJobOutput::builder()
            .training_job_status(status)
            .secondary_status(secondary)
            .build()
    }

    /// The status sequence moto cannot produce: InProgress (Starting, Training) and then Failed.
    #[tokio::test]
    async fn throttling_is_retried_with_backoff() {
        let throttled = || {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
                ),
            )
        };
        let rule = mock!(SageMaker::describe_training_job)
            .sequence()
            .http_response(throttled)
            .times(2)
            .output(|| {
                state(
                    sm::TrainingJobStatus::Completed,
                    sm::SecondaryStatus::Completed,
                )
            })
            .build();
        let client = mock_client!(aws_sdk_sagemaker, [&rule]);
        let described = describe(&client, "job-2").await.unwrap();
        assert_eq!(described.status, Status::Completed);
        assert!(rule.num_calls() >= 3, "{}", rule.num_calls());
    }

    #[tokio::test]
    async fn stop_calls_stop_training_job_and_reports_its_errors() {
        let ok = mock!(SageMaker::stop_training_job)
            .match_requests(|r| r.training_job_name() == Some("job-3"))
            .then_output(|| StopTrainingJobOutput::builder().build());
        let client = mock_client!(aws_sdk_sagemaker, [&ok]);
        stop(&client, "job-3").await.unwrap();
        assert_eq!(ok.num_calls(), 1);
        let failing = mock!(SageMaker::stop_training_job).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"ValidationException","message":"The job is not in progress"}"#,
                ),
            )
        });
        let client = mock_client!(aws_sdk_sagemaker, [&failing]);
        let err = stop(&client, "job-4").await.unwrap_err().to_string();
        assert!(
            err.contains("sagemaker:StopTrainingJob") && err.contains("not in progress"),
            "{err}"
        );
    }
}
