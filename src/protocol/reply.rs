//! Backend replies, kept as the exact bytes the backend sent so they are forwarded untouched;
//! only the few replies the proxy must understand (errors, redirects, merges) get looked into.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::encode::{bulk_len, header_len, put_bulk, put_header, put_integer, put_line};
use super::error::ProtocolError;
use super::frame::Frame;
use super::limits::{reserve_for, Limits, PREALLOC_CAP};
use super::line::parse_int;
use super::scan::{Cursor, Header, Scanner};

/// Which RESP a client speaks: RESP2 until it sends `HELLO 3`. Redis picks a reply's types by
/// the protocol of the connection that asked, so a RESP3 client's requests go over backend
/// connections that speak RESP3 too, and its replies pass through untouched like anyone's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}

impl Proto {
    /// The number `HELLO` takes and reports.
    pub fn version(self) -> i64 {
        match self {
            Proto::Resp2 => 2,
            Proto::Resp3 => 3,
        }
    }
}

/// One complete reply from a backend, kept as the exact bytes it sent (forwarded byte-exact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply(pub Bytes);

impl Reply {
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The error line without the leading '-' and trailing CRLF, when this is an error reply;
    /// enough to spot MOVED/ASK/TRYAGAIN without parsing anything else.
    pub fn error(&self) -> Option<&[u8]> {
        self.line(b'-')
    }

    /// The value of a `:N` reply.
    pub fn integer(&self) -> Option<i64> {
        self.line(b':').and_then(parse_int)
    }

    /// Exactly `+OK`.
    pub fn is_ok(&self) -> bool {
        self.0[..] == b"+OK\r\n"[..]
    }

    /// A bulk string's payload (a SCAN cursor, say); `None` for any other reply, nulls included.
    pub fn bulk_payload(&self) -> Option<&[u8]> {
        let rest = self.0.strip_prefix(b"$")?;
        let end = rest.iter().position(|&b| b == b'\r')?;
        let len = usize::try_from(parse_int(&rest[..end])?).ok()?;
        let payload = rest.get(end + 2..)?.strip_suffix(b"\r\n")?;
        (payload.len() == len).then_some(payload)
    }

    /// Redis' "no value" in either protocol: `$-1`, `*-1` or `_`.
    pub fn is_null(&self) -> bool {
        matches!(&self.0[..], b"$-1\r\n" | b"*-1\r\n" | b"_\r\n")
    }

    /// Raw element slices (each one complete reply) of a top-level array reply; None if not an
    /// array (or a null array, or malformed). Zero-copy, so merging replies to a split command
    /// costs no payload copies.
    pub fn array_elements(&self) -> Option<Vec<Reply>> {
        let mut cursor = Cursor::default();
        let Ok(Some((Header::Array(len), mut pos))) = cursor.header(&self.0, 0, &Limits::UNLIMITED)
        else {
            return None;
        };
        let mut elements = Vec::with_capacity(len.min(PREALLOC_CAP));
        for _ in 0..len {
            let end = Scanner::at(pos)
                .scan(&self.0, &Limits::UNLIMITED)
                .ok()
                .flatten()?;
            elements.push(Reply(self.0.slice(pos..end)));
            pos = end;
        }
        Some(elements)
    }

    /// The reply as a tree, for the rare caller that must look deeper than `error()` or
    /// `array_elements()`. The reply must be exactly one frame.
    pub fn parse(&self, limits: &Limits) -> Result<Frame, ProtocolError> {
        match Frame::parse(&self.0, limits)? {
            None => Err(ProtocolError::Incomplete),
            Some((frame, used)) if used == self.0.len() => Ok(frame),
            Some(_) => Err(ProtocolError::TrailingBytes),
        }
    }

    /// `"-{msg}\r\n"`; CR/LF in `msg` become spaces so a message can never inject a reply.
    pub fn error_line(msg: &str) -> Reply {
        Reply::line_reply(b'-', msg)
    }

    /// `"+{msg}\r\n"`, with CR/LF turned into spaces like `error_line`.
    pub fn simple(msg: &str) -> Reply {
        Reply::line_reply(b'+', msg)
    }

    pub fn integer_reply(n: i64) -> Reply {
        let mut dst = BytesMut::with_capacity(23);
        put_integer(&mut dst, n);
        Reply(dst.freeze())
    }

