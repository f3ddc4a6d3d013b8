//! Content hashes of local data (channels), remembered between runs.
//!
//! A channel's hash is a hash over its files' names and their own content hashes. A file's content hash
//! is kept in `$GROUNDS_HOME/cache/hashes/`, one list per channel folder, with what the file system says
//! of the file (device, inode, size, modification and change times); while those are unchanged, the file
//! is not read again, so an unchanged 10 GB channel costs a `stat` per file. A file changed within the
//! last two seconds is hashed but not remembered: its time stamp could still be shared by a later write
//! (git's "racy" rule). The list is a cache: a missing or unreadable one means reading the files.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use grounds_job::archive;

/// Where content hashes are remembered; `None` remembers nothing.
#[derive(Debug, Clone)]
pub struct HashCache {
    dir: Option<PathBuf>,
}

/// The last line of a list of hashes, with the number of entries: a list without it is not whole.
const END_LINE: &str = "# end ";

/// What the file system says of a file: if all of it is unchanged, so is the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Changed so recently that another write in the same clock tick could keep the same stamp.
    fn racy(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        now - self.mtime_ns.max(self.ctime_ns) < 2_000_000_000
    }
}

/// Each file's sha256 by its relative name, in name order.
pub type FileHashes = Vec<(String, [u8; 32])>;

/// What the hash of a channel cost: files taken from the cache, files read and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashWork {
    pub remembered: usize,
    pub read: usize,
    pub bytes_read: u64,
}

impl HashCache {
    /// The cache of a grounds home (`$GROUNDS_HOME`).
    pub fn under(home: &Path) -> HashCache {
        HashCache {
            dir: Some(home.join("cache").join("hashes")),
        }
    }

    /// A cache that remembers nothing.
    #[cfg(test)]
    pub fn none() -> HashCache {
        HashCache { dir: None }
    }

