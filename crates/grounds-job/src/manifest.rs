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
