//! What a node connection tells its caller when no reply came: the variants say what is known of
//! the request's fate, which is what decides whether it may be sent again.

use crate::cluster::NodeAddr;

/// What can go wrong between sending a request to a node and getting its reply. The variants
/// differ in what they say about the request's fate, which decides whether a retry is safe.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    /// The request was never written: no connection could take it. Safe to retry anywhere.
    #[error("backend {addr} unreachable")]
    Unavailable { addr: NodeAddr },
    /// The request may have been written and the connection died before its reply came back: it
    /// may or may not have run.
    #[error("connection to {addr} lost, outcome unknown")]
    ConnectionLost { addr: NodeAddr },
    /// No reply within the operation timeout: the node is slow or hung; outcome unknown.
    #[error("backend {addr} timed out after {millis} ms")]
    Timeout { addr: NodeAddr, millis: u64 },
    /// A command needing a connection of its own found every seat for that node taken. Never
    /// sent.
    #[error(
        "all {max} dedicated connections to {addr} are in use (backend.max_dedicated_per_node)"
    )]
    NoDedicatedSeat { addr: NodeAddr, max: usize },
}

impl BackendError {
    /// Whether the request can have reached the node.
    pub fn maybe_executed(&self) -> bool {
        !matches!(
            self,
            BackendError::Unavailable { .. } | BackendError::NoDedicatedSeat { .. }
        )
    }
}
