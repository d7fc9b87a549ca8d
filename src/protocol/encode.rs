//! Writing RESP2. Every writer appends to a caller's buffer so batches cost one allocation.

use bytes::{BufMut, BytesMut};

/// Append a RESP multibulk of these args.
///
/// Takes any iterator (not only exact-size ones) so callers can `chain` a command name onto
/// keys; only iterators that cannot tell their length up front are collected first.
///
/// # Panics
/// If the iterator reports an exact `size_hint` and then yields a different number of items,
/// which would otherwise put a wrong count on the wire.
pub fn encode_command<'a>(args: impl IntoIterator<Item = &'a [u8]>, dst: &mut BytesMut) {
    let args = args.into_iter();
    match args.size_hint() {
        (low, Some(high)) if low == high => encode_command_of(low, args, dst),
        _ => {
            let args: Vec<&[u8]> = args.collect();
            encode_command_of(args.len(), args, dst);
        }
    }
}

/// [`encode_command`] for a caller that knows how many `args` there are: a key-splitting
/// caller's flattened fields cannot tell, and would otherwise be collected into a vector first.
///
/// # Panics
/// If `args` yields other than `len` items.
pub fn encode_command_of<'a>(
    len: usize,
    args: impl IntoIterator<Item = &'a [u8]>,
    dst: &mut BytesMut,
) {
    put_header(dst, b'*', len);
    let mut written = 0;
    for arg in args {
        put_bulk(dst, arg);
        written += 1;
    }
    assert_eq!(
        written, len,
        "the command has {written} arguments, not {len}"
    );
}

/// Bytes `encode_command` will write, so callers can reserve once.
pub(crate) fn command_len<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> usize {
    let mut count = 0;
    let body: usize = args
        .into_iter()
        .inspect(|_| count += 1)
        .map(|arg| bulk_len(arg.len()))
        .sum();
    header_len(count) + body
}

/// `"{prefix}{n}\r\n"`, the header of a bulk or an array.
pub(crate) fn put_header(dst: &mut BytesMut, prefix: u8, n: usize) {
    dst.reserve(header_len(n));
    dst.put_u8(prefix);
    put_decimal(dst, n as u64, false);
    dst.put_slice(b"\r\n");
}

pub(crate) fn put_bulk(dst: &mut BytesMut, payload: &[u8]) {
    put_header(dst, b'$', payload.len());
    dst.reserve(payload.len() + 2);
    dst.put_slice(payload);
    dst.put_slice(b"\r\n");
}

pub(crate) fn put_integer(dst: &mut BytesMut, n: i64) {
    dst.reserve(23);
    dst.put_u8(b':');
    put_decimal(dst, n.unsigned_abs(), n < 0);
    dst.put_slice(b"\r\n");
}

/// `"{prefix}{text}\r\n"` with CR and LF turned into spaces, as Redis does for error texts, so
/// no text can end the line early and inject a frame.
pub(crate) fn put_line(dst: &mut BytesMut, prefix: u8, text: &[u8]) {
    dst.reserve(text.len() + 3);
    dst.put_u8(prefix);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        dst.extend(text.iter().map(|&b| match b {
            b'\r' | b'\n' => b' ',
            b => b,
        }));
    } else {
        dst.put_slice(text);
    }
    dst.put_slice(b"\r\n");
}

/// Size of `put_header(_, _, n)`.
pub(crate) fn header_len(n: usize) -> usize {
    1 + decimal_len(n as u64) + 2
}

/// Size of `put_bulk` for a payload of `len` bytes.
pub(crate) fn bulk_len(len: usize) -> usize {
    header_len(len) + len + 2
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Formats on the stack: `write!` would go through `fmt` machinery on every header.
fn put_decimal(dst: &mut BytesMut, mut n: u64, negative: bool) {
    let mut digits = [0u8; 21];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        digits[at] = b'-';
    }
    dst.put_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(args: &[&[u8]]) -> BytesMut {
        let mut dst = BytesMut::new();
        encode_command(args.iter().copied(), &mut dst);
        assert_eq!(dst.len(), command_len(args.iter().copied()));
        dst
    }

    #[test]
    fn commands_are_multibulks() {
        assert_eq!(
            &encoded(&[b"SET", b"k", b"v\r\n"])[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n"
        );
        assert_eq!(&encoded(&[b"PING"])[..], b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(&encoded(&[b""])[..], b"*1\r\n$0\r\n\r\n");
        assert_eq!(&encoded(&[])[..], b"*0\r\n");
    }

    #[test]
    fn inexact_iterators_are_counted_first() {
        let keys = [b"a".as_slice(), b"b", b"c"];
        let mut dst = BytesMut::new();
        let odd = keys.iter().copied().filter(|k| k != b"b");
        encode_command(std::iter::once(b"MGET".as_slice()).chain(odd), &mut dst);
        assert_eq!(&dst[..], b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nc\r\n");
    }

    #[test]
    fn a_told_length_is_written_and_checked() {
        let fields = [[b"k1".as_slice(), b"v1"], [b"k2", b"v2"]];
        let mut dst = BytesMut::new();
        let flat = fields.iter().flatten().copied();
        encode_command_of(
            5,
            std::iter::once(b"MSET".as_slice()).chain(flat.clone()),
            &mut dst,
        );
        assert_eq!(
            &dst[..],
            b"*5\r\n$4\r\nMSET\r\n$2\r\nk1\r\n$2\r\nv1\r\n$2\r\nk2\r\n$2\r\nv2\r\n"
        );
        let short = std::panic::catch_unwind(|| encode_command_of(6, flat, &mut BytesMut::new()));
        assert!(short.is_err(), "a wrong count must never reach the wire");
    }

    #[test]
    fn integers_cover_the_whole_range() {
        for (n, text) in [
            (0, &b":0\r\n"[..]),
            (-1, b":-1\r\n"),
            (10, b":10\r\n"),
            (i64::MAX, b":9223372036854775807\r\n"),
            (i64::MIN, b":-9223372036854775808\r\n"),
        ] {
            let mut dst = BytesMut::new();
            put_integer(&mut dst, n);
            assert_eq!(&dst[..], text);
        }
    }

    #[test]
    fn lines_cannot_inject_frames() {
        let mut dst = BytesMut::new();
        put_line(&mut dst, b'-', b"ERR a\r\n+OK");
        assert_eq!(&dst[..], b"-ERR a  +OK\r\n");
    }

    #[test]
    fn lengths_are_exact() {
        for n in [0usize, 9, 10, 99, 100, 12345, usize::MAX] {
            let mut dst = BytesMut::new();
            put_header(&mut dst, b'$', n);
            assert_eq!(dst.len(), header_len(n));
        }
    }
}
