//! Task files: the TOML a user writes to describe a job, parsed strictly and validated before anything runs.
//!
//! Every error names the file, and where it can the line and column, and says what was expected, so that a
//! typo costs seconds rather than a failed SageMaker job.
//!
//! The spec types that travel with a job are in [`spec`]; the checks of names, hyperparameters and
//! container settings against SageMaker's limits in [`checks`].

mod checks;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use checks::*;
pub use checks::{
    check_channel_name, check_metric_definition, hyperparameter_string, parse_override,
    JOB_NAME_MAX, JOB_SUFFIX_LEN, MAX_METRIC_DEFINITIONS, MAX_METRIC_NAME, MAX_METRIC_REGEX,
    TASK_NAME_MAX,
};
pub use grounds_job::spec::*;

/// A problem with a task file that the user can fix; it always names the file.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
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

// ---- the file as written -------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    task: TaskSection,
    #[serde(default)]
    channels: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    hyperparameters: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    container: Option<Spanned<ContainerSpec>>,
    #[serde(default)]
    remote: RemoteSpec,
    #[serde(default)]
    sweep: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    /// Metrics as SageMaker users declare them: name = regex whose one group is the value.
    #[serde(default)]
    metrics: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskSection {
    name: Spanned<String>,
    #[serde(default = "default_version")]
    version: String,
    builtin: Option<Spanned<BuiltinSpec>>,
    command: Option<Spanned<CommandSection>>,
    image: Option<Spanned<ImageSection>>,
}

/// `[task.image]`: a training image of the user's own, run as SageMaker runs it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageSection {
    uri: Spanned<String>,
}

