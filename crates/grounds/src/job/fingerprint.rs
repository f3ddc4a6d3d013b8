//! Fingerprints: one hash over everything that decides what a job computes.
//!
//! It covers the package, the resolved task with its hyperparameters, the content of the local channels
//! and the mode, so that a completed result with the same fingerprint can stand in for a new run.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::task::{ChannelSource, TaskSpec};
use crate::job::datahash::HashCache;
use crate::job::package::PackageInfo;
use crate::job::Mode;

/// What runs the package, beyond the package and the data: it changes a run as much as the code does.
#[derive(Debug, Clone, Serialize)]
pub struct RunShape {
    /// How many hosts.
    pub instance_count: usize,
    /// The image's tag (it covers the Dockerfile, the entry binary and the requirements; the package,
    /// which images do not hold, is fingerprinted itself), or the image's id for an image task; none for
    /// attached runs.
    pub image: Option<String>,
    /// The GPUs asked for (`--gpus`), if any.
    pub gpus: Option<String>,
    /// The entry that runs the job in attached runs: the entry binary's identity.
    pub entry: Option<String>,
}

/// The identity of an entry binary (version, size, modification time): a rebuilt entry may compute
/// differently, so attached runs of another build are not reused.
pub fn entry_identity(entry: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let name = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match std::fs::metadata(entry) {
        Ok(meta) => format!(
            "{name} {} {} bytes {}.{}",
            env!("CARGO_PKG_VERSION"),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        ),
        Err(_) => format!("{name} {}", env!("CARGO_PKG_VERSION")),
    }
}

/// The content hash (hex) of each local channel, as the fingerprint read it: what every mode checks its
/// copy, volume or upload of the channel against, so that a job reads the data it was fingerprinted with.
pub type ChannelHashes = BTreeMap<String, String>;

pub fn fingerprint(
    package: &PackageInfo,
    spec: &TaskSpec,
    channels: &BTreeMap<String, ChannelSource>,
    mode: Mode,
    shape: &RunShape,
    data: &BTreeMap<String, String>,
    hashes: &HashCache,
) -> anyhow::Result<(String, ChannelHashes)> {
    let mut channel_hashes = ChannelHashes::new();
    let mut hasher = Sha256::new();
    hasher.update(b"grounds-fingerprint-v3\0");
    hasher.update(package.content_hash.as_bytes());
    hasher.update(serde_json::to_vec(spec)?);
    hasher.update(mode.to_string().as_bytes());
    hasher.update(serde_json::to_vec(shape)?);
    for (name, source) in channels {
        hasher.update(format!("\0channel\0{name}\0").as_bytes());
        // An `s3://` channel stands for what its prefix holds now (URI and every object's ETag), whether
        // SageMaker reads it or a local run reads the downloaded copy: a changed object is another run.
        if let Some(identity) = data.get(name) {
            hasher.update(identity.as_bytes());
            continue;
        }
        match source {
            ChannelSource::S3(uri) => hasher.update(uri.as_bytes()),
            // Resolved to the result's files before any fingerprint; never reached.
            ChannelSource::Result { .. } => anyhow::bail!(
                "channel `{name}`: {} was not resolved to a stored result's files",
                source.describe()
            ),
            ChannelSource::Local(path) => {
                let (hash, _) = hashes
                    .content_hash(path)
                    .with_context(|| format!("channel `{name}`"))?;
                hasher.update(hash);
                channel_hashes.insert(name.clone(), hex::encode(hash));
            }
        }
    }
    Ok((
        format!("sha256:{}", hex::encode(hasher.finalize())),
        channel_hashes,
    ))
}

/// Checks that the local channel `name` at `path` still holds `expected` (its content hash when the job
/// was fingerprinted): a stat per file through the hash cache, and a read of what changed. Called after
/// the channel was copied, packed or uploaded for the job, it proves the job got the data its record
/// names.
pub fn check_unchanged(
    hashes: &HashCache,
    name: &str,
    path: &std::path::Path,
    expected: &str,
) -> anyhow::Result<()> {
    let (now, _) = hashes
        .content_hash(path)
        .with_context(|| format!("channel `{name}`"))?;
    if hex::encode(now) != expected {
        anyhow::bail!(
            "channel `{name}` ({}) changed while the job was being prepared: what the job would read is \
             not the data its run was fingerprinted with. Nothing ran; run again once the data is in place",
            path.display()
        );
    }
    Ok(())
}
