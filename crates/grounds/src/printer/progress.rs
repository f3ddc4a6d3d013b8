//! How far long work is, as core code tells it: a [`Progress`] handle it advances, with no idea of where
//! it goes. The printer gives out handles ([`super::Reporter::progress`]) that draw a bar in
//! place on a terminal (indicatif) and otherwise say nothing, or, when asked with
//! [`Progress::say_every`], a plain status line now and then, as logs want.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{human_size, Reporter};

/// What a piece of work counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Bytes moved: the bar shows size, rate and, with a total, the time left.
    Bytes,
    /// Things done of a known number (build steps, sweep members, pipeline steps).
    Items,
    /// Waiting on something that says only what state it is in: a spinner and the time spent.
    Waiting,
}

/// A piece of long work under way. Dropping it ends it (a drawn bar is cleared; the status lines stay).
pub struct Progress<'a> {
    bar: Option<Drawn>,
    plain: Option<Plain<'a>>,
}

/// A bar on the terminal, and whether it has its total yet (until then it spins).
struct Drawn {
    bar: indicatif::ProgressBar,
    measure: Measure,
    total_known: std::sync::atomic::AtomicBool,
}

/// The plain-line side: a status line every `every` while the work advances, and one at the end.
struct Plain<'a> {
    reporter: &'a dyn Reporter,
    measure: Measure,
    stage: String,
    what: String,
    total: AtomicU64,
    done: AtomicU64,
    started: Instant,
    /// How often to say a line, when asked ([`Progress::say_every`]).
    every: Option<Duration>,
    last: Mutex<Instant>,
    said: std::sync::atomic::AtomicBool,
}

impl<'a> Progress<'a> {
    /// Work whose progress nobody reads.
    #[cfg(test)]
    pub fn hidden() -> Self {
        Progress {
            bar: None,
            plain: None,
        }
    }

    /// Progress drawn by `bar` (the printer's side of a terminal).
    pub(crate) fn drawn(bar: indicatif::ProgressBar, measure: Measure, total: Option<u64>) -> Self {
        Progress {
            bar: Some(Drawn {
                bar,
                measure,
                total_known: std::sync::atomic::AtomicBool::new(total.is_some()),
            }),
            plain: None,
        }
    }

