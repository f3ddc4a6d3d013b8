//! Channel data kept on an engine that does not share this machine's disk, so an unchanged data set is
//! sent once: a volume per content hash, labelled `grounds`, mounted read-only into the job's containers.
//!
//! A data set is two volumes: its content (`grounds-content-<hash>-<nonce>`, filled through a container
//! that is created, never started) and, made only once the content is complete, a marker
//! (`grounds-data-<hash>`) that names it. A run cut off while sending leaves content without a marker,
//! which is never used and is removed once its owner is gone; two runs sending the same data at once
//! both finish, and the one whose marker is second removes its own copy.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListVolumesOptions, RemoveContainerOptionsBuilder,
    RemoveVolumeOptions,
};
use bollard::Docker;
use serde::Serialize;

use super::{call_error, explain, LABEL, OWNER_LABEL};
use crate::printer::human_size;
use crate::printer::Reporter;

/// The content hash of a data set, on both its volumes.
pub const DATA_LABEL: &str = "grounds.data";
/// On a marker: the content volume it names.
const CONTENT_LABEL: &str = "grounds.content";
const CHANNEL_LABEL: &str = "grounds.channel";
const FILES_LABEL: &str = "grounds.files";
const BYTES_LABEL: &str = "grounds.bytes";
const MARKER_PREFIX: &str = "grounds-data-";
const CONTENT_PREFIX: &str = "grounds-content-";
/// Where the filling container sees the content volume.
const FILL_AT: &str = "/grounds-fill";

/// A data set kept on the engine.
#[derive(Debug, Clone, Serialize)]
pub struct CachedData {
    /// The content hash (sha256 of names and bytes, as the fingerprint reads local data).
    pub hash: String,
    /// The volume the containers mount.
    pub volume: String,
    /// The channel it was first sent for.
    pub channel: String,
    pub files: u64,
    pub bytes: u64,
    pub created: Option<String>,
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(32)]
}

fn is_missing(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A channel's data volume as a job's containers mount it, and the content hash it must hold.
#[derive(Debug, Clone)]
pub struct ChannelVolume {
    pub volume: String,
    pub hash: String,
}

/// Whether the content volume `name` is grounds' complete copy of the data of hash `hash`: it exists
/// and carries the labels grounds made it with (a volume the engine made by itself, for a mount whose
/// volume was gone, has none).
async fn is_content_of(docker: &Docker, name: &str, hash: &str) -> anyhow::Result<bool> {
    match docker.inspect_volume(name).await {
        Ok(volume) => Ok(
            volume.labels.get(DATA_LABEL).map(String::as_str) == Some(hash)
                && volume.labels.contains_key(LABEL),
        ),
        Err(e) if is_missing(&e) => Ok(false),
        Err(e) => Err(call_error(&format!("inspect volume {name}"), e).into()),
    }
}

/// Removes a marker that names content which is not there whole (removed by hand or by `grounds cache
/// clear`), and a volume the engine made by itself in its place if no container uses it: the data set
/// is then sent anew.
async fn forget(docker: &Docker, marker: &str, content: Option<&str>, hash: &str) {
    let _ = docker
        .remove_volume(marker, None::<RemoveVolumeOptions>)
        .await;
    if let Some(content) = content {
        if !matches!(is_content_of(docker, content, hash).await, Ok(true)) {
            let _ = docker
                .remove_volume(content, None::<RemoveVolumeOptions>)
                .await;
        }
    }
}

/// The content volume of a complete data set with this hash, if the engine has one whole. A marker
/// whose content is gone or not grounds' is removed, never followed.
async fn find(docker: &Docker, hash: &str) -> anyhow::Result<Option<CachedData>> {
    let marker = format!("{MARKER_PREFIX}{}", short(hash));
    let volume = match docker.inspect_volume(&marker).await {
        Ok(volume) => volume,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(call_error(&format!("inspect volume {marker}"), e).into()),
    };
    let Some(cached) = from_marker(&volume.labels, volume.created_at.clone()) else {
        forget(docker, &marker, None, hash).await;
        return Ok(None);
    };
    if cached.hash == hash && is_content_of(docker, &cached.volume, hash).await? {
        return Ok(Some(cached));
    }
    forget(docker, &marker, Some(&cached.volume), hash).await;
    Ok(None)
}

/// Checks, once the job's containers exist (so that no volume they mount can be removed any more),
/// that every channel volume they mount is grounds' whole copy of its data, not an empty volume the
/// engine made because the one named was removed meanwhile. The channels whose volume is not are
/// returned, their marker and stand-in removed, so that sending them again is all a retry needs.
pub async fn missing_after_mount(
    docker: &Docker,
    channels: &std::collections::BTreeMap<String, ChannelVolume>,
) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for (name, channel) in channels {
        if !is_content_of(docker, &channel.volume, &channel.hash).await? {
            // The marker goes only if it still names this volume (another run may have sent the data
            // again meanwhile, under a marker of its own); the stand-in goes once no container uses it.
            let marker = format!("{MARKER_PREFIX}{}", short(&channel.hash));
            let names_it = match docker.inspect_volume(&marker).await {
                Ok(volume) => {
                    volume.labels.get(CONTENT_LABEL).map(String::as_str)
                        == Some(channel.volume.as_str())
                }
                Err(_) => false,
            };
            if names_it {
                let _ = docker
                    .remove_volume(&marker, None::<RemoveVolumeOptions>)
                    .await;
            }
            missing.push(name.clone());
        }
    }
    Ok(missing)
}

