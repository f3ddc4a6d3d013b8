//! The engine on another machine over SSH, as the docker CLI reaches it: the system's `ssh` (so the
//! user's `~/.ssh/config`, keys and agent apply) runs `docker system dial-stdio` on the other side, and
//! the engine API is spoken over its standard input and output, one `ssh` per HTTP connection.
//!
//! Each `ssh` is a child of this process with its standard input a pipe: if grounds dies, however it
//! dies, the pipe closes, `dial-stdio` ends and nothing is left running on either machine.
//!
//! Before the first connection one `ssh … docker version` tells apart what people meet first (host
//! unreachable, authentication refused, no docker there, no permission on the socket) with a message
//! that says what to do.

use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::Docker;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::DockerError;

/// The body bollard sends (its own `BodyType`, which it does not name publicly).
type Body = http_body_util::Either<
    http_body_util::Full<bytes::Bytes>,
    http_body_util::StreamBody<
        Pin<
            Box<
                dyn futures_util::Stream<
                        Item = Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>,
                    > + Send,
            >,
        >,
    >,
>;

/// An SSH destination: `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Seconds `ssh` may take to reach the host.
const CONNECT_TIMEOUT: u32 = 15;

/// What went wrong reaching an engine over SSH, in the words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "cannot reach {host} over SSH: {detail}. Is the host up, and the name and port right?"
    )]
    Unreachable { host: String, detail: String },
    #[error(
        "{host} refused SSH authentication: {detail}. grounds uses your ssh (its config, keys and agent, \
         without prompting): check that `ssh {host}` logs in without a password (ssh-add your key, or set \
         IdentityFile in ~/.ssh/config)"
    )]
    AuthRefused { host: String, detail: String },
    #[error(
        "{host}'s host key is not known or has changed: {detail}. Connect once with `ssh {host}` to check \
         and accept it"
    )]
    HostKey { host: String, detail: String },
    #[error(
        "there is no `docker` on {host} (for the SSH user's PATH): {detail}. Install Docker there, or \
         make `docker` reachable for non-interactive logins"
    )]
    NoDocker { host: String, detail: String },
    #[error(
        "the SSH user on {host} may not use its Docker engine: {detail}. Add the user to the `docker` \
         group there (`sudo usermod -aG docker USER`, then log in again), or log in as a user who may"
    )]
    SocketPermission { host: String, detail: String },
    #[error(
        "the Docker engine on {host} does not answer: {detail}. Start it there (`sudo systemctl start \
         docker`)"
    )]
    EngineDown { host: String, detail: String },
    #[error("`{command}` failed (exit code {code}): {detail}")]
    Failed {
        command: String,
        code: String,
        detail: String,
    },
    #[error("cannot start `{program}` to reach the engine over SSH: {error}. Is OpenSSH's client installed?")]
    NoSsh { program: String, error: io::Error },
}

/// The ssh program and its first arguments: `GROUNDS_SSH_COMMAND` (split at spaces, as git reads
/// `GIT_SSH_COMMAND`), else `ssh`.
fn ssh_program() -> Vec<String> {
    let words: Vec<String> = std::env::var("GROUNDS_SSH_COMMAND")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if words.is_empty() {
        vec!["ssh".to_string()]
    } else {
        words
    }
}

/// `ssh` with grounds' options, the target, then `remote` as the command to run there.
fn ssh_command(target: &SshTarget, remote: &[&str]) -> (Command, String) {
    let program = ssh_program();
    let mut args: Vec<String> = program[1..].to_vec();
    args.extend([
        "-T".to_string(),
        "-o".to_string(),
        "BatchMode=yes".to_string(),
        "-o".to_string(),
        format!("ConnectTimeout={CONNECT_TIMEOUT}"),
    ]);
    if let Some(user) = &target.user {
        args.extend(["-l".to_string(), user.clone()]);
    }
    if let Some(port) = target.port {
        args.extend(["-p".to_string(), port.to_string()]);
    }
    args.push("--".to_string());
    args.push(target.host.clone());
    args.extend(remote.iter().map(|s| s.to_string()));
    let shown = std::iter::once(program[0].clone())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = Command::new(&program[0]);
    command.args(&args).kill_on_drop(true);
    (command, shown)
}

fn display(target: &SshTarget) -> String {
    match &target.user {
        Some(user) => format!("{user}@{}", target.host),
        None => target.host.clone(),
    }
}

