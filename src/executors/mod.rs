//! Executors run a packaged job somewhere (this process tree, local Docker, SageMaker) and hand back
//! the same outcome: status, exit code, failure reason, metrics and logs, with the job's `/opt/ml` files.

pub mod attached;
pub mod local;
pub mod remote;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::metrics::Metrics;
use crate::printer::Reporter;
use crate::results::Status;
use crate::task::ChannelSource;

/// What a run of a job came to.
#[derive(Debug)]
pub struct Outcome {
    pub status: Status,
    pub exit_code: Option<i32>,
    pub failure_reason: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub metrics: Metrics,
    pub hosts: Vec<String>,
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
    }
}

/// What is said when a job is being stopped.
pub fn stop_notice(id: &str, grace: std::time::Duration, reporter: &dyn Reporter) {
    reporter.stage(
        "Stopping",
        &format!("{id} (SIGTERM, then SIGKILL after {}s)", grace.as_secs()),
    );
}

/// The failure reason of a job the user stopped, keeping what the job itself said.
pub fn stopped_reason(theirs: Option<String>) -> String {
    let reason = "Stopped by the user (Ctrl-C or SIGTERM)";
    match theirs {
        Some(theirs) => format!("{reason}; the job said: {theirs}"),
        None => reason.to_string(),
    }
}

/// Every line a job prints goes through here: shown live, kept in `logs.txt`, scanned for metrics.
pub struct JobLog<'a> {
    writer: BufWriter<std::fs::File>,
    pub path: PathBuf,
    pub metrics: Metrics,
    reporter: &'a dyn Reporter,
}

impl<'a> JobLog<'a> {
    pub fn create(path: &Path, reporter: &'a dyn Reporter) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(JobLog {
            writer: BufWriter::new(file),
            path: path.to_path_buf(),
            metrics: Metrics::default(),
            reporter,
        })
    }

    /// One line of output; `host` is given when a job has several and is then kept in the log.
    pub fn line(&mut self, host: Option<&str>, text: &str) {
        let now = Utc::now();
        self.metrics.observe(text, now);
        let _ = match host {
            Some(host) => writeln!(self.writer, "{host} | {text}"),
            None => writeln!(self.writer, "{text}"),
        };
        self.reporter.job_line(host, text);
    }

    pub fn finish(mut self) -> anyhow::Result<Metrics> {
        self.writer
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(self.metrics)
    }
}
