//! Property tests: whatever the read boundaries, both codecs must see the same frames and the
//! same errors as when everything arrives at once (redis-rs `tests/parser.rs` style).

use std::fmt::Display;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::{encode_command, Frame, Limits, Reply, ReplyCodec, Request, RequestCodec};

/// Few cases so `cargo test` stays fast; `PROPTEST_CASES=5000` for a deeper run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Simple-string and error text: anything but CR and LF, which RESP2 cannot carry there.
fn line_text() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(prop_oneof![0u8..=9, 11u8..=12, 14u8..=255], 0..12).prop_map(Bytes::from)
}

/// Bulk payloads, often full of the bytes a sloppy parser would take for structure.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(prop::sample::select(b"\r\n$*:+-0\" '\\".to_vec()), 0..40),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_text().prop_map(Frame::Simple),
        line_text().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        prop_oneof![Just(0i64), Just(-1), Just(i64::MIN), Just(i64::MAX)].prop_map(Frame::Integer),
        payload().prop_map(|p| Frame::Bulk(Bytes::from(p))),
        Just(Frame::Null),
        Just(Frame::NullArray),
        Just(Frame::Nil),
        any::<bool>().prop_map(Frame::Boolean),
        any::<f64>().prop_map(|d| Frame::Double(Bytes::from(d.to_string()))),
        any::<i128>().prop_map(|n| Frame::BigNumber(Bytes::from(n.to_string()))),
        payload().prop_map(|p| Frame::BlobError(Bytes::from(p))),
        payload().prop_map(|p| Frame::Verbatim(Bytes::from([b"txt:".as_slice(), &p].concat()))),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        let items = move || prop::collection::vec(inner.clone(), 0..6);
        prop_oneof![
            items().prop_map(Frame::Array),
            items().prop_map(Frame::Set),
            items().prop_map(Frame::Push),
            // Maps hold pairs; an attribute is pairs and then the value it annotates.
            items().prop_map(|mut v| {
                v.truncate(v.len() / 2 * 2);
                Frame::Map(v)
            }),
            items().prop_map(|mut v| {
                let value = v.pop().unwrap_or(Frame::Nil);
                v.truncate(v.len() / 2 * 2);
                v.push(value);
                Frame::Attribute(v)
            }),
        ]
    })
}

/// Read sizes, cycled: mostly tiny, sometimes large.
fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![3 => 1usize..8, 1 => 8usize..200], 1..16)
}

/// Everything the codec yields when `data` arrives in reads of `sizes` (cycled), up to and
/// including its first error.
fn feed<D>(mut codec: D, data: &[u8], sizes: &[usize]) -> (Vec<D::Item>, Option<String>)
where
    D: Decoder,
    D::Error: Display,
{
    let mut src = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = data;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, tail) = rest.split_at(size.min(rest.len()));
        src.extend_from_slice(read);
        rest = tail;
        loop {
            match codec.decode(&mut src) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Some(e.to_string())),
            }
        }
    }
    (items, None)
}

fn request_codec() -> RequestCodec {
    RequestCodec::new(Limits::default())
}

fn reply_codec() -> ReplyCodec {
    ReplyCodec::new(Limits::default())
}

type Seen = (Vec<Vec<u8>>, Option<Vec<u8>>);

fn seen(request: &Request) -> Seen {
    (
        request.args().iter().map(|a| a.to_vec()).collect(),
        request.raw().map(|r| r.to_vec()),
    )
}

/// An inline rendering Redis would split back into `args`.
fn inline_line(args: &[Vec<u8>], separators: &[&str], crlf: bool) -> Vec<u8> {
    let mut line = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            line.extend_from_slice(separators[i % separators.len()].as_bytes());
        }
        if !arg.is_empty() && arg.iter().all(u8::is_ascii_alphanumeric) {
            line.extend_from_slice(arg);
            continue;
        }
        line.push(b'"');
        for &b in arg {
            match b {
                b'"' | b'\\' => line.extend_from_slice(&[b'\\', b]),
                b' '..=b'~' => line.push(b),
                _ => line.extend_from_slice(format!("\\x{b:02X}").as_bytes()),
            }
        }
        line.push(b'"');
    }
    line.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    line
}

