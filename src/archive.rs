//! Zip archives, written deterministically and read defensively.
//!
//! Packages must be byte-identical for the same content (their hash names the code), and results come from
//! places we do not control, so unpacking refuses anything that would land outside its folder or expand
//! beyond a bound, before it writes a byte.

use std::io::{Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

use ::zip::write::SimpleFileOptions;
use ::zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// Bounds on what one archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 << 30,
            max_entries: 200_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("refusing to unpack {archive}: entry `{entry}` {reason}")]
    UnsafeEntry {
        archive: String,
        entry: String,
        reason: &'static str,
    },
    #[error(
        "refusing to unpack {archive}: it would expand to more than {limit} bytes (raise the bound with \
         --max-bytes if you trust it)"
    )]
    TooLarge { archive: String, limit: u64 },
    #[error(
        "refusing to unpack {archive}: it has {count} entries, more than the bound of {limit}"
    )]
    TooManyEntries {
        archive: String,
        count: usize,
        limit: usize,
    },
    #[error("{archive} is not a readable zip file: {source}")]
    Zip {
        archive: String,
        source: ::zip::result::ZipError,
    },
    #[error("unpacking {archive} into {dest}: {source}")]
    Io {
        archive: String,
        dest: PathBuf,
        source: std::io::Error,
    },
}

/// Writes zip entries with fixed time stamps and modes, so that equal content gives equal bytes.
pub struct DeterministicZip<W: Write + Seek> {
    writer: ZipWriter<W>,
}

impl<W: Write + Seek> DeterministicZip<W> {
    pub fn new(inner: W) -> Self {
        DeterministicZip {
            writer: ZipWriter::new(inner),
        }
    }

    fn options(executable: bool) -> SimpleFileOptions {
        SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(DateTime::default())
            .unix_permissions(if executable { 0o755 } else { 0o644 })
            .large_file(false)
    }

    pub fn add(
        &mut self,
        name: &str,
        bytes: &[u8],
        executable: bool,
    ) -> ::zip::result::ZipResult<()> {
        self.writer.start_file(name, Self::options(executable))?;
        self.writer.write_all(bytes)?;
        Ok(())
    }

    /// Streams a file from disk into the archive (for results, whose files may be large).
    pub fn add_file(&mut self, name: &str, path: &Path) -> ::zip::result::ZipResult<()> {
        let options = Self::options(is_executable(path)).large_file(true);
        self.writer.start_file(name, options)?;
        let mut file = std::fs::File::open(path)?;
        std::io::copy(&mut file, &mut self.writer)?;
        Ok(())
    }

    /// Adds every file below `dir` under `prefix/`, in sorted order; symlinks are followed.
    pub fn add_tree(&mut self, prefix: &str, dir: &Path) -> ::zip::result::ZipResult<()> {
        for (relative, path) in files_below(dir)? {
            self.add_file(&format!("{prefix}/{relative}"), &path)?;
        }
        Ok(())
    }

    pub fn finish(self) -> ::zip::result::ZipResult<W> {
        self.writer.finish()
    }
}

/// Every regular file below `dir` (following symlinks), as (`a/b.txt`, full path), sorted by name.
pub fn files_below(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    if dir.exists() {
        walk(dir, "", &mut found)?;
    }
    found.sort();
    Ok(found)
}

fn walk(dir: &Path, prefix: &str, found: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            walk(&path, &relative, found)?;
        } else if meta.is_file() {
            found.push((relative, path));
        }
    }
    Ok(())
}

#[cfg(unix)]
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Why an entry name is unsafe to unpack, if it is.
fn unsafe_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("has an empty name");
    }
    if name.contains('\0') {
        return Some("has a NUL byte in its name");
    }
    if name.starts_with('/') || name.starts_with('\\') || name.get(1..2) == Some(":") {
        return Some("has an absolute path");
    }
    let path = Path::new(name);
    for component in path.components() {
        match component {
            Component::ParentDir => return Some("climbs out of the folder with `..`"),
            Component::RootDir | Component::Prefix(_) => return Some("has an absolute path"),
            _ => {}
        }
    }
    if name.split(['/', '\\']).any(|part| part == "..") {
        return Some("climbs out of the folder with `..`");
    }
    None
}

