//! Zip archives, written deterministically and read defensively.
//!
//! Packages must be byte-identical for the same content (their hash names the code), and results come from
//! places we do not control, so unpacking refuses anything that would land outside its folder or expand
//! beyond a bound, before it writes a byte.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

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
    #[error("{archive} is not a readable zip file: {error}")]
    Zip {
        archive: String,
        error: ::zip::result::ZipError,
    },
    #[error("unpacking {archive} into {dest}: {error}")]
    Io {
        archive: String,
        dest: PathBuf,
        error: std::io::Error,
    },
}

/// Files whose formats are compressed already (by their extension): archives, columnar data, pictures.
pub fn already_compressed(name: &str) -> bool {
    const COMPRESSED: &[&str] = &[
        "zip", "gz", "tgz", "bz2", "xz", "zst", "zstd", "lz4", "7z", "parquet", "png", "jpg",
        "jpeg", "gif", "webp", "avif", "mp3", "mp4", "ogg", "woff2", "whl", "jar",
    ];
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| COMPRESSED.iter().any(|c| ext.eq_ignore_ascii_case(c)))
}

/// Writes zip entries with fixed time stamps and modes, so that equal content gives equal bytes.
pub struct DeterministicZip<W: Write + Seek> {
    writer: ZipWriter<W>,
}

/// Entries this large need the zip64 format; smaller ones are written without it, as before.
const ZIP64_FROM: u64 = 0xFFFF_FFFF;
/// Entries from this size on are compressed at the fastest level.
const FAST_FROM: u64 = 64 << 20;

impl<W: Write + Seek> DeterministicZip<W> {
    pub fn new(inner: W) -> Self {
        DeterministicZip {
            writer: ZipWriter::new(inner),
        }
    }

    fn options(name: &str, executable: bool, size: u64) -> SimpleFileOptions {
        let options = SimpleFileOptions::default();
        let options = if already_compressed(name) {
            // Deflating compressed bytes again costs time and wins nothing: stored as they are.
            options.compression_method(CompressionMethod::Stored)
        } else {
            options
                .compression_method(CompressionMethod::Deflated)
                // Large entries (data, checkpoints, long logs) at the fastest level: several times
                // faster, and still deterministic.
                .compression_level(Some(if size >= FAST_FROM { 1 } else { 6 }))
        };
        options
            .last_modified_time(DateTime::default())
            .unix_permissions(if executable { 0o755 } else { 0o644 })
            .large_file(size >= ZIP64_FROM)
    }

    pub fn add(
        &mut self,
        name: &str,
        bytes: &[u8],
        executable: bool,
    ) -> ::zip::result::ZipResult<()> {
        self.writer
            .start_file(name, Self::options(name, executable, bytes.len() as u64))?;
        self.writer.write_all(bytes)?;
        Ok(())
    }

    /// Streams `size` bytes (as far as known: a larger stream is written with zip64 too) from `reader`
    /// into a new entry. On a read error the entry is taken out again and the archive stays whole.
    pub fn add_reader(
        &mut self,
        name: &str,
        reader: &mut dyn Read,
        size: u64,
        executable: bool,
    ) -> Result<u64, AddError> {
        self.writer
            .start_file(name, Self::options(name, executable, size))
            .map_err(AddError::Zip)?;
        let mut buffer = vec![0u8; 1 << 16];
        let mut copied: u64 = 0;
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.writer.abort_file().map_err(AddError::Zip)?;
                    return Err(AddError::Read(e));
                }
            };
            if copied + n as u64 >= ZIP64_FROM && size < ZIP64_FROM {
                // The file grew past what a plain entry can hold: it cannot be stored as it is now.
                self.writer.abort_file().map_err(AddError::Zip)?;
                return Err(AddError::Read(std::io::Error::other(
                    "it grew beyond 4 GiB while it was being stored",
                )));
            }
            self.writer
                .write_all(&buffer[..n])
                .map_err(|e| AddError::Zip(e.into()))?;
            copied += n as u64;
        }
        Ok(copied)
    }

    /// A symbolic link entry with a relative target.
    pub fn add_symlink(&mut self, name: &str, target: &str) -> ::zip::result::ZipResult<()> {
        let options = SimpleFileOptions::default()
            .last_modified_time(DateTime::default())
            .unix_permissions(0o777);
        self.writer.add_symlink(name, target, options)
    }

    pub fn finish(self) -> ::zip::result::ZipResult<W> {
        self.writer.finish()
    }
}

/// Why a streamed entry could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// Reading the source failed; the entry was taken out and the archive can go on.
    #[error("{0}")]
    Read(std::io::Error),
    /// Writing the archive failed; it cannot go on.
    #[error("writing the archive: {0}")]
    Zip(::zip::result::ZipError),
}

