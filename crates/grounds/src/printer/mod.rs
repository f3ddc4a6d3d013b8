//! The one place that writes what a person or a script reads.
//!
//! Core code reports through the [`Reporter`] trait and never prints. Human-readable status and the job's
//! own output go to standard error; the answer of a command (tables, ids, `--json` objects) goes to
//! standard output, so `grounds ... --json | jq` always gets clean JSON.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

mod progress;

pub use progress::{Measure, Progress};

/// What core code tells the user while it works.
pub trait Reporter: Send + Sync {
    /// A step of the work: `stage` is a short verb (`Packaging`, `Running`), `detail` what it acts on.
    fn stage(&self, stage: &str, detail: &str);
    /// One line the job printed, live; `host` is set when a job has more than one.
    fn job_line(&self, host: Option<&str>, line: &str);
    /// Something the user should know that does not stop the work.
    fn warn(&self, message: &str);
    /// Long work about to start: `stage` and `what` name it as [`Reporter::stage`] would, `total` is how
    /// much there is when known. The handle is advanced by the work and ends it when dropped.
    fn progress(
        &self,
        measure: Measure,
        stage: &str,
        what: &str,
        total: Option<u64>,
    ) -> Progress<'_>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// A reporter that says nothing: for work whose progress nobody reads.
#[cfg(test)]
pub struct Silent;

#[cfg(test)]
impl Reporter for Silent {
    fn stage(&self, _: &str, _: &str) {}
    fn job_line(&self, _: Option<&str>, _: &str) {}
    fn warn(&self, _: &str) {}
    fn progress(&self, _: Measure, _: &str, _: &str, _: Option<u64>) -> Progress<'_> {
        Progress::hidden()
    }
}

/// When standard error gets colour (and, on a terminal, progress drawn in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    Always,
    Never,
}

pub struct Printer {
    pub format: Format,
    /// Hide the job's own output (it is still stored in the result).
    pub quiet: bool,
    color: bool,
    /// Standard error and standard output are terminals: text a job controls is made safe to show there.
    stderr_terminal: bool,
    stdout_terminal: bool,
    /// Where progress bars are drawn: only for people at a terminal (not with `--json` or `--quiet`).
    bars: Option<Arc<Drawn>>,
    /// Writes the lines [`Drawn`] holds back when nothing else comes to write them.
    flusher: Option<(
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
    lock: Mutex<()>,
}

/// How long lines for standard error may wait while bars are drawn: moving the bars out of the way and
/// back for every line would make a chatty job's output several times slower and larger.
const LINES_WAIT: Duration = Duration::from_millis(40);

/// The bars on the terminal and the lines waiting to be written above them, together.
struct Drawn {
    bars: indicatif::MultiProgress,
    pending: Mutex<Pending>,
}

struct Pending {
    text: String,
    written: Instant,
}

impl Drawn {
    /// Adds a line for standard error; writes what waits when it has waited long enough.
    fn line(&self, line: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.text.push_str(line);
        pending.text.push('\n');
        if pending.written.elapsed() >= LINES_WAIT || pending.text.len() > 1 << 20 {
            self.write(&mut pending, || {});
        }
    }

    /// Writes what waits for standard error, then `then`, with the bars out of the way.
    fn write<T>(&self, pending: &mut Pending, then: impl FnOnce() -> T) -> T {
        let text = std::mem::take(&mut pending.text);
        pending.written = Instant::now();
        self.bars.suspend(|| {
            if !text.is_empty() {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes());
                let _ = err.flush();
            }
            then()
        })
    }

    fn flush(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.text.is_empty() {
            self.write(&mut pending, || {});
        }
    }
}

