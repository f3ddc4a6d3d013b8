//! One module per subcommand, each with `async fn run(args, printer)`.

pub mod entry;
pub mod remote;
pub mod results;
pub mod train;

/// How a command ended, as the process exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did what was asked; a job completed.
    Success = 0,
    /// A job ran and failed.
    JobFailed = 1,
    /// Bad input or a broken environment: nothing ran.
    Error = 2,
    /// A job was stopped (Ctrl-C or SIGTERM).
    Stopped = 130,
}
