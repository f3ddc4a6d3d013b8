//! Sweeps: hyperparameters with several values (`--set name=v1,v2`, or a `[sweep]` table) expand into the
//! grid of all combinations, and each member gets an automatic name after Training Grounds' Autonamer:
//! only the parameters that vary, abbreviated by the initials of their words, values written short.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::config::task::TASK_NAME_MAX;

/// One member of a sweep: its name (none when nothing varies) and the hyperparameters it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub auto_name: Option<String>,
    pub overrides: Vec<(String, String)>,
}

/// Every combination of the parameters' values, in the order given (the last parameter varies fastest).
pub fn grid(parameters: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut combinations: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (name, values) in parameters {
        combinations = combinations
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |value| {
                    let mut next = prefix.clone();
                    next.push((name.clone(), value.clone()));
                    next
                })
            })
            .collect();
    }
    combinations
}

fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in name.chars() {
        if c == '_'
            || c == '-'
            || c == '.'
            || (c.is_ascii_uppercase()
                && !current.is_empty()
                && !current.ends_with(|c: char| c.is_ascii_uppercase()))
        {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            if c.is_ascii_alphanumeric() {
                current.push(c);
            }
        } else if c.is_ascii_alphanumeric() {
            // Only ASCII: member names become job names and result ids (letters, digits, hyphens).
            current.push(c);
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn abbreviate(name: &str, letters: usize) -> String {
    words(name)
        .iter()
        .map(|word| {
            let mut chars = word.chars();
            let first: String = chars
                .next()
                .map(|c| c.to_uppercase().collect())
                .unwrap_or_default();
            let rest: String = chars
                .take(letters.saturating_sub(1))
                .collect::<String>()
                .to_lowercase();
            format!("{first}{rest}")
        })
        .collect()
}

/// Distinct abbreviations: initials (`learning_rate` → `LR`), lengthened word by word where they collide.
pub fn abbreviations(names: &[String]) -> BTreeMap<String, String> {
    let mut letters: BTreeMap<&String, usize> = names.iter().map(|n| (n, 1)).collect();
    loop {
        let current: BTreeMap<&String, String> = letters
            .iter()
            .map(|(n, k)| (*n, abbreviate(n, *k)))
            .collect();
        let mut seen: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
        for (name, abbreviation) in &current {
            seen.entry(abbreviation).or_default().push(name);
        }
        let colliding: Vec<&String> = seen
            .values()
            .filter(|v| v.len() > 1)
            .flatten()
            .copied()
            .collect();
        if colliding.is_empty() || colliding.iter().all(|n| letters[n] > n.len()) {
            let mut result: BTreeMap<String, String> =
                current.into_iter().map(|(n, a)| (n.clone(), a)).collect();
            // Names that are still alike (e.g. `lr` and `LR`) get their position as a suffix.
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for abbreviation in result.values_mut() {
                let count = counts.entry(abbreviation.clone()).or_default();
                *count += 1;
                if *count > 1 {
                    abbreviation.push_str(&count.to_string());
                }
            }
            return result;
        }
        for name in colliding {
            if let Some(count) = letters.get_mut(name) {
                *count += 1;
            }
        }
    }
}

/// A value written short: lists joined with `x`, large integers as K or M, a number's decimal point as
/// `p` and its minus as `m` (`0.5` → `0p5`, `1e-05` → `1em05`), so that values that differ get names that
/// differ (`1.0` → `1p0`, `10` → `10`).
pub fn short_value(value: &str) -> String {
    let trimmed = value.trim();
    if let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(trimmed) {
        return list
            .iter()
            .map(|v| short_value(&v.to_string()))
            .collect::<Vec<_>>()
            .join("x");
    }
    if let Ok(n) = trimmed.parse::<i64>() {
        return match n {
            n if n != 0 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
            n if n != 0 && n % 1000 == 0 => format!("{}K", n / 1000),
            n => n.to_string().replace('-', "m"),
        };
    }
    if trimmed.parse::<f64>().is_ok_and(f64::is_finite) {
        return trimmed
            .chars()
            .filter_map(|c| match c {
                '.' => Some('p'),
                '-' => Some('m'),
                '+' => None,
                c => Some(c),
            })
            .collect();
    }
    trimmed
        .trim_matches('"')
        .chars()
        .filter_map(|c| match c {
            '.' | '+' => None,
            '-' => Some('m'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The names of the parameters whose values differ between members, in their order.
pub fn varying(members: &[Vec<(String, String)>]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for member in members {
        for (name, _) in member {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
        .into_iter()
        .filter(|name| {
            let values: BTreeSet<Option<&String>> = members
                .iter()
                .map(|m| m.iter().find(|(n, _)| n == name).map(|(_, v)| v))
                .collect();
            values.len() > 1
        })
        .collect()
}

/// The parameters with every repeated value given once (`--set max_iter=100,100` is one run, not two
/// identical ones), and a note for each repetition dropped.
pub fn without_repeats(
    parameters: Vec<(String, Vec<String>)>,
) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let mut notes = Vec::new();
    let parameters = parameters
        .into_iter()
        .map(|(name, values)| {
            let mut seen = BTreeSet::new();
            let mut kept = Vec::new();
            for value in values {
                if seen.insert(value.clone()) {
                    kept.push(value);
                } else {
                    notes.push(format!(
                        "sweep `{name}` gives the value `{value}` more than once; it runs once"
                    ));
                }
            }
            (name, kept)
        })
        .collect();
    (parameters, notes)
}

/// The members of a sweep over `parameters`; one unnamed member when there is nothing to sweep. Names
/// are unique: members whose short names would coincide (`1.0` and `10` both write `10`) are numbered.
pub fn members(parameters: &[(String, Vec<String>)]) -> Vec<Member> {
    if parameters.is_empty() {
        return vec![Member {
            auto_name: None,
            overrides: Vec::new(),
        }];
    }
    let varying: Vec<String> = parameters
        .iter()
        .filter(|(_, v)| v.iter().collect::<BTreeSet<_>>().len() > 1)
        .map(|(n, _)| n.clone())
        .collect();
    let abbreviations = abbreviations(&varying);
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    grid(parameters)
        .into_iter()
        .map(|overrides| {
            let parts: Vec<String> = overrides
                .iter()
                .filter(|(name, _)| varying.contains(name))
                .map(|(name, value)| {
                    let short = abbreviations.get(name).cloned().unwrap_or_default();
                    format!("{short}{}", short_value(value))
                })
                .collect();
            let auto_name = (!parts.is_empty()).then(|| {
                let name = parts.join("-");
                let count = taken.entry(name.clone()).or_default();
                *count += 1;
                if *count > 1 {
                    format!("{name}-{count}")
                } else {
                    name
                }
            });
            Member {
                auto_name,
                overrides,
            }
        })
        .collect()
}

/// `<task>-<auto name>`, shortened deterministically (a hash of the full name) to leave room for the stamp.
pub fn base_name(task: &str, auto_name: Option<&str>) -> String {
    let Some(auto) = auto_name else {
        return task.to_string();
    };
    let full = format!("{task}-{auto}");
    if full.len() <= TASK_NAME_MAX {
        return full;
    }
    let hash = hex::encode(Sha256::digest(full.as_bytes()));
    let keep = TASK_NAME_MAX.saturating_sub(5);
    let mut short: String = full.chars().take(keep).collect();
    while short.ends_with('-') {
        short.pop();
    }
    format!("{short}-{}", &hash[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, values: &[&str]) -> (String, Vec<String>) {
        (
            name.to_string(),
            values.iter().map(|v| v.to_string()).collect(),
        )
    }

    #[test]
    fn the_grid_has_every_combination() {
        let grid = grid(&[p("a", &["1", "2"]), p("b", &["x", "y", "z"])]);
        assert_eq!(grid.len(), 6);
        assert_eq!(
            grid[0],
            vec![("a".into(), "1".into()), ("b".into(), "x".into())]
        );
        assert_eq!(
            grid[5],
            vec![("a".into(), "2".into()), ("b".into(), "z".into())]
        );
    }

    #[test]
    fn names_follow_the_autonamer() {
        let members = members(&[
            p("learning_rate", &["1", "2"]),
            p("network_size", &["10", "[10, 5]"]),
            p("seed", &["3"]),
        ]);
        let names: Vec<String> = members
            .iter()
            .map(|m| m.auto_name.clone().unwrap())
            .collect();
        assert_eq!(names, ["LR1-NS10", "LR1-NS10x5", "LR2-NS10", "LR2-NS10x5"]);
        assert_eq!(short_value("0.001"), "0p001");
        // Values that differ have names that differ, without a counter.
        assert_ne!(short_value("1.0"), short_value("10"));
        assert_eq!(short_value("1.5e-3"), "1p5em3");
        assert_eq!(short_value("1000"), "1K");
        assert_eq!(short_value("2000000"), "2M");
        assert_eq!(short_value("1e-05"), "1em05");
        assert_eq!(members[0].overrides.len(), 3, "the fixed seed is still set");
    }

    #[test]
    fn colliding_abbreviations_are_made_distinct() {
        let abbreviations =
            abbreviations(&["learning_rate".into(), "loss_ratio".into(), "epochs".into()]);
        assert_eq!(abbreviations["epochs"], "E");
        assert_ne!(abbreviations["learning_rate"], abbreviations["loss_ratio"]);
        assert_eq!(abbreviations["learning_rate"], "LeRa");
        let alike = super::abbreviations(&["lr".into(), "LR".into()]);
        assert_ne!(alike["lr"], alike["LR"]);
    }

    #[test]
    fn repeated_values_run_once_and_alike_short_names_stay_distinct() {
        let (parameters, notes) = without_repeats(vec![p("max_iter", &["100", "100", "200"])]);
        assert_eq!(parameters, vec![p("max_iter", &["100", "200"])]);
        assert_eq!(notes.len(), 1);
        let (parameters, _) = without_repeats(vec![p("max_iter", &["100", "100"])]);
        assert_eq!(members(&parameters).len(), 1);
        let names = |values: &[&str]| -> Vec<String> {
            members(&[p("lr", values)])
                .into_iter()
                .map(|m| m.auto_name.unwrap())
                .collect()
        };
        // Numbers that differ are told apart by their names.
        assert_eq!(names(&["1.0", "10"]), ["L1p0", "L10"]);
        // Texts written alike once short are numbered.
        assert_eq!(names(&["a.b", "ab"]), ["Lab", "Lab-2"]);
    }

    #[test]
    fn long_names_are_shortened_deterministically() {
        let task = "a-task-with-a-rather-long-name";
        let auto = "LR0001-NS10x5x3-DROPOUT05-BATCH128";
        let base = base_name(task, Some(auto));
        assert!(base.len() <= TASK_NAME_MAX, "{base}");
        assert_eq!(base, base_name(task, Some(auto)));
        assert_ne!(
            base,
            base_name(task, Some("LR0001-NS10x5x3-DROPOUT05-BATCH256"))
        );
        assert_eq!(base_name("t", Some("LR1")), "t-LR1");
        assert_eq!(base_name("t", None), "t");
    }
}