    /// The list of one channel folder (or file), by a hash of its absolute path.
    fn list_path(&self, root: &Path) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let absolute = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let key = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
        Some(dir.join(format!("{}.tsv", hex::encode(&key[..16]))))
    }

    /// The remembered hashes of a list, trusted only whole: the list must end with the line that says
    /// how many entries it holds, and hold that many (a cut-off or edited list is not used at all).
    fn load(&self, list: &Path) -> HashMap<String, (Stamp, [u8; 32])> {
        let Ok(text) = std::fs::read_to_string(list) else {
            return HashMap::new();
        };
        let Some(count) = text
            .lines()
            .last()
            .and_then(|last| last.strip_prefix(END_LINE))
            .and_then(|count| count.parse::<usize>().ok())
        else {
            return HashMap::new();
        };
        let entries: Vec<_> = text.lines().filter_map(parse_line).collect();
        if entries.len() != count {
            return HashMap::new();
        }
        entries.into_iter().collect()
    }

    fn save(&self, list: &Path, entries: &[(String, Stamp, [u8; 32])]) {
        let mut text =
            String::from("# grounds content hashes: dev ino size mtime_ns ctime_ns sha256 name\n");
        for (name, s, hash) in entries {
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{name}\n",
                s.dev,
                s.ino,
                s.size,
                s.mtime_ns,
                s.ctime_ns,
                hex::encode(hash)
            ));
        }
        text.push_str(&format!("{END_LINE}{}\n", entries.len()));
        // Best effort: written beside, then renamed into place, so a reader never sees half a list.
        let Some(dir) = list.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        if let Ok(mut staged) = tempfile::NamedTempFile::new_in(dir) {
            use std::io::Write;
            if staged.write_all(text.as_bytes()).is_ok() {
                let _ = staged.persist(list);
            }
        }
    }

    /// The hash of a file, or of every file below a folder with its relative name, and what it cost.
    pub fn content_hash(&self, path: &Path) -> anyhow::Result<([u8; 32], HashWork)> {
        let (files, work) = self.file_hashes(path)?;
        let mut combined = Combined::new();
        for (relative, hash) in &files {
            combined.add(relative, hash);
        }
        Ok((combined.finish(), work))
    }

    /// The sha256 of each file (every file below a folder by its relative name, or the file by its own),
    /// in name order, and what it cost: what [`HashCache::content_hash`] combines.
    pub fn file_hashes(&self, path: &Path) -> anyhow::Result<(FileHashes, HashWork)> {
        let files = archive::files_of(path)?;
        let list = self.list_path(path);
        let known = list.as_deref().map(|l| self.load(l)).unwrap_or_default();
        let hashed: Vec<(String, Stamp, [u8; 32], bool)> = files
            .into_par_iter()
            .map(|(relative, full)| {
                let meta = std::fs::metadata(&full)
                    .with_context(|| format!("reading {}", full.display()))?;
                let stamp = Stamp::of(&meta);
                if let Some((known_stamp, hash)) = known.get(&relative) {
                    if *known_stamp == stamp {
                        return Ok((relative, stamp, *hash, false));
                    }
                }
                let hash = file_hash(&full)?;
                Ok((relative, stamp, hash, true))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut files = Vec::with_capacity(hashed.len());
        let mut work = HashWork::default();
        let mut remembered = Vec::with_capacity(hashed.len());
        for (relative, stamp, hash, read) in hashed {
            files.push((relative.clone(), hash));
            if read {
                work.read += 1;
                work.bytes_read += stamp.size;
            } else {
                work.remembered += 1;
            }
            if !stamp.racy() && !relative.contains(['\n', '\t', '\r']) {
                remembered.push((relative, stamp, hash));
            }
        }
        if let Some(list) = list {
            if work.read > 0 || remembered.len() != known.len() {
                self.save(&list, &remembered);
            }
        }
        Ok((files, work))
    }
}

/// The content hash of a file or folder from its files' own hashes, added in name order: what
/// [`HashCache::content_hash`] computes, for whoever reads the files another way (a stream to an engine).
pub struct Combined(Sha256);

impl Combined {
    pub fn new() -> Combined {
        let mut hasher = Sha256::new();
        hasher.update(b"grounds-content-v2\0");
        Combined(hasher)
    }

    /// One file: its name relative to the folder (or its own name), and the sha256 of its bytes.
    pub fn add(&mut self, relative: &str, file_hash: &[u8; 32]) {
        self.0.update(relative.as_bytes());
        self.0.update([0]);
        self.0.update(file_hash);
        self.0.update([0xff]);
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

fn parse_line(line: &str) -> Option<(String, (Stamp, [u8; 32]))> {
    if line.starts_with('#') {
        return None;
    }
    let mut fields = line.splitn(7, '\t');
    let mut number = || fields.next().and_then(|f| f.parse::<i128>().ok());
    let (dev, ino, size, mtime_ns, ctime_ns) =
        (number()?, number()?, number()?, number()?, number()?);
    let hash: [u8; 32] = hex::decode(fields.next()?).ok()?.try_into().ok()?;
    let name = fields.next()?.to_string();
    let stamp = Stamp {
        dev: u64::try_from(dev).ok()?,
        ino: u64::try_from(ino).ok()?,
        size: u64::try_from(size).ok()?,
        mtime_ns,
        ctime_ns,
    };
    Some((name, (stamp, hash)))
}

fn file_hash(path: &Path) -> anyhow::Result<[u8; 32]> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_of_data_changes_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x,y\n1,2\n").unwrap();
        let none = HashCache::none();
        let (before, _) = none.content_hash(dir.path()).unwrap();
        assert_eq!(before, none.content_hash(dir.path()).unwrap().0);
        std::fs::write(dir.path().join("a.csv"), "x,y\n1,3\n").unwrap();
        assert_ne!(before, none.content_hash(dir.path()).unwrap().0);
    }

    #[test]
    fn unchanged_files_are_not_read_again_and_changed_ones_are() {
        let home = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        for name in ["a.csv", "b.csv"] {
            std::fs::write(data.path().join(name), name.repeat(1000)).unwrap();
        }
        // Old enough not to be racy (changed more than two seconds ago).
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let cache = HashCache::under(home.path());
        let (first, work) = cache.content_hash(data.path()).unwrap();
        assert_eq!((work.read, work.remembered), (2, 0));
        let (second, work) = cache.content_hash(data.path()).unwrap();
        assert_eq!((work.read, work.remembered, first), (0, 2, second));
        // The same hash as without a cache.
        assert_eq!(
            first,
            HashCache::none().content_hash(data.path()).unwrap().0
        );

        // Same size, same modification time, other bytes: the change time still tells.
        let a = data.path().join("a.csv");
        let mtime = std::fs::metadata(&a).unwrap().modified().unwrap();
        std::fs::write(&a, "b.csv".repeat(1000)).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let (third, work) = cache.content_hash(data.path()).unwrap();
        assert_eq!((work.read, work.remembered), (1, 1));
        assert_ne!(third, first);
        // Just changed (racy): read now, and read again next time.
        let (_, work) = cache.content_hash(data.path()).unwrap();
        assert_eq!(work.read, 1);

        // A garbled list is no list.
        for entry in std::fs::read_dir(home.path().join("cache/hashes")).unwrap() {
            std::fs::write(entry.unwrap().path(), "1\t2\tthree\n\0\n").unwrap();
        }
        let (fourth, work) = cache.content_hash(data.path()).unwrap();
        assert_eq!((fourth, work.read), (third, 2));
    }
}
