//! Tar streams, for engines that do not share this machine's disk: written to a temporary file with the
//! owner the container runs as, and unpacked defensively (nothing lands outside its folder; links kept
//! only where the caller collects them through [`crate::confined`] afterwards).

use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// One entry of a tar to write.
#[derive(Debug, Clone)]
pub enum TarItem {
    Dir(String),
    /// The entry's name, and the file whose content and mode it takes.
    File(String, PathBuf),
}

/// Every folder and regular file below `root` (links are not part of a layout grounds writes), under
/// `prefix`, folders first.
pub fn tree_items(root: &Path, prefix: &str) -> std::io::Result<Vec<TarItem>> {
    fn walk(dir: &Path, name: &str, items: &mut Vec<TarItem>) -> std::io::Result<()> {
        items.push(TarItem::Dir(name.to_string()));
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child = format!("{name}/{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(&entry.path(), &child, items)?;
            } else if kind.is_file() {
                items.push(TarItem::File(child, entry.path()));
            }
        }
        Ok(())
    }
    let mut items = Vec::new();
    walk(root, prefix.trim_end_matches('/'), &mut items)?;
    Ok(items)
}

/// The folders files at these names need, each once, in order, then the files.
pub fn file_items(files: &[(String, PathBuf)]) -> Vec<TarItem> {
    let mut dirs = std::collections::BTreeSet::new();
    for (name, _) in files {
        let mut path = Path::new(name).parent();
        while let Some(dir) = path.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_string_lossy().into_owned());
            path = dir.parent();
        }
    }
    dirs.into_iter()
        .map(TarItem::Dir)
        .chain(
            files
                .iter()
                .map(|(name, path)| TarItem::File(name.clone(), path.clone())),
        )
        .collect()
}

/// A file read as exactly the size its header declares: one that shrinks or grows while it is read is an
/// error naming it, never a stream whose entries no longer line up with their headers.
pub struct Exact<R> {
    inner: R,
    remaining: u64,
    path: PathBuf,
}

impl<R: Read> Exact<R> {
    pub fn new(inner: R, size: u64, path: &Path) -> Self {
        Exact {
            inner,
            remaining: size,
            path: path.to_path_buf(),
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            // The declared end: anything more means the file grew while it was read.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "{} grew while it was being sent; run again once it is written",
                    self.path.display()
                ))),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "{} shrank while it was being sent; run again once it is written",
                self.path.display()
            )));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Writes a tar of `items`, owned by `owner` (uid, gid), into a temporary file, rewound. Returns the file
/// and the bytes of file content in it.
pub fn write(items: &[TarItem], owner: (u32, u32)) -> std::io::Result<(std::fs::File, u64)> {
    let mut builder = ::tar::Builder::new(BufWriter::new(tempfile::tempfile()?));
    let mut content = 0;
    for item in items {
        let mut header = ::tar::Header::new_gnu();
        header.set_uid(u64::from(owner.0));
        header.set_gid(u64::from(owner.1));
        match item {
            TarItem::Dir(name) => {
                header.set_entry_type(::tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                header.set_mtime(0);
                builder.append_data(&mut header, format!("{name}/"), std::io::empty())?;
            }
            TarItem::File(name, path) => {
                use std::os::unix::fs::MetadataExt;
                let file = std::fs::File::open(path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))
                })?;
                let meta = file.metadata()?;
                header.set_entry_type(::tar::EntryType::Regular);
                // Readable by the job whoever it runs as; executable where the source is.
                header.set_mode((meta.mode() & 0o777) | 0o644);
                header.set_size(meta.len());
                header.set_mtime(meta.mtime().max(0) as u64);
                builder.append_data(&mut header, name, Exact::new(file, meta.len(), path))?;
                content += meta.len();
            }
        }
    }
    let mut file = builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?;
    file.flush()?;
    file.rewind()?;
    Ok((file, content))
}

