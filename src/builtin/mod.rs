//! Builtin tasks: training that runs inside grounds itself, with no Python and no Docker.
//!
//! A builtin is the job: it runs in the entry like any program would, reads the same `/opt/ml` contract
//! and reports on standard output, metrics included, exactly as a script would.

mod columns;
mod csv;
mod data;
mod linalg;
mod models;
mod prep;
mod scores;
mod single_frame;

use crate::contract::{JobConfig, Layout};

use crate::task::{BuiltinKind, BuiltinSpec};
pub use data::peek;

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
