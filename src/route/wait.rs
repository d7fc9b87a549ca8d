//! `WAIT numreplicas timeout` through slotgate. Redis counts the replicas that have everything
//! up to the replication offset of the connection WAIT runs on, but a client's writes reach the
//! masters over shared connections. So every serving master gets, on a connection of the
//! client's own, a write of slotgate's that leaves nothing behind (a script that sets and deletes
//! a key of slotgate's), and the client's WAIT right behind it in the same write. Redis 7.0 moves
//! a connection's offset after any command, later versions only after one that propagated; a
//! write moves it on all. WAIT then waits until the replicas have everything up to that write,
//! which includes every earlier write of the client to that master (those were answered before
//! WAIT was sent). The client gets the smallest count.

use bytes::Bytes;
use futures_util::future::try_join_all;

use super::error::RouteError;
use super::router::Router;
use crate::backend::Purpose;
use crate::cluster::{NodeAddr, Trigger};
use crate::protocol::{Proto, Reply, Request};

/// The smallest write Redis propagates that leaves the keyspace as it was: its connection's
/// replication offset becomes current, which is all WAIT needs.
const MARK: &[u8] = b"redis.call('SET', KEYS[1], '1') redis.call('DEL', KEYS[1])";

impl Router {
    /// Runs the client's WAIT (its arguments already checked) on every serving master at once.
    /// A master that cannot answer fails the whole WAIT, and the others are cancelled: a count
    /// without it would promise more than is known.
    pub(super) async fn wait(&self, req: &Request) -> Result<Reply, RouteError> {
        let tags = self.topology().tag_per_master();
        if tags.is_empty() {
            self.trigger.request(Trigger::Unserved);
            return Err(RouteError::NoMasters);
        }
        let wait = req.to_resp();
        let counts = try_join_all(
            tags.iter()
                .map(|(addr, tag)| self.wait_on(addr, *tag, wait.clone())),
        )
        .await?;
        Ok(Reply::integer_reply(counts.into_iter().min().unwrap_or(0)))
    }

    /// How many replicas of the master at `addr` have every write sent to it so far. `tag` puts
    /// the marking key in one of its slots; the connection closes when this returns or is
    /// dropped, which also ends a WAIT still blocked there.
    async fn wait_on(&self, addr: &NodeAddr, tag: u32, wait: Bytes) -> Result<i64, RouteError> {
        // Its replies are read here, and an integer is the same in both protocols.
        let conn = self
            .pool
            .dedicate()
            .open(addr, Purpose::Blocking, Proto::Resp2)
            .await?;
        let key = format!("slotgate:wait:{{{tag}}}");
        let mark = Router::command(&[b"EVAL", MARK, b"1", key.as_bytes()]);
        let mut replies = conn.send_each(vec![mark, wait]).await;
        let missing = || RouteError::UnexpectedReply("WAIT's connection");
        let marked = replies.next().await.ok_or_else(missing)??;
        if let Some(e) = marked.error() {
            // A stale slot map shows as MOVED: learn it for the next WAIT.
            self.note_redirect(&marked, addr);
            return Err(refused(addr, e));
        }
        let counted = replies.next().await.ok_or_else(missing)??;
        match (counted.integer(), counted.error()) {
            (Some(n), _) => Ok(n),
            (None, Some(e)) => Err(refused(addr, e)),
            (None, None) => Err(RouteError::UnexpectedReply("WAIT")),
        }
    }
}

fn refused(addr: &NodeAddr, error: &[u8]) -> RouteError {
    RouteError::WaitRefused {
        addr: addr.clone(),
        why: String::from_utf8_lossy(error).into_owned(),
    }
}
