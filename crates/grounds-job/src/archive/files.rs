//! The files of a data folder as a job reads them: every regular file below it, links followed, in name
//! order, with a clear error for what cannot be read as data (a dangling link, a loop).

use std::path::{Path, PathBuf};

/// A file or link below a data folder that cannot be read as data, named.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct FilesBelowError {
    pub path: PathBuf,
    pub problem: String,
}

/// The files of a channel or package input: every regular file below a folder ([`files_below`]), or the
/// file itself under its own name.
pub fn files_of(path: &Path) -> Result<Vec<(String, PathBuf)>, FilesBelowError> {
    if path.is_dir() {
        return files_below(path);
    }
    match path.file_name() {
        Some(name) => Ok(vec![(
            name.to_string_lossy().into_owned(),
            path.to_path_buf(),
        )]),
        None => Err(FilesBelowError {
            path: path.to_path_buf(),
            problem: "has no file name".into(),
        }),
    }
}

/// Every regular file below `dir` (following symbolic links, as data folders are read), as
/// (`a/b.txt`, full path), sorted by name. A dangling link, a link loop or a folder that cannot be read
/// is an error that names it.
pub fn files_below(dir: &Path) -> Result<Vec<(String, PathBuf)>, FilesBelowError> {
    let mut found = Vec::new();
    if dir.exists() {
        let mut ancestors = Vec::new();
        walk(dir, "", &mut ancestors, &mut found)?;
    }
    found.sort();
    Ok(found)
}

fn walk(
    dir: &Path,
    prefix: &str,
    ancestors: &mut Vec<(u64, u64)>,
    found: &mut Vec<(String, PathBuf)>,
) -> Result<(), FilesBelowError> {
    use std::os::unix::fs::MetadataExt;
    let problem = |path: &Path, problem: String| FilesBelowError {
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(dir).map_err(|e| problem(dir, format!("cannot be read ({e})")))?;
    let identity = (meta.dev(), meta.ino());
    if ancestors.contains(&identity) {
        return Err(problem(
            dir,
            "is a link back to a folder above it (a loop): remove the link".into(),
        ));
    }
    ancestors.push(identity);
    let entries =
        std::fs::read_dir(dir).map_err(|e| problem(dir, format!("cannot be read ({e})")))?;
    for entry in entries {
        let entry = entry.map_err(|e| problem(dir, format!("cannot be read ({e})")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) => {
                let why = match std::fs::read_link(&path) {
                    Ok(target) if e.kind() == std::io::ErrorKind::NotFound => format!(
                        "is a symbolic link to {}, which does not exist: remove the link or restore \
                         its target",
                        target.display()
                    ),
                    Ok(target) => format!(
                        "is a symbolic link to {} that cannot be followed ({e})",
                        target.display()
                    ),
                    Err(_) => format!("cannot be read ({e})"),
                };
                return Err(problem(&path, why));
            }
        };
        if meta.is_dir() {
            walk(&path, &relative, ancestors, found)?;
        } else if meta.is_file() {
            found.push((relative, path));
        }
    }
    ancestors.pop();
    Ok(())
}