/// Removes the volumes the engine made by itself for channels whose data volume was gone (once the
/// containers that mounted them are removed).
pub async fn remove_stand_ins(
    docker: &Docker,
    channels: &std::collections::BTreeMap<String, ChannelVolume>,
    missing: &[String],
) {
    for name in missing {
        if let Some(channel) = channels.get(name) {
            if !matches!(
                is_content_of(docker, &channel.volume, &channel.hash).await,
                Ok(true)
            ) {
                let _ = docker
                    .remove_volume(&channel.volume, None::<RemoveVolumeOptions>)
                    .await;
            }
        }
    }
}

fn from_marker(labels: &HashMap<String, String>, created: Option<String>) -> Option<CachedData> {
    let number = |key: &str| labels.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(CachedData {
        hash: labels.get(DATA_LABEL)?.clone(),
        volume: labels.get(CONTENT_LABEL)?.clone(),
        channel: labels.get(CHANNEL_LABEL).cloned().unwrap_or_default(),
        files: number(FILES_LABEL),
        bytes: number(BYTES_LABEL),
        created,
    })
}

/// The volume holding the data of channel `channel` (a file or folder here, of content hash `hash`) on
/// the engine: the one there, or a new one filled from a container of `image` (any image the engine
/// has; it is never started). Files are owned by `owner` (uid, gid), the user the job runs as.
/// `unchanged` is asked once the data is packed: a channel that changed meanwhile is never sent as
/// `hash`.
#[allow(
    clippy::too_many_arguments,
    reason = "the engine, the data, its hash, the owner and the check are all needed, and are distinct"
)]
pub async fn ensure(
    docker: &Docker,
    image: &str,
    channel: &str,
    source: &Path,
    hash: &str,
    owner: (u32, u32),
    unchanged: &dyn Fn() -> anyhow::Result<()>,
    reporter: &dyn Reporter,
) -> anyhow::Result<String> {
    if let Some(cached) = find(docker, hash).await? {
        reporter.stage(
            "Reusing",
            &format!(
                "channel `{channel}` on the engine ({} file(s), {}, unchanged: volume {})",
                cached.files,
                human_size(cached.bytes),
                cached.volume
            ),
        );
        return Ok(cached.volume);
    }
    let files = grounds_job::archive::files_of(source)?;
    let items = grounds_job::archive::tar::file_items(&files);
    let (tar, bytes) = grounds_job::archive::tar::write(&items, owner)
        .with_context(|| format!("packing channel `{channel}` ({})", source.display()))?;
    unchanged()?;
    let nonce = format!("{:08x}", fastrand::u32(..));
    let content = format!("{CONTENT_PREFIX}{}-{nonce}", short(hash));
    let owner_label = grounds_job::owner::Owner::current().label();
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(content.clone()),
            labels: Some(HashMap::from([
                (LABEL.to_string(), "1".to_string()),
                (DATA_LABEL.to_string(), hash.to_string()),
                (OWNER_LABEL.to_string(), owner_label.clone()),
            ])),
            ..Default::default()
        })
        .await
        .map_err(|e| call_error(&format!("create volume {content}"), e))?;
    reporter.stage(
        "Sending",
        &format!(
            "channel `{channel}` to the engine: {} file(s), {} (kept there as volume {content})",
            files.len(),
            human_size(bytes)
        ),
    );
    let filled = fill(
        docker,
        image,
        &content,
        &nonce,
        &owner_label,
        tar,
        channel,
        reporter,
    )
    .await;
    if let Err(e) = filled {
        let _ = docker
            .remove_volume(&content, None::<RemoveVolumeOptions>)
            .await;
        return Err(e);
    }
    let marker = format!("{MARKER_PREFIX}{}", short(hash));
    let made = docker
        .create_volume(marker_request(
            &marker,
            hash,
            &content,
            channel,
            files.len(),
            bytes,
        ))
        .await
        .map_err(|e| call_error(&format!("create volume {marker}"), e))?;
    // Creating a volume that exists answers with the one there: another run may have finished first.
    // Theirs is used only if it is whole; a marker left naming content that is gone is replaced.
    let named = made.labels.get(CONTENT_LABEL).cloned();
    match named {
        Some(theirs) if theirs != content => {
            if is_content_of(docker, &theirs, hash).await? {
                let _ = docker
                    .remove_volume(&content, None::<RemoveVolumeOptions>)
                    .await;
                return Ok(theirs);
            }
            forget(docker, &marker, Some(&theirs), hash).await;
            docker
                .create_volume(marker_request(
                    &marker,
                    hash,
                    &content,
                    channel,
                    files.len(),
                    bytes,
                ))
                .await
                .map_err(|e| call_error(&format!("create volume {marker}"), e))?;
            Ok(content)
        }
        _ => Ok(content),
    }
}

