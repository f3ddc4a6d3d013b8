//! Reading the `training` channel into columns: every CSV or parquet file in it, only the needed columns,
//! concatenated. Plain CSV files go through the builtin's own reader ([`super::csv`]), straight into
//! columns; anything else (parquet, quoted fields, a value the plain reader leaves alone) is read by
//! polars' own readers, whose inferred types both follow.

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

/// The columns the plain reader reads of a file, each with its kind.
type Wanted = Vec<(String, super::csv::Kind)>;

/// The files the plain reader would read, each with its wanted columns and their kinds.
type PlainFiles<'a> = Vec<(&'a Path, Wanted)>;

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

/// The feature columns of a file (those named, or all but the label), each checked to be in it with the
/// label, and, when the plain reader takes all their types, the label's and the features' kinds.
fn wanted_columns(
    schema: &Schema,
    file: &str,
    label: &str,
    features: Option<&[String]>,
) -> Result<(Vec<String>, Option<Wanted>), DataError> {
    let available: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    let columns: Vec<String> = match features {
        Some(list) => list.to_vec(),
        None => available
            .iter()
            .filter(|c| c.as_str() != label)
            .cloned()
            .collect(),
    };
    let mut seen = std::collections::HashSet::new();
    for column in std::iter::once(&label.to_string()).chain(columns.iter()) {
        if !seen.insert(column) {
            return Err(DataError::Twice {
                column: column.clone(),
                label: label.to_string(),
            });
        }
        if !available.contains(column) {
            return Err(DataError::MissingColumn {
                column: column.clone(),
                file: file.to_string(),
                available: available.join(", "),
            });
        }
    }
    let wanted: Option<Vec<(String, super::csv::Kind)>> = std::iter::once(label)
        .chain(columns.iter().map(String::as_str))
        .map(|name| Some((name.to_string(), csv_kind(schema.get(name)?)?)))
        .collect();
    Ok((columns, wanted))
}

/// Every file read by the plain reader and the columns joined; why not, when one gives up.
fn read_plain(plain: &PlainFiles) -> Result<Vec<ColumnData>, String> {
    plain
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
        })
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
    #[error("column `{column}` is asked for twice: `features` names it twice, or names the label `{label}`; list each feature once, without the label")]
    Twice { column: String, label: String },
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

fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// What a file is read as, for messages: "parquet" or "CSV".
fn kind_of(path: &Path) -> &'static str {
    if is_parquet(path) {
        "parquet"
    } else {
        "CSV"
    }
}

fn unreadable<'a>(path: &'a Path, kind: &'static str) -> impl Fn(PolarsError) -> DataError + 'a {
    move |e| DataError::Unreadable {
        file: path.display().to_string(),
        kind,
        message: e.to_string(),
    }
}

/// The columns of a file and their types as polars reads them (a CSV file's inferred from its first
/// 10,000 rows), without reading the rest of the file.
fn file_schema(path: &Path) -> Result<Schema, DataError> {
    if is_parquet(path) {
        let file = std::fs::File::open(path).map_err(|e| DataError::Unreadable {
            file: path.display().to_string(),
            kind: "a file",
            message: e.to_string(),
        })?;
        let arrow = ParquetReader::new(file)
            .schema()
            .map_err(unreadable(path, "parquet"))?;
        Ok(Schema::from_arrow_schema(&arrow))
    } else {
        Ok(read_file(path, None, Some(0))?.schema().as_ref().clone())
    }
}

/// Reads `columns` (in that order; all when `None`) of a file with polars, at most `rows` rows of it.
fn read_file(
    path: &Path,
    columns: Option<&[&str]>,
    rows: Option<usize>,
) -> Result<DataFrame, DataError> {
    let frame = if is_parquet(path) {
        let file = std::fs::File::open(path).map_err(|e| DataError::Unreadable {
            file: path.display().to_string(),
            kind: "a file",
            message: e.to_string(),
        })?;
        ParquetReader::new(file)
            .with_columns(columns.map(|names| names.iter().map(|n| n.to_string()).collect()))
            .with_slice(rows.map(|n| (0, n)))
            .finish()
    } else {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .with_rechunk(false)
            .with_columns(columns.map(|names| names.iter().map(|n| PlSmallStr::from(*n)).collect()))
            .with_n_rows(rows)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|reader| reader.finish())
    }
    .map_err(unreadable(path, kind_of(path)))?;
    match columns {
        // A reader may give the columns in the file's order.
        Some(names) => frame
            .select(names.iter().copied())
            .map_err(unreadable(path, kind_of(path))),
        None => Ok(frame),
    }
}

