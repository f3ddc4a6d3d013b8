//! Packages: the task's source folder and the resolved task, zipped deterministically.
//!
//! The same inputs give byte-identical zips, so the content hash in `package.json` identifies the code
//! that ran. Ignore files are honoured and files that look like secrets are refused unless named.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::archive::{self, DeterministicZip};
use crate::task::{Task, TaskSpec};

pub const TASK_JSON: &str = "task.json";
pub const PACKAGE_JSON: &str = "package.json";
/// Source files live under this prefix inside the package; the entry unpacks them into `/opt/ml/code`.
pub const CODE_PREFIX: &str = "code/";

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(
        "refusing to package {count} file(s) that look like secrets in {source_dir}: {names}. Delete them from \
         the source folder, list them in .groundsignore, or, to deliver one on purpose, name it in \
         [task.command] include_secrets = [\"{first}\"]"
    )]
    Secrets {
        source_dir: PathBuf,
        count: usize,
        names: String,
        first: String,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("walking the source folder {path}: {message}")]
    Walk { path: PathBuf, message: String },
    #[error("writing the package: {0}")]
    Zip(#[from] ::zip::result::ZipError),
}

/// `package.json`: what the package is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackageInfo {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` over every entry's name, mode and content (but this file).
    pub content_hash: String,
    pub files: usize,
}

/// A package in memory.
#[derive(Debug, Clone)]
pub struct Package {
    pub info: PackageInfo,
    pub bytes: Vec<u8>,
}

struct Entry {
    name: String,
    bytes: Vec<u8>,
    executable: bool,
}

pub fn build(task: &Task) -> Result<Package, PackageError> {
    let mut entries = Vec::new();
    if let Some(source) = &task.source {
        entries = source_entries(source, &task.include_secrets)?;
    }
    let task_json = serde_json::to_vec_pretty(&task.spec).expect("a task serializes");
    entries.push(Entry {
        name: TASK_JSON.into(),
        bytes: task_json,
        executable: false,
    });
    entries.sort_by(|a, b| a.name.cmp(&b.name));

    let mut hasher = Sha256::new();
    for entry in &entries {
        hasher.update(entry.name.as_bytes());
        hasher.update([0, entry.executable as u8, 0]);
        hasher.update((entry.bytes.len() as u64).to_le_bytes());
        hasher.update(&entry.bytes);
    }
    let info = PackageInfo {
        name: task.spec.name.clone(),
        version: task.spec.version.clone(),
        content_hash: format!("sha256:{}", hex::encode(hasher.finalize())),
        files: entries.len() - 1,
    };
    let mut zip = DeterministicZip::new(Cursor::new(Vec::new()));
    zip.add(
        PACKAGE_JSON,
        &serde_json::to_vec_pretty(&info).expect("serializes"),
        false,
    )?;
    for entry in &entries {
        zip.add(&entry.name, &entry.bytes, entry.executable)?;
    }
    Ok(Package {
        info,
        bytes: zip.finish()?.into_inner(),
    })
}

/// Whether a file name looks like it holds a secret that should never travel in a package or image.
pub fn looks_like_secret(file_name: &str) -> bool {
    file_name == ".env"
        || file_name.starts_with(".env.")
        || file_name.ends_with(".pem")
        || file_name.ends_with(".key")
        || file_name.starts_with("id_rsa")
        || file_name.starts_with("id_ed25519")
        || file_name == "credentials"
}