/// Reads what went wrong from a failed `ssh … docker version`.
pub fn classify(target: &SshTarget, command: &str, code: Option<i32>, stderr: &str) -> SshError {
    let host = display(target);
    let detail = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .map(|l| l.trim_end_matches(['.', '?']))
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" / ");
    let detail = if detail.is_empty() {
        "it printed nothing".to_string()
    } else {
        detail
    };
    let lower = stderr.to_lowercase();
    let has = |needle: &str| lower.contains(needle);
    if code == Some(255) {
        if has("permission denied (") || has("too many authentication failures") {
            return SshError::AuthRefused { host, detail };
        }
        if has("host key verification failed") || has("remote host identification has changed") {
            return SshError::HostKey { host, detail };
        }
        if has("could not resolve hostname")
            || has("connection refused")
            || has("timed out")
            || has("no route to host")
            || has("network is unreachable")
            || has("connection closed by")
            || has("connection reset")
        {
            return SshError::Unreachable { host, detail };
        }
    }
    if code == Some(127) || has("command not found") || has("docker: not found") {
        return SshError::NoDocker { host, detail };
    }
    if has("permission denied while trying to connect to the docker") {
        return SshError::SocketPermission { host, detail };
    }
    if has("cannot connect to the docker daemon") || has("is the docker daemon running") {
        return SshError::EngineDown { host, detail };
    }
    SshError::Failed {
        command: command.to_string(),
        code: code.map_or("none: killed by a signal".into(), |c| c.to_string()),
        detail,
    }
}

/// Logs in and asks the engine there for its version: every failure a person meets first, told apart.
pub async fn check(target: &SshTarget) -> Result<(), DockerError> {
    let (mut command, shown) = ssh_command(
        target,
        &["docker", "version", "--format", "'{{.Server.Version}}'"],
    );
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = ssh_program().remove(0);
    let child = command.spawn().map_err(|error| SshError::NoSsh {
        program: program.clone(),
        error,
    })?;
    let output = tokio::time::timeout(
        Duration::from_secs(u64::from(CONNECT_TIMEOUT) * 4),
        child.wait_with_output(),
    )
    .await
    .map_err(|_| SshError::Unreachable {
        host: display(target),
        detail: format!("`{shown}` did not finish within {} s", CONNECT_TIMEOUT * 4),
    })?
    .map_err(|error| SshError::NoSsh { program, error })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(classify(target, &shown, output.status.code(), &stderr).into())
}

/// A bollard client whose every connection is an `ssh … docker system dial-stdio`.
pub fn connect(target: &SshTarget, timeout: u64) -> Result<Docker, bollard::errors::Error> {
    let client: Client<DialStdio, Body> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4)
        .build(DialStdio {
            target: target.clone(),
        });
    let transport = move |request: bollard::BollardRequest| {
        let client = client.clone();
        async move {
            client.request(request).await.map_err(|e| {
                bollard::errors::Error::from(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!("over SSH: {e}"),
                ))
            })
        }
    };
    Docker::connect_with_custom_transport(
        transport,
        Some("http://docker.engine"),
        timeout,
        bollard::API_DEFAULT_VERSION,
    )
}

/// Makes connections: each a new `ssh` running `docker system dial-stdio`.
#[derive(Clone)]
struct DialStdio {
    target: SshTarget,
}

impl tower_service::Service<hyper::Uri> for DialStdio {
    type Response = TokioIo<SshStdio>;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let target = self.target.clone();
        Box::pin(async move {
            let (mut command, _) = ssh_command(&target, &["docker", "system", "dial-stdio"]);
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let mut child = command.spawn()?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(io::Error::other("ssh started without its pipes"));
            };
            Ok(TokioIo::new(SshStdio {
                _child: child,
                stdin,
                stdout,
            }))
        })
    }
}

/// One connection: the `ssh` child, written to on its standard input, read from its standard output.
struct SshStdio {
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Connection for SshStdio {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for SshStdio {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshStdio {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget {
        SshTarget {
            user: Some("me".into()),
            host: "gpu-box".into(),
            port: None,
        }
    }

    /// What ssh and docker print in each case (copied from real runs), read as what a person can act on.
    #[test]
    fn failures_are_told_apart() {
        let cases: [(Option<i32>, &str, &str); 8] = [
            (Some(255), "ssh: connect to host gpu-box port 22: Connection refused\r\n", "cannot reach"),
            (Some(255), "ssh: Could not resolve hostname gpu-box: Name or service not known", "cannot reach"),
            (Some(255), "me@gpu-box: Permission denied (publickey,password).", "refused SSH authentication"),
            (Some(255), "Host key verification failed.", "host key"),
            (Some(127), "bash: line 1: docker: command not found", "no `docker` on me@gpu-box"),
            (
                Some(1),
                "permission denied while trying to connect to the Docker daemon socket at \
                 unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version\": dial \
                 unix /var/run/docker.sock: connect: permission denied",
                "`docker` group",
            ),
            (
                Some(1),
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
                "does not answer",
            ),
            (Some(3), "something else entirely", "exit code 3"),
        ];
        for (code, stderr, says) in cases {
            let message =
                classify(&target(), "ssh -- gpu-box docker version", code, stderr).to_string();
            assert!(message.contains(says), "{stderr}: {message}");
        }
    }
}
