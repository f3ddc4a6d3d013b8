//! A local run's files when the engine does not share this machine's disk (`ssh://`, `tcp://`, or
//! `--copy`): nothing is bind-mounted. Each host's `/opt/ml` (config files, folders) is copied into its
//! container before it starts; channels are data volumes kept on the engine by content hash
//! ([`crate::docker::volumes`]), mounted read-only; `model/`, `output/` and `checkpoints/` are copied out
//! into the host's root here when the container ends, where they are collected as in a mounted run.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use bollard::models::{Mount, MountType, MountVolumeOptions};
use bollard::Docker;

use crate::config::task::{ChannelSource, Task};
use crate::docker::{transfer, volumes};
use crate::job::collect::LeftOut;
use crate::printer::Reporter;
use grounds_job::contract::DEFAULT_ROOT;

/// What is copied out of each container when it ends.
const COPIED_OUT: [&str; 3] = ["model", "output", "checkpoints"];

/// The data volume of each local channel, sent to the engine where it does not have it yet, named by
/// the content hash the fingerprint read (a channel that changed since is an error, before or after it
/// is packed: the volume holds the data the job's record names).
pub async fn channel_volumes(
    docker: &Docker,
    task: &Task,
    hashes: &crate::job::datahash::HashCache,
    expected: &crate::job::fingerprint::ChannelHashes,
    image: &str,
    owner: (u32, u32),
    reporter: &dyn Reporter,
) -> anyhow::Result<BTreeMap<String, volumes::ChannelVolume>> {
    let mut found = BTreeMap::new();
    for (name, source) in &task.channels {
        let ChannelSource::Local(path) = source else {
            continue;
        };
        // An `s3://` download has no hash in the fingerprint (its objects' ETags are there): its
        // volume is named by the content of the held cache entry.
        let hash = match expected.get(name) {
            Some(hash) => hash.clone(),
            None => hex::encode(
                hashes
                    .content_hash(path)
                    .with_context(|| format!("reading channel `{name}` ({})", path.display()))?
                    .0,
            ),
        };
        let hash = &hash;
        crate::job::fingerprint::check_unchanged(hashes, name, path, hash)?;
        let unchanged = || crate::job::fingerprint::check_unchanged(hashes, name, path, hash);
        let volume = volumes::ensure(docker, image, name, path, hash, owner, &unchanged, reporter)
            .await
            .with_context(|| format!("sending channel `{name}` to the engine"))?;
        found.insert(
            name.clone(),
            volumes::ChannelVolume {
                volume,
                hash: hash.clone(),
            },
        );
    }
    Ok(found)
}

/// The read-only mounts of the channels' volumes at `/opt/ml/input/data/<channel>`.
pub fn channel_mounts(volumes: &BTreeMap<String, volumes::ChannelVolume>) -> Vec<Mount> {
    volumes
        .iter()
        .map(|(name, channel)| Mount {
            target: Some(format!("{DEFAULT_ROOT}/input/data/{name}")),
            source: Some(channel.volume.clone()),
            typ: Some(MountType::VOLUME),
            read_only: Some(true),
            volume_options: Some(MountVolumeOptions {
                no_copy: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// Copies a host's root (laid out here) into its created container as `/opt/ml`, owned by `owner`.
pub async fn copy_in(
    docker: &Docker,
    container: &str,
    root: &Path,
    owner: (u32, u32),
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let prefix = DEFAULT_ROOT.trim_start_matches('/');
    let items = grounds_job::archive::tar::tree_items(root, prefix)
        .with_context(|| format!("reading {}", root.display()))?;
    let (tar, _) = grounds_job::archive::tar::write(&items, owner)
        .with_context(|| format!("packing {}", root.display()))?;
    transfer::upload(
        docker,
        container,
        "/",
        tar,
        &format!("{DEFAULT_ROOT} of {container}"),
        reporter,
    )
    .await?;
    Ok(())
}

/// Copies `model/`, `output/` and `checkpoints/` out of an ended container into the host's root here.
/// Nothing here fails the run: what cannot be copied is returned as left out, with the reason.
pub async fn copy_out(
    docker: &Docker,
    container: &str,
    host: &str,
    root: &Path,
    reporter: &dyn Reporter,
) -> Vec<LeftOut> {
    let mut left_out = Vec::new();
    for tree in COPIED_OUT {
        let path = format!("{DEFAULT_ROOT}/{tree}");
        if let Err(e) = copy_tree_out(docker, container, &path, root, &mut left_out, reporter).await
        {
            reporter.warn(&format!(
                "{host}: could not copy {path} out of its container: {e:#}"
            ));
            left_out.push(LeftOut {
                path: format!("{tree}/"),
                reason: format!("could not be copied out of {host}'s container ({e:#})"),
            });
        }
    }
    left_out
}

async fn copy_tree_out(
    docker: &Docker,
    container: &str,
    path: &str,
    root: &Path,
    left_out: &mut Vec<LeftOut>,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let file = tempfile::tempfile().context("creating a temporary file for the copy")?;
    let mut download = tokio::fs::File::from_std(file);
    let what = format!("{path} of {container}");
    let limits = grounds_job::archive::Limits::default();
    if !transfer::download(
        docker,
        container,
        path,
        &mut download,
        limits.max_bytes,
        &what,
        reporter,
    )
    .await?
    {
        return Ok(());
    }
    let mut file = download.into_std().await;
    std::io::Seek::rewind(&mut file)?;
    let root = root.to_path_buf();
    // The archive's entries are `model/...`: unpacked into the root they land where a mount puts them.
    let unpacked = tokio::task::spawn_blocking(move || {
        grounds_job::archive::tar::unpack(std::io::BufReader::new(file), &root, "", true, limits)
    })
    .await
    .context("unpacking the copy")??;
    // The archive as a whole (a bound reached) is named by the folder it is.
    let tree = path.rsplit('/').next().unwrap_or(path);
    left_out.extend(unpacked.into_iter().map(|(path, reason)| LeftOut {
        path: if path.is_empty() {
            format!("{tree}/")
        } else {
            path
        },
        reason,
    }));
    Ok(())
}
