//! The entry: the program SageMaker starts as `train` in the container, and attached runs start on a
//! temporary root (the binaries `grounds-entry` and `grounds-builtin`, whose `main` is [`main`]).
//!
//! It reads the contract, unpacks the package into `code/`, sets the toolkit's environment and runs the
//! task: a command as a child process whose output it passes through line by line and to which it
//! forwards SIGTERM, or a builtin in-process. On failure it leaves a short reason in `output/failure`.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::archive::{self, Limits};
use crate::contract::{self, Host, JobConfig, Layout};
use crate::lines::LineSplitter;
use crate::manifest::{self as package, CODE_PREFIX};
use crate::signals::{self, StopSignals};
use crate::spec::{BuiltinSpec, CommandSpec, Runner, TaskSpec};

pub const PACKAGE_ENV: &str = "GROUNDS_PACKAGE";
/// SageMaker shows this many bytes of the failure file as FailureReason.
pub const FAILURE_REASON_MAX: usize = 1024;
const OUTPUT_TAIL_LINES: usize = 20;
/// What the job's background processes get between SIGTERM and SIGKILL once its main process has exited.
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);
/// How long the job's output pipes are read after every process of the job has ended.
const DRAIN: Duration = Duration::from_secs(2);

pub struct Paths {
    pub root: PathBuf,
    /// The package named by a flag or `GROUNDS_PACKAGE` (attached runs); `None`: the one in its channel
    /// under the root ([`contract::PACKAGE_CHANNEL`]), as containers get it.
    pub package: Option<PathBuf>,
}

impl Paths {
    /// The root and package from flags, else `SAGEMAKER_BASE_DIR` / `GROUNDS_PACKAGE`, else `/opt/ml`
    /// and the package's channel.
    pub fn resolve(root: Option<PathBuf>, package: Option<PathBuf>) -> Self {
        let root = root
            .or_else(|| std::env::var_os(contract::ROOT_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(contract::DEFAULT_ROOT));
        let package = package.or_else(|| std::env::var_os(PACKAGE_ENV).map(PathBuf::from));
        Paths { root, package }
    }

    /// Opens the package: a named one as it is (grounds made it), the channel's without following a link
    /// and only if it is a regular file (it came with the job's data).
    fn open_package(&self) -> anyhow::Result<(std::fs::File, String)> {
        match &self.package {
            Some(path) => {
                let file = std::fs::File::open(path).with_context(|| {
                    format!(
                        "reading the package {} (set {PACKAGE_ENV} to where it is)",
                        path.display()
                    )
                })?;
                Ok((file, path.display().to_string()))
            }
            None => {
                let relative = Layout::package_in_channel();
                let shown = self.root.join(&relative).display().to_string();
                let file = crate::confined::open_file(&self.root, &relative)
                    .map(|opened| opened.file)
                    .with_context(|| {
                        format!(
                            "reading the job's package {shown}: grounds delivers it as the channel `{}` \
                             (or name one with --package PATH or {PACKAGE_ENV})",
                            contract::PACKAGE_CHANNEL
                        )
                    })?;
                Ok((file, shown))
            }
        }
    }
}

/// What the entry has to say about itself, on standard error, marked so it is not mistaken for the job.
fn say(message: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "[grounds-entry] {message}");
}

/// What runs a builtin task in this entry: `grounds-builtin` has one, `grounds-entry` (command tasks
/// only, so that their images carry no trainer) has none.
pub type BuiltinRunner = fn(&BuiltinSpec, &Layout, &JobConfig) -> anyhow::Result<()>;

/// The `main` of an entry binary: `--root PATH` and `--package PATH` (else `SAGEMAKER_BASE_DIR` and
/// `GROUNDS_PACKAGE`, else `/opt/ml` and the package's channel under it); any other argument (SageMaker
/// starts the image as `train`) is ignored. The exit code is the job's.
pub fn main(builtin: Option<BuiltinRunner>) -> std::process::ExitCode {
    let mut root = None;
    let mut package = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--root" {
            root = args.next().map(PathBuf::from);
        } else if arg == "--package" {
            package = args.next().map(PathBuf::from);
        }
    }
    let paths = Paths::resolve(root, package);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            say(&format!("error: cannot start the entry's runtime: {e}"));
            return std::process::ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run(paths, builtin));
    std::process::ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

