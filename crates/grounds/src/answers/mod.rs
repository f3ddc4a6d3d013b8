//! What a command answers, for people and for scripts: the `--json` object of a run, the summary a person
//! reads, the table of a sweep; the `results` pages in [`results`]. Data in, text and JSON out; the
//! commands hand them to the printer.

pub mod plot;
pub mod results;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use schema::{DetachedAnswer, JobAnswer, JobHead, MemberOutcome, RunAnswer, StepRow, SweepRow};

use crate::executors::ModeFacts;
use crate::job::{JobRecord, Status};
use crate::printer;
use crate::run::lifecycle::Ran;

/// The `--json` answer of a train command for a job that ran (or was reused).
pub fn answer(
    record: &JobRecord,
    finals: &BTreeMap<String, f64>,
    path: &Path,
    reused: bool,
    facts: ModeFacts,
) -> RunAnswer {
    RunAnswer {
        head: head(record, finals, path, reused),
        exit_code: record.exit_code,
        failure_reason: record.failure_reason.clone(),
        duration_seconds: record.duration_seconds,
        fingerprint: record.fingerprint.clone(),
        left_out: record.left_out.clone(),
        malformed_metric_lines: record.malformed_metric_lines.clone(),
        facts,
    }
}

fn head(record: &JobRecord, finals: &BTreeMap<String, f64>, path: &Path, reused: bool) -> JobHead {
    JobHead {
        id: record.id.clone(),
        status: record.status,
        mode: record.mode(),
        metrics: finals.clone(),
        result: path.to_path_buf(),
        reused,
    }
}

/// What people read of a job that ran.
pub fn summary(record: &JobRecord, metrics: &BTreeMap<String, f64>, path: &Path) -> String {
    let mut text = String::new();
    text.push_str(&format!("id:      {}\n", record.id));
    text.push_str(&format!(
        "status:  {} ({:.1}s, exit code {})\n",
        record.status,
        record.duration_seconds.unwrap_or(0.0),
        record
            .exit_code
            .map_or("none".to_string(), |c| c.to_string())
    ));
    if let Some(reason) = &record.failure_reason {
        let mut lines = reason.lines();
        text.push_str(&format!("reason:  {}\n", lines.next().unwrap_or("")));
        for line in lines {
            text.push_str(&format!("         {line}\n"));
        }
    }
    text.push_str(&format!("result:  {}\n", path.display()));
    if !record.left_out.is_empty() {
        text.push_str(&format!(
            "left out: {} file(s) the job left (see `grounds results show {}`)\n",
            record.left_out.len(),
            record.id
        ));
    }
    if !record.malformed_metric_lines.is_empty() {
        let lines: u64 = record.malformed_metric_lines.iter().map(|m| m.lines).sum();
        text.push_str(&format!(
            "not recorded: {lines} line(s) that look like metric lines but are not (see `grounds results show {}`)\n",
            record.id
        ));
    }
    if !metrics.is_empty() {
        text.push('\n');
        let rows: Vec<Vec<String>> = metrics
            .iter()
            .map(|(k, v)| vec![k.clone(), printer::metric_value(*v)])
            .collect();
        text.push_str(&printer::table(&["METRIC", "VALUE"], &rows));
    }
    text
}

/// Where a reused twin ran, from its record: its image (a tag, or null for an attached run), or its
/// SageMaker job; what submitting it did is not the reuse's to say.
fn twin_facts(record: &JobRecord) -> ModeFacts {
    match record.sagemaker() {
        Some(remote) => ModeFacts {
            remote: Some(remote.clone()),
            ..ModeFacts::default()
        },
        None => ModeFacts {
            image: Some(record.image.clone()),
            ..ModeFacts::default()
        },
    }
}

