//! Resolving a symbolic link as if a folder were the whole file system: where it leads, step by step,
//! without ever following it out of that folder.
//!
//! A job writes links in its own view (`/opt/ml/model/x -> /etc/shadow` in a container, a temp path when
//! attached) and a source folder may hold links anywhere; grounds reads both on the host. Resolving each
//! link component by component inside the folder tells a link that stays inside from one that leaves it,
//! dangles or loops, so that nothing of the host is ever read through one.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// How many links one resolution may pass through before it is taken for a loop (as Linux's ELOOP).
const MAX_HOPS: usize = 40;

/// Where a link leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// To this path below the folder (relative, without links in it), which exists.
    Inside(PathBuf),
    /// Out of the folder; the target as written.
    Outside(PathBuf),
    /// To something that does not exist; the target as written.
    Dangling(PathBuf),
    /// Through more links than any path needs: a loop.
    Loop,
    /// A step could not be read.
    Unreadable(String),
}

/// Resolves the link at `link` (relative to `root`, not itself resolved: its folders must be real ones).
/// Absolute targets are read in the job's view: `seen_as` (e.g. `/opt/ml`) stands for `root`.
pub fn resolve(root: &Path, seen_as: &Path, link: &Path) -> Resolution {
    let mut stack: Vec<OsString> = match link.parent() {
        Some(parent) => parent
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_os_string()),
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    };
    let written = match std::fs::read_link(root.join(link)) {
        Ok(target) => target,
        Err(e) => return Resolution::Unreadable(e.to_string()),
    };
    let mut pending: Vec<OsString> = Vec::new();
    if let Err(outside) = enter(&written, root, seen_as, &mut stack, &mut pending) {
        return outside;
    }
    let mut hops = 1;
    // `pending` is a stack of components still to walk, the next one last.
    while let Some(component) = pending.pop() {
        if component == ".." {
            if stack.pop().is_none() {
                return Resolution::Outside(written);
            }
            continue;
        }
        if component == "." || component.is_empty() {
            continue;
        }
        stack.push(component);
        let here: PathBuf = root.join(stack.iter().collect::<PathBuf>());
        let meta = match std::fs::symlink_metadata(&here) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Resolution::Dangling(written)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Resolution::Dangling(written)
            }
            Err(e) => return Resolution::Unreadable(format!("{}: {e}", here.display())),
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_HOPS {
                return Resolution::Loop;
            }
            stack.pop();
            let next = match std::fs::read_link(&here) {
                Ok(next) => next,
                Err(e) => return Resolution::Unreadable(format!("{}: {e}", here.display())),
            };
            if let Err(outside) = enter(&next, root, seen_as, &mut stack, &mut pending) {
                return match outside {
                    Resolution::Outside(_) => Resolution::Outside(written),
                    other => other,
                };
            }
        } else if !pending.iter().all(|c| c == "." || c.is_empty()) && !meta.is_dir() {
            // A file with more path after it: nothing there.
            return Resolution::Dangling(written);
        }
    }
    Resolution::Inside(stack.iter().collect())
}

/// Starts walking `target`: an absolute one from the root (when it lies in the job's view of it), a
/// relative one from where the walk stands.
fn enter(
    target: &Path,
    root: &Path,
    seen_as: &Path,
    stack: &mut Vec<OsString>,
    pending: &mut Vec<OsString>,
) -> Result<(), Resolution> {
    let rest = if target.is_absolute() {
        let below = target
            .strip_prefix(seen_as)
            .or_else(|_| target.strip_prefix(root))
            .map_err(|_| Resolution::Outside(target.to_path_buf()))?;
        stack.clear();
        below.to_path_buf()
    } else {
        target.to_path_buf()
    };
    let components: Vec<OsString> = rest
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    pending.extend(components.into_iter().rev());
    Ok(())
}

/// A regular file below a folder, opened without following any link on its way.
#[derive(Debug)]
pub struct OpenedFile {
    pub file: std::fs::File,
    pub size: u64,
    pub executable: bool,
}

/// Opens the regular file at `relative` below `root` the way a job's files must be opened on the host:
/// every folder on the way and the file itself are opened relative to the one before (`openat`) with
/// `O_NOFOLLOW`, so a link anywhere on the path (also one swapped in after the path was looked at) is
/// never followed; a named pipe is not waited on; anything but a regular file is an error. `root` itself
/// is the caller's (it may lie behind links of the host).
pub fn open_file(root: &Path, relative: &Path) -> std::io::Result<OpenedFile> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let invalid =
        |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string());
    let mut names = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(name) => names.push(name),
            Component::CurDir => {}
            _ => return Err(invalid("the path is not a plain path below its folder")),
        }
    }
    let Some((last, folders)) = names.split_last() else {
        return Err(invalid("the path names no file"));
    };
    let open_at = |dir: Option<&OwnedFd>, name: &std::ffi::OsStr, flags: i32| {
        let name = std::ffi::CString::new(name.as_bytes())
            .map_err(|_| invalid("the path holds a NUL byte"))?;
        let dir_fd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
        // SAFETY: openat(2) with a valid descriptor (or AT_FDCWD) and a NUL-terminated name; the
        // descriptor it returns is owned from here on.
        let fd = unsafe { libc::openat(dir_fd, name.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            let error = std::io::Error::last_os_error();
            return Err(match error.raw_os_error() {
                Some(libc::ELOOP) => std::io::Error::other(format!(
                    "{} is a symbolic link: it is never followed",
                    name.to_string_lossy()
                )),
                Some(libc::ENOTDIR) => std::io::Error::other(format!(
                    "{} is not a folder (a symbolic link or a file where a folder was)",
                    name.to_string_lossy()
                )),
                _ => error,
            });
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let mut dir = open_at(None, root.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY)?;
    for folder in folders {
        dir = open_at(
            Some(&dir),
            folder,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        )?;
    }
    let fd = open_at(
        Some(&dir),
        last,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
    )?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "it is not a regular file (a named pipe, a socket, a device or a folder)",
        ));
    }
    Ok(OpenedFile {
        size: meta.len(),
        executable: meta.permissions().mode() & 0o111 != 0,
        file,
    })
}

