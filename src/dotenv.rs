//! `.env` files: `KEY=VALUE` lines beside the task file and in the working directory, as the seeds keep
//! `AWS_ROLE` there. Variables already in the environment win; a value from the task's folder wins over
//! one from the working directory.

use std::collections::BTreeMap;
use std::path::Path;

/// Parses `.env` text as dotenvy reads it: `export ` prefixes, comments, single and double quotes,
/// escapes and multi-line double-quoted values, `${VAR}` substitution. A line it cannot read is skipped.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    dotenvy::from_read_iter(text.as_bytes())
        .filter_map(Result::ok)
        .collect()
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
        let values = parse("KEY=\"first\nsecond\"\nESCAPED=\"a\\\"b\"\nSINGLE='$NOT ${SUB}'\n");
        assert_eq!(values["KEY"], "first\nsecond");
        assert_eq!(values["ESCAPED"], "a\"b");
        assert_eq!(values["SINGLE"], "$NOT ${SUB}");
    }
}
