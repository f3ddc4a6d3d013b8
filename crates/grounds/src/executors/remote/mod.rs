//! Remote runs: the job's image in ECR (or a registry of your choice), its local channels synced to S3, a
//! SageMaker training job created from the same contract, waited for with its logs tailed live from
//! CloudWatch, and its artifacts brought home in the same result format as the other modes. A launched
//! job outlives grounds: `results fetch` reattaches to it and `grounds stop` stops it.
//!
//! This file is the [`Executor`] and the wait; everything `train remote` will do is resolved first, with
//! no call that changes anything, in [`plan`].

mod plan;

use std::path::Path;

use chrono::Utc;

use anyhow::Context;

use super::{
    Ended, Executor, Job, Launched, ModeFacts, ModePlan, Outcome, PackageUpload, Reattach,
    Submitted,
};
use crate::cloud::aws::Aws;
use crate::cloud::sagemaker::api;
use crate::cloud::sagemaker::{self};
use crate::docker::image::ImagePlan;
use crate::job::fingerprint::RunShape;
use crate::job::log::JobLog;
use crate::job::metrics::Definitions;
use crate::job::package::Package;
use crate::job::{JobRecord, Mode, Placement, SageMakerJob, Status, Waited};
use crate::printer::Reporter;
use crate::settings::{ContainerSettings, RemoteSettings, TrainSettings};

pub use plan::{RemoteOptions, RemotePlan};

/// SageMaker runs as an [`Executor`]: AWS reached once per command; the image (and for an image task,
/// whether the local engine has it) known before the fingerprint; every check, then the bucket, the
/// image push, the uploads and CreateTrainingJob at launch; the wait (or `--detach`) in `wait`.
pub struct RemoteExecutor {
    sagemaker: SageMaker,
    settings: RemoteSettings,
    container: ContainerSettings,
}

impl RemoteExecutor {
    /// Reaches AWS (region, credentials, account) once, for every member of a sweep.
    pub async fn connect(
        settings: RemoteSettings,
        container: ContainerSettings,
    ) -> anyhow::Result<RemoteExecutor> {
        let aws = Aws::connect(settings.profile.as_deref(), settings.region.as_deref()).await?;
        Ok(RemoteExecutor {
            sagemaker: SageMaker { aws },
            settings,
            container,
        })
    }

    fn aws(&self) -> &Aws {
        &self.sagemaker.aws
    }
}

/// The image of a remote run, and how SageMaker gets it.
pub struct RemotePrepared {
    pub image: ImagePlan,
    /// An image task's image as the local engine has it (it is pushed), if it does.
    local_id: Option<String>,
    /// The tag it gets in grounds' repository.
    tag: String,
    /// The sha256 of the package's zip (where it is kept in S3); `None` for an image or framework task.
    package_sha256: Option<String>,
    /// A framework task's `sourcedir.tar.gz`, written from the package, and its sha256.
    sources: Option<(tempfile::TempPath, String)>,
}

impl RemotePrepared {
    /// An image task's image the local engine does not have: SageMaker pulls it as named.
    fn as_named(&self) -> bool {
        self.image.given && self.local_id.is_none()
    }
}

/// What was done to submit a job, handed from `launch` to `wait` for the answer.
#[derive(Clone)]
pub struct SubmittedJob(Submitted);

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
            instance_count: self.container.instance_count,
            fingerprint: job.fingerprint,
            channel_hashes: job.channel_hashes,
            package_hash: &job.package.info.content_hash,
            package_sha256: job.prepared.package_sha256.as_deref(),
            sources_sha256: job.prepared.sources.as_ref().map(|(_, sha)| sha.as_str()),
            settings: &self.settings,
        }
    }
}

/// What `ready` put in place for a job: whether the image was pushed, and what the data's upload did.
pub struct RemoteReady {
    pushed: bool,
    package: Option<PackageUpload>,
    uploads: crate::cloud::s3sync::SyncReport,
}

/// A job name of the task's shape, for a plan made before the job's id is taken (a dry run, `ready`).
fn preview_name(job: &Job<'_, RemotePrepared>) -> String {
    format!(
        "{}-{}-0000",
        job.settings.task.spec.name,
        Utc::now().format("%Y%m%d-%H%M%S")
    )
}

