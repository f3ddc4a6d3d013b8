//! Attached runs: the job runs in this process tree, as a child `grounds entry`, on a temporary folder laid
//! out like `/opt/ml`. No Docker, no AWS: the fastest way to find a typo or a logic error.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::mpsc;

use super::{Ended, Executor, Job, Launched, Outcome};
use crate::config::task::Task;
use crate::job::collect::Collected;
use crate::job::fingerprint::RunShape;
use crate::job::log::{read_pieces, JobLog};
use crate::job::metrics::Definitions;
use crate::job::package::Package;
use crate::job::{JobRecord, Mode, Placement};
use crate::printer::Reporter;
use crate::settings::TrainSettings;
use grounds_job::contract::{self, ChannelConfig, JobConfig, Layout, ResourceConfig};
use grounds_job::entry;
use grounds_job::signals::StopSignals;

/// Attached runs as an [`Executor`]: laid out at launch, run to the end in `wait`.
pub struct AttachedExecutor;

impl Executor for AttachedExecutor {
    /// The entry binary that runs the job (grounds-entry or grounds-builtin, beside grounds).
    type Prepared = PathBuf;
    type Ready = ();
    type Handle = ();

    fn mode(&self) -> Mode {
        Mode::Attached
    }

    async fn prepare(&self, settings: &TrainSettings, _: &Package) -> anyhow::Result<PathBuf> {
        crate::job::entries::for_runner(&settings.task.spec.runner)?.ok_or_else(|| {
            anyhow::anyhow!(
                "an image task runs its own entry in a container: use train local or train remote"
            )
        })
    }

    /// One host, this process tree, and the entry binary that runs the job (not in the package).
    fn shape(&self, _: &TrainSettings, entry: &PathBuf) -> RunShape {
        RunShape {
            instance_count: 1,
            image: None,
            gpus: None,
            entry: Some(crate::job::fingerprint::entry_identity(entry)),
        }
    }

    async fn dry_run(
        &self,
        _: &Job<'_, PathBuf>,
        _: &dyn Reporter,
    ) -> anyhow::Result<super::ModePlan> {
        Ok(super::ModePlan::default())
    }

    async fn ready(&self, _: &Job<'_, PathBuf>, _: &dyn Reporter) -> anyhow::Result<()> {
        Ok(())
    }

    async fn launch(
        &self,
        job: &Job<'_, PathBuf>,
        _: (),
        id: &str,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Launched<()>> {
        AttachedJob::of(job, id, work).prepare(reporter)?;
        // The job's copies are made: they hold the data the fingerprint read, or nothing runs.
        for (name, source) in &job.settings.task.channels {
            if let crate::config::task::ChannelSource::Local(path) = source {
                job.check_channel(name, path)?;
            }
        }
        Ok(Launched {
            handle: (),
            placement: Placement::Attached,
            image: None,
            hosts: Vec::new(),
        })
    }

    async fn wait(
        &self,
        job: &Job<'_, PathBuf>,
        _: (),
        record: &JobRecord,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Ended> {
        let outcome = AttachedJob::of(job, &record.id, work).run(reporter).await?;
        Ok(Ended::finished(
            outcome,
            super::ModeFacts {
                image: Some(None),
                ..Default::default()
            },
        ))
    }
}

pub struct AttachedJob<'a> {
    /// The entry binary that runs the job.
    pub entry: &'a Path,
    pub id: &'a str,
    pub task: &'a Task,
    pub package: &'a Package,
    /// A private folder for this run; the root is `work/ml`.
    pub work: &'a Path,
    /// How long a stopped job gets between SIGTERM and SIGKILL.
    pub grace: Duration,
}

impl<'a> AttachedJob<'a> {
    fn of(job: &Job<'a, PathBuf>, id: &'a str, work: &'a Path) -> AttachedJob<'a> {
        AttachedJob {
            entry: job.prepared,
            id,
            task: &job.settings.task,
            package: job.package,
            work,
            grace: job.settings.grace,
        }
    }

    pub fn layout(&self) -> Layout {
        Layout::new(self.work.join("ml"))
    }

    pub fn logs_path(&self) -> PathBuf {
        self.work.join("logs.txt")
    }

    /// Lays out the root: config files and the job's own copy of every channel.
    fn prepare(&self, reporter: &dyn Reporter) -> anyhow::Result<()> {
        let layout = self.layout();
        layout
            .create_dirs()
            .with_context(|| format!("creating the job root {}", layout.root.display()))?;
        let mut input_data_config = std::collections::BTreeMap::new();
        for (name, source) in &self.task.channels {
            let path = super::local_channel(name, source, "attached")?;
            let what = format!("channel `{name}`");
            crate::job::channels::copy_into(path, &layout.channel_dir(name), &what, reporter)
                .with_context(|| what.clone())?;
            input_data_config.insert(name.clone(), ChannelConfig::default());
        }
        let config = JobConfig {
            hyperparameters: self.task.spec.hyperparameters.clone(),
            input_data_config,
            resource_config: ResourceConfig::for_host(1, 1, "local"),
        };
        config.write(&layout)?;
        Ok(())
    }

    /// The entry started on the job's root and package, in its own process group (Ctrl-C reaches grounds
    /// only, which stops the job the way SageMaker does, and everything the job started can be killed as
    /// one group), told to stop its job if grounds dies.
    fn entry_command(&self, layout: &Layout) -> tokio::process::Command {
        let package_path = self.package.path().to_path_buf();
        let mut command = tokio::process::Command::new(self.entry);
        let parent = std::process::id() as i32;
        command
            .env(contract::ROOT_ENV, &layout.root)
            .env(entry::PACKAGE_ENV, &package_path)
            .env("TRAINING_JOB_NAME", self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: Ctrl-C reaches grounds only, which stops the job the way SageMaker
            // does, and everything the job started can be killed as one group.
            .process_group(0);
        // SAFETY: only async-signal-safe calls (prctl, getppid, kill) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // If grounds dies (kill -9, a crash), the entry is told to stop its job as if stopped.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
                if libc::getppid() != parent {
                    // grounds died before the line above took effect.
                    libc::kill(libc::getpid(), libc::SIGTERM);
                }
                Ok(())
            });
        }
        command
    }

