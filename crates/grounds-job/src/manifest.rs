//! What a package says of itself, read back by the entry (and by the orchestrator from a stored result):
//! `task.json` (the task as it travels) and `package.json` (name, version, content hash), beside the
//! source files under `code/`. Packages are made by `grounds` (its `package` module).

use std::io::{Read, Seek};

use serde::{Deserialize, Serialize};

use crate::archive;
use crate::spec::TaskSpec;

pub const TASK_JSON: &str = "task.json";
pub const PACKAGE_JSON: &str = "package.json";
/// Source files live under this prefix inside the package; the entry unpacks them into `/opt/ml/code`.
pub const CODE_PREFIX: &str = "code/";
/// The most a manifest (`task.json`, `package.json`) may be when it is read back.
const MANIFEST_MAX: u64 = 16 << 20;

/// `package.json`: what the package is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackageInfo {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` over every entry's name, mode and content (but this file).
    pub content_hash: String,
    pub files: usize,
}

/// Reads `task.json` and `package.json` back out of a package.
pub fn read_manifest<R: Read + Seek>(reader: R) -> anyhow::Result<(TaskSpec, PackageInfo)> {
    let mut zip = ::zip::ZipArchive::new(reader)?;
    let task = archive::read_entry(&mut zip, TASK_JSON, MANIFEST_MAX)?.ok_or_else(|| {
        anyhow::anyhow!("the package has no {TASK_JSON}; was it made by grounds?")
    })?;
    let info = archive::read_entry(&mut zip, PACKAGE_JSON, MANIFEST_MAX)?.ok_or_else(|| {
        anyhow::anyhow!("the package has no {PACKAGE_JSON}; was it made by grounds?")
    })?;
    Ok((
        serde_json::from_slice(&task)?,
        serde_json::from_slice(&info)?,
    ))
}

/// Writes a package of `task` with `files` under `code/` to `path`, as the entry reads it: what the
/// entries' own tests run (packages of real tasks are made by `grounds`, with their true content hash;
/// this one's is a placeholder).
pub fn write_package(
    path: &std::path::Path,
    task: &TaskSpec,
    files: &[(&str, &[u8])],
) -> anyhow::Result<()> {
    use std::io::Write;
    let options = ::zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    let mut zip = ::zip::ZipWriter::new(std::fs::File::create(path)?);
    let info = PackageInfo {
        name: task.name.clone(),
        version: task.version.clone(),
        content_hash: format!("sha256:{}", "0".repeat(64)),
        files: files.len(),
    };
    zip.start_file(TASK_JSON, options)?;
    zip.write_all(&serde_json::to_vec(task)?)?;
    zip.start_file(PACKAGE_JSON, options)?;
    zip.write_all(&serde_json::to_vec(&info)?)?;
    for (name, content) in files {
        zip.start_file(format!("{CODE_PREFIX}{name}"), options)?;
        zip.write_all(content)?;
    }
    zip.finish()?;
    Ok(())
}
