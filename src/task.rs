//! Task files: the TOML a user writes to describe a job, parsed strictly and validated before anything runs.
//!
//! Every error names the file, and where it can the line and column, and says what was expected, so that a
//! typo costs seconds rather than a failed SageMaker job.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// SageMaker job names are `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`; ours are `<name>-<YYYYmmdd>-<HHMMSS>-<xxxx>`.
pub const JOB_NAME_MAX: usize = 63;
/// Length of the `-YYYYmmdd-HHMMSS-xxxx` suffix that every job name gets.
pub const JOB_SUFFIX_LEN: usize = 21;
pub const TASK_NAME_MAX: usize = JOB_NAME_MAX - JOB_SUFFIX_LEN;
pub const MAX_CHANNELS: usize = 20;
pub const CHANNEL_NAME_MAX: usize = 64;
pub const MAX_HYPERPARAMETERS: usize = 100;
pub const HYPERPARAMETER_KEY_MAX: usize = 256;
pub const HYPERPARAMETER_VALUE_MAX: usize = 2500;

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

/// `[task.builtin]`: training that runs inside grounds itself.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuiltinSpec {
    pub kind: BuiltinKind,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(default)]
    pub model: ModelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_size: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltinKind {
    SingleFrame,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    #[default]
    LogisticRegression,
    LinearRegression,
}

/// `[container]`: how the image is made and what the container gets at run time.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_packages: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
}

/// `[remote]`: SageMaker settings; checked in detail by the remote executor.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size_gb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    /// Managed spot training; `max_wait` bounds the wait for capacity plus the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
    /// Sync /opt/ml/checkpoints to s3://<bucket>/sagemaker/<task>/checkpoints/<job>/.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<bool>,
}

// ---- the task as resolved ------------------------------------------------------------------------------

/// What the job runs: a program of the user's, or a builtin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Runner {
    Command(CommandSpec),
    Builtin(BuiltinSpec),
    Image(ImageTaskSpec),
}

/// An image task: the user's own training image, whose `train` reads `/opt/ml` itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageTaskSpec {
    pub uri: String,
}

/// A command task as it is delivered: `run` starts in the unpacked source folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommandSpec {
    pub run: Vec<String>,
    /// The requirements file, relative to the source folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<String>,
}

/// A channel: a local file or folder (absolute here), or an `s3://` URI used as it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChannelSource {
    Local(PathBuf),
    S3(String),
}

impl ChannelSource {
    pub fn describe(&self) -> String {
        match self {
            ChannelSource::Local(path) => path.display().to_string(),
            ChannelSource::S3(uri) => uri.clone(),
        }
    }
}

/// The part of a task that travels inside the package as `task.json`: independent of where the task
/// file lies on this machine, so that the package hash identifies the code and the task, not the disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskSpec {
    pub name: String,
    pub version: String,
    pub runner: Runner,
    /// Hyperparameters as the task file gives them (strings, as SageMaker passes them).
    pub hyperparameters: BTreeMap<String, String>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub container: ContainerSpec,
    #[serde(default)]
    pub remote: RemoteSpec,
    /// `[metrics]`: name to regex, parsed from the output in every mode and sent to SageMaker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, String>,
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
            let source = if let Some(rest) = value.strip_prefix("s3://") {
                if rest.is_empty() || rest.starts_with('/') {
                    return Err(invalid(
                        Some(location.span()),
                        format!(
                            "channel `{}`: `{value}` is not an s3://bucket/prefix URI",
                            channel.get_ref()
                        ),
                    ));
                }
                ChannelSource::S3(value.clone())
            } else {
                let full = base.join(value);
                if !full.exists() {
                    return Err(invalid(
                        Some(location.span()),
                        format!(
                            "channel `{}`: {} does not exist (local paths are relative to the task file; \
                             use s3://bucket/prefix for data in S3)",
                            channel.get_ref(),
                            full.display()
                        ),
                    ));
                }
                ChannelSource::Local(full)
            };
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
            crate::metrics::check_definition(name.get_ref(), regex.get_ref())
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
        if definitions > crate::metrics::MAX_DEFINITIONS {
            let first = file.metrics.keys().next().map(|k| k.span());
            return Err(invalid(
                first,
                format!(
                    "{definitions} metric definitions ([metrics] and [remote] metrics together); \
                     SageMaker takes at most {}",
                    crate::metrics::MAX_DEFINITIONS
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

/// A float nowhere in `value` is NaN or infinite (JSON, and so SageMaker's hyperparameters, has none).
fn check_finite(value: &toml::Value) -> Result<(), String> {
    match value {
        toml::Value::Float(f) if !f.is_finite() => Err(format!(
            "{f} is not a finite number; hyperparameters travel as JSON text, which has no NaN or \
             infinity: give a finite number"
        )),
        toml::Value::Array(items) => items.iter().try_for_each(check_finite),
        toml::Value::Table(table) => table.values().try_for_each(check_finite),
        _ => Ok(()),
    }
}

/// TOML values become the strings SageMaker passes: strings as they are, everything else as JSON text.
fn hyperparameter_string(value: &toml::Value) -> Result<String, String> {
    check_finite(value)?;
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => serde_json::to_string(f).map_err(|e| e.to_string())?,
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            serde_json::to_string(value).map_err(|e| e.to_string())?
        }
    })
}

/// Parses `key=value` as given to `--hp`.
pub fn parse_override(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "`{text}` is not key=value (e.g. --hp max_iter=500)"
        )),
    }
}