/// Creates (or truncates) the file at `relative` below `root` for writing, with no link followed on the
/// way, as [`open_file`] reads: a link planted at the file or at a folder on its way is an error, never
/// written through. The folders must exist.
pub fn create_file(root: &Path, relative: &Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a plain path");
    let names: Vec<&std::ffi::OsStr> = relative
        .components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(invalid()),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, folders)) = names.split_last() else {
        return Err(invalid());
    };
    let at = |dir: i32, name: &std::ffi::OsStr, flags: i32, mode: libc::c_uint| {
        let name = std::ffi::CString::new(name.as_bytes()).map_err(|_| invalid())?;
        // SAFETY: openat(2) with a valid descriptor (or AT_FDCWD) and a NUL-terminated name.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let mut dir = at(
        libc::AT_FDCWD,
        root.as_os_str(),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )?;
    for folder in folders {
        dir = at(
            dir.as_raw_fd(),
            folder,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
    }
    let fd = at(
        dir.as_raw_fd(),
        last,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0o644,
    )?;
    Ok(std::fs::File::from(fd))
}

/// Opens the regular file at `path` without following a link in its last component (the folders
/// above it are the caller's): for files grounds wrote where a job could reach them (its log, its
/// package), which the job may have replaced.
pub fn open_own_file(path: &Path) -> std::io::Result<OpenedFile> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => open_file(
            if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            },
            Path::new(name),
        ),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )),
    }
}

/// Every entry below `dir` (folders too), relative, with what `lstat` says of it: nothing is followed,
/// so a link is an entry like a file and what it points at is never walked.
pub fn walk(dir: &Path) -> std::io::Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in std::fs::read_dir(dir.join(&relative))? {
            let path = relative.join(entry?.file_name());
            let meta = std::fs::symlink_metadata(dir.join(&path))?;
            if meta.is_dir() {
                pending.push(path.clone());
            }
            found.push((path, meta));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// At most `max` bytes of `reader`, and whether that was all of it.
pub fn read_at_most(reader: impl std::io::Read, max: u64) -> std::io::Result<(Vec<u8>, bool)> {
    use std::io::Read;
    let mut bytes = Vec::new();
    reader.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    let whole = bytes.len() as u64 <= max;
    bytes.truncate(usize::try_from(max).unwrap_or(usize::MAX).min(bytes.len()));
    Ok((bytes, whole))
}

/// The relative link text that leads from the folder holding `link` to `target` (both relative to one
/// root, neither with links in it).
pub fn relative_target(link: &Path, target: &Path) -> PathBuf {
    let from: Vec<Component> = link
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    let to: Vec<Component> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for component in &to[common..] {
        relative.push(component);
    }
    if relative.as_os_str().is_empty() {
        relative.push(".");
    }
    relative
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_resolved_inside_the_folder_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("model/ckpt")).unwrap();
        std::fs::write(root.join("model/ckpt/3.bin"), b"x").unwrap();
        symlink("ckpt/3.bin", root.join("model/latest")).unwrap();
        symlink("/opt/ml/model/ckpt", root.join("model/abs")).unwrap();
        symlink("/etc/passwd", root.join("model/host")).unwrap();
        symlink("../../../../../etc/passwd", root.join("model/climb")).unwrap();
        symlink("missing", root.join("model/dangling")).unwrap();
        symlink("loop-b", root.join("model/loop-a")).unwrap();
        symlink("loop-a", root.join("model/loop-b")).unwrap();
        symlink("latest/more", root.join("model/through-file")).unwrap();
        symlink(".", root.join("model/here")).unwrap();
        symlink("here/../..", root.join("model/up")).unwrap();
        let seen = Path::new("/opt/ml");
        let at = |name: &str| resolve(root, seen, &Path::new("model").join(name));
        assert_eq!(at("latest"), Resolution::Inside("model/ckpt/3.bin".into()));
        assert_eq!(at("abs"), Resolution::Inside("model/ckpt".into()));
        assert_eq!(at("host"), Resolution::Outside("/etc/passwd".into()));
        assert!(matches!(at("climb"), Resolution::Outside(_)));
        assert_eq!(at("dangling"), Resolution::Dangling("missing".into()));
        assert_eq!(at("loop-a"), Resolution::Loop);
        assert!(matches!(at("through-file"), Resolution::Dangling(_)));
        assert_eq!(at("here"), Resolution::Inside("model".into()));
        // `here` is the model folder itself, so `here/../..` climbs above the root.
        assert!(matches!(at("up"), Resolution::Outside(_)));
        // The root's own path in an absolute target is the root too (attached runs see it so).
        let real = root.join("model/ckpt");
        symlink(&real, root.join("model/real")).unwrap();
        assert_eq!(at("real"), Resolution::Inside("model/ckpt".into()));
    }

    #[test]
    fn relative_targets_climb_only_as_needed() {
        let rel = |a: &str, b: &str| relative_target(Path::new(a), Path::new(b));
        assert_eq!(
            rel("model/latest", "model/ckpt/3.bin"),
            Path::new("ckpt/3.bin")
        );
        assert_eq!(
            rel("model/a/b", "output/data/x"),
            Path::new("../../output/data/x")
        );
        assert_eq!(rel("model/here", "model"), Path::new("."));
    }
}