/// Unpacks entries under `only` (a prefix like `code/`, stripped; or everything with `""`) into `dest`,
/// after checking every entry. Either all of it is written, or nothing is left in `dest`'s place.
pub fn unpack<R: Read + Seek>(
    reader: R,
    archive_name: &str,
    only: &str,
    dest: &Path,
    limits: Limits,
) -> Result<u64, UnpackError> {
    let archive = archive_name.to_string();
    let zip_err = |source| UnpackError::Zip {
        archive: archive.clone(),
        source,
    };
    let mut zip = ZipArchive::new(reader).map_err(zip_err)?;
    if zip.len() > limits.max_entries {
        return Err(UnpackError::TooManyEntries {
            archive,
            count: zip.len(),
            limit: limits.max_entries,
        });
    }
    let mut declared: u64 = 0;
    let mut selected = Vec::new();
    for index in 0..zip.len() {
        let file = zip.by_index_raw(index).map_err(zip_err)?;
        let name = file.name().to_string();
        if let Some(reason) = unsafe_reason(&name) {
            return Err(UnpackError::UnsafeEntry {
                archive,
                entry: name,
                reason,
            });
        }
        let is_symlink = file
            .unix_mode()
            .is_some_and(|mode| mode & 0o170000 == 0o120000);
        if is_symlink {
            return Err(UnpackError::UnsafeEntry {
                archive,
                entry: name,
                reason: "is a symbolic link",
            });
        }
        let Some(relative) = name.strip_prefix(only) else {
            continue;
        };
        if relative.is_empty() {
            continue;
        }
        declared = declared.saturating_add(file.size());
        if declared > limits.max_bytes {
            return Err(UnpackError::TooLarge {
                archive,
                limit: limits.max_bytes,
            });
        }
        selected.push((index, relative.to_string(), file.is_dir()));
    }

    let io_err = |dest: &Path, source| UnpackError::Io {
        archive: archive_name.to_string(),
        dest: dest.to_path_buf(),
        source,
    };
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(parent)
        .map_err(|e| io_err(parent, e))?;
    let mut written: u64 = 0;
    for (index, relative, is_dir) in selected {
        let target = staging.path().join(&relative);
        if is_dir {
            std::fs::create_dir_all(&target).map_err(|e| io_err(&target, e))?;
            continue;
        }
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let mut file = zip.by_index(index).map_err(zip_err)?;
        let mode = file.unix_mode();
        let mut out = std::fs::File::create(&target).map_err(|e| io_err(&target, e))?;
        // Declared sizes can lie: count what really comes out.
        let budget = limits.max_bytes - written;
        let copied = std::io::copy(&mut (&mut file).take(budget + 1), &mut out)
            .map_err(|e| io_err(&target, e))?;
        if copied > budget {
            return Err(UnpackError::TooLarge {
                archive,
                limit: limits.max_bytes,
            });
        }
        written += copied;
        #[cfg(unix)]
        if let Some(mode) = mode {
            use std::os::unix::fs::PermissionsExt;
            let perms =
                std::fs::Permissions::from_mode(if mode & 0o111 != 0 { 0o755 } else { 0o644 });
            std::fs::set_permissions(&target, perms).map_err(|e| io_err(&target, e))?;
        }
    }
    let staged = staging.keep();
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| io_err(dest, e))?;
    }
    std::fs::rename(&staged, dest).map_err(|e| io_err(dest, e))?;
    Ok(written)
}

/// Reads one entry of a zip into memory; `None` when it is not there.
pub fn read_entry<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
) -> ::zip::result::ZipResult<Option<Vec<u8>>> {
    match zip.by_name(name) {
        Ok(mut file) => {
            let mut bytes = Vec::with_capacity(file.size() as usize);
            file.read_to_end(&mut bytes)?;
            Ok(Some(bytes))
        }
        Err(::zip::result::ZipError::FileNotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = DeterministicZip::new(Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            zip.add(name, bytes, false).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn same_content_gives_same_bytes() {
        let a = zip_with(&[("a.txt", b"hello"), ("b/c.txt", b"world")]);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = zip_with(&[("a.txt", b"hello"), ("b/c.txt", b"world")]);
        assert_eq!(a, b);
    }

    #[test]
    fn unpacks_a_prefix_only() {
        let bytes = zip_with(&[("code/a.py", b"print(1)"), ("task.json", b"{}")]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        unpack(
            Cursor::new(bytes),
            "p.zip",
            "code/",
            &dest,
            Limits::default(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("a.py")).unwrap(),
            "print(1)"
        );
        assert!(!dest.join("task.json").exists());
    }

    #[test]
    fn refuses_escaping_entries_and_writes_nothing() {
        for name in ["../evil.txt", "/etc/evil", "a/../../evil", "C:/evil"] {
            let bytes = zip_with(&[("fine.txt", b"ok"), (name, b"x")]);
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("out");
            let err =
                unpack(Cursor::new(bytes), "bad.zip", "", &dest, Limits::default()).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
            assert!(!dest.exists(), "nothing is written for {name}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn refuses_symlinks() {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        writer
            .add_symlink("link", "/etc/passwd", SimpleFileOptions::default())
            .unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(
            Cursor::new(bytes),
            "l.zip",
            "",
            &dir.path().join("o"),
            Limits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn refuses_archives_beyond_the_bound() {
        let big = vec![0u8; 10_000];
        let bytes = zip_with(&[("a", &big), ("b", &big)]);
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_bytes: 15_000,
            max_entries: 10,
        };
        let err = unpack(
            Cursor::new(bytes.clone()),
            "bomb.zip",
            "",
            &dir.path().join("o"),
            limits,
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
        let limits = Limits {
            max_bytes: 1 << 20,
            max_entries: 1,
        };
        let err = unpack(
            Cursor::new(bytes),
            "many.zip",
            "",
            &dir.path().join("o"),
            limits,
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::TooManyEntries { .. }), "{err}");
    }
}
