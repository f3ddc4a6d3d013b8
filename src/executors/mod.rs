//! Executors run a packaged job somewhere (this process tree, local Docker, SageMaker) and hand back
//! the same outcome: status, exit code, failure reason, metrics and logs, with the job's `/opt/ml` files.
//!
//! Every mode implements one [`Executor`]; the pipeline (`crate::pipeline`) drives any of them through the
//! same steps. A new mode is one file here implementing the trait, and a CLI variant. The helpers every
//! mode shares (the job's log, the output reader, the stop notice) live here once.

pub mod attached;
pub mod local;
pub mod remote;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;

use crate::fingerprint::RunShape;
use crate::job::{JobRecord, Mode};
use crate::lines::Piece;
use crate::metrics::{Definitions, Metrics};
use crate::package::Package;
use crate::printer::Reporter;
use crate::settings::TrainSettings;
use crate::task::ChannelSource;

pub use crate::job::{stopped_reason, Outcome};

/// What a mode is given of a job once it is packaged, fingerprinted and (for the run) named.
pub struct Job<'a, P> {
    pub settings: &'a TrainSettings,
    pub package: &'a Package,
    pub fingerprint: &'a str,
    /// What the mode made of the job before the fingerprint (an image plan, an image id).
    pub prepared: &'a P,
}

/// How a wait ended.
pub enum Ended {
    /// The job ended; what it came to, with mode-specific facts for the answer (e.g. `"image"`).
    Finished {
        outcome: Outcome,
        extra: serde_json::Map<String, serde_json::Value>,
    },
    /// The job goes on elsewhere (`--detach`, or Ctrl-C without `--stop-on-interrupt`); `results fetch`
    /// completes it later.
    Detached {
        extra: serde_json::Map<String, serde_json::Value>,
    },
}

/// One way of running a job. The pipeline calls, in order: `prepare` (what runs the package, before the
/// fingerprint), `plan` (a dry run's mode-specific part) or `ready` (everything that can fail before an id
/// is taken), `launch` (start it as that id), `wait` (until it ends, collecting what it left; or detach).
/// A mode whose launched jobs outlive grounds implements `reattach` and `stop` for `results fetch` and
/// `grounds stop`.
#[allow(async_fn_in_trait)]
pub trait Executor {
    /// What `prepare` makes of a job.
    type Prepared;
    /// What `ready` hands to `launch` (a connection to the engine, the GPUs it gives).
    type Ready;
    /// What `launch` hands to `wait`.
    type Launched;

    fn mode(&self) -> Mode;

    /// Sweep members are all launched before any is waited for (for jobs that run elsewhere).
    fn launch_all_first(&self) -> bool {
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
    async fn plan(
        &self,
        job: &Job<'_, Self::Prepared>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<serde_json::Map<String, serde_json::Value>>;

    /// Everything that can fail before an id is taken (reaching the engine, building the image).
    async fn ready(
        &self,
        job: &Job<'_, Self::Prepared>,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Self::Ready>;

    /// Starts the job as `id`, with a private folder `work`; completes the record with where it runs.
    async fn launch(
        &self,
        job: &Job<'_, Self::Prepared>,
        ready: Self::Ready,
        id: &str,
        work: &Path,
        record: &mut JobRecord,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Self::Launched>;

    /// Waits for the job to end (or detaches from it) and collects what it left.
    async fn wait(
        &self,
        job: &Job<'_, Self::Prepared>,
        launched: Self::Launched,
        record: &JobRecord,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Ended>;
}

/// How much of a line too long to hold whole is shown live.
const SHOWN_MAX: usize = 4096;

/// How long a job's output is still read after its last process has ended.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

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
    }
}

/// What is said when a job is being stopped.
pub fn stop_notice(id: &str, grace: std::time::Duration, reporter: &dyn Reporter) {
    reporter.stage(
        "Stopping",
        &format!("{id} (SIGTERM, then SIGKILL after {}s)", grace.as_secs()),
    );
}

/// Every line a job prints goes through here: shown live, kept in `logs.txt`, scanned for metrics. Long
/// lines arrive in pieces (see [`crate::lines`]): every byte is kept, the first piece is shown.
pub struct JobLog<'a> {
    writer: BufWriter<std::fs::File>,
    pub path: PathBuf,
    pub metrics: Metrics,
    definitions: Definitions,
    reporter: &'a dyn Reporter,
    /// The stream whose long line is being written to `logs.txt` piece by piece.
    open: Option<String>,
    /// Bytes of that line not shown.
    unshown: u64,
}

impl<'a> JobLog<'a> {
    /// A log at `path`; `definitions` are the task's `[metrics]`.
    pub fn create(
        path: &Path,
        definitions: Definitions,
        reporter: &'a dyn Reporter,
    ) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(JobLog {
            writer: BufWriter::new(file),
            path: path.to_path_buf(),
            metrics: Metrics::default(),
            definitions,
            reporter,
            open: None,
            unshown: 0,
        })
    }

    /// One whole line of output; `host` is given when a job has several and is then kept in the log.
    pub fn line(&mut self, host: Option<&str>, text: &str) {
        let piece = Piece {
            bytes: text.as_bytes().to_vec(),
            starts_line: true,
            ends_line: true,
        };
        self.piece(host.unwrap_or(""), host, &piece);
    }

    /// A piece of a line from the stream `stream` (e.g. `algo-1/stderr`).
    pub fn piece(&mut self, stream: &str, host: Option<&str>, piece: &Piece) {
        let now = Utc::now();
        if self.open.as_deref().is_some_and(|open| open != stream) {
            // Another stream's long line is cut short here; its next piece starts a line of its own.
            let _ = self.writer.write_all(b"\n");
            self.open = None;
        }
        let continues = self.open.is_some();
        if !continues {
            if let Some(host) = host {
                let _ = write!(self.writer, "{host} | ");
            }
        }
        let _ = self.writer.write_all(&piece.bytes);
        let text = piece.text();
        self.metrics.observe(&text, &self.definitions, now);
        if piece.ends_line {
            let _ = self.writer.write_all(b"\n");
            self.open = None;
        } else {
            self.open = Some(stream.to_string());
        }
        if piece.starts_line {
            self.unshown = 0;
            if piece.ends_line {
                self.reporter.job_line(host, &text);
            } else {
                let head: String = text.chars().take(SHOWN_MAX).collect();
                self.reporter.job_line(host, &format!("{head} …"));
                self.unshown = (piece.bytes.len() - head.len()) as u64;
            }
        } else {
            self.unshown += piece.bytes.len() as u64;
            if piece.ends_line {
                self.reporter.job_line(
                    host,
                    &format!(
                        "… ({} more bytes of that line are kept in logs.txt)",
                        self.unshown
                    ),
                );
                self.unshown = 0;
            }
        }
    }

    pub fn finish(mut self) -> anyhow::Result<Metrics> {
        if self.open.is_some() {
            let _ = self.writer.write_all(b"\n");
        }
        self.writer
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(self.metrics)
    }
}

/// Reads a stream in chunks and sends its lines (pieces of long ones) as `(stream, piece)`; a full
/// channel holds the reader back, so memory stays bounded however fast the job prints.
pub fn read_pieces<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    mut stream: R,
    name: String,
    tx: tokio::sync::mpsc::Sender<(String, Piece)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut splitter = crate::lines::LineSplitter::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for piece in splitter.push(&buffer[..n]) {
                if tx.send((name.clone(), piece)).await.is_err() {
                    return;
                }
            }
        }
        if let Some(piece) = splitter.finish() {
            let _ = tx.send((name, piece)).await;
        }
    })
}
