//! `s3://` channels outside SageMaker: what SageMaker would download into `/opt/ml/input/data/<channel>`,
//! downloaded here once, into a cache under `$GROUNDS_HOME` keyed by each object's ETag, so an unchanged
//! object is never fetched twice; and the ETags themselves, which stand for the data in fingerprints.
//!
//! `s3://bucket/prefix/` (or a prefix that names no single object) is every object below it, by its key
//! relative to the prefix; `s3://bucket/key` naming one object is that file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::cloud::aws::call_error;
use crate::printer::{Measure, Progress, Reporter};

/// One object of a channel: where it lands in the channel, and what S3 says it is.
#[derive(Debug, Clone)]
struct Object {
    key: String,
    relative: String,
    size: u64,
    etag: String,
}

/// An `s3://` channel as it stands in S3 now.
#[derive(Debug, Clone)]
pub struct S3Channel {
    pub uri: String,
    bucket: String,
    objects: Vec<Object>,
    /// A hash of every object's key, size and ETag: the data, for fingerprints.
    pub identity: String,
}

impl S3Channel {
    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }

    pub fn count(&self) -> usize {
        self.objects.len()
    }
}

fn parts(uri: &str) -> anyhow::Result<(&str, &str)> {
    let rest = uri
        .strip_prefix("s3://")
        .with_context(|| format!("`{uri}` is not an s3:// URI"))?;
    Ok(rest.split_once('/').unwrap_or((rest, "")))
}

/// A key's path below the prefix, as a relative path that stays in the channel folder.
fn relative_path(uri: &str, key: &str, prefix: &str) -> anyhow::Result<String> {
    let relative = key.strip_prefix(prefix).unwrap_or(key);
    let safe = !relative.is_empty()
        && !relative.starts_with('/')
        && Path::new(relative)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !safe {
        bail!(
            "{uri}: object `{key}` would land outside the channel's folder (an empty, absolute or `..` \
             path); rename it in S3 or point the channel at a prefix without it"
        );
    }
    // Where it lands, in one spelling (`a//b` and `a/./b` are `a/b`).
    Ok(Path::new(relative)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/"))
}

/// Lists what an `s3://` channel holds now (nothing is downloaded).
pub async fn list(s3: &aws_sdk_s3::Client, uri: &str) -> anyhow::Result<S3Channel> {
    let (bucket, key) = parts(uri)?;
    let mut objects = Vec::new();
    if !key.is_empty() && !key.ends_with('/') {
        // One object, if the URI names one exactly.
        if let Ok(head) = s3.head_object().bucket(bucket).key(key).send().await {
            let name = key.rsplit('/').next().unwrap_or(key).to_string();
            objects.push(Object {
                key: key.to_string(),
                relative: name,
                size: head.content_length().unwrap_or(0).max(0) as u64,
                etag: head
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string(),
            });
        }
    }
    if objects.is_empty() {
        let prefix = if key.is_empty() || key.ends_with('/') {
            key.to_string()
        } else {
            format!("{key}/")
        };
        let mut pages = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error(&format!("s3:ListObjectsV2 {uri}"), e))?;
            for object in page.contents() {
                let key = object.key().unwrap_or_default();
                if key.ends_with('/') {
                    continue; // a "folder" marker
                }
                objects.push(Object {
                    key: key.to_string(),
                    relative: relative_path(uri, key, &prefix)?,
                    size: object.size().unwrap_or(0).max(0) as u64,
                    etag: object
                        .e_tag()
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_string(),
                });
            }
        }
    }
    if objects.is_empty() {
        bail!("{uri} holds no objects: check the bucket and prefix (a channel needs data)");
    }
    objects.sort_by(|a, b| a.relative.cmp(&b.relative));
    // Two keys spelled differently that land on one file (`a//b`, `a/b`): SageMaker would write one over
    // the other; no channel is made of them.
    if let Some(pair) = objects.windows(2).find(|w| w[0].relative == w[1].relative) {
        bail!(
            "{uri}: objects `{}` and `{}` would both land at `{}` in the channel; rename one in S3",
            pair[0].key,
            pair[1].key,
            pair[0].relative
        );
    }
    let mut hasher = Sha256::new();
    for object in &objects {
        hasher.update(object.relative.as_bytes());
        hasher.update([0]);
        hasher.update(object.etag.as_bytes());
        hasher.update(object.size.to_le_bytes());
    }
    Ok(S3Channel {
        uri: uri.to_string(),
        bucket: bucket.to_string(),
        objects,
        identity: format!("sha256:{}", hex::encode(hasher.finalize())),
    })
}

