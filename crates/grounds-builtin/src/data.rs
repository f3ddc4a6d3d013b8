//! Reading the `training` channel into columns: every CSV or parquet file in it, only the needed columns,
//! concatenated. Plain CSV files go through the builtin's own reader ([`super::csv`]), straight into
//! columns; anything else (parquet, quoted fields, a value the plain reader leaves alone) is read lazily
//! with polars, whose inferred types both follow. And writing `result_df.parquet` as the splits go.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::columns::{categorical, sorted_categories, ColumnData, MISSING};

/// The columns of several files, one after the other: numbers with numbers, categories with categories
/// (their levels united and the codes renumbered); `None` if a column's kinds differ between files.
fn concatenate(files: Vec<Vec<ColumnData>>) -> Option<Vec<ColumnData>> {
    let mut files = files.into_iter();
    let mut all = files.next()?;
    for file in files {
        for (column, more) in all.iter_mut().zip(file) {
            match (column, more) {
                (ColumnData::Numeric(values), ColumnData::Numeric(more)) => values.extend(more),
                (
                    ColumnData::Categorical { codes, levels },
                    ColumnData::Categorical {
                        codes: more_codes,
                        levels: more_levels,
                    },
                ) => {
                    let mut first_seen = std::mem::take(levels);
                    let mut index: std::collections::HashMap<String, u32> = first_seen
                        .iter()
                        .enumerate()
                        .map(|(code, level)| (level.clone(), code as u32))
                        .collect();
                    let renumber: Vec<u32> = more_levels
                        .into_iter()
                        .map(|level| {
                            let next = first_seen.len() as u32;
                            *index.entry(level.clone()).or_insert_with(|| {
                                first_seen.push(level);
                                next
                            })
                        })
                        .collect();
                    let mut joined = std::mem::take(codes);
                    joined.extend(more_codes.into_iter().map(|c| match c {
                        MISSING => MISSING,
                        c => renumber[c as usize],
                    }));
                    let ColumnData::Categorical {
                        codes: sorted,
                        levels: sorted_levels,
                    } = sorted_categories(joined, first_seen)
                    else {
                        return None;
                    };
                    (*codes, *levels) = (sorted, sorted_levels);
                }
                _ => return None,
            }
        }
    }
    Some(all)
}

/// The files the plain reader would read, each with its wanted columns and their kinds.
type PlainFiles<'a> = Vec<(&'a Path, Vec<(String, super::csv::Kind)>)>;

/// How the fast reader parses a column polars infers as `dtype`; `None` for a type it leaves to polars.
fn csv_kind(dtype: &DataType) -> Option<super::csv::Kind> {
    use super::csv::Kind;
    match dtype {
        DataType::Int64 => Some(Kind::Integer),
        DataType::Float64 => Some(Kind::Float),
        DataType::String => Some(Kind::Text),
        DataType::Boolean => Some(Kind::Boolean),
        _ => None,
    }
}

