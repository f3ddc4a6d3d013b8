//! The source of a framework task as the SageMaker SDK delivers it: `sourcedir.tar.gz`, the source
//! folder's entries at the archive's root, kept in S3 below one prefix per content
//! (`s3://<bucket>/sagemaker/sources/<sha256>/sourcedir.tar.gz`) and named to the image's toolkit by the
//! `sagemaker_submit_directory` hyperparameter; the toolkit downloads it, installs its
//! `requirements.txt` and starts `sagemaker_program`. Built from the package (what grounds delivers is
//! what was checked: no secret, no link out), deterministically, so unchanged code uploads nothing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use grounds_job::manifest::CODE_PREFIX;
use grounds_job::pyjson::{self, PyValue};

/// Where the sources lie in a bucket.
pub const PREFIX: &str = "sagemaker/sources/";
/// The archive's name, as the SDK names it.
pub const FILE: &str = "sourcedir.tar.gz";
/// The toolkit's log level the SDK sends by default (Python's `logging.INFO`).
const LOG_LEVEL: &str = "20";

/// The prefix of the sources whose archive has sha256 `hash` (hex).
pub fn prefix_of(hash: &str) -> String {
    format!("{PREFIX}{hash}/")
}

/// `sourcedir.tar.gz` of the package at `package_zip`, written to `into`; returns its sha256 (hex). Files in
/// name order, owned by root, time 0, mode 0644 (0755 where the package marks a file executable), and a
/// gzip header without a time: the same code makes the same bytes.
pub fn write_tarball(package_zip: &Path, into: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(package_zip)
        .with_context(|| format!("opening the package {}", package_zip.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .with_context(|| format!("reading the package {}", package_zip.display()))?;
    let mut names: Vec<(String, usize)> = (0..zip.len())
        .filter_map(|index| {
            let entry = zip.by_index(index).ok()?;
            let name = entry.name().strip_prefix(CODE_PREFIX)?.to_string();
            (!name.is_empty() && !entry.is_dir()).then_some((name, index))
        })
        .collect();
    names.sort();
    let out =
        std::fs::File::create(into).with_context(|| format!("creating {}", into.display()))?;
    let gzip = flate2::GzBuilder::new()
        .mtime(0)
        .write(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    for (name, index) in names {
        let mut entry = zip.by_index(index)?;
        let executable = entry.unix_mode().is_some_and(|mode| mode & 0o111 != 0);
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {name} from the package"))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &name, bytes.as_slice())
            .with_context(|| format!("adding {name} to {FILE}"))?;
    }
    let gzip = tar.into_inner().context("finishing the source archive")?;
    let mut out = gzip.finish().context("finishing the source archive")?;
    out.flush()?;
    drop(out);
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(into)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// What the job is told, as `sagemaker.estimator.Framework` tells it: every hyperparameter as
/// `json.dumps` encodes the value it stands for (a value that reads as JSON is that value, `0.1`, `[1, 2]`;
/// any other text is a string, `"adam"`), and the toolkit's own: the script, where the source is, the
/// log level, the job's name and region.
pub fn hyperparameters(
    task: &BTreeMap<String, String>,
    program: &str,
    submit_directory: &str,
    job_name: &str,
    region: &str,
) -> BTreeMap<String, String> {
    let encoded = |text: &str| {
        let value = pyjson::loads(text).unwrap_or_else(|| PyValue::Str(text.to_string()));
        pyjson::dumps_default(&value)
    };
    let string = |text: &str| pyjson::dumps_default(&PyValue::Str(text.to_string()));
    let mut all: BTreeMap<String, String> = task
        .iter()
        .map(|(name, value)| (name.clone(), encoded(value)))
        .collect();
    all.insert("sagemaker_program".into(), string(program));
    all.insert(
        "sagemaker_submit_directory".into(),
        string(submit_directory),
    );
    all.insert("sagemaker_container_log_level".into(), LOG_LEVEL.into());
    all.insert("sagemaker_job_name".into(), string(job_name));
    all.insert("sagemaker_region".into(), string(region));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperparameters_are_encoded_as_the_sdk_encodes_them() {
        let task = BTreeMap::from([
            ("epochs".to_string(), "3".to_string()),
            ("lr".to_string(), "0.1".to_string()),
            ("optimizer".to_string(), "adam".to_string()),
            ("layers".to_string(), "[1,2]".to_string()),
            ("nan".to_string(), "NaN".to_string()),
        ]);
        let all = hyperparameters(
            &task,
            "train.py",
            "s3://b/k/sourcedir.tar.gz",
            "j-1",
            "us-east-1",
        );
        assert_eq!(all["epochs"], "3");
        assert_eq!(all["lr"], "0.1");
        assert_eq!(all["optimizer"], "\"adam\"");
        assert_eq!(all["layers"], "[1, 2]");
        assert_eq!(all["nan"], "NaN");
        assert_eq!(all["sagemaker_program"], "\"train.py\"");
        assert_eq!(
            all["sagemaker_submit_directory"],
            "\"s3://b/k/sourcedir.tar.gz\""
        );
        assert_eq!(all["sagemaker_container_log_level"], "20");
        assert_eq!(all["sagemaker_job_name"], "\"j-1\"");
        assert_eq!(all["sagemaker_region"], "\"us-east-1\"");
    }
}
