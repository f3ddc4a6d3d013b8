//! Pushing a job's image to a registry (ECR, or any registry SageMaker can train from) through the Docker
//! engine, with credentials passed to the push itself: no `docker login`, nothing written to the user's
//! Docker config. A tag the registry already has is not pushed again.

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;

use crate::docker::{call_error, explain, DockerError};
use crate::printer::{Measure, Progress, Reporter};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("pushing {image} failed: {message}")]
    Failed { image: String, message: String },
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// `host/repository:tag` split into (`host/repository`, `tag`).
pub fn split_reference(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, tag),
        _ => (reference, "latest"),
    }
}

/// Whether the registry already has this reference (asked through the engine, with the credentials).
pub async fn has(docker: &Docker, reference: &str, credentials: Option<DockerCredentials>) -> bool {
    docker
        .inspect_registry_image(reference, credentials)
        .await
        .is_ok()
}

/// Pushes `local` as `reference` unless the registry has it; returns whether it pushed.
pub async fn push(
    docker: &Docker,
    local: &str,
    reference: &str,
    credentials: Option<DockerCredentials>,
    reporter: &dyn Reporter,
) -> Result<bool, PushError> {
    if has(docker, reference, credentials.clone()).await {
        reporter.stage(
            "Present",
            &format!("{reference} is in the registry already; not pushed"),
        );
        return Ok(false);
    }
    let (repository, tag) = split_reference(reference);
    let options = TagImageOptionsBuilder::default()
        .repo(repository)
        .tag(tag)
        .build();
    docker
        .tag_image(local, Some(options))
        .await
        .map_err(|e| call_error(&format!("tag {local} as {reference}"), e))?;
    reporter.stage("Pushing", reference);
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    let mut stream = docker.push_image(repository, Some(options), credentials);
    let mut last = String::new();
    // A bar of bytes per layer. The engine names the layer of each message, but bollard's typed message
    // drops the name, so layers are told apart by their size (two layers of one size share a bar).
    let mut layers: Vec<(i64, Progress<'_>)> = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| PushError::Failed {
            image: reference.to_string(),
            message: explain(&e),
        })?;
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            return Err(PushError::Failed {
                image: reference.to_string(),
                message,
            });
        }
        if let Some((current, total)) = info
            .progress_detail
            .as_ref()
            .and_then(|d| Some((d.current?, d.total?)))
            .filter(|(_, total)| *total > 0)
        {
            let at = match layers.iter().position(|(size, _)| *size == total) {
                Some(at) => at,
                None => {
                    let what = format!("layer of {}", crate::printer::human_size(total as u64));
                    let bar =
                        reporter.progress(Measure::Bytes, "Pushing", &what, Some(total as u64));
                    layers.push((total, bar));
                    layers.len() - 1
                }
            };
            if current >= total {
                layers.remove(at);
            } else {
                layers[at].1.set(current.max(0) as u64);
            }
        }
        if let Some(status) = info.status {
            // One line per layer state change; progress bars of bytes would flood a log.
            if status != last && !status.starts_with("Pushing") {
                reporter.job_line(Some("push"), &status);
            }
            last = status;
        }
    }
    Ok(true)
}

/// ECR credentials for a push, from GetAuthorizationToken: given to the push only, never stored.
pub async fn ecr_credentials(
    aws: &crate::aws::Aws,
    repository: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<DockerCredentials> {
    use anyhow::Context;
    let ecr = aws.ecr();
    let exists = ecr
        .describe_repositories()
        .repository_names(repository)
        .send()
        .await;
    if let Err(e) = exists {
        if e.as_service_error()
            .is_some_and(|s| s.is_repository_not_found_exception())
        {
            reporter.stage("Creating", &format!("ECR repository {repository}"));
            ecr.create_repository()
                .repository_name(repository)
                .send()
                .await
                .map_err(|e| crate::aws::call_error("ecr:CreateRepository", e))?;
        } else {
            return Err(crate::aws::call_error("ecr:DescribeRepositories", e).into());
        }
    }
    let token = ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| crate::aws::call_error("ecr:GetAuthorizationToken", e))?;
    let data = token
        .authorization_data()
        .first()
        .context("ECR returned no authorization data")?;
    let decoded = aws_smithy_types::base64::decode(data.authorization_token().unwrap_or_default())
        .context("ECR's authorization token is not base64")?;
    let decoded = String::from_utf8(decoded).context("ECR's authorization token is not text")?;
    let (username, password) = decoded
        .split_once(':')
        .context("ECR's authorization token is not user:password")?;
    Ok(DockerCredentials {
        username: Some(username.to_string()),
        password: Some(password.to_string()),
        serveraddress: data.proxy_endpoint().map(str::to_string),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag_not_the_port() {
        assert_eq!(
            split_reference("127.0.0.1:5000/grounds/t:abc"),
            ("127.0.0.1:5000/grounds/t", "abc")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/grounds/t"),
            ("127.0.0.1:5000/grounds/t", "latest")
        );
    }
}
