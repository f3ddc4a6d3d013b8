//! A fast reader for plain CSV files, straight into the builtin's columns: numbers as `f64`, text as
//! category codes, never a table of strings in between.
//!
//! It reads what polars would read, with polars' own choices: the column types are the ones polars
//! infers (the caller passes polars' schema), numbers are parsed by the parsers polars uses (fast-float2,
//! atoi_simd), an empty field is missing, booleans are `true`/`false` in any case. It takes only the
//! plain form of CSV: comma-separated, `\n` or `\r\n` line ends, no quote character anywhere, every line
//! with the header's number of fields, UTF-8 text. On anything else (or a value polars would refuse) it
//! gives up with [`Fallback`] before returning anything, and the caller reads the file with polars, which
//! handles it or reports the error in its own words. The file is read in batches and each batch parsed on
//! every core, so neither the file nor a parsed table is ever held whole beside the columns.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use rayon::prelude::*;

use super::columns::{sorted_categories, ColumnData, MISSING};

/// How a column is parsed (from polars' inferred type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Float,
    Text,
    Boolean,
}

/// The file is not plain CSV, or holds a value this reader does not take: read it with polars.
#[derive(Debug)]
pub struct Fallback(pub String);

impl From<std::io::Error> for Fallback {
    fn from(e: std::io::Error) -> Self {
        Fallback(e.to_string())
    }
}

/// Bytes read at a time (small in tests, so that small files cross batches).
const BATCH: usize = if cfg!(test) { 1 << 12 } else { 8 << 20 };
/// Bytes of a batch parsed by one task.
const PIECE: usize = if cfg!(test) { 1 << 9 } else { 256 << 10 };

/// One column of one piece: numbers, or codes into the piece's own distinct values (first-seen order).
enum PieceColumn<'a> {
    Numbers(Vec<f64>),
    Text {
        codes: Vec<u32>,
        distinct: Vec<&'a [u8]>,
    },
}

/// A column being gathered: its numbers, or codes into the distinct values seen so far. Each piece is
/// appended as it comes and then freed (a growing vector is moved, not copied, by the allocator, and
/// its unused capacity is never touched), so the column is not held twice.
enum Gathered {
    Numbers(Vec<f64>),
    Text {
        codes: Vec<u32>,
        index: HashMap<Box<[u8]>, u32>,
        first_seen: Vec<String>,
    },
}

/// Reads `columns` (name and kind, in the order wanted) of the CSV file at `path`.
pub fn read(path: &Path, columns: &[(String, Kind)]) -> Result<Vec<ColumnData>, Fallback> {
    let mut file = std::fs::File::open(path)?;
    let mut buffer: Vec<u8> = Vec::with_capacity(BATCH + BATCH / 8);
    let mut at_end = fill(&mut file, &mut buffer)?;
    // The header: the first line.
    let Some(end) = memchr::memchr(b'\n', &buffer).or(at_end.then_some(buffer.len())) else {
        return Err(Fallback("a header line longer than a batch".into()));
    };
    let header = strip_cr(&buffer[..end]);
    if header.starts_with(b"\xEF\xBB\xBF") || memchr::memchr(b'"', header).is_some() {
        return Err(Fallback("a byte-order mark or quotes in the header".into()));
    }
    let slot_of_field = slots_of_fields(header, columns)?;
    let mut gathered: Vec<Gathered> = columns
        .iter()
        .map(|(_, kind)| match kind {
            Kind::Integer | Kind::Float => Gathered::Numbers(Vec::new()),
            Kind::Text | Kind::Boolean => Gathered::Text {
                codes: Vec::new(),
                index: HashMap::new(),
                first_seen: Vec::new(),
            },
        })
        .collect();
    buffer.drain(..(end + 1).min(buffer.len()));
    let file_size = file.metadata().map_or(0, |m| m.len());
    let mut first_batch = true;
    loop {
        // The complete lines of the buffer (all of it at the end of the file).
        let complete = if at_end {
            buffer.len()
        } else {
            match memchr::memrchr(b'\n', &buffer) {
                Some(last) => last + 1,
                None => {
                    // A line longer than the buffer: read on.
                    at_end = fill(&mut file, &mut buffer)?;
                    continue;
                }
            }
        };
        let lines = &buffer[..complete];
        if memchr::memchr(b'"', lines).is_some() {
            return Err(Fallback("quoted fields".into()));
        }
        let pieces: Vec<&[u8]> = split_at_lines(lines);
        let parsed: Vec<Vec<PieceColumn>> = pieces
            .into_par_iter()
            .map(|piece| parse_piece(piece, &slot_of_field, columns))
            .collect::<Result<_, _>>()?;
        if first_batch {
            first_batch = false;
            reserve_for_file(&mut gathered, &parsed, file_size, complete);
        }
        append_batch(&mut gathered, parsed, columns)?;
        if at_end {
            break;
        }
        buffer.drain(..complete);
        at_end = fill(&mut file, &mut buffer)?;
    }
    let finished = gathered
        .into_par_iter()
        .map(|column| match column {
            Gathered::Numbers(mut values) => {
                values.shrink_to_fit();
                ColumnData::Numeric(values)
            }
            Gathered::Text {
                mut codes,
                first_seen,
                ..
            } => {
                codes.shrink_to_fit();
                sorted_categories(codes, first_seen)
            }
        })
        .collect();
    Ok(finished)
}

