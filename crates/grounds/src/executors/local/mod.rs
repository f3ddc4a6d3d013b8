//! Local runs: the job's image in a Docker engine, one container per host with a job root at `/opt/ml`,
//! the way SageMaker runs it: mounted from this machine's disk, or, for an engine on another machine
//! (`--docker-host ssh://…`), copied in and out ([`copy`]).
//!
//! This file is the [`Executor`]; the containers themselves (planned, laid out, run, stopped, removed)
//! are in [`containers`].

pub mod containers;
mod copy;
mod watch;

use std::path::Path;

use bollard::models::DeviceRequest;
use bollard::Docker;

use super::{Ended, Executor, Job, Launched, ModeFacts, ModePlan};
use crate::docker::image::ImagePlan;
use crate::docker::Gpus;
use crate::docker::{self};
use crate::job::fingerprint::RunShape;
use crate::job::package::Package;
use crate::job::{JobRecord, Mode, Placement};
use crate::printer::Reporter;
use crate::settings::{ContainerSettings, TrainSettings};

pub use containers::{LocalJob, LocalPlan};

/// Local runs as an [`Executor`]: the image planned (and for an image task, found) before the
/// fingerprint, the engine reached and the image built before an id is taken, the roots laid out at
/// launch, the containers run to the end in `wait`.
pub struct LocalExecutor {
    pub container: ContainerSettings,
}

/// The image a local run uses, and what stands for it in the fingerprint.
pub struct LocalPrepared {
    pub image: ImagePlan,
    identity: String,
}

/// The engine, reached, and the GPUs it gives the containers.
pub struct LocalReady {
    docker: Docker,
    gpus: Option<Gpus>,
}

impl Executor for LocalExecutor {
    type Prepared = LocalPrepared;
    type Ready = LocalReady;
    type Handle = (LocalReady, LocalPlan);

    fn mode(&self) -> Mode {
        Mode::Local
    }

    /// The image (it holds no code: the package is laid into each host's root at launch).
    async fn prepare(
        &self,
        settings: &TrainSettings,
        _: &Package,
    ) -> anyhow::Result<LocalPrepared> {
        let image = crate::docker::image::ImagePlan::new(
            &settings.task,
            &self.container.entry_binary,
            &settings.store.hash_cache(),
        )?;
        let identity = crate::docker::image::identity(&image, &self.container.engine).await?;
        Ok(LocalPrepared { image, identity })
    }

    /// The hosts, the image (its identity) and the GPUs asked for.
    fn shape(&self, _: &TrainSettings, prepared: &LocalPrepared) -> RunShape {
        RunShape {
            instance_count: self.container.instance_count,
            image: Some(prepared.identity.clone()),
            gpus: self.container.gpus_shape(),
            entry: None,
        }
    }

    async fn dry_run(
        &self,
        job: &Job<'_, LocalPrepared>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<ModePlan> {
        let gpus = self
            .container
            .gpus
            .or(self.container.gpu_instance.then_some(Gpus::All));
        let local = LocalJob::of(
            job.settings,
            job.channel_hashes,
            &self.container,
            "<id>",
            Path::new("<work>"),
            gpus,
        );
        Ok(ModePlan {
            image: Some(job.prepared.image.clone()),
            containers: Some(local.containers(&job.prepared.image.tag, reporter)?),
            remote: None,
        })
    }

    async fn ready(
        &self,
        job: &Job<'_, LocalPrepared>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<LocalReady> {
        let passed: Vec<&str> = job
            .settings
            .task
            .spec
            .container
            .pass_env
            .iter()
            .filter(|name| std::env::var_os(name).is_some())
            .map(String::as_str)
            .collect();
        let secrets = (!passed.is_empty())
            .then(|| format!("the values of [container] pass_env ({})", passed.join(", ")));
        self.container
            .check_insecure_engine(secrets.as_deref(), reporter)?;
        let docker = self.container.engine.connect().await?;
        if self.container.copy_files {
            reporter.stage(
                "Engine",
                &format!(
                    "{} (the job's files are copied in and out, not mounted)",
                    self.container.engine
                ),
            );
        }
        let gpus = gpus_for(job.settings, &self.container, &docker, reporter).await?;
        let orphans = docker::remove_orphans(&docker).await;
        if !orphans.is_empty() {
            reporter.stage("Removed", &grounds_job::owner::removed_leftovers(&orphans));
        }
        crate::docker::image::ensure(&docker, &job.prepared.image, reporter).await?;
        Ok(LocalReady { docker, gpus })
    }

