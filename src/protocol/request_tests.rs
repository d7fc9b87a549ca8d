//! Tests of the request codec: RESP and inline commands in any split of reads, and its limits.

use super::super::limits::RESERVE_CHUNK;
use super::*;

fn codec() -> RequestCodec {
    RequestCodec::new(Limits::default())
}

/// Every request in `input`, fed in one piece; panics on a protocol error.
fn decode_all(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut codec = codec();
    let mut src = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(req) = codec.decode(&mut src).unwrap() {
        out.push(req.args().iter().map(|a| a.to_vec()).collect());
    }
    out
}

fn error_of(input: &[u8]) -> ProtocolError {
    error_with(Limits::default(), input)
}

fn error_with(limits: Limits, input: &[u8]) -> ProtocolError {
    let mut codec = RequestCodec::new(limits);
    let mut src = BytesMut::from(input);
    loop {
        match codec.decode(&mut src) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no error for {:?}", String::from_utf8_lossy(input)),
            Err(e) => return e,
        }
    }
}

fn text(input: &[u8]) -> String {
    error_of(input).to_string()
}

fn waits(limits: Limits, input: &[u8]) -> bool {
    let mut src = BytesMut::from(input);
    matches!(RequestCodec::new(limits).decode(&mut src), Ok(None))
}

#[test]
fn multibulk_is_zero_copy_with_exact_raw() {
    let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n";
    let mut src = BytesMut::from(&wire[..]);
    src.extend_from_slice(b"*1\r\n$4\r\nP");
    let req = codec().decode(&mut src).unwrap().unwrap();
    let raw = req.raw().unwrap();
    assert_eq!(&raw[..], wire);
    assert_eq!(req.name(), b"SET");
    assert_eq!(&req.args()[2][..], b"a\r\nb");
    assert_eq!(req.args()[0].as_ptr(), raw[8..].as_ptr());
    assert_eq!(req.to_resp(), raw);
    assert_eq!(&src[..], b"*1\r\n$4\r\nP");
}

#[test]
fn binary_and_empty_arguments() {
    let wire = b"*3\r\n$4\r\nECHO\r\n$0\r\n\r\n$5\r\n\x00\r\n\xff\n\r\n";
    let args = decode_all(wire);
    assert_eq!(
        args,
        vec![vec![b"ECHO".to_vec(), vec![], b"\x00\r\n\xff\n".to_vec()]]
    );
}

#[test]
fn incomplete_at_every_cut_then_complete() {
    let wire = b"*2\r\n$4\r\nECHO\r\n$3\r\nhey\r\n";
    let mut codec = codec();
    let mut src = BytesMut::new();
    for (i, &b) in wire.iter().enumerate() {
        assert!(codec.decode(&mut src).unwrap().is_none(), "cut {i}");
        src.extend_from_slice(&[b]);
    }
    let req = codec.decode(&mut src).unwrap().unwrap();
    assert_eq!(&req.raw().unwrap()[..], wire);
    assert!(src.is_empty());
}

#[test]
fn pipelined_requests_decode_one_by_one() {
    let mut src = BytesMut::new();
    for i in 0..5000 {
        let n = i.to_string();
        encode_command([b"GET".as_slice(), n.as_bytes()], &mut src);
        if i % 7 == 0 {
            src.extend_from_slice(b"PING\r\n");
        }
    }
    let mut codec = codec();
    let (mut gets, mut pings) = (0, 0);
    while let Some(req) = codec.decode(&mut src).unwrap() {
        match req.name() {
            b"GET" => {
                assert_eq!(req.args()[1], gets.to_string());
                gets += 1;
            }
            _ => pings += 1,
        }
    }
    assert_eq!((gets, pings), (5000, 715));
}

