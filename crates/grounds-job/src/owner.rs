//! Who owns what a run leaves behind while it works (a staging file in the store, a job root in the temp
//! folder, containers and networks in the engine), and whether that owner is still alive.
//!
//! Files are owned through an advisory lock (`flock`) held for as long as the run lives: the kernel
//! releases it when the process dies, however it dies (`kill -9` included), so a later run can tell a
//! stale leftover from one that is still in use. Containers carry their owner's identity as a label
//! (machine, boot, pid and the pid's start time, so a reused pid is not mistaken for the owner).

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The lock file inside a job root that says the root is in use.
pub const ROOT_LOCK: &str = ".grounds-owner";
/// Prefix of job roots in the temp folder.
pub const ROOT_PREFIX: &str = "grounds-";
/// Prefix of packages (zips, each locked by its owner) in the temp folder.
pub const PACKAGE_PREFIX: &str = "grounds-package-";
/// A leftover younger than this is never removed: its owner may be between creating and locking it.
const SETTLE: Duration = Duration::from_secs(30);

/// An exclusive advisory lock on a file, held until dropped (or until the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn try_flock(file: &File) -> bool {
    // SAFETY: flock(2) on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Takes the lock on an open file.
pub fn lock(file: File) -> std::io::Result<Lock> {
    if try_flock(&file) {
        Ok(Lock { _file: file })
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How a [`Hold`] shares its lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    /// Many may hold it at once (readers of a cache entry).
    Shared,
    /// One alone (who builds or removes the entry).
    Exclusive,
}

/// An advisory lock on a lock file by its path, shared or exclusive, held until dropped (or until the
/// process dies). A lock file may be removed by whoever holds it exclusively: a hold is only taken on the
/// file that is at the path once the lock is granted.
#[derive(Debug)]
pub struct Hold {
    _file: File,
}

impl Hold {
    /// Waits for the lock on `path` (created if missing).
    pub fn wait(path: &Path, kind: HoldKind) -> std::io::Result<Hold> {
        Self::take(path, kind, true)?.ok_or_else(|| {
            std::io::Error::other(format!("the lock {} was not granted", path.display()))
        })
    }

    /// The lock on `path` if it can be had at once; `None` when someone else holds it.
    pub fn try_take(path: &Path, kind: HoldKind) -> std::io::Result<Option<Hold>> {
        Self::take(path, kind, false)
    }

    fn take(path: &Path, kind: HoldKind, wait: bool) -> std::io::Result<Option<Hold>> {
        use std::os::unix::fs::MetadataExt;
        let operation = match kind {
            HoldKind::Shared => libc::LOCK_SH,
            HoldKind::Exclusive => libc::LOCK_EX,
        } | if wait { 0 } else { libc::LOCK_NB };
        loop {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            // SAFETY: flock(2) on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), operation) } != 0 {
                let error = std::io::Error::last_os_error();
                if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    return Ok(None);
                }
                if error.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            // Removed (and perhaps made anew) while we waited: that lock guards nothing any more.
            let held = file.metadata()?;
            match std::fs::metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(Hold { _file: file }))
                }
                _ => continue,
            }
        }
    }
}

/// Whether nobody holds a lock on `path` (it could be locked just now); false when it cannot be opened.
fn is_abandoned(path: &Path) -> bool {
    match File::open(path) {
        Ok(file) => try_flock(&file),
        Err(_) => false,
    }
}

pub(crate) fn old_enough(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= SETTLE)
}

/// A job root in the temp folder, locked for this process; removed when dropped.
pub struct WorkDir {
    dir: tempfile::TempDir,
    _lock: Lock,
}