fn default_version() -> String {
    "0".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandSection {
    source: Spanned<String>,
    run: Spanned<Vec<String>>,
    requirements: Option<Spanned<String>>,
    #[serde(default)]
    include_secrets: Vec<String>,
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
    pub fn load(path: &Path) -> Result<Task, TaskError> {
        let text = std::fs::read_to_string(path).map_err(|error| TaskError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Task, TaskError> {
        let invalid = |span: Option<std::ops::Range<usize>>, message: String| TaskError::Invalid {
            path: path.to_path_buf(),
            location: span
                .map(|s| Location::of(text, s.start))
                .unwrap_or_default(),
            message,
        };
        let file: TaskFile = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().to_string();
            invalid(e.span(), explain_toml_error(&message))
        })?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());

        let name = file.task.name.get_ref();
        if let Err(why) = check_task_name(name) {
            return Err(invalid(Some(file.task.name.span()), why));
        }

        let kinds = [
            file.task.builtin.as_ref().map(|b| b.span()),
            file.task.command.as_ref().map(|c| c.span()),
            file.task.image.as_ref().map(|i| i.span()),
        ];
        if kinds.iter().flatten().count() > 1 {
            return Err(invalid(
                kinds.iter().flatten().nth(1).cloned(),
                "a task has one of [task.builtin], [task.command] and [task.image], not several: \
                 keep one"
                    .into(),
            ));
        }
        let image_task = match file.task.image {
            None => None,
            Some(image) => {
                let image = image.into_inner();
                let uri = image.uri.get_ref();
                if uri.is_empty() || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(invalid(
                        Some(image.uri.span()),
                        format!(
                            "[task.image] uri `{}` is not an image reference such as \
                             my-training:1.0 or 123456789012.dkr.ecr.eu-west-1.amazonaws.com/train:1",
                            uri.escape_default()
                        ),
                    ));
                }
                Some(Runner::Image(ImageTaskSpec { uri: uri.clone() }))
            }
        };
        let (runner, source, include_secrets) = match (image_task, file.task.builtin, file.task.command) {
            (Some(image), _, _) => (image, None, Vec::new()),
            (None, Some(_), Some(command)) => {
                return Err(invalid(
                    Some(command.span()),
                    "a task has either [task.builtin] or [task.command], not both: remove one"
                        .into(),
                ))
            }
            (None, None, None) => return Err(invalid(
                Some(file.task.name.span()),
                "[task] needs [task.builtin] (tabular training inside grounds), [task.command] (your \
                     own program) or [task.image] (your own training image): add one of them"
                    .into(),
            )),
            (None, Some(builtin), None) => {
                let span = builtin.span();
                let builtin = builtin.into_inner();
                if let (Some(_), Some(_)) = (builtin.folds, builtin.test_size) {
                    return Err(invalid(
                        Some(span),
                        "[task.builtin] takes `folds` or `test_size`, not both: keep one".into(),
                    ));
                }
                if let Some(folds) = builtin.folds.filter(|k| *k < 2) {
                    return Err(invalid(
                        Some(span),
                        format!(
                            "[task.builtin] folds = {folds}: K-fold cross-validation needs at least 2 \
                             folds (use test_size for one hold-out split)"
                        ),
                    ));
                }
                if let Some(size) = builtin.test_size.filter(|t| !(*t > 0.0 && *t < 1.0)) {
                    return Err(invalid(
                        Some(span),
                        format!(
                            "[task.builtin] test_size = {size}: the share of rows held out must lie \
                             between 0 and 1, e.g. 0.2"
                        ),
                    ));
                }
                (Runner::Builtin(builtin), None, Vec::new())
            }
            (None, None, Some(command)) => {
                let command = command.into_inner();
                if command.run.get_ref().is_empty() || command.run.get_ref()[0].trim().is_empty() {
                    return Err(invalid(
                        Some(command.run.span()),
                        "`run` must name the program to start, e.g. run = [\"python3\", \"train.py\"]"
                            .into(),
                    ));
                }
                let source = base.join(command.source.get_ref());
                if !source.is_dir() {
                    return Err(invalid(
                        Some(command.source.span()),
                        format!(
                            "source folder `{}` does not exist (looked for {}); `source` is relative to \
                             the task file",
                            command.source.get_ref(),
                            source.display()
                        ),
                    ));
                }
                let requirements = match &command.requirements {
                    None => None,
                    Some(req) => {
                        let full = base.join(req.get_ref());
                        // Where it really is, links and `..` resolved: it must be in the source folder.
                        let real_source = std::fs::canonicalize(&source).unwrap_or(source.clone());
                        let relative = std::fs::canonicalize(&full)
                            .ok()
                            .and_then(|real| {
                                real.strip_prefix(&real_source).ok().map(Path::to_path_buf)
                            })
                            .or_else(|| {
                                // It does not exist: judge the path as written, `..` resolved.
                                let lexical = normalize(&full);
                                lexical
                                    .strip_prefix(normalize(&source))
                                    .ok()
                                    .map(Path::to_path_buf)
                            })
                            .map(|r| r.to_string_lossy().into_owned());
                        match relative {
                            Some(rel) if full.is_file() => {
                                check_text("`requirements`", &rel, true)
                                    .map_err(|why| invalid(Some(req.span()), why))?;
                                Some(rel)
                            }
                            Some(_) => {
                                return Err(invalid(
                                    Some(req.span()),
                                    format!("requirements file {} does not exist", full.display()),
                                ))
                            }
                            None => {
                                return Err(invalid(
                                    Some(req.span()),
                                    format!(
                                        "requirements file `{}` is outside the source folder `{}`: only \
                                         the source folder is delivered, so move it there",
                                        req.get_ref(),
                                        command.source.get_ref()
                                    ),
                                ))
                            }
                        }
                    }
                };
                (
                    Runner::Command(CommandSpec {
                        run: command.run.into_inner(),
                        requirements,
                    }),
                    Some(source),
                    command.include_secrets,
                )
            }
        };

        if file.channels.len() > MAX_CHANNELS {
            return Err(invalid(
                None,
                format!(
                    "{} channels given; SageMaker allows at most {MAX_CHANNELS}",
                    file.channels.len()
                ),
            ));
        }
        let mut channels = BTreeMap::new();
        for (channel, location) in &file.channels {
            if let Err(why) = check_channel_name(channel.get_ref()) {
                return Err(invalid(Some(channel.span()), why));
            }
            let value = location.get_ref();
            let source = parse_channel(channel.get_ref(), value, &base, "task file")
                .map_err(|why| invalid(Some(location.span()), why))?;
            channels.insert(channel.get_ref().clone(), source);
        }

        let container = match file.container {
            None => ContainerSpec::default(),
            Some(spanned) => {
                let span = spanned.span();
                let container = spanned.into_inner();
                check_container(&container).map_err(|why| invalid(Some(span.clone()), why))?;
                if let Some(dockerfile) = &container.dockerfile {
                    let full = base.join(dockerfile);
                    if !full.is_file() {
                        return Err(invalid(
                            Some(span),
                            format!(
                                "[container] dockerfile {} does not exist (it is relative to the task \
                                 file)",
                                full.display()
                            ),
                        ));
                    }
                }
                container
            }
        };
        if let Some(bad) = file.task.version.chars().find(|c| c.is_control()) {
            return Err(invalid(
                None,
                format!(
                    "[task] version holds a control character ({}); a version is one line of text",
                    bad.escape_default()
                ),
            ));
        }

        let mut hyperparameters = BTreeMap::new();
        for (key, value) in &file.hyperparameters {
            let text = hyperparameter_string(value.get_ref()).map_err(|why| {
                invalid(
                    Some(value.span()),
                    format!("hyperparameter `{}`: {why}", key.get_ref()),
                )
            })?;
            hyperparameters.insert(key.get_ref().clone(), text);
        }
        check_hyperparameters(&hyperparameters).map_err(|why| invalid(None, why))?;

        let mut metrics = BTreeMap::new();
        for (name, regex) in &file.metrics {
            check_metric_definition(name.get_ref(), regex.get_ref())
                .map_err(|why| invalid(Some(regex.span()), why))?;
            if file.remote.metrics.contains(name.get_ref()) {
                return Err(invalid(
                    Some(name.span()),
                    format!(
                        "metric `{}` is both in [metrics] (a regex) and in [remote] metrics (a \
                         ###METRIC### name): keep one",
                        name.get_ref()
                    ),
                ));
            }
            metrics.insert(name.get_ref().clone(), regex.get_ref().clone());
        }
        let definitions = metrics.len() + file.remote.metrics.len();
        if definitions > MAX_METRIC_DEFINITIONS {
            let first = file.metrics.keys().next().map(|k| k.span());
            return Err(invalid(
                first,
                format!(
                    "{definitions} metric definitions ([metrics] and [remote] metrics together); \
                     SageMaker takes at most {}",
                    MAX_METRIC_DEFINITIONS
                ),
            ));
        }

        let mut sweep = Vec::new();
        for (key, value) in &file.sweep {
            let toml::Value::Array(items) = value.get_ref() else {
                return Err(invalid(
                    Some(value.span()),
                    format!(
                        "sweep `{}` must be a list of values, e.g. {} = [0.1, 0.01]",
                        key.get_ref(),
                        key.get_ref()
                    ),
                ));
            };
            if items.is_empty() {
                return Err(invalid(
                    Some(value.span()),
                    format!("sweep `{}` has no values", key.get_ref()),
                ));
            }
            let values = items
                .iter()
                .map(hyperparameter_string)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|why| {
                    invalid(
                        Some(value.span()),
                        format!("sweep `{}`: {why}", key.get_ref()),
                    )
                })?;
            sweep.push((key.get_ref().clone(), values));
        }

        Ok(Task {
            file: path.to_path_buf(),
            spec: TaskSpec {
                name: name.clone(),
                version: file.task.version,
                runner,
                hyperparameters,
                channels: channels.keys().cloned().collect(),
                container,
                remote: file.remote,
                metrics,
            },
            source,
            include_secrets,
            channels,
            sweep,
        })
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