fn source_entries(source: &Path, include_secrets: &[String]) -> Result<Vec<Entry>, PackageError> {
    let walker = ignore::WalkBuilder::new(source)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(false)
        .git_global(false)
        .ignore(false)
        .parents(false)
        .require_git(false)
        .follow_links(false)
        .add_custom_ignore_filename(".groundsignore")
        .filter_entry(|e| {
            let name = e.file_name();
            name != ".git" && name != "__pycache__"
        })
        .build();
    let mut entries = Vec::new();
    let mut secrets = Vec::new();
    for item in walker {
        let item = item.map_err(|e| PackageError::Walk {
            path: source.to_path_buf(),
            message: e.to_string(),
        })?;
        let path = item.path();
        let is_file = item.file_type().is_some_and(|t| t.is_file())
            || (item.path_is_symlink() && path.is_file());
        if !is_file {
            continue;
        }
        let relative = path
            .strip_prefix(source)
            .expect("walked below the source")
            .to_string_lossy()
            .replace('\\', "/");
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if looks_like_secret(&file_name) && !include_secrets.iter().any(|s| s == &relative) {
            secrets.push(relative);
            continue;
        }
        let bytes = std::fs::read(path).map_err(|e| PackageError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        entries.push(Entry {
            name: format!("{CODE_PREFIX}{relative}"),
            bytes,
            executable: archive::is_executable(path),
        });
    }
    if !secrets.is_empty() {
        secrets.sort();
        return Err(PackageError::Secrets {
            source_dir: source.to_path_buf(),
            count: secrets.len(),
            first: secrets[0].clone(),
            names: secrets.join(", "),
        });
    }
    Ok(entries)
}

/// Reads `task.json` and `package.json` back out of a package.
pub fn read_manifest(bytes: &[u8]) -> anyhow::Result<(TaskSpec, PackageInfo)> {
    let mut zip = ::zip::ZipArchive::new(Cursor::new(bytes))?;
    let task = archive::read_entry(&mut zip, TASK_JSON)?.ok_or_else(|| {
        anyhow::anyhow!("the package has no {TASK_JSON}; was it made by grounds?")
    })?;
    let info = archive::read_entry(&mut zip, PACKAGE_JSON)?.ok_or_else(|| {
        anyhow::anyhow!("the package has no {PACKAGE_JSON}; was it made by grounds?")
    })?;
    Ok((
        serde_json::from_slice(&task)?,
        serde_json::from_slice(&info)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_in(dir: &Path) -> Task {
        let text = "[task]\nname = \"pkg\"\nversion = \"2\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n";
        std::fs::write(dir.join("task.toml"), text).unwrap();
        Task::load(&dir.join("task.toml")).unwrap()
    }

    fn source(dir: &Path) -> PathBuf {
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("lib")).unwrap();
        std::fs::write(src.join("train.py"), "print('hi')\n").unwrap();
        std::fs::write(src.join("lib/util.py"), "X = 1\n").unwrap();
        src
    }

    fn names(package: &Package) -> Vec<String> {
        let zip = ::zip::ZipArchive::new(Cursor::new(&package.bytes)).unwrap();
        zip.file_names().map(str::to_string).collect()
    }

    #[test]
    fn packages_are_deterministic_and_hash_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let first = build(&task_in(dir.path())).unwrap();
        // Touching a file (new mtime) changes nothing.
        std::fs::write(src.join("train.py"), "print('hi')\n").unwrap();
        let second = build(&task_in(dir.path())).unwrap();
        assert_eq!(first.bytes, second.bytes);
        assert_eq!(first.info.files, 2);
        std::fs::write(src.join("train.py"), "print('hi!')\n").unwrap();
        let third = build(&task_in(dir.path())).unwrap();
        assert_ne!(first.info.content_hash, third.info.content_hash);
        let mut listed = names(&first);
        listed.sort();
        assert_eq!(
            listed,
            [
                "code/lib/util.py",
                "code/train.py",
                "package.json",
                "task.json"
            ]
        );
        let (spec, info) = read_manifest(&first.bytes).unwrap();
        assert_eq!(spec.name, "pkg");
        assert_eq!(info, first.info);
    }

    #[test]
    fn honours_gitignore_and_groundsignore() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        std::fs::write(src.join(".gitignore"), "*.log\n").unwrap();
        std::fs::write(src.join(".groundsignore"), "data/\n").unwrap();
        std::fs::write(src.join("run.log"), "x").unwrap();
        std::fs::create_dir(src.join("data")).unwrap();
        std::fs::write(src.join("data/big.bin"), "x").unwrap();
        std::fs::create_dir(src.join(".git")).unwrap();
        std::fs::write(src.join(".git/HEAD"), "x").unwrap();
        let listed = names(&build(&task_in(dir.path())).unwrap());
        assert!(
            !listed
                .iter()
                .any(|n| n.contains("run.log") || n.contains("big.bin") || n.contains(".git/")),
            "{listed:?}"
        );
        assert!(listed.contains(&"code/.gitignore".to_string()));
    }

    #[test]
    fn refuses_secrets_unless_named() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        std::fs::write(src.join(".env"), "AWS_SECRET_ACCESS_KEY=x").unwrap();
        std::fs::write(src.join("server.pem"), "x").unwrap();
        let err = build(&task_in(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains(".env, server.pem") && err.contains("include_secrets"),
            "{err}"
        );
        let mut task = task_in(dir.path());
        task.include_secrets = vec![".env".into(), "server.pem".into()];
        assert!(names(&build(&task).unwrap()).contains(&"code/server.pem".to_string()));
        for name in [
            "id_rsa",
            "id_rsa.pub",
            "credentials",
            "tls.key",
            ".env.local",
        ] {
            assert!(looks_like_secret(name), "{name}");
        }
        assert!(!looks_like_secret("keys.py"));
    }
}
