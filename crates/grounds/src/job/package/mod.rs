//! Packages: the task's source folder and the resolved task, zipped deterministically.
//!
//! The same inputs give byte-identical zips, so the content hash in `package.json` identifies the code
//! that ran. Ignore files are honoured, files that look like secrets are refused unless named, and a
//! symbolic link is kept as a link when it stays inside the source folder and refused when it leaves it:
//! nothing outside the source folder ever enters a package. Files are streamed into a zip on disk, so a
//! package is never held in memory whole.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::secrets::is_secret_path;
use crate::config::task::Task;
use crate::printer::Reporter;
use grounds_job::archive::{self, DeterministicZip};
use grounds_job::confined::{self, Resolution};

pub use grounds_job::manifest::{read_manifest, PackageInfo, CODE_PREFIX, PACKAGE_JSON, TASK_JSON};
/// A packaged file this large is probably data, which belongs in a channel.
const LARGE_FILE: u64 = 50 << 20;
/// Extensions of data files, which belong in a channel when they are not tiny.
const DATA_EXTENSIONS: &[&str] = &[
    "csv",
    "tsv",
    "parquet",
    "feather",
    "arrow",
    "npy",
    "npz",
    "h5",
    "hdf5",
    "pkl",
    "pickle",
    "pt",
    "pth",
    "ckpt",
    "safetensors",
    "bin",
    "tfrecord",
    "jsonl",
    "zip",
    "tar",
    "gz",
];
const DATA_FILE: u64 = 5 << 20;

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
    #[error(
        "refusing to package {link}: it is a symbolic link to {target}, {why}. Only the source folder is \
         delivered: copy what it points at into the source folder, or list the link in .groundsignore"
    )]
    Link {
        link: PathBuf,
        target: String,
        why: &'static str,
    },
    #[error(
        "refusing to package {path}: it is {what}, not a file, folder or link; list it in .groundsignore"
    )]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("refusing to package {path}: its name {why}; rename it, or list it in .groundsignore")]
    Name { path: PathBuf, why: &'static str },
    #[error("reading {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("walking the source folder {path}: {message}")]
    Walk { path: PathBuf, message: String },
    #[error("writing the package: {0}")]
    Write(String),
}

/// A package: its manifest, and the zip in a temporary file (removed when the last clone is dropped,
/// and locked while it lives, so that one left by a killed run is recognised and removed later).
#[derive(Debug, Clone)]
pub struct Package {
    pub info: PackageInfo,
    file: Arc<PackageFile>,
}

#[derive(Debug)]
struct PackageFile {
    path: tempfile::TempPath,
    _lock: grounds_job::owner::Lock,
}

impl PackageFile {
    fn new(path: tempfile::TempPath) -> std::io::Result<PackageFile> {
        let lock = grounds_job::owner::lock(std::fs::File::open(&path)?)?;
        Ok(PackageFile { path, _lock: lock })
    }
}

/// A temporary file for a package, named so that a clean-up recognises it.
pub fn temp_file() -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(grounds_job::owner::PACKAGE_PREFIX)
        .suffix(".zip")
        .tempfile()
}

