//! Taking home what a job left in `model/` and `output/`, whatever it left there.
//!
//! Every regular file comes home, and so does a symbolic link that stays inside what comes home (as a
//! link). Anything else (a link that leaves the job or leads into its other folders, a dangling link, a
//! loop, a named pipe, a socket, a device, a file or folder that cannot be read) is left out and
//! recorded with the reason: a job's odd files are data about the job, never a reason to lose its run,
//! and nothing of the host is ever read through a link.

use std::collections::BTreeSet;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use grounds_job::confined::{self, Resolution};

/// The folders of a job root that come home, under the same names in a result.
pub const TREES: [&str; 2] = ["model", "output"];

/// Something a job left that is not in its result, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeftOut {
    /// As it would be named in the result (`model/latest`), with the host first when a job has several.
    pub path: String,
    pub reason: String,
}

/// Where the bytes of an entry come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A regular file at `relative` below `root`, opened without following any link when it is stored
    /// ([`confined::open_file`]).
    File { root: PathBuf, relative: PathBuf },
    /// A symbolic link with this relative target, which stays inside the result.
    Link(PathBuf),
    /// Bytes grounds itself writes (the failure reason of a job with several hosts).
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The name in the result, e.g. `model/model.json`.
    pub name: String,
    pub source: Source,
}

/// What comes home from one job root (or several, merged), and what was left out.
#[derive(Debug, Default)]
pub struct Collected {
    pub items: Vec<Item>,
    pub left_out: Vec<LeftOut>,
}

fn name_of(relative: &Path) -> String {
    relative.to_string_lossy().into_owned()
}

/// Why a file's name cannot be an entry of a result as it is, if it cannot: every name in a result has
/// one spelling ([`grounds_job::archive::canonical_name`]), the same on every system that reads it.
fn unnameable(file_name: &std::ffi::OsStr) -> Option<&'static str> {
    match file_name.to_str() {
        None => Some("its name is not valid UTF-8, which a zip entry's name must be"),
        Some(name) if name.contains('\\') => {
            Some("its name holds a backslash, which archives read as a folder separator")
        }
        Some(_) => None,
    }
}

