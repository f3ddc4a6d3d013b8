//! Metrics: the `###METRIC###name:value###` lines a job prints, parsed the same way in every mode.
//!
//! The SageMaker `MetricDefinitions` regex for a name comes from here too, so that what SageMaker records
//! and what grounds records can never disagree.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The longest metric name kept (SageMaker's); the rules of `[metrics]` definitions are the task's
/// (`crate::config::task::checks::check_metric_definition`).
pub use crate::config::task::MAX_METRIC_NAME as MAX_NAME;
pub use grounds_job::metric_line::MARKER;

/// `[metrics]` definitions, compiled: each line of output is matched against every one, and the first
/// group of a match is the metric's value, as SageMaker reads `MetricDefinitions` from the log.
#[derive(Debug, Clone, Default)]
pub struct Definitions(Vec<(String, Regex)>);

impl Definitions {
    /// Compiles checked definitions; one that does not compile is left out (the task file was checked).
    pub fn new(definitions: &std::collections::BTreeMap<String, String>) -> Definitions {
        Definitions(
            definitions
                .iter()
                .filter_map(|(name, regex)| Some((name.clone(), Regex::new(regex).ok()?)))
                .collect(),
        )
    }

    /// The values the definitions find on one line.
    pub fn parse_line(&self, line: &str) -> Vec<(String, f64)> {
        self.0
            .iter()
            .filter_map(|(name, regex)| {
                let value = regex
                    .captures(line)?
                    .get(1)?
                    .as_str()
                    .trim()
                    .parse::<f64>()
                    .ok()?;
                Some((name.clone(), value))
            })
            .collect()
    }
}

static METRIC_LINE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"###METRIC###([^:#\s][^:#]*?):\s*([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|(?i:nan|inf(?:inity)?)))\s*###").ok()
});

/// Every metric on one line of output, in order; text around the markers is ignored.
pub fn parse_line(line: &str) -> Vec<(String, f64)> {
    if !line.contains(MARKER) {
        return Vec::new();
    }
    let Some(pattern) = METRIC_LINE.as_ref() else {
        return Vec::new();
    };
    pattern
        .captures_iter(line)
        .filter_map(|c| Some((c[1].trim().to_string(), c[2].parse::<f64>().ok()?)))
        .collect()
}

/// What is wrong with a line that carries the metric marker but is not a metric line: one kind each, so
/// that a job printing thousands of them is warned about once per kind, and the result keeps a tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    /// No `###` closes the value.
    NoClosing,
    /// Whitespace between the marker and the name.
    SpaceBeforeName,
    /// `name=value`.
    EqualsForColon,
    /// No `:` between name and value.
    NoColon,
    /// `:value` with no name.
    NoName,
    /// A value that does not read as a number.
    NotANumber,
}

impl MalformedKind {
    /// What is wrong, in words, and what to write instead.
    pub fn explain(self) -> &'static str {
        match self {
            MalformedKind::NoClosing => "no closing `###` after the value",
            MalformedKind::SpaceBeforeName => "a space between `###METRIC###` and the name",
            MalformedKind::EqualsForColon => "`=` between name and value, where `:` goes",
            MalformedKind::NoColon => "no `:` between name and value",
            MalformedKind::NoName => "no name before the `:`",
            MalformedKind::NotANumber => "a value that is not a number",
        }
    }
}

/// Every marker on a line that does not start a metric, with what is wrong with it; empty for a line
/// without the marker or whose markers all start metrics.
pub fn malformed(line: &str) -> Vec<MalformedKind> {
    if !line.contains(MARKER) {
        return Vec::new();
    }
    let starts: Vec<usize> = METRIC_LINE
        .as_ref()
        .map(|pattern| pattern.find_iter(line).map(|m| m.start()).collect())
        .unwrap_or_default();
    line.match_indices(MARKER)
        .filter(|(at, _)| !starts.contains(at))
        .map(|(at, _)| {
            let after = &line[at + MARKER.len()..];
            let Some(end) = after.find("###") else {
                return MalformedKind::NoClosing;
            };
            let body = &after[..end];
            if body.starts_with(char::is_whitespace) {
                return MalformedKind::SpaceBeforeName;
            }
            match body.split_once(':') {
                None if body.contains('=') => MalformedKind::EqualsForColon,
                None => MalformedKind::NoColon,
                Some((name, _)) if name.trim().is_empty() => MalformedKind::NoName,
                Some(_) => MalformedKind::NotANumber,
            }
        })
        .collect()
}

