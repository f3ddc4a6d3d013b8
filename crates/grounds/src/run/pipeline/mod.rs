//! Pipeline files: steps that are ordinary tasks, chained by `step://STEP/model|output` channels, read and
//! checked as a whole (unknown steps, bad folders, cycles, every step's task file) before anything runs,
//! and put in the order they can run in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::task::{ChannelSource, ResultFolder, Task};

pub mod run;

/// Whether a file is a pipeline file: a TOML document with a `[pipeline]` table.
pub fn is_pipeline_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.contains_key("pipeline"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowFile {
    pipeline: Header,
    #[serde(default)]
    steps: BTreeMap<Spanned<String>, StepFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    task: Spanned<String>,
    #[serde(default)]
    channels: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    hyperparameters: BTreeMap<String, toml::Value>,
}

/// Where a step's channel comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum StepChannel {
    /// Another step's result folder.
    Step { step: String, folder: ResultFolder },
    /// A value as a task file would have it (a path relative to the pipeline file, `s3://`, `result://`).
    Given(ChannelSource),
}

/// One step: its task (loaded and checked), its channel replacements and hyperparameter overrides.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub task_file: PathBuf,
    pub channels: BTreeMap<String, StepChannel>,
    pub hyperparameters: Vec<(String, String)>,
    /// The steps whose results it reads.
    pub after: BTreeSet<String>,
    /// The branch of a `--set STEP.NAME=…` sweep it belongs to (its name is `STEP@BRANCH`).
    pub branch: Option<String>,
}

impl Step {
    /// The step's name in the pipeline file (without a sweep branch).
    pub fn base_name(&self) -> &str {
        self.name.split('@').next().unwrap_or(&self.name)
    }
}

/// A pipeline, checked, its steps in an order they can run in (each after what it reads).
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    pub steps: Vec<Step>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |n| before.len() - n - 1)
        + 1;
    (line, col)
}