/// Where the cache keeps an object: by bucket, key and ETag.
fn object_path(cache: &Path, bucket: &str, object: &Object) -> PathBuf {
    let name = hex::encode(Sha256::digest(
        format!("{bucket}\0{}\0{}\0{}", object.key, object.etag, object.size).as_bytes(),
    ));
    cache.join("objects").join(name)
}

/// The folder that holds a channel, built from the cache (by [`fetch`]).
pub fn view_path(cache: &Path, channel: &S3Channel) -> PathBuf {
    cache
        .join("views")
        .join(channel.identity.trim_start_matches("sha256:"))
}

/// What a download came to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fetched {
    pub downloaded: usize,
    pub cached: usize,
    pub bytes_downloaded: u64,
}

/// Whether the cache holds `object` whole: a regular file of its size (a download is renamed into
/// place only once complete, so a file of another size was changed by hand).
fn is_cached(cache: &Path, bucket: &str, object: &Object) -> bool {
    std::fs::symlink_metadata(object_path(cache, bucket, object))
        .is_ok_and(|m| m.is_file() && m.len() == object.size)
}

/// The lock `grounds cache clear` takes exclusively to remove downloaded objects, which every fetch
/// holds shared.
pub fn objects_lock(cache: &Path) -> PathBuf {
    cache.join(".objects.lock")
}