/// Runs the job and returns the exit code for the container.
pub async fn run(args: Paths, builtin: Option<BuiltinRunner>) -> i32 {
    let layout = Layout::new(&args.root);
    match run_job(&args, &layout, builtin).await {
        Ok(code) => code,
        Err(error) => {
            let reason = format!("{error:#}");
            say(&format!("error: {reason}"));
            write_failure(&layout, &reason);
            1
        }
    }
}

async fn run_job(
    args: &Paths,
    layout: &Layout,
    builtin: Option<BuiltinRunner>,
) -> anyhow::Result<i32> {
    let config =
        JobConfig::read(layout).context("reading the job's configuration under input/config")?;
    // Opened once: the manifest and the code come from the same file.
    let (mut file, shown) = args.open_package()?;
    let (spec, info) = package::read_manifest(std::io::BufReader::new(&mut file))?;
    std::io::Seek::rewind(&mut file).with_context(|| format!("reading the package {shown}"))?;
    let code_dir = layout.code_dir();
    archive::unpack(
        std::io::BufReader::new(file),
        &shown,
        CODE_PREFIX,
        &code_dir,
        Limits::default(),
    )?;
    for dir in [
        layout.model_dir(),
        layout.output_data_dir(),
        layout.checkpoints_dir(),
    ] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let job_name = std::env::var("TRAINING_JOB_NAME").unwrap_or_else(|_| spec.name.clone());
    say(&format!(
        "job {job_name}: package {} {} ({}) on {}",
        info.name,
        info.version,
        info.content_hash.chars().take(19).collect::<String>(),
        config.resource_config.current_host
    ));
    match &spec.runner {
        Runner::Command(command) => {
            let host = Host::detect(job_name, &config.resource_config.current_instance_type);
            run_command(layout, &config, &host, &spec, command).await
        }
        Runner::Image(image) => anyhow::bail!(
            "this package is of an image task: {} runs with its own entry, not grounds'",
            image.uri
        ),
        Runner::Builtin(spec) => {
            let Some(run_builtin) = builtin else {
                anyhow::bail!(
                    "this package is of a builtin task, and this entry runs command tasks only: a builtin \
                     task's image (or attached run) starts grounds-builtin"
                );
            };
            // The builtin runs in this process: SIGTERM (which PID 1 would otherwise ignore) stops it at
            // its next safe point, as a stopped program's would.
            signals::install_stop_flag();
            match run_builtin(spec, layout, &config) {
                Ok(()) => Ok(0),
                Err(error) => match error.downcast_ref::<signals::Stopped>() {
                    Some(stopped) => {
                        let reason = format!("The builtin task was {stopped}.");
                        say(&reason);
                        write_failure(layout, &reason);
                        Ok(128 + stopped.signal)
                    }
                    None => Err(error),
                },
            }
        }
    }
}

async fn run_command(
    layout: &Layout,
    config: &JobConfig,
    host: &Host,
    spec: &TaskSpec,
    command: &CommandSpec,
) -> anyhow::Result<i32> {
    let Prepared {
        command: mut child_command,
        output,
        program: first,
        shown,
    } = prepare(layout, config, host, spec, command)?;
    // Orphans of the job (`cmd &`, `setsid`, daemons) stay below the entry, so they can be ended with it.
    if let Err(e) = crate::proctree::become_subreaper() {
        say(&format!(
            "warning: cannot keep the job's background processes below the entry: {e}"
        ));
    }
    // Listening before the job starts: a stop that comes at once is forwarded, not lost.
    let mut stops = StopSignals::listen()?;
    let spawned = child_command.spawn();
    // The command holds the pipe's write ends: once the child has its own, ours go, so the pipe ends
    // when the job's last writer does.
    drop(child_command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let (code, why) = match e.kind() {
                std::io::ErrorKind::NotFound => {
                    (127, "was not found (is it installed, and on PATH?)")
                }
                std::io::ErrorKind::PermissionDenied => (126, "is not executable"),
                _ => (126, "could not be started"),
            };
            let reason = format!("program `{first}` {why}: {e}");
            say(&format!("error: {reason}"));
            write_failure(layout, &reason);
            return Ok(code);
        }
    };
    let pid = child.id().map(|p| p as i32);
    let output = tokio::net::unix::pipe::Receiver::from_owned_fd(output)
        .context("reading the job's output")?;
    let output = pass_through(output);

    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            signal = stops.recv() => forward(pid, if signal == libc::SIGINT { libc::SIGINT } else { libc::SIGTERM }),
        }
    };
    // SageMaker ends a job when its main process exits: what it left running goes too.
    let me = std::process::id() as i32;
    let left = crate::proctree::end_descendants(me, LEFTOVER_GRACE, true).await;
    if left > 0 {
        say(&format!(
            "the job's main process has exited; {left} process(es) it left running were stopped"
        ));
    }
    // Every writer of the pipe is gone now; a pipe held open elsewhere is not waited on forever.
    let tail = match tokio::time::timeout(DRAIN, output).await {
        Ok(Ok(tail)) => tail,
        _ => Vec::new(),
    };

    Ok(exit_code(layout, status, &shown, &tail))
}

