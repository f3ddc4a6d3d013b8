//! Builtin tasks: training that runs inside grounds' own entry, with no Python and no Docker.
//!
//! A builtin is the job: it runs in the entry (the `grounds-builtin` binary, `train` in a builtin task's
//! image) like any program would, reads the same `/opt/ml` contract and reports on standard output,
//! metrics included, exactly as a script would. The orchestrator uses [`check`], [`check_columns`],
//! [`metric_names`] and [`peek`] before anything runs.

// Nothing a user or a job controls may panic: outside tests, no unwrap, expect or panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod columns;
mod csv;
mod data;
mod linalg;
mod models;
mod prep;
mod result_file;
mod scores;
mod single_frame;

pub use data::{check_columns, peek};
use grounds_job::contract::{JobConfig, Layout};
use grounds_job::spec::{BuiltinKind, BuiltinSpec};

/// Runs a builtin task on the job's root: what the entry calls for a builtin task's package.
pub fn run(spec: &BuiltinSpec, layout: &Layout, config: &JobConfig) -> anyhow::Result<()> {
    match spec.kind {
        BuiltinKind::SingleFrame => single_frame::run(spec, layout, config),
    }
}

/// Checks a builtin's hyperparameters before anything runs: the same resolution the job makes.
pub fn check(
    spec: &BuiltinSpec,
    hyperparameters: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<()> {
    match spec.kind {
        BuiltinKind::SingleFrame => single_frame::check(spec, hyperparameters),
    }
}

/// The metric names a builtin reports, for SageMaker's MetricDefinitions.
pub fn metric_names(spec: &BuiltinSpec) -> Vec<String> {
    single_frame::metric_names(spec.model)
}
