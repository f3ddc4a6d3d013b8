//! Executors run a packaged job somewhere (this process tree, local Docker, SageMaker) and hand back
//! the same outcome: status, exit code, failure reason, metrics and logs, with the job's `/opt/ml` files.
//!
//! Every mode implements one [`Executor`]; the pipeline (`crate::run::lifecycle`) drives any of them through the
//! same steps. A new mode is one file here implementing the trait, and a CLI variant. The job's log is
//! `crate::job::log`; the helpers the modes share besides (local channels, the stop notice) live here.

pub mod attached;
pub mod ending;
pub mod local;
pub mod remote;

use std::path::Path;

use crate::config::task::ChannelSource;
use crate::job::fingerprint::RunShape;
use crate::job::package::Package;
use crate::job::{JobRecord, Mode, Placement, Status, Waited};
use crate::printer::Reporter;
use crate::settings::TrainSettings;

pub use crate::job::Outcome;

/// What a mode is given of a job once it is packaged, fingerprinted and (for the run) named.
pub struct Job<'a, P> {
    pub settings: &'a TrainSettings,
    pub package: &'a Package,
    pub fingerprint: &'a str,
    /// The content hash of each local channel the fingerprint read.
    pub channel_hashes: &'a crate::job::fingerprint::ChannelHashes,
    /// What the mode made of the job before the fingerprint (an image plan, an image id).
    pub prepared: &'a P,
}

impl<'a, P> Job<'a, P> {
    /// The package a container of this job is delivered (as the channel its entry unpacks): every task's
    /// but an image task's, whose own image runs without grounds' entry.
    pub fn delivered_package(&self) -> Option<&'a Package> {
        match self.settings.task.spec.runner {
            crate::config::task::Runner::Image(_) => None,
            _ => Some(self.package),
        }
    }

    /// The content hash (hex) the fingerprint read of local channel `name`.
    pub fn channel_hash(&self, name: &str) -> anyhow::Result<&str> {
        self.channel_hashes
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("channel `{name}` was not fingerprinted"))
    }

    /// Checks that local channel `name` at `path` still holds what the fingerprint read (see
    /// [`crate::job::fingerprint::check_unchanged`]). An `s3://` channel read from its download stands in
    /// the fingerprint for its objects' ETags; its folder is a cache entry held whole for the job.
    pub fn check_channel(&self, name: &str, path: &Path) -> anyhow::Result<()> {
        if !self.channel_hashes.contains_key(name) && self.settings.data.contains_key(name) {
            return Ok(());
        }
        crate::job::fingerprint::check_unchanged(
            &self.settings.store.hash_cache(),
            name,
            path,
            self.channel_hash(name)?,
        )
    }
}

/// What a mode adds to the `--json` answer of a run: where it ran. Each field is present only for the
/// modes that have it (`image` is `null` for an attached run; `submitted` is `null` when `results fetch`
/// completes a job submitted earlier).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModeFacts {
    /// The image the job ran in, as grounds tagged it (attached and local runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Option<String>>,
    /// The SageMaker job (remote runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::job::SageMakerJob>,
    /// What was done to submit it (remote runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted: Option<Option<Submitted>>,
}

/// What submitting a SageMaker job did: the image it runs, whether it was pushed, its package, what of
/// its data was uploaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Submitted {
    pub image: String,
    pub pushed: bool,
    /// The package, given to the job as the channel `grounds_package` (none for an image task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<PackageUpload>,
    pub uploads: crate::cloud::s3sync::SyncReport,
}

/// Where a SageMaker job's package lies in S3, and whether this submission uploaded it (a package that
/// ran before is there already).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackageUpload {
    pub uri: String,
    pub uploaded: bool,
    pub bytes: u64,
}

/// A mode's part of a `--dry-run` plan (see `crate::answers::schema::PlanAnswer`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModePlan {
    /// The image to build (local, remote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::docker::image::ImagePlan>,
    /// The containers to run (local).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<local::containers::LocalPlan>,
    /// The SageMaker request and where things go (remote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<remote::RemotePlan>,
}

/// How a mode's wait ended (what the job came to, or that it goes on elsewhere), with the mode's facts
/// for the answer.
pub struct Ended {
    pub waited: Waited<Outcome>,
    pub facts: ModeFacts,
}

impl Ended {
    pub fn finished(outcome: Outcome, facts: ModeFacts) -> Ended {
        Ended {
            waited: Waited::Ended(outcome),
            facts,
        }
    }

    pub fn detached(facts: ModeFacts) -> Ended {
        Ended {
            waited: Waited::Detached,
            facts,
        }
    }
}

/// A job as `launch` left it: what `wait` needs, where it runs (kept in its record), and its hosts.
pub struct Launched<H> {
    pub handle: H,
    pub placement: Placement,
    /// The hosts, where they are known before the job ends (a SageMaker job's `algo-1` … `algo-N`).
    pub hosts: Vec<String>,
    /// The image the job runs in, as grounds tagged it (none for an attached job).
    pub image: Option<String>,
}