impl Flow {
    pub fn load(path: &Path) -> anyhow::Result<Flow> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let at = |span: std::ops::Range<usize>| {
            let (line, col) = line_col(&text, span.start);
            format!("{}:{line}:{col}", path.display())
        };
        let file: FlowFile = toml::from_str(&text).map_err(|e| {
            let place = e
                .span()
                .map(&at)
                .unwrap_or_else(|| path.display().to_string());
            anyhow::anyhow!("{place}: {}", e.message())
        })?;
        if file.steps.is_empty() {
            anyhow::bail!(
                "{}: the pipeline has no steps: add [steps.NAME] with task = \"path/to/task.toml\"",
                path.display()
            );
        }
        let names: BTreeSet<String> = file.steps.keys().map(|k| k.get_ref().clone()).collect();
        let base = path.parent().unwrap_or(Path::new("."));
        let mut steps = Vec::new();
        for (name, spec) in &file.steps {
            let name = name.get_ref().clone();
            let task_file = base.join(spec.task.get_ref());
            let task = Task::load(&task_file)
                .map_err(|e| anyhow::anyhow!("{}: step `{name}`: {e}", at(spec.task.span())))?;
            let mut channels = BTreeMap::new();
            let mut after = BTreeSet::new();
            for (channel, value) in &spec.channels {
                crate::config::task::check_channel_name(channel)
                    .map_err(|why| anyhow::anyhow!("{}: step `{name}`: {why}", at(value.span())))?;
                let text_value = value.get_ref();
                let source = if let Some(rest) = text_value.strip_prefix("step://") {
                    let (step, folder) = rest.split_once('/').unwrap_or((rest, ""));
                    if !names.contains(step) {
                        anyhow::bail!(
                            "{}: step `{name}`, channel `{channel}`: there is no step `{step}` (steps: {})",
                            at(value.span()),
                            names.iter().cloned().collect::<Vec<_>>().join(", ")
                        );
                    }
                    let Some(folder) = ResultFolder::parse(folder) else {
                        anyhow::bail!(
                            "{}: step `{name}`, channel `{channel}`: a step makes `model` and `output`, not \
                             `{folder}`: step://{step}/model or step://{step}/output",
                            at(value.span())
                        );
                    };
                    after.insert(step.to_string());
                    StepChannel::Step {
                        step: step.to_string(),
                        folder,
                    }
                } else {
                    let source = crate::config::task::parse_channel(
                        channel,
                        text_value,
                        base,
                        "pipeline file",
                    )
                    .map_err(|why| anyhow::anyhow!("{}: step `{name}`: {why}", at(value.span())))?;
                    StepChannel::Given(source)
                };
                channels.insert(channel.clone(), source);
            }
            let mut hyperparameters = Vec::new();
            for (key, value) in &spec.hyperparameters {
                let value = crate::config::task::hyperparameter_string(value).map_err(|why| {
                    anyhow::anyhow!(
                        "{}: step `{name}`, hyperparameter `{key}`: {why}",
                        at(spec.task.span())
                    )
                })?;
                hyperparameters.push((key.clone(), value));
            }
            // Overrides are checked as `--hp` is, against the step's task.
            task.with_overrides(&hyperparameters)
                .map_err(|e| anyhow::anyhow!("{}: step `{name}`: {e}", at(spec.task.span())))?;
            steps.push(Step {
                name,
                task_file,
                channels,
                hyperparameters,
                after,
                branch: None,
            });
        }
        let steps = in_order(steps).map_err(|cycle| {
            anyhow::anyhow!(
                "{}: the steps read each other in a circle: {}; a step can only read steps that do not read it",
                path.display(),
                cycle.join(" → ")
            )
        })?;
        Ok(Flow {
            name: file.pipeline.name,
            steps,
        })
    }

    /// One branch per combination of `--set STEP.NAME=V1,V2` values: each swept step and every step that
    /// reads it are copied per branch (named `STEP@BRANCH`, the branch named as sweep members are), the
    /// rest runs once and is shared.
    pub fn fan_out(self, parameters: &[(String, Vec<String>)]) -> anyhow::Result<Flow> {
        if parameters.is_empty() {
            return Ok(self);
        }
        let mut affected = BTreeSet::new();
        // Sweep names without the dot (`train_smoothing`), so branch names stay plain.
        let mut swept = Vec::new();
        let mut keys = BTreeMap::new();
        for (name, values) in parameters {
            let Some((step_name, key)) = name.split_once('.') else {
                anyhow::bail!(
                    "--set {name}=…: on a pipeline, name the step: --set STEP.{name}={}",
                    values.join(",")
                );
            };
            let Some(step) = self.steps.iter().find(|s| s.name == step_name) else {
                anyhow::bail!(
                    "--set {name}=…: there is no step `{step_name}` (steps: {})",
                    self.steps
                        .iter()
                        .map(|s| s.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let task = Task::load(&step.task_file)?;
            for value in values {
                task.clone()
                    .with_overrides(&[(key.to_string(), value.clone())])
                    .map_err(|e| {
                        anyhow::anyhow!("--set {name}={value}: step `{step_name}`: {e}")
                    })?;
            }
            affected.extend(self.with_dependents(step_name));
            let plain = format!("{step_name}_{key}");
            keys.insert(plain.clone(), (step_name.to_string(), key.to_string()));
            swept.push((plain, values.clone()));
        }
        let mut steps: Vec<Step> = self
            .steps
            .iter()
            .filter(|s| !affected.contains(&s.name))
            .cloned()
            .collect();
        for member in crate::run::sweep::members(&swept) {
            let branch = member.auto_name.clone().unwrap_or_else(|| "1".into());
            let renamed = |name: &str| {
                if affected.contains(name) {
                    format!("{name}@{branch}")
                } else {
                    name.to_string()
                }
            };
            for step in self.steps.iter().filter(|s| affected.contains(&s.name)) {
                let mut copy = step.clone();
                copy.name = renamed(&step.name);
                copy.branch = Some(branch.clone());
                copy.after = step.after.iter().map(|a| renamed(a)).collect();
                for source in copy.channels.values_mut() {
                    if let StepChannel::Step { step: upstream, .. } = source {
                        *upstream = renamed(upstream);
                    }
                }
                for (plain, value) in &member.overrides {
                    if let Some((owner, key)) = keys.get(plain) {
                        if *owner == step.name {
                            copy.hyperparameters.retain(|(k, _)| k != key);
                            copy.hyperparameters.push((key.clone(), value.clone()));
                        }
                    }
                }
                steps.push(copy);
            }
        }
        let steps = in_order(steps).map_err(|cycle| {
            anyhow::anyhow!(
                "the steps read each other in a circle: {}",
                cycle.join(" → ")
            )
        })?;
        Ok(Flow {
            name: self.name,
            steps,
        })
    }

    /// A step and every step that reads it, directly or not.
    pub fn with_dependents(&self, step: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::from([step.to_string()]);
        // Steps are in order: one pass sees every reader after what it reads.
        for candidate in &self.steps {
            if candidate.after.iter().any(|a| found.contains(a)) {
                found.insert(candidate.name.clone());
            }
        }
        found
    }
}

/// The steps in an order where each comes after what it reads (ties by name); or the steps of a circle.
fn in_order(steps: Vec<Step>) -> Result<Vec<Step>, Vec<String>> {
    let mut left: BTreeMap<String, Step> = steps.into_iter().map(|s| (s.name.clone(), s)).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut ordered = Vec::new();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .values()
            .filter(|s| s.after.iter().all(|a| done.contains(a)))
            .map(|s| s.name.clone())
            .collect();
        if ready.is_empty() {
            // Follow reads from any step left until one repeats: that is a circle.
            let mut path: Vec<String> = Vec::new();
            let mut at = left.keys().next().cloned().unwrap_or_default();
            while !path.contains(&at) {
                path.push(at.clone());
                at = left
                    .get(&at)
                    .and_then(|s| s.after.iter().find(|a| left.contains_key(*a)).cloned())
                    .unwrap_or_default();
            }
            let start = path.iter().position(|p| *p == at).unwrap_or(0);
            let mut cycle = path[start..].to_vec();
            cycle.push(at);
            return Err(cycle);
        }
        for name in ready {
            if let Some(step) = left.remove(&name) {
                done.insert(name);
                ordered.push(step);
            }
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, after: &[&str]) -> Step {
        Step {
            name: name.into(),
            task_file: PathBuf::new(),
            channels: BTreeMap::new(),
            hyperparameters: Vec::new(),
            after: after.iter().map(|s| s.to_string()).collect(),
            branch: None,
        }
    }

    #[test]
    fn steps_come_after_what_they_read_and_circles_are_named() {
        let ordered = in_order(vec![
            step("evaluate", &["train", "prepare"]),
            step("train", &["prepare"]),
            step("prepare", &[]),
        ])
        .unwrap();
        let names: Vec<&str> = ordered.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["prepare", "train", "evaluate"]);
        let cycle = in_order(vec![
            step("a", &["c"]),
            step("b", &["a"]),
            step("c", &["b"]),
            step("d", &[]),
        ])
        .unwrap_err();
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4, "{cycle:?}");
    }
}