impl RemoteExecutor {
    /// The image, built if needed and pushed to the plan's registry (a tag the registry has is not pushed
    /// again); an image named as it is (not in the local engine) is given to SageMaker as it is.
    async fn push(
        &self,
        job: &Job<'_, RemotePrepared>,
        plan: &RemotePlan,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<bool> {
        if job.prepared.as_named() {
            reporter.stage(
                "Image",
                &format!(
                    "{} as it is named (it is not in the local engine)",
                    plan.image_uri
                ),
            );
            return Ok(false);
        }
        let docker = self.container.engine.connect().await?;
        crate::docker::image::ensure(&docker, &job.prepared.image, reporter).await?;
        let credentials = match &job.settings.task.spec.remote.registry {
            Some(_) => None,
            None => Some(
                crate::cloud::registry::ecr_credentials(
                    self.aws(),
                    &format!("grounds/{}", job.settings.task.spec.name.to_lowercase()),
                    reporter,
                )
                .await?,
            ),
        };
        crate::cloud::registry::push(
            &docker,
            &job.prepared.image.tag,
            &plan.image_uri,
            credentials,
            reporter,
        )
        .await
        .map_err(Into::into)
    }
}

/// Uploads each local channel to the prefix of its content, checked against the fingerprint before and
/// after (what an upload added is taken back if the data changed meanwhile), and marks each data set used.
async fn upload(
    job: &Job<'_, RemotePrepared>,
    s3: &aws_sdk_s3::Client,
    plan: &RemotePlan,
    reporter: &dyn Reporter,
) -> anyhow::Result<crate::cloud::s3sync::SyncReport> {
    let mut uploads = crate::cloud::s3sync::SyncReport::default();
    for (channel, (path, prefix)) in &plan.uploads {
        job.check_channel(channel, path)?;
        let (files, _) = job
            .settings
            .store
            .hash_cache()
            .file_hashes(path)
            .map_err(|e| e.context(format!("channel `{channel}`")))?;
        let hashes = files
            .into_iter()
            .map(|(relative, hash)| (relative, hex::encode(hash)))
            .collect();
        let report =
            crate::cloud::s3sync::sync(s3, path, &plan.bucket, prefix, &hashes, reporter).await?;
        if let Err(changed) = job.check_channel(channel, path) {
            crate::cloud::s3sync::remove_added(s3, &plan.bucket, &report).await?;
            return Err(changed);
        }
        reporter.stage(
            "Synced",
            &format!(
                "channel `{channel}`: {} uploaded, {} unchanged",
                report.uploaded, report.unchanged
            ),
        );
        uploads.uploaded += report.uploaded;
        uploads.unchanged += report.unchanged;
        uploads.bytes_uploaded += report.bytes_uploaded;
    }
    // Each data set says when a job last used it: `cache clear --s3` leaves recently used data alone.
    for hash in plan
        .uploads
        .keys()
        .filter_map(|c| job.channel_hashes.get(c))
    {
        crate::cloud::sagemaker::datasets::mark_used(s3, &plan.bucket, hash).await?;
    }
    Ok(uploads)
}

/// What a SageMaker run adds to its answer: the job, and what submitting it did.
fn facts(record: &JobRecord, submitted: SubmittedJob) -> ModeFacts {
    ModeFacts {
        image: None,
        remote: record.sagemaker().cloned(),
        submitted: Some(Some(submitted.0)),
    }
}

impl Executor for RemoteExecutor {
    type Prepared = RemotePrepared;
    type Ready = RemoteReady;
    type Handle = SubmittedJob;

    fn mode(&self) -> Mode {
        Mode::Remote
    }

    fn launch_all_first(&self) -> bool {
        true
    }

    fn reads_s3(&self) -> bool {
        true
    }

