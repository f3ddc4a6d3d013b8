//! `results open`: a stored result unpacked into a folder for a person to look at, every entry checked
//! first; a folder that holds the result already gets back what is missing and keeps what the user added.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{Store, JOB_JSON_MAX};
use grounds_job::archive::{self, Limits};

impl Store {
    /// The files of a stored result's folder, for a `result://ID/model|output` channel: the result
    /// (`id`: an id or a unique prefix) must be completed; it is unpacked once, with every entry checked,
    /// into the cache entry `$GROUNDS_HOME/cache/results/<id>` ([`crate::store::cache::entry`]: unpacked again
    /// when it is not whole) and the folder returned with the result's full id and the entry, held until
    /// the job has read it.
    pub fn result_folder(
        &self,
        id: &str,
        folder: crate::config::task::ResultFolder,
        reporter: &dyn crate::printer::Reporter,
    ) -> anyhow::Result<(String, PathBuf, crate::store::cache::Held)> {
        let full = self.resolve(id)?;
        let stored = self.read(&full)?;
        if stored.job.status != crate::job::Status::Completed {
            bail!(
                "result {full} is {}: only a completed result can feed a channel (run it again, or name \
                 another result)",
                stored.job.status
            );
        }
        let inside = folder.path_in_result();
        let prefix = format!("{inside}/");
        if !stored
            .files
            .iter()
            .any(|(name, _)| name.starts_with(&prefix))
        {
            bail!("result {full} has no files in {inside}/: its job wrote none there");
        }
        let dest = self.home.join("cache").join("results").join(&full);
        let path = self.result_path(&full);
        let held = crate::store::cache::entry(&dest, reporter, |parent| {
            let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let staged = archive::unpack_staged(
                BufReader::new(file),
                &path.display().to_string(),
                "",
                parent,
                Limits::default(),
            )?;
            Ok(staged.dir)
        })
        .with_context(|| format!("unpacking result {full} for its {inside}/ files"))?;
        Ok((full, dest.join(inside), held))
    }

    /// Unpacks a result into `dest`, checking every entry first. A new or empty folder gets the result; a
    /// folder that already holds this result (the default one, or one whose `job.json` is this result's)
    /// gets back what is missing and keeps every file a user added there. A file of the result that was
    /// changed there is never overwritten: nothing is changed and the error names it. A link as `dest` is
    /// followed. Nothing is left beside `dest` when it fails.
    pub fn open_into(
        &self,
        id: &str,
        dest: &Path,
        ours: bool,
        limits: Limits,
    ) -> anyhow::Result<Opened> {
        let dest = match std::fs::symlink_metadata(dest) {
            Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(dest)
                .with_context(|| {
                    format!(
                        "{} is a symbolic link to {}, which does not exist: create that folder or give \
                         another one",
                        dest.display(),
                        std::fs::read_link(dest)
                            .map(|t| t.display().to_string())
                            .unwrap_or_default()
                    )
                })?,
            _ => std::path::absolute(dest)
                .with_context(|| format!("finding the folder {}", dest.display()))?,
        };
        let existing = match std::fs::symlink_metadata(&dest) {
            Ok(meta) if meta.is_dir() => Some(
                std::fs::read_dir(&dest)
                    .with_context(|| format!("reading {}", dest.display()))?
                    .next()
                    .is_some(),
            ),
            Ok(_) => bail!(
                "{} exists and is not a folder: give a new or empty folder",
                dest.display()
            ),
            Err(_) => None,
        };
        let path = self.result_path(id);
        let job_json = {
            let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let mut zip = ::zip::ZipArchive::new(BufReader::new(file))
                .with_context(|| format!("{} is not a readable result zip", path.display()))?;
            archive::read_entry(&mut zip, "job.json", JOB_JSON_MAX)
                .with_context(|| format!("{}: job.json cannot be read", path.display()))?
        };
        if existing == Some(true) && !ours {
            let theirs = grounds_job::confined::open_file(&dest, Path::new("job.json"))
                .and_then(|opened| grounds_job::confined::read_at_most(opened.file, JOB_JSON_MAX))
                .ok()
                .map(|(bytes, _)| bytes);
            if theirs.is_none() || theirs != job_json {
                bail!(
                    "{} exists and is not empty (and holds no earlier opening of {id}): give a new or \
                     empty folder",
                    dest.display()
                );
            }
        }
        let parent = dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let staged = archive::unpack_staged(
            BufReader::new(file),
            &path.display().to_string(),
            "",
            &parent,
            limits,
        )?;
        match existing {
            None | Some(false) => {
                if existing.is_some() {
                    std::fs::remove_dir(&dest).with_context(|| {
                        format!("replacing the empty folder {}", dest.display())
                    })?;
                }
                std::fs::rename(staged.dir.path(), &dest)
                    .with_context(|| format!("moving the result into {}", dest.display()))?;
                let _ = staged.dir.keep();
                crate::store::cache::sync_dir(&parent)
                    .with_context(|| format!("syncing {}", parent.display()))?;
                Ok(Opened {
                    folder: dest,
                    written: staged.written,
                    restored: 0,
                    kept: Vec::new(),
                })
            }
            Some(true) => refresh(staged, &dest),
        }
    }
}

