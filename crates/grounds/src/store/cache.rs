//! The local caches under `$GROUNDS_HOME/cache` (`results/`: stored results unpacked for `result://`
//! channels; `s3/views/`: `s3://` channels laid out from downloaded objects) as entries that are used only
//! when whole.
//!
//! An entry is a folder built beside where it goes and renamed into place, its files and the rename made
//! durable, and then described by a manifest (every name, kind, size, inode and modification time). It is
//! trusted only while the folder is exactly what its manifest says: a file changed, added or removed by
//! hand, a build cut off by a crash, or a folder without a manifest is built again. Each entry has a lock
//! file: a run holds it shared for as long as its job reads the entry, a build holds it exclusively, and
//! `grounds cache clear` removes only entries it can lock exclusively at once (the others are in use).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::printer::Reporter;
use grounds_job::owner::{Hold, HoldKind};

/// A cache entry held (shared) while a job reads it: `cache clear` leaves it alone until it is dropped.
#[derive(Debug)]
pub struct Held {
    pub dir: PathBuf,
    _hold: Hold,
}

/// The entries this process holds, so that it never waits for a lock it holds itself.
static HELD: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn held_here(dir: &Path) -> bool {
    HELD.lock().is_ok_and(|held| held.iter().any(|d| d == dir))
}

impl Held {
    fn new(dir: &Path, hold: Hold) -> Held {
        if let Ok(mut held) = HELD.lock() {
            held.push(dir.to_path_buf());
        }
        Held {
            dir: dir.to_path_buf(),
            _hold: hold,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut held) = HELD.lock() {
            if let Some(at) = held.iter().position(|d| d == &self.dir) {
                held.swap_remove(at);
            }
        }
    }
}

/// Waits for the lock of an entry, saying what it waits for when it cannot have it at once.
fn wait(lock: &Path, kind: HoldKind, dir: &Path, reporter: &dyn Reporter) -> anyhow::Result<Hold> {
    if let Some(hold) =
        Hold::try_take(lock, kind).with_context(|| format!("locking {}", lock.display()))?
    {
        return Ok(hold);
    }
    reporter.stage(
        "Waiting",
        &format!(
            "for another grounds process {} the cache entry {}",
            match kind {
                HoldKind::Shared => "building",
                HoldKind::Exclusive => "reading (its job holds it until it has read it)",
            },
            dir.display()
        ),
    );
    Hold::wait(lock, kind).with_context(|| format!("locking {}", lock.display()))
}

/// Where the build of an entry happens: a folder of its own beside it, which `cache clear` removes
/// only when nobody holds the entry's lock (a build cut off by a crash).
fn building_path(dir: &Path) -> anyhow::Result<PathBuf> {
    sibling(dir, "building")
}

fn sibling(dir: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        anyhow::bail!("{} is not a cache entry's folder", dir.display());
    };
    Ok(parent.join(format!(".{}.{suffix}", name.to_string_lossy())))
}

fn lock_path(dir: &Path) -> anyhow::Result<PathBuf> {
    sibling(dir, "lock")
}

fn manifest_path(dir: &Path) -> anyhow::Result<PathBuf> {
    sibling(dir, "whole")
}

/// Every entry below `dir` (not following links) as a manifest line, sorted: what the folder is now.
fn describe(dir: &Path) -> std::io::Result<String> {
    let lines: Vec<String> = grounds_job::confined::walk(dir)?
        .into_iter()
        .map(|(path, meta)| {
            let kind = if meta.is_dir() {
                "d"
            } else if meta.is_file() {
                "f"
            } else if meta.file_type().is_symlink() {
                "l"
            } else {
                "?"
            };
            // Size, inode and modification time: not the change time, which links made to the same
            // file by another entry (the views of S3 objects share their files) would change.
            format!(
                "{kind}\t{}\t{}\t{}.{}\t{}",
                if kind == "d" { 0 } else { meta.len() },
                meta.ino(),
                meta.mtime(),
                meta.mtime_nsec(),
                path.display()
            )
        })
        .collect();
    Ok(lines.join("\n"))
}

/// Whether the entry at `dir` is exactly what its manifest says.
pub fn is_whole(dir: &Path) -> bool {
    let Ok(manifest) = manifest_path(dir) else {
        return false;
    };
    let Ok(opened) = grounds_job::confined::open_own_file(&manifest) else {
        return false;
    };
    let Ok((recorded, true)) = grounds_job::confined::read_at_most(opened.file, 256 << 20) else {
        return false;
    };
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
        && describe(dir).is_ok_and(|now| now.as_bytes() == recorded.as_slice())
}

