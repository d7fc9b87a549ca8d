//! Protocol errors, displayed as the text Redis puts after `ERR ` so clients see familiar lines.

use std::fmt;

/// Why a byte stream is not valid RESP (or broke a limit). The connection cannot be resynced
/// after any of these, so callers reply once and close.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A request array element that is not a bulk string (requests are flat arrays of bulks).
    #[error("Protocol error: expected '$', got '{}'", ShownByte(*.0))]
    ExpectedBulk(u8),
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// Redis silently skips the two bytes after a bulk; we refuse, because a wrong declared
    /// length would otherwise desynchronise every later frame on the connection.
    #[error("Protocol error: bulk string not followed by CRLF")]
    BulkNotTerminated,
    /// The whole frame would exceed `max_frame_len`.
    #[error("Protocol error: frame too large")]
    FrameTooLarge,
    /// A reply starting with a byte that is no RESP2 or RESP3 type.
    #[error("Protocol error: got '{}' as reply type byte", ShownByte(*.0))]
    InvalidTypeByte(u8),
    /// A RESP3 line whose text its type does not allow (`_x`, `#x`, `(1.5`, an empty `,`).
    #[error("Protocol error: invalid '{}' line", ShownByte(*.0))]
    InvalidResp3Line(u8),
    /// A reply with arrays nested deeper than the given `max_depth`.
    #[error("Protocol error: reply nested deeper than {0} arrays")]
    TooDeep(usize),
    #[error("Protocol error: invalid integer")]
    InvalidInteger,
    /// A stored reply that ends before its frame does.
    #[error("Protocol error: incomplete reply")]
    Incomplete,
    /// A stored reply with bytes after its one frame.
    #[error("Protocol error: trailing bytes after reply")]
    TrailingBytes,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl ProtocolError {
    /// A stable label for metrics and logs, so nobody has to match on Display text.
    pub fn kind(&self) -> &'static str {
        match self {
            ProtocolError::InvalidMultibulkLength => "invalid_multibulk_length",
            ProtocolError::InvalidBulkLength => "invalid_bulk_length",
            ProtocolError::ExpectedBulk(_) => "expected_bulk",
            ProtocolError::TooBigInline => "too_big_inline",
            ProtocolError::UnbalancedQuotes => "unbalanced_quotes",
            ProtocolError::TooBigMultibulkCount => "too_big_mbulk_count",
            ProtocolError::TooBigBulkCount => "too_big_bulk_count",
            ProtocolError::BulkNotTerminated => "bulk_not_terminated",
            ProtocolError::FrameTooLarge => "frame_too_large",
            ProtocolError::InvalidTypeByte(_) => "invalid_type_byte",
            ProtocolError::InvalidResp3Line(_) => "invalid_resp3_line",
            ProtocolError::TooDeep(_) => "too_deep",
            ProtocolError::InvalidInteger => "invalid_integer",
            ProtocolError::Incomplete => "incomplete",
            ProtocolError::TrailingBytes => "trailing_bytes",
            ProtocolError::Io(_) => "io",
        }
    }
}

/// Shows a peer's byte the way Redis would, but always as one safe line: Redis turns CR/LF in
/// error texts into spaces, and a non-printable byte becomes `\xHH` so the text stays UTF-8.
struct ShownByte(u8);

impl fmt::Display for ShownByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b'\r' | b'\n' => f.write_str(" "),
            b @ (b' '..=b'~' | b'\t') => write!(f, "{}", char::from(b)),
            b => write!(f, "\\x{b:02x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_match_redis() {
        assert_eq!(
            ProtocolError::InvalidMultibulkLength.to_string(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            ProtocolError::InvalidBulkLength.to_string(),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            ProtocolError::ExpectedBulk(b':').to_string(),
            "Protocol error: expected '$', got ':'"
        );
        assert_eq!(
            ProtocolError::TooBigInline.to_string(),
            "Protocol error: too big inline request"
        );
        assert_eq!(
            ProtocolError::UnbalancedQuotes.to_string(),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            ProtocolError::TooBigMultibulkCount.to_string(),
            "Protocol error: too big mbulk count string"
        );
        assert_eq!(
            ProtocolError::TooBigBulkCount.to_string(),
            "Protocol error: too big bulk count string"
        );
    }

    #[test]
    fn odd_bytes_stay_one_printable_line() {
        assert_eq!(
            ProtocolError::ExpectedBulk(b'\r').to_string(),
            "Protocol error: expected '$', got ' '"
        );
        assert_eq!(
            ProtocolError::ExpectedBulk(0xff).to_string(),
            "Protocol error: expected '$', got '\\xff'"
        );
        assert_eq!(
            ProtocolError::InvalidTypeByte(0).to_string(),
            "Protocol error: got '\\x00' as reply type byte"
        );
    }

    #[test]
    fn io_errors_convert() {
        let e: ProtocolError = std::io::Error::other("boom").into();
        assert_eq!(e.kind(), "io");
    }
}
