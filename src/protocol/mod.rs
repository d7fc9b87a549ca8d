//! RESP2 and RESP3 bytes <-> frames. Pure: no sockets, no routing; every limit on peer input lives here.
//!
//! Requests and replies are kept as slices of the buffer they arrived in, so the common path
//! (forward a request as sent, forward a reply as received) never copies a payload.

mod encode;
mod error;
mod frame;
mod inline;
mod limits;
mod line;
mod reply;
mod request;
mod scan;

#[cfg(test)]
mod proptests;

pub use encode::{encode_command, encode_command_of};
pub use error::ProtocolError;
pub use frame::Frame;
pub use limits::Limits;
pub use reply::{Proto, Reply, ReplyCodec};
pub use request::{Request, RequestCodec};

/// Argument slices from text, for unit tests across the crate.
#[cfg(test)]
pub(crate) fn test_args(words: &[&str]) -> Vec<bytes::Bytes> {
    words
        .iter()
        .map(|w| bytes::Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}
