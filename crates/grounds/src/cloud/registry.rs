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
    let mut layers = LayerBars::default();
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
        {
            layers.update(current, total, reporter);
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

/// A bar of bytes per layer being pushed. The engine names the layer of each progress message, but
/// bollard's typed message drops the name, so layers are told apart by their size (two layers of one
/// size share a bar). A layer's bar ends when all its bytes are sent.
#[derive(Default)]
struct LayerBars<'a> {
    open: Vec<(u64, Progress<'a>)>,
}

impl<'a> LayerBars<'a> {
    fn update(&mut self, current: i64, total: i64, reporter: &'a dyn Reporter) {
        let (Ok(current), Ok(total)) = (u64::try_from(current), u64::try_from(total)) else {
            return;
        };
        if total == 0 {
            return;
        }
        let at = match self.open.iter().position(|(size, _)| *size == total) {
            Some(at) => at,
            None if current >= total => return,
            None => {
                let what = format!("layer of {}", crate::printer::human_size(total));
                let bar = reporter.progress(Measure::Bytes, "Pushing", &what, Some(total));
                self.open.push((total, bar));
                self.open.len() - 1
            }
        };
        if current >= total {
            self.open.remove(at);
        } else {
            self.open[at].1.set(current);
        }
    }
}

/// ECR credentials for a push, from GetAuthorizationToken: given to the push only, never stored.
pub async fn ecr_credentials(
    aws: &crate::cloud::aws::Aws,
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
                .map_err(|e| crate::cloud::aws::call_error("ecr:CreateRepository", e))?;
        } else {
            return Err(crate::cloud::aws::call_error("ecr:DescribeRepositories", e).into());
        }
    }
    let token = ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| crate::cloud::aws::call_error("ecr:GetAuthorizationToken", e))?;
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

    /// Counts the bars a push opens.
    #[derive(Default)]
    struct Opened(std::sync::Mutex<Vec<String>>);

    impl Reporter for Opened {
        fn stage(&self, _: &str, _: &str) {}
        fn job_line(&self, _: Option<&str>, _: &str) {}
        fn warn(&self, _: &str) {}
        fn progress(&self, _: Measure, stage: &str, what: &str, _: Option<u64>) -> Progress<'_> {
            self.0.lock().unwrap().push(format!("{stage} {what}"));
            Progress::hidden()
        }
    }

    #[test]
    fn a_pushed_layer_has_one_bar_until_its_bytes_are_sent() {
        let opened = Opened::default();
        let mut layers = LayerBars::default();
        layers.update(0, 3 << 20, &opened);
        layers.update(1 << 20, 3 << 20, &opened);
        layers.update(512, 2048, &opened);
        assert_eq!(layers.open.len(), 2);
        layers.update(3 << 20, 3 << 20, &opened);
        assert_eq!(layers.open.len(), 1, "a layer all sent ends its bar");
        // Messages without sizes, or about a layer already done, open nothing.
        layers.update(5, 0, &opened);
        layers.update(-1, 100, &opened);
        layers.update(100, 100, &opened);
        assert_eq!(layers.open.len(), 1);
        assert_eq!(
            *opened.0.lock().unwrap(),
            vec!["Pushing layer of 3 MiB", "Pushing layer of 2 KiB"]
        );
    }

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
