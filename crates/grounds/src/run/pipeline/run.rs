//! Running a pipeline: each step through the one job pipeline, in dependency order, independent steps
//! `parallel` at a time; a step's `step://` channels read the result its upstream step made or reused, so
//! a step whose inputs and task are unchanged is reused by its fingerprint; a failed step skips what
//! reads it while the other branches go on.

use std::collections::{BTreeMap, BTreeSet};

use super::{Flow, Step, StepChannel};
use crate::config::task::ChannelSource;
use crate::executors::Executor;
use crate::job::{JobRecord, Mode, Status};
use crate::printer::{Progress, Reporter};
use crate::run::lifecycle::{self, Ran};
use crate::settings::RunOptions;
use crate::settings::TrainSettings;

/// How a step ended.
pub enum StepEnd {
    /// It ran or was reused.
    Ran(Box<Ran>),
    /// It could not start (bad input, an engine error): the message.
    Error(String),
    /// A step it reads did not complete.
    Skipped(String),
    /// A dry run: the plan.
    Planned(Box<crate::run::lifecycle::Plan>),
    /// A dry run that cannot plan this step yet: a step it reads would run first.
    Blocked(String),
}

/// Everything a pipeline run came to, in step order.
pub struct FlowAnswer {
    pub steps: Vec<(String, StepEnd)>,
}

impl FlowAnswer {
    /// Every step completed or was reused.
    pub fn all_completed(&self) -> bool {
        self.steps.iter().all(|(_, end)| match end {
            StepEnd::Ran(ran) => record(ran).is_some_and(|r| r.status == Status::Completed),
            StepEnd::Planned(_) | StepEnd::Blocked(_) => true,
            _ => false,
        })
    }
}

/// The record of a step that ran or was reused.
fn record(ran: &Ran) -> Option<&JobRecord> {
    match ran {
        Ran::Reused(twin) => Some(&twin.job),
        Ran::Done { record, .. } | Ran::Detached { record, .. } => Some(record),
        Ran::Plan(_) => None,
    }
}

/// What a pipeline run is asked to do: its steps (fanned out by `--set`), the options every step
/// shares, the mode, the steps `--force-step` forces to run, and how many steps run at once.
pub struct Schedule {
    pub flow: Flow,
    pub options: RunOptions,
    pub mode: Mode,
    pub force: BTreeSet<String>,
    pub parallel: usize,
}

/// The settings of one step: its task with the pipeline's overrides, its `step://` channels pointed at
/// the results its upstream steps made.
fn step_settings(
    step: &Step,
    schedule: &Schedule,
    made: &BTreeMap<String, String>,
) -> anyhow::Result<TrainSettings> {
    let options = RunOptions {
        force: schedule.options.force || schedule.force.contains(&step.name),
        ..schedule.options.clone()
    };
    let mut settings = TrainSettings::resolve(
        &step.task_file,
        &step.hyperparameters,
        &options,
        schedule.mode,
    )?;
    for (channel, source) in &step.channels {
        let (source, shown) = match source {
            StepChannel::Step {
                step: upstream,
                folder,
            } => {
                let id = made.get(upstream).ok_or_else(|| {
                    anyhow::anyhow!("step `{}`: step `{upstream}` has no result yet", step.name)
                })?;
                (
                    ChannelSource::Result {
                        id: id.clone(),
                        folder: *folder,
                    },
                    format!("step://{upstream}/{folder}"),
                )
            }
            StepChannel::Given(source) => (source.clone(), source.describe()),
        };
        settings.task.channels.insert(channel.clone(), source);
        settings.sources.insert(channel.clone(), shown);
    }
    settings.pipeline = Some(crate::job::PipelineStep {
        name: schedule.flow.name.clone(),
        step: step.name.clone(),
    });
    Ok(settings)
}

/// Why a step whose upstream steps have all ended cannot run: one of them did not complete (or, in a
/// dry run, would run first). `None` when it can run.
fn blocked_by(step: &Step, ends: &BTreeMap<String, StepEnd>) -> Option<String> {
    step.after.iter().find_map(|a| match &ends[a] {
        StepEnd::Ran(ran) if record(ran).is_some_and(|r| r.status == Status::Completed) => None,
        StepEnd::Planned(plan) if plan.reuses.is_some() => None,
        StepEnd::Planned(_) | StepEnd::Blocked(_) => Some(format!("step `{a}` would run first")),
        StepEnd::Ran(ran) => Some(match record(ran) {
            Some(r) => format!(
                "step `{a}` ended {}{}",
                r.status,
                r.failure_reason
                    .as_deref()
                    .map(|why| format!(": {}", why.lines().next().unwrap_or_default()))
                    .unwrap_or_default()
            ),
            None => format!("step `{a}` did not end"),
        }),
        StepEnd::Error(e) => Some(format!("step `{a}` could not run: {e}")),
        StepEnd::Skipped(_) => Some(format!("step `{a}` was skipped")),
    })
}