impl Collected {
    /// Collects `model/` and `output/` of the job root at `root`, which the job saw as `seen_as`.
    pub fn from_root(root: &Path, seen_as: &Path) -> Collected {
        let mut collected = Collected::default();
        for tree in TREES {
            let top = root.join(tree);
            match std::fs::symlink_metadata(&top) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => collected.leave_out(tree, format!("the folder could not be read: {e}")),
                Ok(meta) if meta.is_dir() => collected.walk(root, seen_as, Path::new(tree)),
                Ok(_) => collected.leave_out(
                    tree,
                    format!("/opt/ml/{tree} was replaced by something that is not a folder"),
                ),
            }
        }
        collected.items.sort_by(|a, b| a.name.cmp(&b.name));
        collected
    }

    fn leave_out(&mut self, path: &str, reason: String) {
        self.left_out.push(LeftOut {
            path: path.to_string(),
            reason,
        });
    }

    fn walk(&mut self, root: &Path, seen_as: &Path, relative: &Path) {
        let entries = match std::fs::read_dir(root.join(relative)) {
            Ok(entries) => entries,
            Err(e) => {
                self.leave_out(
                    &name_of(relative),
                    format!("the folder could not be read: {e}"),
                );
                return;
            }
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let relative = relative.join(entry.file_name());
            let name = name_of(&relative);
            if let Some(why) = unnameable(&entry.file_name()) {
                self.leave_out(&name, format!("{why}: it was not stored"));
                continue;
            }
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(e) => {
                    self.leave_out(&name, format!("could not be read: {e}"));
                    continue;
                }
            };
            if kind.is_dir() {
                self.walk(root, seen_as, &relative);
            } else if kind.is_file() {
                self.items.push(Item {
                    name,
                    source: Source::File {
                        root: root.to_path_buf(),
                        relative: relative.clone(),
                    },
                });
            } else if kind.is_symlink() {
                self.link(root, seen_as, &relative, name);
            } else {
                let what = if kind.is_fifo() {
                    "a named pipe (FIFO)"
                } else if kind.is_socket() {
                    "a socket"
                } else if kind.is_block_device() || kind.is_char_device() {
                    "a device"
                } else {
                    "not a regular file"
                };
                self.leave_out(&name, format!("{what}: only files and folders are kept"));
            }
        }
    }

    fn link(&mut self, root: &Path, seen_as: &Path, relative: &Path, name: String) {
        let reason = match confined::resolve(root, seen_as, relative) {
            Resolution::Inside(target) => {
                let top = target
                    .components()
                    .next()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned());
                match top {
                    Some(top) if TREES.contains(&top.as_str()) => {
                        self.items.push(Item {
                            name,
                            source: Source::Link(confined::relative_target(relative, &target)),
                        });
                        return;
                    }
                    _ => format!(
                        "a symbolic link to {}, which is not part of the result (only model/ and \
                         output/ are)",
                        name_of(&target)
                    ),
                }
            }
            Resolution::Outside(written) => format!(
                "a symbolic link to {} leads out of the job: it is never followed",
                written.display()
            ),
            Resolution::Dangling(written) => format!(
                "a dangling symbolic link: its target {} does not exist",
                written.display()
            ),
            Resolution::Loop => "a symbolic link loop".to_string(),
            Resolution::Unreadable(why) => format!("a symbolic link that could not be read: {why}"),
        };
        self.leave_out(&name, reason);
    }

    /// One result from several hosts' roots: on a name clash the first (the lower host) wins. With more
    /// than one host, what was left out is named with its host.
    pub fn merge(hosts: Vec<(String, Collected)>) -> Collected {
        let several = hosts.len() > 1;
        let mut merged = Collected::default();
        let mut seen = BTreeSet::new();
        for (host, collected) in hosts {
            for item in collected.items {
                if seen.insert(item.name.clone()) {
                    merged.items.push(item);
                }
            }
            for mut left in collected.left_out {
                if several {
                    left.path = format!("{host}:{}", left.path);
                }
                merged.left_out.push(left);
            }
        }
        merged.items.sort_by(|a, b| a.name.cmp(&b.name));
        merged
    }

    pub fn has(&self, name: &str) -> bool {
        self.items.iter().any(|i| i.name == name)
    }

    /// Puts `source` at `name`, replacing what was there.
    pub fn put(&mut self, name: &str, source: Source) {
        self.items.retain(|i| i.name != name);
        self.items.push(Item {
            name: name.to_string(),
            source,
        });
        self.items.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn odd_files_are_left_out_with_a_reason_and_the_rest_comes_home() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("model/ckpt")).unwrap();
        std::fs::create_dir_all(root.join("output/data")).unwrap();
        std::fs::create_dir_all(root.join("code")).unwrap();
        std::fs::write(root.join("model/ckpt/3.bin"), b"weights").unwrap();
        std::fs::write(root.join("output/data/p.csv"), b"a\n").unwrap();
        std::fs::write(root.join("code/train.py"), b"").unwrap();
        symlink("ckpt/3.bin", root.join("model/latest")).unwrap();
        symlink("/opt/ml/output/data/p.csv", root.join("model/preds")).unwrap();
        symlink("/etc/shadow", root.join("model/shadow")).unwrap();
        symlink("checkpoint-latest", root.join("model/dangling")).unwrap();
        symlink("loop", root.join("model/loop")).unwrap();
        symlink("../code/train.py", root.join("model/code")).unwrap();
        let fifo = std::ffi::CString::new(root.join("output/fifo").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let _socket = std::os::unix::net::UnixListener::bind(root.join("output/sock")).unwrap();

        let collected = Collected::from_root(root, Path::new("/opt/ml"));
        let names: Vec<(&str, &Source)> = collected
            .items
            .iter()
            .map(|i| (i.name.as_str(), &i.source))
            .collect();
        assert_eq!(
            names,
            [
                (
                    "model/ckpt/3.bin",
                    &Source::File {
                        root: root.to_path_buf(),
                        relative: "model/ckpt/3.bin".into()
                    }
                ),
                ("model/latest", &Source::Link("ckpt/3.bin".into())),
                ("model/preds", &Source::Link("../output/data/p.csv".into())),
                (
                    "output/data/p.csv",
                    &Source::File {
                        root: root.to_path_buf(),
                        relative: "output/data/p.csv".into()
                    }
                ),
            ]
        );
        let left: Vec<&str> = collected.left_out.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(
            left,
            [
                "model/code",
                "model/dangling",
                "model/loop",
                "model/shadow",
                "output/fifo",
                "output/sock"
            ]
        );
        let reason = |path: &str| {
            &collected
                .left_out
                .iter()
                .find(|l| l.path == path)
                .unwrap()
                .reason
        };
        assert!(reason("model/shadow").contains("/etc/shadow"));
        assert!(reason("model/dangling").contains("checkpoint-latest"));
        assert!(reason("output/fifo").contains("named pipe"));
    }

    #[test]
    fn hosts_merge_lower_first_and_name_their_leftovers() {
        let item = |name: &str, host: &str| Item {
            name: name.into(),
            source: Source::Bytes(host.as_bytes().to_vec()),
        };
        let one = Collected {
            items: vec![item("model/a", "1")],
            left_out: vec![],
        };
        let two = Collected {
            items: vec![item("model/a", "2"), item("model/b", "2")],
            left_out: vec![LeftOut {
                path: "model/x".into(),
                reason: "r".into(),
            }],
        };
        let merged = Collected::merge(vec![("algo-1".into(), one), ("algo-2".into(), two)]);
        assert_eq!(
            merged.items,
            vec![item("model/a", "1"), item("model/b", "2")]
        );
        assert_eq!(merged.left_out[0].path, "algo-2:model/x");
    }
}