/// The most the headers of one entry may take (its name, link name and extended attributes: a PAX or
/// GNU long-name header is read into memory whole, so its size is bounded before it is read).
const HEADERS_MAX: u64 = 1 << 20;

/// Counts what a tar stream gives: every byte against the archive's bound, and the bytes read while the
/// next entry's headers are looked for against [`HEADERS_MAX`]. Past a bound it fails the read, which
/// ends the unpacking before the bytes are used.
struct Metered<R> {
    inner: R,
    meter: std::rc::Rc<Meter>,
}

#[derive(Default)]
struct Meter {
    total: std::cell::Cell<u64>,
    in_headers: std::cell::Cell<Option<u64>>,
    max_total: u64,
    tripped: std::cell::Cell<Option<Tripped>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tripped {
    Total,
    Headers,
}

impl Tripped {
    /// Why the rest of an archive was not unpacked, `max_bytes` being the bound on its content.
    fn reason(self, max_bytes: u64) -> String {
        match self {
            Tripped::Total => format!(
                "the archive holds more than the bound of {max_bytes} bytes: the rest of it was not \
                 unpacked"
            ),
            Tripped::Headers => format!(
                "an entry's headers (its name or extended attributes) are larger than {HEADERS_MAX} \
                 bytes: the rest of the archive was not unpacked"
            ),
        }
    }
}

/// Unpacks an entry (`name`, canonical) into `into`; false when it would land outside (`unpack_in`
/// refuses that, links on the way included). Never half a file: on an error, what was written of this
/// one goes, whatever stopped it.
fn unpack_whole<R: Read>(
    entry: &mut ::tar::Entry<'_, R>,
    into: &Path,
    name: &str,
) -> std::io::Result<bool> {
    let is_file = entry.header().entry_type().is_file();
    entry.unpack_in(into).inspect_err(|_| {
        let written = into.join(name);
        if is_file && std::fs::symlink_metadata(&written).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(&written);
        }
    })
}

/// Why an entry of a downloaded tar is left out, or none when it is unpacked (an empty name, the root,
/// is neither). `canonical` is its name made canonical, or why that failed.
fn left_out_reason<R: Read>(
    entry: &::tar::Entry<'_, R>,
    canonical: &Result<String, &'static str>,
    keep_links: bool,
) -> Option<String> {
    let kind = entry.header().entry_type();
    match canonical {
        Err(reason) => Some(format!("an entry of the archive that {reason}: left out")),
        Ok(name) if name.is_empty() => None,
        Ok(_) if (kind.is_symlink() || kind.is_hard_link()) && !keep_links => Some(
            "a link in the archive: links in downloaded archives are not followed".to_string(),
        ),
        // A hard link names a file of the archive as the archive names it: one in the same top
        // folder as itself (`model/a` to `model/b`), never one of the job's other folders.
        Ok(name) if kind.is_hard_link() => match entry
            .link_name_bytes()
            .map(|target| super::canonical_name(&String::from_utf8_lossy(&target)))
        {
            Some(Ok(target))
                if !target.is_empty() && target.split('/').next() == name.split('/').next() =>
            {
                None
            }
            _ => Some(
                "a hard link to something that is not a file of its folder in the archive: left out"
                    .to_string(),
            ),
        },
        Ok(_) if !(kind.is_file() || kind.is_dir() || kind.is_symlink() || kind.is_hard_link()) => {
            Some("not a regular file or folder in the archive".to_string())
        }
        Ok(_) => None,
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let meter = &self.meter;
        meter.total.set(meter.total.get() + n as u64);
        if meter.total.get() > meter.max_total {
            meter.tripped.set(Some(Tripped::Total));
            return Err(std::io::Error::other(
                "the archive is larger than its bound",
            ));
        }
        if let Some(read) = meter.in_headers.get() {
            let read = read + n as u64;
            meter.in_headers.set(Some(read));
            if read > HEADERS_MAX {
                meter.tripped.set(Some(Tripped::Headers));
                return Err(std::io::Error::other(
                    "an entry's headers are larger than their bound",
                ));
            }
        }
        Ok(n)
    }
}