/// Lines that looked like metric lines but were not, of one kind: how many, and the first as it was
/// printed (cut to [`EXAMPLE_MAX`] characters). Kept in `job.json` and shown by `results show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MalformedLines {
    pub kind: MalformedKind,
    pub problem: String,
    pub lines: u64,
    pub first: String,
}

/// The most characters of a malformed metric line kept as its example.
pub const EXAMPLE_MAX: usize = 200;

/// The SageMaker `MetricDefinitions` regex for one metric name: its one group is the value.
pub fn sagemaker_regex(name: &str) -> String {
    format!(
        r"###METRIC###{}:\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*###",
        regex::escape(name)
    )
}

/// Metric values in JSON: finite numbers as numbers; NaN, infinity and minus infinity (a diverging loss,
/// a value beyond f64 like `1e400`) as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`, which JSON
/// has no numbers for. Reading also takes `null` (as older results stored NaN) as NaN.
pub mod value {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn to_json(value: f64) -> serde_json::Value {
        if value.is_nan() {
            serde_json::Value::from("NaN")
        } else if value == f64::INFINITY {
            serde_json::Value::from("Infinity")
        } else if value == f64::NEG_INFINITY {
            serde_json::Value::from("-Infinity")
        } else {
            serde_json::Value::from(value)
        }
    }

    /// A metric value read back from JSON: a number or one of the strings [`to_json`] writes.
    pub fn from_json(value: &serde_json::Value) -> Option<f64> {
        match value {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => match s.as_str() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                _ => None,
            },
            serde_json::Value::Null => Some(f64::NAN),
            _ => None,
        }
    }

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else if value.is_nan() {
            serializer.serialize_str("NaN")
        } else if *value > 0.0 {
            serializer.serialize_str("Infinity")
        } else {
            serializer.serialize_str("-Infinity")
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        from_json(&value).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{value} is not a metric value (a number, \"NaN\", \"Infinity\" or \"-Infinity\")"
            ))
        })
    }

    /// A map of metric values as JSON, each value as [`to_json`] writes it.
    pub fn map_to_json<'a>(
        values: impl IntoIterator<Item = (&'a String, &'a f64)>,
    ) -> serde_json::Value {
        serde_json::Value::Object(
            values
                .into_iter()
                .map(|(k, v)| (k.clone(), to_json(*v)))
                .collect(),
        )
    }

    /// For `#[serde(serialize_with)]` on a map of metric values.
    pub fn serialize_map<S: Serializer>(
        values: &std::collections::BTreeMap<String, f64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&map_to_json(values), serializer)
    }
}