    async fn launch(
        &self,
        job: &Job<'_, LocalPrepared>,
        ready: LocalReady,
        id: &str,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Launched<(LocalReady, LocalPlan)>> {
        let local = LocalJob::of(
            job.settings,
            job.channel_hashes,
            &self.container,
            id,
            work,
            ready.gpus,
        );
        let plan = local.containers(&job.prepared.image.tag, reporter)?;
        local.prepare(&plan, job.delivered_package(), reporter)?;
        Ok(Launched {
            handle: (ready, plan),
            placement: Placement::Local,
            hosts: Vec::new(),
            image: Some(job.prepared.image.tag.clone()),
        })
    }

    async fn wait(
        &self,
        job: &Job<'_, LocalPrepared>,
        (ready, plan): (LocalReady, LocalPlan),
        record: &JobRecord,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Ended> {
        let local = LocalJob::of(
            job.settings,
            job.channel_hashes,
            &self.container,
            &record.id,
            work,
            ready.gpus,
        );
        let outcome = local.run(&ready.docker, &plan, reporter).await?;
        Ok(Ended::finished(
            outcome,
            ModeFacts {
                image: Some(Some(job.prepared.image.tag.clone())),
                ..Default::default()
            },
        ))
    }
}

/// The GPUs a local run asks for: `--gpus` (an error, before anything runs, where the engine has no
/// GPU runtime), else every GPU for a GPU `[remote] instance_type` where the engine offers them.
async fn gpus_for(
    settings: &TrainSettings,
    container: &ContainerSettings,
    docker: &Docker,
    reporter: &dyn Reporter,
) -> anyhow::Result<Option<Gpus>> {
    if container.gpus.is_none() && !container.gpu_instance {
        return Ok(None);
    }
    let offered = docker::offers_gpus(docker).await?;
    match (container.gpus, offered) {
        (Some(gpus), true) => Ok(Some(gpus)),
        (Some(gpus), false) => anyhow::bail!(
            "--gpus {gpus}: the Docker engine at {} has no GPU runtime (NVIDIA Container Toolkit), so it \
             cannot give containers GPUs; install the toolkit there, or run without --gpus",
            container.engine
        ),
        (None, true) => {
            reporter.stage("GPUs", "all the engine offers, for the GPU instance type");
            Ok(Some(Gpus::All))
        }
        (None, false) => {
            reporter.warn(&format!(
                "[remote] instance_type {} has GPUs, but the Docker engine offers none: this run uses \
                 the CPU only (SM_NUM_GPUS=0)",
                settings
                    .task
                    .spec
                    .remote
                    .instance_type
                    .as_deref()
                    .unwrap_or_default()
            ));
            Ok(None)
        }
    }
}

/// The device request of `docker run --gpus`: any driver with the `gpu` capability, all or a count.
pub fn gpu_request(gpus: Gpus) -> DeviceRequest {
    DeviceRequest {
        count: Some(match gpus {
            Gpus::All => -1,
            Gpus::Count(n) => i64::from(n),
        }),
        capabilities: Some(vec![vec!["gpu".into()]]),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `docker run --gpus all` and `--gpus 2` send as the container's device request.
    #[test]
    fn gpu_requests_are_those_of_docker_run() {
        let all = serde_json::to_value(gpu_request(Gpus::All)).unwrap();
        assert_eq!(
            all,
            serde_json::json!({"Count": -1, "Capabilities": [["gpu"]]})
        );
        let two = serde_json::to_value(gpu_request(Gpus::Count(2))).unwrap();
        assert_eq!(two["Count"], 2);
    }
}