/// Checks that every data file at `path` (a CSV or parquet file, or a folder of them, as a channel is
/// given) has the label and the features: what the job would refuse after its data was copied, said
/// before anything runs, naming the user's file and its columns. Only the files' columns are read.
pub fn check_columns(
    path: &Path,
    label: &str,
    features: Option<&[String]>,
) -> Result<(), DataError> {
    let files = if path.is_dir() {
        // Named below the user's folder, not the channel's.
        tabular_files(path).map_err(|e| match e {
            DataError::NotTabular { file } => DataError::NotTabular {
                file: path.join(file).display().to_string(),
            },
            other => other,
        })?
    } else {
        vec![path.to_path_buf()]
    };
    for file in &files {
        let schema = file_schema(file)?;
        wanted_columns(&schema, &file.display().to_string(), label, features)?;
    }
    Ok(())
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
    let schema = file_schema(path)?;
    let columns: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    if !columns.iter().any(|c| c == label) {
        return Err(DataError::MissingColumn {
            column: label.to_string(),
            file,
            available: columns.join(", "),
        });
    }
    let sample = read_file(path, Some(&[label]), Some(10_000))?;
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
    let mut chosen: Option<Vec<String>> = None;
    // What the fast reader would read of each file (polars' types for its columns), while it can.
    let mut plain: Option<PlainFiles> = plain_reader.then(Vec::new);
    for path in &files {
        let file = path.display().to_string();
        let schema = file_schema(path)?;
        let (columns, wanted) = wanted_columns(&schema, &file, label, features)?;
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
        Some(plain) => read_plain(&plain),
    };
    let (mut converted, read_by) = match fast {
        Ok(converted) => (converted, "read as plain CSV".to_string()),
        Err(why) => (
            read_with_polars(&files, &names, dir)?,
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
    files: &[PathBuf],
    names: &[&str],
    dir: &Path,
) -> Result<Vec<ColumnData>, DataError> {
    let frames = files
        .iter()
        .map(|path| read_file(path, Some(names), None))
        .collect::<Result<Vec<_>, _>>()?;
    let df = stack(frames, names)?.ok_or_else(|| DataError::NoFiles(dir.to_path_buf()))?;
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

/// Frames with the columns `names`, one after the other, each column of the type all its files' types
/// fit in (polars' supertype: an integer column beside a float one becomes float, beside text text);
/// `None` for no frames. Every frame has the columns `names`, in that order.
fn stack(frames: Vec<DataFrame>, names: &[&str]) -> Result<Option<DataFrame>, DataError> {
    let concat_error = |e: PolarsError| DataError::Concat(e.to_string());
    let mut schemas = frames.iter().map(|frame| frame.schema().as_ref().clone());
    let Some(mut united) = schemas.next() else {
        return Ok(None);
    };
    for schema in schemas {
        united.to_supertype(&schema).map_err(concat_error)?;
    }
    let types: Vec<DataType> = united.iter_values().cloned().collect();
    let mut stacked: Option<DataFrame> = None;
    for frame in frames {
        let columns = names
            .iter()
            .zip(&types)
            .map(|(name, dtype)| frame.column(name).and_then(|c| c.cast(dtype)))
            .collect::<PolarsResult<Vec<Column>>>()
            .map_err(concat_error)?;
        let frame = DataFrame::new(frame.height(), columns).map_err(concat_error)?;
        match stacked.as_mut() {
            None => stacked = Some(frame),
            Some(all) => {
                all.vstack_mut(&frame).map_err(concat_error)?;
            }
        }
    }
    Ok(stacked)
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
        // A column asked for twice (or the label as a feature) is refused by name, either way.
        for twice in [
            vec!["a".to_string(), "a".to_string()],
            vec!["y".to_string()],
        ] {
            assert!(read(
                &dir.path().join("d.csv"),
                &wanted(&[("a", Kind::Float), ("a", Kind::Float)])
            )
            .is_err());
            for reader in [load, load_with_polars] {
                let error = reader(dir.path(), "y", Some(&twice))
                    .err()
                    .map(|e| e.to_string());
                let want = format!("column `{}` is asked for twice", twice[0]);
                assert!(
                    error.as_ref().is_some_and(|e| e.starts_with(&want)),
                    "{error:?}"
                );
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
}
