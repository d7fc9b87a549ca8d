//! Client requests: RESP2 multibulks of bulk strings, or inline commands, decoded the way
//! Redis `processMultibulkBuffer` / `processInlineBuffer` do, error texts included.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::encode::{command_len, encode_command};
use super::error::ProtocolError;
use super::inline::split_args;
use super::limits::{reserve_for, Limits, PREALLOC_CAP};
use super::line::{find_crlf, parse_int};
use super::scan::{bulk_end, check_bulk_crlf};

/// A client request: argument slices of one frozen buffer, no copies.
#[derive(Clone, Debug)]
pub struct Request {
    /// Never empty.
    args: Vec<Bytes>,
    raw: Option<Bytes>,
}

impl Request {
    /// For requests the proxy writes itself (sub-requests, health checks); `raw()` is `None`.
    ///
    /// # Panics
    /// If `args` is empty: every request has a command name, and `name()` relies on it.
    pub fn from_args(args: Vec<Bytes>) -> Request {
        assert!(!args.is_empty(), "a request needs at least a command name");
        Request { args, raw: None }
    }

    pub fn args(&self) -> &[Bytes] {
        &self.args
    }

    /// `args()[0]` as sent, in any case; callers compare case-insensitively.
    pub fn name(&self) -> &[u8] {
        &self.args[0]
    }

    /// The exact RESP bytes the client sent, when it came as a multibulk; None for inline.
    pub fn raw(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// Bytes to forward to a backend: `raw()` when present (a refcount bump, no copy), else a
    /// fresh encoding of the args.
    pub fn to_resp(&self) -> Bytes {
        match &self.raw {
            Some(raw) => raw.clone(),
            None => {
                let mut dst = BytesMut::with_capacity(self.encoded_len());
                self.encode(&mut dst);
                dst.freeze()
            }
        }
    }

    /// Appends the RESP multibulk of the args: the client's own bytes when we have them, so a
    /// forwarded request is byte-for-byte what was sent.
    pub fn encode(&self, dst: &mut BytesMut) {
        match &self.raw {
            Some(raw) => dst.extend_from_slice(raw),
            None => {
                dst.reserve(self.encoded_len());
                encode_command(self.args.iter().map(|arg| &arg[..]), dst);
            }
        }
    }

    /// Gives the argument slices away, e.g. to rebuild per-slot sub-requests without copies.
    pub fn into_args(self) -> Vec<Bytes> {
        self.args
    }

    fn encoded_len(&self) -> usize {
        match &self.raw {
            Some(raw) => raw.len(),
            None => command_len(self.args.iter().map(|arg| &arg[..])),
        }
    }
}

/// Decodes client input: RESP2 multibulk of bulk strings, or inline commands (Redis
/// sdssplitargs rules). Empty inline lines and `*0`/`*-1` (any count below one, as in Redis)
/// are skipped. Incremental: `Ok(None)` when more bytes are needed.
///
/// Progress on a partly received multibulk is kept between calls, so a request with a million
/// arguments arriving in small reads is parsed once, not once per read. That relies on the
/// `Decoder` contract: every call sees the same buffer, only ever appended to, and only this
/// codec consumes from it. After an error the codec starts fresh, but the stream itself cannot
/// be resynchronised and should be closed (as Redis does).
#[derive(Debug)]
pub struct RequestCodec {
    limits: Limits,
    lines: LineFinder,
    /// Argument count of the multibulk being received; 0 when none is in progress.
    expected: usize,
    /// Offset of the next unparsed byte of that multibulk.
    pos: usize,
    /// Payload ranges of its arguments so far; reused across requests.
    ranges: Vec<Range<usize>>,
}

enum Step {
    Ready(Request),
    Skipped,
    NeedMore,
}

impl RequestCodec {
    pub fn new(limits: Limits) -> Self {
        RequestCodec {
            limits,
            lines: LineFinder::default(),
            expected: 0,
            pos: 0,
            ranges: Vec::new(),
        }
    }

    fn step(&mut self, src: &mut BytesMut) -> Result<Step, ProtocolError> {
        if self.expected > 0 {
            self.arguments(src)
        } else if src.first() == Some(&b'*') {
            self.multibulk_header(src)
        } else {
            self.inline(src)
        }
    }

    fn multibulk_header(&mut self, src: &mut BytesMut) -> Result<Step, ProtocolError> {
        let Some(cr) =
            self.lines
                .find(src, 0, &self.limits, ProtocolError::TooBigMultibulkCount)?
        else {
            return Ok(Step::NeedMore);
        };
        let count = parse_int(&src[1..cr]).ok_or(ProtocolError::InvalidMultibulkLength)?;
        if count <= 0 {
            src.advance(cr + 2);
            return Ok(Step::Skipped);
        }
        let count = usize::try_from(count)
            .ok()
            .filter(|&count| count <= self.limits.max_array_len)
            .ok_or(ProtocolError::InvalidMultibulkLength)?;
        self.expected = count;
        self.pos = cr + 2;
        self.ranges.reserve(count.min(PREALLOC_CAP));
        self.arguments(src)
    }

