//! Why a routed request got no answer from the cluster, as one enum: the client sees a stable
//! Redis-style line, and metrics and logs a fixed label per kind, never the text.

use super::cursor::CursorError;
use crate::backend::BackendError;
use crate::cluster::{NodeAddr, Slot};
use crate::protocol::Reply;

/// Why a request got no answer from the cluster. Display is the exact error line the client
/// receives (without the leading `-`), starting with a Redis-style error code.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("CROSSSLOT Keys in request don't hash to the same slot")]
    CrossSlot,
    /// Redis' own words for a slot nobody serves, so clients that handle it keep working.
    #[error("CLUSTERDOWN Hash slot not served")]
    SlotUnserved(Slot),
    /// A keyless or fanned-out command, and no master is known yet.
    #[error("CLUSTERDOWN The cluster is down")]
    NoMasters,
    #[error("ERR slotgate: too many redirections for slot {slot} (limit {limit})")]
    TooManyRedirects { slot: Slot, limit: u32 },
    #[error("ERR slotgate: {0}")]
    Backend(#[from] BackendError),
    /// Some slots of a split command failed and the others succeeded: the client must know that a
    /// multi-slot write is not atomic.
    #[error("ERR slotgate: {failed} of {total} slot groups failed, the others succeeded; first failure: {first}")]
    SplitFailed {
        failed: usize,
        total: usize,
        first: String,
    },
    /// Some masters of a command sent to all of them (FLUSHALL) failed and the others did it: the
    /// client must know the command took effect on part of the keyspace only.
    #[error("ERR slotgate: {failed} of {total} masters failed, the others succeeded; first failure: {first}")]
    MastersFailed {
        failed: usize,
        total: usize,
        first: String,
    },
    /// A SCAN cursor the client sent, or one a node sent back, that slotgate cannot use.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    #[error("ERR slotgate: unexpected reply from {0}")]
    UnexpectedReply(&'static str),
    /// A transaction's slot moved after WATCH or while its commands were queued; the node refused
    /// them, so nothing ran.
    #[error("EXECABORT Transaction discarded because slot {slot} moved to {addr}; nothing ran")]
    TransactionMoved { slot: Slot, addr: NodeAddr },
    /// A WATCH of this transaction was refused by its node: nothing is watched, so nothing runs.
    #[error("EXECABORT Transaction discarded because a WATCH failed: {why}")]
    WatchRefused { why: String },
    /// A transaction's slot is being migrated: its keys may be on either node, so nothing ran.
    #[error("EXECABORT Transaction discarded because slot {slot} is being migrated; nothing ran")]
    TransactionMigrating { slot: Slot },
    /// A master refused WAIT, or slotgate's marking write sent with it (its slot map was stale,
    /// it is out of memory, ...): a count without that master would promise more than is known.
    #[error("ERR slotgate: WAIT could not count the replicas of {addr}: {why}")]
    WaitRefused { addr: NodeAddr, why: String },
    /// `read_from: replica`, and the shard of the slot has no connected replica.
    #[error("ERR slotgate: no replica serves slot {0} (read_from: replica)")]
    NoReplica(Slot),
}

impl RouteError {
    pub fn to_reply(&self) -> Reply {
        Reply::error_line(&self.to_string())
    }

    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RouteError::CrossSlot => "crossslot",
            RouteError::SlotUnserved(_) => "slot_unserved",
            RouteError::NoMasters => "no_masters",
            RouteError::TooManyRedirects { .. } => "too_many_redirects",
            RouteError::Backend(BackendError::Unavailable { .. }) => "backend_unavailable",
            RouteError::Backend(BackendError::ConnectionLost { .. }) => "backend_connection_lost",
            RouteError::Backend(BackendError::Timeout { .. }) => "backend_timeout",
            RouteError::Backend(BackendError::NoDedicatedSeat { .. }) => "dedicated_exhausted",
            RouteError::SplitFailed { .. } => "split_failed",
            RouteError::MastersFailed { .. } => "fan_out_failed",
            RouteError::Cursor(CursorError::Invalid) => "invalid_cursor",
            RouteError::Cursor(CursorError::NodeCursorTooLarge { .. }) => "scan_cursor_too_large",
            RouteError::UnexpectedReply(_) => "unexpected_reply",
            RouteError::TransactionMoved { .. } | RouteError::TransactionMigrating { .. } => {
                "transaction_moved"
            }
            RouteError::WatchRefused { .. } => "watch_refused",
            RouteError::WaitRefused { .. } => "wait_refused",
            RouteError::NoReplica(_) => "no_replica",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ERROR_KINDS;

    #[test]
    fn every_kind_is_a_listed_metric_label() {
        let addr = || crate::cluster::NodeAddr::from("n:1");
        let slot = Slot::new(1).unwrap();
        let all = [
            RouteError::CrossSlot,
            RouteError::SlotUnserved(slot),
            RouteError::NoMasters,
            RouteError::TooManyRedirects { slot, limit: 5 },
            RouteError::Backend(BackendError::Unavailable { addr: addr() }),
            RouteError::Backend(BackendError::ConnectionLost { addr: addr() }),
            RouteError::Backend(BackendError::Timeout {
                addr: addr(),
                millis: 1,
            }),
            RouteError::Backend(BackendError::NoDedicatedSeat {
                addr: addr(),
                max: 1,
            }),
            RouteError::SplitFailed {
                failed: 1,
                total: 2,
                first: String::new(),
            },
            RouteError::MastersFailed {
                failed: 1,
                total: 3,
                first: String::new(),
            },
            RouteError::Cursor(CursorError::Invalid),
            RouteError::Cursor(CursorError::NodeCursorTooLarge {
                addr: addr(),
                cursor: 1 << 40,
            }),
            RouteError::UnexpectedReply("x"),
            RouteError::TransactionMoved { slot, addr: addr() },
            RouteError::TransactionMigrating { slot },
            RouteError::WatchRefused { why: String::new() },
            RouteError::NoReplica(slot),
            RouteError::WaitRefused {
                addr: addr(),
                why: String::new(),
            },
        ];
        for e in &all {
            assert!(ERROR_KINDS.contains(&e.kind()), "{e:?}");
        }
    }
}
