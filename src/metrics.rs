//! Metrics: the `###METRIC###name:value###` lines a job prints, parsed the same way in every mode.
//!
//! The SageMaker `MetricDefinitions` regex for a name comes from here too, so that what SageMaker records
//! and what grounds records can never disagree.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};

pub const MARKER: &str = "###METRIC###";

static METRIC_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"###METRIC###([^:#\s][^:#]*?):\s*([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[Nn]a[Nn]|[-+]?[Ii]nf(?:inity)?))\s*###")
        .expect("metric pattern compiles")
});

/// The line a job prints to report a metric.
pub fn format_line(name: &str, value: f64) -> String {
    format!("{MARKER}{name}:{value}###")
}

/// Every metric on one line of output, in order; text around the markers is ignored.
pub fn parse_line(line: &str) -> Vec<(String, f64)> {
    if !line.contains(MARKER) {
        return Vec::new();
    }
    METRIC_LINE
        .captures_iter(line)
        .filter_map(|c| Some((c[1].trim().to_string(), c[2].parse::<f64>().ok()?)))
        .collect()
}

/// The SageMaker `MetricDefinitions` regex for one metric name: its one group is the value.
pub fn sagemaker_regex(name: &str) -> String {
    format!(
        r"###METRIC###{}:\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*###",
        regex::escape(name)
    )
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub timestamp: DateTime<Utc>,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Series {
    /// The last value reported.
    #[serde(rename = "final")]
    pub last: f64,
    pub series: Vec<Sample>,
}

/// All metrics of a job, by name, in the form of `metrics.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Metrics(pub BTreeMap<String, Series>);

impl Metrics {
    pub fn record(&mut self, name: &str, value: f64, timestamp: DateTime<Utc>) {
        let entry = self.0.entry(name.to_string()).or_insert_with(|| Series {
            last: value,
            series: Vec::new(),
        });
        entry.last = value;
        entry.series.push(Sample { timestamp, value });
    }

    /// Records every metric on a line; returns how many it found.
    pub fn observe(&mut self, line: &str, timestamp: DateTime<Utc>) -> usize {
        let found = parse_line(line);
        for (name, value) in &found {
            self.record(name, *value, timestamp);
        }
        found.len()
    }

    pub fn finals(&self) -> BTreeMap<String, f64> {
        self.0.iter().map(|(k, v)| (k.clone(), v.last)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metrics_anywhere_in_a_line() {
        assert_eq!(
            parse_line("###METRIC###auc:0.85###"),
            vec![("auc".to_string(), 0.85)]
        );
        assert_eq!(
            parse_line(
                "algo-1 2026-11-22 12:00:01 INFO ###METRIC###roc_auc_score_test:0.854###  trailing"
            ),
            vec![("roc_auc_score_test".to_string(), 0.854)]
        );
        assert_eq!(
            parse_line("###METRIC###a:1### ###METRIC###b:-2.5e-3###"),
            vec![("a".to_string(), 1.0), ("b".to_string(), -0.0025)]
        );
        assert_eq!(parse_line("###METRIC###Loss (val):3###")[0].0, "Loss (val)");
        assert!(parse_line("###METRIC###x:abc###").is_empty());
        assert!(parse_line("no metric here: 0.5").is_empty());
        assert!(parse_line("###METRIC###nan:NaN###")[0].1.is_nan());
    }

    #[test]
    fn series_keeps_every_value_and_final_is_last() {
        let mut metrics = Metrics::default();
        let t = Utc::now();
        metrics.observe("###METRIC###loss:3###", t);
        metrics.observe("###METRIC###loss:2###", t);
        metrics.observe("###METRIC###acc:0.5###", t);
        assert_eq!(metrics.0["loss"].last, 2.0);
        assert_eq!(metrics.0["loss"].series.len(), 2);
        assert_eq!(metrics.finals().len(), 2);
    }

    /// What SageMaker would extract with the regex of MetricDefinitions is what the parser extracts.
    #[test]
    fn sagemaker_regex_agrees_with_parser() {
        let lines = [
            "###METRIC###roc_auc_score_test:0.854###",
            "[algo-1] epoch 3 ###METRIC###loss:1.5e-2### done",
            "###METRIC###loss: -7###",
            "###METRIC###accuracy.score:1###",
            "###METRIC###x:.5###",
        ];
        for line in lines {
            for (name, value) in parse_line(line) {
                let regex = Regex::new(&sagemaker_regex(&name)).unwrap();
                let captured: f64 = regex.captures(line).unwrap()[1].parse().unwrap();
                assert_eq!(captured, value, "{line}");
                assert!(sagemaker_regex(&name).len() <= 500);
            }
        }
        let metric = format_line("roc_auc_score_test", 0.854);
        assert_eq!(
            parse_line(&metric),
            vec![("roc_auc_score_test".to_string(), 0.854)]
        );
        // A name with regex characters matches only itself.
        let regex = Regex::new(&sagemaker_regex("a.b")).unwrap();
        assert!(!regex.is_match("###METRIC###axb:1###"));
    }
}
