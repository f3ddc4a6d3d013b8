//! Bringing a SageMaker job's artifacts home: `model.tar.gz` and `output.tar.gz` streamed from S3 to disk
//! and unpacked safely (links, devices and entries that would land outside are left out and recorded),
//! and the job's end described as the same `Outcome` every mode gives.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::api::JobState;
use crate::cloud::aws::{call_error, Aws};
use crate::job::collect::{Collected, LeftOut};
use crate::job::log::JobLog;
use crate::job::Outcome;
use crate::job::{SageMakerJob, Status};
use crate::printer::{Measure, Reporter};

fn s3_parts(uri: &str) -> anyhow::Result<(&str, &str)> {
    let rest = uri
        .strip_prefix("s3://")
        .with_context(|| format!("`{uri}` is not an s3:// URI"))?;
    Ok(rest.split_once('/').unwrap_or((rest, "")))
}

/// Downloads a `.tar.gz` from S3 (streamed to disk, never held in memory) and unpacks its regular files
/// and folders into `into`. Entries that are links, devices or pipes, or that would land outside, are
/// left out and recorded as `<prefix>/<name>`; they never fail the download. Returns whether it was there.
pub async fn download_tarball(
    s3: &aws_sdk_s3::Client,
    uri: &str,
    into: &Path,
    prefix: &str,
    left_out: &mut Vec<LeftOut>,
    reporter: &dyn Reporter,
) -> anyhow::Result<bool> {
    let (bucket, key) = s3_parts(uri)?;
    let object = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => object,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(false),
        Err(e) => return Err(call_error(&format!("s3:GetObject {uri}"), e).into()),
    };
    let limits = grounds_job::archive::Limits::default();
    let size = object.content_length().and_then(|n| u64::try_from(n).ok());
    if size.is_some_and(|size| size > limits.max_bytes) {
        left_out.push(LeftOut {
            path: prefix.to_string(),
            reason: format!(
                "{uri} is {} bytes, more than the bound of {} a result takes home: it was not \
                 downloaded (it stays in S3)",
                size.unwrap_or(0),
                limits.max_bytes
            ),
        });
        return Ok(true);
    }
    let mut download =
        tempfile::tempfile().context("creating a temporary file for the download")?;
    let progress = reporter.progress(Measure::Bytes, "Downloading", uri, size);
    crate::cloud::s3cache::save_body(object.body, &mut download, uri, &progress).await?;
    drop(progress);
    std::io::Seek::rewind(&mut download)?;
    let unpacked = grounds_job::archive::tar::unpack(
        flate2::read::GzDecoder::new(std::io::BufReader::new(download)),
        into,
        prefix,
        false,
        limits,
    )
    .with_context(|| format!("{uri} is not a .tar.gz"))?;
    left_out.extend(unpacked.into_iter().map(|(path, why)| LeftOut {
        path,
        reason: format!("{why} ({uri})"),
    }));
    Ok(true)
}

/// Brings a finished job home (model/ and output/ under `work`) and describes its end.
pub async fn collect(
    aws: &Aws,
    remote: &SageMakerJob,
    state: &JobState,
    work: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<Collected> {
    let s3 = aws.s3();
    let root = work.join("ml");
    let model_dir = root.join("model");
    let output_dir = root.join("output");
    std::fs::create_dir_all(&model_dir)?;
    std::fs::create_dir_all(output_dir.join("data"))?;
    let mut left_out = Vec::new();
    let model_uri = state.model_artifacts.clone().unwrap_or_else(|| {
        format!(
            "{}{}/output/model.tar.gz",
            remote.output_path, remote.job_name
        )
    });
    if download_tarball(
        &s3,
        &model_uri,
        &model_dir,
        "model",
        &mut left_out,
        reporter,
    )
    .await?
    {
        reporter.stage("Downloaded", &model_uri);
    } else if state.status == Status::Completed {
        reporter.warn(&format!("{model_uri} is not there: the job wrote no model"));
    }
    let output_uri = model_uri.replace("/model.tar.gz", "/output.tar.gz");
    if download_tarball(
        &s3,
        &output_uri,
        &output_dir.join("data"),
        "output/data",
        &mut left_out,
        reporter,
    )
    .await?
    {
        reporter.stage("Downloaded", &output_uri);
    }
    if let Some(reason) = &state.failure_reason {
        std::fs::write(output_dir.join("failure"), reason)?;
    }
    let mut files = Collected::from_root(&root, &root);
    files.left_out.extend(left_out);
    Ok(files)
}

pub fn outcome(
    state: &JobState,
    log: JobLog,
    started_at: DateTime<Utc>,
    hosts: usize,
    files: Collected,
) -> anyhow::Result<Outcome> {
    let logs = log.path.clone();
    let logged = log.finish()?;
    let mut metrics = logged.metrics;
    for (name, value, time) in &state.final_metrics {
        if !metrics.0.contains_key(name) {
            metrics.record(name, *value, time.unwrap_or_else(Utc::now));
        }
    }
    Ok(Outcome {
        status: state.status,
        exit_code: match state.status {
            Status::Completed => Some(0),
            _ => None,
        },
        failure_reason: state.failure_reason.clone().or_else(|| {
            (state.status == Status::Stopped && state.secondary == "MaxRuntimeExceeded").then(
                || {
                    "Stopped by SageMaker: the job ran longer than max_runtime (MaxRuntimeExceeded)"
                        .to_string()
                },
            )
        }),
        started_at,
        ended_at: Utc::now(),
        metrics,
        malformed_metric_lines: logged.malformed,
        hosts: grounds_job::contract::host_names(hosts),
        files,
        logs,
    })
}
