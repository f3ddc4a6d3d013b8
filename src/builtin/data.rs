//! Reading the `training` channel into columns: every CSV or parquet file in it, read lazily with polars
//! (only the needed columns), concatenated.

use std::path::{Path, PathBuf};

use polars::prelude::*;

/// The code of a missing category.
pub const MISSING: u32 = u32::MAX;

/// A column as the builtin sees it: numbers (a missing value, null or NaN, is NaN), or categories as
/// integer codes into their sorted distinct values (a missing value is [`MISSING`]). Nothing is kept per
/// row as text: a million rows of a string column are four megabytes of codes.
#[derive(Debug, Clone)]
pub enum ColumnData {
    Numeric(Vec<f64>),
    Categorical {
        codes: Vec<u32>,
        levels: Vec<String>,
    },
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical { codes, .. } => codes.len(),
        }
    }

    pub fn missing(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.iter().filter(|x| x.is_nan()).count(),
            ColumnData::Categorical { codes, .. } => {
                codes.iter().filter(|c| **c == MISSING).count()
            }
        }
    }

    /// Categories from text values, in the order of the rows (for tests and small inputs).
    #[cfg(test)]
    pub fn categories(values: &[Option<&str>]) -> Self {
        categorical(values.iter().copied(), values.len())
    }
}

/// Codes the values in the order they come, then renumbers the codes so that they follow the sorted
/// values (byte order of the UTF-8 text, which is scikit-learn's order of Python strings).
fn categorical<'a>(values: impl Iterator<Item = Option<&'a str>>, rows: usize) -> ColumnData {
    let mut seen: std::collections::HashMap<&'a str, u32> = std::collections::HashMap::new();
    let mut codes = Vec::with_capacity(rows);
    for value in values {
        codes.push(match value {
            None => MISSING,
            Some(text) => {
                let next = seen.len() as u32;
                *seen.entry(text).or_insert(next)
            }
        });
    }
    let mut levels: Vec<(&str, u32)> = seen.into_iter().collect();
    levels.sort_unstable();
    let mut renumber = vec![0u32; levels.len()];
    for (sorted, (_, first_seen)) in levels.iter().enumerate() {
        renumber[*first_seen as usize] = sorted as u32;
    }
    for code in codes.iter_mut().filter(|c| **c != MISSING) {
        *code = renumber[*code as usize];
    }
    ColumnData::Categorical {
        codes,
        levels: levels
            .into_iter()
            .map(|(text, _)| text.to_string())
            .collect(),
    }
}

/// The frame a single-frame task trains on.
pub struct Frame {
    pub files: Vec<PathBuf>,
    pub rows: usize,
    pub features: Vec<(String, ColumnData)>,
    pub label: (String, ColumnData),
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("the training channel folder {0} does not exist: the single-frame task reads the `training` channel; add [channels] training = \"data.csv\" to the task file")]
    NoChannel(PathBuf),
    #[error("the training channel {0} has no CSV or parquet file")]
    NoFiles(PathBuf),
    #[error("{file} is not a CSV or parquet file; the training channel may hold only *.csv and *.parquet files (and hidden files, which are skipped): move it out of the channel's folder, or point the channel at the data file itself")]
    NotTabular { file: String },
    #[error("in the training channel, {0}")]
    Channel(crate::archive::FilesBelowError),
    #[error("cannot read {file} as {kind}: {message}")]
    Unreadable {
        file: String,
        kind: &'static str,
        message: String,
    },
    #[error("column `{column}` is not in {file}; its columns are: {available}")]
    MissingColumn {
        column: String,
        file: String,
        available: String,
    },
    #[error("column `{column}` has type {dtype}; the single-frame task takes numbers, strings and booleans")]
    UnsupportedType { column: String, dtype: String },
    #[error("the training data is empty: {files} hold no rows")]
    Empty { files: String },
    #[error(
        "feature `{column}` has no values: all {rows} rows are missing; drop it from `features`"
    )]
    AllNull { column: String, rows: usize },
    #[error("the files of the training channel do not fit together: {0}")]
    Concat(String),
}

fn tabular_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    if !dir.exists() {
        return Err(DataError::NoChannel(dir.to_path_buf()));
    }
    let mut files = Vec::new();
    for (relative, path) in crate::archive::files_below(dir).map_err(DataError::Channel)? {
        if relative.split('/').any(|part| part.starts_with('.')) {
            continue;
        }
        let lower = relative.to_lowercase();
        if lower.ends_with(".csv") || lower.ends_with(".parquet") {
            files.push(path);
        } else {
            return Err(DataError::NotTabular { file: relative });
        }
    }
    if files.is_empty() {
        return Err(DataError::NoFiles(dir.to_path_buf()));
    }
    Ok(files)
}