impl Package {
    /// Where the zip lies.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The zip, opened without following a link: an attached job is told where its package lies and
    /// could put a link there.
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        grounds_job::confined::open_own_file(self.path()).map(|opened| opened.file)
    }

    /// Lays the package into a job root as the channel the entry unpacks it from
    /// (`input/data/grounds_package/package.zip`): a copy of its own, never a link, for the root is the
    /// job's to write and the zip is the one the result keeps.
    pub fn deliver_into(&self, layout: &grounds_job::contract::Layout) -> anyhow::Result<()> {
        use anyhow::Context;
        let dir = layout.channel_dir(grounds_job::contract::PACKAGE_CHANNEL);
        let target = dir.join(grounds_job::contract::PACKAGE_FILE);
        let copy = || -> std::io::Result<u64> {
            std::fs::create_dir_all(&dir)?;
            let mut to = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)?;
            std::io::copy(&mut self.open()?, &mut to)
        };
        copy().with_context(|| format!("delivering the package into {}", target.display()))?;
        Ok(())
    }

    /// The sha256 (hex) of the zip's bytes: where it is kept in S3 (`sagemaker/packages/<sha256>/`).
    pub fn sha256(&self) -> std::io::Result<String> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        std::io::copy(&mut self.open()?, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    }

    pub fn size(&self) -> u64 {
        std::fs::symlink_metadata(self.path())
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// A package from a zip held in a temporary file, its manifest read from it.
    pub fn from_temp(file: tempfile::TempPath) -> anyhow::Result<Package> {
        let (_, info) = read_manifest(std::fs::File::open(&file)?)?;
        Ok(Package {
            info,
            file: Arc::new(PackageFile::new(file)?),
        })
    }
}

/// What goes into a package, in order.
enum Entry {
    File {
        name: String,
        /// The source folder, and the file below it: opened relative to the folder, never through a
        /// link, and only if it is still the file the walk checked.
        source: PathBuf,
        relative: PathBuf,
        /// Device and inode of the file the walk checked.
        identity: (u64, u64),
        size: u64,
        executable: bool,
    },
    Link {
        name: String,
        target: String,
    },
    Bytes {
        name: String,
        bytes: Vec<u8>,
    },
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::File { name, .. } | Entry::Link { name, .. } | Entry::Bytes { name, .. } => name,
        }
    }
}

/// Hashes what passes through: the package's content hash is computed while it is written.
struct Hashing<'a, R> {
    inner: R,
    hasher: &'a mut Sha256,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

pub fn build(task: &Task, reporter: &dyn Reporter) -> Result<Package, PackageError> {
    let mut entries = Vec::new();
    if let Some(source) = &task.source {
        entries = source_entries(source, &task.include_secrets, reporter)?;
    }
    let task_json = serde_json::to_vec_pretty(&task.spec)
        .map_err(|e| PackageError::Write(format!("task.json: {e}")))?;
    entries.push(Entry::Bytes {
        name: TASK_JSON.into(),
        bytes: task_json,
    });
    entries.sort_by(|a, b| a.name().cmp(b.name()));

    let write = |e: &dyn std::fmt::Display| PackageError::Write(e.to_string());
    let file = temp_file().map_err(|e| write(&e))?;
    let (file, temp_path) = file.into_parts();
    let mut zip = DeterministicZip::new(std::io::BufWriter::new(file));
    let mut hasher = Sha256::new();
    let mut files = 0;
    for entry in &entries {
        match entry {
            Entry::File {
                name,
                source,
                relative,
                identity,
                size,
                executable,
            } => {
                hasher.update(name.as_bytes());
                hasher.update([0, *executable as u8, 0]);
                hasher.update(size.to_le_bytes());
                let read = |error| PackageError::Read {
                    path: source.join(relative),
                    error,
                };
                // Opened relative to the checked folder, no link followed on the way: what was checked
                // (not a link, not a secret) is what is read, even if the tree changes meanwhile.
                let opened = confined::open_file(source, relative).map_err(read)?;
                {
                    use std::os::unix::fs::MetadataExt;
                    let meta = opened.file.metadata().map_err(read)?;
                    if (meta.dev(), meta.ino()) != *identity {
                        return Err(read(std::io::Error::other(
                            "it was replaced while it was being packaged",
                        )));
                    }
                }
                let mut hashing = Hashing {
                    inner: opened.file,
                    hasher: &mut hasher,
                };
                let copied = zip
                    .add_reader(name, &mut hashing, *size, *executable)
                    .map_err(|e| match e {
                        archive::AddError::Read(e) => read(e),
                        archive::AddError::Zip(e) => write(&e),
                    })?;
                if copied != *size {
                    return Err(read(std::io::Error::other(
                        "it changed while it was being packaged",
                    )));
                }
                files += 1;
            }
            Entry::Link { name, target } => {
                hasher.update(name.as_bytes());
                hasher.update([0, 2, 0]);
                hasher.update((target.len() as u64).to_le_bytes());
                hasher.update(target.as_bytes());
                zip.add_symlink(name, target).map_err(|e| write(&e))?;
                files += 1;
            }
            Entry::Bytes { name, bytes } => {
                hasher.update(name.as_bytes());
                hasher.update([0, 0, 0]);
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(bytes);
                zip.add(name, bytes, false).map_err(|e| write(&e))?;
            }
        }
    }
    let info = PackageInfo {
        name: task.spec.name.clone(),
        version: task.spec.version.clone(),
        content_hash: format!("sha256:{}", hex::encode(hasher.finalize())),
        files,
    };
    let manifest = serde_json::to_vec_pretty(&info).map_err(|e| write(&e))?;
    zip.add(PACKAGE_JSON, &manifest, false)
        .map_err(|e| write(&e))?;
    let mut out = zip.finish().map_err(|e| write(&e))?;
    std::io::Write::flush(&mut out).map_err(|e| write(&e))?;
    Ok(Package {
        info,
        file: Arc::new(PackageFile::new(temp_path).map_err(|e| write(&e))?),
    })
}