/// The one spelling of an archive entry's name that every check and every write uses: segments joined by
/// `/`, without `.` segments, empty segments (`a//b`) or a trailing `/` (`model/./x`, `./model//x/` and
/// `model/x` are all `model/x`). A name that cannot be spelled so is refused with the reason: a NUL byte,
/// a backslash (a separator on Windows, so one name could mean two paths), an absolute path or drive,
/// or a `..` segment. The empty string is the folder itself (`./`).
pub fn canonical_name(raw: &str) -> Result<String, &'static str> {
    if raw.contains('\0') {
        return Err("has a NUL byte in its name");
    }
    if raw.contains('\\') {
        return Err("has a backslash in its name (a folder separator on Windows)");
    }
    if raw.starts_with('/') {
        return Err("has an absolute path");
    }
    let bytes = raw.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err("has an absolute path (a drive letter)");
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in raw.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err("climbs out of the folder with `..`"),
            normal => segments.push(normal),
        }
    }
    Ok(segments.join("/"))
}

/// The longest symbolic link target an archive may hold.
const LINK_TARGET_MAX: u64 = 4096;

/// Why a link entry's target is unsafe, if it is: it must be relative, and walked from the link's folder
/// it must stay inside the archive and pass through no other link (whose own target would then decide
/// where `..` leads).
fn unsafe_link_reason(
    name: &str,
    target: &str,
    links: &std::collections::BTreeSet<String>,
) -> Option<&'static str> {
    if target.is_empty() || target.contains('\0') {
        return Some("is a symbolic link with an empty or NUL-holding target");
    }
    if target.starts_with('/') || target.starts_with('\\') || target.get(1..2) == Some(":") {
        return Some("is a symbolic link to an absolute path");
    }
    let mut stack: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    stack.pop();
    let parts: Vec<&str> = target.split(['/', '\\']).collect();
    for (index, part) in parts.iter().enumerate() {
        match *part {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return Some("is a symbolic link that leads out of the folder");
                }
            }
            normal => {
                stack.push(normal);
                let is_last = parts[index + 1..].iter().all(|p| p.is_empty() || *p == ".");
                if !is_last && links.contains(&stack.join("/")) {
                    return Some("is a symbolic link through another symbolic link");
                }
            }
        }
    }
    None
}

/// An archive checked and unpacked into a fresh folder beside where it is going.
pub struct Staged {
    pub dir: tempfile::TempDir,
    pub written: u64,
}

/// The error of a zip that cannot be read, naming the archive.
fn zip_error(archive: &str) -> impl Fn(::zip::result::ZipError) -> UnpackError + '_ {
    move |error| UnpackError::Zip {
        archive: archive.to_string(),
        error,
    }
}

