//! Remote runs: the job's image in ECR (or a registry of your choice), its local channels synced to S3, a
//! SageMaker training job created from the same contract, waited for with its logs tailed live from
//! CloudWatch, and its artifacts brought home in the same result format as the other modes. A launched
//! job outlives grounds: `results fetch` reattaches to it and `grounds stop` stops it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Ended, Executor, Job, JobLog};
use crate::aws::Aws;
use crate::fingerprint::RunShape;
use crate::image::ImagePlan;
use crate::job::{JobRecord, Mode, SageMakerJob, Status};
use crate::metrics::Definitions;
use crate::package::Package;
use crate::printer::Reporter;
use crate::sagemaker::api::{self, WaitEnd};
use crate::sagemaker::{self, CreateTrainingJob, JobInputs, LimitError};
use crate::settings::TrainSettings;
use crate::task::{ChannelSource, Runner, Task};

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


/// SageMaker runs as an [`Executor`]: AWS reached once per command; the image (and for an image task,
/// whether the local engine has it) known before the fingerprint; every check, then the bucket, the
/// image push, the uploads and CreateTrainingJob at launch; the wait (or `--detach`) in `wait`.
pub struct RemoteExecutor {
    pub aws: Aws,
    /// `.env` values, consulted after the environment for the role and bucket.
    pub dotenv: BTreeMap<String, String>,
    pub profile: Option<String>,
    pub detach: bool,
    pub stop_on_interrupt: bool,
}

/// The image of a remote run, and how SageMaker gets it.
pub struct RemotePrepared {
    pub image: ImagePlan,
    /// An image task's image as the local engine has it (it is pushed), if it does.
    local_id: Option<String>,
    /// The tag it gets in grounds' repository.
    tag: String,
}

impl RemotePrepared {
    /// An image task's image the local engine does not have: SageMaker pulls it as named.
    fn as_named(&self) -> bool {
        self.image.given && self.local_id.is_none()
    }
}

/// What was done to submit a job, for the answer.
pub struct Submitted(Value);

impl RemoteExecutor {
    fn options<'a>(&'a self, job: &'a Job<'_, RemotePrepared>, id: &'a str) -> RemoteOptions<'a> {
        RemoteOptions {
            id,
            task: &job.settings.task,
            image_tag: &job.prepared.tag,
            image_uri: job
                .prepared
                .as_named()
                .then_some(job.prepared.image.tag.as_str()),
            instance_count: job.settings.container.instance_count,
            fingerprint: job.fingerprint,
            package_hash: &job.package.info.content_hash,
            dotenv: &self.dotenv,
        }
    }
}

fn answer_extra(record: &JobRecord, submitted: Value) -> Map<String, Value> {
    Map::from_iter([
        ("remote".to_string(), serde_json::json!(record.remote)),
        ("submitted".to_string(), submitted),
    ])
}

impl Executor for RemoteExecutor {
    type Prepared = RemotePrepared;
    type Ready = ();
    type Launched = Submitted;

    fn mode(&self) -> Mode {
        Mode::Remote
    }

    fn launch_all_first(&self) -> bool {
        true
    }

    async fn prepare(
        &self,
        settings: &TrainSettings,
        package: &Package,
    ) -> anyhow::Result<RemotePrepared> {
        let image = crate::image::plan(&settings.task, package, &settings.container.entry_binary)?;
        let local_id = if image.given {
            match crate::docker::connect().await {
                Ok(docker) => crate::docker::image_id(&docker, &image.tag).await?,
                Err(_) => None,
            }
        } else {
            None
        };
        let tag = match &local_id {
            Some(id) => id.trim_start_matches("sha256:").chars().take(16).collect(),
            None => image
                .tag
                .rsplit_once(':')
                .map(|(_, t)| t.to_string())
                .unwrap_or_default(),
        };
        Ok(RemotePrepared {
            image,
            local_id,
            tag,
        })
    }

