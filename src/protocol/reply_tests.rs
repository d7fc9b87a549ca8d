//! Tests of the reply codec: replies from nodes in any split of reads, and its limits.

use super::super::limits::RESERVE_CHUNK;
use super::*;

fn reply(s: &[u8]) -> Reply {
    Reply(Bytes::copy_from_slice(s))
}

fn decode_all(input: &[u8]) -> Result<Vec<Reply>, ProtocolError> {
    let mut codec = ReplyCodec::new(Limits::default());
    let mut src = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(r) = codec.decode(&mut src)? {
        out.push(r);
    }
    assert!(src.is_empty(), "leftover {:?}", src);
    Ok(out)
}

#[test]
fn codec_yields_each_reply_raw() {
    let replies: [&[u8]; 10] = [
        b"+OK\r\n",
        b"-MOVED 3999 127.0.0.1:6381\r\n",
        b":-7\r\n",
        b":0\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"$6\r\n\r\n\x00\r\n\xff\r\n",
        b"*3\r\n*2\r\n:1\r\n$-1\r\n+x\r\n*-1\r\n",
        b"$0\r\n\r\n",
    ];
    let wire = replies.concat();
    let out = decode_all(&wire).unwrap();
    assert_eq!(out.len(), replies.len());
    for (got, want) in out.iter().zip(replies) {
        assert_eq!(&got.bytes()[..], want);
    }
}

#[test]
fn reply_is_a_slice_of_the_read_buffer() {
    let mut src = BytesMut::from(&b"$3\r\nabc\r\n"[..]);
    let ptr = src.as_ptr();
    let r = ReplyCodec::new(Limits::default())
        .decode(&mut src)
        .unwrap()
        .unwrap();
    assert_eq!(r.bytes().as_ptr(), ptr);
}

#[test]
fn incomplete_at_every_cut() {
    let wire = b"*2\r\n$5\r\nhello\r\n*1\r\n:-12\r\n";
    let mut codec = ReplyCodec::new(Limits::default());
    let mut src = BytesMut::new();
    for &b in wire {
        assert!(codec.decode(&mut src).unwrap().is_none());
        src.extend_from_slice(&[b]);
    }
    let r = codec.decode(&mut src).unwrap().unwrap();
    assert_eq!(&r.into_bytes()[..], wire);
}

#[test]
fn error_paths() {
    let kind = |input: &[u8]| decode_all(input).unwrap_err().kind();
    assert_eq!(kind(b"x\r\n"), "invalid_type_byte");
    assert_eq!(kind(b"\r\n"), "invalid_type_byte");
    assert_eq!(kind(b":abc\r\n"), "invalid_integer");
    assert_eq!(kind(b":-0\r\n"), "invalid_integer");
    assert_eq!(kind(b":9223372036854775808\r\n"), "invalid_integer");
    assert_eq!(kind(b":11111111111111111111111"), "invalid_integer");
    assert_eq!(kind(b"$-2\r\n"), "invalid_bulk_length");
    assert_eq!(kind(b"$3x\r\n"), "invalid_bulk_length");
    assert_eq!(kind(b"$1\r\nabc"), "bulk_not_terminated");
    assert_eq!(kind(b"*-2\r\n"), "invalid_multibulk_length");
    assert_eq!(kind(b"*\r\n"), "invalid_multibulk_length");
    assert_eq!(kind(b"*2\r\n:1\r\n?"), "invalid_type_byte");
}

#[test]
fn nesting_limit() {
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let nested = |depth: usize| {
        let mut wire = b"*1\r\n".repeat(depth);
        wire.extend_from_slice(b":1\r\n");
        BytesMut::from(&wire[..])
    };
    let mut codec = ReplyCodec::new(limits);
    assert!(codec.decode(&mut nested(3)).unwrap().is_some());
    assert!(matches!(
        codec.decode(&mut nested(4)),
        Err(ProtocolError::TooDeep(3))
    ));
    let mut default = ReplyCodec::new(Limits::default());
    assert!(default.decode(&mut nested(16)).unwrap().is_some());
    assert!(default.decode(&mut nested(17)).is_err());
}