/// The error of an entry that is refused, naming the archive, the entry and why.
fn unsafe_entry_in(archive: &str) -> impl Fn(&str, &'static str) -> UnpackError + '_ {
    move |entry, reason| UnpackError::UnsafeEntry {
        archive: archive.to_string(),
        entry: entry.to_string(),
        reason,
    }
}

/// An entry of a zip chosen for unpacking, by its index, its name as written and its canonical path
/// below the prefix.
struct SelectedEntry {
    index: usize,
    name: String,
    relative: String,
    is_dir: bool,
    is_link: bool,
}

/// The entries under a prefix, checked, and which of them are links.
struct Selection {
    entries: Vec<SelectedEntry>,
    links: std::collections::BTreeSet<String>,
}

/// Chooses the entries under `only` and checks them before anything is written: the count, names that
/// would land outside, duplicates, overlong link targets, the declared size, and nothing below a link.
fn select_entries<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    archive_name: &str,
    only: &str,
    limits: Limits,
) -> Result<Selection, UnpackError> {
    let archive = archive_name.to_string();
    let (zip_err, unsafe_entry) = (zip_error(archive_name), unsafe_entry_in(archive_name));
    if zip.len() > limits.max_entries {
        return Err(UnpackError::TooManyEntries {
            archive,
            count: zip.len(),
            limit: limits.max_entries,
        });
    }
    let mut declared: u64 = 0;
    let mut entries = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let mut links = std::collections::BTreeSet::new();
    // Every check below and every path written uses the canonical name, so a name spelled another way
    // (`model/./x`, `model//x`) cannot be judged as one path and written as another.
    let only = canonical_name(only).map_err(|reason| unsafe_entry(only, reason))?;
    for index in 0..zip.len() {
        let file = zip.by_index_raw(index).map_err(&zip_err)?;
        let name = file.name().to_string();
        let canonical = canonical_name(&name).map_err(|reason| unsafe_entry(&name, reason))?;
        if canonical.is_empty() {
            return Err(unsafe_entry(&name, "has an empty name"));
        }
        let relative = if only.is_empty() {
            canonical
        } else {
            match canonical.strip_prefix(&only) {
                Some(rest) if rest.starts_with('/') => rest[1..].to_string(),
                _ => continue,
            }
        };
        let is_link = file
            .unix_mode()
            .is_some_and(|mode| mode & 0o170000 == 0o120000);
        if is_link && file.size() > LINK_TARGET_MAX {
            return Err(unsafe_entry(
                &name,
                "is a symbolic link with an overlong target",
            ));
        }
        if !names.insert(relative.clone()) {
            return Err(unsafe_entry(&name, "appears twice"));
        }
        if is_link {
            links.insert(relative.clone());
        }
        declared = declared.saturating_add(file.size());
        if declared > limits.max_bytes {
            return Err(UnpackError::TooLarge {
                archive,
                limit: limits.max_bytes,
            });
        }
        entries.push(SelectedEntry {
            index,
            name,
            relative,
            is_dir: file.is_dir(),
            is_link,
        });
    }
    // Nothing may be written through a link: no entry lies below one.
    for entry in &entries {
        let mut prefix = String::new();
        for part in entry.relative.split('/') {
            if !prefix.is_empty() && links.contains(&prefix) {
                return Err(unsafe_entry(&entry.name, "lies below a symbolic link"));
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
        }
    }
    Ok(Selection { entries, links })
}

/// Unpacks entries under `only` (a prefix like `code/`, stripped; or everything with `""`) into a new
/// hidden folder in `parent`, after checking every entry: names that would land outside (absolute, `..`),
/// links that would lead outside or that other entries lie below, duplicates, and the bounds. The folder
/// is removed again when the result is dropped, so a failure leaves nothing behind.
pub fn unpack_staged<R: Read + Seek>(
    reader: R,
    archive_name: &str,
    only: &str,
    parent: &Path,
    limits: Limits,
) -> Result<Staged, UnpackError> {
    let archive = archive_name.to_string();
    let (zip_err, unsafe_entry) = (zip_error(archive_name), unsafe_entry_in(archive_name));
    let mut zip = ZipArchive::new(reader).map_err(&zip_err)?;
    let Selection { entries, links } = select_entries(&mut zip, archive_name, only, limits)?;

    let io_err = |dest: &Path, error| UnpackError::Io {
        archive: archive_name.to_string(),
        dest: dest.to_path_buf(),
        error,
    };
    std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(parent)
        .map_err(|e| io_err(parent, e))?;
    let mut written: u64 = 0;
    let mut link_targets = Vec::new();
    for SelectedEntry {
        index,
        name,
        relative,
        is_dir,
        is_link,
    } in entries
    {
        let target = staging.path().join(&relative);
        if is_dir {
            std::fs::create_dir_all(&target).map_err(|e| io_err(&target, e))?;
            continue;
        }
        let mut file = zip.by_index(index).map_err(&zip_err)?;
        if is_link {
            let mut text = String::new();
            (&mut file)
                .take(LINK_TARGET_MAX)
                .read_to_string(&mut text)
                .map_err(|e| io_err(&target, e))?;
            if let Some(reason) = unsafe_link_reason(&relative, &text, &links) {
                return Err(unsafe_entry(&name, reason));
            }
            link_targets.push((target, text));
            continue;
        }
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let mode = file.unix_mode();
        let mut out = std::fs::File::create(&target).map_err(|e| io_err(&target, e))?;
        // Declared sizes can lie: count what really comes out.
        let budget = limits.max_bytes.saturating_sub(written);
        let copied = std::io::copy(&mut (&mut file).take(budget.saturating_add(1)), &mut out)
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
    // Links last, once everything they may point at is in place.
    for (target, text) in link_targets {
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        std::os::unix::fs::symlink(&text, &target).map_err(|e| io_err(&target, e))?;
    }
    Ok(Staged {
        dir: staging,
        written,
    })
}

/// Unpacks entries under `only` (see [`unpack_staged`]) into `dest`, replacing what is there. Either all
/// of it is written, or nothing is changed and nothing is left beside it.
pub fn unpack<R: Read + Seek>(
    reader: R,
    archive_name: &str,
    only: &str,
    dest: &Path,
    limits: Limits,
) -> Result<u64, UnpackError> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staged = unpack_staged(reader, archive_name, only, parent, limits)?;
    let io_err = |error| UnpackError::Io {
        archive: archive_name.to_string(),
        dest: dest.to_path_buf(),
        error,
    };
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(dest).map_err(io_err)?,
        Ok(_) => std::fs::remove_file(dest).map_err(io_err)?,
        Err(_) => {}
    }
    std::fs::rename(staged.dir.path(), dest).map_err(io_err)?;
    // Renamed away: nothing is left for the drop to remove.
    let _ = staged.dir.keep();
    Ok(staged.written)
}

/// Reads one entry of a zip into memory, at most `max` bytes of it whatever its header claims; `None`
/// when it is not there.
pub fn read_entry<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
    max: u64,
) -> Result<Option<Vec<u8>>, ReadEntryError> {
    match zip.by_name(name) {
        Ok(file) => {
            let mut bytes = Vec::new();
            file.take(max.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|e| ReadEntryError::Zip(e.into()))?;
            if bytes.len() as u64 > max {
                return Err(ReadEntryError::TooLarge {
                    name: name.to_string(),
                    max,
                });
            }
            Ok(Some(bytes))
        }
        Err(::zip::result::ZipError::FileNotFound) => Ok(None),
        Err(e) => Err(ReadEntryError::Zip(e)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadEntryError {
    #[error("{name} is larger than the {max} bytes it may have")]
    TooLarge { name: String, max: u64 },
    #[error(transparent)]
    Zip(::zip::result::ZipError),
}

mod files;
pub mod tar;
#[cfg(test)]
mod tests;

pub use files::{files_below, files_of, FilesBelowError};