/// One way of running a job. The pipeline calls, in order: `prepare` (what runs the package, before the
/// fingerprint), `shape` (what of it enters the fingerprint), `plan` (a dry run's mode-specific part) or
/// `ready` (everything that can fail before an id is taken), `launch` (start it as that id), `wait` (until
/// it ends, collecting what it left; or detach). A mode whose launched jobs outlive grounds also
/// implements [`Reattach`], for `results fetch` and `grounds stop`.
#[allow(
    async_fn_in_trait,
    reason = "the executors are used within this crate only, never as `dyn` or across threads by a caller that would need `Send` bounds spelled out"
)]
pub trait Executor {
    /// What `prepare` makes of a job.
    type Prepared;
    /// What `ready` hands to `launch` (a connection to the engine, the GPUs it gives).
    type Ready;
    /// What `launch` hands to `wait`.
    type Handle;

    fn mode(&self) -> Mode;

    /// Sweep members are all launched before any is waited for (for jobs that run elsewhere).
    fn launch_all_first(&self) -> bool {
        false
    }

    /// The job reads `s3://` channels where they are; without it, they are downloaded first (once, into
    /// the cache) and the job reads the local copies.
    fn reads_s3(&self) -> bool {
        false
    }

    /// What runs the package: an image plan, an image's id. Nothing is changed.
    async fn prepare(
        &self,
        settings: &TrainSettings,
        package: &Package,
    ) -> anyhow::Result<Self::Prepared>;

    /// What runs the package, for the fingerprint.
    fn shape(&self, settings: &TrainSettings, prepared: &Self::Prepared) -> RunShape;

    /// The mode's part of the `--dry-run` plan, merged into the common one.
    async fn dry_run(
        &self,
        job: &Job<'_, Self::Prepared>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<ModePlan>;

    /// Everything that can fail before an id is taken (reaching the engine, building the image).
    async fn ready(
        &self,
        job: &Job<'_, Self::Prepared>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Self::Ready>;

    /// Starts the job as `id`, with a private folder `work`; says where it runs.
    async fn launch(
        &self,
        job: &Job<'_, Self::Prepared>,
        ready: Self::Ready,
        id: &str,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Launched<Self::Handle>>;

    /// Waits for the job to end (or detaches from it) and collects what it left.
    async fn wait(
        &self,
        job: &Job<'_, Self::Prepared>,
        handle: Self::Handle,
        record: &JobRecord,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Ended>;
}

/// A mode whose launched jobs go on without grounds: found again from their record, waited for again
/// (`results fetch`) or stopped (`grounds stop`).
#[allow(
    async_fn_in_trait,
    reason = "the executors are used within this crate only, never as `dyn` or across threads by a caller that would need `Send` bounds spelled out"
)]
pub trait Reattach {
    /// Where the job is now, without waiting: its status and secondary status (`results fetch --no-wait`).
    async fn status(&self, record: &JobRecord) -> anyhow::Result<(Status, String)>;

    /// Waits for the job again, with a private folder `work`, and brings home what it left (or detaches
    /// from it again).
    async fn reattach(
        &self,
        record: &JobRecord,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Waited<Outcome>>;

    /// Asks the job to stop; `results fetch` brings home what it left.
    async fn stop(&self, record: &JobRecord) -> anyhow::Result<()>;
}

/// A job that ended with the grounds process that ran it cannot be fetched or stopped; says so.
pub fn check_reattachable(record: &JobRecord) -> anyhow::Result<()> {
    match record.placement.outlives_grounds() {
        true => Ok(()),
        false => Err(not_reattachable(record)),
    }
}

fn not_reattachable(record: &JobRecord) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is not a SageMaker job (it ran in {} mode): it ended with the grounds process that ran it, so \
         there is nothing to fetch or stop",
        record.id,
        record.mode()
    )
}

/// What reaches a job launched earlier, from its record: the mode that launched it.
pub async fn reattach_to(record: &JobRecord) -> anyhow::Result<impl Reattach> {
    match &record.placement {
        Placement::SageMaker(job) => remote::SageMaker::connect(job).await,
        Placement::Attached | Placement::Local => Err(not_reattachable(record)),
    }
}

/// The local path of a channel, or an error for an `s3://` channel, which only remote runs can read.
pub fn local_channel<'a>(
    name: &str,
    source: &'a ChannelSource,
    mode: &str,
) -> anyhow::Result<&'a std::path::Path> {
    match source {
        ChannelSource::Local(path) => Ok(path),
        ChannelSource::S3(uri) => anyhow::bail!(
            "channel `{name}` is in S3 ({uri}); {mode} runs read local data only: download it and point the \
             channel at the local copy, or use `grounds train remote`"
        ),
        ChannelSource::Result { .. } => anyhow::bail!(
            "channel `{name}`: {} was not resolved to a stored result's files",
            source.describe()
        ),
    }
}

/// What is said when a job is being stopped.
pub fn stop_notice(id: &str, grace: std::time::Duration, reporter: &dyn Reporter) {
    reporter.stage(
        "Stopping",
        &format!("{id} (SIGTERM, then SIGKILL after {}s)", grace.as_secs()),
    );
}