fn check_hyperparameters(hyperparameters: &BTreeMap<String, String>) -> Result<(), String> {
    if hyperparameters.len() > MAX_HYPERPARAMETERS {
        return Err(format!(
            "{} hyperparameters given; SageMaker allows at most {MAX_HYPERPARAMETERS}",
            hyperparameters.len()
        ));
    }
    for (key, value) in hyperparameters {
        if key.is_empty() || key.chars().count() > HYPERPARAMETER_KEY_MAX {
            return Err(format!(
                "hyperparameter name `{key}` must have 1 to {HYPERPARAMETER_KEY_MAX} characters"
            ));
        }
        check_text(&format!("hyperparameter name `{}`", key.escape_default()), key, true)?;
        check_text(&format!("hyperparameter `{key}`"), value, false)?;
        if value
            .trim()
            .parse::<f64>()
            .is_ok_and(|number| !number.is_finite())
        {
            return Err(format!(
                "hyperparameter `{key}` = `{value}` is not a finite number; hyperparameters travel as JSON \
                 text, which has no NaN or infinity (and a program reading it as a number would get one): \
                 give a finite number"
            ));
        }
        if value.chars().count() > HYPERPARAMETER_VALUE_MAX {
            return Err(format!(
                "hyperparameter `{key}` has a value of {} characters; SageMaker allows at most \
                 {HYPERPARAMETER_VALUE_MAX}",
                value.chars().count()
            ));
        }
    }
    Ok(())
}

/// Text that reaches a Dockerfile, an environment or a command line holds no NUL, and, when it is one line
/// (`line`), no control character at all: a newline in `base_image` would add an instruction to the
/// Dockerfile.
fn check_text(what: &str, text: &str, line: bool) -> Result<(), String> {
    let bad = if line {
        text.chars().find(|c| c.is_control())
    } else {
        text.chars().find(|c| *c == '\0')
    };
    match bad {
        Some(c) => Err(format!(
            "{what} holds a control character ({}): {}",
            c.escape_default(),
            if line {
                "it must be one line of text"
            } else {
                "NUL cannot be passed to a program"
            }
        )),
        None => Ok(()),
    }
}

/// `[container]`: what reaches the Dockerfile and the containers' environment is checked for what would
/// break out of it.
fn check_container(container: &ContainerSpec) -> Result<(), String> {
    if let Some(base) = &container.base_image {
        check_text("[container] base_image", base, true)?;
        if base.is_empty() || base.contains(char::is_whitespace) {
            return Err(format!(
                "[container] base_image `{base}` is not an image reference such as python:3.11-slim"
            ));
        }
    }
    if let Some(dockerfile) = &container.dockerfile {
        check_text("[container] dockerfile", dockerfile, true)?;
    }
    for package in &container.system_packages {
        check_text("[container] system_packages", package, true)?;
        // Debian package names, optionally with =version or :arch; nothing a shell would read.
        let valid = !package.is_empty()
            && package.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '=' | ':' | '~' | '_')
            })
            && !package.starts_with('-');
        if !valid {
            return Err(format!(
                "[container] system_packages has `{package}`, which is not a Debian package name (such as \
                 libgomp1 or curl=7.88.1-10)"
            ));
        }
    }
    for (key, value) in &container.env {
        check_text(&format!("[container] env name `{key}`"), key, true)?;
        check_text(&format!("[container] env `{key}`"), value, false)?;
        if key.is_empty() || key.contains('=') {
            return Err(format!(
                "[container] env name `{key}` is not a variable name (it may not be empty or hold `=`)"
            ));
        }
    }
    for name in &container.pass_env {
        check_text("[container] pass_env", name, true)?;
        if name.is_empty() || name.contains('=') {
            return Err(format!(
                "[container] pass_env has `{name}`, which is not a variable name"
            ));
        }
    }
    Ok(())
}

/// A path with `.` and `..` taken out as written, without looking at the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

pub fn check_task_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("task name is empty: give it a name of letters, digits and hyphens".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "task name `{name}` has `{bad}`; job names allow only letters, digits and hyphens (a-z A-Z 0-9 -)"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "task name `{name}` must start with a letter or digit"
        ));
    }
    if name.len() > TASK_NAME_MAX {
        return Err(format!(
            "task name `{name}` has {} characters; at most {TASK_NAME_MAX} fit, since job names add a \
             {JOB_SUFFIX_LEN}-character time stamp and SageMaker allows {JOB_NAME_MAX} in all",
            name.len()
        ));
    }
    Ok(())
}

