//! Channels as SageMaker gives them: each job (each host) gets its own writable copy of the data in its
//! `/opt/ml/input/data/<channel>`, so a job that unpacks or rewrites its input in place (common on
//! SageMaker) works, and never touches the user's files.
//!
//! The copy is made with `std::fs::copy` (`copy_file_range`), which file systems that can share blocks
//! (btrfs, XFS with reflink) turn into a copy-on-write clone at no cost; elsewhere it is a real copy, whose
//! cost `make bench` measures.

use std::path::Path;

use anyhow::Context;

use crate::printer::Reporter;

/// What a copy came to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Copied {
    pub files: usize,
    pub bytes: u64,
}

/// A copy this large is announced before it starts.
const ANNOUNCE_FROM: u64 = 64 << 20;

/// Copies a channel (a file, or every file below a folder, links followed as data is read) into `dir`,
/// which is created; `what` names it when the copy is large enough to be announced.
pub fn copy_into(
    source: &Path,
    dir: &Path,
    what: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<Copied> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = grounds_job::archive::files_of(source)?;
    let total: u64 = files
        .iter()
        .filter_map(|(_, path)| std::fs::metadata(path).ok())
        .map(|m| m.len())
        .sum();
    if total >= ANNOUNCE_FROM {
        reporter.stage(
            "Copying",
            &format!(
                "{what}: {} file(s), {} into the job's own writable folder",
                files.len(),
                crate::printer::human_size(total)
            ),
        );
    }
    let mut copied = Copied::default();
    for (relative, path) in files {
        let target = dir.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let bytes = std::fs::copy(&path, &target)
            .with_context(|| format!("copying {} into the job's channel folder", path.display()))?;
        copied.files += 1;
        copied.bytes += bytes;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_private_and_writable() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("nested")).unwrap();
        std::fs::write(data.join("a.csv"), "a").unwrap();
        std::fs::write(data.join("nested/b.csv"), "bb").unwrap();
        let channel = dir.path().join("job/input/data/training");
        let copied = copy_into(&data, &channel, "training", &crate::printer::Silent).unwrap();
        assert_eq!((copied.files, copied.bytes), (2, 3));
        std::fs::write(channel.join("a.csv"), "changed").unwrap();
        std::fs::write(channel.join("new.csv"), "new").unwrap();
        assert_eq!(std::fs::read_to_string(data.join("a.csv")).unwrap(), "a");
        assert!(!data.join("new.csv").exists());
        let file = dir.path().join("job/input/data/single");
        copy_into(
            &data.join("a.csv"),
            &file,
            "single",
            &crate::printer::Silent,
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(file.join("a.csv")).unwrap(), "a");
    }
}