/// The result a step made, reused or would reuse: what its downstream steps read.
fn result_of(end: &StepEnd) -> Option<&str> {
    match end {
        StepEnd::Ran(ran) => record(ran).map(|r| r.id.as_str()),
        StepEnd::Planned(plan) => plan.reuses.as_deref(),
        _ => None,
    }
}

/// Runs (or, with `--dry-run`, plans) every step; `done` counts the steps that ended (ran, failed or
/// were skipped).
pub async fn run<E: Executor, F: std::future::Future<Output = anyhow::Result<E>>, R: Reporter>(
    executor_for: &(impl Fn(&TrainSettings) -> F + Sync),
    schedule: &Schedule,
    reporter_for: impl Fn(&str) -> R,
    done: &Progress<'_>,
) -> FlowAnswer {
    use futures_util::StreamExt;
    let flow = &schedule.flow;
    let mut ends: BTreeMap<String, StepEnd> = BTreeMap::new();
    // The result each step made or reused, by step.
    let mut made: BTreeMap<String, String> = BTreeMap::new();
    while ends.len() < flow.steps.len() {
        let mut runnable = Vec::new();
        let ready = flow.steps.iter().filter(|s| {
            !ends.contains_key(&s.name) && s.after.iter().all(|a| ends.contains_key(a))
        });
        let ready: Vec<(&Step, Option<String>)> =
            ready.map(|step| (step, blocked_by(step, &ends))).collect();
        for (step, blocked) in ready {
            match blocked {
                Some(why) if schedule.options.dry_run => {
                    ends.insert(step.name.clone(), StepEnd::Blocked(why));
                    done.add(1);
                }
                Some(why) => {
                    reporter_for(&step.name).warn(&format!("skipped: {why}"));
                    ends.insert(step.name.clone(), StepEnd::Skipped(why));
                    done.add(1);
                }
                None => runnable.push(step),
            }
        }
        let made_now = &made;
        let ended: Vec<(String, StepEnd)> =
            futures_util::stream::iter(runnable.into_iter().map(|step| {
                let reporter = reporter_for(&step.name);
                async move {
                    let end =
                        match run_step(executor_for, schedule, step, made_now, &reporter).await {
                            Ok(end) => end,
                            Err(e) => {
                                reporter.warn(&format!("{e:#}"));
                                StepEnd::Error(format!("{e:#}"))
                            }
                        };
                    done.add(1);
                    (step.name.clone(), end)
                }
            }))
            .buffer_unordered(schedule.parallel.max(1))
            .collect()
            .await;
        for (name, end) in ended {
            if let Some(id) = result_of(&end) {
                made.insert(name.clone(), id.to_string());
            }
            ends.insert(name, end);
        }
    }
    FlowAnswer {
        steps: flow
            .steps
            .iter()
            .filter_map(|s| ends.remove(&s.name).map(|end| (s.name.clone(), end)))
            .collect(),
    }
}

async fn run_step<E: Executor, F: std::future::Future<Output = anyhow::Result<E>>>(
    executor_for: &(impl Fn(&TrainSettings) -> F + Sync),
    schedule: &Schedule,
    step: &Step,
    made: &BTreeMap<String, String>,
    reporter: &dyn Reporter,
) -> anyhow::Result<StepEnd> {
    let settings = step_settings(step, schedule, made)?;
    let executor = executor_for(&settings).await?;
    let executor = &executor;
    let settings = lifecycle::with_result_channels(settings, reporter)?;
    let settings = lifecycle::with_s3_channels(settings, !executor.reads_s3(), reporter).await?;
    let members = lifecycle::members(&settings, &[])?;
    let Some(member) = members.first() else {
        anyhow::bail!("step `{}` has nothing to run", step.name);
    };
    // A branch of a swept step is named as a sweep member is.
    let base =
        crate::run::sweep::base_name(&member.settings.task.spec.name, step.branch.as_deref());
    let ran = lifecycle::run(executor, &member.settings, &base, reporter).await?;
    if let Ran::Plan(plan) = &ran {
        return Ok(StepEnd::Planned(plan.clone()));
    }
    Ok(StepEnd::Ran(Box::new(ran)))
}
