//! Tar streams, for engines that do not share this machine's disk: written to a temporary file with the
//! owner the container runs as, and unpacked defensively (nothing lands outside its folder; links kept
//! only where the caller collects them through [`crate::confined`] afterwards).

use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

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
                builder.append_data(&mut header, name, file.take(meta.len()))?;
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

/// Unpacks a tar into `into`: folders, regular files and, with `keep_links`, symbolic and hard links
/// (which must be collected through [`crate::confined`] afterwards). Entries that would land outside,
/// devices, pipes and (without `keep_links`) links are left out and returned as (`prefix/name`,
/// reason); they never fail the unpacking.
pub fn unpack<R: Read>(
    reader: R,
    into: &Path,
    prefix: &str,
    keep_links: bool,
) -> anyhow::Result<Vec<(String, String)>> {
    use anyhow::Context;
    std::fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    let mut left_out = Vec::new();
    let mut archive = ::tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_overwrite(true);
    for entry in archive.entries().context("not a tar archive")? {
        let mut entry = entry.context("reading the archive")?;
        let path = entry.path().context("reading the archive")?.into_owned();
        let name = if prefix.is_empty() {
            path.display().to_string()
        } else {
            format!("{prefix}/{}", path.display())
        };
        let kind = entry.header().entry_type();
        let why = if path.is_absolute()
            || path.components().any(|c| matches!(c, Component::ParentDir))
        {
            Some("an entry of the archive that would land outside the result")
        } else if (kind.is_symlink() || kind.is_hard_link()) && !keep_links {
            Some("a link in the archive: links in downloaded archives are not followed")
        } else if !(kind.is_file() || kind.is_dir() || kind.is_symlink() || kind.is_hard_link()) {
            Some("not a regular file or folder in the archive")
        } else {
            None
        };
        if let Some(why) = why {
            left_out.push((name, why.to_string()));
            continue;
        }
        // `unpack_in` refuses what would land outside `into`, links on the way included.
        match entry.unpack_in(into) {
            Ok(true) => {}
            Ok(false) => left_out.push((
                name,
                "an entry of the archive that would land outside the result".to_string(),
            )),
            Err(e) => left_out.push((name, format!("could not be unpacked ({e})"))),
        }
    }
    Ok(left_out)
}