impl Store {
    /// The files in `folder` (an opening of result `id`) that are not the result's own as it stored them:
    /// added there, or changed (another size, other bytes, another link, a file where a link was).
    pub fn changed_in_opening(&self, id: &str, folder: &Path) -> anyhow::Result<Vec<String>> {
        use std::io::Read;
        let path = self.result_path(id);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut zip = ::zip::ZipArchive::new(BufReader::new(file))
            .with_context(|| format!("{} is not a readable result zip", path.display()))?;
        let mut by_name = std::collections::BTreeMap::new();
        for index in 0..zip.len() {
            let entry = zip.by_index_raw(index)?;
            if let Ok(name) = archive::canonical_name(entry.name()) {
                by_name.insert(name, index);
            }
        }
        let mut changed = Vec::new();
        for relative in
            entries_below(folder).with_context(|| format!("reading {}", folder.display()))?
        {
            let name = relative.to_string_lossy().into_owned();
            let Some(&index) = by_name.get(&name) else {
                changed.push(name);
                continue;
            };
            let mut entry = zip.by_index(index)?;
            let is_link = entry
                .unix_mode()
                .is_some_and(|mode| mode & 0o170000 == 0o120000);
            let here = std::fs::symlink_metadata(folder.join(&relative))?;
            let same = if is_link {
                let mut target = String::new();
                (&mut entry).take(4096).read_to_string(&mut target)?;
                here.file_type().is_symlink()
                    && std::fs::read_link(folder.join(&relative))
                        .is_ok_and(|t| t.as_os_str() == target.as_str())
            } else if here.is_file() && here.len() == entry.size() {
                let mut ours = grounds_job::confined::open_file(folder, &relative)?.file;
                same_bytes(&mut entry, &mut ours)
            } else {
                false
            };
            if !same {
                changed.push(name);
            }
        }
        Ok(changed)
    }
}

/// Whether two streams give the same bytes.
fn same_bytes(a: &mut dyn std::io::Read, b: &mut dyn std::io::Read) -> bool {
    let (mut xa, mut xb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let Ok(na) = a.read(&mut xa) else {
            return false;
        };
        if na == 0 {
            return matches!(b.read(&mut xb[..1]), Ok(0));
        }
        if b.read_exact(&mut xb[..na]).is_err() || xa[..na] != xb[..na] {
            return false;
        }
    }
}

/// What `results open` did.
#[derive(Debug)]
pub struct Opened {
    pub folder: PathBuf,
    pub written: u64,
    /// Files of the result that were missing from an earlier opening and were put back.
    pub restored: usize,
    /// Files a user added to an earlier opening, kept as they are.
    pub kept: Vec<String>,
}

/// Every file and link below `dir`, relative, without following links.
fn entries_below(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(grounds_job::confined::walk(dir)?
        .into_iter()
        .filter(|(_, meta)| !meta.is_dir())
        .map(|(path, _)| path)
        .collect())
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) else {
        return false;
    };
    if ma.file_type().is_symlink() || mb.file_type().is_symlink() {
        return ma.file_type().is_symlink()
            && mb.file_type().is_symlink()
            && std::fs::read_link(a).ok() == std::fs::read_link(b).ok();
    }
    if !(ma.is_file() && mb.is_file()) || ma.len() != mb.len() {
        return false;
    }
    let (Ok(fa), Ok(fb)) = (
        grounds_job::confined::open_own_file(a),
        grounds_job::confined::open_own_file(b),
    ) else {
        return false;
    };
    same_bytes(&mut BufReader::new(fa.file), &mut BufReader::new(fb.file))
}

/// Puts back into `dest` what is missing of the staged result, keeping whatever else is there.
fn refresh(staged: archive::Staged, dest: &Path) -> anyhow::Result<Opened> {
    let from = staged.dir.path();
    let ours = entries_below(from).context("reading the unpacked result")?;
    let mut missing = Vec::new();
    let mut changed = Vec::new();
    for relative in &ours {
        // Nothing is written through a link a user put in the folder.
        let through_link = relative.ancestors().skip(1).any(|a| {
            !a.as_os_str().is_empty()
                && std::fs::symlink_metadata(dest.join(a)).is_ok_and(|m| !m.is_dir())
        });
        match std::fs::symlink_metadata(dest.join(relative)) {
            _ if through_link => changed.push(relative.display().to_string()),
            Err(_) => missing.push(relative),
            Ok(_) if same_content(&from.join(relative), &dest.join(relative)) => {}
            Ok(_) => changed.push(relative.display().to_string()),
        }
    }
    if !changed.is_empty() {
        let shown: Vec<&str> = changed.iter().take(10).map(String::as_str).collect();
        bail!(
            "{} holds an earlier opening of this result in which {} file(s) were changed ({}{}); nothing \
             was changed: move them away, or open into another folder with --to",
            dest.display(),
            changed.len(),
            shown.join(", "),
            if changed.len() > 10 { ", …" } else { "" }
        );
    }
    for relative in &missing {
        let target = dest.join(relative);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::rename(from.join(relative), &target)
            .with_context(|| format!("putting back {}", target.display()))?;
    }
    let ours: std::collections::BTreeSet<&PathBuf> = ours.iter().collect();
    let kept = entries_below(dest)
        .with_context(|| format!("reading {}", dest.display()))?
        .into_iter()
        .filter(|p| !ours.contains(p))
        .map(|p| p.display().to_string())
        .collect();
    Ok(Opened {
        folder: dest.to_path_buf(),
        written: 0,
        restored: missing.len(),
        kept,
    })
}
