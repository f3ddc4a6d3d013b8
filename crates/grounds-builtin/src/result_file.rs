//! Writing `result_df.parquet` as the splits go: a row per input row and split, with its label,
//! prediction and probability, encoded on a thread of its own while the next split is fitted.

use std::path::Path;

use polars::prelude::*;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// result_df.parquet as polars reads it back: its columns and types, every row of every split (test
    /// rows first, more than one row group), the scores as given, and no probability for a regression.
    #[test]
    fn result_df_reads_back_as_written() {
        let rows = (ROW_GROUP * 2 + 7) as u32;
        let group: std::sync::Arc<[u32]> = (0..rows).map(|i| i % 3).collect();
        let labels: std::sync::Arc<[f64]> = (0..rows).map(|i| f64::from(i % 2)).collect();
        let scores: Vec<f64> = (0..rows).map(|i| f64::from(i) / f64::from(rows)).collect();
        let read = |path: &Path| {
            ParquetReader::new(std::fs::File::open(path).unwrap())
                .finish()
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