/// The program of a command task, ready to spawn: its arguments (the task's, then the hyperparameters as
/// the toolkit passes them), the toolkit's environment, the task's own, and the code folder to run in.
struct Prepared {
    command: tokio::process::Command,
    /// The read end of the pipe the program writes both its stdout and its stderr to.
    output: std::os::fd::OwnedFd,
    /// The program as the task names it.
    program: String,
    /// The whole command line, as shown and as a failure names it.
    shown: String,
}

fn prepare(
    layout: &Layout,
    config: &JobConfig,
    host: &Host,
    spec: &TaskSpec,
    command: &CommandSpec,
) -> anyhow::Result<Prepared> {
    let code_dir = layout.code_dir();
    let Some((first, rest)) = command.run.split_first() else {
        anyhow::bail!("the package's task.json has an empty `run`: nothing to start");
    };
    let module = rest
        .iter()
        .find(|a| !a.starts_with('-'))
        .cloned()
        .unwrap_or_else(|| first.clone());
    let raw = contract::RawConfig::read(layout, config);
    let env = contract::environment(layout, config, &raw, host, &module, &|name| {
        std::env::var(name).ok()
    });
    let mut program = PathBuf::from(first);
    if program.is_relative() && program.components().count() > 1 {
        program = code_dir.join(program);
    }
    let mut argv: Vec<String> = rest.to_vec();
    argv.extend(contract::hyperparameter_args(&config.hyperparameters));
    let shown = std::iter::once(first.clone())
        .chain(argv.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    say(&format!("running `{shown}` in {}", code_dir.display()));

    // One pipe behind both stdout and stderr, as a terminal is one device behind both: the lines come
    // out in the order the program wrote them (two pipes read side by side come out in any order).
    let (output, writer) = output_pipe()?;
    let mut child_command = tokio::process::Command::new(&program);
    child_command
        .args(&argv)
        .current_dir(&code_dir)
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer.try_clone()?))
        .stderr(Stdio::from(writer));
    if std::env::var_os("PYTHONUNBUFFERED").is_none() {
        // Output that arrives only at the end is the classic local-mode complaint.
        child_command.env("PYTHONUNBUFFERED", "1");
    }
    if layout.root != Path::new(contract::DEFAULT_ROOT) {
        // Anything in the job that reads the contract itself (the toolkit does) finds this root.
        child_command.env(contract::ROOT_ENV, &layout.root);
    }
    for (key, value) in &spec.container.env {
        child_command.env(key, value);
    }
    Ok(Prepared {
        command: child_command,
        output,
        program: first.clone(),
        shown,
    })
}

/// The job's exit code as a shell gives it (128 + the signal that killed it); a failure also writes
/// the failure file, naming the command and keeping the last lines the job wrote.
fn exit_code(
    layout: &Layout,
    status: std::process::ExitStatus,
    shown: &str,
    tail: &[String],
) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    if code != 0 {
        let how = match status.signal() {
            Some(signal) => format!("was killed by signal {signal} ({})", signals::name(signal)),
            None => format!("exited with code {code}"),
        };
        let head = format!("Command `{shown}` {how}.");
        write_failure(layout, &failure_text(&head, tail));
        say(&head);
    }
    code
}