/// The `--json` answer, the text for people, and the status of what a run came to.
pub fn ran(ran: &Ran) -> (JobAnswer, String, Status) {
    match ran {
        Ran::Plan(plan) => (
            JobAnswer::Plan(plan.clone()),
            serde_json::to_string_pretty(plan).unwrap_or_default(),
            Status::Completed,
        ),
        Ran::Reused(twin) => {
            let finals = twin.metrics.finals();
            let text = format!(
                "reused:  yes (nothing changed since this result)\n{}",
                summary(&twin.job, &finals, &twin.path)
            );
            let answer = answer(&twin.job, &finals, &twin.path, true, twin_facts(&twin.job));
            (JobAnswer::Run(Box::new(answer)), text, twin.job.status)
        }
        Ran::Done {
            record,
            finals,
            path,
            facts,
        } => (
            JobAnswer::Run(Box::new(answer(record, finals, path, false, facts.clone()))),
            summary(record, finals, path),
            record.status,
        ),
        Ran::Detached {
            record,
            path,
            facts,
        } => {
            let answer = DetachedAnswer {
                head: head(record, &BTreeMap::new(), path, false),
                facts: facts.clone(),
            };
            let text = format!(
                "id:      {}\nstatus:  InProgress (submitted to SageMaker)\nfetch:   grounds results fetch {}\n",
                record.id, record.id
            );
            (JobAnswer::Detached(Box::new(answer)), text, record.status)
        }
    }
}

/// One member's answer as a row of a sweep, or its error.
pub type MemberAnswer = anyhow::Result<(JobAnswer, String, Status)>;

/// The end of a sweep: the rows (as the `--json` array), the table people read, the errors of members
/// that could not run, and whether every member completed (or, detached, was submitted).
pub struct SweepTable {
    pub rows: Vec<SweepRow>,
    pub text: String,
    pub errors: Vec<String>,
    /// What a person should know of the table: a `--sort` metric no member reported.
    pub warnings: Vec<String>,
    pub all_completed: bool,
}

