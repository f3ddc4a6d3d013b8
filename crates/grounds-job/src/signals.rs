//! The signals that stop a job, in one place: SIGINT (Ctrl-C), SIGTERM, and SIGHUP (a closed terminal),
//! listened to once, before a job starts, so that none arriving later is lost; and the stop flag that a
//! builtin task, running inside the entry, polls at its safe points.

use std::sync::atomic::{AtomicI32, Ordering};

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT, SIGTERM and SIGHUP, as one stream.
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    /// Starts listening (within a tokio runtime).
    pub fn listen() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next stop signal, by number.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.interrupt.recv() => libc::SIGINT,
            _ = self.terminate.recv() => libc::SIGTERM,
            _ = self.hangup.recv() => libc::SIGHUP,
        }
    }
}

pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGPIPE => "SIGPIPE",
        _ => "a signal",
    }
}

static STOP_REQUESTED: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember_stop(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP_REQUESTED.store(signal, Ordering::SeqCst);
}

/// Installs handlers that only note SIGTERM, SIGINT and SIGHUP, for work that runs in this process and
/// stops at its own safe points. (As PID 1 in a container, a process without handlers ignores SIGTERM.)
pub fn install_stop_flag() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: sigaction(2) with a handler that only stores into an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = remember_stop as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// The stop signal received since [`install_stop_flag`], if any.
pub fn stop_requested() -> Option<i32> {
    match STOP_REQUESTED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// A builtin task stopped at a safe point because it was asked to.
#[derive(Debug, thiserror::Error)]
#[error("stopped by {} after {at}; the work done so far is in the log", name(*.signal))]
pub struct Stopped {
    pub signal: i32,
    pub at: String,
}

/// `Err(Stopped)` when a stop was asked for; `at` says where the work is.
pub fn check(at: impl FnOnce() -> String) -> Result<(), Stopped> {
    match stop_requested() {
        Some(signal) => Err(Stopped { signal, at: at() }),
        None => Ok(()),
    }
}