impl Printer {
    pub fn new(format: Format, quiet: bool) -> Self {
        let stderr_terminal = std::io::stderr().is_terminal();
        let color = stderr_terminal && std::env::var_os("NO_COLOR").is_none();
        let dumb = std::env::var("TERM").is_ok_and(|term| term == "dumb");
        let bars = (stderr_terminal && !dumb && format == Format::Human && !quiet).then(|| {
            Arc::new(Drawn {
                bars: indicatif::MultiProgress::with_draw_target(
                    indicatif::ProgressDrawTarget::stderr(),
                ),
                pending: Mutex::new(Pending {
                    text: String::new(),
                    written: Instant::now(),
                }),
            })
        });
        let flusher = bars.as_ref().and_then(|drawn| {
            let drawn = drawn.clone();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stopped = stop.clone();
            std::thread::Builder::new()
                .name("printer".into())
                .spawn(move || {
                    while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                        // Woken at once when the printer is dropped: the program does not wait to end.
                        std::thread::park_timeout(LINES_WAIT);
                        drawn.flush();
                    }
                })
                .ok()
                .map(|handle| (stop, handle))
        });
        Printer {
            format,
            quiet,
            color,
            stderr_terminal,
            stdout_terminal: std::io::stdout().is_terminal(),
            bars,
            flusher,
            lock: Mutex::new(()),
        }
    }

    /// Asks a yes/no question at a terminal and says whether the answer was yes; without a person to ask
    /// (standard input or error not a terminal, or `--json`) the answer is no.
    pub fn confirm(&self, question: &str) -> bool {
        if self.format != Format::Human || !self.stderr_terminal || !std::io::stdin().is_terminal()
        {
            return false;
        }
        self.around_bars(|| {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{question} [y/N] ");
            let _ = err.flush();
        });
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }

    /// Writes to the terminal after every line that waits, with the bars out of the way (they are
    /// drawn again after).
    fn around_bars<T>(&self, write: impl FnOnce() -> T) -> T {
        match &self.bars {
            Some(drawn) => {
                let mut pending = drawn.pending.lock().unwrap_or_else(|e| e.into_inner());
                drawn.write(&mut pending, write)
            }
            None => {
                let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                write()
            }
        }
    }

    /// A bar for `measure` in the multi-bar area, as the printer draws it.
    fn bar(
        &self,
        bars: &indicatif::MultiProgress,
        measure: Measure,
        stage: &str,
        what: &str,
        total: Option<u64>,
    ) -> indicatif::ProgressBar {
        use indicatif::ProgressBar;
        let style = bar_style(measure, total.is_some());
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::no_length(),
        }
        .with_style(style)
        .with_prefix(self.paint("1;36", &format!("{stage:>12}")))
        .with_message(for_terminal(what, false));
        let bar = bars.add(bar);
        if matches!(measure, Measure::Waiting) || total.is_none() {
            bar.enable_steady_tick(SPIN_EVERY);
        }
        bar.tick();
        bar
    }

    /// Progress for `reporter` (this printer, or one that prefixes its lines with `name`): a bar when bars
    /// are drawn, plain otherwise.
    pub fn progress_for<'a>(
        &self,
        reporter: &'a dyn Reporter,
        name: Option<&str>,
        measure: Measure,
        stage: &str,
        what: &str,
        total: Option<u64>,
    ) -> Progress<'a> {
        match &self.bars {
            Some(drawn) => {
                let bars = &drawn.bars;
                let what = match name {
                    Some(name) => format!("[{name}] {what}"),
                    None => what.to_string(),
                };
                Progress::drawn(self.bar(bars, measure, stage, &what, total), measure, total)
            }
            None => Progress::plain(reporter, measure, stage, what, total),
        }
    }

    /// Colour as `choice` says: `auto` keeps what [`Printer::new`] found (a terminal, no `NO_COLOR`).
    pub fn with_color(mut self, choice: ColorChoice) -> Self {
        self.color = match choice {
            ColorChoice::Auto => self.color,
            ColorChoice::Always => true,
            ColorChoice::Never => false,
        };
        self
    }

    /// Bytes that are the answer in a format of their own (an export): standard output as they are.
    pub fn raw(&self, bytes: &[u8]) {
        self.around_bars(|| {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(bytes);
            let _ = out.flush();
        })
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Text for standard error, made safe when it is a terminal.
    fn for_stderr<'a>(&self, text: &'a str, keep_colors: bool) -> std::borrow::Cow<'a, str> {
        if self.stderr_terminal {
            std::borrow::Cow::Owned(for_terminal(text, keep_colors))
        } else {
            std::borrow::Cow::Borrowed(text)
        }
    }

    fn stderr_line(&self, line: &str) {
        match &self.bars {
            Some(drawn) => drawn.line(line),
            None => {
                let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
        }
    }

    /// The answer of a command, for people (ignored under `--json`).
    pub fn out(&self, text: &str) {
        if self.format != Format::Human {
            return;
        }
        let text = if self.stdout_terminal {
            std::borrow::Cow::Owned(
                text.split('\n')
                    .map(|line| for_terminal(line, false))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        self.around_bars(|| {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = out.write_all(b"\n");
            }
            let _ = out.flush();
        })
    }

    /// The answer of a command, for scripts (only under `--json`).
    pub fn json<T: Serialize>(&self, value: &T) {
        if self.format == Format::Json {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut out, value);
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
    }

    /// A dry run's plan: JSON on standard output whatever the format, since the plan is the answer.
    pub fn plan<T: Serialize>(&self, value: &T) {
        self.around_bars(|| {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut out, value);
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        })
    }

    /// An error that ends the command.
    pub fn error(&self, message: &str) {
        let label = self.paint("1;31", "error");
        let message = self.for_stderr(message, false);
        self.around_bars(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{label}: {message}");
        })
    }
}

impl Reporter for Printer {
    fn stage(&self, stage: &str, detail: &str) {
        let stage = self.paint("1;32", &format!("{stage:>12}"));
        let detail = self.for_stderr(detail, false);
        self.stderr_line(&format!("{stage} {detail}"));
    }

    fn job_line(&self, host: Option<&str>, line: &str) {
        if self.quiet {
            return;
        }
        let line = self.for_stderr(line, true);
        match host {
            Some(host) => {
                let host = self.paint("36", host);
                self.stderr_line(&format!("{host} | {line}"))
            }
            None => self.stderr_line(&line),
        }
    }