    /// Progress not drawn; it may still say status lines through `reporter` (see [`Progress::say_every`]).
    pub(crate) fn plain(
        reporter: &'a dyn Reporter,
        measure: Measure,
        stage: &str,
        what: &str,
        total: Option<u64>,
    ) -> Self {
        let now = Instant::now();
        Progress {
            bar: None,
            plain: Some(Plain {
                reporter,
                measure,
                stage: stage.to_string(),
                what: what.to_string(),
                total: AtomicU64::new(total.unwrap_or(0)),
                done: AtomicU64::new(0),
                started: now,
                every: None,
                last: Mutex::new(now),
                said: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// When not drawn, say a status line at most every `every` while the work advances (and how it
    /// ended, if it took that long): for transfers, whose logs should show they move.
    pub fn say_every(mut self, every: Duration) -> Self {
        if let Some(plain) = &mut self.plain {
            plain.every = Some(every);
        }
        self
    }

    /// How much there is in all, once it is known.
    pub fn set_total(&self, total: u64) {
        if let Some(drawn) = &self.bar {
            drawn.bar.set_length(total);
            if !drawn.total_known.swap(true, Ordering::Relaxed) && drawn.measure != Measure::Waiting
            {
                // From a spinner to a bar.
                drawn.bar.disable_steady_tick();
                drawn.bar.set_style(super::bar_style(drawn.measure, true));
            }
        }
        if let Some(plain) = &self.plain {
            plain.total.store(total, Ordering::Relaxed);
        }
    }

    /// How much is done.
    pub fn set(&self, done: u64) {
        if let Some(drawn) = &self.bar {
            drawn.bar.set_position(done);
        }
        if let Some(plain) = &self.plain {
            plain.done.store(done, Ordering::Relaxed);
            plain.maybe_say();
        }
    }

    /// `delta` more done.
    pub fn add(&self, delta: u64) {
        if let Some(drawn) = &self.bar {
            drawn.bar.inc(delta);
        }
        if let Some(plain) = &self.plain {
            plain.done.fetch_add(delta, Ordering::Relaxed);
            plain.maybe_say();
        }
    }

    /// Runs `work` while this progress follows the count `done` (bytes a request body has read, say),
    /// looked at every tenth of a second and once more at the end.
    pub async fn follow<T>(
        &self,
        done: &AtomicU64,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let mut work = std::pin::pin!(work);
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                result = &mut work => {
                    self.set(done.load(Ordering::Relaxed));
                    return result;
                }
                _ = ticks.tick() => self.set(done.load(Ordering::Relaxed)),
            }
        }
    }

    /// What the work is at now (the current step, the state waited on), shown beside the bar.
    pub fn message(&self, text: &str) {
        if let Some(drawn) = &self.bar {
            drawn.bar.set_message(super::for_terminal(text, false));
        }
    }
}

impl Plain<'_> {
    fn maybe_say(&self) {
        let Some(every) = self.every else {
            return;
        };
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(*last) < every {
            return;
        }
        *last = now;
        drop(last);
        self.said.store(true, Ordering::Relaxed);
        self.reporter.stage(&self.stage, &self.line());
    }

    /// `what: 10 MB of 100 MB (10%), 5 MB/s`, or `what: 3 of 7`.
    fn line(&self) -> String {
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        match self.measure {
            Measure::Bytes => {
                let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
                let of = if total > 0 {
                    format!(
                        " of {} ({}%)",
                        human_size(total),
                        done.saturating_mul(100) / total
                    )
                } else {
                    String::new()
                };
                format!(
                    "{}: {}{of}, {}/s",
                    self.what,
                    human_size(done),
                    human_size(rate as u64)
                )
            }
            Measure::Items => format!("{}: {done} of {total}", self.what),
            Measure::Waiting => format!(
                "{}: {:.0} s",
                self.what,
                self.started.elapsed().as_secs_f64()
            ),
        }
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        if let Some(drawn) = &self.bar {
            drawn.bar.finish_and_clear();
        }
        if let Some(plain) = &self.plain {
            let long = plain.every.is_some_and(|every| {
                plain.said.load(Ordering::Relaxed) || plain.started.elapsed() >= every
            });
            if long && plain.measure == Measure::Bytes {
                plain.reporter.stage(
                    &plain.stage,
                    &format!(
                        "{}: {} in {:.1} s",
                        plain.what,
                        human_size(plain.done.load(Ordering::Relaxed)),
                        plain.started.elapsed().as_secs_f64()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what a plain progress says.
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl Reporter for Lines {
        fn stage(&self, stage: &str, detail: &str) {
            self.0.lock().unwrap().push(format!("{stage} {detail}"));
        }
        fn job_line(&self, _: Option<&str>, _: &str) {}
        fn warn(&self, _: &str) {}
        fn progress(&self, _: Measure, _: &str, _: &str, _: Option<u64>) -> Progress<'_> {
            Progress::hidden()
        }
    }

    #[test]
    fn plain_progress_says_nothing_unless_asked() {
        let lines = Lines::default();
        {
            let progress = Progress::plain(&lines, Measure::Bytes, "Sending", "data", Some(10));
            progress.add(5);
            progress.set(10);
        }
        assert!(lines.0.lock().unwrap().is_empty());
    }

    #[test]
    fn plain_progress_says_a_line_now_and_then_and_how_it_ended() {
        let lines = Lines::default();
        {
            let progress =
                Progress::plain(&lines, Measure::Bytes, "Sending", "data", Some(4 << 20))
                    .say_every(Duration::from_millis(20));
            progress.add(1 << 20);
            std::thread::sleep(Duration::from_millis(30));
            progress.add(1 << 20);
            progress.add(1 << 20);
        }
        let lines = lines.0.lock().unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("Sending data: 2 MiB of 4 MiB (50%), "),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("Sending data: 3 MiB in "), "{lines:?}");
    }
}
