//! Reading the `training` channel into columns: every CSV or parquet file in it, read lazily with polars
//! (only the needed columns), concatenated.

use std::path::{Path, PathBuf};

use polars::prelude::*;

/// A column as the builtin sees it: numbers (missing as `None`), or text categories.
#[derive(Debug, Clone)]
pub enum ColumnData {
    Numeric(Vec<Option<f64>>),
    Categorical(Vec<Option<String>>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical(v) => v.len(),
        }
    }

    pub fn missing(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.iter().filter(|x| x.is_none()).count(),
            ColumnData::Categorical(v) => v.iter().filter(|x| x.is_none()).count(),
        }
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
            .finish()
            .map_err(|e| unreadable("CSV", e))
    }
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
    let label_data = column_data(&df, label)?;
    let mut feature_data = Vec::new();
    for name in &columns {
        let data = column_data(&df, name)?;
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

fn column_data(df: &DataFrame, name: &str) -> Result<ColumnData, DataError> {
    let unsupported = |dtype: &DataType| DataError::UnsupportedType {
        column: name.to_string(),
        dtype: dtype.to_string(),
    };
    let series = df
        .column(name)
        .map_err(|e| DataError::Concat(e.to_string()))?
        .as_materialized_series()
        .clone();
    let dtype = series.dtype().clone();
    if dtype.is_primitive_numeric() {
        let floats = series
            .cast(&DataType::Float64)
            .map_err(|_| unsupported(&dtype))?;
        let values = floats.f64().map_err(|_| unsupported(&dtype))?;
        Ok(ColumnData::Numeric(
            values.iter().map(|v| v.filter(|x| !x.is_nan())).collect(),
        ))
    } else if dtype == DataType::String {
        let values = series.str().map_err(|_| unsupported(&dtype))?;
        Ok(ColumnData::Categorical(
            values.iter().map(|v| v.map(str::to_string)).collect(),
        ))
    } else if dtype == DataType::Boolean {
        let values = series.bool().map_err(|_| unsupported(&dtype))?;
        Ok(ColumnData::Categorical(
            values.iter().map(|v| v.map(|b| b.to_string())).collect(),
        ))
    } else if dtype == DataType::Null {
        Ok(ColumnData::Numeric(vec![None; series.len()]))
    } else {
        Err(unsupported(&dtype))
    }
}

/// Writes `result_df.parquet`: one row per input row and split.
pub struct ResultRows {
    pub row: Vec<u64>,
    pub fold: Vec<u32>,
    pub split: Vec<&'static str>,
    pub label: Vec<f64>,
    pub prediction: Vec<f64>,
    pub probability: Vec<Option<f64>>,
}

impl ResultRows {
    pub fn new() -> Self {
        ResultRows {
            row: vec![],
            fold: vec![],
            split: vec![],
            label: vec![],
            prediction: vec![],
            probability: vec![],
        }
    }

    pub fn write_parquet(self, path: &Path) -> anyhow::Result<()> {
        let height = self.row.len();
        let mut df = DataFrame::new(
            height,
            vec![
                Column::new("row".into(), self.row),
                Column::new("fold".into(), self.fold),
                Column::new("split".into(), self.split),
                Column::new("label".into(), self.label),
                Column::new("prediction".into(), self.prediction),
                Column::new("probability".into(), self.probability),
            ],
        )?;
        let file = std::fs::File::create(path)?;
        ParquetWriter::new(file).finish(&mut df)?;
        Ok(())
    }
}
