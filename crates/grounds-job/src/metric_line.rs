//! The line a job prints to report a metric, `###METRIC###name:value###`, as the builtin writes it and
//! the orchestrator parses it (`grounds`'s `metrics` module, which also derives SageMaker's regex).

pub const MARKER: &str = "###METRIC###";

/// The line a job prints to report a metric.
pub fn format_line(name: &str, value: f64) -> String {
    format!("{MARKER}{name}:{value}###")
}