    fn arguments(&mut self, src: &mut BytesMut) -> Result<Step, ProtocolError> {
        while self.ranges.len() < self.expected {
            let Some(&kind) = src.get(self.pos) else {
                return Ok(Step::NeedMore);
            };
            if kind != b'$' {
                return Err(ProtocolError::ExpectedBulk(kind));
            }
            let Some(cr) =
                self.lines
                    .find(src, self.pos, &self.limits, ProtocolError::TooBigBulkCount)?
            else {
                return Ok(Step::NeedMore);
            };
            let len = parse_int(&src[self.pos + 1..cr])
                .and_then(|len| usize::try_from(len).ok())
                .filter(|&len| len <= self.limits.max_bulk_len)
                .ok_or(ProtocolError::InvalidBulkLength)?;
            let start = cr + 2;
            let end = bulk_end(start, len, &self.limits)?;
            if src.len() < end {
                reserve_for(src, end);
                return Ok(Step::NeedMore);
            }
            check_bulk_crlf(src, end)?;
            self.ranges.push(start..start + len);
            self.pos = end;
        }
        let raw = src.split_to(self.pos).freeze();
        let args = self.ranges.iter().map(|r| raw.slice(r.clone())).collect();
        self.reset();
        Ok(Step::Ready(Request {
            args,
            raw: Some(raw),
        }))
    }

    fn inline(&mut self, src: &mut BytesMut) -> Result<Step, ProtocolError> {
        let Some(lf) = self.lines.find_lf(src, &self.limits)? else {
            return Ok(Step::NeedMore);
        };
        let line = src.split_to(lf + 1).freeze();
        let content = if lf > 0 && line[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        };
        let args = split_args(&line.slice(..content))?;
        if args.is_empty() {
            return Ok(Step::Skipped);
        }
        Ok(Step::Ready(Request { args, raw: None }))
    }

    fn reset(&mut self) {
        self.lines = LineFinder::default();
        self.expected = 0;
        self.pos = 0;
        self.ranges.clear();
        // One huge request must not pin its index for the connection's lifetime.
        if self.ranges.capacity() > 4 * PREALLOC_CAP {
            self.ranges = Vec::new();
        }
    }
}

impl Decoder for RequestCodec {
    type Item = Request;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        // Skipped frames loop here: returning None with a whole command still buffered would
        // stall the client until it sent more.
        while !src.is_empty() {
            match self.step(src) {
                Ok(Step::Ready(request)) => return Ok(Some(request)),
                Ok(Step::Skipped) => {}
                Ok(Step::NeedMore) => return Ok(None),
                Err(e) => {
                    self.reset();
                    return Err(e);
                }
            }
        }
        Ok(None)
    }
}

/// Finds line ends, remembering how far an unfinished line was searched so that a line
/// trickling in byte by byte is scanned once.
#[derive(Debug, Default)]
struct LineFinder {
    scan_from: usize,
}

impl LineFinder {
    /// The CR of the CRLF ending the count line that starts at `start`. Like Redis, a line
    /// longer than `max_inline_len` is `too_big`, and is refused as soon as the buffer holds
    /// that much of it (the length counts the type byte, as Redis does).
    fn find(
        &mut self,
        src: &[u8],
        start: usize,
        limits: &Limits,
        too_big: ProtocolError,
    ) -> Result<Option<usize>, ProtocolError> {
        let found = find_crlf(src, self.scan_from.max(start + 1));
        let line_end = found.unwrap_or_else(|resume| resume);
        // Report the nearest limit the line exceeds: a growing line crosses them in that
        // order, so the error is the same however the bytes were split into reads.
        let count_end = start.saturating_add(limits.max_inline_len);
        let frame_end = limits.max_frame_len.saturating_sub(2);
        if line_end > count_end.min(frame_end) {
            return Err(if count_end <= frame_end {
                too_big
            } else {
                ProtocolError::FrameTooLarge
            });
        }
        match found {
            Ok(cr) => {
                self.scan_from = 0;
                Ok(Some(cr))
            }
            Err(resume) => {
                self.scan_from = resume;
                Ok(None)
            }
        }
    }

    /// The LF ending an inline command at the start of `src`. Redis allows a longer line if
    /// it happens to arrive in one read; we refuse any line over `max_inline_len`, so the
    /// outcome does not depend on how the bytes were split.
    fn find_lf(&mut self, src: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
        let from = self.scan_from;
        let unscanned = src.get(from..).unwrap_or_default();
        let found = unscanned.iter().position(|&b| b == b'\n').map(|i| from + i);
        if found.unwrap_or(src.len()) > limits.max_inline_len {
            return Err(ProtocolError::TooBigInline);
        }
        self.scan_from = if found.is_some() { 0 } else { src.len() };
        Ok(found)
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