#[test]
fn big_bulk_in_small_reads_is_not_rescanned() {
    let payload = vec![b'\r'; 8 << 20];
    let mut wire = BytesMut::new();
    put_bulk(&mut wire, &payload);
    let mut codec = ReplyCodec::new(Limits::default());
    let mut src = BytesMut::new();
    let mut reads = 0;
    for chunk in wire.chunks(64 * 1024) {
        src.extend_from_slice(chunk);
        reads += 1;
        if let Some(r) = codec.decode(&mut src).unwrap() {
            assert_eq!(r.bytes().len(), wire.len());
            assert_eq!(reads, wire.len().div_ceil(64 * 1024));
            return;
        }
        // Still on the header: the payload is never searched for line ends.
        assert_eq!(codec.scanner.cursor.pos, 0);
        assert_eq!(codec.scanner.cursor.need, wire.len());
    }
    panic!("never completed");
}

#[test]
fn huge_declared_bulk_reserves_one_chunk() {
    let mut src = BytesMut::from(&b"$536870912\r\n"[..]);
    let mut codec = ReplyCodec::new(Limits::default());
    assert!(codec.decode(&mut src).unwrap().is_none());
    assert!(src.capacity() <= 2 * RESERVE_CHUNK);
    assert!(codec
        .decode(&mut BytesMut::from(&b"$536870913\r\n"[..]))
        .is_err());
}

#[test]
fn frame_limit() {
    let limits = Limits {
        max_frame_len: 10,
        ..Limits::default()
    };
    let mut codec = ReplyCodec::new(limits);
    assert!(codec
        .decode(&mut BytesMut::from(&b"$3\r\nabc\r\n"[..]))
        .unwrap()
        .is_some());
    assert!(matches!(
        codec.decode(&mut BytesMut::from(&b"$5\r\n"[..])),
        Err(ProtocolError::FrameTooLarge)
    ));
    assert!(matches!(
        codec.decode(&mut BytesMut::from(&b"+abcdefghij"[..])),
        Err(ProtocolError::FrameTooLarge)
    ));
}

#[test]
fn helpers_build_canonical_replies() {
    assert_eq!(&Reply::ok().0[..], b"+OK\r\n");
    assert!(Reply::ok().is_ok());
    assert!(!reply(b"+OKAY\r\n").is_ok());
    assert_eq!(&Reply::simple("PONG").0[..], b"+PONG\r\n");
    assert_eq!(&Reply::error_line("ERR x\r\ny").0[..], b"-ERR x  y\r\n");
    assert_eq!(&Reply::integer_reply(-3).0[..], b":-3\r\n");
    assert_eq!(&Reply::bulk(b"a\r\n").0[..], b"$3\r\na\r\n\r\n");
    assert_eq!(&Reply::null_bulk().0[..], b"$-1\r\n");
    let array = Reply::array(&[Reply::integer_reply(1), Reply::null_bulk()]);
    assert_eq!(&array.0[..], b"*2\r\n:1\r\n$-1\r\n");
    assert_eq!(&Reply::array(&[]).0[..], b"*0\r\n");
    let from_frame = Reply::from(&Frame::Array(vec![Frame::Integer(1), Frame::Null]));
    assert_eq!(from_frame, array);
}

#[test]
fn helpers_speak_the_clients_protocol() {
    use super::Proto::{Resp2, Resp3};
    let pair = [Reply::bulk(b"k"), Reply::integer_reply(1)];
    assert_eq!(&Reply::null(Resp2).0[..], b"$-1\r\n");
    assert_eq!(&Reply::null(Resp3).0[..], b"_\r\n");
    assert_eq!(&Reply::map(Resp2, &pair).0[..], b"*2\r\n$1\r\nk\r\n:1\r\n");
    assert_eq!(&Reply::map(Resp3, &pair).0[..], b"%1\r\n$1\r\nk\r\n:1\r\n");
    assert_eq!(&Reply::push(Resp2, &pair).0[..], b"*2\r\n$1\r\nk\r\n:1\r\n");
    assert_eq!(&Reply::push(Resp3, &pair).0[..], b">2\r\n$1\r\nk\r\n:1\r\n");
    assert_eq!(&Reply::text(Resp2, b"a\nb").0[..], b"$3\r\na\nb\r\n");
    assert_eq!(&Reply::text(Resp3, b"a\nb").0[..], b"=7\r\ntxt:a\nb\r\n");
    for reply in [
        Reply::map(Resp3, &pair),
        Reply::text(Resp3, b"x"),
        Reply::null(Resp3),
    ] {
        assert!(reply.parse(&Limits::default()).is_ok(), "{reply:?}");
    }
}

