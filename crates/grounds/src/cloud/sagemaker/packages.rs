//! Packages of SageMaker runs, kept in S3 below one prefix per zip (`s3://<bucket>/sagemaker/packages/
//! <sha256>/package.zip`) and given to the job as the channel `grounds_package`, which the entry unpacks
//! into `/opt/ml/code`: a code change uploads one small object and creates the job, with no image built
//! or pushed. Written once, like the data sets, and never changed under a job.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cloud::s3sync::{self, SyncReport};
use crate::printer::Reporter;

/// Where the packages lie in a bucket.
pub const PREFIX: &str = "sagemaker/packages/";

/// The prefix of the package whose zip has sha256 `hash` (hex).
pub fn prefix_of(hash: &str) -> String {
    format!("{PREFIX}{hash}/")
}

/// Uploads one file (at `path`, of sha256 `hash`) as `name` below `prefix` unless it is there already,
/// checked by its bytes: the package (`package.zip`), or a framework task's `sourcedir.tar.gz`.
pub async fn upload_once(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    (prefix, name): (&str, &str),
    path: &Path,
    hash: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<SyncReport> {
    let hashes = BTreeMap::from([(name.to_string(), hash.to_string())]);
    let files = vec![(name.to_string(), path.to_path_buf())];
    s3sync::sync_files(s3, files, bucket, prefix, &hashes, reporter).await
}
