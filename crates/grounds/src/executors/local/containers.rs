//! The containers of a local run: one per host, each with its own job root at `/opt/ml` (mounted from the
//! host disk, or copied in and out, see [`super::copy`]), on a network of their own when there are several.
//!
//! Containers run as the invoking user, so nothing they write is owned by root; logs stream line by line;
//! containers, networks and roots are removed after the run whatever its end.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StopContainerOptionsBuilder};
use bollard::Docker;
use chrono::Utc;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::secrets;
use crate::config::task::{ChannelSource, Task};
use crate::docker::Gpus;
use crate::docker::{call_error, JOB_LABEL, LABEL, OWNER_LABEL};
use crate::executors::{local_channel, stop_notice, Outcome};
use crate::job::collect::{Collected, Source};
use crate::job::log::JobLog;
use crate::job::metrics::Definitions;
use crate::job::package::Package;
use crate::printer::Reporter;
use crate::settings::{ContainerSettings, TrainSettings};
use grounds_job::contract::{ChannelConfig, JobConfig, Layout, ResourceConfig, PACKAGE_CHANNEL};
use grounds_job::entry;
use grounds_job::lines::Piece;
use grounds_job::signals::StopSignals;

/// One container of the job, as planned.
#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub host: String,
    pub container: String,
    pub root: PathBuf,
    /// `source:target[:ro]` bind mounts (none when the files are copied).
    pub mounts: Vec<String>,
    /// When the files are copied: what the container gets, besides `/opt/ml` copied in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
}

/// How a job's files reach its containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Files {
    /// The job root bind-mounted at `/opt/ml`: the engine shares this machine's disk.
    Mount,
    /// `/opt/ml` copied in before the start, `model/`, `output/`, `checkpoints/` copied out at the end,
    /// channels as data volumes kept on the engine.
    Copy,
}

/// Everything about a local run that can be known without running it.
#[derive(Debug, Clone, Serialize)]
pub struct LocalPlan {
    pub image: String,
    /// The engine that runs the containers.
    pub docker_host: String,
    pub files: Files,
    pub user: String,
    pub network: Option<String>,
    /// GPUs each container asks for (`all`, a number), as `docker run --gpus`.
    pub gpus: Option<String>,
    pub hosts: Vec<HostPlan>,
    /// Environment of every container; values of passed-through and secret-looking variables masked in
    /// `masked_env`.
    #[serde(skip)]
    pub env: Vec<(String, String)>,
    #[serde(rename = "env")]
    pub masked_env: BTreeMap<String, String>,
}

/// What the containers of a job came to (see `LocalJob::ends`).
struct ContainersEnded {
    files: Collected,
    status: crate::job::Status,
    exit_code: Option<i32>,
    failure_reason: Option<String>,
}

pub struct LocalJob<'a> {
    pub id: &'a str,
    pub task: &'a Task,
    /// Where channels' content hashes are remembered.
    pub hashes: crate::job::datahash::HashCache,
    /// The content hash of each local channel the fingerprint read (they name the engine's data
    /// volumes, and every copy of a channel is checked against them).
    pub channel_hashes: &'a crate::job::fingerprint::ChannelHashes,
    pub work: &'a Path,
    pub grace: Duration,
    pub instance_count: usize,
    /// `uid:gid` the containers run as.
    pub user: (u32, u32),
    /// GPUs each container asks for.
    pub gpus: Option<Gpus>,
    pub files: Files,
    pub docker_host: String,
}

