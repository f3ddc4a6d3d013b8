//! `grounds init`: a commented task.toml to start from, for an existing script (its argparse options
//! with literal defaults become hyperparameters) or, with `--builtin`, for a single-frame task on a
//! data file. It never overwrites a file, and what it writes parses as a task.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};

use super::Exit;
use crate::cli::InitArgs;
use crate::printer::Printer;

pub fn run(args: InitArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let target = dir.join("task.toml");
    if target.exists() {
        bail!(
            "{} exists; init never overwrites a file: give another folder (grounds init DIR) or remove it",
            target.display()
        );
    }
    let text = match (&args.from, &args.builtin, &args.label) {
        (_, Some(data), Some(label)) => builtin_task(&dir, data, label)?,
        (Some(script), _, _) => script_task(&dir, script)?,
        _ => bail!(
            "say what the task runs: --from SCRIPT (a training script) or --builtin DATA.csv --label COLUMN"
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Written only if still absent: another writer in between is not overwritten either.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .with_context(|| format!("creating {}", target.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing {}", target.display()))?;
    // What was written must load as a task; if not, it is a bug here, and the file says why.
    if let Err(e) = crate::config::task::Task::load(&target) {
        let _ = std::fs::remove_file(&target);
        bail!("the task file init wrote does not parse ({e}); please report this");
    }
    printer.json(&crate::answers::schema::InitAnswer {
        task_file: target.clone(),
    });
    printer.out(&format!(
        "Wrote {}; try it with: grounds train attached {}",
        target.display(),
        target.display()
    ));
    Ok(Exit::Success)
}

/// `path` as written from `dir` (both made absolute), for the task file's relative paths.
fn relative(dir: &Path, path: &Path) -> anyhow::Result<String> {
    let dir = std::path::absolute(dir)?;
    let path = std::path::absolute(path)?;
    let dir: Vec<Component> = dir.components().collect();
    let target: Vec<Component> = path.components().collect();
    let common = dir.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); dir.len() - common];
    parts.extend(
        target[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// A valid task name from a file or folder name: letters, digits and hyphens.
fn task_name(from: &str) -> String {
    let mut name: String = from
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name = name.trim_matches('-').to_string();
    name.truncate(crate::config::task::TASK_NAME_MAX);
    if name.is_empty() {
        "my-task".into()
    } else {
        name
    }
}

/// A TOML basic string: JSON's string escapes are TOML's.
fn toml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn script_task(dir: &Path, script: &Path) -> anyhow::Result<String> {
    let code = std::fs::read_to_string(script).with_context(|| {
        format!(
            "reading the script {} (give the training script the task runs)",
            script.display()
        )
    })?;
    let folder = script
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = script
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .with_context(|| format!("{} is not a file", script.display()))?;
    let source = relative(dir, folder)?;
    let run = match script.extension().and_then(|e| e.to_str()) {
        Some("py") => format!("[\"python3\", {}]", toml_string(&file_name)),
        Some("sh") => format!("[\"sh\", {}]", toml_string(&file_name)),
        _ => format!("[{}]", toml_string(&format!("./{file_name}"))),
    };
    let stem = script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A script of a generic name (train.py) is named by its project: the folder it is in, or, for a
    // folder of a generic name too (src/train.py), the one that holds it.
    const GENERIC_FOLDERS: &[&str] = &[
        "src", "source", "code", "scripts", "script", "training", "app",
    ];
    let project = std::path::absolute(folder).ok().and_then(|folder| {
        folder
            .ancestors()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .find(|name| !GENERIC_FOLDERS.contains(&name.to_ascii_lowercase().as_str()))
    });
    let name = match project {
        Some(project) if stem == "train" || stem == "main" => task_name(&project),
        _ => task_name(&stem),
    };
    // Relative to the task file, as every path in it is: inside the source folder.
    let requirements = if source == "." {
        "requirements.txt".to_string()
    } else {
        format!("{}/requirements.txt", source.trim_end_matches('/'))
    };
    let options = argparse_options(&code);
    let channel = channel_name(&code);
    let mut text = format!(
        "# A command task: {file_name} runs unchanged, as SageMaker's script mode runs it (written by grounds init).\n\
         # Try it: grounds train attached {task}   then: grounds train local {task}\n\
         [task]\n\
         name = {name}\n\
         version = \"1\"\n\
         \n\
         [task.command]\n\
         # The folder packaged with the job (relative to this file); `run` starts in it.\n\
         source = {source}\n\
         run = {run}\n\
         # requirements = {requirements}   # relative to this file; pip installs them into the image\n\
         \n\
         [channels]\n\
         # Each channel is a folder the job reads as /opt/ml/input/data/<name> (SM_CHANNEL_<NAME>): a local\n\
         # file or folder relative to this file, s3://bucket/prefix, or result://ID/model.\n\
         # {channel} = \"data/\"\n",
        task = dir.join("task.toml").display(),
        name = toml_string(&name),
        source = toml_string(&source),
        requirements = toml_string(&requirements),
    );
    text.push_str(
        "\n[hyperparameters]\n# Passed to the script as --name value (SM_HP_NAME); --hp name=value overrides one for a run.\n",
    );
    if options.is_empty() {
        text.push_str("# (no argparse option with a literal default was found in the script)\n");
    }
    for option in options {
        match option.default {
            Some(value) => text.push_str(&format!("{} = {value}\n", toml_key(&option.name))),
            None => text.push_str(&format!(
                "# {} = ...   # {}\n",
                toml_key(&option.name),
                option.note
            )),
        }
    }
    Ok(text)
}

fn toml_key(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_string()
    } else {
        toml_string(name)
    }
}

/// The channel a script reads (`SM_CHANNEL_TRAIN` → `train`), else `training`.
fn channel_name(code: &str) -> String {
    code.find("SM_CHANNEL_")
        .map(|at| {
            code[at + "SM_CHANNEL_".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "training".into())
}

/// An argparse option read from a script.
#[derive(Debug, PartialEq)]
struct ScriptOption {
    name: String,
    /// The default as a TOML value, when it is a literal.
    default: Option<String>,
    /// Why it has no value here.
    note: String,
}

/// Options the SageMaker contract sets itself (paths and hosts): never hyperparameters.
const CONTRACT_OPTIONS: &[&str] = &[
    "model-dir",
    "model_dir",
    "output-data-dir",
    "output_data_dir",
    "output-dir",
    "train",
    "test",
    "validation",
    "hosts",
    "current-host",
    "current_host",
    "num-gpus",
    "num_gpus",
    "data-dir",
    "data_dir",
];

/// The `--options` of every `add_argument(...)` call, with literal defaults as TOML values.
fn argparse_options(code: &str) -> Vec<ScriptOption> {
    let mut options: Vec<ScriptOption> = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("add_argument(") {
        let call = &rest[at + "add_argument(".len()..];
        let args = balanced(call);
        rest = &call[args.len().min(call.len())..];
        let parts = split_top_level(args);
        let Some(name) = parts
            .iter()
            .filter_map(|p| unquote(p.trim()))
            .find(|p| p.starts_with("--"))
            .map(|p| p.trim_start_matches('-').to_string())
        else {
            continue;
        };
        if CONTRACT_OPTIONS.contains(&name.as_str()) || options.iter().any(|o| o.name == name) {
            continue;
        }
        let keyword = |key: &str| {
            parts.iter().find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        if keyword("action").is_some_and(|a| a.contains("store_")) {
            options.push(ScriptOption {
                name,
                default: None,
                note:
                    "a flag (store_true/false): SageMaker passes values, so give it a type instead"
                        .into(),
            });
            continue;
        }
        let default = keyword("default").and_then(|v| literal(&v));
        let note = if keyword("default").is_some() {
            "its default is not a literal; give a value to pass one".to_string()
        } else {
            format!(
                "no default in the script{}",
                keyword("type")
                    .map(|t| format!(" (type={t})"))
                    .unwrap_or_default()
            )
        };
        options.push(ScriptOption {
            name,
            default,
            note,
        });
    }
    options
}

/// The text up to the parenthesis that closes the call (strings skipped).
fn balanced(text: &str) -> &str {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') if depth == 0 => return &text[..i],
            (None, ')' | ']' | '}') => depth -= 1,
            _ => {}
        }
    }
    text
}

/// Splits call arguments at commas outside brackets and strings.
fn split_top_level(args: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    for (i, c) in args.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            (None, ',') if depth == 0 => {
                parts.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&args[start..]);
    parts
}

fn unquote(text: &str) -> Option<&str> {
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')))?;
    (!inner.contains(['"', '\'', '\\'])).then_some(inner)
}

/// A Python literal as a TOML value: numbers, strings, True/False.
fn literal(value: &str) -> Option<String> {
    match value {
        "True" => return Some("true".into()),
        "False" => return Some("false".into()),
        _ => {}
    }
    if let Some(text) = unquote(value) {
        return Some(toml_string(text));
    }
    let number = value.replace('_', "");
    if number.parse::<i64>().is_ok() {
        return Some(number);
    }
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() => {
            let text = format!("{v:?}");
            Some(text)
        }
        _ => None,
    }
}

fn builtin_task(dir: &Path, data: &Path, label: &str) -> anyhow::Result<String> {
    if !data.is_file() {
        bail!(
            "{} is not a file: --builtin takes the CSV or parquet file to train on",
            data.display()
        );
    }
    let peek = grounds_builtin::peek(data, label)?;
    let (model, why) = if peek.label_levels <= 2 {
        (
            "logistic-regression",
            format!("`{label}` has {} distinct values", peek.label_levels),
        )
    } else if peek.label_numeric {
        (
            "linear-regression",
            format!("`{label}` is numeric with many values"),
        )
    } else {
        (
            "logistic-regression",
            format!(
                "`{label}` has {} classes; the single-frame task takes two",
                peek.label_levels
            ),
        )
    };
    let features: Vec<String> = peek
        .columns
        .iter()
        .filter(|c| c.as_str() != label)
        .map(|c| toml_string(c))
        .collect();
    let stem = data
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(format!(
        "# The builtin single-frame task on {file} (written by grounds init): cross-validated {model},\n\
         # no Python and no Docker needed. Try it: grounds train attached {task}\n\
         [task]\n\
         name = {name}\n\
         version = \"1\"\n\
         \n\
         [task.builtin]\n\
         kind = \"single-frame\"\n\
         label = {label}\n\
         # Every other column is a feature; list some to use only those:\n\
         # features = [{features}]\n\
         # {why}: logistic-regression for two classes, linear-regression for a number.\n\
         model = \"{model}\"\n\
         folds = 5\n\
         \n\
         [channels]\n\
         training = {path}\n\
         \n\
         [hyperparameters]\n\
         max_iter = 1000\n",
        file = data.display(),
        task = dir.join("task.toml").display(),
        name = toml_string(&task_name(&stem)),
        label = toml_string(label),
        features = features.join(", "),
        path = toml_string(&relative(dir, data)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argparse_options_with_literal_defaults_become_hyperparameters() {
        let code = r#"
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument('--learning-rate', type=float, default=1e-3, help="step (default: 0.001)")
parser.add_argument("--optimizer", default="adam")
parser.add_argument("-v", "--verbose", action="store_true")
parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
parser.add_argument("--seed", type=int,
                    default=int(os.environ.get("SEED", "1")))
parser.add_argument("--layers", type=int)
parser.add_argument("--use_bn", default=False)
"#;
        let options = argparse_options(code);
        let got: Vec<(&str, Option<&str>)> = options
            .iter()
            .map(|o| (o.name.as_str(), o.default.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("epochs", Some("10")),
                ("learning-rate", Some("0.001")),
                ("optimizer", Some("\"adam\"")),
                ("verbose", None),
                ("seed", None),
                ("layers", None),
                ("use_bn", Some("false")),
            ]
        );
        assert_eq!(channel_name("os.environ['SM_CHANNEL_TRAIN']"), "train");
        assert_eq!(channel_name("nothing"), "training");
    }

    #[test]
    fn names_and_paths_are_made_valid() {
        assert_eq!(task_name("my_model.v2"), "my-model-v2");
        assert_eq!(task_name("__"), "my-task");
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/c/d.csv")).unwrap(),
            "../c/d.csv"
        );
        assert_eq!(relative(Path::new("/a"), Path::new("/a")).unwrap(), ".");
    }
}