fn forward(pid: Option<i32>, signal: i32) {
    if let Some(pid) = pid {
        say(&format!("forwarding {} to the job", signals::name(signal)));
        // SAFETY: kill(2) with a pid we spawned and have not yet reaped.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The pipe a program writes both its stdout and its stderr to: (read end, write end), neither
/// inherited by anything but the program, which is given the write end as its fds 1 and 2.
fn output_pipe() -> anyhow::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both slots with new descriptors on success, which are owned from here on.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("making a pipe for the job's output");
    }
    // SAFETY: fresh descriptors from pipe2, each owned once.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// Copies the program's output (stdout and stderr, in the order written) to our stdout as it comes,
/// whatever its lines' lengths; keeps the last lines (each at most a piece long) for the failure reason.
fn pass_through<R: AsyncRead + Unpin + Send + 'static>(
    mut stream: R,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 1 << 16];
        let mut splitter = LineSplitter::new();
        let mut tail: VecDeque<String> = VecDeque::new();
        let keep = |piece: crate::lines::Piece, tail: &mut VecDeque<String>| {
            if piece.starts_line {
                tail.push_back(piece.text().trim_end().to_string());
                if tail.len() > OUTPUT_TAIL_LINES {
                    tail.pop_front();
                }
            }
        };
        let mut at_line_start = true;
        loop {
            let n = match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buffer[..n];
            at_line_start = chunk.ends_with(b"\n");
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(chunk);
            let _ = out.flush();
            for piece in splitter.push(chunk) {
                keep(piece, &mut tail);
            }
        }
        if let Some(piece) = splitter.finish() {
            keep(piece, &mut tail);
        }
        if !at_line_start {
            // The stream ended without a newline: end the line so what follows starts on its own.
            let _ = std::io::stdout().lock().write_all(b"\n");
        }
        tail.into_iter().collect()
    })
}

/// The failure reason: the head, then as many of the last lines of the job's output (stdout and stderr
/// as written) as fit in what SageMaker shows.
pub fn failure_text(head: &str, output_tail: &[String]) -> String {
    let mut lines: Vec<&str> = Vec::new();
    let mut size = head.len() + "\nLast lines of its output:\n".len();
    for line in output_tail.iter().rev() {
        let line = line.as_str();
        if size + line.len() + 1 > FAILURE_REASON_MAX {
            break;
        }
        size += line.len() + 1;
        lines.push(line);
    }
    if lines.is_empty() {
        return head.to_string();
    }
    lines.reverse();
    format!("{head}\nLast lines of its output:\n{}", lines.join("\n"))
}

/// Writes `output/failure` unless the job already left something there (a file with a reason, or
/// anything that is not an empty regular file: a link it planted is never written through).
pub fn write_failure(layout: &Layout, reason: &str) {
    let path = layout.failure_file();
    let already = std::fs::symlink_metadata(&path)
        .map(|m| !m.is_file() || m.len() > 0)
        .unwrap_or(false);
    if already {
        return;
    }
    // `output/` may be missing (a job removed it) but is never created through a link.
    if std::fs::symlink_metadata(layout.output_dir()).is_err() {
        let _ = std::fs::create_dir(layout.output_dir());
    }
    if let Ok(mut file) =
        crate::confined::create_file(&layout.root, Path::new(contract::FAILURE_FILE))
    {
        let _ = file.write_all(reason.as_bytes());
    }
}

/// The failure reason a job left in `output/failure`, as SageMaker takes it: at most
/// [`FAILURE_REASON_MAX`] bytes of a regular file, never read through a link or from a pipe or device.
/// A failure file that is something else gives a reason that says so instead of its content.
pub fn read_failure(layout: &Layout) -> Option<String> {
    let opened = match crate::confined::open_file(&layout.root, Path::new(contract::FAILURE_FILE)) {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(format!(
            "the job left output/failure, which was not read: {e} (only a regular file is read as \
                 the failure reason)"
        ))
        }
    };
    let bytes = match crate::confined::read_at_most(opened.file, FAILURE_REASON_MAX as u64) {
        Ok((bytes, _)) => bytes,
        Err(e) => return Some(format!("the job's output/failure could not be read: {e}")),
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = truncate_to(text.trim(), FAILURE_REASON_MAX);
    (!text.is_empty()).then(|| text.to_string())
}

/// The longest start of `text` of at most `max` bytes that ends on a character boundary.
fn truncate_to(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_text_keeps_the_last_lines_within_the_limit() {
        let tail: Vec<String> = (0..200)
            .map(|i| format!("line {i} {}", "x".repeat(20)))
            .collect();
        let text = failure_text("Command `x` exited with code 1.", &tail);
        assert!(text.len() <= FAILURE_REASON_MAX, "{}", text.len());
        assert!(text.starts_with("Command `x` exited with code 1."));
        assert!(text.ends_with(&tail[199]));
        assert_eq!(failure_text("head", &[]), "head");
    }

    #[test]
    fn a_failure_the_job_wrote_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        write_failure(&layout, "mine");
        write_failure(&layout, "theirs");
        assert_eq!(read_failure(&layout).unwrap(), "mine");
    }
}
