//! The one place that writes what a person or a script reads.
//!
//! Core code reports through the [`Reporter`] trait and never prints. Human-readable status and the job's
//! own output go to standard error; the answer of a command (tables, ids, `--json` objects) goes to
//! standard output, so `grounds ... --json | jq` always gets clean JSON.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use serde::Serialize;

/// What core code tells the user while it works.
pub trait Reporter: Send + Sync {
    /// A step of the work: `stage` is a short verb (`Packaging`, `Running`), `detail` what it acts on.
    fn stage(&self, stage: &str, detail: &str);
    /// One line the job printed, live; `host` is set when a job has more than one.
    fn job_line(&self, host: Option<&str>, line: &str);
    /// Something the user should know that does not stop the work.
    fn warn(&self, message: &str);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

pub struct Printer {
    pub format: Format,
    /// Hide the job's own output (it is still stored in the result).
    pub quiet: bool,
    color: bool,
    lock: Mutex<()>,
}

impl Printer {
    pub fn new(format: Format, quiet: bool) -> Self {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Printer {
            format,
            quiet,
            color,
            lock: Mutex::new(()),
        }
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

    fn stderr_line(&self, line: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }

    /// The answer of a command, for people (ignored under `--json`).
    pub fn out(&self, text: &str) {
        if self.format == Format::Human {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = out.write_all(b"\n");
            }
            let _ = out.flush();
        }
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

    /// An error that ends the command.
    pub fn error(&self, message: &str) {
        let label = self.paint("1;31", "error");
        self.stderr_line(&format!("{label}: {message}"));
    }
}

impl Reporter for Printer {
    fn stage(&self, stage: &str, detail: &str) {
        let stage = self.paint("1;32", &format!("{stage:>12}"));
        self.stderr_line(&format!("{stage} {detail}"));
    }

    fn job_line(&self, host: Option<&str>, line: &str) {
        if self.quiet {
            return;
        }
        match host {
            Some(host) => {
                let host = self.paint("36", host);
                self.stderr_line(&format!("{host} | {line}"))
            }
            None => self.stderr_line(line),
        }
    }

    fn warn(&self, message: &str) {
        let label = self.paint("1;33", "warning");
        self.stderr_line(&format!("{label}: {message}"));
    }
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

/// A metric value as people read it: up to six significant decimals, no trailing zeros.
pub fn metric_value(value: f64) -> String {
    if value.is_finite() && value.fract() != 0.0 && value.abs() < 1e6 {
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
    }
}
