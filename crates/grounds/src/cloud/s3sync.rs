//! Local channels to S3, below a prefix named by their content (`sagemaker/datasets/<sha256>/`), which is
//! written once: a file is uploaded only when its key is missing, several at a time; a key that is there
//! with other content (size, then MD5 or the multipart ETag) or that is not a file of the data is an error,
//! never overwritten or deleted, so what a submitted job reads there never changes. Uploads are whole or
//! absent: single PUTs are atomic and a multipart upload that fails is aborted; the caller removes what an
//! upload added if the data changed meanwhile ([`remove_added`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use serde::Serialize;

use crate::cloud::aws::call_error;
use crate::printer::{Measure, Reporter};

/// Files above this size go up in parts of [`PART_SIZE`].
pub const MULTIPART_THRESHOLD: u64 = 64 << 20;
pub const PART_SIZE: u64 = 8 << 20;
const CONCURRENT_UPLOADS: usize = 4;

/// A file as a PutObject body whose bytes are counted on `sent` as the SDK reads them to send them.
/// The SDK makes the body anew for a retry: what the failed attempt counted is taken back first.
fn counted_file_body(path: &Path, size: u64, sent: Arc<AtomicU64>) -> std::io::Result<ByteStream> {
    use futures_util::future::Either;
    use futures_util::TryStreamExt;
    let file = std::fs::File::open(path)?;
    let attempt = Arc::new(AtomicU64::new(0));
    Ok(ByteStream::new(SdkBody::retryable(move || {
        sent.fetch_sub(attempt.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        let from_start = file.try_clone().and_then(|mut file| {
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))?;
            Ok(file)
        });
        let chunks = match from_start {
            Ok(file) => Either::Left(crate::docker::transfer::file_stream(
                file,
                Default::default(),
            )),
            Err(e) => Either::Right(futures_util::stream::iter([Err(e)])),
        };
        SdkBody::from_body_1_x(Counted {
            // Fused: the SDK may ask again after the end, which a plain unfold forbids.
            inner: http_body_util::StreamBody::new(Box::pin(
                chunks
                    .map_ok(|chunk| http_body::Frame::data(bytes::Bytes::from(chunk)))
                    .fuse(),
            )),
            size,
            sent: sent.clone(),
            attempt: attempt.clone(),
        })
    })))
}

/// A body of a known size that counts the bytes it gives.
struct Counted<B> {
    inner: B,
    size: u64,
    sent: Arc<AtomicU64>,
    attempt: Arc<AtomicU64>,
}

impl<B> http_body::Body for Counted<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let length = data.len() as u64;
                self.sent.fetch_add(length, Ordering::Relaxed);
                self.attempt.fetch_add(length, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.size)
    }
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct SyncReport {
    pub uploaded: usize,
    pub unchanged: usize,
    /// Always 0: a content prefix is never pruned (kept in `--json` answers for their shape).
    pub deleted: usize,
    pub bytes_uploaded: u64,
    /// The keys this upload added (what [`remove_added`] takes back).
    #[serde(skip)]
    pub added: Vec<String>,
}

/// Takes back what an upload added to a content prefix (its keys were missing before, so no job reads
/// them): for data that changed while it was uploaded.
pub async fn remove_added(s3: &Client, bucket: &str, report: &SyncReport) -> anyhow::Result<()> {
    let keys = report
        .added
        .iter()
        .filter_map(|key| ObjectIdentifier::builder().key(key).build().ok())
        .collect();
    delete_objects(s3, bucket, keys).await.map(|_| ())
}

/// The ETag S3 gives `path` when uploaded as we upload it: plain MD5, or MD5 of part MD5s with `-N`.
pub fn expected_etag(path: &Path, size: u64) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    if size <= MULTIPART_THRESHOLD {
        let mut hasher = Md5::new();
        std::io::copy(&mut file, &mut HashWriter(&mut hasher))?;
        return Ok(hex::encode(hasher.finalize()));
    }
    multipart_etag(&mut file, PART_SIZE)
}

fn multipart_etag(reader: &mut impl Read, part_size: u64) -> std::io::Result<String> {
    let mut parts = Md5::new();
    let mut count = 0;
    loop {
        let mut hasher = Md5::new();
        let copied = std::io::copy(&mut reader.take(part_size), &mut HashWriter(&mut hasher))?;
        if copied == 0 {
            break;
        }
        parts.update(hasher.finalize());
        count += 1;
    }
    Ok(format!("{}-{count}", hex::encode(parts.finalize())))
}

struct HashWriter<'a>(&'a mut Md5);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The files of a channel: the file itself, or every file below the folder, by relative name.
fn local_files(source: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    if source.is_dir() {
        grounds_job::archive::files_below(source).map_err(|e| std::io::Error::other(e.to_string()))
    } else {
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(vec![(name, source.to_path_buf())])
    }
}