    async fn prepare(
        &self,
        settings: &TrainSettings,
        package: &Package,
    ) -> anyhow::Result<RemotePrepared> {
        let image = crate::docker::image::ImagePlan::new(
            &settings.task,
            &self.container.entry_binary,
            &settings.store.hash_cache(),
        )?;
        let framework = match &settings.task.spec.runner {
            crate::config::task::Runner::Command(command) => command.framework_image.is_some(),
            _ => false,
        };
        // A framework image is AWS's (or the user's, in a registry SageMaker reads): named as it is,
        // never pushed, even when the local engine has a copy.
        let local_id = if image.given && !framework {
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
        let package_sha256 = match image.given {
            true => None,
            false => Some(package.sha256().context("reading the package")?),
        };
        let sources = match framework {
            true => {
                let file = tempfile::Builder::new()
                    .prefix("grounds-sourcedir-")
                    .suffix(".tar.gz")
                    .tempfile()
                    .context("making a file for sourcedir.tar.gz")?
                    .into_temp_path();
                let sha = sagemaker::sources::write_tarball(package.path(), &file)?;
                Some((file, sha))
            }
            false => None,
        };
        Ok(RemotePrepared {
            image,
            local_id,
            tag,
            package_sha256,
            sources,
        })
    }

    /// The hosts and the image (its id where the local engine has it, else its name).
    fn shape(&self, _: &TrainSettings, prepared: &RemotePrepared) -> RunShape {
        RunShape {
            instance_count: self.container.instance_count,
            image: Some(
                prepared
                    .local_id
                    .clone()
                    .unwrap_or_else(|| prepared.image.tag.clone()),
            ),
            gpus: None,
            entry: None,
        }
    }

    async fn dry_run(
        &self,
        job: &Job<'_, RemotePrepared>,
        _: &dyn Reporter,
    ) -> anyhow::Result<ModePlan> {
        let mut plan = RemotePlan::resolve(self.aws(), &self.options(job, &preview_name(job)))?;
        // What is printed, not what is sent: secret-looking hyperparameters masked.
        plan.create_training_job.hyper_parameters =
            crate::config::secrets::shown_map(&plan.create_training_job.hyper_parameters);
        Ok(ModePlan {
            image: Some(job.prepared.image.clone()),
            containers: None,
            remote: Some(plan),
        })
    }

    /// Everything that can fail before an id is taken, and that the job needs in place before it is
    /// created: every SageMaker limit checked (the plan), the bucket, the image pushed (through the local
    /// engine, DOCKER_HOST: over plain TCP on the network the registry's login would travel in clear, so
    /// that is refused first), the data uploaded to its content prefixes.
    async fn ready(
        &self,
        job: &Job<'_, RemotePrepared>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<RemoteReady> {
        if !job.prepared.as_named() {
            let logs_in = job.settings.task.spec.remote.registry.is_none();
            self.container.check_insecure_engine(
                logs_in.then_some("the registry login (ECR credentials, given to the push)"),
                reporter,
            )?;
        }
        let aws = self.aws();
        // The plan as it will be, but for the job's name, which is taken later: what the checks and the
        // uploads need does not depend on it.
        let plan = RemotePlan::resolve(aws, &self.options(job, &preview_name(job)))?;
        let s3 = aws.s3();
        crate::cloud::s3sync::ensure_bucket(&s3, &plan.bucket, &aws.region, reporter).await?;
        let pushed = self.push(job, &plan, reporter).await?;
        // The code goes beside the image: grounds' package, or a framework task's sourcedir.tar.gz.
        let code = match (&plan.package, &job.prepared.package_sha256) {
            (Some(uri), Some(sha)) => Some((
                "Package",
                uri,
                job.package.path(),
                sagemaker::packages::prefix_of(sha),
                grounds_job::contract::PACKAGE_FILE,
                sha.as_str(),
            )),
            _ => match (&plan.sources, &job.prepared.sources) {
                (Some(uri), Some((path, sha))) => Some((
                    "Sources",
                    uri,
                    path.as_ref(),
                    sagemaker::sources::prefix_of(sha),
                    sagemaker::sources::FILE,
                    sha.as_str(),
                )),
                _ => None,
            },
        };
        let package = match code {
            Some((stage, uri, path, prefix, name, sha)) => {
                let report = sagemaker::packages::upload_once(
                    &s3,
                    &plan.bucket,
                    (&prefix, name),
                    path,
                    sha,
                    reporter,
                )
                .await?;
                let uploaded = report.uploaded > 0;
                reporter.stage(
                    stage,
                    &format!(
                        "{uri} ({})",
                        if uploaded {
                            "uploaded"
                        } else {
                            "there already"
                        }
                    ),
                );
                Some(PackageUpload {
                    uri: uri.clone(),
                    uploaded,
                    bytes: report.bytes_uploaded,
                })
            }
            None => None,
        };
        let uploads = upload(job, &s3, &plan, reporter).await?;
        Ok(RemoteReady {
            pushed,
            package,
            uploads,
        })
    }

    /// Creates the training job, named by its id, on what `ready` put in place.
    async fn launch(
        &self,
        job: &Job<'_, RemotePrepared>,
        ready: RemoteReady,
        id: &str,
        _: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Launched<SubmittedJob>> {
        let aws = self.aws();
        let plan = RemotePlan::resolve(aws, &self.options(job, id))?;
        api::create(&aws.sagemaker(), &plan.create_training_job).await?;
        reporter.stage("Submitted", &format!("training job {id} in {}", aws.region));
        Ok(Launched {
            handle: SubmittedJob(Submitted {
                image: plan.image_uri.clone(),
                pushed: ready.pushed,
                package: ready.package,
                uploads: ready.uploads,
            }),
            placement: Placement::SageMaker(SageMakerJob {
                job_name: id.to_string(),
                region: aws.region.clone(),
                profile: self.settings.profile.clone(),
                bucket: plan.bucket.clone(),
                output_path: plan.output_path.clone(),
                image_uri: plan.image_uri.clone(),
            }),
            hosts: grounds_job::contract::host_names(self.container.instance_count),
            image: Some(job.prepared.image.tag.clone()),
        })
    }

    async fn wait(
        &self,
        _: &Job<'_, RemotePrepared>,
        submitted: SubmittedJob,
        record: &JobRecord,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Ended> {
        let facts = facts(record, submitted.clone());
        if self.settings.detach {
            return Ok(Ended::detached(facts));
        }
        let waited = await_job(
            self.aws(),
            record,
            work,
            self.settings.stop_on_interrupt,
            reporter,
        )
        .await?;
        Ok(Ended { waited, facts })
    }
}

/// Waits for a SageMaker job and brings it home when it ended; on Ctrl-C without `stop_on_interrupt`,
/// detaches from it.
async fn await_job(
    aws: &Aws,
    record: &JobRecord,
    work: &Path,
    stop_on_interrupt: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<Waited<Outcome>> {
    let Some(remote) = record.sagemaker() else {
        return Err(super::not_reattachable(record));
    };
    let mut log = JobLog::create(
        &work.join("logs.txt"),
        Definitions::new(&record.task.metrics),
        reporter,
    )?;
    let waited = api::wait(
        &aws.sagemaker(),
        aws.logs(),
        &remote.job_name,
        &mut log,
        stop_on_interrupt,
        api::FIRST_POLL,
        reporter,
    )
    .await?;
    let Waited::Ended(state) = waited else {
        log.finish()?;
        reporter.warn(&format!(
            "detached: the job goes on in SageMaker; `grounds results fetch {id}` completes it, `grounds stop {id}` stops it",
            id = record.id
        ));
        return Ok(Waited::Detached);
    };
    let files = sagemaker::artifacts::collect(aws, remote, &state, work, reporter).await?;
    let outcome = sagemaker::artifacts::outcome(
        &state,
        log,
        record.started_at,
        record.hosts.len().max(1),
        files,
    )?;
    Ok(Waited::Ended(outcome))
}

/// SageMaker reached with one AWS configuration: how a remote run waits, and how `results fetch` and
/// `grounds stop` reach a job launched earlier.
pub struct SageMaker {
    aws: Aws,
}

impl SageMaker {
    /// Reaches the AWS account a job was launched in, as its record says.
    pub async fn connect(job: &SageMakerJob) -> anyhow::Result<SageMaker> {
        let aws = Aws::connect(job.profile.as_deref(), Some(&job.region)).await?;
        Ok(SageMaker { aws })
    }
}

impl Reattach for SageMaker {
    /// DescribeTrainingJob.
    async fn status(&self, record: &JobRecord) -> anyhow::Result<(Status, String)> {
        let Some(remote) = record.sagemaker() else {
            return Err(super::not_reattachable(record));
        };
        let state = api::describe(&self.aws.sagemaker(), &remote.job_name).await?;
        Ok((state.status, state.secondary))
    }

    async fn reattach(
        &self,
        record: &JobRecord,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Waited<Outcome>> {
        await_job(&self.aws, record, work, false, reporter).await
    }

    /// StopTrainingJob.
    async fn stop(&self, record: &JobRecord) -> anyhow::Result<()> {
        let Some(remote) = record.sagemaker() else {
            return Err(super::not_reattachable(record));
        };
        api::stop(&self.aws.sagemaker(), &remote.job_name).await
    }
}