    /// Runs the entry on the prepared root until the job ends.
    pub async fn run(&self, reporter: &dyn Reporter) -> anyhow::Result<Outcome> {
        let layout = self.layout();
        let exe = self.entry;
        let mut command = self.entry_command(&layout);
        // Listening before the job starts, and for the whole run: a signal that arrives between two turns
        // of the loop below is kept, not lost.
        let mut stops = StopSignals::listen()?;
        let started_at = Utc::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting the entry {}", exe.display()))?;
        let pid = child.id().map(|p| p as i32);

        let (tx, mut rx) = mpsc::channel(256);
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            anyhow::bail!("the job's output could not be captured");
        };
        let readers = [
            read_pieces(out, "stdout".into(), tx.clone()),
            read_pieces(err, "stderr".into(), tx),
        ];
        let mut log = JobLog::create(
            &self.logs_path(),
            Definitions::new(&self.task.spec.metrics),
            reporter,
        )?;
        // The entry's end is awaited without reaping it: while it is a zombie its pid, and so its process
        // group's id, cannot be taken by another process, so the group can be killed safely below.
        let exited = exit_of(pid);
        let show = |log: &mut JobLog<'_>, (stream, piece): (String, grounds_job::lines::Piece)| {
            log.piece(&stream, None, &piece)
        };
        let mut stopping = EntryStopping {
            id: self.id,
            pid,
            grace: self.grace,
            reporter,
        };
        let mut output = super::ending::JobOutput {
            log: &mut log,
            lines: &mut rx,
            show,
        };
        let (_, stopped) = output
            .watch(exited, &mut stops, &mut stopping, reporter, self.grace)
            .await;
        // Whatever the job left running in its group goes with it, as it would with its container; then
        // the entry is reaped, and what is left of its output read.
        kill_group(pid, libc::SIGKILL);
        let status = child.wait().await?;
        output.drain(reporter).await;
        for reader in readers {
            reader.abort();
        }
        let logged = log.finish()?;
        let ended_at = Utc::now();

        use std::os::unix::process::ExitStatusExt;
        let exit_code = status.code().or_else(|| status.signal().map(|s| 128 + s));
        let job_status = super::ending::status(stopped, !status.success());
        let failure_reason =
            super::ending::failure_reason(job_status, entry::read_failure(&layout), || {
                format!(
                    "The entry exited with code {} and left no failure file",
                    exit_code.unwrap_or(-1)
                )
            });
        Ok(Outcome {
            status: job_status,
            exit_code,
            failure_reason,
            started_at,
            ended_at,
            metrics: logged.metrics,
            malformed_metric_lines: logged.malformed,
            hosts: vec!["algo-1".into()],
            files: Collected::from_root(&layout.root, &layout.root),
            logs: self.logs_path(),
        })
    }
}

/// How an attached job is stopped: SIGTERM to the entry (as SageMaker signals only the entry), and past
/// the grace SIGKILL to everything below it and to its process group.
struct EntryStopping<'a> {
    id: &'a str,
    pid: Option<i32>,
    grace: Duration,
    reporter: &'a dyn Reporter,
}

impl super::ending::Stopping for EntryStopping<'_> {
    fn stop(&mut self) -> Option<tokio::time::Instant> {
        super::stop_notice(self.id, self.grace, self.reporter);
        if let Some(pid) = self.pid {
            // SAFETY: kill(2) on the entry we spawned and have not reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        Some(tokio::time::Instant::now() + self.grace)
    }

    fn kill(&mut self) {
        // Everything below the entry first: killed last, its orphans would escape the tree.
        if let Some(pid) = self.pid {
            grounds_job::proctree::kill_descendants(pid);
        }
        kill_group(self.pid, libc::SIGKILL);
    }
}

/// Waits until the process `pid` (a child of ours) has exited, leaving it a zombie (`WNOWAIT`).
fn wait_unreaped(pid: i32) -> std::io::Result<()> {
    loop {
        // SAFETY: waitid(2) on our own child, into a zeroed siginfo we own.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

fn kill_group(pid: Option<i32>, signal: i32) {
    if let Some(pid) = pid {
        // SAFETY: killpg(2) on the process group we created for the entry.
        unsafe {
            libc::killpg(pid, signal);
        }
    }
}

/// Told when the entry `pid` has exited, without reaping it (see [`wait_unreaped`]); at once when there is
/// no pid.
fn exit_of(pid: Option<i32>) -> tokio::sync::oneshot::Receiver<std::io::Result<()>> {
    let (exited_tx, exited) = tokio::sync::oneshot::channel();
    match pid {
        Some(pid) => {
            tokio::task::spawn_blocking(move || {
                let _ = exited_tx.send(wait_unreaped(pid));
            });
        }
        None => {
            let _ = exited_tx.send(Ok(()));
        }
    }
    exited
}