async fn remote_objects(
    s3: &Client,
    bucket: &str,
    prefix: &str,
) -> anyhow::Result<BTreeMap<String, (u64, String)>> {
    let mut objects = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| call_error(&format!("s3:ListObjectsV2 s3://{bucket}/{prefix}"), e))?;
        for object in page.contents() {
            let key = object.key().unwrap_or_default().to_string();
            let etag = object
                .e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_string();
            objects.insert(key, (object.size().unwrap_or(0) as u64, etag));
        }
    }
    Ok(objects)
}

/// The metadata key under which an object keeps the sha256 of the file it was uploaded from.
const SHA256_METADATA: &str = "grounds-sha256";

/// The sha256 an object was uploaded with (its `grounds-sha256` metadata), if any.
async fn stored_sha256(s3: &Client, bucket: &str, key: &str) -> anyhow::Result<Option<String>> {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| call_error(&format!("s3:HeadObject s3://{bucket}/{key}"), e))?;
    Ok(head
        .metadata()
        .and_then(|m| m.get(SHA256_METADATA))
        .filter(|v| !v.is_empty())
        .cloned())
}

async fn upload(
    s3: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
    size: u64,
    sha256: &str,
    sent: &Arc<AtomicU64>,
) -> anyhow::Result<()> {
    if size <= MULTIPART_THRESHOLD {
        let body = counted_file_body(path, size, sent.clone())?;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .metadata(SHA256_METADATA, sha256)
            .body(body)
            .send()
            .await
            .map_err(|e| call_error(&format!("s3:PutObject s3://{bucket}/{key}"), e))?;
        return Ok(());
    }
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .metadata(SHA256_METADATA, sha256)
        .send()
        .await
        .map_err(|e| call_error(&format!("s3:CreateMultipartUpload s3://{bucket}/{key}"), e))?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    let result = upload_parts(s3, bucket, key, path, &upload_id, sent).await;
    if result.is_err() {
        // Never leave a partial upload behind that could later be taken as whole.
        let _ = s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    result
}

async fn upload_parts(
    s3: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
    upload_id: &str,
    sent: &AtomicU64,
) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut parts = Vec::new();
    let mut number = 1;
    loop {
        let mut chunk = Vec::with_capacity(PART_SIZE as usize);
        (&mut file).take(PART_SIZE).read_to_end(&mut chunk)?;
        if chunk.is_empty() {
            break;
        }
        let length = chunk.len() as u64;
        let part = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(chunk))
            .send()
            .await
            .map_err(|e| {
                call_error(&format!("s3:UploadPart {number} of s3://{bucket}/{key}"), e)
            })?;
        sent.fetch_add(length, Ordering::Relaxed);
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_string))
                .build(),
        );
        number += 1;
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            call_error(
                &format!("s3:CompleteMultipartUpload s3://{bucket}/{key}"),
                e,
            )
        })?;
    Ok(())
}

/// Makes the content prefix `s3://bucket/prefix` hold the files of `source`, uploading only the keys it
/// lacks. A key there with other content, or one that is not a file of `source`, is an error that names
/// it: the prefix is written once and never changed.
///
/// `hashes` gives each file's sha256 (by relative name), stored with the object as its
/// `grounds-sha256` metadata: an object whose ETag is not an MD5 (SSE-KMS) is recognised by it.
pub async fn sync(
    s3: &Client,
    source: &Path,
    bucket: &str,
    prefix: &str,
    hashes: &BTreeMap<String, String>,
    reporter: &dyn Reporter,
) -> anyhow::Result<SyncReport> {
    sync_files(s3, local_files(source)?, bucket, prefix, hashes, reporter).await
}

