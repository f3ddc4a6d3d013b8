//! One module per subcommand, each with `fn run(args, printer) -> anyhow::Result<Exit>`. A command resolves
//! its settings first (reading files and the environment, applying `.env`), then starts the async runtime
//! with [`block_on`] for the work that needs it.

pub mod cache;
pub mod init;
pub mod results;
pub mod shell;
pub mod stop;
pub mod train;
pub mod upkeep;

/// How a command ended, as the process exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did what was asked; a job completed.
    Success,
    /// A job ran and failed.
    JobFailed,
    /// Bad input or a broken environment: nothing ran.
    Error,
    /// A job was stopped (Ctrl-C or SIGTERM).
    Stopped,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::JobFailed => 1,
            Exit::Error => 2,
            Exit::Stopped => 130,
        }
    }
}

/// Runs the async part of a command on a multi-threaded runtime, started here.
pub fn block_on<F: std::future::Future>(work: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    Ok(runtime.block_on(work))
}
