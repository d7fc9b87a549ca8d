//! Inline commands (`SET k v\r\n`), split with Redis `sdssplitargs` rules so a telnet user sees
//! what Redis would do.
//!
//! One deliberate difference: a NUL byte is ordinary data. In Redis it ends the C string and
//! silently drops the rest of the line; a proxy should not invent such truncation.

use std::ops::Range;

use bytes::Bytes;

use super::error::ProtocolError;

/// Splits one inline line (without its line ending) into arguments. Arguments written without
/// escapes are slices of `line`; only unescaped or spliced ones are copied.
pub(crate) fn split_args(line: &Bytes) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while line.get(p).is_some_and(|&b| is_space(b)) {
            p += 1;
        }
        if p == line.len() {
            return Ok(args);
        }
        let mut token = Token::default();
        p = read_token(line, p, &mut token)?;
        args.push(token.finish(line));
    }
}

/// Reads one token starting at `p`, returning the position after it (and after the byte that
/// ended it). Quotes may open mid-token (`a"b c"` is `ab c`), as in Redis.
fn read_token(line: &[u8], mut p: usize, token: &mut Token) -> Result<usize, ProtocolError> {
    loop {
        match line.get(p) {
            None => return Ok(p),
            Some(b' ' | b'\n' | b'\r' | b'\t') => return Ok(p + 1),
            Some(b'"') => return double_quoted(line, p + 1, token),
            Some(b'\'') => return single_quoted(line, p + 1, token),
            Some(_) => token.keep(line, p),
        }
        p += 1;
    }
}

fn double_quoted(line: &[u8], mut p: usize, token: &mut Token) -> Result<usize, ProtocolError> {
    loop {
        match (line.get(p), line.get(p + 1)) {
            (None, _) => return Err(ProtocolError::UnbalancedQuotes),
            (Some(b'"'), _) => return closing_quote(line, p),
            (Some(b'\\'), Some(b'x'))
                if line.get(p + 2).is_some_and(u8::is_ascii_hexdigit)
                    && line.get(p + 3).is_some_and(u8::is_ascii_hexdigit) =>
            {
                token.push(line, (hex(line[p + 2]) << 4) | hex(line[p + 3]));
                p += 4;
            }
            (Some(b'\\'), Some(&escaped)) => {
                token.push(line, unescape(escaped));
                p += 2;
            }
            (Some(_), _) => {
                token.keep(line, p);
                p += 1;
            }
        }
    }
}

fn single_quoted(line: &[u8], mut p: usize, token: &mut Token) -> Result<usize, ProtocolError> {
    loop {
        match (line.get(p), line.get(p + 1)) {
            (None, _) => return Err(ProtocolError::UnbalancedQuotes),
            (Some(b'\\'), Some(b'\'')) => {
                token.push(line, b'\'');
                p += 2;
            }
            (Some(b'\''), _) => return closing_quote(line, p),
            (Some(_), _) => {
                token.keep(line, p);
                p += 1;
            }
        }
    }
}

/// A closing quote must end the token: `"a"b` is an error in Redis, not `ab`.
fn closing_quote(line: &[u8], quote: usize) -> Result<usize, ProtocolError> {
    match line.get(quote + 1) {
        Some(&b) if !is_space(b) => Err(ProtocolError::UnbalancedQuotes),
        _ => Ok(quote + 1),
    }
}

/// C `isspace`: what separates tokens. Note an unquoted token ends only at space, tab, CR or
/// LF, so `a\vb` is one token, exactly as in Redis.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

fn unescape(escaped: u8) -> u8 {
    match escaped {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

/// An argument being built: a range of the line while it is a verbatim run, copied out only
/// once an escape or a quote splice makes it differ from the input.
#[derive(Default)]
struct Token {
    range: Range<usize>,
    owned: Option<Vec<u8>>,
}

impl Token {
    /// Adds `line[at]` as is.
    fn keep(&mut self, line: &[u8], at: usize) {
        match &mut self.owned {
            Some(bytes) => bytes.push(line[at]),
            None if self.range.is_empty() => self.range = at..at + 1,
            None if self.range.end == at => self.range.end += 1,
            None => self.push(line, line[at]),
        }
    }

    /// Adds a byte that is not the next input byte, which forces a copy.
    fn push(&mut self, line: &[u8], byte: u8) {
        self.owned
            .get_or_insert_with(|| line[self.range.clone()].to_vec())
            .push(byte);
    }

    fn finish(self, line: &Bytes) -> Bytes {
        match self.owned {
            Some(bytes) => Bytes::from(bytes),
            None => line.slice(self.range),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let args = split_args(&Bytes::copy_from_slice(line))?;
        Ok(args.into_iter().map(|a| a.to_vec()).collect())
    }

    fn ok(line: &[u8], expected: &[&[u8]]) {
        assert_eq!(
            split(line).unwrap(),
            expected,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }

    fn unbalanced(line: &[u8]) {
        assert!(
            matches!(split(line), Err(ProtocolError::UnbalancedQuotes)),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }

    // Expected values below were checked against redis-server 7.0 with ECHO.
    #[test]
    fn plain_tokens() {
        ok(b"", &[]);
        ok(b"   \t ", &[]);
        ok(b"SET k v", &[b"SET", b"k", b"v"]);
        ok(b"  ECHO   x  ", &[b"ECHO", b"x"]);
        ok(b"\x0b\x0cECHO", &[b"ECHO"]);
        ok(b"a\x0bb", &[b"a\x0bb"]);
        ok(b"a\rb", &[b"a", b"b"]);
        ok(b"a\x00b", &[b"a\x00b"]);
    }

    #[test]
    fn double_quotes() {
        ok(b"\"\"", &[b""]);
        ok(b"\"a b\" c", &[b"a b", b"c"]);
        ok(b"\"\\x41\\n\"", &[b"A\n"]);
        ok(b"\"\\x4a\\X41\"", &[b"JX41"]);
        ok(b"\"\\xZZ\"", &[b"xZZ"]);
        ok(b"\"\\x4\"", &[b"x4"]);
        ok(b"\"a\\\\b\\\"c\"", &[b"a\\b\"c"]);
        ok(b"\"a\\qb\\tc\"", &[b"aqb\tc"]);
        ok(b"\"\\r\\b\\a\"", &[b"\r\x08\x07"]);
        ok(b"\"a\rb\"", &[b"a\rb"]);
        ok(b"\"a\"\x0b", &[b"a"]);
        ok(b"a\"b c\"", &[b"ab c"]);
        unbalanced(b"\"a");
        unbalanced(b"\"a\\\"");
        unbalanced(b"\"a\\");
        unbalanced(b"\"a\"b");
    }

    #[test]
    fn single_quotes() {
        ok(b"''", &[b""]);
        ok(b"'it\\'s'", &[b"it's"]);
        ok(b"'a\\\\b'", &[b"a\\\\b"]);
        ok(b"'a\"b'", &[b"a\"b"]);
        unbalanced(b"'a");
        unbalanced(b"'a'b'");
    }

    #[test]
    fn verbatim_arguments_are_not_copied() {
        let line = Bytes::from_static(b"GET \"key\" 'x\\'y'");
        let args = split_args(&line).unwrap();
        assert_eq!(args[0].as_ptr(), line.as_ptr());
        assert_eq!(args[1].as_ptr(), line[5..].as_ptr());
        assert_eq!(&args[2][..], b"x'y");
    }
}