    fn shape(&self, settings: &TrainSettings, prepared: &RemotePrepared) -> RunShape {
        settings.shape(Some(
            prepared
                .local_id
                .clone()
                .unwrap_or_else(|| prepared.image.tag.clone()),
        ))
    }

    async fn plan(
        &self,
        job: &Job<'_, RemotePrepared>,
        _: &dyn Reporter,
    ) -> anyhow::Result<Map<String, Value>> {
        let preview = format!(
            "{}-{}-0000",
            job.settings.task.spec.name,
            Utc::now().format("%Y%m%d-%H%M%S")
        );
        let plan = plan(&self.aws, &self.options(job, &preview))?;
        Ok(Map::from_iter([
            ("image".to_string(), serde_json::to_value(&job.prepared.image)?),
            ("remote".to_string(), serde_json::to_value(&plan)?),
        ]))
    }

    async fn ready(&self, _: &Job<'_, RemotePrepared>, _: &dyn Reporter) -> anyhow::Result<()> {
        Ok(())
    }

    async fn launch(
        &self,
        job: &Job<'_, RemotePrepared>,
        _: (),
        id: &str,
        _: &Path,
        record: &mut JobRecord,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Submitted> {
        // Every check before anything is built, pushed, uploaded or created.
        let plan = plan(&self.aws, &self.options(job, id))?;
        let s3 = self.aws.s3();
        crate::s3sync::ensure_bucket(&s3, &plan.bucket, &self.aws.region, reporter).await?;
        let pushed = if job.prepared.as_named() {
            reporter.stage(
                "Image",
                &format!(
                    "{} as it is named (it is not in the local engine)",
                    plan.image_uri
                ),
            );
            false
        } else {
            let docker = crate::docker::connect().await?;
            crate::image::ensure(&docker, &job.prepared.image, job.package, reporter).await?;
            let credentials = match &job.settings.task.spec.remote.registry {
                Some(_) => None,
                None => Some(
                    crate::registry::ecr_credentials(
                        &self.aws,
                        &format!("grounds/{}", job.settings.task.spec.name.to_lowercase()),
                        reporter,
                    )
                    .await?,
                ),
            };
            crate::registry::push(
                &docker,
                &job.prepared.image.tag,
                &plan.image_uri,
                credentials,
                reporter,
            )
            .await?
        };
        let mut uploads = crate::s3sync::SyncReport::default();
        for (channel, (path, prefix)) in &plan.uploads {
            let report = crate::s3sync::sync(&s3, path, &plan.bucket, prefix, reporter).await?;
            reporter.stage(
                "Synced",
                &format!(
                    "channel `{channel}`: {} uploaded, {} unchanged, {} removed",
                    report.uploaded, report.unchanged, report.deleted
                ),
            );
            uploads.uploaded += report.uploaded;
            uploads.unchanged += report.unchanged;
            uploads.deleted += report.deleted;
            uploads.bytes_uploaded += report.bytes_uploaded;
        }
        api::create(&self.aws.sagemaker(), &plan.create_training_job).await?;
        reporter.stage(
            "Submitted",
            &format!("training job {id} in {}", self.aws.region),
        );
        record.hosts = (1..=job.settings.container.instance_count)
            .map(|i| format!("algo-{i}"))
            .collect();
        record.started_at = Utc::now();
        record.remote = Some(SageMakerJob {
            job_name: id.to_string(),
            region: self.aws.region.clone(),
            profile: self
                .profile
                .clone()
                .or_else(|| std::env::var("AWS_PROFILE").ok()),
            bucket: plan.bucket.clone(),
            output_path: plan.output_path.clone(),
            image_uri: plan.image_uri.clone(),
        });
        Ok(Submitted(serde_json::json!({
            "image": plan.image_uri,
            "pushed": pushed,
            "uploads": uploads,
        })))
    }

    async fn wait(
        &self,
        _: &Job<'_, RemotePrepared>,
        Submitted(submitted): Submitted,
        record: &JobRecord,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Ended> {
        if self.detach {
            return Ok(Ended::Detached {
                extra: answer_extra(record, submitted),
            });
        }
        match await_job(&self.aws, record, work, false, self.stop_on_interrupt, reporter).await? {
            Awaited::Ended(outcome) => Ok(Ended::Finished {
                outcome,
                extra: answer_extra(record, submitted),
            }),
            Awaited::Running(..) | Awaited::Detached => Ok(Ended::Detached {
                extra: answer_extra(record, submitted),
            }),
        }
    }
}

/// How waiting for a SageMaker job ended.
pub enum Awaited {
    /// It ended, and is home.
    Ended(crate::job::Outcome),
    /// It is still running (`--no-wait`): its status and secondary status.
    Running(Status, String),
    /// Ctrl-C detached from it.
    Detached,
}

/// Waits for a SageMaker job (or, with `no_wait`, takes it as it is) and brings it home when it ended.
async fn await_job(
    aws: &Aws,
    record: &JobRecord,
    work: &Path,
    no_wait: bool,
    stop_on_interrupt: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<Awaited> {
    let Some(remote) = record.sagemaker() else {
        bail!("{} is a {} run, not a SageMaker job", record.id, record.mode);
    };
    let mut log = JobLog::create(
        &work.join("logs.txt"),
        Definitions::new(&record.task.metrics),
        reporter,
    )?;
    let state = if no_wait {
        let state = api::describe(&aws.sagemaker(), &remote.job_name).await?;
        let mut tail = api::LogTail::new(aws.logs(), &remote.job_name);
        for (host, line) in tail.poll().await {
            log.line(Some(&host), &line);
        }
        state
    } else {
        match api::wait(
            &aws.sagemaker(),
            aws.logs(),
            &remote.job_name,
            &mut log,
            stop_on_interrupt,
            api::FIRST_POLL,
            reporter,
        )
        .await?
        {
            WaitEnd::Finished(state) => state,
            WaitEnd::Detached => {
                log.finish()?;
                reporter.warn(&format!(
                    "detached: the job goes on in SageMaker; `grounds results fetch {id}` completes it, `grounds stop {id}` stops it",
                    id = record.id
                ));
                return Ok(Awaited::Detached);
            }
        }
    };
    if state.status == Status::InProgress {
        reporter.stage(
            "Running",
            &format!(
                "{} is still {} / {}",
                record.id, state.status, state.secondary
            ),
        );
        return Ok(Awaited::Running(state.status, state.secondary));
    }
    let files = sagemaker::artifacts::collect(aws, remote, &state, work, reporter).await?;
    let outcome = sagemaker::artifacts::outcome(
        &state,
        log,
        record.started_at,
        record.hosts.len().max(1),
        files,
    )?;
    Ok(Awaited::Ended(outcome))
}

/// `results fetch`: reaches the job's AWS account and waits for it again (or takes it as it is).
pub async fn reattach(
    record: &JobRecord,
    no_wait: bool,
    work: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<Awaited> {
    let Some(remote) = record.sagemaker() else {
        bail!("{} is a {} run, not a SageMaker job", record.id, record.mode);
    };
    let aws = Aws::connect(remote.profile.as_deref(), Some(&remote.region)).await?;
    await_job(&aws, record, work, no_wait, false, reporter).await
}

/// `grounds stop`: StopTrainingJob.
pub async fn stop(record: &JobRecord) -> anyhow::Result<()> {
    let Some(remote) = record.sagemaker() else {
        bail!("{} is a {} run, not a SageMaker job", record.id, record.mode);
    };
    let aws = Aws::connect(remote.profile.as_deref(), Some(&remote.region)).await?;
    api::stop(&aws.sagemaker(), &remote.job_name).await
}
