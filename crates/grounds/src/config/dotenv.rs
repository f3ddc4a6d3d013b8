//! `.env` files: `KEY=VALUE` lines beside the task file and in the working directory, as the seeds keep
//! `AWS_ROLE` there. Variables already in the environment win; a value from the task's folder wins over
//! one from the working directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Parses `.env` text as dotenvy reads it: `export ` prefixes, comments, single and double quotes,
/// escapes and multi-line double-quoted values, `${VAR}` substitution. A line it cannot read is skipped
/// and described in the second list (its number and the name it seems to set, never its value: a `.env`
/// holds secrets).
pub fn parse(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut skipped = Vec::new();
    // Lines are reported in order: each is looked for after the one reported before it.
    let mut after = 0;
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((key, value)) => {
                values.insert(key, value);
            }
            Err(dotenvy::Error::LineParse(line, _)) => {
                skipped.push(describe(text, &line, &mut after))
            }
            Err(other) => skipped.push(format!("a line dotenvy cannot read ({other})")),
        }
    }
    (values, skipped)
}

/// `line 4 (setting AWS_ROLE)`: where a line that cannot be read is (the first line of `text` from line
/// `after` on that is exactly it; `after` moves past it), and what it seems to set.
fn describe(text: &str, line: &str, after: &mut usize) -> String {
    let first = line.lines().next().unwrap_or_default();
    let number = text
        .lines()
        .enumerate()
        .skip(*after)
        .find(|(_, candidate)| *candidate == first)
        .map(|(index, _)| index + 1);
    if let Some(number) = number {
        *after = number;
    }
    let key = first
        .split('=')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("export ")
        .trim();
    let sets = if !key.is_empty()
        && first.contains('=')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        format!(" (setting {key})")
    } else {
        String::new()
    };
    match number {
        Some(number) => format!("line {number}{sets}"),
        None => format!("a line{sets}"),
    }
}

/// The `.env` values a command read, each with the file it came from, so that a bad value is blamed on
/// its line's file, not on the environment or the task file.
#[derive(Debug, Clone, Default)]
pub struct DotEnv {
    values: BTreeMap<String, (String, PathBuf)>,
    /// Keys copied into the process environment from a file: their values are still the file's.
    exported: BTreeSet<String>,
}

/// A setting's value and where it came from, in words (`GROUNDS_BUCKET in ./.env`, `AWS_ROLE in the
/// environment`, `[remote] role in task.toml`), for the message that blames it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced {
    pub value: String,
    pub from: String,
}

impl DotEnv {
    /// A variable from the environment, else from the `.env` values, with where it came from.
    pub fn lookup(&self, key: &str) -> Option<Sourced> {
        if !self.exported.contains(key) {
            if let Some(value) = std::env::var(key).ok().filter(|v| !v.is_empty()) {
                return Some(Sourced {
                    value,
                    from: format!("{key} in the environment"),
                });
            }
        }
        let (value, file) = self.values.get(key)?;
        (!value.is_empty()).then(|| Sourced {
            value: value.clone(),
            from: format!("{key} in {}", file.display()),
        })
    }

    /// Where the first of `keys` that is set came from (a `.env` file or the environment), if any is.
    pub fn origin(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|key| self.lookup(key).map(|found| found.from))
    }

    /// The values read, by name.
    pub fn values(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter().map(|(key, (value, _))| (key, value))
    }

    /// Notes that `key` was copied from its file into the process environment.
    pub fn exported(&mut self, key: &str) {
        self.exported.insert(key.to_string());
    }
}

/// The variables of `.env` in `task_dir` and in the working directory (task folder first), and a
/// warning for every line of them that cannot be read (they are skipped).
pub fn load(task_dir: &Path) -> (DotEnv, Vec<String>) {
    let mut values = DotEnv::default();
    let mut warnings = Vec::new();
    let mut read = Vec::new();
    for dir in [Path::new("."), task_dir] {
        let path = dir.join(".env");
        // The task's folder may be the working directory: one file, read once.
        let same = std::fs::canonicalize(&path).ok();
        if same.is_some() && read.contains(&same) {
            continue;
        }
        read.push(same);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let (found, skipped) = parse(&text);
            values.values.extend(
                found
                    .into_iter()
                    .map(|(key, value)| (key, (value, path.clone()))),
            );
            warnings.extend(skipped.into_iter().map(|what| {
                format!(
                    "{}: {what} is not a KEY=VALUE line dotenvy can read (an unclosed quote, a space in the name?); it is skipped",
                    path.display()
                )
            }));
        }
    }
    (values, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let (values, skipped) = parse("# role\nAWS_ROLE=arn:aws:iam::123456789012:role/x\nexport A=\"quoted value\"\nB='single'\nC=plain # comment\nnot a line\n");
        assert_eq!(values["AWS_ROLE"], "arn:aws:iam::123456789012:role/x");
        assert_eq!(values["A"], "quoted value");
        assert_eq!(values["B"], "single");
        assert_eq!(values["C"], "plain");
        assert_eq!(values.len(), 4);
        assert_eq!(skipped, vec!["line 6"]);
        let (values, _) =
            parse("KEY=\"first\nsecond\"\nESCAPED=\"a\\\"b\"\nSINGLE='$NOT ${SUB}'\n");
        assert_eq!(values["KEY"], "first\nsecond");
        assert_eq!(values["ESCAPED"], "a\"b");
        assert_eq!(values["SINGLE"], "$NOT ${SUB}");
    }

    #[test]
    fn lines_that_cannot_be_read_are_named_by_number_and_key_never_by_value() {
        let (values, skipped) = parse(
            "# BAD KEY=secret-value\nGOOD=1\nBAD KEY=secret-value\nBAD KEY=secret-value\nAWS_SECRET_ACCESS_KEY=\"unclosed secret\n",
        );
        assert_eq!(values.len(), 1, "{values:?}");
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        // By their own lines: not the comment that holds the same text, and a repeated line twice.
        assert_eq!(skipped[0], "line 3");
        assert_eq!(skipped[1], "line 4");
        assert_eq!(skipped[2], "line 5 (setting AWS_SECRET_ACCESS_KEY)");
        assert!(skipped
            .iter()
            .all(|s| !s.contains("secret-value") && !s.contains("unclosed")));
    }
}
