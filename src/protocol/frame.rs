//! RESP values as a tree, for the few places that must look inside a reply.

use bytes::{BufMut, Bytes, BytesMut};

use super::encode::{put_bulk, put_header, put_integer, put_line};
use super::error::ProtocolError;
use super::limits::{Limits, PREALLOC_CAP};
use super::scan::{Aggregate, Cursor, Header};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Simple(Bytes),
    Error(Bytes),
    Integer(i64),
    Bulk(Bytes),
    /// `$-1`
    Null,
    /// `*-1`
    NullArray,
    Array(Vec<Frame>),
    /// RESP3 `_`.
    Nil,
    Boolean(bool),
    /// The number's text as sent.
    Double(Bytes),
    BigNumber(Bytes),
    BlobError(Bytes),
    /// The payload, format prefix (`txt:`) included.
    Verbatim(Bytes),
    /// Keys and values in turn.
    Map(Vec<Frame>),
    Set(Vec<Frame>),
    Push(Vec<Frame>),
    /// The annotation's keys and values in turn, then the value it annotates.
    Attribute(Vec<Frame>),
}

impl Frame {
    /// Canonical RESP2 bytes. CR and LF inside simple strings and errors become spaces, because
    /// RESP2 cannot carry them there and writing them would inject frames.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Frame::Simple(text) => put_line(dst, b'+', text),
            Frame::Error(text) => put_line(dst, b'-', text),
            Frame::Integer(n) => put_integer(dst, *n),
            Frame::Bulk(payload) => put_bulk(dst, payload),
            Frame::Null => dst.put_slice(b"$-1\r\n"),
            Frame::NullArray => dst.put_slice(b"*-1\r\n"),
            Frame::Array(items) => put_aggregate(dst, b'*', items.len(), items),
            Frame::Nil => dst.put_slice(b"_\r\n"),
            Frame::Boolean(true) => dst.put_slice(b"#t\r\n"),
            Frame::Boolean(false) => dst.put_slice(b"#f\r\n"),
            Frame::Double(text) => put_line(dst, b',', text),
            Frame::BigNumber(text) => put_line(dst, b'(', text),
            Frame::BlobError(payload) => put_blob(dst, b'!', payload),
            Frame::Verbatim(payload) => put_blob(dst, b'=', payload),
            Frame::Map(items) => put_resp3(dst, Aggregate::Map, items),
            Frame::Set(items) => put_resp3(dst, Aggregate::Set, items),
            Frame::Push(items) => put_resp3(dst, Aggregate::Push, items),
            Frame::Attribute(items) => put_resp3(dst, Aggregate::Attribute, items),
        }
    }

    /// Parse one complete frame from `src` (zero-copy slices of it). Err on malformed/limit;
    /// Ok(None) if incomplete.
    ///
    /// Stateless, so it starts over on every call: codecs on a stream use `ReplyCodec`, which
    /// resumes, and call this only on a whole reply.
    pub fn parse(src: &Bytes, limits: &Limits) -> Result<Option<(Frame, usize)>, ProtocolError> {
        // An explicit stack instead of recursion: depth is bounded by `max_depth` only, which a
        // caller may set high, and the thread stack must not be what limits it. `None` is an array.
        let mut open: Vec<(Option<Aggregate>, Vec<Frame>, usize)> = Vec::new();
        let mut cursor = Cursor::default();
        loop {
            let Some((header, next)) = cursor.header(src, open.len(), limits)? else {
                return Ok(None);
            };
            cursor.pos = next;
            let mut frame = match header {
                Header::Simple(range) => Frame::Simple(src.slice(range)),
                Header::Error(range) => Frame::Error(src.slice(range)),
                Header::Integer(n) => Frame::Integer(n),
                Header::Bulk(range) => Frame::Bulk(src.slice(range)),
                Header::Null => Frame::Null,
                Header::NullArray => Frame::NullArray,
                Header::Nil => Frame::Nil,
                Header::Boolean(b) => Frame::Boolean(b),
                Header::Double(range) => Frame::Double(src.slice(range)),
                Header::BigNumber(range) => Frame::BigNumber(src.slice(range)),
                Header::BlobError(range) => Frame::BlobError(src.slice(range)),
                Header::Verbatim(range) => Frame::Verbatim(src.slice(range)),
                Header::Array(0) => Frame::Array(Vec::new()),
                Header::Aggregate(kind, 0) => aggregate(Some(kind), Vec::new()),
                Header::Array(n) | Header::Aggregate(_, n) => {
                    let kind = match header {
                        Header::Aggregate(kind, _) => Some(kind),
                        _ => None,
                    };
                    open.push((kind, Vec::with_capacity(n.min(PREALLOC_CAP)), n));
                    continue;
                }
            };
            // Hand the finished value to its aggregate, closing every one it completes.
            loop {
                let Some((_, items, len)) = open.last_mut() else {
                    return Ok(Some((frame, next)));
                };
                items.push(frame);
                if items.len() < *len {
                    break;
                }
                let Some((kind, items, _)) = open.pop() else {
                    unreachable!("last_mut just saw it");
                };
                frame = aggregate(kind, items);
            }
        }
    }
}

