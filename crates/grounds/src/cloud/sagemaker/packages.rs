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

/// Uploads the package (the zip at `path`, of sha256 `hash`) to its prefix unless it is there already.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    path: &Path,
    hash: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<SyncReport> {
    let name = grounds_job::contract::PACKAGE_FILE.to_string();
    let hashes = BTreeMap::from([(name.clone(), hash.to_string())]);
    let files = vec![(name, path.to_path_buf())];
    s3sync::sync_files(s3, files, bucket, &prefix_of(hash), &hashes, reporter).await
}