    fn warn(&self, message: &str) {
        let label = self.paint("1;33", "warning");
        let message = self.for_stderr(message, false);
        self.stderr_line(&format!("{label}: {message}"));
    }

    fn progress(
        &self,
        measure: Measure,
        stage: &str,
        what: &str,
        total: Option<u64>,
    ) -> Progress<'_> {
        self.progress_for(self, None, measure, stage, what, total)
    }
}

impl Drop for Printer {
    /// Every line held back is written before the program ends.
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.flusher.take() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            handle.thread().unpark();
            let _ = handle.join();
        }
        if let Some(drawn) = &self.bars {
            drawn.flush();
        }
    }
}

/// How often a spinner turns.
const SPIN_EVERY: Duration = Duration::from_millis(120);

/// How a bar looks: with a total, a bar and counts (bytes with rate and time left); without one, a
/// spinner and what is done so far, until the total is known.
fn bar_style(measure: Measure, total_known: bool) -> indicatif::ProgressStyle {
    let template = match (measure, total_known) {
        (Measure::Bytes, true) => {
            "{prefix} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {wide_msg}"
        }
        (Measure::Bytes, false) => "{prefix} {spinner} {bytes} {bytes_per_sec} {wide_msg}",
        (Measure::Items, true) => "{prefix} [{bar:25}] {pos}/{len} {wide_msg}",
        (Measure::Items, false) => "{prefix} {spinner} {wide_msg}",
        (Measure::Waiting, _) => "{prefix} {spinner} {elapsed:>4} {wide_msg}",
    };
    indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ")
        // Plain ASCII: it draws on every terminal and console font.
        .tick_chars("|/-\\ ")
}

/// Text a job controls, made safe to show on a terminal: every control character is shown escaped
/// (`\x1b`, `\x07`, ...) so that a job cannot move the cursor, retitle the window or hide text, except tabs,
/// colour sequences (`ESC [ ... m`) when `keep_colors`, and carriage returns, after which only the final
/// state of the line is shown, as a terminal would show it (a progress bar's last update).
pub fn for_terminal(text: &str, keep_colors: bool) -> String {
    let text = match text.rfind('\r') {
        Some(at) if at + 1 < text.len() => &text[at + 1..],
        Some(_) => text
            .trim_end_matches('\r')
            .rsplit('\r')
            .next()
            .unwrap_or(""),
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c == '\x1b' && keep_colors {
            // ESC [ digits and semicolons m: a colour, kept as it is.
            let rest = &text[at + 1..];
            if let Some(body) = rest.strip_prefix('[') {
                let len = body
                    .find(|ch: char| !(ch.is_ascii_digit() || ch == ';'))
                    .unwrap_or(body.len());
                if body[len..].starts_with('m') {
                    out.push_str(&text[at..at + 2 + len + 1]);
                    for _ in 0..len + 2 {
                        chars.next();
                    }
                    continue;
                }
            }
        }
        if c == '\t' || !(c.is_control()) {
            out.push(c);
        } else {
            out.push_str(&c.escape_default().to_string().replace("\\u{1b}", "\\x1b"));
        }
    }
    out
}

/// Formats rows as a left-aligned text table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// A size as people read it: `5.0 GiB`, `120 MiB`, `3 KiB`.
pub fn human_size(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// A metric value as people read it: up to six significant decimals, no trailing zeros.
pub fn metric_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.into()
    } else if value.fract() != 0.0 && value.abs() < 1e6 {
        let text = format!("{value:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let text = table(
            &["ID", "STATUS"],
            &[
                vec!["a-long-id".into(), "Completed".into()],
                vec!["b".into(), "Failed".into()],
            ],
        );
        assert_eq!(
            text,
            "ID         STATUS\na-long-id  Completed\nb          Failed\n"
        );
    }

    #[test]
    fn metric_values_are_short() {
        assert_eq!(metric_value(0.85412345678), "0.854123");
        assert_eq!(metric_value(0.5), "0.5");
        assert_eq!(metric_value(3.0), "3");
        assert_eq!(metric_value(f64::NAN), "NaN");
        assert_eq!(metric_value(f64::INFINITY), "inf");
        assert_eq!(metric_value(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn control_characters_are_escaped_for_terminals() {
        assert_eq!(for_terminal("plain\ttext", false), "plain\ttext");
        assert_eq!(
            for_terminal("\x1b]0;pwned\x07title", false),
            "\\x1b]0;pwned\\u{7}title"
        );
        assert_eq!(
            for_terminal("\x1b[31mred\x1b[0m", true),
            "\x1b[31mred\x1b[0m"
        );
        assert_eq!(for_terminal("\x1b[2Jclear", true), "\\x1b[2Jclear");
        assert_eq!(for_terminal("10%\r50%\r100%", false), "100%");
        assert_eq!(for_terminal("done\r", false), "done");
        assert_eq!(for_terminal("a\u{9b}b", false), "a\\u{9b}b");
    }
}