/// As [`sync`], for files named by their key below `prefix` (relative name, path).
pub async fn sync_files(
    s3: &Client,
    files: Vec<(String, PathBuf)>,
    bucket: &str,
    prefix: &str,
    hashes: &BTreeMap<String, String>,
    reporter: &dyn Reporter,
) -> anyhow::Result<SyncReport> {
    let remote = remote_objects(s3, bucket, prefix).await?;
    let mut report = SyncReport::default();
    let mut uploads = Vec::new();
    let mut conflicts = Vec::new();
    for (relative, path) in &files {
        let key = format!("{prefix}{relative}");
        let size = std::fs::metadata(path)?.len();
        let sha256 = hashes.get(relative).cloned().unwrap_or_default();
        match remote.get(&key) {
            None => uploads.push((key, path.clone(), size, sha256)),
            Some((remote_size, etag))
                if *remote_size == size
                    && (expected_etag(path, size)? == *etag
                        || stored_sha256(s3, bucket, &key).await?.as_deref()
                            == Some(sha256.as_str())) =>
            {
                report.unchanged += 1
            }
            Some(_) => conflicts.push(key),
        }
    }
    let local_keys: std::collections::BTreeSet<String> =
        files.iter().map(|(r, _)| format!("{prefix}{r}")).collect();
    conflicts.extend(
        remote
            .keys()
            .filter(|key| !local_keys.contains(*key))
            .cloned(),
    );
    if let Some(first) = conflicts.first() {
        anyhow::bail!(
            "s3://{bucket}/{prefix} is the place of this data's content and is written once, but {} \
             object(s) there are not this data (e.g. s3://{bucket}/{first}, changed or added by hand): \
             grounds never changes it under the jobs that read it. Remove it with `grounds cache clear \
             --s3 --bucket {bucket} {}` once no job reads it, and run again",
            conflicts.len(),
            prefix
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
        );
    }
    let total: u64 = uploads.iter().map(|(_, _, size, _)| size).sum();
    if !uploads.is_empty() {
        reporter.stage(
            "Uploading",
            &format!(
                "{} file(s), {} bytes to s3://{bucket}/{prefix}",
                uploads.len(),
                total
            ),
        );
    }
    let mut done: u64 = 0;
    let progress = reporter.progress(
        Measure::Bytes,
        "Uploading",
        &format!("s3://{bucket}/{prefix}"),
        Some(total),
    );
    let sent = Arc::new(AtomicU64::new(0));
    let sent = &sent;
    let mut results = futures_util::stream::iter(uploads.into_iter().map(
        |(key, path, size, sha256)| async move {
            upload(s3, bucket, &key, &path, size, &sha256, sent)
                .await
                .map(|_| (key, size))
        },
    ))
    .buffer_unordered(CONCURRENT_UPLOADS);
    let uploaded = async {
        while let Some(result) = results.next().await {
            let (key, size) = result?;
            report.added.push(key.clone());
            done += size;
            report.uploaded += 1;
            report.bytes_uploaded += size;
            let percent = (done * 100).checked_div(total).unwrap_or(100);
            reporter.stage(
                "Uploaded",
                &format!("[{percent:>3}%] s3://{bucket}/{key} ({size} bytes)"),
            );
        }
        anyhow::Ok(())
    };
    if let Err(e) = progress.follow(sent, uploaded).await {
        // What was added before the failure is taken back: the prefix stays as it was.
        let _ = remove_added(s3, bucket, &report).await;
        return Err(e);
    }
    Ok(report)
}

/// The most keys one DeleteObjects call takes.
const DELETE_BATCH: usize = 1000;

/// Deletes objects, at most [`DELETE_BATCH`] a call; a key S3 could not delete is an error that names
/// it (and how many others failed). Returns how many were deleted.
pub async fn delete_objects(
    s3: &Client,
    bucket: &str,
    keys: Vec<ObjectIdentifier>,
) -> anyhow::Result<usize> {
    let mut deleted = 0;
    for batch in keys.chunks(DELETE_BATCH) {
        let delete = Delete::builder()
            .set_objects(Some(batch.to_vec()))
            .quiet(true)
            .build()?;
        let answer = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| call_error(&format!("s3:DeleteObjects s3://{bucket}"), e))?;
        let errors = answer.errors();
        if let Some(first) = errors.first() {
            anyhow::bail!(
                "s3:DeleteObjects s3://{bucket}: {} of {} key(s) were not deleted, e.g. {} ({}: {})",
                errors.len(),
                batch.len(),
                first.key().unwrap_or_default(),
                first.code().unwrap_or_default(),
                first.message().unwrap_or_default()
            );
        }
        deleted += batch.len();
    }
    Ok(deleted)
}

/// Whether `name` is a valid S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens).
pub fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("..")
}

/// Creates the bucket when it does not exist.
pub async fn ensure_bucket(
    s3: &Client,
    bucket: &str,
    region: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    if !valid_bucket_name(bucket) {
        anyhow::bail!(
            "bucket `{bucket}` cannot be created: S3 bucket names have 3 to 63 lowercase letters, digits, dots and \
             hyphens, starting and ending with a letter or digit. Set [remote] bucket or GROUNDS_BUCKET"
        );
    }
    if s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    reporter.stage("Creating", &format!("bucket s3://{bucket} in {region}"));
    let mut request = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        let constraint = aws_sdk_s3::types::BucketLocationConstraint::from(region);
        request = request.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(constraint)
                .build(),
        );
    }
    request.send().await.map_err(|e| {
        anyhow::anyhow!(
            "bucket s3://{bucket} does not exist and cannot be created: {}. Set [remote] bucket or GROUNDS_BUCKET to a \
             bucket you may write to",
            crate::cloud::aws::explain(&e)
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Multipart ETags are the MD5 of the parts' MD5s, with the part count (as S3 computes them).
    #[test]
    fn multipart_etags_follow_s3() {
        let data = [7u8; 10];
        let etag = multipart_etag(&mut &data[..], 4).unwrap();
        let parts: Vec<u8> = [&data[0..4], &data[4..8], &data[8..10]]
            .iter()
            .flat_map(|chunk| Md5::digest(chunk).to_vec())
            .collect();
        assert_eq!(etag, format!("{}-3", hex::encode(Md5::digest(&parts))));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(
            expected_etag(&path, 5).unwrap(),
            "5d41402abc4b2a76b9719d911017c592"
        );
    }
}
