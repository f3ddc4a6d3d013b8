//! JSON as Python sees it, for the SageMaker training toolkit's contract.
//!
//! The toolkit decodes every hyperparameter with `json.loads` (so `"1e-5"` is a float, `"NaN"` is NaN,
//! `"1180591620717411303424"` an exact integer), writes environment variables with `json.dumps(...,
//! sort_keys=True, separators=(",", ":"), ensure_ascii=True)` and command-line values with `str()`. A
//! program reads exactly those strings, so grounds reproduces Python's rules here rather than JSON's in
//! general: integers of any size, `repr(float)`, Python's string quoting, insertion order of objects.

/// A value as `json.loads` gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    /// An integer of any size, as canonical decimal digits (`-` first when negative, never `-0`).
    Int(String),
    Float(f64),
    Str(String),
    List(Vec<PyValue>),
    /// In insertion order, as a Python dict keeps it.
    Dict(Vec<(String, PyValue)>),
}

/// How deep `loads` goes before it gives up (Python's own limit is near 1000; a value this deep is not a
/// hyperparameter anyone means).
const MAX_DEPTH: usize = 512;

/// `json.loads(text)`, or None where Python would raise.
pub fn loads(text: &str) -> Option<PyValue> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        text,
        at: 0,
    };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    (parser.at == parser.bytes.len()).then_some(value)
}

/// A hyperparameter as the toolkit decodes it: JSON where it parses, else the text itself.
pub fn decode(text: &str) -> PyValue {
    loads(text).unwrap_or_else(|| PyValue::Str(text.to_string()))
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        if self.text[self.at..].starts_with(literal) {
            self.at += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<PyValue> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.bytes.get(self.at)? {
            b'{' => self.dict(depth),
            b'[' => self.list(depth),
            b'"' => self.string().map(PyValue::Str),
            b'n' if self.eat("null") => Some(PyValue::None),
            b't' if self.eat("true") => Some(PyValue::Bool(true)),
            b'f' if self.eat("false") => Some(PyValue::Bool(false)),
            b'N' if self.eat("NaN") => Some(PyValue::Float(f64::NAN)),
            b'I' if self.eat("Infinity") => Some(PyValue::Float(f64::INFINITY)),
            b'-' if self.eat("-Infinity") => Some(PyValue::Float(f64::NEG_INFINITY)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<PyValue> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while p.bytes.get(p.at).is_some_and(u8::is_ascii_digit) {
                p.at += 1;
            }
            p.at - from
        };
        let negative = self.bytes.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        let int_digits = digits(self);
        if int_digits == 0 || (int_digits > 1 && self.bytes[int_start] == b'0') {
            // Python's pattern is `-?(?:0|[1-9]\d*)`: `01` stops after `0`, and the rest is extra data.
            if int_digits > 1 {
                self.at = int_start + 1;
            } else {
                return None;
            }
        }
        let mut is_float = false;
        if self.bytes.get(self.at) == Some(&b'.') {
            let save = self.at;
            self.at += 1;
            if digits(self) == 0 {
                self.at = save;
            } else {
                is_float = true;
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            let save = self.at;
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                self.at = save;
            } else {
                is_float = true;
            }
        }
        let text = &self.text[start..self.at];
        if is_float {
            text.parse::<f64>().ok().map(PyValue::Float)
        } else {
            let digits = text.trim_start_matches('-');
            Some(PyValue::Int(if negative && digits != "0" {
                format!("-{digits}")
            } else {
                digits.to_string()
            }))
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let hex = self.text.get(self.at..self.at + 4)?;
        let value = u32::from_str_radix(hex, 16).ok()?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.at += 4;
        Some(value)
    }

    fn string(&mut self) -> Option<String> {
        self.at += 1; // the opening quote
        let mut out = String::new();
        loop {
            let rest = &self.text[self.at..];
            let end = rest.find(|c: char| c == '"' || c == '\\' || (c as u32) < 0x20)?;
            out.push_str(&rest[..end]);
            self.at += end;
            match self.bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.at += 1;
                    let escape = *self.bytes.get(self.at)?;
                    self.at += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&first)
                                && self.text[self.at..].starts_with("\\u")
                            {
                                let save = self.at;
                                self.at += 2;
                                match self.hex4() {
                                    Some(second) if (0xDC00..0xE000).contains(&second) => {
                                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                                    }
                                    _ => {
                                        self.at = save;
                                        first
                                    }
                                }
                            } else {
                                first
                            };
                            // A lone surrogate is a Python string Rust cannot hold: not decoded.
                            out.push(char::from_u32(code)?);
                        }
                        _ => return None,
                    }
                }
                // A raw control character: json.loads is strict about them.
                _ => return None,
            }
        }
    }

    fn list(&mut self, depth: usize) -> Option<PyValue> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
            return Some(PyValue::List(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.bytes.get(self.at)? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(PyValue::List(items));
                }
                _ => return None,
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Option<PyValue> {
        self.at += 1;
        let mut entries: Vec<(String, PyValue)> = Vec::new();
        self.skip_whitespace();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Some(PyValue::Dict(entries));
        }
        loop {
            self.skip_whitespace();
            if self.bytes.get(self.at) != Some(&b'"') {
                return None;
            }
            let key = self.string()?;
            self.skip_whitespace();
            if self.bytes.get(self.at) != Some(&b':') {
                return None;
            }
            self.at += 1;
            self.skip_whitespace();
            let value = self.value(depth + 1)?;
            // A repeated key keeps its first place and takes the last value, as a dict does.
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
            self.skip_whitespace();
            match self.bytes.get(self.at)? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(PyValue::Dict(entries));
                }
                _ => return None,
            }
        }
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, scientific below 1e-4 and from 1e16.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{f:e}"); // e.g. "1.5e-5", "1e16"
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..16).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    }
}