fn scan(path: &Path) -> Result<LazyFrame, DataError> {
    let file = path.display().to_string();
    let unreadable = |kind: &'static str, e: PolarsError| DataError::Unreadable {
        file: file.clone(),
        kind,
        message: e.to_string(),
    };
    let plpath = PlRefPath::try_from_path(path).map_err(|e| unreadable("a file", e))?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        LazyFrame::scan_parquet(plpath, ScanArgsParquet::default())
            .map_err(|e| unreadable("parquet", e))
    } else {
        LazyCsvReader::new(plpath)
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .with_rechunk(false)
            .finish()
            .map_err(|e| unreadable("CSV", e))
    }
}

/// What `grounds init --builtin` needs to know of a data file: its columns, and of the label's first
/// 10,000 values how many distinct ones there are and whether they are numbers.
pub struct Peek {
    pub columns: Vec<String>,
    pub label_levels: usize,
    pub label_numeric: bool,
}

pub fn peek(path: &Path, label: &str) -> Result<Peek, DataError> {
    let file = path.display().to_string();
    let mut lazy = scan(path)?;
    let schema = lazy.collect_schema().map_err(|e| DataError::Unreadable {
        file: file.clone(),
        kind: "a table",
        message: e.to_string(),
    })?;
    let columns: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    if !columns.iter().any(|c| c == label) {
        return Err(DataError::MissingColumn {
            column: label.to_string(),
            file,
            available: columns.join(", "),
        });
    }
    let sample = lazy
        .select([col(label)])
        .limit(10_000)
        .collect()
        .map_err(|e| DataError::Unreadable {
            file: file.clone(),
            kind: "a table",
            message: e.to_string(),
        })?;
    let values = sample
        .column(label)
        .map_err(|e| DataError::Concat(e.to_string()))?;
    Ok(Peek {
        label_levels: values
            .drop_nulls()
            .n_unique()
            .map_err(|e| DataError::Concat(e.to_string()))?,
        label_numeric: values.dtype().is_primitive_numeric(),
        columns,
    })
}

