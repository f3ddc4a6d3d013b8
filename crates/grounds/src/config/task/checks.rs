//! Checks of a task against what SageMaker and the containers accept: names, hyperparameters (count,
//! length, finite numbers), one-line text where it reaches a Dockerfile, and `[container]` values. Each
//! returns the message a user reads; the caller adds the file and the place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ContainerSpec;

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

/// TOML values become the strings SageMaker passes: strings as they are, everything else as the JSON text
/// Python's `json.dumps` writes (what the toolkit's `json.loads` reads back): `NaN`, `Infinity` and
/// `-Infinity` for floats that are not finite, which SageMaker passes and the toolkit decodes to floats.
pub fn hyperparameter_string(value: &toml::Value) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Float(_) | toml::Value::Array(_) | toml::Value::Table(_) => {
            grounds_job::pyjson::dumps(&as_python(value))
        }
    })
}

/// A TOML value as the Python value `json.loads` would make of its JSON text.
fn as_python(value: &toml::Value) -> grounds_job::pyjson::PyValue {
    use grounds_job::pyjson::PyValue;
    match value {
        toml::Value::String(s) => PyValue::Str(s.clone()),
        toml::Value::Integer(i) => PyValue::Int(i.to_string()),
        toml::Value::Float(f) => PyValue::Float(*f),
        toml::Value::Boolean(b) => PyValue::Bool(*b),
        toml::Value::Datetime(d) => PyValue::Str(d.to_string()),
        toml::Value::Array(items) => PyValue::List(items.iter().map(as_python).collect()),
        toml::Value::Table(table) => PyValue::Dict(
            table
                .iter()
                .map(|(key, item)| (key.clone(), as_python(item)))
                .collect(),
        ),
    }
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

pub(super) fn check_hyperparameters(
    hyperparameters: &BTreeMap<String, String>,
) -> Result<(), String> {
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
        check_text(
            &format!("hyperparameter name `{}`", key.escape_default()),
            key,
            true,
        )?;
        check_text(&format!("hyperparameter `{key}`"), value, false)?;
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
pub(super) fn check_text(what: &str, text: &str, line: bool) -> Result<(), String> {
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
pub(super) fn check_container(container: &ContainerSpec) -> Result<(), String> {
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
pub(super) fn normalize(path: &Path) -> PathBuf {
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

pub fn check_channel_name(name: &str) -> Result<(), String> {
    if name == grounds_job::contract::PACKAGE_CHANNEL {
        return Err(format!(
            "channel name `{name}` is grounds' own: the job's package (its code) is delivered as that \
             channel; give yours another name"
        ));
    }
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
pub(super) fn explain_toml_error(message: &str) -> String {
    if message.starts_with("unknown field") {
        format!("{message}; check the spelling, or see the task file reference in README.md")
    } else if message.starts_with("missing field") {
        format!("{message}: add it")
    } else if message.contains("invalid escape sequence") || message.contains("invalid unicode") {
        // A regex (`\d`, `\s`) in a basic string, where a backslash starts an escape.
        format!(
            "{message}; in a \"…\" string a backslash starts an escape: write a regex or a Windows path as \
             a literal string in single quotes ('loss: (\\d+)') or double each backslash (\"\\\\d\")"
        )
    } else {
        message.to_string()
    }
}

/// SageMaker's bounds on `MetricDefinitions`: how many a job has, the longest regex, the longest name.
pub const MAX_METRIC_DEFINITIONS: usize = 40;
pub const MAX_METRIC_REGEX: usize = 500;
pub const MAX_METRIC_NAME: usize = 255;

/// Checks a `[metrics]` definition as SageMaker would take it: a name of 1 to 255 characters, a regex of
/// at most 500 that compiles (in the syntax grounds parses with: no look-around, no back-references)
/// and has exactly one capturing group, the value.
pub fn check_metric_definition(name: &str, regex: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_METRIC_NAME {
        return Err(format!(
            "metric name `{name}` must have 1 to {MAX_METRIC_NAME} characters"
        ));
    }
    if regex.is_empty() || regex.chars().count() > MAX_METRIC_REGEX {
        return Err(format!(
            "the regex of metric `{name}` has {} characters; SageMaker takes 1 to {MAX_METRIC_REGEX}",
            regex.chars().count()
        ));
    }
    let compiled = regex::Regex::new(regex)
        .map_err(|e| format!("the regex of metric `{name}` does not compile: {e}"))?;
    let groups = compiled.captures_len() - 1;
    if groups != 1 {
        return Err(format!(
            "the regex of metric `{name}` has {groups} capturing groups; it needs exactly one, around \
             the value, e.g. \"loss: ([0-9.eE+-]+)\" (use (?:...) for groups that do not capture)"
        ));
    }
    Ok(())
}