/// The frame a single-frame task trains on.
pub struct Frame {
    pub files: Vec<PathBuf>,
    pub rows: usize,
    pub features: Vec<(String, ColumnData)>,
    pub label: (String, ColumnData),
    /// How the files were read: by the plain CSV reader, or by polars and why.
    pub read_by: String,
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
    Channel(grounds_job::archive::FilesBelowError),
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
    for (relative, path) in grounds_job::archive::files_below(dir).map_err(DataError::Channel)? {
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
    load_frame(dir, label, features, true)
}

/// As [`load`], every file read by polars (the reference the fast reader is tested against).
#[cfg(test)]
pub fn load_with_polars(
    dir: &Path,
    label: &str,
    features: Option<&[String]>,
) -> Result<Frame, DataError> {
    load_frame(dir, label, features, false)
}

fn load_frame(
    dir: &Path,
    label: &str,
    features: Option<&[String]>,
    plain_reader: bool,
) -> Result<Frame, DataError> {
    let files = tabular_files(dir)?;
    let mut frames = Vec::new();
    let mut chosen: Option<Vec<String>> = None;
    // What the fast reader would read of each file (polars' types for its columns), while it can.
    let mut plain: Option<PlainFiles> = plain_reader.then(Vec::new);
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
        let wanted: Option<Vec<(String, super::csv::Kind)>> = std::iter::once(label)
            .chain(columns.iter().map(String::as_str))
            .map(|name| Some((name.to_string(), csv_kind(schema.get(name)?)?)))
            .collect();
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let same_columns = chosen.as_ref().is_none_or(|first| *first == columns);
        plain = match (plain, wanted) {
            (Some(mut files), Some(wanted)) if is_csv && same_columns => {
                files.push((path.as_path(), wanted));
                Some(files)
            }
            _ => None,
        };
        let mut selection: Vec<Expr> = vec![col(label)];
        selection.extend(columns.iter().map(|c| col(c.as_str())));
        frames.push(lazy.select(selection));
        chosen.get_or_insert(columns);
    }
    let columns = chosen.unwrap_or_default();
    let names: Vec<&str> = std::iter::once(label)
        .chain(columns.iter().map(String::as_str))
        .collect();
    // Plain CSV files are read straight into columns; anything else (or a plain reading that gives
    // up) by polars.
    let fast = match plain {
        None => Err("parquet, or types the plain reader does not take".to_string()),
        Some(plain) => plain
            .iter()
            .map(|(path, wanted)| {
                super::csv::read(path, wanted).map_err(|why| {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    format!("{name}: {}", why.0)
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|files| {
                concatenate(files).ok_or_else(|| "column types differ between files".into())
            }),
    };
    let (mut converted, read_by) = match fast {
        Ok(converted) => (converted, "read as plain CSV".to_string()),
        Err(why) => (
            read_with_polars(&frames, &files, &names, dir)?,
            format!("read by polars: {why}"),
        ),
    };
    let rows = converted.first().map_or(0, ColumnData::len);
    if rows == 0 {
        return Err(DataError::Empty {
            files: files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
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
        read_by,
    })
}

/// Reads the selected columns of every file with polars (concatenated, types united), converted to the
/// builtin's columns in the order of `names`.
fn read_with_polars(
    frames: &[LazyFrame],
    files: &[PathBuf],
    names: &[&str],
    dir: &Path,
) -> Result<Vec<ColumnData>, DataError> {
    let joined = match frames {
        [] => return Err(DataError::NoFiles(dir.to_path_buf())),
        [only] => only.clone(),
        _ => concat(
            frames,
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
    // The columns taken out of the frame and converted on every core, each polars column freed as soon
    // as it is converted: the data is never held twice over.
    use rayon::prelude::*;
    let series: Vec<Series> = names
        .iter()
        .map(|name| {
            df.column(name)
                .map(|c| c.as_materialized_series().clone())
                .map_err(|e| DataError::Concat(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    drop(df);
    series
        .into_par_iter()
        .zip(names.par_iter())
        .with_max_len(1)
        .map(|(series, name)| column_data(series, name))
        .collect()
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

/// Writes `result_df.parquet` as the splits go: one row per input row and split (the split's test rows,
/// then its training rows, each in the order of the input), with the row's label, prediction and, for a
/// classification, probability. A split is handed over as the scores of every row (one number a row);
/// the rows are written on a thread of their own, in row groups of at most [`ROW_GROUP`] rows, while the
/// next split is fitted, so that neither a split's table nor its encoding is ever held whole.
/// Snappy-compressed: fast to write, and the result zip stores the file as it is instead of compressing
/// it again.
pub struct ResultWriter {
    parts: Option<std::sync::mpsc::SyncSender<SplitScores>>,
    writer: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    rows: usize,
    total: usize,
}

/// Rows of one row group of `result_df.parquet`.
const ROW_GROUP: usize = 1 << 17;

/// What a split predicted for every row of the frame.
pub enum Scores {
    /// The probability of the positive class (the predicted class is whether it is above one half).
    Probabilities(Vec<f64>),
    /// The predicted values of a regression.
    Predictions(Vec<f64>),
}

/// One split, for [`ResultWriter::write`]: its number, the group of its test rows, and its scores.
pub struct SplitScores {
    pub fold: u32,
    pub test: u32,
    pub scores: Scores,
}

/// The columns of one row group being gathered.
#[derive(Default)]
struct RowGroup {
    rows: Vec<u64>,
    labels: Vec<f64>,
    predictions: Vec<f64>,
    probabilities: Vec<f64>,
}

/// The columns of `result_df.parquet`, as polars names and types them (`split` a string, every column
/// nullable), so that the file reads back as the frame polars itself would have written.
fn result_schema() -> ArrowSchema {
    use polars_arrow::datatypes::{ArrowDataType as Type, Field};
    ArrowSchema::from_iter([
        Field::new("row".into(), Type::UInt64, true),
        Field::new("fold".into(), Type::UInt32, true),
        Field::new("split".into(), Type::Utf8View, true),
        Field::new("label".into(), Type::Float64, true),
        Field::new("prediction".into(), Type::Float64, true),
        Field::new("probability".into(), Type::Float64, true),
    ])
}

/// How each column is encoded: plainly, except the split's name and the fold (one value a row group,
/// which polars' dictionary finds at once). Plain numbers spare the writer polars' search for a
/// dictionary in every numeric column (a cardinality estimate, then a cast), which cost more than the
/// rest of the writing on a million-row frame and saves nothing on scores.
fn result_encodings() -> Vec<Vec<polars_parquet::write::Encoding>> {
    use polars_parquet::write::Encoding::{Plain, RleDictionary};
    vec![
        vec![Plain],
        vec![RleDictionary],
        vec![RleDictionary],
        vec![Plain],
        vec![Plain],
        vec![Plain],
    ]
}

/// The file's writer and what each row group is written with.
struct ResultFile {
    file: polars_parquet::write::FileWriter<std::fs::File>,
    schema: polars_arrow::datatypes::ArrowSchemaRef,
    encodings: Vec<Vec<polars_parquet::write::Encoding>>,
    fields: Vec<polars_parquet::write::ParquetType>,
    options: polars_parquet::write::WriteOptions,
}

impl ResultFile {
    fn create(path: &Path) -> PolarsResult<Self> {
        use polars_parquet::write::{
            CompressionOptions, FileWriter, StatisticsOptions, Version, WriteOptions,
        };
        let schema = std::sync::Arc::new(result_schema());
        let options = WriteOptions {
            statistics: StatisticsOptions::default(),
            version: Version::V1,
            compression: CompressionOptions::Snappy,
            data_page_size: None,
        };
        let file = FileWriter::try_new(std::fs::File::create(path)?, (*schema).clone(), options)?;
        let fields = file.parquet_schema().fields().to_vec();
        Ok(ResultFile {
            file,
            schema,
            encodings: result_encodings(),
            fields,
            options,
        })
    }

    /// Writes the gathered rows as one row group and empties `part`.
    fn write(
        &mut self,
        part: &mut RowGroup,
        fold: u32,
        split: &str,
        probabilities: bool,
    ) -> PolarsResult<()> {
        use polars_arrow::array::{Array, MutableBinaryViewArray, PrimitiveArray, Utf8ViewArray};
        use polars_arrow::datatypes::ArrowDataType;
        let height = part.rows.len();
        let probability: Box<dyn Array> = if probabilities {
            Box::new(PrimitiveArray::from_vec(std::mem::take(
                &mut part.probabilities,
            )))
        } else {
            Box::new(PrimitiveArray::<f64>::new_null(
                ArrowDataType::Float64,
                height,
            ))
        };
        let names: Utf8ViewArray =
            MutableBinaryViewArray::<str>::from_values_iter(std::iter::repeat_n(split, height))
                .into();
        let columns: Vec<Box<dyn Array>> = vec![
            Box::new(PrimitiveArray::from_vec(std::mem::take(&mut part.rows))),
            Box::new(PrimitiveArray::from_vec(vec![fold; height])),
            Box::new(names),
            Box::new(PrimitiveArray::from_vec(std::mem::take(&mut part.labels))),
            Box::new(PrimitiveArray::from_vec(std::mem::take(
                &mut part.predictions,
            ))),
            probability,
        ];
        let batch = polars_arrow::record_batch::RecordBatchT::try_new(
            height,
            self.schema.clone(),
            columns,
        )?;
        let row_group = polars_parquet::write::row_group_iter(
            batch,
            self.encodings.clone().into(),
            self.fields.clone(),
            self.options,
        );
        self.file.write(height as u64, row_group)
    }

    fn finish(mut self) -> PolarsResult<u64> {
        self.file.end(None)
    }
}

/// Writes one split's rows: its test part, then its training part, in row groups.
fn write_split(
    writer: &mut ResultFile,
    split: &SplitScores,
    group: &[u32],
    labels: &[f64],
) -> PolarsResult<()> {
    let (scores, probabilities) = match &split.scores {
        Scores::Probabilities(p) => (p, true),
        Scores::Predictions(p) => (p, false),
    };
    for (name, tested) in [("test", true), ("train", false)] {
        let mut part = RowGroup::default();
        let rows = (0..group.len()).filter(|&i| (group[i] == split.test) == tested);
        for i in rows {
            part.rows.push(i as u64);
            part.labels.push(labels[i]);
            let score = scores[i];
            if probabilities {
                part.predictions.push(if score > 0.5 { 1.0 } else { 0.0 });
                part.probabilities.push(score);
            } else {
                part.predictions.push(score);
            }
            if part.rows.len() == ROW_GROUP {
                writer.write(&mut part, split.fold, name, probabilities)?;
            }
        }
        if !part.rows.is_empty() {
            writer.write(&mut part, split.fold, name, probabilities)?;
        }
    }
    Ok(())
}

impl ResultWriter {
    /// A writer for the splits of a frame whose rows are in `group` and have `labels`.
    pub fn create(
        path: &Path,
        group: std::sync::Arc<[u32]>,
        labels: std::sync::Arc<[f64]>,
    ) -> anyhow::Result<Self> {
        let mut writer = ResultFile::create(path)?;
        let (parts, received) = std::sync::mpsc::sync_channel::<SplitScores>(1);
        let total = group.len();
        let thread = std::thread::Builder::new().name("result_df".into()).spawn(
            move || -> anyhow::Result<()> {
                for split in received {
                    write_split(&mut writer, &split, &group, &labels)?;
                }
                writer.finish()?;
                Ok(())
            },
        )?;
        Ok(ResultWriter {
            parts: Some(parts),
            writer: Some(thread),
            rows: 0,
            total,
        })
    }

    pub fn write(&mut self, split: SplitScores) -> anyhow::Result<()> {
        let sent = self.parts.as_ref().map(|parts| parts.send(split));
        if !matches!(sent, Some(Ok(()))) {
            // The writing thread ended early: its error says why.
            return Err(self.join().err().unwrap_or_else(|| {
                anyhow::anyhow!("the result_df writer stopped before all rows were written")
            }));
        }
        self.rows += self.total;
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

/// The plain CSV reader against polars, the reference: the same frames from the same files.
#[cfg(test)]
mod tests {
    use super::super::csv::{read, Kind};
    use super::*;

    fn same(a: &ColumnData, b: &ColumnData) -> bool {
        match (a, b) {
            (ColumnData::Numeric(x), ColumnData::Numeric(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|(p, q)| p.to_bits() == q.to_bits() || p.is_nan() && q.is_nan())
            }
            (
                ColumnData::Categorical { codes, levels },
                ColumnData::Categorical {
                    codes: c2,
                    levels: l2,
                },
            ) => codes == c2 && levels == l2,
            _ => false,
        }
    }

    fn assert_same_frames(fast: &Frame, reference: &Frame) {
        assert_eq!(fast.rows, reference.rows);
        assert!(
            same(&fast.label.1, &reference.label.1),
            "label {:?} vs {:?}",
            fast.label,
            reference.label
        );
        assert_eq!(fast.features.len(), reference.features.len());
        for ((name, a), (other, b)) in fast.features.iter().zip(&reference.features) {
            assert_eq!(name, other);
            assert!(same(a, b), "{name}: {a:?} vs {b:?}");
        }
    }

    /// Writes `files` into a fresh channel folder; loads it both ways and compares.
    fn both_ways(files: &[(&str, &str)], features: Option<&[String]>) -> (Frame, Frame) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let fast = load(dir.path(), "y", features).unwrap();
        let reference = load_with_polars(dir.path(), "y", features).unwrap();
        // Read by the plain reader indeed, not left to polars.
        assert_eq!(fast.read_by, "read as plain CSV");
        assert_same_frames(&fast, &reference);
        (fast, reference)
    }

    fn wanted(kinds: &[(&str, Kind)]) -> Vec<(String, Kind)> {
        kinds.iter().map(|(n, k)| (n.to_string(), *k)).collect()
    }

    /// Numbers of every form polars takes, missing values, text in several scripts, booleans in any
    /// case, CRLF line ends, no newline at the end, and enough rows to cross batches and pieces: the
    /// columns are those polars gives, bit for bit.
    #[test]
    fn plain_files_read_as_polars_reads_them() {
        let mut text = String::from("y,a,b,city,flag,n\r\n");
        let cities = ["Zürich", "ålesund", "Berlin", "", "東京", "berlin"];
        let numbers = [
            "1.5", "", "-0.25", "1e5", "3", "-1.0E-3", "inf", "NaN", ".5", "7.", "+2",
        ];
        for i in 0..3000 {
            text.push_str(&format!(
                "{},{},{},{},{},{}\r\n",
                i % 2,
                numbers[i % numbers.len()],
                if i % 7 == 0 {
                    String::new()
                } else {
                    format!("{}", (i as i64 - 1500) * 1_000_003)
                },
                cities[i % cities.len()],
                ["true", "False", "", "TRUE"][i % 4],
                i,
            ));
        }
        text.push_str("1,2.5,9007199254740993,Berlin,false,3000");
        let (fast, _) = both_ways(&[("d.csv", &text)], None);
        assert_eq!(fast.rows, 3001);
        // And the fast reader did read it (it did not give up and leave it to polars).
        let kinds = wanted(&[
            ("y", Kind::Integer),
            ("a", Kind::Float),
            ("b", Kind::Integer),
            ("city", Kind::Text),
            ("flag", Kind::Boolean),
        ]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.csv"), &text).unwrap();
        let columns = read(&dir.path().join("d.csv"), &kinds).unwrap();
        let ColumnData::Categorical { levels, .. } = &columns[4] else {
            panic!("flag is categorical")
        };
        assert_eq!(levels, &["false", "true"]);
        // A chosen subset of features, in the order asked.
        let chosen = vec!["city".to_string(), "a".to_string()];
        let (fast, _) = both_ways(&[("d.csv", &text)], Some(&chosen));
        assert_eq!(fast.features[0].0, "city");
        // A column asked for twice (or the label as a feature) is left to polars: the same outcome.
        for twice in [
            vec!["a".to_string(), "a".to_string()],
            vec!["y".to_string()],
        ] {
            assert!(read(
                &dir.path().join("d.csv"),
                &wanted(&[("a", Kind::Float), ("a", Kind::Float)])
            )
            .is_err());
            let fast = load(dir.path(), "y", Some(&twice));
            let reference = load_with_polars(dir.path(), "y", Some(&twice));
            match (fast, reference) {
                (Ok(fast), Ok(reference)) => assert_same_frames(&fast, &reference),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("{twice:?}: {:?} vs {:?}", a.is_ok(), b.is_ok()),
            }
        }
    }

    /// Several files are one frame: categories united across files, numbers of both integer and
    /// fractional files together.
    #[test]
    fn several_files_are_concatenated_as_polars_concatenates_them() {
        both_ways(
            &[
                ("a.csv", "y,x,k\n0,1,red\n1,2,blue\n"),
                ("b.csv", "y,x,k\n1,2.5,green\n0,,red\n1,3,\n"),
            ],
            None,
        );
    }

    /// Anything but plain CSV is left to polars (the frame is still the reference's).
    #[test]
    fn files_that_are_not_plain_are_left_to_polars() {
        let text_kinds = wanted(&[("y", Kind::Integer), ("k", Kind::Text)]);
        let number_kinds = wanted(&[("y", Kind::Integer), ("k", Kind::Float)]);
        for (text, why, kinds) in [
            ("y,k\n0,\"a,b\"\n1,c\n", "quoted", &text_kinds),
            ("y,k\n0,a\n\n1,c\n", "empty line", &text_kinds),
            ("y,k\n0,a\n1\n", "a short line", &text_kinds),
            ("y,k\n0,a,b\n1,c\n", "a long line", &text_kinds),
            ("\u{feff}y,k\n0,a\n1,c\n", "byte-order mark", &text_kinds),
            (
                "y,k\n0,1.5\n1, 5\n",
                "a blank before a number",
                &number_kinds,
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("d.csv");
            std::fs::write(&file, text).unwrap();
            assert!(read(&file, kinds).is_err(), "{why}: read as plain");
            let fast = load(dir.path(), "y", None);
            let reference = load_with_polars(dir.path(), "y", None);
            match (fast, reference) {
                (Ok(fast), Ok(reference)) => assert_same_frames(&fast, &reference),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{why}"),
                (a, b) => panic!("{why}: {:?} vs {:?}", a.is_ok(), b.is_ok()),
            }
        }
        // A value polars' inference did not see (after its first 10,000 rows) that is not a number:
        // polars' own error, either way.
        let mut text = String::from("y,x\n");
        for i in 0..10_050 {
            text.push_str(&format!(
                "{},{}\n",
                i % 2,
                if i == 10_040 {
                    "oops".to_string()
                } else {
                    format!("{i}.5")
                }
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.csv"), &text).unwrap();
        let fast = load(dir.path(), "y", None).err().map(|e| e.to_string());
        let reference = load_with_polars(dir.path(), "y", None)
            .err()
            .map(|e| e.to_string());
        assert!(fast.is_some());
        assert_eq!(fast, reference);
    }

    /// result_df.parquet as polars reads it back: its columns and types, every row of every split (test
    /// rows first, more than one row group), the scores as given, and no probability for a regression.
    #[test]
    fn result_df_reads_back_as_written() {
        let rows = (ROW_GROUP * 2 + 7) as u32;
        let group: std::sync::Arc<[u32]> = (0..rows).map(|i| i % 3).collect();
        let labels: std::sync::Arc<[f64]> = (0..rows).map(|i| f64::from(i % 2)).collect();
        let scores: Vec<f64> = (0..rows).map(|i| f64::from(i) / f64::from(rows)).collect();
        let read = |path: &Path| {
            LazyFrame::scan_parquet(PlRefPath::try_from_path(path).unwrap(), Default::default())
                .unwrap()
                .collect()
                .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result_df.parquet");
        let mut writer = ResultWriter::create(&path, group.clone(), labels.clone()).unwrap();
        for (fold, test) in [(1, 2), (2, 0)] {
            let scores = Scores::Probabilities(scores.clone());
            writer.write(SplitScores { fold, test, scores }).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), 2 * rows as usize);
        let df = read(&path);
        let types: Vec<(String, DataType)> = df
            .schema()
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        let want = [
            ("row", DataType::UInt64),
            ("fold", DataType::UInt32),
            ("split", DataType::String),
            ("label", DataType::Float64),
            ("prediction", DataType::Float64),
            ("probability", DataType::Float64),
        ];
        assert_eq!(types, want.map(|(n, t)| (n.to_string(), t)));
        assert_eq!(df.height(), 2 * rows as usize);
        let mut df = df;
        df.rechunk_mut();
        let (row, fold) = (
            df.column("row").unwrap().u64().unwrap(),
            df.column("fold").unwrap().u32().unwrap(),
        );
        let split = df.column("split").unwrap().str().unwrap();
        let f64s = |name: &str| df.column(name).unwrap().f64().unwrap().clone();
        let (label, prediction, probability) =
            (f64s("label"), f64s("prediction"), f64s("probability"));
        let mut at = 0;
        for (fold_number, test) in [(1u32, 2u32), (2, 0)] {
            for tested in [true, false] {
                for i in (0..rows).filter(|i| (i % 3 == test) == tested) {
                    let i = i as usize;
                    assert_eq!(row.get(at), Some(i as u64));
                    assert_eq!(fold.get(at), Some(fold_number));
                    assert_eq!(split.get(at), Some(if tested { "test" } else { "train" }));
                    assert_eq!(label.get(at), Some(labels[i]));
                    assert_eq!(probability.get(at), Some(scores[i]));
                    let predicted = f64::from(u8::from(scores[i] > 0.5));
                    assert_eq!(prediction.get(at), Some(predicted));
                    at += 1;
                }
            }
        }
        // A regression: its predictions, and a probability column of nulls.
        let path = dir.path().join("regression.parquet");
        let mut writer = ResultWriter::create(&path, group, labels).unwrap();
        let predictions = Scores::Predictions(scores.iter().map(|s| s * 10.0).collect());
        writer
            .write(SplitScores {
                fold: 1,
                test: 1,
                scores: predictions,
            })
            .unwrap();
        writer.finish().unwrap();
        let df = read(&path);
        assert_eq!(df.height(), rows as usize);
        assert_eq!(
            df.column("probability").unwrap().null_count(),
            rows as usize
        );
        let first_test = (0..rows as usize).find(|i| i % 3 == 1).unwrap();
        assert_eq!(
            df.column("prediction").unwrap().f64().unwrap().get(0),
            Some(scores[first_test] * 10.0)
        );
    }
}