impl<'a> LocalJob<'a> {
    pub fn of(
        settings: &'a TrainSettings,
        channel_hashes: &'a crate::job::fingerprint::ChannelHashes,
        container: &ContainerSettings,
        id: &'a str,
        work: &'a Path,
        gpus: Option<Gpus>,
    ) -> LocalJob<'a> {
        LocalJob {
            id,
            task: &settings.task,
            hashes: settings.store.hash_cache(),
            channel_hashes,
            work,
            grace: settings.grace,
            instance_count: container.instance_count,
            user: container.user,
            gpus,
            files: if container.copy_files {
                Files::Copy
            } else {
                Files::Mount
            },
            docker_host: container.engine.to_string(),
        }
    }

    pub fn host_root(&self, host: &str) -> PathBuf {
        self.work.join("hosts").join(host)
    }

    pub fn logs_path(&self) -> PathBuf {
        self.work.join("logs.txt")
    }

    /// The plan, with the environment taken from this process for `pass_env`.
    pub fn containers(&self, image: &str, reporter: &dyn Reporter) -> anyhow::Result<LocalPlan> {
        let hosts = grounds_job::contract::host_names(self.instance_count);
        let mut env = vec![("TRAINING_JOB_NAME".to_string(), self.id.to_string())];
        let mut masked = BTreeMap::from([("TRAINING_JOB_NAME".to_string(), self.id.to_string())]);
        for (key, value) in &self.task.spec.container.env {
            env.push((key.clone(), value.clone()));
            masked.insert(key.clone(), secrets::shown_value(key, value));
        }
        for name in &self.task.spec.container.pass_env {
            match std::env::var(name) {
                Ok(value) => {
                    env.push((name.clone(), value));
                    masked.insert(name.clone(), secrets::MASK.into());
                }
                Err(_) => reporter.warn(&format!(
                    "[container] pass_env names `{name}`, which is not set here; it is not passed"
                )),
            }
        }
        let mut plans = Vec::new();
        for host in &hosts {
            let root = self.host_root(host);
            for (name, source) in &self.task.channels {
                local_channel(name, source, "local")?;
            }
            let (mounts, volumes) = match self.files {
                // The channels are copied into the root: each host has its own writable copy.
                Files::Mount => (vec![format!("{}:/opt/ml", root.display())], Vec::new()),
                Files::Copy => (
                    Vec::new(),
                    self.task
                        .channels
                        .keys()
                        .map(|name| {
                            format!(
                                "/opt/ml/input/data/{name}: channel `{name}`, a read-only data volume \
                                 kept on the engine by content hash"
                            )
                        })
                        .collect(),
                ),
            };
            plans.push(HostPlan {
                host: host.clone(),
                container: format!("grounds-{}-{host}", self.id),
                root,
                mounts,
                volumes,
            });
        }
        Ok(LocalPlan {
            image: image.to_string(),
            docker_host: self.docker_host.clone(),
            files: self.files,
            user: format!("{}:{}", self.user.0, self.user.1),
            network: (self.instance_count > 1).then(|| format!("grounds-{}", self.id)),
            gpus: self.gpus.map(|g| g.to_string()),
            hosts: plans,
            env,
            masked_env: masked,
        })
    }

    /// Lays out each host's root: config files, mount points for the channels, the package in its channel
    /// (`None` for an image task, whose own entry needs none), and the output folders.
    pub fn prepare(
        &self,
        plan: &LocalPlan,
        package: Option<&Package>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<()> {
        let mut channels: BTreeMap<String, ChannelConfig> = self
            .task
            .channels
            .keys()
            .map(|name| (name.clone(), ChannelConfig::default()))
            .collect();
        // Listed as SageMaker lists it; the entry keeps it from the program's channels.
        if package.is_some() {
            channels.insert(PACKAGE_CHANNEL.to_string(), ChannelConfig::default());
        }
        for (index, host) in plan.hosts.iter().enumerate() {
            let layout = Layout::new(&host.root);
            layout
                .create_dirs()
                .with_context(|| format!("creating {}", host.root.display()))?;
            JobConfig {
                hyperparameters: self.task.spec.hyperparameters.clone(),
                input_data_config: channels.clone(),
                resource_config: ResourceConfig::for_host(index + 1, plan.hosts.len(), "local"),
            }
            .write(&layout)?;
            // Each host's own copy of the data, as SageMaker downloads it to every host; copied runs
            // mount the data volumes instead.
            for (name, source) in self
                .task
                .channels
                .iter()
                .filter(|_| self.files == Files::Mount)
            {
                if let ChannelSource::Local(path) = source {
                    let what = format!("channel `{name}` for {}", host.host);
                    crate::job::channels::copy_into(
                        path,
                        &layout.channel_dir(name),
                        &what,
                        reporter,
                    )
                    .with_context(|| what.clone())?;
                }
            }
            if let Some(package) = package {
                package.deliver_into(&layout)?;
            }
            std::fs::create_dir_all(layout.code_dir())?;
            give_to(&host.root, self.user)?;
        }
        if self.files == Files::Mount {
            self.check_channels()?;
        }
        Ok(())
    }

    /// Checks that every local channel still holds the data the fingerprint read, once its copies are
    /// made: the job reads what its record names.
    fn check_channels(&self) -> anyhow::Result<()> {
        for (name, source) in &self.task.channels {
            // A channel without a hash is an `s3://` download, fingerprinted by its objects' ETags and
            // held whole in the cache for the job.
            if let (ChannelSource::Local(path), Some(expected)) =
                (source, self.channel_hashes.get(name))
            {
                crate::job::fingerprint::check_unchanged(&self.hashes, name, path, expected)?;
            }
        }
        Ok(())
    }

    /// Runs the containers of a prepared plan until the job ends; nothing is left in the engine after.
    pub async fn run(
        &self,
        docker: &Docker,
        plan: &LocalPlan,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Outcome> {
        let mut created: Vec<String> = Vec::new();
        let result = self
            .run_containers(docker, plan, &mut created, reporter)
            .await;
        // Whatever happened, nothing is left in the engine.
        super::watch::remove(docker, &created, plan.network.as_deref(), reporter).await;
        result
    }

    async fn run_containers(
        &self,
        docker: &Docker,
        plan: &LocalPlan,
        created: &mut Vec<String>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Outcome> {
        // Listening before anything is created, and for the whole run: Ctrl-C then always ends in the
        // cleanup below, and a signal that arrives between two turns of the loop is kept, not lost.
        let mut stops = StopSignals::listen()?;
        let labels = self.labels();
        self.set_up(docker, plan, &labels, created, reporter)
            .await?;

        let started_at = Utc::now();
        let (lines_tx, mut lines_rx) = mpsc::channel::<(String, String, Piece)>(256);
        let (streams, waits) = start_containers(docker, plan, &lines_tx).await?;
        drop(lines_tx);
        reporter.stage(
            "Running",
            &format!("{} container(s) of {}", plan.hosts.len(), plan.image),
        );

        let multi_host = plan.hosts.len() > 1;
        let mut log = JobLog::create(
            &self.logs_path(),
            Definitions::new(&self.task.spec.metrics),
            reporter,
        )?;
        let show = |log: &mut JobLog<'_>, (stream, host, piece): (String, String, Piece)| {
            log.piece(&stream, multi_host.then_some(host.as_str()), &piece)
        };
        let mut stopping = ContainersStopping {
            job: self,
            docker,
            plan,
            reporter,
        };
        let mut output = super::super::ending::JobOutput {
            log: &mut log,
            lines: &mut lines_rx,
            show,
        };
        let (exits, stopped) = output
            .watch(
                futures_util::future::join_all(waits),
                &mut stops,
                &mut stopping,
                reporter,
                self.grace,
            )
            .await;
        output.drain(reporter).await;
        for stream in streams {
            stream.abort();
        }
        let logged = log.finish()?;
        let ended_at = Utc::now();
        let mut codes = Vec::new();
        for (host, exit) in plan.hosts.iter().zip(exits) {
            codes.push((host, exit.context("waiting for a container")??));
        }
        let ends = self.ends(docker, plan, &codes, stopped, reporter).await;
        Ok(Outcome {
            status: ends.status,
            exit_code: ends.exit_code,
            failure_reason: ends.failure_reason,
            started_at,
            ended_at,
            metrics: logged.metrics,
            malformed_metric_lines: logged.malformed,
            hosts: plan.hosts.iter().map(|h| h.host.clone()).collect(),
            files: ends.files,
            logs: self.logs_path(),
        })
    }

    /// Everything the containers need before they start: the network of a run of several hosts, the
    /// containers with their data, and the job's files copied in when the engine cannot mount them.
    async fn set_up(
        &self,
        docker: &Docker,
        plan: &LocalPlan,
        labels: &HashMap<String, String>,
        created: &mut Vec<String>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<()> {
        if let Some(network) = &plan.network {
            let request = NetworkCreateRequest {
                name: network.clone(),
                driver: Some("bridge".into()),
                labels: Some(labels.clone()),
                ..Default::default()
            };
            docker
                .create_network(request)
                .await
                .map_err(|e| call_error(&format!("create network {network}"), e))?;
        }
        self.create_with_data(docker, plan, labels, created, reporter)
            .await?;
        if plan.files == Files::Copy {
            for host in &plan.hosts {
                super::copy::copy_in(docker, &host.container, &host.root, self.user, reporter)
                    .await?;
            }
        }
        Ok(())
    }

    /// The labels of everything the run creates: the owner's identity lets a later run remove them if
    /// this process dies without cleaning up.
    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (JOB_LABEL.to_string(), self.id.to_string()),
            (
                OWNER_LABEL.to_string(),
                grounds_job::owner::Owner::current().label(),
            ),
        ])
    }

    /// Creates the containers, with the channels' data volumes when the files are copied. Once the
    /// containers exist, no volume they mount can be removed: each is then checked to be grounds' whole
    /// copy, not an empty one the engine made because the one named was removed meanwhile (by hand, or
    /// by `grounds cache clear`); such data is sent again, once.
    async fn create_with_data(
        &self,
        docker: &Docker,
        plan: &LocalPlan,
        labels: &HashMap<String, String>,
        created: &mut Vec<String>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<()> {
        let env: Vec<String> = plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut sent_again = false;
        loop {
            let volumes = match plan.files {
                Files::Mount => None,
                Files::Copy => Some(
                    super::copy::channel_volumes(
                        docker,
                        self.task,
                        &self.hashes,
                        self.channel_hashes,
                        &plan.image,
                        self.user,
                        reporter,
                    )
                    .await?,
                ),
            };
            let channel_mounts = volumes.as_ref().map(super::copy::channel_mounts);
            self.create_containers(docker, plan, &env, labels, channel_mounts, created)
                .await?;
            let Some(volumes) = &volumes else {
                return Ok(());
            };
            let missing = crate::docker::volumes::missing_after_mount(docker, volumes).await?;
            if missing.is_empty() {
                return Ok(());
            }
            let names = missing.join("`, `");
            if sent_again {
                anyhow::bail!(
                    "the data volume of channel `{names}` was removed again before the job started: is \
                     `grounds cache clear` running against this engine in a loop?"
                );
            }
            reporter.warn(&format!(
                "the data volume of channel `{names}` was removed before the job started; sending it \
                 again"
            ));
            super::watch::remove(docker, created, None, reporter).await;
            created.clear();
            crate::docker::volumes::remove_stand_ins(docker, volumes, &missing).await;
            sent_again = true;
        }
    }

    /// How the containers ended: their files home (copied out when they were copied in), the job's
    /// status, exit code (the first failed host's) and failure reason (each failed host's own, named
    /// when there are several; also written as `output/failure`).
    async fn ends(
        &self,
        docker: &Docker,
        plan: &LocalPlan,
        codes: &[(&HostPlan, i64)],
        stopped: bool,
        reporter: &dyn Reporter,
    ) -> ContainersEnded {
        let multi_host = plan.hosts.len() > 1;
        let mut copied_left_out = Vec::new();
        if plan.files == Files::Copy {
            for host in &plan.hosts {
                for mut item in
                    super::copy::copy_out(docker, &host.container, &host.host, &host.root, reporter)
                        .await
                {
                    if multi_host {
                        item.path = format!("{}: {}", host.host, item.path);
                    }
                    copied_left_out.push(item);
                }
            }
        }
        let mut files = Collected::merge(
            plan.hosts
                .iter()
                .map(|h| {
                    (
                        h.host.clone(),
                        Collected::from_root(
                            &h.root,
                            Path::new(grounds_job::contract::DEFAULT_ROOT),
                        ),
                    )
                })
                .collect(),
        );
        files.left_out.extend(copied_left_out);
        let failed: Vec<&(&HostPlan, i64)> = codes.iter().filter(|(_, code)| *code != 0).collect();
        let status = super::super::ending::status(stopped, !failed.is_empty());
        let exit_code = failed.first().map(|(_, code)| *code as i32).or(Some(0));
        let mut reasons = Vec::new();
        for (host, code) in &failed {
            let reason = entry::read_failure(&Layout::new(&host.root)).unwrap_or_else(|| {
                format!("the container exited with code {code} and left no failure file")
            });
            reasons.push(if multi_host {
                format!("{}: {reason}", host.host)
            } else {
                reason
            });
        }
        let theirs = (!reasons.is_empty()).then(|| reasons.join("\n"));
        let failure_reason = super::super::ending::failure_reason(status, theirs, || {
            "a container failed and left no failure file".to_string()
        });
        if let Some(reason) = &failure_reason {
            if multi_host || !files.has("output/failure") {
                files.put("output/failure", Source::Bytes(reason.as_bytes().to_vec()));
            }
        }
        ContainersEnded {
            files,
            status,
            exit_code,
            failure_reason,
        }
    }

    /// Creates (does not start) every host's container.
    async fn create_containers(
        &self,
        docker: &Docker,
        plan: &LocalPlan,
        env: &[String],
        labels: &HashMap<String, String>,
        channel_mounts: Option<Vec<bollard::models::Mount>>,
        created: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        for host in &plan.hosts {
            let networking = plan.network.as_ref().map(|network| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.clone(),
                    EndpointSettings {
                        aliases: Some(vec![host.host.clone()]),
                        ..Default::default()
                    },
                )])),
            });
            let body = ContainerCreateBody {
                image: Some(plan.image.clone()),
                cmd: Some(vec!["train".into()]),
                hostname: Some(host.host.clone()),
                user: Some(plan.user.clone()),
                env: Some(env.to_vec()),
                labels: Some(labels.clone()),
                host_config: Some(HostConfig {
                    binds: (!host.mounts.is_empty()).then(|| host.mounts.clone()),
                    mounts: channel_mounts.clone(),
                    network_mode: plan.network.clone(),
                    device_requests: self.gpus.map(|gpus| vec![super::gpu_request(gpus)]),
                    ..Default::default()
                }),
                networking_config: networking,
                ..Default::default()
            };
            let options = CreateContainerOptionsBuilder::default()
                .name(&host.container)
                .build();
            docker
                .create_container(Some(options), body)
                .await
                .map_err(|e| {
                    call_error(
                        &format!("create container {} from {}", host.container, plan.image),
                        e,
                    )
                })?;
            created.push(host.container.clone());
        }
        Ok(())
    }
}

