//! The data SageMaker runs read, kept in S3 below one prefix per content hash
//! (`s3://<bucket>/sagemaker/datasets/<sha256>/`): uploaded once, shared by every job with the same data,
//! never changed while a job may read it. `grounds cache list --s3` shows them; `grounds cache clear --s3`
//! removes those no job still reads.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_s3::types::ObjectIdentifier;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cloud::aws::call_error;

/// Where the data sets lie in a bucket.
pub const PREFIX: &str = "sagemaker/datasets/";

/// How long a data set is kept after its last object was written, unless asked otherwise: an upload
/// under way, whose training job is not created yet, is never taken for unused.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// One data set in S3.
#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub hash: String,
    pub uri: String,
    pub files: usize,
    pub bytes: u64,
    /// When its newest object was written, or a job last used it, whichever is later.
    pub written: Option<DateTime<Utc>>,
    #[serde(skip)]
    keys: Vec<String>,
}

/// The prefix of the data with content hash `hash` (hex).
pub fn prefix_of(hash: &str) -> String {
    format!("{PREFIX}{hash}/")
}

/// The object beside a data set's prefix (never in it: SageMaker would download it into the channel)
/// that says when a job last used the data set.
fn used_key(hash: &str) -> String {
    format!("{PREFIX}{hash}.used")
}

/// Marks the data set `hash` as used now, before a job that reads it is created.
pub async fn mark_used(s3: &aws_sdk_s3::Client, bucket: &str, hash: &str) -> anyhow::Result<()> {
    let key = used_key(hash);
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(aws_sdk_s3::primitives::ByteStream::from(
            Utc::now().to_rfc3339().into_bytes(),
        ))
        .send()
        .await
        .map_err(|e| call_error(&format!("s3:PutObject s3://{bucket}/{key}"), e))?;
    Ok(())
}

/// Every data set in `bucket`.
pub async fn list(s3: &aws_sdk_s3::Client, bucket: &str) -> anyhow::Result<Vec<Dataset>> {
    let mut found: BTreeMap<String, Dataset> = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(PREFIX)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| call_error(&format!("s3:ListObjectsV2 s3://{bucket}/{PREFIX}"), e))?;
        for object in page.contents() {
            let key = object.key().unwrap_or_default();
            let Some(rest) = key.strip_prefix(PREFIX) else {
                continue;
            };
            // `<hash>/<file>` is a file of the data; `<hash>.used` when a job last used it.
            let (hash, is_file) = match rest.split_once('/') {
                Some((hash, _)) => (hash, true),
                None => match rest.strip_suffix(".used") {
                    Some(hash) => (hash, false),
                    None => continue,
                },
            };
            let entry = found.entry(hash.to_string()).or_insert_with(|| Dataset {
                hash: hash.to_string(),
                uri: format!("s3://{bucket}/{}", prefix_of(hash)),
                files: 0,
                bytes: 0,
                written: None,
                keys: Vec::new(),
            });
            if is_file {
                entry.files += 1;
                entry.bytes += object.size().unwrap_or(0).max(0) as u64;
            }
            let written = object
                .last_modified()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
            entry.written = entry.written.max(written);
            entry.keys.push(key.to_string());
        }
    }
    Ok(found.into_values().collect())
}

/// The S3 URIs the training jobs still in progress read (they may read them again: a restarted spot
/// job downloads its input anew).
pub async fn in_progress_inputs(
    sagemaker: &aws_sdk_sagemaker::Client,
) -> anyhow::Result<BTreeSet<String>> {
    use aws_sdk_sagemaker::types::TrainingJobStatus;
    let mut uris = BTreeSet::new();
    let mut next: Option<String> = None;
    loop {
        let page = sagemaker
            .list_training_jobs()
            .status_equals(TrainingJobStatus::InProgress)
            .set_next_token(next.take())
            .max_results(100)
            .send()
            .await
            .map_err(|e| call_error("sagemaker:ListTrainingJobs", e))?;
        for summary in page.training_job_summaries() {
            let name = summary.training_job_name().unwrap_or_default();
            let job = sagemaker
                .describe_training_job()
                .training_job_name(name)
                .send()
                .await
                .map_err(|e| call_error(&format!("sagemaker:DescribeTrainingJob {name}"), e))?;
            for channel in job.input_data_config() {
                if let Some(uri) = channel
                    .data_source()
                    .and_then(|s| s.s3_data_source())
                    .and_then(|s| s.s3_uri())
                {
                    uris.insert(uri.to_string());
                }
            }
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_string()),
            _ => break,
        }
    }
    Ok(uris)
}

/// What clearing data sets did.
#[derive(Debug, Default, Serialize)]
pub struct Cleared {
    pub removed: Vec<Dataset>,
    /// Kept, with the reason: a job in progress reads it, or it was written moments ago.
    pub kept: Vec<(String, String)>,
}

/// Removes the data sets of `bucket` whose hash starts with one of `prefixes` (all, when none are given),
/// except those a training job in progress reads and those written within `settle` of `now`.
pub async fn clear(
    s3: &aws_sdk_s3::Client,
    sagemaker: &aws_sdk_sagemaker::Client,
    bucket: &str,
    prefixes: &[String],
    now: DateTime<Utc>,
    settle: std::time::Duration,
) -> anyhow::Result<Cleared> {
    let settle = chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX);
    let datasets = list(s3, bucket).await?;
    let read = in_progress_inputs(sagemaker).await?;
    let mut cleared = Cleared::default();
    for dataset in datasets {
        if !prefixes.is_empty()
            && !prefixes
                .iter()
                .any(|p| dataset.hash.starts_with(p.as_str()))
        {
            continue;
        }
        if read.iter().any(|uri| uri.starts_with(&dataset.uri)) {
            cleared.kept.push((
                dataset.hash.clone(),
                "a training job in progress reads it".into(),
            ));
            continue;
        }
        if dataset.written.is_some_and(|t| now - t < settle) {
            cleared.kept.push((
                dataset.hash.clone(),
                format!(
                    "written within the last {}: its job may not be created yet (--older-than)",
                    humantime::format_duration(settle.to_std().unwrap_or_default())
                ),
            ));
            continue;
        }
        let keys = dataset
            .keys
            .iter()
            .filter_map(|key| ObjectIdentifier::builder().key(key).build().ok())
            .collect();
        crate::cloud::s3sync::delete_objects(s3, bucket, keys).await?;
        cleared.removed.push(dataset);
    }
    Ok(cleared)
}