impl WorkDir {
    /// A fresh `grounds-<id>-XXXXXX` folder in the temp folder, owned by this process.
    pub fn new(id: &str) -> std::io::Result<WorkDir> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{ROOT_PREFIX}{id}-"))
            .tempdir()?;
        let file = File::create(dir.path().join(ROOT_LOCK))?;
        let lock = lock(file)?;
        Ok(WorkDir { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What a person is told of the leftovers of dead runs that were removed (staging files, job roots,
/// containers and networks), named.
pub fn removed_leftovers(removed: &[String]) -> String {
    format!(
        "{} leftover(s) of runs whose grounds process is gone: {}",
        removed.len(),
        removed.join(", ")
    )
}

/// What a clean-up found and removed.
#[derive(Debug, Default)]
pub struct Leftovers {
    pub removed: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, String)>,
}

/// Removes the staging files (`.*.partial`) in `results_dir`, and the job roots and packages in
/// `temp_dir`, whose owner is gone. Only what grounds locks and no living process holds is touched.
pub fn remove_leftovers(results_dir: &Path, temp_dir: &Path) -> Leftovers {
    let mut swept = Leftovers::default();
    let entries = |dir: &Path| -> Vec<(String, PathBuf, bool, bool)> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let kind = e.file_type().ok();
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            e.path(),
                            kind.is_some_and(|t| t.is_file()),
                            kind.is_some_and(|t| t.is_dir()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let stale = |lock: &Path| old_enough(lock) && is_abandoned(lock);
    for (name, path, is_file, _) in entries(results_dir) {
        if is_file && name.starts_with('.') && name.ends_with(".partial") && stale(&path) {
            swept.remove(path, false);
        }
    }
    for (name, path, is_file, is_dir) in entries(temp_dir) {
        if is_file && name.starts_with(PACKAGE_PREFIX) && name.ends_with(".zip") && stale(&path) {
            swept.remove(path, false);
        } else if is_dir && name.starts_with(ROOT_PREFIX) && {
            let lock = path.join(ROOT_LOCK);
            lock.is_file() && stale(&lock)
        } {
            swept.remove(path, true);
        }
    }
    swept
}

impl Leftovers {
    fn remove(&mut self, path: PathBuf, folder: bool) {
        let removed = if folder {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => self.removed.push(path),
            Err(e) => self.failed.push((path, e.to_string())),
        }
    }
}

/// Who this process runs as: (uid, gid).
pub fn current_user() -> (u32, u32) {
    // SAFETY: getuid(2) and getgid(2) cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// A process, named so that it can be recognised later: on which machine, in which boot, which pid, and
/// when that pid started (pids are reused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub machine: String,
    pub boot: String,
    pub pid: u32,
    pub start: u64,
}

fn first_line(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

fn machine_id() -> String {
    first_line("/etc/machine-id")
        .or_else(|| first_line("/var/lib/dbus/machine-id"))
        .or_else(|| first_line("/proc/sys/kernel/hostname"))
        .unwrap_or_else(|| "unknown".into())
}

fn boot_id() -> String {
    first_line("/proc/sys/kernel/random/boot_id").unwrap_or_else(|| "unknown".into())
}

pub use crate::proctree::start_time;

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            machine: machine_id(),
            boot: boot_id(),
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    /// As a label value: `machine/boot/pid/start`.
    pub fn label(&self) -> String {
        format!("{}/{}/{}/{}", self.machine, self.boot, self.pid, self.start)
    }

    pub fn parse(label: &str) -> Option<Owner> {
        let mut parts = label.split('/');
        let owner = Owner {
            machine: parts.next()?.to_string(),
            boot: parts.next()?.to_string(),
            pid: parts.next()?.parse().ok()?,
            start: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(owner)
    }

    /// Whether this owner is certainly gone: it lived on this machine, and the machine has rebooted since,
    /// or its pid no longer runs the same process. An owner on another machine is never taken for gone.
    pub fn is_gone(&self) -> bool {
        let here = Owner::current();
        if self.machine != here.machine {
            return false;
        }
        if self.boot != here.boot {
            return true;
        }
        start_time(self.pid) != Some(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_gone() {
        let me = Owner::current();
        assert!(me.start > 0);
        assert_eq!(Owner::parse(&me.label()), Some(me.clone()));
        assert!(!me.is_gone());
        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(reused.is_gone(), "same pid, another start: another process");
        let elsewhere = Owner {
            machine: "another-machine".into(),
            pid: 999_999_999,
            ..me.clone()
        };
        assert!(
            !elsewhere.is_gone(),
            "an owner on another machine is left alone"
        );
        assert_eq!(Owner::parse("a/b/c/d"), None);
        assert_eq!(Owner::parse("a/b/1/2/3"), None);
    }

    #[test]
    fn only_unlocked_and_settled_leftovers_are_swept() {
        let results = tempfile::tempdir().unwrap();
        let temp = tempfile::tempdir().unwrap();
        let held = results.path().join(".held.zip.partial");
        let stale = results.path().join(".stale.zip.partial");
        let fresh = results.path().join(".fresh.zip.partial");
        let kept = results.path().join("kept.zip");
        for path in [&held, &stale, &fresh, &kept] {
            std::fs::write(path, b"x").unwrap();
        }
        let _lock = lock(File::open(&held).unwrap()).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        for path in [&held, &stale, &kept] {
            File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let root = temp.path().join("grounds-x-abc");
        std::fs::create_dir_all(root.join("ml/model")).unwrap();
        std::fs::write(root.join(ROOT_LOCK), b"").unwrap();
        File::options()
            .write(true)
            .open(root.join(ROOT_LOCK))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let foreign = temp.path().join("grounds-not-ours");
        std::fs::create_dir_all(&foreign).unwrap();

        let swept = remove_leftovers(results.path(), temp.path());
        assert!(swept.failed.is_empty(), "{:?}", swept.failed);
        assert!(!stale.exists() && !root.exists());
        assert!(
            held.exists(),
            "a locked staging file belongs to a living run"
        );
        assert!(fresh.exists(), "a young staging file may not be locked yet");
        assert!(kept.exists() && foreign.exists());
    }
}