    pub fn bulk(b: &[u8]) -> Reply {
        let mut dst = BytesMut::with_capacity(bulk_len(b.len()));
        put_bulk(&mut dst, b);
        Reply(dst.freeze())
    }

    pub fn null_bulk() -> Reply {
        Reply(Bytes::from_static(b"$-1\r\n"))
    }

    pub fn ok() -> Reply {
        Reply(Bytes::from_static(b"+OK\r\n"))
    }

    /// "*N\r\n" followed by the elements' bytes, copied once into one buffer.
    pub fn array(elements: &[Reply]) -> Reply {
        Reply::aggregate(b'*', elements.len(), elements)
    }

    /// The null a client of `proto` expects where Redis has no value: `$-1` or `_`.
    pub fn null(proto: Proto) -> Reply {
        match proto {
            Proto::Resp2 => Reply::null_bulk(),
            Proto::Resp3 => Reply(Bytes::from_static(b"_\r\n")),
        }
    }

    /// Keys and values in turn: a RESP3 map, or the flat array RESP2 has instead.
    pub fn map(proto: Proto, pairs: &[Reply]) -> Reply {
        match proto {
            Proto::Resp2 => Reply::array(pairs),
            Proto::Resp3 => Reply::aggregate(b'%', pairs.len() / 2, pairs),
        }
    }

    /// Out-of-band data such as a pub/sub message: a RESP3 push, or an array in RESP2.
    pub fn push(proto: Proto, elements: &[Reply]) -> Reply {
        match proto {
            Proto::Resp2 => Reply::array(elements),
            Proto::Resp3 => Reply::aggregate(b'>', elements.len(), elements),
        }
    }

    /// Free text such as INFO's: a RESP3 verbatim string marked `txt`, or a bulk in RESP2.
    pub fn text(proto: Proto, text: &[u8]) -> Reply {
        match proto {
            Proto::Resp2 => Reply::bulk(text),
            Proto::Resp3 => {
                let len = text.len() + 4;
                let mut dst = BytesMut::with_capacity(bulk_len(len));
                put_header(&mut dst, b'=', len);
                dst.put_slice(b"txt:");
                dst.put_slice(text);
                dst.put_slice(b"\r\n");
                Reply(dst.freeze())
            }
        }
    }

    fn aggregate(type_byte: u8, declared: usize, elements: &[Reply]) -> Reply {
        let body: usize = elements.iter().map(|e| e.0.len()).sum();
        let mut dst = BytesMut::with_capacity(header_len(declared) + body);
        put_header(&mut dst, type_byte, declared);
        elements.iter().for_each(|e| dst.put_slice(&e.0));
        Reply(dst.freeze())
    }

    fn line_reply(prefix: u8, msg: &str) -> Reply {
        let mut dst = BytesMut::with_capacity(msg.len() + 3);
        put_line(&mut dst, prefix, msg.as_bytes());
        Reply(dst.freeze())
    }

    fn line(&self, prefix: u8) -> Option<&[u8]> {
        self.0
            .strip_prefix(&[prefix])
            .and_then(|rest| rest.strip_suffix(b"\r\n"))
    }
}

impl From<&Frame> for Reply {
    /// Lets replies the proxy composes as a tree be queued like any forwarded one.
    fn from(frame: &Frame) -> Reply {
        let mut dst = BytesMut::new();
        frame.encode(&mut dst);
        Reply(dst.freeze())
    }
}

/// Decodes backend replies: any RESP2 or RESP3 type, nested up to `max_depth`; validates structure and
/// yields the raw bytes of one whole reply (`split_to(n).freeze()`, no copy).
///
/// Validation progress is kept between calls (see `RequestCodec` for the buffer contract), so
/// a 64 MiB bulk costs one header read per call and a million-element array is walked once.
#[derive(Debug)]
pub struct ReplyCodec {
    limits: Limits,
    scanner: Scanner,
}

impl ReplyCodec {
    pub fn new(limits: Limits) -> Self {
        ReplyCodec {
            limits,
            scanner: Scanner::default(),
        }
    }
}

impl Decoder for ReplyCodec {
    type Item = Reply;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
        match self.scanner.scan(src, &self.limits) {
            Ok(Some(len)) => {
                self.scanner.reset();
                Ok(Some(Reply(src.split_to(len).freeze())))
            }
            Ok(None) => {
                reserve_for(src, self.scanner.cursor.need);
                Ok(None)
            }
            Err(e) => {
                self.scanner.reset();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
