//! Recognising the cluster's redirection and retry errors by their first word, as the cluster
//! protocol defines them (and NOSCRIPT, Redis' code for a script a node lacks). Only the error's
//! prefix is inspected: replies are never parsed deeply.

use crate::cluster::{NodeAddr, Slot};
use crate::protocol::Reply;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// The slot lives elsewhere for good: retry there and remember it.
    Moved { slot: Slot, addr: NodeAddr },
    /// The key is mid-migration: retry this one request there, preceded by ASKING.
    Ask { addr: NodeAddr },
    /// A multi-key request met a slot half migrated: retry shortly.
    TryAgain,
}

/// `replied_by` fills in the host when the cluster sends `:port` (a node whose endpoint is unknown).
pub fn classify(reply: &Reply, replied_by: &str) -> Option<Redirect> {
    let line = reply.error()?;
    if let Some(rest) = line.strip_prefix(b"MOVED ") {
        let (slot, addr) = slot_and_addr(rest, replied_by)?;
        return Some(Redirect::Moved { slot, addr });
    }
    if let Some(rest) = line.strip_prefix(b"ASK ") {
        let (_, addr) = slot_and_addr(rest, replied_by)?;
        return Some(Redirect::Ask { addr });
    }
    if line.starts_with(b"TRYAGAIN") {
        return Some(Redirect::TryAgain);
    }
    None
}

/// Whether `classify` would see a redirection, without building one: the fast path asks this of
/// every error reply.
pub fn is_redirect(reply: &Reply) -> bool {
    reply.error().is_some_and(|e| {
        e.starts_with(b"MOVED ") || e.starts_with(b"ASK ") || e.starts_with(b"TRYAGAIN")
    })
}

/// A blocked command released unanswered because its node stopped being a master: it popped
/// nothing, so it may be sent to the new master.
pub fn is_unblocked(reply: &Reply) -> bool {
    // Only the failover's words: UNBLOCKED is also how CLIENT UNBLOCK ... ERROR and a deleted
    // stream release a client, and those must reach it.
    reply
        .error()
        .is_some_and(|e| e.starts_with(b"UNBLOCKED force unblock"))
}

/// The node has no script by that sha: for an EVALSHA, it did not run, and it may be sent again
/// once the script is loaded there.
pub fn is_noscript(reply: &Reply) -> bool {
    reply.error().is_some_and(|e| e.starts_with(b"NOSCRIPT"))
}

/// Errors that mean the cluster itself is reconfiguring: worth a slot map refresh.
pub fn is_cluster_down(reply: &Reply) -> bool {
    reply.error().is_some_and(|e| e.starts_with(b"CLUSTERDOWN"))
}

fn slot_and_addr(rest: &[u8], replied_by: &str) -> Option<(Slot, NodeAddr)> {
    let text = std::str::from_utf8(rest).ok()?;
    let (slot, addr) = text.trim_end().split_once(' ')?;
    let slot = Slot::new(slot.parse().ok()?)?;
    let addr: NodeAddr = match addr.strip_prefix(':') {
        Some(port) => {
            let host = replied_by.rsplit_once(':').map_or(replied_by, |(h, _)| h);
            format!("{host}:{port}").into()
        }
        None => addr.into(),
    };
    Some((slot, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_and_ask() {
        let r = Reply::error_line("MOVED 3999 127.0.0.1:6381");
        assert_eq!(
            classify(&r, "x:1"),
            Some(Redirect::Moved {
                slot: Slot::new(3999).unwrap(),
                addr: "127.0.0.1:6381".into()
            })
        );
        let r = Reply::error_line("ASK 3999 127.0.0.1:6381");
        assert_eq!(
            classify(&r, "x:1"),
            Some(Redirect::Ask {
                addr: "127.0.0.1:6381".into()
            })
        );
    }

    #[test]
    fn unknown_endpoint_uses_replying_host() {
        let r = Reply::error_line("MOVED 1 :7002");
        assert_eq!(
            classify(&r, "10.0.0.5:7000"),
            Some(Redirect::Moved {
                slot: Slot::new(1).unwrap(),
                addr: "10.0.0.5:7002".into()
            })
        );
    }

    #[test]
    fn other_errors_and_garbage_are_not_redirects() {
        for e in [
            "ERR nope",
            "MOVED",
            "MOVED x 1.2.3.4:5",
            "MOVED 99999 h:1",
            "MOVEDX 1 h:1",
        ] {
            assert_eq!(classify(&Reply::error_line(e), "h:1"), None, "{e}");
        }
        assert_eq!(classify(&Reply::ok(), "h:1"), None);
        assert_eq!(
            classify(
                &Reply::error_line("TRYAGAIN Multiple keys request during rehashing of slot"),
                "h:1"
            ),
            Some(Redirect::TryAgain)
        );
        assert!(is_cluster_down(&Reply::error_line(
            "CLUSTERDOWN The cluster is down"
        )));
    }
}
