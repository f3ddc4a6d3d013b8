//! The Docker engine: connecting through `DOCKER_HOST` (or the local socket) with errors that say which
//! engine could not be reached, and the few calls grounds needs beyond building and running.

use bollard::errors::Error as BollardError;
use bollard::Docker;

/// Every container and network grounds creates carries this label, so leftovers can be found.
pub const LABEL: &str = "grounds";
pub const JOB_LABEL: &str = "grounds.job";
/// The process that created a container or network (see [`crate::owner::Owner`]).
pub const OWNER_LABEL: &str = "grounds.owner";

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker engine at {host}: {message}. Is it running, and may you use it? Set DOCKER_HOST \
         to reach another engine (e.g. DOCKER_HOST=unix:///run/user/1000/docker.sock)"
    )]
    Unreachable { host: String, message: String },
    #[error("Docker engine call `{call}` failed: {message}")]
    Call { call: String, message: String },
}

pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// The engine's own message where it sent one, else bollard's.
pub fn explain(error: &BollardError) -> String {
    match error {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}

pub fn call_error(call: &str, error: BollardError) -> DockerError {
    DockerError::Call {
        call: call.to_string(),
        message: explain(&error),
    }
}

/// Connects, agrees on an API version and checks that the engine answers.
pub async fn connect() -> Result<Docker, DockerError> {
    let host = engine_address();
    let unreachable = |message: String| DockerError::Unreachable {
        host: host.clone(),
        message,
    };
    let docker = Docker::connect_with_defaults().map_err(|e| unreachable(explain(&e)))?;
    let docker = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        docker.negotiate_version(),
    )
    .await
    .map_err(|_| unreachable("no answer within 20 s".into()))?
    .map_err(|e| unreachable(explain(&e)))?;
    docker.ping().await.map_err(|e| unreachable(explain(&e)))?;
    Ok(docker)
}

/// An image's id (`sha256:…`), if the engine has it.
pub async fn image_id(docker: &Docker, name: &str) -> Result<Option<String>, DockerError> {
    match docker.inspect_image(name).await {
        Ok(image) => Ok(Some(image.id.unwrap_or_else(|| name.to_string()))),
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(call_error(&format!("inspect image {name}"), e)),
    }
}

pub async fn image_exists(docker: &Docker, name: &str) -> Result<bool, DockerError> {
    match docker.inspect_image(name).await {
        Ok(_) => Ok(true),
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(call_error(&format!("inspect image {name}"), e)),
    }
}

/// Removes the containers and networks whose owner (the grounds process that created them) is gone: a
/// run that was killed (`kill -9`, a crash, a closed machine) could not clean up after itself. Returns
/// the names removed.
pub async fn remove_orphans(docker: &Docker) -> Vec<String> {
    use bollard::query_parameters::{
        ListContainersOptions, ListNetworksOptions, RemoveContainerOptionsBuilder,
    };
    use std::collections::HashMap;
    let filters = HashMap::from([("label".to_string(), vec![OWNER_LABEL.to_string()])]);
    let orphaned = |labels: Option<&HashMap<String, String>>| {
        labels
            .and_then(|l| l.get(OWNER_LABEL))
            .and_then(|owner| crate::owner::Owner::parse(owner))
            .is_some_and(|owner| owner.is_gone())
    };
    let mut removed = Vec::new();
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .unwrap_or_default();
    for container in containers {
        if !orphaned(container.labels.as_ref()) {
            continue;
        }
        let Some(id) = container.id else { continue };
        let name = container
            .names
            .and_then(|n| n.first().cloned())
            .unwrap_or_else(|| id.clone());
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        if docker.remove_container(&id, Some(options)).await.is_ok() {
            removed.push(name.trim_start_matches('/').to_string());
        }
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters),
        }))
        .await
        .unwrap_or_default();
    for network in networks {
        if !orphaned(network.labels.as_ref()) {
            continue;
        }
        let Some(name) = network.name else { continue };
        if docker.remove_network(&name).await.is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// Whether the engine can give containers GPUs (`docker run --gpus`): it has the NVIDIA runtime.
pub async fn offers_gpus(docker: &Docker) -> Result<bool, DockerError> {
    let info = docker.info().await.map_err(|e| call_error("info", e))?;
    Ok(info
        .runtimes
        .is_some_and(|runtimes| runtimes.keys().any(|name| name.contains("nvidia"))))
}