/// `--sort NAME` when members ran and none reported `NAME`: the table could not be sorted by it.
fn unsorted_warning(
    sort: Option<&str>,
    ran: bool,
    metric_names: &BTreeSet<String>,
) -> Option<String> {
    let name = sort?;
    if !ran || metric_names.contains(name) {
        return None;
    }
    Some(format!(
        "--sort {name}: no member reported a metric `{name}` (theirs: {}), so the table is in the \
         members' order",
        if metric_names.is_empty() {
            "none".to_string()
        } else {
            metric_names.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    ))
}

/// `members` are (name, hyperparameters the member sets) in order, `answers` theirs in the same order.
pub fn sweep_table(
    members: &[(String, Vec<(String, String)>)],
    answers: Vec<MemberAnswer>,
    sort: Option<&str>,
) -> SweepTable {
    let varying = crate::run::sweep::varying(
        &members
            .iter()
            .map(|(_, overrides)| overrides.clone())
            .collect::<Vec<_>>(),
    );
    let mut rows = Vec::new();
    let mut all_completed = true;
    for ((name, overrides), answer) in members.iter().zip(answers) {
        let swept: BTreeMap<String, String> = overrides
            .iter()
            .filter(|(k, _)| varying.contains(k))
            .cloned()
            .collect();
        let (hyperparameters, outcome) = match answer {
            // A plan names all of the member's hyperparameters itself.
            Ok((JobAnswer::Plan(plan), _, _)) => {
                (None, MemberOutcome::Answer(JobAnswer::Plan(plan)))
            }
            Ok((answer, _, status)) => {
                // A detached remote member is submitted, which is all that was asked.
                all_completed &= matches!(status, Status::Completed | Status::InProgress);
                (Some(swept), MemberOutcome::Answer(answer))
            }
            Err(error) => {
                all_completed = false;
                (
                    Some(swept),
                    MemberOutcome::Error {
                        status: "Error",
                        error: format!("{error:#}"),
                    },
                )
            }
        };
        rows.push(SweepRow {
            name: name.clone(),
            hyperparameters,
            outcome,
        });
    }
    let metric = |row: &SweepRow, name: &str| match &row.outcome {
        MemberOutcome::Answer(answer) => answer.metrics().and_then(|m| m.get(name).copied()),
        MemberOutcome::Error { .. } => None,
    };
    if let Some(name) = sort {
        rows.sort_by(|a, b| crate::job::metrics::rank(metric(a, name), metric(b, name), true));
    }
    let metric_names: BTreeSet<String> = rows
        .iter()
        .filter_map(|row| match &row.outcome {
            MemberOutcome::Answer(answer) => answer.metrics(),
            MemberOutcome::Error { .. } => None,
        })
        .flat_map(|metrics| metrics.keys().cloned())
        .collect();
    let mut header: Vec<String> = vec!["NAME".into(), "ID".into(), "STATUS".into()];
    header.extend(varying.iter().cloned());
    header.extend(metric_names.iter().cloned());
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let (id, status) = match &row.outcome {
                MemberOutcome::Answer(answer) => (
                    answer.id().unwrap_or("-").to_string(),
                    format!(
                        "{}{}",
                        answer.status().map(|s| s.to_string()).unwrap_or_default(),
                        if answer.reused() { " (reused)" } else { "" }
                    ),
                ),
                MemberOutcome::Error { .. } => ("-".to_string(), "Error".to_string()),
            };
            let mut cells = vec![row.name.clone(), id, status];
            cells.extend(varying.iter().map(|k| {
                row.hyperparameters
                    .as_ref()
                    .and_then(|h| h.get(k))
                    .cloned()
                    .unwrap_or_default()
            }));
            cells.extend(metric_names.iter().map(|m| {
                metric(row, m)
                    .map(printer::metric_value)
                    .unwrap_or_else(|| "-".into())
            }));
            cells
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let errors = rows
        .iter()
        .filter_map(|row| match &row.outcome {
            MemberOutcome::Error { error, .. } => Some(format!("{}: {error}", row.name)),
            MemberOutcome::Answer(_) => None,
        })
        .collect();
    let ran = rows.iter().any(
        |row| matches!(&row.outcome, MemberOutcome::Answer(answer) if answer.metrics().is_some()),
    );
    SweepTable {
        text: printer::table(&header, &table_rows),
        warnings: unsorted_warning(sort, ran, &metric_names)
            .into_iter()
            .collect(),
        rows,
        errors,
        all_completed,
    }
}

/// A pipeline's answer: one row per step, in step order, and a table (step, id, status or reused,
/// duration, the first metrics).
pub fn flow(answer: &crate::run::pipeline::run::FlowAnswer) -> (Vec<StepRow>, String) {
    use crate::run::pipeline::run::StepEnd;
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for (step, end) in &answer.steps {
        let (json, row) = match end {
            StepEnd::Ran(ran) => {
                let (answer, _, status) = self::ran(ran);
                let metrics = answer
                    .metrics()
                    .map(|m| {
                        m.iter()
                            .take(3)
                            .map(|(k, v)| format!("{k}={}", printer::metric_value(*v)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                let row = vec![
                    step.clone(),
                    answer.id().unwrap_or_default().to_string(),
                    if answer.reused() {
                        "reused".to_string()
                    } else {
                        status.to_string()
                    },
                    answer
                        .duration_seconds()
                        .map(|d| format!("{d:.1}s"))
                        .unwrap_or_default(),
                    metrics,
                ];
                (
                    StepRow::Ran {
                        step: step.clone(),
                        answer,
                    },
                    row,
                )
            }
            StepEnd::Error(message) => (
                StepRow::Error {
                    step: step.clone(),
                    status: "Error",
                    error: message.clone(),
                },
                vec![
                    step.clone(),
                    String::new(),
                    "Error".into(),
                    String::new(),
                    message.lines().next().unwrap_or_default().to_string(),
                ],
            ),
            StepEnd::Skipped(why) => (
                StepRow::Skipped {
                    step: step.clone(),
                    status: "Skipped",
                    reason: why.clone(),
                },
                vec![
                    step.clone(),
                    String::new(),
                    "Skipped".into(),
                    String::new(),
                    why.clone(),
                ],
            ),
            StepEnd::Planned(plan) => (
                StepRow::Planned {
                    step: step.clone(),
                    would: if plan.reuses.is_some() {
                        "reuse"
                    } else {
                        "run"
                    },
                    reuses: plan.reuses.clone(),
                    after: None,
                    fingerprint: Some(plan.common.fingerprint.clone()),
                },
                Vec::new(),
            ),
            StepEnd::Blocked(why) => (
                StepRow::Planned {
                    step: step.clone(),
                    would: "run",
                    reuses: None,
                    after: Some(why.clone()),
                    fingerprint: None,
                },
                Vec::new(),
            ),
        };
        rows.push(json);
        if !row.is_empty() {
            table.push(row);
        }
    }
    let text = printer::table(&["STEP", "ID", "STATUS", "DURATION", "METRICS"], &table);
    (rows, text)
}