/// Whether Python's `str.isprintable` holds for a character (Unicode tables approximated: control,
/// format, private-use and separator characters other than the space are not printable).
fn printable(c: char) -> bool {
    let code = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format = matches!(code,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(code, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    !(format || private)
}

/// Python's `repr(str)`.
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        let code = c as u32;
        match c {
            _ if c == quote || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if code < 0x20 || code == 0x7F => out.push_str(&format!("\\x{code:02x}")),
            _ if code < 0x7F || printable(c) => out.push(c),
            _ if code <= 0xFF => out.push_str(&format!("\\x{code:02x}")),
            _ if code <= 0xFFFF => out.push_str(&format!("\\u{code:04x}")),
            _ => out.push_str(&format!("\\U{code:08x}")),
        }
    }
    out.push(quote);
    out
}

/// Python's `str()` of a value.
pub fn str(value: &PyValue) -> String {
    match value {
        PyValue::Str(s) => s.clone(),
        other => repr(other),
    }
}

/// Python's `repr()` of a value.
pub fn repr(value: &PyValue) -> String {
    match value {
        PyValue::None => "None".into(),
        PyValue::Bool(true) => "True".into(),
        PyValue::Bool(false) => "False".into(),
        PyValue::Int(digits) => digits.clone(),
        PyValue::Float(f) => float_repr(*f),
        PyValue::Str(s) => str_repr(s),
        PyValue::List(items) => {
            let parts: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", parts.join(", "))
        }
        PyValue::Dict(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", str_repr(k), repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`.
pub fn dumps(value: &PyValue) -> String {
    let mut out = String::new();
    write_json(&mut out, value, Style::COMPACT);
    out
}

/// `json.dumps(value)` with Python's defaults: `", "` and `": "` between items, keys in their order. The
/// SageMaker SDK encodes a framework estimator's hyperparameters so.
pub fn dumps_default(value: &PyValue) -> String {
    let mut out = String::new();
    write_json(&mut out, value, Style::DEFAULT);
    out
}

/// How `json.dumps` was called: its separators, and whether keys are sorted.
#[derive(Clone, Copy)]
struct Style {
    item: &'static str,
    key: &'static str,
    sort_keys: bool,
}

impl Style {
    const COMPACT: Style = Style {
        item: ",",
        key: ":",
        sort_keys: true,
    };
    const DEFAULT: Style = Style {
        item: ", ",
        key: ": ",
        sort_keys: false,
    };
}

fn write_json(out: &mut String, value: &PyValue, style: Style) {
    match value {
        PyValue::None => out.push_str("null"),
        PyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        PyValue::Int(digits) => out.push_str(digits),
        PyValue::Float(f) if f.is_nan() => out.push_str("NaN"),
        PyValue::Float(f) if f.is_infinite() => {
            out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" })
        }
        PyValue::Float(f) => out.push_str(&float_repr(*f)),
        PyValue::Str(s) => push_json_string(out, s),
        PyValue::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(style.item);
                }
                write_json(out, item, style);
            }
            out.push(']');
        }
        PyValue::Dict(entries) => {
            let mut ordered: Vec<&(String, PyValue)> = entries.iter().collect();
            if style.sort_keys {
                ordered.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (key, item)) in ordered.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(style.item);
                }
                push_json_string(out, key);
                out.push_str(style.key);
                write_json(out, item, style);
            }
            out.push('}');
        }
    }
}

impl PyValue {
    pub fn str(s: impl Into<String>) -> PyValue {
        PyValue::Str(s.into())
    }

    pub fn int(n: impl std::fmt::Display) -> PyValue {
        PyValue::Int(n.to_string())
    }

    pub fn strs<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> PyValue {
        PyValue::List(items.into_iter().map(|s| PyValue::Str(s.into())).collect())
    }

    /// The entry for `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            PyValue::None => false,
            PyValue::Bool(b) => *b,
            PyValue::Int(d) => d != "0",
            PyValue::Float(f) => *f != 0.0,
            PyValue::Str(s) => !s.is_empty(),
            PyValue::List(items) => !items.is_empty(),
            PyValue::Dict(entries) => !entries.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests;
