//! The builtin's columns: numbers as `f64` (a missing value is NaN) and categories as integer codes into
//! their sorted distinct values, what both readers (polars and the plain CSV reader) produce and every
//! later stage reads.

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

    /// The values of `rows`, in that order (categories keep their codes and levels).
    pub fn take(&self, rows: &[usize]) -> ColumnData {
        match self {
            ColumnData::Numeric(v) => ColumnData::Numeric(rows.iter().map(|&i| v[i]).collect()),
            ColumnData::Categorical { codes, levels } => ColumnData::Categorical {
                codes: rows.iter().map(|&i| codes[i]).collect(),
                levels: levels.clone(),
            },
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
pub fn categorical<'a>(values: impl Iterator<Item = Option<&'a str>>, rows: usize) -> ColumnData {
    let mut seen: std::collections::HashMap<&'a str, u32> = std::collections::HashMap::new();
    let mut first_seen = Vec::new();
    let mut codes = Vec::with_capacity(rows);
    for value in values {
        codes.push(match value {
            None => MISSING,
            Some(text) => *seen.entry(text).or_insert_with(|| {
                first_seen.push(text.to_string());
                first_seen.len() as u32 - 1
            }),
        });
    }
    sorted_categories(codes, first_seen)
}

/// Categories from codes into their values in the order first seen: the codes renumbered so that they
/// follow the sorted values (byte order of the UTF-8 text, which is scikit-learn's order of Python
/// strings).
pub fn sorted_categories(mut codes: Vec<u32>, first_seen: Vec<String>) -> ColumnData {
    let mut order: Vec<u32> = (0..first_seen.len() as u32).collect();
    order.sort_unstable_by(|a, b| first_seen[*a as usize].cmp(&first_seen[*b as usize]));
    let mut renumber = vec![0u32; first_seen.len()];
    for (sorted, first) in order.iter().enumerate() {
        renumber[*first as usize] = sorted as u32;
    }
    for code in codes.iter_mut().filter(|c| **c != MISSING) {
        *code = renumber[*code as usize];
    }
    let mut levels: Vec<Option<String>> = first_seen.into_iter().map(Some).collect();
    ColumnData::Categorical {
        codes,
        levels: order
            .iter()
            .map(|first| levels[*first as usize].take().unwrap_or_default())
            .collect(),
    }
}