fn relative_name(path: &Path, source: &Path) -> String {
    path.strip_prefix(source)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// What one item of the source folder becomes: an entry of the package, or a secret it refuses.
enum Sourced {
    Entry(Entry),
    Secret(String),
}

/// The source folder being packaged, and what may be delivered although it looks secret.
struct SourceFolder<'a> {
    source: &'a Path,
    include_secrets: &'a [String],
    reporter: &'a dyn Reporter,
}

fn source_entries(
    source: &Path,
    include_secrets: &[String],
    reporter: &dyn Reporter,
) -> Result<Vec<Entry>, PackageError> {
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
    let folder = SourceFolder {
        source,
        include_secrets,
        reporter,
    };
    let mut entries = Vec::new();
    let mut secrets = Vec::new();
    for item in walker {
        let item = item.map_err(|e| PackageError::Walk {
            path: source.to_path_buf(),
            message: e.to_string(),
        })?;
        let Some(kind) = item.file_type() else {
            continue;
        };
        match folder.item(item.path(), kind)? {
            Some(Sourced::Entry(entry)) => entries.push(entry),
            Some(Sourced::Secret(secret)) => secrets.push(secret),
            None => {}
        }
    }
    if !secrets.is_empty() {
        secrets.sort();
        return Err(PackageError::Secrets {
            source_dir: source.to_path_buf(),
            count: secrets.len(),
            first: secrets[0]
                .split(" (a ")
                .next()
                .unwrap_or_default()
                .to_string(),
            names: secrets.join(", "),
        });
    }
    Ok(entries)
}