fn check_channel_name(name: &str) -> Result<(), String> {
    if name == "." || name == ".." {
        return Err(format!(
            "channel name `{name}` would be the data folder itself or its parent, not a channel in it: \
             give it a name such as `training`"
        ));
    }
    if name.is_empty() || name.len() > CHANNEL_NAME_MAX {
        return Err(format!(
            "channel name `{name}` must have 1 to {CHANNEL_NAME_MAX} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "channel name `{name}` has `{bad}`; channel names allow letters, digits, `.`, `-` and `_`"
        ));
    }
    Ok(())
}

/// Adds what to do to the parser's message where the message alone would leave a user guessing.
fn explain_toml_error(message: &str) -> String {
    if message.starts_with("unknown field") {
        format!("{message}; check the spelling, or see the task file reference in README.md")
    } else if message.starts_with("missing field") {
        format!("{message}: add it")
    } else {
        message.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Task, TaskError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.csv"), "a,b\n1,2\n").unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        Task::parse(&dir.path().join("task.toml"), text)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const BUILTIN: &str =
        "[task]\nname = \"t\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"b\"\n";

    #[test]
    fn builtin_task_parses_with_channels_and_hyperparameters() {
        let text = format!("{BUILTIN}[channels]\ntraining = \"data.csv\"\n[hyperparameters]\nmax_iter = 1000\nC = 0.5\nflag = true\nname = \"x y\"\n");
        let task = parse(&text).unwrap();
        assert_eq!(task.spec.hyperparameters["max_iter"], "1000");
        assert_eq!(task.spec.hyperparameters["C"], "0.5");
        assert_eq!(task.spec.hyperparameters["flag"], "true");
        assert_eq!(task.spec.hyperparameters["name"], "x y");
        assert!(
            matches!(task.channels["training"], ChannelSource::Local(ref p) if p.ends_with("data.csv"))
        );
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let message = error(&format!("{BUILTIN}lable = \"x\"\n"));
        assert!(message.contains("task.toml:6:1"), "{message}");
        assert!(message.contains("unknown field `lable`"), "{message}");
    }

    #[test]
    fn bad_name_characters_and_length() {
        let message = error(
            "[task]\nname = \"my_task\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"b\"\n",
        );
        assert!(
            message.contains(":2:8") && message.contains("`_`"),
            "{message}"
        );
        let long = "a".repeat(TASK_NAME_MAX + 1);
        let message = error(&format!(
            "[task]\nname = \"{long}\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"b\"\n"
        ));
        assert!(message.contains("at most 42"), "{message}");
    }

    #[test]
    fn both_or_neither_runner_is_refused() {
        assert!(error("[task]\nname = \"t\"\n").contains("needs [task.builtin]"));
        let both = format!("{BUILTIN}[task.command]\nsource = \"src\"\nrun = [\"python3\"]\n");
        assert!(error(&both).contains("not several"));
    }

    #[test]
    fn channel_names_paths_and_count() {
        assert!(error(&format!(
            "{BUILTIN}[channels]\n\"bad name\" = \"data.csv\"\n"
        ))
        .contains("channel name `bad name`"));
        let missing = error(&format!("{BUILTIN}[channels]\ntraining = \"nope.csv\"\n"));
        assert!(
            missing.contains("nope.csv does not exist") && missing.contains(":7:12"),
            "{missing}"
        );
        let many: String = (0..21)
            .map(|i| format!("c{i} = \"s3://b/{i}\"\n"))
            .collect();
        assert!(error(&format!("{BUILTIN}[channels]\n{many}")).contains("at most 20"));
    }

    #[test]
    fn hyperparameter_limits() {
        let many: String = (0..101).map(|i| format!("h{i} = {i}\n")).collect();
        assert!(error(&format!("{BUILTIN}[hyperparameters]\n{many}")).contains("at most 100"));
        let long = "x".repeat(2501);
        assert!(
            error(&format!("{BUILTIN}[hyperparameters]\nh = \"{long}\"\n"))
                .contains("at most 2500")
        );
        let task = parse(BUILTIN).unwrap();
        let err = task
            .with_overrides(&[("k".repeat(257), "1".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 to 256 characters"), "{err}");
    }

    #[test]
    fn command_task_checks_source_and_run() {
        let ok = parse("[task]\nname = \"t\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n").unwrap();
        assert!(
            matches!(ok.spec.runner, Runner::Command(ref c) if c.run == ["python3", "train.py"])
        );
        assert!(error(
            "[task]\nname = \"t\"\n[task.command]\nsource = \"nowhere\"\nrun = [\"x\"]\n"
        )
        .contains("source folder `nowhere` does not exist"));
        assert!(
            error("[task]\nname = \"t\"\n[task.command]\nsource = \"src\"\nrun = []\n")
                .contains("must name the program")
        );
        assert!(error("[task]\nname = \"t\"\n[task.command]\nsource = \"src\"\nrun = [\"x\"]\nrequirements = \"data.csv\"\n").contains("outside the source folder"));
    }

    #[test]
    fn overrides_parse() {
        assert_eq!(parse_override("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_override("novalue").is_err());
    }
}