/// Makes the entries of a folder (a rename into it) durable. A file system that cannot sync a folder
/// (some network and FUSE mounts answer EINVAL) is not an error: the rename is made, as durable as it
/// can be there.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir)?.sync_all() {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::ENOTSUP | libc::EBADF)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Makes every file and folder below `dir` durable.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

/// The entry at `dir`, held shared: used as it is when whole, else built anew by `build` first (under
/// the entry's exclusive lock, so two runs never build it at once and a reader never sees half of it).
/// `build` makes the whole entry in a fresh folder in the folder it is given, and returns that folder.
/// An entry this process already holds that is no longer whole is an error (it changed while in use),
/// never a wait for itself.
pub fn entry(
    dir: &Path,
    reporter: &dyn Reporter,
    mut build: impl FnMut(&Path) -> anyhow::Result<tempfile::TempDir>,
) -> anyhow::Result<Held> {
    let parent = dir
        .parent()
        .with_context(|| format!("{} is not a cache entry's folder", dir.display()))?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let lock = lock_path(dir)?;
    let manifest = manifest_path(dir)?;
    for _ in 0..3 {
        let shared = wait(&lock, HoldKind::Shared, dir, reporter)?;
        if is_whole(dir) {
            return Ok(Held::new(dir, shared));
        }
        drop(shared);
        if held_here(dir) {
            anyhow::bail!(
                "the cache entry {} changed while a job of this run reads it: is something else \
                 writing there? Run again",
                dir.display()
            );
        }
        let _exclusive = wait(&lock, HoldKind::Exclusive, dir, reporter)?;
        if is_whole(dir) {
            continue;
        }
        // Not whole: whatever is there (a cut-off build, a changed file, no manifest) goes.
        let _ = std::fs::remove_file(&manifest);
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(dir),
            Ok(_) => std::fs::remove_file(dir),
            Err(_) => Ok(()),
        }
        .with_context(|| format!("removing the incomplete cache entry {}", dir.display()))?;
        let building = building_path(dir)?;
        let _ = std::fs::remove_dir_all(&building);
        std::fs::create_dir_all(&building)
            .with_context(|| format!("creating {}", building.display()))?;
        let staged = build(&building)?;
        sync_tree(staged.path()).context("making the cache entry durable")?;
        std::fs::rename(staged.path(), dir)
            .with_context(|| format!("moving the cache entry into {}", dir.display()))?;
        let _ = staged.keep();
        let _ = std::fs::remove_dir_all(&building);
        sync_dir(parent)?;
        let description = describe(dir).context("describing the cache entry")?;
        let mut temp = tempfile::NamedTempFile::new_in(parent)?;
        std::io::Write::write_all(&mut temp, description.as_bytes())?;
        temp.as_file().sync_all()?;
        temp.persist(&manifest)
            .map_err(|e| e.error)
            .with_context(|| format!("writing {}", manifest.display()))?;
        sync_dir(parent)?;
    }
    anyhow::bail!(
        "the cache entry {} changed while it was being used three times: is something else writing \
         there?",
        dir.display()
    )
}

/// One entry of a cache folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub name: String,
    pub folder: PathBuf,
    pub bytes: u64,
    pub whole: bool,
}

