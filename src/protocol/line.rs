//! Line and number primitives shared by both codecs.

/// Where the CRLF ending a line is, searching from `from`.
///
/// `Err(resume)` means no CRLF yet; `resume` is where a later search must restart so bytes are
/// never scanned twice (a trailing lone `\r` is kept, as its `\n` may be in the next read). A
/// `\r` not followed by `\n` belongs to the line, as in hiredis.
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Result<usize, usize> {
    let mut at = from;
    while let Some(off) = buf
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\r'))
    {
        let cr = at + off;
        match buf.get(cr + 1) {
            Some(b'\n') => return Ok(cr),
            Some(_) => at = cr + 1,
            None => return Err(cr),
        }
    }
    Err(buf.len().max(from))
}

/// Parses a decimal the way Redis `string2ll` does: optional `-`, no `+`, no leading zeros, no
/// `-0`, no spaces, within `i64`. Being exactly as strict as Redis keeps us from accepting
/// frames Redis would reject.
pub(crate) fn parse_int(digits: &[u8]) -> Option<i64> {
    let (negative, body) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    match body {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &b in body {
        if !b.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_found_and_resumable() {
        assert_eq!(find_crlf(b"+OK\r\n", 0), Ok(3));
        assert_eq!(find_crlf(b"+OK\r", 0), Err(3));
        assert_eq!(find_crlf(b"+OK", 0), Err(3));
        assert_eq!(find_crlf(b"+a\rb\r\n", 0), Ok(4));
        assert_eq!(find_crlf(b"+a\r\n+b\r\n", 5), Ok(6));
        assert_eq!(find_crlf(b"", 0), Err(0));
        assert_eq!(find_crlf(b"ab", 5), Err(5));
    }

    #[test]
    fn ints_follow_string2ll() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"42"), Some(42));
        assert_eq!(parse_int(b"-1"), Some(-1));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"+1",
            b"01",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
            b"1\r",
        ] {
            assert_eq!(parse_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
