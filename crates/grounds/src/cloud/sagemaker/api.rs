//! The SageMaker training API as grounds uses it: the CreateTrainingJob call made from a checked request,
//! DescribeTrainingJob with backoff when AWS throttles, every status transition and the CloudWatch log
//! streams followed live while a job runs, and StopTrainingJob.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sagemaker::types as sm;
use chrono::{DateTime, TimeZone, Utc};

use super::CreateTrainingJob;
use crate::cloud::aws::call_error;
use crate::job::log::JobLog;
use crate::job::{Status, Waited};
use crate::printer::{Measure, Reporter};

pub const LOG_GROUP: &str = "/aws/sagemaker/TrainingJobs";
/// The first pause between two DescribeTrainingJob calls; it grows by half each time, up to 30 s.
pub const FIRST_POLL: Duration = Duration::from_secs(2);

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
                let message = crate::cloud::aws::explain(&e);
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

/// Polls with backoff until the job ends, printing each status change and tailing its logs.
pub async fn wait(
    sagemaker: &aws_sdk_sagemaker::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    job: &str,
    log: &mut JobLog<'_>,
    stop_on_interrupt: bool,
    first_delay: Duration,
    reporter: &dyn Reporter,
) -> anyhow::Result<Waited<JobState>> {
    let mut tail = LogTail::new(logs, job);
    let mut seen = (Status::InProgress, String::new());
    let mut shown = 0;
    let mut delay = first_delay;
    let mut stopping = false;
    // Made once, before the loop: a Ctrl-C that arrives while DescribeTrainingJob runs is kept, not lost.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let progress = reporter.progress(Measure::Waiting, "Waiting", job, None);
    loop {
        let state = describe(sagemaker, job).await?;
        progress.message(&format!("{job}: {} / {}", state.status, state.secondary));
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
            return Ok(Waited::Ended(state));
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = interrupt.recv(), if !stopping => {
                if !stop_on_interrupt {
                    return Ok(Waited::Detached);
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