/// Makes every object of `channel` present in `cache` (downloading only what is not there whole yet)
/// and returns the cache entry that holds the channel as SageMaker would lay it out, built from the
/// objects ([`crate::store::cache::entry`]: built anew when it is not whole), held for the job.
pub async fn fetch(
    s3: &aws_sdk_s3::Client,
    channel: &S3Channel,
    cache: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<(crate::store::cache::Held, Fetched)> {
    let objects_dir = cache.join("objects");
    std::fs::create_dir_all(&objects_dir)
        .with_context(|| format!("creating the S3 cache {}", objects_dir.display()))?;
    let _objects =
        grounds_job::owner::Hold::wait(&objects_lock(cache), grounds_job::owner::HoldKind::Shared)
            .context("locking the S3 cache")?;
    let total = channel.bytes();
    let missing: Vec<&Object> = channel
        .objects
        .iter()
        .filter(|o| !is_cached(cache, &channel.bucket, o))
        .collect();
    let mut fetched = Fetched {
        cached: channel.objects.len() - missing.len(),
        ..Fetched::default()
    };
    if !missing.is_empty() {
        reporter.stage(
            "Downloading",
            &format!(
                "{} of {} object(s) of {} ({} bytes in all)",
                missing.len(),
                channel.objects.len(),
                channel.uri,
                total
            ),
        );
    }
    let progress = reporter.progress(
        Measure::Bytes,
        "Downloading",
        &channel.uri,
        Some(missing.iter().map(|o| o.size).sum()),
    );
    let progress = &progress;
    let results: Vec<anyhow::Result<u64>> =
        futures_util::stream::iter(missing.iter().map(|object| {
            let target = object_path(cache, &channel.bucket, object);
            let bucket = channel.bucket.clone();
            async move { download(s3, &bucket, object, &target, progress).await }
        }))
        .buffer_unordered(4)
        .collect()
        .await;
    for result in results {
        let size = result?;
        fetched.downloaded += 1;
        fetched.bytes_downloaded += size;
        reporter.stage(
            "Downloaded",
            &format!(
                "[{}/{}] {} bytes of {}",
                fetched.downloaded,
                missing.len(),
                size,
                channel.uri
            ),
        );
    }
    let view = view_path(cache, channel);
    let held = crate::store::cache::entry(&view, reporter, |views| {
        let staging = tempfile::Builder::new()
            .prefix(".view-")
            .tempdir_in(views)
            .context("creating a folder for the channel")?;
        for object in &channel.objects {
            let target = staging.path().join(&object.relative);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let source = object_path(cache, &channel.bucket, object);
            if !is_cached(cache, &channel.bucket, object) {
                bail!(
                    "{} left the cache while the channel was laid out; run again",
                    object.key
                );
            }
            if std::fs::hard_link(&source, &target).is_err() {
                std::fs::copy(&source, &target)
                    .with_context(|| format!("placing {} in the channel", object.key))?;
            }
        }
        Ok(staging)
    })?;
    Ok((held, fetched))
}

async fn download(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    object: &Object,
    target: &Path,
    progress: &Progress<'_>,
) -> anyhow::Result<u64> {
    let uri = format!("s3://{bucket}/{}", object.key);
    let response = s3
        .get_object()
        .bucket(bucket)
        .key(&object.key)
        .if_match(format!("\"{}\"", object.etag))
        .send()
        .await
        .map_err(|e| call_error(&format!("s3:GetObject {uri}"), e))?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let size = save_body(response.body, &mut temp, &uri, progress).await?;
    if size != object.size {
        bail!(
            "downloading {uri}: got {size} bytes of {}; it changed while it was read, run again",
            object.size
        );
    }
    temp.persist(target)
        .map_err(|e| e.error)
        .with_context(|| format!("storing {uri} in the cache"))?;
    Ok(size)
}

/// Streams an object's body into `out` as it arrives (never whole in memory), each chunk counted on
/// `progress`; returns its size.
pub async fn save_body(
    mut body: aws_sdk_s3::primitives::ByteStream,
    out: &mut impl std::io::Write,
    uri: &str,
    progress: &Progress<'_>,
) -> anyhow::Result<u64> {
    let mut size = 0u64;
    while let Some(chunk) = body
        .try_next()
        .await
        .with_context(|| format!("downloading {uri}"))?
    {
        out.write_all(&chunk)
            .with_context(|| format!("downloading {uri}"))?;
        size += chunk.len() as u64;
        progress.add(chunk.len() as u64);
    }
    Ok(size)
}

/// The S3 channels of a task, listed; with `download`, fetched into the cache. `folders` are where
/// each channel is (or, without `download`, would be) laid out.
pub struct Resolved {
    pub channels: BTreeMap<String, S3Channel>,
    pub folders: BTreeMap<String, PathBuf>,
    pub fetched: Fetched,
    /// The cache entries of the downloaded channels, held until the job has read them.
    pub holds: Vec<crate::store::cache::Held>,
}

pub async fn resolve(
    s3: &aws_sdk_s3::Client,
    uris: &BTreeMap<String, String>,
    cache: &Path,
    download: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<Resolved> {
    let mut resolved = Resolved {
        channels: BTreeMap::new(),
        folders: BTreeMap::new(),
        fetched: Fetched::default(),
        holds: Vec::new(),
    };
    for (name, uri) in uris {
        let channel = list(s3, uri)
            .await
            .with_context(|| format!("channel `{name}`"))?;
        if download {
            let (held, fetched) = fetch(s3, &channel, cache, reporter)
                .await
                .with_context(|| format!("channel `{name}`"))?;
            if fetched.downloaded == 0 {
                reporter.stage(
                    "Cached",
                    &format!(
                        "channel `{name}`: {} object(s) of {} unchanged since they were downloaded",
                        channel.count(),
                        channel.uri
                    ),
                );
            }
            resolved.fetched.downloaded += fetched.downloaded;
            resolved.fetched.cached += fetched.cached;
            resolved.fetched.bytes_downloaded += fetched.bytes_downloaded;
            resolved.folders.insert(name.clone(), held.dir.clone());
            resolved.holds.push(held);
        } else {
            resolved
                .folders
                .insert(name.clone(), view_path(cache, &channel));
        }
        resolved.channels.insert(name.clone(), channel);
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_inside_the_channel_or_are_refused() {
        assert_eq!(
            relative_path("u", "data/a/b.csv", "data/").unwrap(),
            "a/b.csv"
        );
        // Spelled another way, it lands in one place (which list() holds against the other keys).
        assert_eq!(
            relative_path("u", "data/a//b.csv", "data/").unwrap(),
            "a/b.csv"
        );
        assert_eq!(
            relative_path("u", "data/a/./b.csv", "data/").unwrap(),
            "a/b.csv"
        );
        for bad in ["data/../etc/passwd", "data//x", "data/"] {
            let err = relative_path("s3://b/data/", bad, "data/")
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
