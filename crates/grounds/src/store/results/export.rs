//! `results export`: the store as one table for analysis (one row per result; its hyperparameters and
//! final metrics as columns of their own), written as CSV, parquet or JSON so that `pd.read_csv`,
//! `pl.read_parquet` or `pd.read_json` gives a project's whole history in one call.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use polars::prelude::*;

use super::Summary;

/// The file formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Parquet,
    Json,
}

impl ExportFormat {
    /// The format a file name asks for by its extension, if it names one.
    pub fn of_path(path: &Path) -> Option<ExportFormat> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(ExportFormat::Csv),
            "parquet" | "pq" => Some(ExportFormat::Parquet),
            "json" => Some(ExportFormat::Json),
            _ => None,
        }
    }
}

/// Prefix of a hyperparameter's column.
pub const HP_PREFIX: &str = "hp.";
/// Prefix of a final metric's column.
pub const METRIC_PREFIX: &str = "metric.";

/// One column of the export: whole numbers, numbers, or text (any may be missing).
enum Values {
    Integers(Vec<Option<i64>>),
    Numbers(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

/// The export as named columns, in their order: the fixed ones, then `hp.NAME` (numbers where every
/// value given is a number), then `metric.NAME`.
struct Table {
    columns: Vec<(String, Values)>,
    rows: usize,
}

fn table(rows: &[Summary]) -> Table {
    let text = |f: &dyn Fn(&Summary) -> Option<String>| Values::Text(rows.iter().map(f).collect());
    let mut columns = vec![
        ("id".to_string(), text(&|r| Some(r.id.clone()))),
        ("task".to_string(), text(&|r| Some(r.task.clone()))),
        ("mode".to_string(), text(&|r| Some(r.mode.to_string()))),
        ("status".to_string(), text(&|r| Some(r.status.to_string()))),
        (
            "created".to_string(),
            text(&|r| Some(r.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
        ),
        (
            "duration_seconds".to_string(),
            Values::Numbers(rows.iter().map(|r| r.duration_seconds).collect()),
        ),
        (
            "pipeline".to_string(),
            text(&|r| r.pipeline.as_ref().map(|p| p.name.clone())),
        ),
        (
            "step".to_string(),
            text(&|r| r.pipeline.as_ref().map(|p| p.step.clone())),
        ),
    ];
    let hyperparameters: BTreeSet<&String> =
        rows.iter().flat_map(|r| r.hyperparameters.keys()).collect();
    for name in hyperparameters {
        let values: Vec<Option<&String>> =
            rows.iter().map(|r| r.hyperparameters.get(name)).collect();
        // Whole numbers stay whole (`max_iter` 1000, not 1000.0), other numbers are numbers, the rest text.
        let parsed =
            |parse: &dyn Fn(&str) -> bool| values.iter().all(|v| v.is_none_or(|t| parse(t.trim())));
        let column = if parsed(&|t| t.parse::<i64>().is_ok()) {
            Values::Integers(
                values
                    .iter()
                    .map(|v| v.and_then(|t| t.trim().parse().ok()))
                    .collect(),
            )
        } else if parsed(&|t| t.parse::<f64>().is_ok()) {
            Values::Numbers(
                values
                    .iter()
                    .map(|v| v.and_then(|t| t.trim().parse().ok()))
                    .collect(),
            )
        } else {
            Values::Text(values.into_iter().map(|v| v.cloned()).collect())
        };
        columns.push((format!("{HP_PREFIX}{name}"), column));
    }
    let metrics: BTreeSet<&String> = rows.iter().flat_map(|r| r.metrics.keys()).collect();
    for name in metrics {
        columns.push((
            format!("{METRIC_PREFIX}{name}"),
            Values::Numbers(rows.iter().map(|r| r.metrics.get(name).copied()).collect()),
        ));
    }
    columns.push((
        "result".to_string(),
        text(&|r| Some(r.result.display().to_string())),
    ));
    Table {
        columns,
        rows: rows.len(),
    }
}

/// The export as a JSON array of objects, one per result (NaN and infinities as metrics.json spells them).
pub fn to_json(rows: &[Summary]) -> serde_json::Value {
    let table = table(rows);
    let records: Vec<serde_json::Value> = (0..table.rows)
        .map(|i| {
            let mut record = serde_json::Map::new();
            for (name, values) in &table.columns {
                let value = match values {
                    Values::Integers(v) => v[i]
                        .map(serde_json::Value::from)
                        .unwrap_or(serde_json::Value::Null),
                    Values::Numbers(v) => v[i]
                        .map(crate::job::metrics::value::to_json)
                        .unwrap_or(serde_json::Value::Null),
                    Values::Text(v) => v[i]
                        .clone()
                        .map(serde_json::Value::from)
                        .unwrap_or(serde_json::Value::Null),
                };
                record.insert(name.clone(), value);
            }
            serde_json::Value::Object(record)
        })
        .collect();
    serde_json::Value::Array(records)
}

fn frame(rows: &[Summary]) -> anyhow::Result<DataFrame> {
    let table = table(rows);
    let columns: Vec<Column> = table
        .columns
        .into_iter()
        .map(|(name, values)| match values {
            Values::Integers(v) => Column::new(name.into(), v),
            Values::Numbers(v) => Column::new(name.into(), v),
            Values::Text(v) => Column::new(name.into(), v),
        })
        .collect();
    Ok(DataFrame::new(table.rows, columns)?)
}

/// The export in `format`, as bytes.
pub fn render(rows: &[Summary], format: ExportFormat) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match format {
        ExportFormat::Json => {
            serde_json::to_writer_pretty(&mut bytes, &to_json(rows))?;
            bytes.push(b'\n');
        }
        ExportFormat::Csv => {
            let mut df = frame(rows)?;
            CsvWriter::new(&mut bytes)
                .include_header(true)
                .finish(&mut df)
                .map_err(|e| anyhow::anyhow!("writing CSV: {e}"))?;
        }
        ExportFormat::Parquet => {
            let mut df = frame(rows)?;
            ParquetWriter::new(&mut bytes)
                .finish(&mut df)
                .map_err(|e| anyhow::anyhow!("writing parquet: {e}"))?;
        }
    }
    Ok(bytes)
}

/// Writes the export to `path` whole or not at all: into a temporary file beside it, then renamed.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".grounds-export-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    // A file for the user, readable as any file they write (a temporary file starts private).
    use std::os::unix::fs::PermissionsExt;
    temp.write_all(bytes)
        .and_then(|_| {
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .and_then(|_| temp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    temp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The columns an export has, for the message after writing one.
pub fn column_count(rows: &[Summary]) -> usize {
    table(rows).columns.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Mode, Status};

    fn summary(id: &str, hp: &[(&str, &str)], metrics: &[(&str, f64)]) -> Summary {
        Summary {
            id: id.into(),
            task: "t".into(),
            mode: Mode::Attached,
            status: Status::Completed,
            created: chrono::Utc::now(),
            duration_seconds: Some(1.5),
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            hyperparameters: hp
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            result: "/r.zip".into(),
            bytes: 10,
            image: None,
            pipeline: None,
        }
    }

    #[test]
    fn every_hyperparameter_and_metric_is_a_column_typed_by_its_values() {
        let rows = vec![
            summary("a", &[("lr", "0.1"), ("kind", "x")], &[("auc", 0.8)]),
            summary("b", &[("lr", "1"), ("depth", "3")], &[("loss", f64::NAN)]),
        ];
        let df = frame(&rows).unwrap();
        assert_eq!(df.height(), 2);
        // 9 fixed columns, 3 hyperparameters, 2 metrics.
        assert_eq!(df.width(), 14);
        assert_eq!(column_count(&rows), 14);
        assert_eq!(df.column("hp.lr").unwrap().dtype(), &DataType::Float64);
        assert_eq!(df.column("hp.kind").unwrap().dtype(), &DataType::String);
        let auc = df.column("metric.auc").unwrap();
        assert_eq!(auc.f64().unwrap().get(0), Some(0.8));
        assert_eq!(auc.f64().unwrap().get(1), None);
        let json = to_json(&rows);
        assert_eq!(json[1]["metric.loss"], "NaN");
        assert_eq!(json[0]["hp.depth"], serde_json::Value::Null);
        assert_eq!(json[1]["hp.depth"], 3.0);
    }
}
