//! Splitting a job's output into lines, with a bound on what is held: one enormous line (a progress bar
//! that never prints a newline, a dumped array) cannot grow memory without limit.
//!
//! A line longer than [`PIECE_MAX`] comes out in pieces; every byte still reaches `logs.txt`, and what is
//! shown and scanned for metrics is each piece. The same splitter serves every mode.

/// The most bytes of one line that are held at once.
pub const PIECE_MAX: usize = 64 * 1024;

/// A piece of a line: the whole line when it is short, else a part of at most [`PIECE_MAX`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The bytes, without the line's end (`\n` and a `\r` before it).
    pub bytes: Vec<u8>,
    /// This piece begins a line (false for the continuation of a long one).
    pub starts_line: bool,
    /// This piece ends its line.
    pub ends_line: bool,
}

impl Piece {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Feeds bytes in as they come, gets whole lines (or pieces of long ones) out.
#[derive(Debug, Default)]
pub struct LineSplitter {
    held: Vec<u8>,
    /// The held bytes continue a line whose earlier part was already given out.
    continuing: bool,
}

/// Where a piece may be cut so as not to split a UTF-8 character: at most 3 bytes earlier.
fn cut_point(bytes: &[u8], at: usize) -> usize {
    let mut cut = at;
    while cut > at.saturating_sub(3) && cut > 0 && cut < bytes.len() && (bytes[cut] & 0xC0) == 0x80
    {
        cut -= 1;
    }
    if cut == 0 {
        at
    } else {
        cut
    }
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a chunk of output; returns the pieces it completes.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<Piece> {
        let mut pieces = Vec::new();
        while !chunk.is_empty() {
            match chunk.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    self.held.extend_from_slice(&chunk[..end]);
                    chunk = &chunk[end + 1..];
                    self.spill(&mut pieces);
                    let mut bytes = std::mem::take(&mut self.held);
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                    pieces.push(Piece {
                        bytes,
                        starts_line: !self.continuing,
                        ends_line: true,
                    });
                    self.continuing = false;
                }
                None => {
                    self.held.extend_from_slice(chunk);
                    chunk = &[];
                    self.spill(&mut pieces);
                }
            }
        }
        pieces
    }

    /// Gives out full pieces while more than [`PIECE_MAX`] bytes are held.
    fn spill(&mut self, pieces: &mut Vec<Piece>) {
        while self.held.len() > PIECE_MAX {
            let cut = cut_point(&self.held, PIECE_MAX);
            let rest = self.held.split_off(cut);
            let bytes = std::mem::replace(&mut self.held, rest);
            pieces.push(Piece {
                bytes,
                starts_line: !self.continuing,
                ends_line: false,
            });
            self.continuing = true;
        }
    }

    /// The end of the stream: whatever is held, as the last line.
    pub fn finish(&mut self) -> Option<Piece> {
        if self.held.is_empty() && !self.continuing {
            return None;
        }
        let piece = Piece {
            bytes: std::mem::take(&mut self.held),
            starts_line: !self.continuing,
            ends_line: true,
        };
        self.continuing = false;
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(pieces: &[Piece]) -> Vec<String> {
        pieces.iter().map(Piece::text).collect()
    }

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let mut splitter = LineSplitter::new();
        assert!(splitter.push(b"hel").is_empty());
        let pieces = splitter.push(b"lo\r\nwor");
        assert_eq!(texts(&pieces), ["hello"]);
        assert!(pieces[0].starts_line && pieces[0].ends_line);
        assert_eq!(texts(&splitter.push(b"ld\n\n")), ["world", ""]);
        assert_eq!(splitter.finish(), None);
        splitter.push(b"tail");
        assert_eq!(splitter.finish().unwrap().text(), "tail");
    }

    #[test]
    fn a_huge_line_is_held_in_bounded_pieces_and_keeps_every_byte() {
        let mut splitter = LineSplitter::new();
        let mut all = Vec::new();
        let chunk = vec![b'x'; 10_000];
        for _ in 0..100 {
            all.extend(splitter.push(&chunk));
        }
        all.extend(splitter.push(b"end\nnext\n"));
        assert!(all.iter().all(|p| p.bytes.len() <= PIECE_MAX));
        let line: Vec<&Piece> = all.iter().take_while(|p| !p.ends_line).collect();
        assert!(line.len() >= 15, "{}", line.len());
        assert!(line[0].starts_line && !line[1].starts_line);
        let total: usize = all.iter().take(line.len() + 1).map(|p| p.bytes.len()).sum();
        assert_eq!(total, 1_000_003);
        assert_eq!(all.last().unwrap().text(), "next");
        assert!(all.last().unwrap().starts_line);
    }

    #[test]
    fn pieces_do_not_split_characters() {
        let mut splitter = LineSplitter::new();
        let line = "é".repeat(PIECE_MAX);
        let pieces = splitter.push(line.as_bytes());
        for piece in &pieces {
            assert!(std::str::from_utf8(&piece.bytes).is_ok());
        }
    }
}