/// Reads `label` and `features` (or every other column) from every file of the channel.
pub fn load(dir: &Path, label: &str, features: Option<&[String]>) -> Result<Frame, DataError> {
    let files = tabular_files(dir)?;
    let mut frames = Vec::new();
    let mut chosen: Option<Vec<String>> = None;
    for path in &files {
        let mut lazy = scan(path)?;
        let file = path.display().to_string();
        let schema = lazy.collect_schema().map_err(|e| DataError::Unreadable {
            file: file.clone(),
            kind: if file.ends_with(".parquet") {
                "parquet"
            } else {
                "CSV"
            },
            message: e.to_string(),
        })?;
        let available: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
        let columns: Vec<String> = match features {
            Some(list) => list.to_vec(),
            None => available
                .iter()
                .filter(|c| c.as_str() != label)
                .cloned()
                .collect(),
        };
        for column in std::iter::once(&label.to_string()).chain(columns.iter()) {
            if !available.contains(column) {
                return Err(DataError::MissingColumn {
                    column: column.clone(),
                    file: file.clone(),
                    available: available.join(", "),
                });
            }
        }
        let mut selection: Vec<Expr> = vec![col(label)];
        selection.extend(columns.iter().map(|c| col(c.as_str())));
        frames.push(lazy.select(selection));
        chosen.get_or_insert(columns);
    }
    let columns = chosen.unwrap_or_default();
    let joined = match frames.as_slice() {
        [] => return Err(DataError::NoFiles(dir.to_path_buf())),
        [only] => only.clone(),
        _ => concat(
            &frames,
            UnionArgs {
                to_supertypes: true,
                ..Default::default()
            },
        )
        .map_err(|e| DataError::Concat(e.to_string()))?,
    };
    let df = joined.collect().map_err(|e| DataError::Unreadable {
        file: files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        kind: "a table",
        message: e.to_string(),
    })?;
    let rows = df.height();
    if rows == 0 {
        return Err(DataError::Empty {
            files: files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    // The columns taken out of the frame and converted on every core, each polars column freed as soon
    // as it is converted: the data is never held twice over.
    use rayon::prelude::*;
    let names: Vec<&str> = std::iter::once(label)
        .chain(columns.iter().map(String::as_str))
        .collect();
    let series: Vec<Series> = names
        .iter()
        .map(|name| {
            df.column(name)
                .map(|c| c.as_materialized_series().clone())
                .map_err(|e| DataError::Concat(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    drop(df);
    let mut converted: Vec<ColumnData> = series
        .into_par_iter()
        .zip(names)
        .with_max_len(1)
        .map(|(series, name)| column_data(series, name))
        .collect::<Result<_, _>>()?;
    let label_data = converted.remove(0);
    let mut feature_data = Vec::new();
    for (name, data) in columns.iter().zip(converted) {
        if data.missing() == rows {
            return Err(DataError::AllNull {
                column: name.clone(),
                rows,
            });
        }
        feature_data.push((name.clone(), data));
    }
    Ok(Frame {
        files,
        rows,
        features: feature_data,
        label: (label.to_string(), label_data),
    })
}

fn column_data(series: Series, name: &str) -> Result<ColumnData, DataError> {
    let unsupported = |dtype: &DataType| DataError::UnsupportedType {
        column: name.to_string(),
        dtype: dtype.to_string(),
    };
    let dtype = series.dtype().clone();
    let rows = series.len();
    if dtype.is_primitive_numeric() {
        let floats = series
            .cast(&DataType::Float64)
            .map_err(|_| unsupported(&dtype))?;
        drop(series);
        let values = floats.f64().map_err(|_| unsupported(&dtype))?;
        let numbers: Vec<f64> = if values.null_count() == 0 {
            values.into_no_null_iter().collect()
        } else {
            values.iter().map(|v| v.unwrap_or(f64::NAN)).collect()
        };
        Ok(ColumnData::Numeric(numbers))
    } else if dtype == DataType::String {
        let values = series.str().map_err(|_| unsupported(&dtype))?;
        Ok(categorical(values.iter(), rows))
    } else if dtype == DataType::Boolean {
        let values = series.bool().map_err(|_| unsupported(&dtype))?;
        Ok(categorical(
            values
                .iter()
                .map(|v| v.map(|b| if b { "true" } else { "false" })),
            rows,
        ))
    } else if dtype == DataType::Null {
        Ok(ColumnData::Numeric(vec![f64::NAN; rows]))
    } else {
        Err(unsupported(&dtype))
    }
}

/// Writes `result_df.parquet` as the splits go: one row per input row and split, one row group per part
/// of a split, so that no more than one split's rows are ever held. The encoding runs on a thread of its
/// own while the next split is fitted. Snappy-compressed: fast to write, and the result zip stores the
/// file as it is instead of compressing it again.
pub struct ResultWriter {
    parts: Option<std::sync::mpsc::SyncSender<DataFrame>>,
    writer: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    rows: usize,
}

/// The rows of one part of a split, for [`ResultWriter::write`].
pub struct ResultPart<'a> {
    pub fold: u32,
    pub split: &'static str,
    pub rows: &'a [usize],
    pub labels: &'a [f64],
    pub predictions: &'a [f64],
    pub probabilities: Option<&'a [f64]>,
}

impl ResultWriter {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let schema = Schema::from_iter([
            Field::new("row".into(), DataType::UInt64),
            Field::new("fold".into(), DataType::UInt32),
            Field::new("split".into(), DataType::String),
            Field::new("label".into(), DataType::Float64),
            Field::new("prediction".into(), DataType::Float64),
            Field::new("probability".into(), DataType::Float64),
        ]);
        let file = std::fs::File::create(path)?;
        let mut writer = ParquetWriter::new(file)
            .with_compression(ParquetCompression::Snappy)
            .batched(&schema)?;
        let (parts, received) = std::sync::mpsc::sync_channel::<DataFrame>(1);
        let thread = std::thread::Builder::new().name("result_df".into()).spawn(
            move || -> anyhow::Result<()> {
                for df in received {
                    writer.write_batch(&df)?;
                }
                writer.finish()?;
                Ok(())
            },
        )?;
        Ok(ResultWriter {
            parts: Some(parts),
            writer: Some(thread),
            rows: 0,
        })
    }

    pub fn write(&mut self, part: ResultPart<'_>) -> anyhow::Result<()> {
        let height = part.rows.len();
        let probability = match part.probabilities {
            Some(p) => Column::new("probability".into(), p),
            None => Column::full_null("probability".into(), height, &DataType::Float64),
        };
        let df = DataFrame::new(
            height,
            vec![
                Column::new(
                    "row".into(),
                    part.rows.iter().map(|&i| i as u64).collect::<Vec<u64>>(),
                ),
                Column::new("fold".into(), vec![part.fold; height]),
                Column::new("split".into(), vec![part.split; height]),
                Column::new("label".into(), part.labels),
                Column::new("prediction".into(), part.predictions),
                probability,
            ],
        )?;
        let sent = self.parts.as_ref().map(|parts| parts.send(df));
        if !matches!(sent, Some(Ok(()))) {
            // The writing thread ended early: its error says why.
            return Err(self.join().err().unwrap_or_else(|| {
                anyhow::anyhow!("the result_df writer stopped before all rows were written")
            }));
        }
        self.rows += height;
        Ok(())
    }

    fn join(&mut self) -> anyhow::Result<()> {
        self.parts = None;
        match self.writer.take().map(|thread| thread.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the result_df writer failed"),
            None => Ok(()),
        }
    }

    /// Closes the file; the number of rows written.
    pub fn finish(mut self) -> anyhow::Result<usize> {
        self.join()?;
        Ok(self.rows)
    }
}

impl Drop for ResultWriter {
    /// A run that ends early (an error, a stop) still closes the file with the splits it wrote: the
    /// thread finishes before the process may exit, and no truncated parquet is left.
    fn drop(&mut self) {
        let _ = self.join();
    }
}