fn aggregate(kind: Option<Aggregate>, items: Vec<Frame>) -> Frame {
    match kind {
        None => Frame::Array(items),
        Some(Aggregate::Map) => Frame::Map(items),
        Some(Aggregate::Set) => Frame::Set(items),
        Some(Aggregate::Push) => Frame::Push(items),
        Some(Aggregate::Attribute) => Frame::Attribute(items),
    }
}

fn put_aggregate(dst: &mut BytesMut, type_byte: u8, declared: usize, items: &[Frame]) {
    put_header(dst, type_byte, declared);
    items.iter().for_each(|item| item.encode(dst));
}

fn put_resp3(dst: &mut BytesMut, kind: Aggregate, items: &[Frame]) {
    put_aggregate(dst, kind.type_byte(), kind.declared(items.len()), items);
}

fn put_blob(dst: &mut BytesMut, type_byte: u8, payload: &[u8]) {
    put_header(dst, type_byte, payload.len());
    dst.put_slice(payload);
    dst.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    fn parse(s: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
        Frame::parse(&bytes(s), &Limits::default())
    }

    fn round_trip(frame: Frame, wire: &[u8]) {
        let mut dst = BytesMut::new();
        frame.encode(&mut dst);
        assert_eq!(&dst[..], wire);
        assert_eq!(parse(wire).unwrap(), Some((frame, wire.len())));
    }

    #[test]
    fn every_type_round_trips() {
        round_trip(Frame::Simple(bytes(b"OK")), b"+OK\r\n");
        round_trip(Frame::Simple(bytes(b"")), b"+\r\n");
        round_trip(Frame::Error(bytes(b"ERR no")), b"-ERR no\r\n");
        round_trip(Frame::Integer(-42), b":-42\r\n");
        round_trip(Frame::Integer(i64::MIN), b":-9223372036854775808\r\n");
        round_trip(Frame::Bulk(bytes(b"a\r\nb")), b"$4\r\na\r\nb\r\n");
        round_trip(Frame::Bulk(bytes(b"")), b"$0\r\n\r\n");
        round_trip(Frame::Null, b"$-1\r\n");
        round_trip(Frame::NullArray, b"*-1\r\n");
        round_trip(Frame::Array(vec![]), b"*0\r\n");
        round_trip(
            Frame::Array(vec![
                Frame::Array(vec![Frame::Integer(1), Frame::Null]),
                Frame::Array(vec![]),
                Frame::NullArray,
                Frame::Bulk(bytes(b"\x00\xff")),
            ]),
            b"*4\r\n*2\r\n:1\r\n$-1\r\n*0\r\n*-1\r\n$2\r\n\x00\xff\r\n",
        );
    }

    #[test]
    fn resp3_types_round_trip() {
        round_trip(Frame::Nil, b"_\r\n");
        round_trip(Frame::Boolean(true), b"#t\r\n");
        round_trip(Frame::Boolean(false), b"#f\r\n");
        round_trip(Frame::Double(bytes(b"-1.5e3")), b",-1.5e3\r\n");
        round_trip(Frame::Double(bytes(b"inf")), b",inf\r\n");
        round_trip(
            Frame::BigNumber(bytes(b"-3492890328409238509324850943850943825024385")),
            b"(-3492890328409238509324850943850943825024385\r\n",
        );
        round_trip(Frame::BlobError(bytes(b"SYNTAX x")), b"!8\r\nSYNTAX x\r\n");
        round_trip(
            Frame::Verbatim(bytes(b"txt:a\r\nb")),
            b"=8\r\ntxt:a\r\nb\r\n",
        );
        round_trip(
            Frame::Map(vec![
                Frame::Bulk(bytes(b"k")),
                Frame::Set(vec![Frame::Integer(1)]),
            ]),
            b"%1\r\n$1\r\nk\r\n~1\r\n:1\r\n",
        );
        round_trip(Frame::Map(vec![]), b"%0\r\n");
        round_trip(
            Frame::Push(vec![Frame::Bulk(bytes(b"message")), Frame::Nil]),
            b">2\r\n$7\r\nmessage\r\n_\r\n",
        );
        // An attribute and the value it annotates are one reply.
        round_trip(
            Frame::Attribute(vec![
                Frame::Simple(bytes(b"ttl")),
                Frame::Integer(3),
                Frame::Array(vec![Frame::Integer(7)]),
            ]),
            b"|1\r\n+ttl\r\n:3\r\n*1\r\n:7\r\n",
        );
        round_trip(Frame::Attribute(vec![Frame::Nil]), b"|0\r\n_\r\n");
    }

    #[test]
    fn resp3_lines_are_checked() {
        for wire in [
            &b"_x\r\n"[..],
            b"#x\r\n",
            b"#\r\n",
            b",\r\n",
            b"(1.5\r\n",
            b"(\r\n",
        ] {
            assert!(
                matches!(parse(wire), Err(ProtocolError::InvalidResp3Line(_))),
                "{wire:?}"
            );
        }
        assert!(matches!(
            parse(b"=-1\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        ));
        assert!(matches!(
            parse(b"%-1\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        ));
    }

    #[test]
    fn parse_is_zero_copy_and_stops_after_one_frame() {
        let src = bytes(b"$3\r\nabc\r\n+next\r\n");
        let (frame, used) = Frame::parse(&src, &Limits::default()).unwrap().unwrap();
        assert_eq!(used, 9);
        let Frame::Bulk(payload) = frame else {
            panic!("not a bulk")
        };
        assert_eq!(payload.as_ptr(), src[4..].as_ptr());
    }

    #[test]
    fn incomplete_is_none_at_every_cut() {
        for wire in [
            &b"*2\r\n$3\r\nabc\r\n*1\r\n:7\r\n"[..],
            b"|1\r\n+a\r\n:1\r\n%1\r\n=7\r\ntxt:abc\r\n~1\r\n#t\r\n",
        ] {
            for cut in 0..wire.len() {
                assert_eq!(parse(&wire[..cut]).unwrap(), None, "cut {cut}");
            }
            assert_eq!(parse(wire).unwrap().map(|(_, used)| used), Some(wire.len()));
        }
    }

    #[test]
    fn malformed_and_limits() {
        assert!(matches!(
            parse(b"?\r\n"),
            Err(ProtocolError::InvalidTypeByte(b'?'))
        ));
        assert!(matches!(
            parse(b":+1\r\n"),
            Err(ProtocolError::InvalidInteger)
        ));
        assert!(matches!(
            parse(b"$2\r\nabc\r\n"),
            Err(ProtocolError::BulkNotTerminated)
        ));
        let shallow = Limits {
            max_depth: 1,
            ..Limits::default()
        };
        let nested = bytes(b"*1\r\n*0\r\n");
        assert!(matches!(
            Frame::parse(&nested, &shallow),
            Err(ProtocolError::TooDeep(1))
        ));
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let depth = 100_000;
        let mut wire = b"*1\r\n".repeat(depth);
        wire.extend_from_slice(b":1\r\n");
        let limits = Limits {
            max_depth: depth,
            ..Limits::default()
        };
        let (frame, used) = Frame::parse(&bytes(&wire), &limits).unwrap().unwrap();
        assert_eq!(used, wire.len());
        // Dropping a 100k-deep tree recursively would overflow; unwind it by hand.
        let mut frame = frame;
        let mut levels = 0;
        while let Frame::Array(mut items) = frame {
            frame = items.pop().unwrap();
            levels += 1;
        }
        assert_eq!((levels, frame), (depth, Frame::Integer(1)));
    }

    #[test]
    fn encode_sanitises_lines() {
        let mut dst = BytesMut::new();
        Frame::Error(bytes(b"ERR a\r\nb")).encode(&mut dst);
        assert_eq!(&dst[..], b"-ERR a  b\r\n");
    }
}