impl SourceFolder<'_> {
    fn included(&self, relative: &str) -> bool {
        self.include_secrets.iter().any(|s| s == relative)
    }

    /// What the item at `path` becomes; `None` for a folder. A name with two spellings, a link that
    /// leaves or a pipe, socket or device is an error.
    fn item(&self, path: &Path, kind: std::fs::FileType) -> Result<Option<Sourced>, PackageError> {
        if kind.is_dir() {
            return Ok(None);
        }
        let relative = relative_name(path, self.source);
        if relative.is_empty() {
            return Ok(None);
        }
        // Every name in a package has one spelling, the same wherever it is unpacked.
        if relative.contains('\\')
            || path
                .strip_prefix(self.source)
                .is_ok_and(|r| r.to_str().is_none())
        {
            return Err(PackageError::Name {
                path: path.to_path_buf(),
                why: if relative.contains('\\') {
                    "holds a backslash, which archives read as a folder separator"
                } else {
                    "is not valid UTF-8, which a zip entry's name must be"
                },
            });
        }
        if kind.is_symlink() {
            return self.link(path, relative).map(Some);
        }
        if !kind.is_file() {
            use std::os::unix::fs::FileTypeExt;
            let what = if kind.is_fifo() {
                "a named pipe (FIFO)"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "a device"
            };
            return Err(PackageError::NotAFile {
                path: path.to_path_buf(),
                what,
            });
        }
        self.file(path, relative).map(Some)
    }

    /// A link stays a link when it leads to something inside the source folder that is no secret.
    fn link(&self, path: &Path, relative: String) -> Result<Sourced, PackageError> {
        let link = Path::new(&relative);
        let written = std::fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        let refuse = |why| PackageError::Link {
            link: path.to_path_buf(),
            target: written.clone(),
            why,
        };
        // Absolute links are read with the source folder's path, as given or with its links resolved.
        let real = std::fs::canonicalize(self.source).unwrap_or_else(|_| self.source.to_path_buf());
        let target = match confined::resolve(self.source, &real, link) {
            Resolution::Inside(target) => target,
            Resolution::Outside(_) => return Err(refuse("which leaves the source folder")),
            Resolution::Dangling(_) => return Err(refuse("which does not exist")),
            Resolution::Loop => return Err(refuse("which is part of a loop of links")),
            Resolution::Unreadable(_) => return Err(refuse("which cannot be read")),
        };
        let target_relative = target.to_string_lossy().into_owned();
        if (is_secret_path(&relative) || is_secret_path(&target_relative))
            && !self.included(&relative)
            && !self.included(&target_relative)
        {
            return Ok(Sourced::Secret(format!(
                "{relative} (a link to {target_relative})"
            )));
        }
        Ok(Sourced::Entry(Entry::Link {
            name: format!("{CODE_PREFIX}{relative}"),
            target: confined::relative_target(link, &target)
                .to_string_lossy()
                .into_owned(),
        }))
    }

    /// A regular file, unless its name or (a small JSON file) its content says it is a secret; one that
    /// looks like data is packaged with a warning.
    fn file(&self, path: &Path, relative: String) -> Result<Sourced, PackageError> {
        if is_secret_path(&relative) && !self.included(&relative) {
            return Ok(Sourced::Secret(relative));
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let read_error = |error| PackageError::Read {
            path: path.to_path_buf(),
            error,
        };
        let meta = std::fs::symlink_metadata(path).map_err(read_error)?;
        // A service-account key is a secret whatever it is called: small JSON files are looked into.
        if file_name.to_ascii_lowercase().ends_with(".json")
            && meta.len() <= crate::config::secrets::SNIFFED_MAX
            && !self.included(&relative)
        {
            let content = confined::open_file(self.source, Path::new(&relative))
                .and_then(|opened| {
                    confined::read_at_most(opened.file, crate::config::secrets::SNIFFED_MAX)
                })
                .map_err(read_error)?;
            if crate::config::secrets::is_service_account_key(&content.0) {
                return Ok(Sourced::Secret(format!(
                    "{relative} (a service-account key)"
                )));
            }
        }
        let extension = Path::new(&file_name)
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if meta.len() >= LARGE_FILE
            || (meta.len() >= DATA_FILE && DATA_EXTENSIONS.contains(&extension.as_str()))
        {
            self.reporter.warn(&format!(
                "{} ({}) is packaged with the code, so it goes into every image and result: data \
                 belongs in a channel ([channels] in the task file); list it in .groundsignore",
                path.display(),
                crate::printer::human_size(meta.len())
            ));
        }
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        Ok(Sourced::Entry(Entry::File {
            name: format!("{CODE_PREFIX}{relative}"),
            source: self.source.to_path_buf(),
            relative: PathBuf::from(&relative),
            identity: (meta.dev(), meta.ino()),
            size: meta.len(),
            executable: meta.permissions().mode() & 0o111 != 0,
        }))
    }
}

#[cfg(test)]
mod tests;