/// How containers are stopped: `docker stop -t GRACE` to each (SIGTERM, then the engine's SIGKILL after
/// the grace), in the background, so the job's output goes on being read meanwhile.
struct ContainersStopping<'a> {
    job: &'a LocalJob<'a>,
    docker: &'a Docker,
    plan: &'a LocalPlan,
    reporter: &'a dyn Reporter,
}

impl super::super::ending::Stopping for ContainersStopping<'_> {
    fn stop(&mut self) -> Option<tokio::time::Instant> {
        stop_notice(self.job.id, self.job.grace, self.reporter);
        for host in &self.plan.hosts {
            let docker = self.docker.clone();
            let name = host.container.clone();
            let grace = self.job.grace.as_secs() as i32;
            tokio::spawn(async move {
                let options = StopContainerOptionsBuilder::default().t(grace).build();
                let _ = docker.stop_container(&name, Some(options)).await;
            });
        }
        None
    }
}

/// Hands a folder tree to the user the containers run as, when that is not who we are.
fn give_to(root: &Path, (uid, gid): (u32, u32)) -> anyhow::Result<()> {
    if (uid, gid) == grounds_job::owner::current_user() {
        return Ok(());
    }
    fn walk(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
        if path.is_dir() && !path.is_symlink() {
            for entry in std::fs::read_dir(path)? {
                walk(&entry?.path(), uid, gid)?;
            }
        }
        Ok(())
    }
    walk(root, uid, gid).with_context(|| {
        format!(
            "giving {} to {uid}:{gid} (only root can run jobs as another user)",
            root.display()
        )
    })
}

/// A stream of a running container's output lines (host, stream, piece) and the wait for its exit code.
type Started = (
    Vec<tokio::task::JoinHandle<()>>,
    Vec<tokio::task::JoinHandle<anyhow::Result<i64>>>,
);

/// Starts every host's container, streaming its output into `lines` and waiting for its end.
async fn start_containers(
    docker: &Docker,
    plan: &LocalPlan,
    lines: &mpsc::Sender<(String, String, Piece)>,
) -> anyhow::Result<Started> {
    let mut streams = Vec::new();
    let mut waits = Vec::new();
    for host in &plan.hosts {
        docker
            .start_container(
                &host.container,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(|e| call_error(&format!("start container {}", host.container), e))?;
        streams.push(tokio::spawn(super::watch::stream_logs(
            docker.clone(),
            host.container.clone(),
            host.host.clone(),
            lines.clone(),
        )));
        waits.push(tokio::spawn(super::watch::wait_exit(
            docker.clone(),
            host.container.clone(),
        )));
    }
    Ok((streams, waits))
}