fn marker_request(
    marker: &str,
    hash: &str,
    content: &str,
    channel: &str,
    files: usize,
    bytes: u64,
) -> VolumeCreateRequest {
    VolumeCreateRequest {
        name: Some(marker.to_string()),
        labels: Some(HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (DATA_LABEL.to_string(), hash.to_string()),
            (CONTENT_LABEL.to_string(), content.to_string()),
            (CHANNEL_LABEL.to_string(), channel.to_string()),
            (FILES_LABEL.to_string(), files.to_string()),
            (BYTES_LABEL.to_string(), bytes.to_string()),
        ])),
        ..Default::default()
    }
}

/// Sends the tar into the content volume through a container that is created and never started.
#[allow(
    clippy::too_many_arguments,
    reason = "the engine, the data, its hash, the owner and the check are all needed, and are distinct"
)]
async fn fill(
    docker: &Docker,
    image: &str,
    content: &str,
    nonce: &str,
    owner_label: &str,
    tar: std::fs::File,
    channel: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let helper = format!("grounds-fill-{nonce}");
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["true".into()]),
        entrypoint: Some(vec![]),
        labels: Some(HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (OWNER_LABEL.to_string(), owner_label.to_string()),
        ])),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(vec![Mount {
                target: Some(FILL_AT.to_string()),
                source: Some(content.to_string()),
                typ: Some(MountType::VOLUME),
                volume_options: Some(MountVolumeOptions {
                    no_copy: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::default()
                    .name(&helper)
                    .build(),
            ),
            body,
        )
        .await
        .map_err(|e| call_error(&format!("create container {helper} from {image}"), e))?;
    let sent = super::transfer::upload(
        docker,
        &helper,
        FILL_AT,
        tar,
        &format!("channel `{channel}`"),
        reporter,
    )
    .await;
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    if let Err(e) = docker.remove_container(&helper, Some(options)).await {
        reporter.warn(&format!(
            "could not remove container {helper}: {}",
            explain(&e)
        ));
    }
    Ok(sent?)
}

/// Every complete data set on the engine, newest first.
pub async fn list(docker: &Docker) -> anyhow::Result<Vec<CachedData>> {
    let mut found: Vec<CachedData> = all_data_volumes(docker)
        .await?
        .into_iter()
        .filter(|v| v.name.starts_with(MARKER_PREFIX))
        .filter_map(|v| from_marker(&v.labels, v.created_at.clone()))
        .collect();
    found.sort_by(|a, b| b.created.cmp(&a.created));
    Ok(found)
}

/// Every volume grounds made for data (markers and contents, complete or not).
async fn all_data_volumes(docker: &Docker) -> anyhow::Result<Vec<bollard::models::Volume>> {
    let answer = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![DATA_LABEL.to_string()],
            )])),
        }))
        .await
        .map_err(|e| call_error("list volumes", e))?;
    Ok(answer.volumes.unwrap_or_default())
}

