//! Which entry binary runs a job, and where it lies. A command task runs under `grounds-entry` (small:
//! no AWS SDK, no polars), a builtin task under `grounds-builtin` (the trainer); an image task brings its
//! own `train`. Both are installed beside `grounds` (`cargo build` puts them in the same folder; `make
//! install` in `$PREFIX/lib/grounds`), and are what images carry as `/usr/local/bin/train` and what
//! attached runs start.

use std::path::{Path, PathBuf};

use crate::config::task::Runner;

/// The entry of command tasks.
pub const COMMAND_ENTRY: &str = "grounds-entry";
/// The entry of builtin tasks.
pub const BUILTIN_ENTRY: &str = "grounds-builtin";

/// The entry binary's name for a task's runner; none for an image task, whose image has its own.
pub fn name_for(runner: &Runner) -> Option<&'static str> {
    match runner {
        Runner::Command(_) => Some(COMMAND_ENTRY),
        Runner::Builtin(_) => Some(BUILTIN_ENTRY),
        Runner::Image(_) => None,
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the entry binary {name} is not beside grounds (looked for {looked}): build the whole workspace \
     (`make build`, or `cargo build` at its root) or install it with `make install`, or give \
     --entry-binary PATH"
)]
pub struct EntryMissing {
    name: String,
    looked: String,
}

/// Where the entry binary `name` lies: beside the running `grounds`, else in `../lib/grounds/` from it.
pub fn locate(name: &str) -> Result<PathBuf, EntryMissing> {
    let exe = std::env::current_exe().ok();
    let folder = exe.as_deref().and_then(Path::parent);
    let candidates: Vec<PathBuf> = folder
        .map(|dir| {
            vec![
                dir.join(name),
                dir.join("..").join("lib").join("grounds").join(name),
            ]
        })
        .unwrap_or_default();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| EntryMissing {
            name: name.to_string(),
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The entry binary of a task's runner, found beside grounds; `None` for an image task.
pub fn for_runner(runner: &Runner) -> Result<Option<PathBuf>, EntryMissing> {
    name_for(runner).map(locate).transpose()
}
