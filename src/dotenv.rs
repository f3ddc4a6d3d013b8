//! `.env` files: `KEY=VALUE` lines beside the task file and in the working directory, as the seeds keep
//! `AWS_ROLE` there. Variables already in the environment win; a value from the task's folder wins over
//! one from the working directory.

use std::collections::BTreeMap;
use std::path::Path;

/// Parses `KEY=VALUE` lines: `export ` prefixes, comments and blank lines allowed, values optionally quoted.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let value = value.trim();
        let value = if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            value[1..value.len() - 1].to_string()
        } else {
            value.split(" #").next().unwrap_or("").trim().to_string()
        };
        values.insert(key.to_string(), value);
    }
    values
}

/// The variables of `.env` in `task_dir` and in the working directory (task folder first).
pub fn load(task_dir: &Path) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for dir in [Path::new("."), task_dir] {
        if let Ok(text) = std::fs::read_to_string(dir.join(".env")) {
            values.extend(parse(&text));
        }
    }
    values
}

/// A variable from the environment, else from the `.env` values.
pub fn lookup(values: &BTreeMap<String, String>, key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| values.get(key).cloned().filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let values = parse("# role\nAWS_ROLE=arn:aws:iam::123456789012:role/x\nexport A=\"quoted value\"\nB='single'\nC=plain # comment\nnot a line\n");
        assert_eq!(values["AWS_ROLE"], "arn:aws:iam::123456789012:role/x");
        assert_eq!(values["A"], "quoted value");
        assert_eq!(values["B"], "single");
        assert_eq!(values["C"], "plain");
        assert_eq!(values.len(), 4);
    }
}