#[test]
fn skipped_frames_do_not_stall() {
    let ping = vec![vec![b"PING".to_vec()]];
    for input in [
        &b"*0\r\nPING\r\n"[..],
        b"*-1\r\nPING\r\n",
        b"*-5\r\nPING\r\n",
        b"\r\n\r\nPING\r\n",
        b"\n  \t\r\nPING\r\n",
        b"PING\n",
    ] {
        assert_eq!(
            decode_all(input),
            ping,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn inline_commands_follow_sdssplitargs() {
    assert_eq!(
        decode_all(b"SET \"a b\" 'c\\'d'\r\nECHO \"\\x41\\n\"\n"),
        vec![
            vec![b"SET".to_vec(), b"a b".to_vec(), b"c'd".to_vec()],
            vec![b"ECHO".to_vec(), b"A\n".to_vec()],
        ]
    );
    let mut src = BytesMut::from(&b"GET key\r\n"[..]);
    let req = codec().decode(&mut src).unwrap().unwrap();
    assert!(req.raw().is_none());
    assert_eq!(&req.to_resp()[..], b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
    for bad in [&b"PING \"a\r\n"[..], b"ECHO 'a\r\n", b"ECHO \"a\"b\r\n"] {
        assert_eq!(text(bad), "Protocol error: unbalanced quotes in request");
    }
}

#[test]
fn redis_error_texts() {
    let invalid_mb = "Protocol error: invalid multibulk length";
    let invalid_bulk = "Protocol error: invalid bulk length";
    for input in [
        &b"*abc\r\n"[..],
        b"*\r\n",
        b"*+1\r\n",
        b"*01\r\n",
        b"*99999999999999999999\r\n",
        b"*1\n$4\nPING\r\n",
        b"*1\rX\r\n",
    ] {
        assert_eq!(
            text(input),
            invalid_mb,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    for input in [
        &b"*1\r\n$abc\r\n"[..],
        b"*1\r\n$-1\r\n",
        b"*1\r\n$-0\r\n",
        b"*1\r\n$+4\r\n",
        b"*1\r\n$ 4\r\n",
        b"*1\r\n$04\r\n",
        b"*1\r\n$\r\n",
        b"*1\r\n$99999999999999999999\r\n",
        b"*1\r\n$536870913\r\n",
    ] {
        assert_eq!(
            text(input),
            invalid_bulk,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(
        text(b"*2\r\n:1\r\n"),
        "Protocol error: expected '$', got ':'"
    );
    assert_eq!(
        text(b"*1\r\n+PING\r\n"),
        "Protocol error: expected '$', got '+'"
    );
    assert_eq!(
        text(b"*1\r\n*1\r\n"),
        "Protocol error: expected '$', got '*'"
    );
    assert_eq!(
        text(b"*2\r\n$4\r\nECHO\r\n:"),
        "Protocol error: expected '$', got ':'",
        "the type byte alone is enough to fail"
    );
}

#[test]
fn bulk_must_end_with_crlf() {
    for input in [
        &b"*1\r\n$4\r\nPINGxx"[..],
        b"*1\r\n$4\r\nPING\rx",
        b"*1\r\n$4\r\nPING\n\r",
    ] {
        assert!(matches!(error_of(input), ProtocolError::BulkNotTerminated));
    }
}

#[test]
fn limits_on_counts_and_lengths() {
    let limits = Limits {
        max_bulk_len: 4,
        max_array_len: 2,
        ..Limits::default()
    };
    assert!(waits(limits, b"*2\r\n$4\r\n"));
    assert!(matches!(
        error_with(limits, b"*3\r\n"),
        ProtocolError::InvalidMultibulkLength
    ));
    assert!(matches!(
        error_with(limits, b"*1\r\n$5\r\n"),
        ProtocolError::InvalidBulkLength
    ));
}

#[test]
fn unterminated_lines_fail_once_over_the_limit() {
    let limits = Limits {
        max_inline_len: 8,
        ..Limits::default()
    };
    assert!(waits(limits, b"GET abcd"));
    assert!(matches!(
        error_with(limits, b"GET abcde"),
        ProtocolError::TooBigInline
    ));
    assert!(matches!(
        error_with(limits, b"GET abcde\r\n"),
        ProtocolError::TooBigInline
    ));
    let mut exactly_max = BytesMut::from(&b"GET abc\r\n"[..]);
    let req = RequestCodec::new(limits).decode(&mut exactly_max).unwrap();
    assert_eq!(req.unwrap().args().len(), 2);
    assert!(waits(limits, b"*0000000"));
    assert!(matches!(
        error_with(limits, b"*00000000"),
        ProtocolError::TooBigMultibulkCount
    ));
    assert!(waits(limits, b"*1\r\n$0000000"));
    assert!(matches!(
        error_with(limits, b"*1\r\n$00000000"),
        ProtocolError::TooBigBulkCount
    ));
    assert_eq!(
        error_with(Limits::default(), &[b'*'; 65 * 1024]).to_string(),
        "Protocol error: too big mbulk count string"
    );
}

#[test]
fn frame_limit_is_checked_before_the_bulk_arrives() {
    let limits = Limits {
        max_frame_len: 37,
        ..Limits::default()
    };
    let mut ok = BytesMut::new();
    encode_command([b"SET".as_slice(), b"k", b"0123456789"], &mut ok);
    assert_eq!(ok.len(), 37);
    assert!(RequestCodec::new(limits).decode(&mut ok).unwrap().is_some());
    assert!(matches!(
        error_with(limits, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$11\r\n"),
        ProtocolError::FrameTooLarge
    ));
    assert!(matches!(
        error_with(limits, b"*1\r\n$1000000\r\n"),
        ProtocolError::FrameTooLarge
    ));
}

#[test]
fn huge_declared_bulk_reserves_one_chunk() {
    let mut src = BytesMut::from(&b"*1\r\n$536870912\r\nab"[..]);
    assert!(codec().decode(&mut src).unwrap().is_none());
    assert!(src.capacity() <= 2 * RESERVE_CHUNK);
}

#[test]
fn big_bulk_in_small_reads() {
    let payload = vec![b'x'; 4 << 20];
    let mut wire = BytesMut::new();
    encode_command([b"SET".as_slice(), b"k", &payload], &mut wire);
    let mut codec = codec();
    let mut src = BytesMut::new();
    let mut decoded = None;
    for chunk in wire.chunks(64 * 1024) {
        assert!(decoded.is_none());
        src.extend_from_slice(chunk);
        decoded = codec.decode(&mut src).unwrap();
    }
    let req = decoded.unwrap();
    assert_eq!(req.args()[2].len(), payload.len());
    assert_eq!(req.raw().unwrap().len(), wire.len());
}

#[test]
fn many_arguments_in_small_reads_are_indexed_once() {
    let mut wire = BytesMut::new();
    let keys: Vec<String> = (0..20_000).map(|i| format!("key:{i}")).collect();
    encode_command(
        std::iter::once(b"MGET".as_slice()).chain(keys.iter().map(|k| k.as_bytes())),
        &mut wire,
    );
    let mut codec = codec();
    let mut src = BytesMut::new();
    let mut decoded = None;
    for chunk in wire.chunks(100) {
        src.extend_from_slice(chunk);
        decoded = codec.decode(&mut src).unwrap();
        if decoded.is_none() {
            assert!(
                codec.pos >= src.len().saturating_sub(120),
                "progress is kept"
            );
        }
    }
    assert_eq!(decoded.unwrap().args().len(), 20_001);
}

#[test]
fn from_args_encodes_fresh() {
    let req = Request::from_args(vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")]);
    assert!(req.raw().is_none());
    assert_eq!(&req.to_resp()[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    let mut dst = BytesMut::from(&b"x"[..]);
    req.encode(&mut dst);
    assert_eq!(&dst[..], b"x*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    assert_eq!(req.into_args().len(), 2);
}

#[test]
#[should_panic(expected = "command name")]
fn from_args_rejects_empty() {
    Request::from_args(Vec::new());
}

#[test]
fn codec_starts_fresh_after_an_error() {
    let mut codec = codec();
    let mut src = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n:"[..]);
    assert!(codec.decode(&mut src).is_err());
    let mut src = BytesMut::from(&b"PING\r\n"[..]);
    assert_eq!(codec.decode(&mut src).unwrap().unwrap().name(), b"PING");
}

#[test]
fn requests_are_sent_on_as_the_client_wrote_them() {
    let mut src = BytesMut::from(&b"*1\r\n$4\r\nping\r\nGET k\r\n"[..]);
    let mut codec = codec();
    let mut dst = BytesMut::new();
    while let Some(request) = codec.decode(&mut src).unwrap() {
        dst.extend_from_slice(&request.to_resp());
    }
    // RESP stays byte for byte; an inline command is encoded as RESP.
    assert_eq!(
        &dst[..],
        b"*1\r\n$4\r\nping\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    );
}
