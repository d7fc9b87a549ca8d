//! Bounds on what a peer may make us buffer or allocate.

/// Limits checked before any allocation, so a peer's declared sizes never turn into our memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest bulk string accepted (Redis `proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Largest element count of one array, in requests and replies.
    pub max_array_len: usize,
    /// Longest inline command or `*`/`$` count line (Redis `PROTO_INLINE_MAX_SIZE`); a line still
    /// unterminated past this is rejected rather than buffered forever.
    pub max_inline_len: usize,
    /// Deepest array nesting accepted in replies; requests are flat. An array nested inside
    /// `max_depth` arrays is rejected, so `0` allows no arrays at all.
    pub max_depth: usize,
    /// Largest total size of one request or reply frame (Redis `client-query-buffer-limit`).
    pub max_frame_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_array_len: 1_048_576,
            max_inline_len: 64 * 1024,
            max_depth: 16,
            max_frame_len: 1024 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// For bytes we produced or already validated, where a limit could only cause false errors.
    pub(crate) const UNLIMITED: Limits = Limits {
        max_bulk_len: usize::MAX,
        max_array_len: usize::MAX,
        max_inline_len: usize::MAX,
        max_depth: usize::MAX,
        max_frame_len: usize::MAX,
    };
}

/// Most we reserve ahead for a declared bulk: growing by reads keeps memory tied to bytes that
/// actually arrived instead of to what the peer claims it will send.
pub(crate) const RESERVE_CHUNK: usize = 64 * 1024;

/// Most elements we pre-size a vector for from a peer-declared count; longer arrays grow as
/// their elements arrive.
pub(crate) const PREALLOC_CAP: usize = 64;

/// Reserve room for the next part of a frame known to end at `needed` bytes, at most a chunk.
pub(crate) fn reserve_for(buf: &mut bytes::BytesMut, needed: usize) {
    if let Some(missing) = needed.checked_sub(buf.len()) {
        buf.reserve(missing.min(RESERVE_CHUNK));
    }
}