#[test]
fn accessors() {
    let moved = reply(b"-MOVED 3999 127.0.0.1:6381\r\n");
    assert_eq!(moved.error(), Some(&b"MOVED 3999 127.0.0.1:6381"[..]));
    assert_eq!(Reply::ok().error(), None);
    assert_eq!(reply(b":-42\r\n").integer(), Some(-42));
    assert_eq!(reply(b":x\r\n").integer(), None);
    assert_eq!(reply(b"+1\r\n").integer(), None);
}

#[test]
fn array_elements_are_zero_copy_slices() {
    let r = reply(b"*4\r\n$2\r\nab\r\n*2\r\n:1\r\n:2\r\n$-1\r\n-ERR e\r\n");
    let elements = r.array_elements().unwrap();
    let raw: Vec<&[u8]> = elements.iter().map(|e| &e.bytes()[..]).collect();
    assert_eq!(
        raw,
        [
            &b"$2\r\nab\r\n"[..],
            b"*2\r\n:1\r\n:2\r\n",
            b"$-1\r\n",
            b"-ERR e\r\n"
        ]
    );
    assert_eq!(elements[0].bytes().as_ptr(), r.bytes()[4..].as_ptr());
    assert_eq!(elements[1].array_elements().unwrap().len(), 2);
    assert_eq!(reply(b"*0\r\n").array_elements(), Some(vec![]));
    assert_eq!(reply(b"*-1\r\n").array_elements(), None);
    assert_eq!(reply(b"+OK\r\n").array_elements(), None);
    assert_eq!(reply(b"*2\r\n:1\r\n").array_elements(), None);
}

#[test]
fn parse_requires_exactly_one_frame() {
    let limits = Limits::default();
    assert_eq!(
        reply(b"*2\r\n:1\r\n$1\r\nx\r\n").parse(&limits).unwrap(),
        Frame::Array(vec![
            Frame::Integer(1),
            Frame::Bulk(Bytes::from_static(b"x"))
        ])
    );
    assert!(matches!(
        reply(b"*2\r\n:1\r\n").parse(&limits),
        Err(ProtocolError::Incomplete)
    ));
    assert!(matches!(
        reply(b":1\r\n:2\r\n").parse(&limits),
        Err(ProtocolError::TrailingBytes)
    ));
}

#[test]
fn bulk_payloads_and_nulls_are_read_from_the_bytes() {
    assert_eq!(reply(b"$2\r\n17\r\n").bulk_payload(), Some(&b"17"[..]));
    assert_eq!(reply(b"$0\r\n\r\n").bulk_payload(), Some(&b""[..]));
    assert_eq!(
        reply(b"$4\r\na\r\nb\r\n").bulk_payload(),
        Some(&b"a\r\nb"[..])
    );
    for other in [
        &b"$-1\r\n"[..],
        b"$3\r\n17\r\n",
        b"+17\r\n",
        b":17\r\n",
        b"*1\r\n$1\r\na\r\n",
    ] {
        assert_eq!(reply(other).bulk_payload(), None, "{other:?}");
    }
    for null in [&b"$-1\r\n"[..], b"*-1\r\n", b"_\r\n"] {
        assert!(reply(null).is_null(), "{null:?}");
    }
    for value in [&b"$0\r\n\r\n"[..], b"*0\r\n", b"+OK\r\n", b":0\r\n"] {
        assert!(!reply(value).is_null(), "{value:?}");
    }
}