/// Removes the data sets whose hash starts with one of `hashes` (all of them when empty), markers first
/// so a data set is never seen half removed. Returns what was removed and, for each volume that could
/// not be (in use by a running job), why.
pub async fn remove(
    docker: &Docker,
    hashes: &[String],
) -> anyhow::Result<(Vec<CachedData>, Vec<String>)> {
    let wanted =
        |hash: &str| hashes.is_empty() || hashes.iter().any(|h| hash.starts_with(h.as_str()));
    let volumes = all_data_volumes(docker).await?;
    let mut removed = Vec::new();
    let mut problems = Vec::new();
    let mut kept_contents = Vec::new();
    for volume in volumes.iter().filter(|v| v.name.starts_with(MARKER_PREFIX)) {
        let Some(cached) = from_marker(&volume.labels, volume.created_at.clone()) else {
            continue;
        };
        if !wanted(&cached.hash) {
            kept_contents.push(cached.volume);
            continue;
        }
        match docker
            .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => removed.push(cached),
            Err(e) => {
                kept_contents.push(cached.volume);
                problems.push(format!("{}: {}", volume.name, explain(&e)));
            }
        }
    }
    for volume in volumes
        .iter()
        .filter(|v| v.name.starts_with(CONTENT_PREFIX))
    {
        let hash = volume
            .labels
            .get(DATA_LABEL)
            .map(String::as_str)
            .unwrap_or("");
        if !wanted(hash) || kept_contents.contains(&volume.name) {
            continue;
        }
        if let Err(e) = docker
            .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
            .await
        {
            problems.push(format!(
                "{}: {} (a job that uses it may still run: try again when it ends)",
                volume.name,
                explain(&e)
            ));
        }
    }
    Ok((removed, problems))
}

/// Removes content volumes that no marker names and whose owner is gone: what a run cut off while
/// sending left behind. Returns their names.
pub async fn remove_unfinished(docker: &Docker) -> Vec<String> {
    let Ok(volumes) = all_data_volumes(docker).await else {
        return Vec::new();
    };
    let named: Vec<&String> = volumes
        .iter()
        .filter(|v| v.name.starts_with(MARKER_PREFIX))
        .filter_map(|v| v.labels.get(CONTENT_LABEL))
        .collect();
    let mut removed = Vec::new();
    for volume in volumes
        .iter()
        .filter(|v| v.name.starts_with(CONTENT_PREFIX))
    {
        let gone = volume
            .labels
            .get(OWNER_LABEL)
            .and_then(|o| grounds_job::owner::Owner::parse(o))
            .is_some_and(|o| o.is_gone());
        if gone
            && !named.contains(&&volume.name)
            && docker
                .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
                .await
                .is_ok()
        {
            removed.push(volume.name.clone());
        }
    }
    removed
}