/// Orders metric values for "best first" tables: finite values by `descending` or ascending, every
/// non-finite value (NaN, infinities: a diverged run) after them, and missing values last.
pub fn rank(a: Option<f64>, b: Option<f64>, descending: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let class = |v: Option<f64>| match v {
        Some(x) if x.is_finite() => 0,
        Some(_) => 1,
        None => 2,
    };
    match (a, b) {
        (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
            if descending {
                y.total_cmp(&x)
            } else {
                x.total_cmp(&y)
            }
        }
        _ => class(a).cmp(&class(b)).then(Ordering::Equal),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub timestamp: DateTime<Utc>,
    #[serde(with = "value")]
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Series {
    /// The last value reported.
    #[serde(rename = "final", with = "value")]
    pub last: f64,
    pub series: Vec<Sample>,
    /// Set when the series holds a part of what was reported: every `every`-th of `reported` values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinned: Option<Thinned>,
}

/// How a long series was thinned to stay within [`SAMPLES_MAX`]: of `reported` values, those at
/// positions 0, `every`, 2·`every`, … are kept (and the last value is always the final one).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Thinned {
    pub reported: u64,
    pub every: u64,
}

/// The most samples one series keeps; past it, every other sample goes and the stride doubles.
pub const SERIES_MAX: usize = 10_000;
/// The fewest samples a series keeps, however many metrics there are.
const SERIES_MIN: usize = 128;
/// The most samples all series of a job keep together (a few tens of MB in memory and in
/// `metrics.json`): with many metrics each keeps fewer.
pub const SAMPLES_MAX: usize = 1_000_000;
/// The most metrics (names) a job records; a name beyond is counted, not recorded.
pub const NAMES_MAX: usize = 1_000;

/// All metrics of a job, by name, in the form of `metrics.json`. What it holds is bounded, whatever the
/// job prints (see [`SERIES_MAX`], [`SAMPLES_MAX`], [`NAMES_MAX`], [`MAX_NAME`]): a job that logs millions
/// of samples keeps flat memory, and the `metrics.json` written is always one that can be read back.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Metrics(pub BTreeMap<String, Series>);

/// The most samples each series keeps when there are `names` metrics: the names are counted in powers of
/// two, so that the cap changes (and series are thinned to it) only a few times.
fn series_cap(names: usize) -> usize {
    (SAMPLES_MAX / names.max(1).next_power_of_two()).clamp(SERIES_MIN, SERIES_MAX)
}

impl Series {
    fn reported(&self) -> u64 {
        self.thinned
            .map_or(self.series.len() as u64, |t| t.reported)
    }

    /// Halves the series (keeping positions 0, 2, 4, …) until it holds at most `cap` samples.
    fn thin_to(&mut self, cap: usize) {
        while self.series.len() > cap {
            let thinned = self.thinned.unwrap_or(Thinned {
                reported: self.series.len() as u64,
                every: 1,
            });
            let mut index = 0;
            self.series.retain(|_| {
                index += 1;
                (index - 1) % 2 == 0
            });
            self.thinned = Some(Thinned {
                reported: thinned.reported,
                every: thinned.every * 2,
            });
        }
    }

    fn push(&mut self, sample: Sample, cap: usize) {
        let reported = self.reported();
        self.last = sample.value;
        match &mut self.thinned {
            Some(thinned) => {
                if reported.is_multiple_of(thinned.every) {
                    self.series.push(sample);
                }
                thinned.reported = reported + 1;
            }
            None => self.series.push(sample),
        }
        self.thin_to(cap);
    }
}

impl Metrics {
    /// Records one value. A name longer than SageMaker's [`MAX_NAME`], or beyond the first
    /// [`NAMES_MAX`] names, is not recorded (false).
    pub fn record(&mut self, name: &str, value: f64, timestamp: DateTime<Utc>) -> bool {
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return false;
        }
        let sample = Sample { timestamp, value };
        let cap = series_cap(self.0.len());
        if let Some(series) = self.0.get_mut(name) {
            series.push(sample, cap);
            return true;
        }
        if self.0.len() >= NAMES_MAX {
            return false;
        }
        let before = series_cap(self.0.len());
        self.0.insert(
            name.to_string(),
            Series {
                last: value,
                series: vec![sample],
                thinned: None,
            },
        );
        let cap = series_cap(self.0.len());
        if cap < before {
            for series in self.0.values_mut() {
                series.thin_to(cap);
            }
        }
        true
    }

    /// Records every metric on a line (`###METRIC###` lines and `[metrics]` definitions); returns how
    /// many it found and how many of them could not be recorded (see [`Metrics::record`]).
    pub fn observe(
        &mut self,
        line: &str,
        definitions: &Definitions,
        timestamp: DateTime<Utc>,
    ) -> (usize, usize) {
        let mut found = parse_line(line);
        found.extend(definitions.parse_line(line));
        let mut dropped = 0;
        for (name, value) in &found {
            if !self.record(name, *value, timestamp) {
                dropped += 1;
            }
        }
        (found.len(), dropped)
    }

    pub fn finals(&self) -> BTreeMap<String, f64> {
        self.0.iter().map(|(k, v)| (k.clone(), v.last)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names of the series that were thinned, with how.
    pub fn thinned(&self) -> Vec<(&str, Thinned)> {
        self.0
            .iter()
            .filter_map(|(name, s)| s.thinned.map(|t| (name.as_str(), t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_that_look_like_metrics_but_are_not_say_what_is_wrong() {
        use MalformedKind::*;
        let cases = [
            ("###METRIC###acc=0.9###", vec![EqualsForColon]),
            ("###METRIC### acc:0.9###", vec![SpaceBeforeName]),
            ("###METRIC###acc:0.9", vec![NoClosing]),
            ("###METRIC###acc 0.9###", vec![NoColon]),
            ("###METRIC###:0.9###", vec![NoName]),
            ("###METRIC###acc:high###", vec![NotANumber]),
            (
                "###METRIC###acc:0.9######METRIC###loss=1###",
                vec![EqualsForColon],
            ),
            ("###METRIC###acc:0.9###", vec![]),
            ("epoch 1 ###METRIC###acc: 0.9 ### done", vec![]),
            ("###METRIC###loss:NaN###", vec![]),
            ("no marker here: acc=0.9", vec![]),
        ];
        for (line, expected) in cases {
            assert_eq!(malformed(line), expected, "{line}");
            // A line is either a metric line or a malformed one, never both for one marker.
            assert_eq!(
                parse_line(line).len() + malformed(line).len(),
                line.matches(MARKER).count(),
                "{line}"
            );
        }
    }

    #[test]
    fn long_series_are_thinned_and_metrics_json_stays_readable() {
        let t = Utc::now();
        let mut metrics = Metrics::default();
        // 30 metrics for 100k steps: each keeps at most its cap, evenly spread, the final value exact.
        for step in 0..100_000u64 {
            for m in 0..30 {
                metrics.record(&format!("metric_{m}"), step as f64, t);
            }
        }
        let loss = &metrics.0["metric_0"];
        assert_eq!(loss.last, 99_999.0);
        let thinned = loss.thinned.unwrap();
        assert_eq!(thinned.reported, 100_000);
        assert!(loss.series.len() <= series_cap(30), "{}", loss.series.len());
        assert!(loss.series.len() as u64 * thinned.every >= thinned.reported - thinned.every);
        for (i, sample) in loss.series.iter().enumerate() {
            assert_eq!(sample.value, (i as u64 * thinned.every) as f64);
        }
        assert_eq!(metrics.thinned().len(), 30);
        let back: Metrics = serde_json::from_slice(&serde_json::to_vec(&metrics).unwrap()).unwrap();
        assert_eq!(back, metrics);

        // The worst a job can make: the most names, each the longest, the most samples, the longest
        // values; written as a result writes it, it stays within what the store reads back.
        let mut worst = Metrics::default();
        for m in 0..NAMES_MAX + 10 {
            let name = format!("{m:04}{}", "\u{10348}".repeat(MAX_NAME - 4));
            for _ in 0..(2 * SAMPLES_MAX / NAMES_MAX) {
                worst.record(&name, -1.234_567_890_123_456_7e-300, t);
            }
        }
        assert_eq!(worst.0.len(), NAMES_MAX);
        let kept: usize = worst.0.values().map(|s| s.series.len()).sum();
        assert!(kept <= SAMPLES_MAX, "{kept}");
        let bytes = serde_json::to_vec_pretty(&worst).unwrap().len() as u64;
        assert!(
            bytes < crate::store::results::METRICS_JSON_MAX,
            "{bytes} bytes written, {} read back",
            crate::store::results::METRICS_JSON_MAX
        );
        assert!(!worst.record(&"x".repeat(MAX_NAME + 1), 1.0, t));
    }

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
        assert!(parse_line("###METRIC###l:nan###")[0].1.is_nan());
        assert_eq!(parse_line("###METRIC###l:inf###")[0].1, f64::INFINITY);
        assert_eq!(
            parse_line("###METRIC###l:-Infinity###")[0].1,
            f64::NEG_INFINITY
        );
        assert_eq!(parse_line("###METRIC###l:1e400###")[0].1, f64::INFINITY);
        assert_eq!(
            parse_line("###METRIC###l:-1e400###")[0].1,
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn regex_definitions_are_checked_and_parsed_as_sagemaker_does() {
        assert!(crate::config::task::checks::check_metric_definition(
            "ae50",
            "AE-at-50th-percentile: ([0-9.]+)"
        )
        .is_ok());
        assert!(
            crate::config::task::checks::check_metric_definition("x", "no group")
                .unwrap_err()
                .contains("0 capturing groups")
        );
        assert!(
            crate::config::task::checks::check_metric_definition("x", "(a)(b)")
                .unwrap_err()
                .contains("2 capturing groups")
        );
        assert!(crate::config::task::checks::check_metric_definition("x", "(?:a)(b)").is_ok());
        assert!(
            crate::config::task::checks::check_metric_definition("x", "([0-9")
                .unwrap_err()
                .contains("does not compile")
        );
        assert!(
            crate::config::task::checks::check_metric_definition("x", &"a".repeat(501))
                .unwrap_err()
                .contains("1 to 500")
        );
        let definitions = Definitions::new(
            &[
                (
                    "ae50".to_string(),
                    "AE-at-50th-percentile: ([0-9.]+)".to_string(),
                ),
                ("loss".to_string(), r"loss=([-+0-9.eE]+);".to_string()),
            ]
            .into_iter()
            .collect(),
        );
        let mut metrics = Metrics::default();
        let t = Utc::now();
        metrics.observe(
            "AE-at-50th-percentile: 0.71 and loss=1e-3;",
            &definitions,
            t,
        );
        metrics.observe("AE-at-50th-percentile: 0.5", &definitions, t);
        metrics.observe("AE-at-50th-percentile: n/a", &definitions, t);
        assert_eq!(metrics.0["ae50"].series.len(), 2);
        assert_eq!(metrics.0["ae50"].last, 0.5);
        assert_eq!(metrics.0["loss"].last, 0.001);
    }

    #[test]
    fn non_finite_values_round_trip_through_json() {
        let mut metrics = Metrics::default();
        let t = Utc::now();
        for line in [
            "###METRIC###loss:NaN###",
            "###METRIC###up:inf###",
            "###METRIC###down:-inf###",
            "###METRIC###big:1e400###",
            "###METRIC###ok:0.5###",
        ] {
            metrics.observe(line, &Definitions::default(), t);
        }
        let text = serde_json::to_string(&metrics).unwrap();
        assert!(!text.contains("null"), "{text}");
        let back: Metrics = serde_json::from_str(&text).unwrap();
        assert!(back.0["loss"].last.is_nan());
        assert_eq!(back.0["up"].last, f64::INFINITY);
        assert_eq!(back.0["down"].last, f64::NEG_INFINITY);
        assert_eq!(back.0["big"].series[0].value, f64::INFINITY);
        assert_eq!(back.0["ok"].last, 0.5);
        // What older results wrote for NaN still reads.
        let old: Metrics =
            serde_json::from_str(r#"{"loss": {"final": null, "series": []}}"#).unwrap();
        assert!(old.0["loss"].last.is_nan());
    }

    #[test]
    fn non_finite_values_rank_after_finite_ones_either_way() {
        let mut values = [
            Some(f64::NAN),
            Some(0.5),
            None,
            Some(f64::INFINITY),
            Some(0.9),
            Some(f64::NEG_INFINITY),
        ];
        values.sort_by(|a, b| rank(*a, *b, true));
        assert_eq!(values[0], Some(0.9));
        assert_eq!(values[1], Some(0.5));
        assert!(values[2..5]
            .iter()
            .all(|v| v.is_some_and(|x| !x.is_finite())));
        assert_eq!(values[5], None);
        values.sort_by(|a, b| rank(*a, *b, false));
        assert_eq!(values[0], Some(0.5));
        assert_eq!(values[5], None);
    }

    #[test]
    fn series_keeps_every_value_and_final_is_last() {
        let mut metrics = Metrics::default();
        let t = Utc::now();
        let none = Definitions::default();
        metrics.observe("###METRIC###loss:3###", &none, t);
        metrics.observe("###METRIC###loss:2###", &none, t);
        metrics.observe("###METRIC###acc:0.5###", &none, t);
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
        let metric = grounds_job::metric_line::format_line("roc_auc_score_test", 0.854);
        assert_eq!(
            parse_line(&metric),
            vec![("roc_auc_score_test".to_string(), 0.854)]
        );
        // A name with regex characters matches only itself.
        let regex = Regex::new(&sagemaker_regex("a.b")).unwrap();
        assert!(!regex.is_match("###METRIC###axb:1###"));
    }
}
