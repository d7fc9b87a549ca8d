//! Reading RESP2 and RESP3 value headers, and a resumable validator for whole replies.
//!
//! Resumable because replies arrive in pieces: a big array or bulk must cost O(bytes) in total,
//! not O(bytes) per read, so progress is kept between reads instead of re-validating from the
//! start (the buffer does not move until a whole reply is split off).

use std::ops::Range;

use super::error::ProtocolError;
use super::limits::Limits;
use super::line::{find_crlf, parse_int};

/// Longest valid number line: `-9223372036854775808`.
const MAX_NUMBER_LEN: usize = 20;

/// One value's header; payload ranges index the buffer that was read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Header {
    Simple(Range<usize>),
    Error(Range<usize>),
    Integer(i64),
    /// The payload range; the bulk is complete and CRLF-checked when this is returned.
    Bulk(Range<usize>),
    Null,
    /// Element count, which may be zero.
    Array(usize),
    NullArray,
    /// RESP3 `_`.
    Nil,
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,`: the text, as Redis wrote it (`1.5`, `inf`, `nan`).
    Double(Range<usize>),
    /// RESP3 `(`: the digits.
    BigNumber(Range<usize>),
    /// RESP3 `!`: the payload of a bulk error.
    BlobError(Range<usize>),
    /// RESP3 `=`: the payload, its three-letter format and `:` included.
    Verbatim(Range<usize>),
    /// A RESP3 aggregate and how many values follow it: twice the pairs of a map, and for an
    /// attribute also the value it annotates, which it forms one reply with.
    Aggregate(Aggregate, usize),
}

/// RESP3's aggregate types besides the array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// `%`: key, value, key, value...
    Map,
    /// `~`
    Set,
    /// `>`: out-of-band data (pub/sub messages, invalidations), never a command's reply.
    Push,
    /// `|`: key/value pairs describing the value that follows them.
    Attribute,
}

impl Aggregate {
    pub(crate) fn type_byte(self) -> u8 {
        match self {
            Aggregate::Map => b'%',
            Aggregate::Set => b'~',
            Aggregate::Push => b'>',
            Aggregate::Attribute => b'|',
        }
    }

    /// The count on the wire for `values` values following the header.
    pub(crate) fn declared(self, values: usize) -> usize {
        match self {
            Aggregate::Map => values / 2,
            Aggregate::Attribute => values.saturating_sub(1) / 2,
            Aggregate::Set | Aggregate::Push => values,
        }
    }
}

/// Position of the next header within a buffer, plus what a retry needs.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// Start of the next header to read.
    pub(crate) pos: usize,
    /// Where the CRLF search of an unfinished line resumes, so a long line arriving in small
    /// reads is scanned once (0: no line in progress).
    scan_from: usize,
    /// Buffer length known to be needed before trying again.
    pub(crate) need: usize,
}

impl Cursor {
    pub(crate) fn at(pos: usize) -> Self {
        Cursor {
            pos,
            ..Cursor::default()
        }
    }

    /// Reads the header at `pos` (and a bulk's payload), returning it with the position after
    /// it, or `None` when more bytes are needed. Does not move `pos`: callers advance only
    /// once they accept the value. `depth` is how many arrays enclose this value.
    pub(crate) fn header(
        &mut self,
        buf: &[u8],
        depth: usize,
        limits: &Limits,
    ) -> Result<Option<(Header, usize)>, ProtocolError> {
        let start = self.pos;
        let Some(&kind) = buf.get(start) else {
            self.need = start + 1;
            return Ok(None);
        };
        let numeric = match kind {
            b'+' | b'-' | b'_' | b'#' | b',' | b'(' => false,
            b':' | b'$' | b'=' | b'!' => true,
            b'*' | b'%' | b'~' | b'>' | b'|' if depth >= limits.max_depth => {
                return Err(ProtocolError::TooDeep(limits.max_depth))
            }
            b'*' | b'%' | b'~' | b'>' | b'|' => true,
            other => return Err(ProtocolError::InvalidTypeByte(other)),
        };
        let found = find_crlf(buf, self.scan_from.max(start + 1));
        let line_end = found.unwrap_or_else(|resume| resume);
        // A growing line crosses its limits nearest first, so reporting the nearest one it
        // exceeds gives the same error however the bytes were split into reads.
        let number_end = if numeric {
            start + 1 + MAX_NUMBER_LEN
        } else {
            usize::MAX
        };
        let frame_end = limits.max_frame_len.saturating_sub(2);
        if line_end > number_end.min(frame_end) {
            return Err(if number_end <= frame_end {
                number_error(kind)
            } else {
                ProtocolError::FrameTooLarge
            });
        }
        let Ok(cr) = found else {
            self.scan_from = line_end;
            self.need = line_end + 2;
            return Ok(None);
        };
        self.scan_from = 0;
        let line = &buf[start + 1..cr];
        let after = cr + 2;
        let text = start + 1..cr;
        let header = match kind {
            b'+' => Header::Simple(text),
            b'-' => Header::Error(text),
            b':' => Header::Integer(parse_int(line).ok_or(ProtocolError::InvalidInteger)?),
            b'$' | b'=' | b'!' => match parse_int(line) {
                Some(-1) if kind == b'$' => Header::Null,
                n => {
                    let len = n
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|&len| len <= limits.max_bulk_len)
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    return self.bulk(buf, kind, after, len, limits);
                }
            },
            b'*' => match parse_int(line) {
                Some(-1) => Header::NullArray,
                n => Header::Array(count(n, limits)?),
            },
            b'%' => Header::Aggregate(Aggregate::Map, count(parse_int(line), limits)? * 2),
            b'~' => Header::Aggregate(Aggregate::Set, count(parse_int(line), limits)?),
            b'>' => Header::Aggregate(Aggregate::Push, count(parse_int(line), limits)?),
            b'|' => Header::Aggregate(
                Aggregate::Attribute,
                count(parse_int(line), limits)? * 2 + 1,
            ),
            b'_' if line.is_empty() => Header::Nil,
            b'#' if line == b"t" || line == b"f" => Header::Boolean(line == b"t"),
            b',' if !line.is_empty() => Header::Double(text),
            b'(' if parse_big(line) => Header::BigNumber(text),
            _ => return Err(ProtocolError::InvalidResp3Line(kind)),
        };
        Ok(Some((header, after)))
    }

    /// A bulk payload of `len` bytes starting at `start`; O(1) per call however big it is.
    fn bulk(
        &mut self,
        buf: &[u8],
        kind: u8,
        start: usize,
        len: usize,
        limits: &Limits,
    ) -> Result<Option<(Header, usize)>, ProtocolError> {
        let end = bulk_end(start, len, limits)?;
        if buf.len() < end {
            self.need = end;
            return Ok(None);
        }
        check_bulk_crlf(buf, end)?;
        let payload = start..start + len;
        Ok(Some((
            match kind {
                b'=' => Header::Verbatim(payload),
                b'!' => Header::BlobError(payload),
                _ => Header::Bulk(payload),
            },
            end,
        )))
    }
}

/// An aggregate's declared count: at most `max_array_len` (a map's pairs count once each, so
/// doubling them cannot overflow).
fn count(n: Option<i64>, limits: &Limits) -> Result<usize, ProtocolError> {
    n.and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= limits.max_array_len && n <= usize::MAX / 4)
        .ok_or(ProtocolError::InvalidMultibulkLength)
}

/// A RESP3 big number: an optional `-` and at least one digit.
fn parse_big(line: &[u8]) -> bool {
    let digits = line.strip_prefix(b"-").unwrap_or(line);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// Where a bulk of `len` bytes starting at `start` ends, CRLF included, refused before any
/// byte of it is buffered if the frame would outgrow `max_frame_len`.
pub(crate) fn bulk_end(start: usize, len: usize, limits: &Limits) -> Result<usize, ProtocolError> {
    start
        .checked_add(len)
        .and_then(|end| end.checked_add(2))
        .filter(|&end| end <= limits.max_frame_len)
        .ok_or(ProtocolError::FrameTooLarge)
}

pub(crate) fn check_bulk_crlf(buf: &[u8], end: usize) -> Result<(), ProtocolError> {
    if &buf[end - 2..end] == b"\r\n" {
        Ok(())
    } else {
        Err(ProtocolError::BulkNotTerminated)
    }
}

fn number_error(kind: u8) -> ProtocolError {
    match kind {
        b':' => ProtocolError::InvalidInteger,
        b'$' | b'=' | b'!' => ProtocolError::InvalidBulkLength,
        _ => ProtocolError::InvalidMultibulkLength,
    }
}

/// Validates one whole reply across reads without building it.
#[derive(Debug, Default)]
pub(crate) struct Scanner {
    pub(crate) cursor: Cursor,
    /// Elements still expected by each open array, innermost last; never longer than
    /// `max_depth` because the depth is checked before an array is opened.
    open: Vec<usize>,
}

impl Scanner {
    pub(crate) fn at(pos: usize) -> Self {
        Scanner {
            cursor: Cursor::at(pos),
            open: Vec::new(),
        }
    }

    /// Continues over whatever part of the reply has arrived; `Some(end)` once it is whole.
    pub(crate) fn scan(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<usize>, ProtocolError> {
        loop {
            let depth = self.open.len();
            let Some((header, next)) = self.cursor.header(buf, depth, limits)? else {
                return Ok(None);
            };
            self.cursor.pos = next;
            match header {
                Header::Array(n) | Header::Aggregate(_, n) if n > 0 => self.open.push(n),
                _ => {
                    if self.close_value() {
                        return Ok(Some(next));
                    }
                }
            }
        }
    }

    /// Counts a finished value against its enclosing arrays; true when the top level is done.
    fn close_value(&mut self) -> bool {
        while let Some(remaining) = self.open.last_mut() {
            *remaining -= 1;
            if *remaining > 0 {
                return false;
            }
            self.open.pop();
        }
        true
    }

    /// Ready for the next reply, keeping the stack's allocation.
    pub(crate) fn reset(&mut self) {
        self.cursor = Cursor::default();
        self.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        Scanner::default().scan(buf, &Limits::default())
    }

    #[test]
    fn every_type_scans() {
        for reply in [
            &b"+OK\r\n"[..],
            b"-ERR x\r\n",
            b":-5\r\n",
            b"$3\r\na\r\n\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n*1\r\n:1\r\n$0\r\n\r\n",
            b"_\r\n",
            b"#f\r\n",
            b",3.14\r\n",
            b"(12345678901234567890123\r\n",
            b"!3\r\nERR\r\n",
            b"=7\r\ntxt:a\r\n\r\n",
            b"%2\r\n+a\r\n:1\r\n+b\r\n_\r\n",
            b"~0\r\n",
            b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n",
            b"|1\r\n+key\r\n+val\r\n*1\r\n:1\r\n",
        ] {
            assert_eq!(scan_all(reply).unwrap(), Some(reply.len()));
            for cut in 0..reply.len() {
                assert_eq!(scan_all(&reply[..cut]).unwrap(), None);
            }
        }
    }

    #[test]
    fn resumes_where_it_stopped() {
        let mut scanner = Scanner::default();
        let reply = b"*3\r\n:1\r\n:2\r\n:3\r\n";
        assert_eq!(
            scanner.scan(&reply[..10], &Limits::default()).unwrap(),
            None
        );
        assert_eq!(
            scanner.cursor.pos, 8,
            "the first two elements are not rescanned"
        );
        assert_eq!(scanner.open, vec![2]);
        assert_eq!(scanner.scan(reply, &Limits::default()).unwrap(), Some(16));
    }

    #[test]
    fn big_bulk_needs_one_header_read() {
        let mut cursor = Cursor::default();
        let limits = Limits::default();
        assert!(cursor.header(b"$1000\r\nab", 0, &limits).unwrap().is_none());
        assert_eq!(cursor.need, 1009);
    }

    #[test]
    fn long_unterminated_lines_resume_their_search() {
        let mut cursor = Cursor::default();
        let limits = Limits::default();
        assert!(cursor.header(b"+aaaa", 0, &limits).unwrap().is_none());
        assert_eq!(cursor.scan_from, 5);
        assert!(cursor.header(b"+aaaa\r", 0, &limits).unwrap().is_none());
        assert_eq!(cursor.scan_from, 5);
        let (header, next) = cursor.header(b"+aaaa\r\n", 0, &limits).unwrap().unwrap();
        assert_eq!((header, next), (Header::Simple(1..5), 7));
    }

    #[test]
    fn errors() {
        let err = |buf: &[u8]| scan_all(buf).unwrap_err().kind();
        assert_eq!(err(b"?x\r\n"), "invalid_type_byte");
        assert_eq!(err(b"!x\r\n"), "invalid_bulk_length");
        assert_eq!(err(b":1.5\r\n"), "invalid_integer");
        assert_eq!(err(b":\r\n"), "invalid_integer");
        assert_eq!(err(b":123456789012345678901"), "invalid_integer");
        assert_eq!(err(b"$-2\r\n"), "invalid_bulk_length");
        assert_eq!(err(b"$x\r\n"), "invalid_bulk_length");
        assert_eq!(err(b"*-2\r\n"), "invalid_multibulk_length");
        assert_eq!(err(b"*1x\r\n"), "invalid_multibulk_length");
        assert_eq!(err(b"$1\r\nab\r\n"), "bulk_not_terminated");
        assert_eq!(err(b"*1\r\n*1\r\n?"), "invalid_type_byte");
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_bulk_len: 3,
            max_array_len: 2,
            max_depth: 2,
            max_frame_len: 20,
            ..Limits::default()
        };
        let err = |buf: &[u8]| Scanner::default().scan(buf, &limits).unwrap_err().kind();
        let ok = |buf: &[u8]| Scanner::default().scan(buf, &limits).unwrap();
        assert_eq!(ok(b"$3\r\nabc\r\n"), Some(9));
        assert_eq!(err(b"$4\r\n"), "invalid_bulk_length");
        assert_eq!(ok(b"*2\r\n:1\r\n:2\r\n"), Some(12));
        assert_eq!(err(b"*3\r\n"), "invalid_multibulk_length");
        assert_eq!(ok(b"*1\r\n*1\r\n:1\r\n"), Some(12));
        assert_eq!(err(b"*1\r\n*1\r\n*"), "too_deep");
        assert_eq!(err(b"*1\r\n*1\r\n*-1\r\n"), "too_deep");
        assert_eq!(err(b"*2\r\n$3\r\nabc\r\n$3\r\n"), "frame_too_large");
        assert_eq!(err(&[b'+'; 40]), "frame_too_large");
        assert_eq!(ok(b"*2\r\n$3\r\nabc\r\n:1\r\n"), Some(17));
        // A map of one pair holds two values, so two pairs break a two-element limit once
        // doubled only if the count itself is over: the limit is on the declared count.
        assert_eq!(ok(b"%1\r\n:1\r\n:2\r\n"), Some(12));
        assert_eq!(err(b"%3\r\n"), "invalid_multibulk_length");
        assert_eq!(err(b"~1\r\n~1\r\n~"), "too_deep");
        assert_eq!(err(b"=4\r\n"), "invalid_bulk_length");
    }

    #[test]
    fn an_attribute_is_one_reply_with_its_value() {
        let wire = b"|1\r\n+k\r\n+v\r\n:5\r\n+next\r\n";
        assert_eq!(scan_all(wire).unwrap(), Some(16));
        assert_eq!(scan_all(&wire[..12]).unwrap(), None);
    }
}
