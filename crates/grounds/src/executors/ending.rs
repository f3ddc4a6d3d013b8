//! How a running job is watched to its end, the same for a child process (attached) and for containers
//! (local, a remote Docker host): its output shown and logged as it comes, a stop signal turned into the
//! mode's stop (and, past the grace, its kill), what is left of the output drained once the job has
//! ended, and its status and failure reason told the same way.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::job::log::{JobLog, DRAIN};
use crate::job::Status;
use crate::printer::Reporter;
use grounds_job::signals::StopSignals;

/// What a mode does when its job is asked to stop.
pub trait Stopping {
    /// Asks the job to stop (SIGTERM to the entry, `docker stop` to the containers); returns when, if the
    /// job has not ended by then, [`Stopping::kill`] is to be called.
    fn stop(&mut self) -> Option<Instant>;
    /// Kills what is left of the job once the grace is over.
    fn kill(&mut self) {}
}

/// A job's output as it comes (`lines`), how each line is shown and logged (`show`), and its log.
pub struct JobOutput<'a, 'j, L, F> {
    pub log: &'a mut JobLog<'j>,
    pub lines: &'a mut mpsc::Receiver<L>,
    pub show: F,
}

impl<'j, L, F: Fn(&mut JobLog<'j>, L)> JobOutput<'_, 'j, L, F> {
    /// Shows and logs each line of the job's output until `ended` resolves; the first stop signal asks
    /// the job to stop, and past the grace it is killed. Returns what `ended` gave, and whether a stop
    /// was asked for.
    pub async fn watch<T>(
        &mut self,
        ended: impl Future<Output = T>,
        stops: &mut StopSignals,
        stopping: &mut impl Stopping,
        reporter: &dyn Reporter,
        grace: Duration,
    ) -> (T, bool) {
        let mut ended = std::pin::pin!(ended);
        let mut stopped = false;
        let mut deadline: Option<Instant> = None;
        loop {
            let kill_at = deadline;
            tokio::select! {
                value = &mut ended => return (value, stopped),
                Some(line) = self.lines.recv() => (self.show)(self.log, line),
                _ = stops.recv(), if !stopped => {
                    stopped = true;
                    deadline = stopping.stop();
                }
                _ = tokio::time::sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                    reporter.warn(&format!(
                        "the job did not stop within {}s; killing it",
                        grace.as_secs()
                    ));
                    stopping.kill();
                    deadline = None;
                }
            }
        }
    }

    /// Reads what is left of the job's output once every process of it has ended, for at most
    /// [`DRAIN`]: a pipe some process elsewhere still holds is not waited on forever.
    pub async fn drain(&mut self, reporter: &dyn Reporter) {
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some(line) = self.lines.recv().await {
                (self.show)(self.log, line);
            }
        })
        .await;
        if drained.is_err() {
            reporter.warn("the job's output did not end with its processes; the rest is not read");
        }
    }
}

/// A job's status: stopped if a stop was asked for, else completed or failed as it exited.
pub fn status(stopped: bool, failed: bool) -> Status {
    if stopped {
        Status::Stopped
    } else if failed {
        Status::Failed
    } else {
        Status::Completed
    }
}

/// A job's failure reason as every mode tells it: what the job left (`theirs`); for a stopped job, that
/// it was stopped (with theirs); for a failed job that left none, `fallback`.
pub fn failure_reason(
    status: Status,
    theirs: Option<String>,
    fallback: impl FnOnce() -> String,
) -> Option<String> {
    match (status, theirs) {
        (Status::Stopped, theirs) => Some(crate::job::stopped_reason(theirs)),
        (Status::Failed, None) => Some(fallback()),
        (_, theirs) => theirs,
    }
}