fn bytes_below(dir: &Path) -> u64 {
    grounds_job::confined::walk(dir)
        .map(|entries| {
            entries
                .iter()
                .filter(|(_, meta)| meta.is_file())
                .map(|(_, meta)| meta.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The entries of the cache folder `root` (`cache/results`, `cache/s3/views`).
pub fn list(root: &Path) -> Vec<Listed> {
    let mut found: Vec<Listed> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| Listed {
                    name: e.file_name().to_string_lossy().into_owned(),
                    folder: e.path(),
                    bytes: bytes_below(&e.path()),
                    whole: is_whole(&e.path()),
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// What clearing a cache folder did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Cleared {
    pub removed: Vec<Listed>,
    /// Entries a run holds (its job reads them): kept.
    pub in_use: Vec<String>,
    pub failed: Vec<String>,
}

/// Removes the entries of the cache folder `root` whose names start with one of `prefixes` (all, when
/// none are given) that no run holds, and what builds cut off by a crash left there.
pub fn clear(root: &Path, prefixes: &[String]) -> Cleared {
    let mut cleared = Cleared::default();
    for listed in list(root) {
        if !prefixes.is_empty() && !prefixes.iter().any(|p| listed.name.starts_with(p.as_str())) {
            continue;
        }
        let (Ok(lock), Ok(manifest)) = (lock_path(&listed.folder), manifest_path(&listed.folder))
        else {
            continue;
        };
        match Hold::try_take(&lock, HoldKind::Exclusive) {
            Ok(Some(_hold)) => {
                let _ = std::fs::remove_file(&manifest);
                match std::fs::remove_dir_all(&listed.folder) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&lock);
                        cleared.removed.push(listed);
                    }
                    Err(e) => cleared
                        .failed
                        .push(format!("{}: {e}", listed.folder.display())),
                }
            }
            Ok(None) => cleared.in_use.push(listed.name),
            Err(e) => cleared
                .failed
                .push(format!("{}: {e}", listed.folder.display())),
        }
    }
    // Builds cut off by a crash: the building folder of an entry whose lock nobody holds.
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(entry_name) = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".building"))
            else {
                continue;
            };
            let lock = root.join(format!(".{entry_name}.lock"));
            if let Ok(Some(_hold)) = Hold::try_take(&lock, HoldKind::Exclusive) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    cleared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_with(
        files: &'static [(&'static str, &'static str)],
    ) -> impl FnMut(&Path) -> anyhow::Result<tempfile::TempDir> {
        move |parent| {
            let staged = tempfile::Builder::new()
                .prefix(".unpacking-")
                .tempdir_in(parent)?;
            for (name, text) in files {
                let path = staged.path().join(name);
                std::fs::create_dir_all(path.parent().unwrap())?;
                std::fs::write(path, text)?;
            }
            Ok(staged)
        }
    }

    #[test]
    fn an_entry_is_used_only_when_whole_and_cleared_only_when_not_held() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("abc");
        let builds = std::cell::Cell::new(0);
        let mut counting = |parent: &Path| {
            builds.set(builds.get() + 1);
            build_with(&[("model/a.txt", "a"), ("model/b/c.txt", "c")])(parent)
        };
        let held = entry(&dir, &crate::printer::Silent, &mut counting).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("model/a.txt")).unwrap(),
            "a"
        );
        drop(held);
        entry(&dir, &crate::printer::Silent, &mut counting).unwrap();
        assert_eq!(builds.get(), 1, "a whole entry is used as it is");

        // Changed, added, removed by hand; a manifest lost: each is built anew.
        for spoil in [
            &(|d: &Path| std::fs::write(d.join("model/a.txt"), "A").unwrap()) as &dyn Fn(&Path),
            &|d: &Path| std::fs::write(d.join("model/extra"), "x").unwrap(),
            &|d: &Path| std::fs::remove_file(d.join("model/b/c.txt")).unwrap(),
            &|d: &Path| std::fs::remove_file(manifest_path(d).unwrap()).unwrap(),
            &|d: &Path| std::fs::remove_dir_all(d).unwrap(),
        ] {
            spoil(&dir);
            assert!(!is_whole(&dir));
            entry(&dir, &crate::printer::Silent, &mut counting).unwrap();
            assert!(is_whole(&dir));
            assert_eq!(
                std::fs::read_to_string(dir.join("model/a.txt")).unwrap(),
                "a"
            );
            assert!(!dir.join("model/extra").exists());
        }
        assert_eq!(builds.get(), 6);

        // Held by a run: clear keeps it and says so; released: clear removes it.
        let held = entry(&dir, &crate::printer::Silent, &mut counting).unwrap();
        let cleared = clear(root.path(), &[]);
        assert_eq!(cleared.in_use, ["abc"]);
        assert!(dir.exists());
        drop(held);
        let cleared = clear(root.path(), &[]);
        assert_eq!(cleared.removed.len(), 1);
        assert!(!dir.exists() && !manifest_path(&dir).unwrap().exists());
    }

    #[test]
    fn two_runs_building_one_entry_at_once_both_get_it_whole() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("same");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let held =
                        entry(&dir, &crate::printer::Silent, build_with(&[("f", "x")])).unwrap();
                    std::fs::read_to_string(held.dir.join("f")).unwrap()
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), "x");
        }
        assert!(is_whole(&dir));
    }
}