/// Input that is mostly almost-RESP, to reach the error paths as well as the happy ones.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec![
        &b"*"[..],
        b"$",
        b":",
        b"+",
        b"-",
        b"1",
        b"2",
        b"3",
        b"0",
        b"-1",
        b"\r\n",
        b"\r",
        b"\n",
        b"abc",
        b"\"",
        b"'",
        b"\\",
        b" ",
        b"*2\r\n",
        b"$3\r\n",
        b"x",
    ]);
    prop_oneof![
        prop::collection::vec(token, 0..40).prop_map(|t| t.concat()),
        prop::collection::vec(any::<u8>(), 0..80),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frame_encode_parse_is_byte_exact(frame in frame()) {
        let mut wire = BytesMut::new();
        frame.encode(&mut wire);
        let wire = wire.freeze();
        let parsed = Frame::parse(&wire, &Limits::default()).unwrap();
        prop_assert_eq!(parsed, Some((frame.clone(), wire.len())));
        let mut again = BytesMut::new();
        Reply(wire.clone()).parse(&Limits::default()).unwrap().encode(&mut again);
        prop_assert_eq!(&again[..], &wire[..]);
    }

    #[test]
    fn reply_codec_ignores_read_boundaries(
        frames in prop::collection::vec(frame(), 1..8),
        sizes in read_sizes(),
    ) {
        let encoded: Vec<Reply> = frames.iter().map(Reply::from).collect();
        let wire: Vec<u8> = encoded.iter().flat_map(|r| r.bytes().to_vec()).collect();
        let (replies, error) = feed(reply_codec(), &wire, &sizes);
        prop_assert_eq!(error, None);
        prop_assert_eq!(&replies, &encoded);
        for (reply, frame) in replies.iter().zip(&frames) {
            prop_assert_eq!(&reply.parse(&Limits::default()).unwrap(), frame);
        }
    }

    #[test]
    fn request_codec_ignores_read_boundaries(
        commands in prop::collection::vec(prop::collection::vec(payload(), 1..6), 1..8),
        sizes in read_sizes(),
    ) {
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        for args in &commands {
            let start = wire.len();
            encode_command(args.iter().map(|a| &a[..]), &mut wire);
            expected.push((args.clone(), Some(wire[start..].to_vec())));
        }
        let (requests, error) = feed(request_codec(), &wire, &sizes);
        prop_assert_eq!(error, None);
        prop_assert_eq!(requests.iter().map(seen).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn inline_commands_round_trip(
        commands in prop::collection::vec(prop::collection::vec(payload(), 1..5), 1..5),
        separators in prop::collection::vec(prop::sample::select(vec![" ", "  ", "\t", " \t "]), 1..4),
        crlf in any::<bool>(),
        sizes in read_sizes(),
    ) {
        let wire: Vec<u8> = commands
            .iter()
            .flat_map(|args| inline_line(args, &separators, crlf))
            .collect();
        let (requests, error) = feed(request_codec(), &wire, &sizes);
        prop_assert_eq!(error, None);
        let expected: Vec<Seen> = commands.iter().map(|args| (args.clone(), None)).collect();
        prop_assert_eq!(requests.iter().map(seen).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn request_outcome_does_not_depend_on_reads(data in noise(), sizes in read_sizes()) {
        let (whole, whole_err) = feed(request_codec(), &data, &[data.len().max(1)]);
        let (split, split_err) = feed(request_codec(), &data, &sizes);
        prop_assert_eq!(whole.iter().map(seen).collect::<Vec<_>>(), split.iter().map(seen).collect::<Vec<_>>());
        prop_assert_eq!(whole_err, split_err);
    }

    #[test]
    fn reply_outcome_does_not_depend_on_reads(data in noise(), sizes in read_sizes()) {
        let (whole, whole_err) = feed(reply_codec(), &data, &[data.len().max(1)]);
        let (split, split_err) = feed(reply_codec(), &data, &sizes);
        prop_assert_eq!(whole, split);
        prop_assert_eq!(whole_err, split_err);
    }
}

/// Small limits, so random input runs into every one of them, often several at once.
fn tight(max_frame_len: usize) -> Limits {
    Limits {
        max_bulk_len: 5,
        max_array_len: 3,
        max_inline_len: 6,
        max_depth: 2,
        max_frame_len,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn limit_errors_do_not_depend_on_reads(
        data in noise(),
        sizes in read_sizes(),
        max_frame_len in 3usize..60,
    ) {
        let limits = tight(max_frame_len);
        let whole = feed(RequestCodec::new(limits), &data, &[data.len().max(1)]);
        let split = feed(RequestCodec::new(limits), &data, &sizes);
        prop_assert_eq!(
            whole.0.iter().map(seen).collect::<Vec<_>>(),
            split.0.iter().map(seen).collect::<Vec<_>>()
        );
        prop_assert_eq!(whole.1, split.1);
        let whole = feed(ReplyCodec::new(limits), &data, &[data.len().max(1)]);
        let split = feed(ReplyCodec::new(limits), &data, &sizes);
        prop_assert_eq!(whole, split);
    }
}