/// What unpacking a tar left out, as (`prefix/name`, reason).
pub type LeftOut = Vec<(String, String)>;

/// Unpacks a tar into `into`: folders, regular files and, with `keep_links`, symbolic links and hard links
/// to files of the archive (which must be collected through [`crate::confined`] afterwards). Every name is
/// judged in its canonical form ([`super::canonical_name`]); entries that would land outside, devices,
/// pipes and (without `keep_links`) links are left out and returned as (`prefix/name`, reason); they never
/// fail the unpacking. The archive is held to `limits` (its bytes, its entries) and each entry's headers to
/// a bound: past one, what came before stays, the entry being written is removed (never kept half), and
/// the rest is left out with the reason.
pub fn unpack<R: Read>(
    reader: R,
    into: &Path,
    prefix: &str,
    keep_links: bool,
    limits: super::Limits,
) -> anyhow::Result<LeftOut> {
    use anyhow::Context;
    std::fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    let named = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else if name.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    };
    let beyond = |tripped: Tripped| tripped.reason(limits.max_bytes);
    // The bound is on the content; every entry may add its header, long names and padding.
    let overhead = (limits.max_entries as u64).saturating_mul(3 * 512);
    let meter = std::rc::Rc::new(Meter {
        max_total: limits.max_bytes.saturating_add(overhead),
        ..Meter::default()
    });
    let mut left_out = Vec::new();
    let mut archive = ::tar::Archive::new(Metered {
        inner: reader,
        meter: meter.clone(),
    });
    archive.set_preserve_permissions(false);
    archive.set_overwrite(true);
    let mut entries = archive.entries().context("not a tar archive")?;
    let mut count = 0usize;
    loop {
        meter.in_headers.set(Some(0));
        let next = entries.next();
        meter.in_headers.set(None);
        let mut entry = match next {
            None => break,
            Some(Ok(entry)) => entry,
            Some(Err(e)) => {
                let reason = match meter.tripped.get() {
                    Some(tripped) => beyond(tripped),
                    None if count == 0 => return Err(e).context("not a tar archive"),
                    None => format!("the archive could not be read past this point ({e})"),
                };
                left_out.push((named(""), reason));
                break;
            }
        };
        count += 1;
        if count > limits.max_entries {
            left_out.push((
                named(""),
                format!(
                    "the archive holds more than the bound of {} entries: the rest of it was not \
                     unpacked",
                    limits.max_entries
                ),
            ));
            break;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let canonical = if std::str::from_utf8(&entry.path_bytes()).is_err() {
            Err("has a name that is not valid UTF-8")
        } else {
            super::canonical_name(&raw)
        };
        let why = left_out_reason(&entry, &canonical, keep_links);
        let shown = named(canonical.as_deref().unwrap_or(&raw));
        if let Some(why) = why {
            left_out.push((shown, why));
        } else if canonical.as_deref().is_ok_and(|name| !name.is_empty()) {
            match unpack_whole(&mut entry, into, canonical.as_deref().unwrap_or_default()) {
                Ok(true) => {}
                Ok(false) => left_out.push((
                    shown,
                    "an entry of the archive that would land outside the result".to_string(),
                )),
                Err(e) => {
                    if let Some(tripped) = meter.tripped.get() {
                        left_out.push((shown, beyond(tripped)));
                        break;
                    }
                    left_out.push((shown, format!("could not be unpacked ({e})")));
                }
            }
        }
        // What the entry did not read is read here, counted, so that looking for the next entry's
        // headers reads headers only.
        if let Err(e) = std::io::copy(&mut entry, &mut std::io::sink()) {
            let reason = match meter.tripped.get() {
                Some(tripped) => beyond(tripped),
                None => format!("the archive could not be read past this point ({e})"),
            };
            left_out.push((named(""), reason));
            break;
        }
    }
    Ok(left_out)
}
