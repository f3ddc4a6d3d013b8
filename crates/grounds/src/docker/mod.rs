//! The Docker engine: reaching the one `--docker-host` or `DOCKER_HOST` names (a local socket, TCP with
//! TLS, or SSH) with errors that say which engine could not be reached, and the few calls grounds needs
//! beyond building and running.

mod engine;
pub mod image;
pub mod ssh;
pub mod transfer;
pub mod volumes;

use bollard::errors::Error as BollardError;
use bollard::Docker;

pub use engine::EngineAddress;

/// GPUs asked of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gpus {
    All,
    #[serde(untagged)]
    Count(u32),
}

impl std::fmt::Display for Gpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gpus::All => f.write_str("all"),
            Gpus::Count(n) => write!(f, "{n}"),
        }
    }
}

/// Every container and network grounds creates carries this label, so leftovers can be found.
pub const LABEL: &str = "grounds";
pub const JOB_LABEL: &str = "grounds.job";
/// The process that created a container or network (see [`grounds_job::owner::Owner`]).
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
    #[error(transparent)]
    Ssh(#[from] ssh::SshError),
    #[error(transparent)]
    Address(#[from] engine::BadAddress),
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
    let message = explain(&error);
    // The first thing a full disk on the engine's machine says; where it is may not be this machine.
    let message = if message.to_lowercase().contains("no space left on device") {
        format!(
            "{message}. The disk of the engine's machine is full: free space there (`docker system prune`,              `grounds cache clear`) and run again"
        )
    } else {
        message
    };
    DockerError::Call {
        call: call.to_string(),
        message,
    }
}

/// Connects to the engine `DOCKER_HOST` names (the local socket without it).
pub async fn connect() -> Result<Docker, DockerError> {
    EngineAddress::resolve(None)?.connect().await
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

/// Removes the containers, networks and unfinished data volumes whose owner (the grounds process that created them) is gone: a
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
            .and_then(|owner| grounds_job::owner::Owner::parse(owner))
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
    removed.extend(volumes::remove_unfinished(docker).await);
    removed
}

/// The images grounds built (they carry the [`LABEL`]): id, tags and size in bytes.
pub async fn labelled_images(
    docker: &Docker,
) -> Result<Vec<(String, Vec<String>, u64)>, DockerError> {
    use bollard::query_parameters::ListImagesOptions;
    use std::collections::HashMap;
    let filters = HashMap::from([("label".to_string(), vec![LABEL.to_string()])]);
    let images = docker
        .list_images(Some(ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| call_error("list images", e))?;
    Ok(images
        .into_iter()
        .map(|i| (i.id, i.repo_tags, i.size.max(0) as u64))
        .collect())
}

/// Removes one tag of an image (the image itself when it was its last tag), never forcing: an image a
/// container still uses is refused by the engine, and the error says so.
pub async fn remove_tag(docker: &Docker, tag: &str) -> Result<(), DockerError> {
    use bollard::query_parameters::RemoveImageOptionsBuilder;
    let options = RemoveImageOptionsBuilder::default().force(false).build();
    docker
        .remove_image(tag, Some(options), None)
        .await
        .map(|_| ())
        .map_err(|e| call_error(&format!("remove image {tag}"), e))
}

/// Whether the engine can give containers GPUs (`docker run --gpus`): it has the NVIDIA runtime.
pub async fn offers_gpus(docker: &Docker) -> Result<bool, DockerError> {
    let info = docker.info().await.map_err(|e| call_error("info", e))?;
    Ok(info
        .runtimes
        .is_some_and(|runtimes| runtimes.keys().any(|name| name.contains("nvidia"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the engine answers when its disk is full (a build, a copy into a container, a volume).
    #[test]
    fn a_full_disk_on_the_engine_says_where_and_what_to_do() {
        let error = BollardError::DockerResponseServerError {
            status_code: 500,
            message: "write /var/lib/docker/volumes/x/_data/rows.csv: no space left on device"
                .into(),
        };
        let message = call_error(
            "copy channel `training` into grounds-fill-1:/grounds-fill",
            error,
        )
        .to_string();
        assert!(message.contains("grounds-fill-1"), "{message}");
        assert!(message.contains("no space left on device"), "{message}");
        assert!(
            message.contains("disk of the engine's machine is full"),
            "{message}"
        );
        assert!(message.contains("grounds cache clear"), "{message}");
        let other = call_error(
            "start container x",
            BollardError::DockerResponseServerError {
                status_code: 404,
                message: "No such container: x".into(),
            },
        )
        .to_string();
        assert!(!other.contains("disk"), "{other}");
    }
}
