//! What a command answers, for people and for scripts: the `--json` object of a run, the summary a person
//! reads, the table of a sweep; the `results` pages in [`results`]. Data in, text and JSON out; the
//! commands hand them to the printer.

pub mod plot;
pub mod results;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Value};

use crate::job::{JobRecord, Status};
use crate::run::lifecycle::Ran;
use crate::printer;

/// The `--json` answer of a train command for a job that ran (or was reused).
pub fn answer(
    record: &JobRecord,
    finals: &BTreeMap<String, f64>,
    path: &Path,
    reused: bool,
) -> Value {
    json!({
        "id": record.id,
        "status": record.status,
        "mode": record.mode(),
        "metrics": crate::job::metrics::value::map_to_json(finals),
        "result": path,
        "reused": reused,
        "exit_code": record.exit_code,
        "failure_reason": record.failure_reason,
        "duration_seconds": record.duration_seconds,
        "fingerprint": record.fingerprint,
        "left_out": record.left_out,
    })
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

/// The `--json` answer, the text for people, and the status of what a run came to.
pub fn ran(ran: &Ran) -> (Value, String, Status) {
    match ran {
        Ran::Plan(plan) => (
            plan.clone(),
            serde_json::to_string_pretty(plan).unwrap_or_default(),
            Status::Completed,
        ),
        Ran::Reused(twin) => {
            let finals = twin.metrics.finals();
            let text = format!(
                "reused:  yes (nothing changed since this result)\n{}",
                summary(&twin.job, &finals, &twin.path)
            );
            (
                answer(&twin.job, &finals, &twin.path, true),
                text,
                twin.job.status,
            )
        }
        Ran::Done {
            record,
            finals,
            path,
            extra,
        } => {
            let mut json = answer(record, finals, path, false);
            for (key, value) in extra {
                json[key] = value.clone();
            }
            (json, summary(record, finals, path), record.status)
        }
        Ran::Detached {
            record,
            path,
            extra,
        } => {
            let mut json = json!({
                "id": record.id,
                "status": record.status,
                "mode": record.mode(),
                "metrics": {},
                "result": path,
                "reused": false,
            });
            for (key, value) in extra {
                json[key] = value.clone();
            }
            let text = format!(
                "id:      {}\nstatus:  InProgress (submitted to SageMaker)\nfetch:   grounds results fetch {}\n",
                record.id, record.id
            );
            (json, text, record.status)
        }
    }
}

/// One member's answer as a row of a sweep: a JSON object, or its error.
pub type MemberAnswer = anyhow::Result<(Value, String, Status)>;

/// The end of a sweep: the rows (as the `--json` array), the table people read, the errors of members
/// that could not run, and whether every member completed (or, detached, was submitted).
pub struct SweepTable {
    pub rows: Vec<Value>,
    pub text: String,
    pub errors: Vec<String>,
    pub all_completed: bool,
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
        let hyperparameters: BTreeMap<_, _> = overrides
            .iter()
            .filter(|(k, _)| varying.contains(k))
            .cloned()
            .collect();
        let mut row = json!({"name": name, "hyperparameters": hyperparameters});
        match answer {
            Ok((answer, _, status)) => {
                // A detached remote member is submitted, which is all that was asked.
                all_completed &= matches!(status, Status::Completed | Status::InProgress);
                for (key, value) in answer.as_object().into_iter().flatten() {
                    row[key] = value.clone();
                }
            }
            Err(error) => {
                all_completed = false;
                row["status"] = json!("Error");
                row["error"] = json!(format!("{error:#}"));
            }
        }
        rows.push(row);
    }
    let metric = |r: &Value, name: &str| {
        Some(&r["metrics"][name])
            .filter(|v| !v.is_null())
            .and_then(crate::job::metrics::value::from_json)
    };
    if let Some(name) = sort {
        rows.sort_by(|a, b| crate::job::metrics::rank(metric(a, name), metric(b, name), true));
    }
    let metric_names: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| {
            r["metrics"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
        })
        .collect();
    let mut header: Vec<String> = vec!["NAME".into(), "ID".into(), "STATUS".into()];
    header.extend(varying.iter().cloned());
    header.extend(metric_names.iter().cloned());
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r["name"].as_str().unwrap_or_default().to_string(),
                r["id"].as_str().unwrap_or("-").to_string(),
                format!(
                    "{}{}",
                    r["status"].as_str().unwrap_or_default(),
                    if r["reused"] == true { " (reused)" } else { "" }
                ),
            ];
            cells.extend(varying.iter().map(|k| {
                r["hyperparameters"][k]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }));
            cells.extend(metric_names.iter().map(|m| {
                metric(r, m)
                    .map(printer::metric_value)
                    .unwrap_or_else(|| "-".into())
            }));
            cells
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let errors = rows
        .iter()
        .filter(|r| r["error"].is_string())
        .map(|r| {
            format!(
                "{}: {}",
                r["name"].as_str().unwrap_or_default(),
                r["error"].as_str().unwrap_or_default()
            )
        })
        .collect();
    SweepTable {
        text: printer::table(&header, &table_rows),
        rows,
        errors,
        all_completed,
    }
}

/// A pipeline's answer: one JSON object per step, in step order, and a table (step, id, status or
/// reused, duration, the first metrics).
pub fn flow(answer: &crate::run::pipeline::run::FlowAnswer) -> (Value, String) {
    use crate::run::pipeline::run::StepEnd;
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for (step, end) in &answer.steps {
        let (json, row) = match end {
            StepEnd::Ran(ran) => {
                let (answer, _, status) = self::ran(ran);
                let mut json = answer.clone();
                json["step"] = Value::from(step.clone());
                let metrics = answer["metrics"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .take(3)
                            .map(|(k, v)| {
                                format!(
                                    "{k}={}",
                                    v.as_f64()
                                        .map(crate::printer::metric_value)
                                        .unwrap_or_else(|| v.to_string())
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                let reused = answer["reused"].as_bool().unwrap_or(false);
                (
                    json,
                    vec![
                        step.clone(),
                        answer["id"].as_str().unwrap_or_default().to_string(),
                        if reused {
                            "reused".to_string()
                        } else {
                            status.to_string()
                        },
                        answer["duration_seconds"]
                            .as_f64()
                            .map(|d| format!("{d:.1}s"))
                            .unwrap_or_default(),
                        metrics,
                    ],
                )
            }
            StepEnd::Error(message) => (
                serde_json::json!({"step": step, "status": "Error", "error": message}),
                vec![
                    step.clone(),
                    String::new(),
                    "Error".into(),
                    String::new(),
                    message.lines().next().unwrap_or_default().to_string(),
                ],
            ),
            StepEnd::Skipped(why) => (
                serde_json::json!({"step": step, "status": "Skipped", "reason": why}),
                vec![
                    step.clone(),
                    String::new(),
                    "Skipped".into(),
                    String::new(),
                    why.clone(),
                ],
            ),
            StepEnd::Planned(plan) => {
                let reuses = plan.get("reuses").and_then(Value::as_str);
                let json = serde_json::json!({
                    "step": step,
                    "would": if reuses.is_some() { "reuse" } else { "run" },
                    "reuses": reuses,
                    "after": plan.get("after"),
                    "fingerprint": plan.get("fingerprint"),
                });
                (json, Vec::new())
            }
        };
        rows.push(json);
        if !row.is_empty() {
            table.push(row);
        }
    }
    let text = crate::printer::table(&["STEP", "ID", "STATUS", "DURATION", "METRICS"], &table);
    (Value::Array(rows), text)
}
