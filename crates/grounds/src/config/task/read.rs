//! A task file's text read into a [`Task`]: the file as written (TOML with spans, unknown keys refused),
//! then each section checked in turn, every error naming the file and, where it can, the line and column.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::checks::*;
use super::{
    parse_channel, BuiltinSpec, ChannelSource, CommandSpec, ContainerSpec, ImageTaskSpec, Location,
    RemoteSpec, Runner, Task, TaskError, TaskSpec,
};

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
    /// One of AWS's framework images (or one like them, with the sagemaker-training toolkit) to run the
    /// script on as it is, the source delivered beside it as SageMaker's SDK delivers it.
    framework_image: Option<Spanned<String>>,
}

/// What a task runs, and for a command task its source folder and the secrets it may deliver.
struct RunnerOf {
    runner: Runner,
    source: Option<PathBuf>,
    include_secrets: Vec<String>,
}

/// The file being read: its path, text (for line and column) and folder (what paths are relative to).
struct Reader<'a> {
    path: &'a Path,
    text: &'a str,
    base: PathBuf,
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Task, TaskError> {
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let reader = Reader {
        path,
        text,
        base: std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf()),
    };
    let file: TaskFile = toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end().to_string();
        reader.invalid(e.span(), explain_toml_error(&message))
    })?;
    let name = file.task.name.get_ref().clone();
    if let Err(why) = check_task_name(&name) {
        return Err(reader.invalid(Some(file.task.name.span()), why));
    }
    if let Some(bad) = file.task.version.chars().find(|c| c.is_control()) {
        return Err(reader.invalid(
            None,
            format!(
                "[task] version holds a control character ({}); a version is one line of text",
                bad.escape_default()
            ),
        ));
    }
    let version = file.task.version.clone();
    let RunnerOf {
        runner,
        source,
        include_secrets,
    } = reader.runner(file.task)?;
    let channels = reader.channels(&file.channels)?;
    let container = reader.container(file.container)?;
    let hyperparameters = reader.hyperparameters(&file.hyperparameters)?;
    let metrics = reader.metrics(&file.metrics, &file.remote)?;
    let sweep = reader.sweep(&file.sweep)?;
    Ok(Task {
        file: path.to_path_buf(),
        spec: TaskSpec {
            name,
            version,
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

impl Reader<'_> {
    fn invalid(&self, span: Option<Range<usize>>, message: String) -> TaskError {
        TaskError::Invalid {
            path: self.path.to_path_buf(),
            location: span
                .map(|s| Location::of(self.text, s.start))
                .unwrap_or_default(),
            message,
        }
    }

    /// `[task.builtin]`, `[task.command]` or `[task.image]`: exactly one of them.
    fn runner(&self, task: TaskSection) -> Result<RunnerOf, TaskError> {
        let kinds = [
            task.builtin.as_ref().map(|b| b.span()),
            task.command.as_ref().map(|c| c.span()),
            task.image.as_ref().map(|i| i.span()),
        ];
        if kinds.iter().flatten().count() > 1 {
            return Err(self.invalid(
                kinds.iter().flatten().nth(1).cloned(),
                "a task has one of [task.builtin], [task.command] and [task.image], not several: \
                 keep one"
                    .into(),
            ));
        }
        let plain = |runner| RunnerOf {
            runner,
            source: None,
            include_secrets: Vec::new(),
        };
        match (task.image, task.builtin, task.command) {
            (Some(image), _, _) => self.image(image.into_inner()).map(plain),
            (None, Some(builtin), _) => self.builtin(builtin).map(plain),
            (None, None, Some(command)) => self.command(command.into_inner()),
            (None, None, None) => Err(self.invalid(
                Some(task.name.span()),
                "[task] needs [task.builtin] (tabular training inside grounds), [task.command] (your \
                 own program) or [task.image] (your own training image): add one of them"
                    .into(),
            )),
        }
    }

    fn image(&self, image: ImageSection) -> Result<Runner, TaskError> {
        let uri = image.uri.get_ref();
        if uri.is_empty() || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.invalid(
                Some(image.uri.span()),
                format!(
                    "[task.image] uri `{}` is not an image reference such as \
                     my-training:1.0 or 123456789012.dkr.ecr.eu-west-1.amazonaws.com/train:1",
                    uri.escape_default()
                ),
            ));
        }
        Ok(Runner::Image(ImageTaskSpec { uri: uri.clone() }))
    }

    fn builtin(&self, builtin: Spanned<BuiltinSpec>) -> Result<Runner, TaskError> {
        let span = builtin.span();
        let builtin = builtin.into_inner();
        if let (Some(_), Some(_)) = (builtin.folds, builtin.test_size) {
            return Err(self.invalid(
                Some(span),
                "[task.builtin] takes `folds` or `test_size`, not both: keep one".into(),
            ));
        }
        if let Some(folds) = builtin.folds.filter(|k| *k < 2) {
            return Err(self.invalid(
                Some(span),
                format!(
                    "[task.builtin] folds = {folds}: K-fold cross-validation needs at least 2 \
                     folds (use test_size for one hold-out split)"
                ),
            ));
        }
        if let Some(size) = builtin.test_size.filter(|t| !(*t > 0.0 && *t < 1.0)) {
            return Err(self.invalid(
                Some(span),
                format!(
                    "[task.builtin] test_size = {size}: the share of rows held out must lie \
                     between 0 and 1, e.g. 0.2"
                ),
            ));
        }
        Ok(Runner::Builtin(builtin))
    }

    fn command(&self, command: CommandSection) -> Result<RunnerOf, TaskError> {
        if command.run.get_ref().is_empty() || command.run.get_ref()[0].trim().is_empty() {
            return Err(self.invalid(
                Some(command.run.span()),
                "`run` must name the program to start, e.g. run = [\"python3\", \"train.py\"]"
                    .into(),
            ));
        }
        let source = self.base.join(command.source.get_ref());
        if !source.is_dir() {
            return Err(self.invalid(
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
            Some(requirements) => {
                Some(self.requirements(requirements, &source, command.source.get_ref())?)
            }
        };
        let framework_image = match &command.framework_image {
            None => None,
            Some(image) => Some(self.framework_image(image, &command, &source, &requirements)?),
        };
        Ok(RunnerOf {
            runner: Runner::Command(CommandSpec {
                run: command.run.into_inner(),
                requirements,
                framework_image,
            }),
            source: Some(source),
            include_secrets: command.include_secrets,
        })
    }

    /// `framework_image`: an image reference, with a `run` the toolkit can start (a program and the script,
    /// a file of the source folder: the toolkit runs it with the hyperparameters as arguments) and
    /// requirements, if any, where the toolkit installs them from (`requirements.txt` at the source root).
    fn framework_image(
        &self,
        image: &Spanned<String>,
        command: &CommandSection,
        source: &Path,
        requirements: &Option<String>,
    ) -> Result<String, TaskError> {
        let uri = image.get_ref();
        if uri.is_empty() || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.invalid(
                Some(image.span()),
                format!(
                    "framework_image `{}` is not an image reference such as \
                     763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311",
                    uri.escape_default()
                ),
            ));
        }
        let run = command.run.get_ref();
        match run.as_slice() {
            [_, script] if source.join(script).is_file() && Path::new(script).is_relative() => {}
            _ => {
                return Err(self.invalid(
                    Some(command.run.span()),
                    format!(
                        "with framework_image, `run` is the interpreter and the script, a file of the \
                         source folder (e.g. run = [\"python3\", \"train.py\"]): the image's toolkit \
                         starts the script itself, with the hyperparameters as arguments; found {run:?}"
                    ),
                ))
            }
        }
        if requirements
            .as_deref()
            .is_some_and(|r| r != "requirements.txt")
        {
            return Err(self.invalid(
                command.requirements.as_ref().map(|r| r.span()),
                format!(
                    "with framework_image, the toolkit installs `requirements.txt` at the root of the \
                     source folder when the job starts: name that file (requirements = \"{}/requirements.txt\") \
                     or leave `requirements` out",
                    command.source.get_ref().trim_end_matches('/')
                ),
            ));
        }
        Ok(uri.clone())
    }

    /// `requirements`, as a path in the source folder: where it really is, links and `..` resolved, must
    /// be inside it.
    fn requirements(
        &self,
        requirements: &Spanned<String>,
        source: &Path,
        source_as_written: &str,
    ) -> Result<String, TaskError> {
        let full = self.base.join(requirements.get_ref());
        let real_source = std::fs::canonicalize(source).unwrap_or(source.to_path_buf());
        let relative = std::fs::canonicalize(&full)
            .ok()
            .and_then(|real| real.strip_prefix(&real_source).ok().map(Path::to_path_buf))
            .or_else(|| {
                // It does not exist: judge the path as written, `..` resolved.
                normalize(&full)
                    .strip_prefix(normalize(source))
                    .ok()
                    .map(Path::to_path_buf)
            })
            .map(|r| r.to_string_lossy().into_owned());
        match relative {
            Some(relative) if full.is_file() => {
                check_text("`requirements`", &relative, true)
                    .map_err(|why| self.invalid(Some(requirements.span()), why))?;
                Ok(relative)
            }
            Some(_) => Err(self.invalid(
                Some(requirements.span()),
                format!("requirements file {} does not exist", full.display()),
            )),
            None => {
                // Paths in a task file are relative to the task file's folder, not the source folder:
                // the commonest slip is the file's name alone when it lies in the source folder.
                let in_source = source.join(requirements.get_ref());
                let hint = match in_source.is_file() {
                    true => format!(
                        "; there is one in the source folder: write requirements = \"{}/{}\"",
                        source_as_written.trim_end_matches('/'),
                        requirements.get_ref()
                    ),
                    false => ", so move it there".to_string(),
                };
                Err(self.invalid(
                    Some(requirements.span()),
                    format!(
                        "requirements file `{}` is {}, outside the source folder `{source_as_written}`: \
                         paths in a task file are relative to the task file's folder, and only the \
                         source folder is delivered{hint}",
                        requirements.get_ref(),
                        full.display(),
                    ),
                ))
            }
        }
    }

    fn channels(
        &self,
        written: &BTreeMap<Spanned<String>, Spanned<String>>,
    ) -> Result<BTreeMap<String, ChannelSource>, TaskError> {
        // One of SageMaker's channels is the package's (`grounds_package`).
        if written.len() >= MAX_CHANNELS {
            return Err(self.invalid(
                None,
                format!(
                    "{} channels given; SageMaker allows at most {MAX_CHANNELS} and one of them is \
                     grounds' own (`{}`, the job's package): give at most {}",
                    written.len(),
                    grounds_job::contract::PACKAGE_CHANNEL,
                    MAX_CHANNELS - 1
                ),
            ));
        }
        let mut channels = BTreeMap::new();
        for (channel, location) in written {
            if let Err(why) = check_channel_name(channel.get_ref()) {
                return Err(self.invalid(Some(channel.span()), why));
            }
            let source = parse_channel(
                channel.get_ref(),
                location.get_ref(),
                &self.base,
                "task file",
            )
            .map_err(|why| self.invalid(Some(location.span()), why))?;
            channels.insert(channel.get_ref().clone(), source);
        }
        Ok(channels)
    }

    fn container(
        &self,
        written: Option<Spanned<ContainerSpec>>,
    ) -> Result<ContainerSpec, TaskError> {
        let Some(spanned) = written else {
            return Ok(ContainerSpec::default());
        };
        let span = spanned.span();
        let container = spanned.into_inner();
        check_container(&container).map_err(|why| self.invalid(Some(span.clone()), why))?;
        if let Some(dockerfile) = &container.dockerfile {
            let full = self.base.join(dockerfile);
            if !full.is_file() {
                return Err(self.invalid(
                    Some(span),
                    format!(
                        "[container] dockerfile {} does not exist (it is relative to the task file)",
                        full.display()
                    ),
                ));
            }
        }
        Ok(container)
    }

    fn hyperparameters(
        &self,
        written: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    ) -> Result<BTreeMap<String, String>, TaskError> {
        let mut hyperparameters = BTreeMap::new();
        for (key, value) in written {
            let text = hyperparameter_string(value.get_ref()).map_err(|why| {
                self.invalid(
                    Some(value.span()),
                    format!("hyperparameter `{}`: {why}", key.get_ref()),
                )
            })?;
            hyperparameters.insert(key.get_ref().clone(), text);
        }
        check_hyperparameters(&hyperparameters).map_err(|why| self.invalid(None, why))?;
        Ok(hyperparameters)
    }

    /// `[metrics]` (name = regex), checked against SageMaker's limits together with `[remote] metrics`.
    fn metrics(
        &self,
        written: &BTreeMap<Spanned<String>, Spanned<String>>,
        remote: &RemoteSpec,
    ) -> Result<BTreeMap<String, String>, TaskError> {
        let mut metrics = BTreeMap::new();
        for (name, regex) in written {
            check_metric_definition(name.get_ref(), regex.get_ref())
                .map_err(|why| self.invalid(Some(regex.span()), why))?;
            if remote.metrics.contains(name.get_ref()) {
                return Err(self.invalid(
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
        let definitions = metrics.len() + remote.metrics.len();
        if definitions > MAX_METRIC_DEFINITIONS {
            return Err(self.invalid(
                written.keys().next().map(|k| k.span()),
                format!(
                    "{definitions} metric definitions ([metrics] and [remote] metrics together); \
                     SageMaker takes at most {MAX_METRIC_DEFINITIONS}"
                ),
            ));
        }
        Ok(metrics)
    }

    /// `[sweep]`: each hyperparameter's list of values, as strings.
    fn sweep(
        &self,
        written: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    ) -> Result<Vec<(String, Vec<String>)>, TaskError> {
        let mut sweep = Vec::new();
        for (key, value) in written {
            let toml::Value::Array(items) = value.get_ref() else {
                return Err(self.invalid(
                    Some(value.span()),
                    format!(
                        "sweep `{}` must be a list of values, e.g. {} = [0.1, 0.01]",
                        key.get_ref(),
                        key.get_ref()
                    ),
                ));
            };
            if items.is_empty() {
                return Err(self.invalid(
                    Some(value.span()),
                    format!("sweep `{}` has no values", key.get_ref()),
                ));
            }
            let values = items
                .iter()
                .map(hyperparameter_string)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|why| {
                    self.invalid(
                        Some(value.span()),
                        format!("sweep `{}`: {why}", key.get_ref()),
                    )
                })?;
            sweep.push((key.get_ref().clone(), values));
        }
        Ok(sweep)
    }
}
