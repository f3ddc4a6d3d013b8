//! Following a job's containers through the engine: their output as lines, their exit codes, and their
//! removal (with their network) whatever the run's end.

use bollard::query_parameters::{LogsOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::docker::call_error;
use crate::printer::Reporter;
use grounds_job::lines::{LineSplitter, Piece};

pub async fn wait_exit(docker: Docker, container: String) -> anyhow::Result<i64> {
    let mut stream = docker.wait_container(
        &container,
        None::<bollard::query_parameters::WaitContainerOptions>,
    );
    match stream.next().await {
        Some(Ok(response)) => Ok(response.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(call_error(&format!("wait for container {container}"), e).into()),
        None => anyhow::bail!("the engine stopped answering about container {container}"),
    }
}

/// Follows a container's output, splitting it into lines (pieces of long ones) as they come.
pub async fn stream_logs(
    docker: Docker,
    container: String,
    host: String,
    tx: mpsc::Sender<(String, String, Piece)>,
) {
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut stream = docker.logs(&container, Some(options));
    let mut splitters = [LineSplitter::new(), LineSplitter::new()];
    let names = [format!("{host}/stdout"), format!("{host}/stderr")];
    while let Some(Ok(chunk)) = stream.next().await {
        let (index, bytes) = match chunk {
            bollard::container::LogOutput::StdErr { message } => (1, message),
            bollard::container::LogOutput::StdOut { message }
            | bollard::container::LogOutput::Console { message } => (0, message),
            bollard::container::LogOutput::StdIn { .. } => continue,
        };
        for piece in splitters[index].push(&bytes) {
            if tx
                .send((names[index].clone(), host.clone(), piece))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    for (index, splitter) in splitters.iter_mut().enumerate() {
        if let Some(piece) = splitter.finish() {
            let _ = tx.send((names[index].clone(), host.clone(), piece)).await;
        }
    }
}

/// Removes the containers (with their anonymous volumes) and the network; what cannot be removed is
/// warned about, never an error.
pub async fn remove(
    docker: &Docker,
    created: &[String],
    network: Option<&str>,
    reporter: &dyn Reporter,
) {
    for name in created {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        if let Err(e) = docker.remove_container(name, Some(options)).await {
            reporter.warn(&format!(
                "could not remove container {name}: {}",
                crate::docker::explain(&e)
            ));
        }
    }
    if let Some(network) = network {
        if let Err(e) = docker.remove_network(network).await {
            if !matches!(
                e,
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                }
            ) {
                reporter.warn(&format!(
                    "could not remove network {network}: {}",
                    crate::docker::explain(&e)
                ));
            }
        }
    }
}