/// The rows a parsed piece holds.
/// For every field of a line, the wanted column it fills (if any) and that column's kind, from the header
/// line; a wanted column that is not in the header exactly once leaves the file to polars.
fn slots_of_fields(
    header: &[u8],
    columns: &[(String, Kind)],
) -> Result<Vec<Option<(usize, Kind)>>, Fallback> {
    let names: Vec<&[u8]> = header.split(|b| *b == b',').collect();
    let fields = names.len();
    // For every field of a line, the wanted column it fills (if any), and that column's kind.
    let mut slot_of_field: Vec<Option<(usize, Kind)>> = vec![None; fields];
    for (slot, (name, kind)) in columns.iter().enumerate() {
        let mut found = names
            .iter()
            .enumerate()
            .filter(|(_, n)| **n == name.as_bytes());
        match (found.next(), found.next()) {
            (Some((field, _)), None) if slot_of_field[field].is_none() => {
                slot_of_field[field] = Some((slot, *kind))
            }
            (Some(_), None) => return Err(Fallback(format!("column `{name}` wanted twice"))),
            _ => return Err(Fallback(format!("column `{name}` not once in the header"))),
        }
    }
    Ok(slot_of_field)
}

/// The rows of the whole file, estimated from its first batch (`complete` bytes, parsed into `parsed`),
/// reserved once: the columns then grow without being moved (unused capacity is never touched, so costs
/// no memory).
fn reserve_for_file(
    gathered: &mut [Gathered],
    parsed: &[Vec<PieceColumn<'_>>],
    file_size: u64,
    complete: usize,
) {
    let rows: usize = parsed.iter().map(|piece| piece_rows(piece)).sum();
    let expected = (rows as f64 * file_size as f64 / complete.max(1) as f64 * 1.05) as usize;
    for column in gathered {
        // A reservation the system refuses is only a missed shortcut.
        let _ = match column {
            Gathered::Numbers(values) => values.try_reserve(expected),
            Gathered::Text { codes, .. } => codes.try_reserve(expected),
        };
    }
}

/// A batch's pieces appended to the columns, column by column, the columns on every core.
fn append_batch(
    gathered: &mut [Gathered],
    parsed: Vec<Vec<PieceColumn<'_>>>,
    columns: &[(String, Kind)],
) -> Result<(), Fallback> {
    let mut by_column: Vec<Vec<PieceColumn>> = (0..columns.len())
        .map(|_| Vec::with_capacity(parsed.len()))
        .collect();
    for piece in parsed {
        for (parts, part) in by_column.iter_mut().zip(piece) {
            parts.push(part);
        }
    }
    gathered
        .par_iter_mut()
        .zip(by_column)
        .zip(columns)
        .try_for_each(|((column, parts), (_, kind))| {
            parts
                .into_iter()
                .try_for_each(|part| merge(column, part, *kind))
        })
}

fn piece_rows(piece: &[PieceColumn<'_>]) -> usize {
    match piece.first() {
        Some(PieceColumn::Numbers(values)) => values.len(),
        Some(PieceColumn::Text { codes, .. }) => codes.len(),
        None => 0,
    }
}

/// Reads into `buffer` until it holds a batch or the file ends; whether it ended.
fn fill(file: &mut std::fs::File, buffer: &mut Vec<u8>) -> std::io::Result<bool> {
    let want = BATCH.saturating_sub(buffer.len()).max(BATCH / 8);
    let before = buffer.len();
    file.by_ref().take(want as u64).read_to_end(buffer)?;
    Ok(buffer.len() - before < want)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Pieces of about [`PIECE`] bytes, each ending at a line end (or the end of the lines).
fn split_at_lines(lines: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut rest = lines;
    while !rest.is_empty() {
        let cut = if rest.len() <= PIECE {
            rest.len()
        } else {
            memchr::memchr(b'\n', &rest[PIECE..]).map_or(rest.len(), |at| PIECE + at + 1)
        };
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

fn parse_piece<'a>(
    piece: &'a [u8],
    slot_of_field: &[Option<(usize, Kind)>],
    columns: &[(String, Kind)],
) -> Result<Vec<PieceColumn<'a>>, Fallback> {
    let mut out: Vec<PieceColumn<'a>> = columns
        .iter()
        .map(|(_, kind)| match kind {
            Kind::Integer | Kind::Float => PieceColumn::Numbers(Vec::new()),
            Kind::Text | Kind::Boolean => PieceColumn::Text {
                codes: Vec::new(),
                distinct: Vec::new(),
            },
        })
        .collect();
    let mut seen: Vec<foldhash::HashMap<&'a [u8], u32>> =
        vec![foldhash::HashMap::default(); columns.len()];
    let mut rest = piece;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let mut line = strip_cr(line);
        if line.is_empty() {
            // Polars skips empty lines; this reader leaves such files to it.
            return Err(Fallback("an empty line".into()));
        }
        let mut field = 0;
        loop {
            let (value, more) = match memchr::memchr(b',', line) {
                Some(at) => (&line[..at], Some(&line[at + 1..])),
                None => (line, None),
            };
            if let Some(Some((slot, kind))) = slot_of_field.get(field) {
                match (&mut out[*slot], kind) {
                    (PieceColumn::Numbers(numbers), Kind::Float) => {
                        numbers.push(if value.is_empty() {
                            f64::NAN
                        } else {
                            number_start(value)?;
                            fast_float2::parse::<f64, _>(value)
                                .map_err(|_| Fallback("a value that is not a number".into()))?
                        })
                    }
                    (PieceColumn::Numbers(numbers), _) => numbers.push(if value.is_empty() {
                        f64::NAN
                    } else {
                        number_start(value)?;
                        atoi_simd::parse::<i64, true, true>(value)
                            .map_err(|_| Fallback("a value that is not an integer".into()))?
                            as f64
                    }),
                    (PieceColumn::Text { codes, distinct }, _) => codes.push(if value.is_empty() {
                        MISSING
                    } else {
                        *seen[*slot].entry(value).or_insert_with(|| {
                            distinct.push(value);
                            distinct.len() as u32 - 1
                        })
                    }),
                }
            }
            field += 1;
            match more {
                Some(tail) => line = tail,
                None => break,
            }
        }
        if field != slot_of_field.len() {
            return Err(Fallback(format!(
                "a line with {field} fields where the header has {}",
                slot_of_field.len()
            )));
        }
    }
    Ok(out)
}

/// Polars skips blanks before a number; this reader leaves such files to it.
fn number_start(value: &[u8]) -> Result<(), Fallback> {
    match value.first() {
        Some(b' ' | b'\t') => Err(Fallback("blanks before a number".into())),
        _ => Ok(()),
    }
}

/// Adds a piece's column to the gathered column: its text values numbered in the order first seen.
fn merge(column: &mut Gathered, part: PieceColumn<'_>, kind: Kind) -> Result<(), Fallback> {
    match (column, part) {
        (Gathered::Numbers(values), PieceColumn::Numbers(numbers)) => {
            values.extend_from_slice(&numbers)
        }
        (
            Gathered::Text {
                codes: parts,
                index,
                first_seen,
            },
            PieceColumn::Text { codes, distinct },
        ) => {
            // Booleans are read as lower-case `true`/`false`, whatever their case in the file.
            let boolean = kind == Kind::Boolean;
            if boolean
                && !distinct
                    .iter()
                    .all(|v| v.eq_ignore_ascii_case(b"true") || v.eq_ignore_ascii_case(b"false"))
            {
                return Err(Fallback("a value that is not a boolean".into()));
            }
            let mut global = Vec::with_capacity(distinct.len());
            for value in distinct {
                let lowered;
                let key: &[u8] = if boolean {
                    lowered = value.to_ascii_lowercase();
                    &lowered
                } else {
                    value
                };
                let code = match index.get(key) {
                    Some(code) => *code,
                    None => {
                        let text = std::str::from_utf8(key)
                            .map_err(|_| Fallback("text that is not UTF-8".into()))?;
                        let code = first_seen.len() as u32;
                        first_seen.push(text.to_string());
                        index.insert(key.into(), code);
                        code
                    }
                };
                global.push(code);
            }
            parts.extend(codes.iter().map(|c| match *c {
                MISSING => MISSING,
                c => global[c as usize],
            }));
        }
        _ => return Err(Fallback("column kinds do not match".into())),
    }
    Ok(())
}
