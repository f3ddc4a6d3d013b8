//! Task files: the TOML a user writes to describe a job, parsed strictly and validated before anything runs.
//!
//! Every error names the file, and where it can the line and column, and says what was expected, so that a
//! typo costs seconds rather than a failed SageMaker job.
//!
//! The spec types that travel with a job are in [`spec`]; the checks of names, hyperparameters and
//! container settings against SageMaker's limits in [`checks`].

pub(crate) mod checks;
mod read;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use checks::*;
pub use checks::{
    check_channel_name, hyperparameter_string, parse_override, JOB_NAME_MAX, JOB_SUFFIX_LEN,
    MAX_METRIC_DEFINITIONS, MAX_METRIC_NAME, MAX_METRIC_REGEX, TASK_NAME_MAX,
};
pub use grounds_job::spec::*;

/// A problem with a task file that the user can fix; it always names the file.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(
        "{folder} is a folder with no task.toml in it: give a task file (`grounds init` writes one), or \
         the folder that holds it"
    )]
    FolderWithoutTask { folder: PathBuf },
    #[error("cannot read task file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}{location}: {message}")]
    Invalid {
        path: PathBuf,
        location: Location,
        message: String,
    },
}

/// Where in a file a problem is; printed as `:line:column`, or nothing when unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Location(Option<(usize, usize)>);

impl Location {
    fn of(text: &str, offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.len(), |nl| before.len() - nl - 1)
            + 1;
        Location(Some((line, column)))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, column)) => write!(f, ":{line}:{column}"),
            None => Ok(()),
        }
    }
}

/// A task file, loaded and validated.
#[derive(Debug, Clone)]
pub struct Task {
    pub file: PathBuf,
    pub spec: TaskSpec,
    /// The source folder of a command task (absolute).
    pub source: Option<PathBuf>,
    /// Files in the source folder that may be packaged although they look like secrets.
    pub include_secrets: Vec<String>,
    pub channels: BTreeMap<String, ChannelSource>,
    /// `[sweep]`: hyperparameters with several values, as strings.
    pub sweep: Vec<(String, Vec<String>)>,
}

impl Task {
    /// Reads the task file at `path`; a folder stands for the `task.toml` in it.
    pub fn load(path: &Path) -> Result<Task, TaskError> {
        let in_folder;
        let path = if path.is_dir() {
            in_folder = path.join("task.toml");
            if !in_folder.is_file() {
                return Err(TaskError::FolderWithoutTask {
                    folder: path.to_path_buf(),
                });
            }
            in_folder.as_path()
        } else {
            path
        };
        let text = std::fs::read_to_string(path).map_err(|error| TaskError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates a task file's text; `path` is where it was read (channels, the source folder
    /// and the requirements are relative to its folder).
    pub fn parse(path: &Path, text: &str) -> Result<Task, TaskError> {
        read::parse(path, text)
    }

    /// Applies `--hp key=value` overrides, with the same limits as the file.
    pub fn with_overrides(mut self, overrides: &[(String, String)]) -> Result<Task, TaskError> {
        for (key, value) in overrides {
            self.spec.hyperparameters.insert(key.clone(), value.clone());
        }
        check_hyperparameters(&self.spec.hyperparameters).map_err(|why| TaskError::Invalid {
            path: self.file.clone(),
            location: Location::default(),
            message: format!("with --hp: {why}"),
        })?;
        Ok(self)
    }
}

/// A channel's value as a task or pipeline file gives it: `s3://bucket/prefix`, `result://ID/model|output`,
/// or a path relative to `base` (the folder of the `file_kind` file: "task file", "pipeline file"), which
/// must exist. The error names the channel and says what is accepted.
pub fn parse_channel(
    channel: &str,
    value: &str,
    base: &Path,
    file_kind: &str,
) -> Result<ChannelSource, String> {
    if let Some(rest) = value.strip_prefix("s3://") {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!(
                "channel `{channel}`: `{value}` is not an s3://bucket/prefix URI"
            ));
        }
        return Ok(ChannelSource::S3(value.to_string()));
    }
    if let Some(rest) = value.strip_prefix("result://") {
        let (id, folder) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(folder) = ResultFolder::parse(folder) else {
            return Err(format!(
                "channel `{channel}`: `{value}` is not result://ID/model or result://ID/output (ID: a result \
                 id or a unique prefix of one, as `grounds results list` shows)"
            ));
        };
        if id.is_empty() {
            return Err(format!(
                "channel `{channel}`: `{value}` names no result: result://ID/{folder}"
            ));
        }
        return Ok(ChannelSource::Result {
            id: id.to_string(),
            folder,
        });
    }
    let full = base.join(value);
    if !full.exists() {
        return Err(format!(
            "channel `{channel}`: {} does not exist (local paths are relative to the {file_kind}; use \
             s3://bucket/prefix for data in S3)",
            full.display()
        ));
    }
    Ok(ChannelSource::Local(full))
}

#[cfg(test)]
mod tests;
