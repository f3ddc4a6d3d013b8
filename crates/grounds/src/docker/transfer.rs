//! Files to and from the engine as tar streams (build contexts, a container's `/opt/ml`, data volumes),
//! streamed from and to disk, never held in memory, with progress for the long ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use bollard::Docker;
use futures_util::{Stream, StreamExt, TryStreamExt};

use super::{call_error, DockerError};
use crate::printer::{Measure, Reporter};

/// How often a long transfer says how far it is in plain lines (a drawn bar follows it continuously).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// A file as a stream of chunks, for a request body; `sent` counts the bytes read so far.
pub fn file_stream(
    file: std::fs::File,
    sent: Arc<AtomicU64>,
) -> impl Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(Some(tokio::fs::File::from_std(file)), move |state| {
        let sent = sent.clone();
        async move {
            use tokio::io::AsyncReadExt;
            let mut file = state?;
            let mut chunk = vec![0u8; 1 << 20];
            match file.read(&mut chunk).await {
                Ok(0) => None,
                Ok(n) => {
                    chunk.truncate(n);
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    Some((Ok(chunk), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

/// Sends a tar file into a container (created or stopped) and unpacks it at `path` there.
pub async fn upload(
    docker: &Docker,
    container: &str,
    path: &str,
    tar: std::fs::File,
    what: &str,
    reporter: &dyn Reporter,
) -> Result<(), DockerError> {
    let total = tar.metadata().map(|m| m.len()).ok();
    let sent = Arc::new(AtomicU64::new(0));
    let body = bollard::body_try_stream(file_stream(tar, sent.clone()).map_ok(Into::into));
    let options = UploadToContainerOptions {
        path: path.to_string(),
        ..Default::default()
    };
    let call = docker.upload_to_container(container, Some(options), body);
    reporter
        .progress(Measure::Bytes, "Sending", what, total)
        .say_every(PROGRESS_EVERY)
        .follow(&sent, call)
        .await
        .map_err(|e| call_error(&format!("copy {what} into {container}:{path}"), e))
}

/// Receives `path` of a container (running or stopped) as a tar, written to `into`; `Ok(false)` when the
/// container has no such path. At most a little more than `max` bytes are received: what unpacks the
/// tar holds it to its bound and says what was left out.
pub async fn download(
    docker: &Docker,
    container: &str,
    path: &str,
    into: &mut tokio::fs::File,
    max: u64,
    what: &str,
    reporter: &dyn Reporter,
) -> Result<bool, DockerError> {
    use tokio::io::AsyncWriteExt;
    let received = AtomicU64::new(0);
    let options = DownloadFromContainerOptions {
        path: path.to_string(),
    };
    let call = async {
        let mut stream = docker.download_from_container(container, Some(options));
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(false),
                Err(e) => return Err(call_error(&format!("copy {container}:{path} out"), e)),
            };
            into.write_all(&chunk)
                .await
                .map_err(|e| DockerError::Call {
                    call: format!("copy {container}:{path} out"),
                    message: format!("writing it to disk here: {e}"),
                })?;
            if received.fetch_add(chunk.len() as u64, Ordering::Relaxed) > max {
                break;
            }
        }
        into.flush().await.map_err(|e| DockerError::Call {
            call: format!("copy {container}:{path} out"),
            message: format!("writing it to disk here: {e}"),
        })?;
        Ok(true)
    };
    reporter
        .progress(Measure::Bytes, "Receiving", what, None)
        .say_every(PROGRESS_EVERY)
        .follow(&received, call)
        .await
}
