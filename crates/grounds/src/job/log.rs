//! The log of one job: every line it prints is shown live, kept in `logs.txt` and scanned for metrics,
//! whichever mode ran it. Executors and the SageMaker log reader all write through [`JobLog`].

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;

use crate::job::metrics::{Definitions, MalformedKind, MalformedLines, Metrics};
use crate::printer::Reporter;
use grounds_job::lines::Piece;

/// How much of a line too long to hold whole is shown live.
const SHOWN_MAX: usize = 4096;

/// How long a job's output is still read after its last process has ended.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Every line a job prints goes through here: shown live, kept in `logs.txt`, scanned for metrics. Long
/// lines arrive in pieces (see [`grounds_job::lines`]): every byte is kept, the first piece is shown.
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
    /// Metric values found but not recorded (a name too long, or beyond the number of metrics kept).
    dropped: u64,
    /// Lines that carry the metric marker but are not metric lines, by what is wrong with them.
    malformed: std::collections::BTreeMap<MalformedKind, MalformedLines>,
}

/// What a job's log found, once it has ended.
pub struct Logged {
    pub metrics: Metrics,
    /// Lines that looked like metric lines but were not, a tally per kind.
    pub malformed: Vec<MalformedLines>,
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
            dropped: 0,
            malformed: Default::default(),
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
        let (_, dropped) = self.metrics.observe(&text, &self.definitions, now);
        if dropped > 0 && self.dropped == 0 {
            self.reporter.warn(&format!(
                "a metric on this line is not recorded: names are kept up to {} characters, and at most \
                 {} metrics per job (the line stays in logs.txt)",
                crate::job::metrics::MAX_NAME,
                crate::job::metrics::NAMES_MAX
            ));
        }
        self.dropped += dropped as u64;
        if piece.starts_line {
            self.check_malformed(&text);
        }
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

    /// Counts a line that carries the metric marker without being a metric line; the first of each kind
    /// is warned about, saying what is wrong and what to write.
    fn check_malformed(&mut self, text: &str) {
        for kind in crate::job::metrics::malformed(text) {
            let tally = self.malformed.entry(kind).or_insert_with(|| {
                let first: String = text
                    .trim_end()
                    .chars()
                    .take(crate::job::metrics::EXAMPLE_MAX)
                    .collect();
                self.reporter.warn(&format!(
                    "this line looks like a metric but is not recorded: {}: `{first}` (a metric line is \
                     `###METRIC###name:value###`; further lines like it are counted in `results show`)",
                    kind.explain()
                ));
                MalformedLines {
                    kind,
                    problem: kind.explain().to_string(),
                    lines: 0,
                    first,
                }
            });
            tally.lines += 1;
        }
    }

    pub fn finish(mut self) -> anyhow::Result<Logged> {
        if self.open.is_some() {
            let _ = self.writer.write_all(b"\n");
        }
        self.writer
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
        let thinned = self.metrics.thinned();
        if !thinned.is_empty() {
            let (name, how) = thinned[0];
            self.reporter.stage(
                "Thinned",
                &format!(
                    "{} metric series to keep memory and metrics.json bounded (e.g. {name}: every {}th of \
                     {} values); final values are exact, every value is in logs.txt",
                    thinned.len(),
                    how.every,
                    how.reported
                ),
            );
        }
        if self.dropped > 0 {
            self.reporter.warn(&format!(
                "{} metric value(s) were not recorded (names over {} characters, or beyond {} metrics)",
                self.dropped,
                crate::job::metrics::MAX_NAME,
                crate::job::metrics::NAMES_MAX
            ));
        }
        if !self.malformed.is_empty() {
            let lines: u64 = self.malformed.values().map(|m| m.lines).sum();
            self.reporter.warn(&format!(
                "{lines} line(s) looked like metric lines but were not recorded ({})",
                self.malformed
                    .values()
                    .map(|m| format!("{}: {}", m.lines, m.problem))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        Ok(Logged {
            metrics: self.metrics,
            malformed: self.malformed.into_values().collect(),
        })
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
        let mut splitter = grounds_job::lines::LineSplitter::new();
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
