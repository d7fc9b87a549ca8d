//! Scripts and functions as one Redis server would have them, although every master keeps its
//! own: `SCRIPT` and `FUNCTION` go to every serving master and their replies are merged
//! (`script_merge`), and an `EVALSHA` that meets a master without its script (NOSCRIPT: a replica
//! just promoted, a restarted node, a `SCRIPT FLUSH` run on that node alone) is healed by loading
//! the script there from what slotgate remembers (`script_cache`) and sending it again, once.

use bytes::Bytes;
use futures_util::future::join_all;

use super::error::RouteError;
use super::merge::{same, PartResult};
use super::router::{Delivery, Router};
use super::script_merge::{all_have, function_stats, kill};
use crate::backend::{Lane, Node, Purpose};
use crate::cluster::Trigger;
use crate::command::FanOut;
use crate::protocol::{Frame, Limits, Proto, Reply, Request};

impl Router {
    /// An `EVAL`'s script, remembered before it is sent: Redis caches it under its sha, and the
    /// client may call it by that sha later on any master.
    pub fn remember_script(&self, req: &Request) {
        if let Some(body) = req.args().get(1) {
            self.scripts.remember_body(body);
        }
    }

    /// Runs a command that every master answers, and merges their answers.
    pub(super) async fn fan_out_merged(
        &self,
        req: &Request,
        kind: FanOut,
        how: Delivery<'_>,
    ) -> Result<Reply, RouteError> {
        let bytes = req.to_resp();
        match kind {
            FanOut::SumIntegers
            | FanOut::ConcatArrays
            | FanOut::AllOk
            | FanOut::FirstValue
            | FanOut::Scan => Err(RouteError::UnexpectedReply("a keyspace fan-out")),
            FanOut::ScriptLoad => {
                let reply = same(self.fan_out(bytes, how.lane, None).await)?;
                self.remember_loaded(req, &reply);
                Ok(reply)
            }
            FanOut::ScriptFlush => {
                // Before anything is sent: an EVALSHA the client pipelines after the flush must
                // find nothing to heal with, as it finds nothing on one server.
                if flushes(req.args()) {
                    self.scripts.clear();
                }
                same(self.fan_out(bytes, how.lane, None).await)
            }
            FanOut::ScriptExists => all_have(self.fan_out(bytes, how.lane, None).await),
            FanOut::Same => same(self.fan_out(bytes, how.lane, None).await),
            FanOut::Kill => {
                how.turn.wait().await;
                kill(self.fan_out_alone(bytes, how.lane.proto).await)
            }
            FanOut::FunctionStats => {
                how.turn.wait().await;
                function_stats(self.fan_out_alone(bytes, how.lane.proto).await)
            }
        }
    }

    /// `SCRIPT LOAD`'s script, under the sha every master agreed on.
    fn remember_loaded(&self, req: &Request, reply: &Reply) {
        if let (Some(body), Ok(Frame::Bulk(sha))) =
            (req.args().get(2), reply.parse(&Limits::default()))
        {
            self.scripts.remember(&sha, body);
        }
    }

    /// Sends to every serving master over a connection of its own each. For the commands Redis
    /// answers while a script runs (`SCRIPT KILL`, `FUNCTION KILL`, `FUNCTION STATS`): the
    /// script may have come over the very shared connection they would take, and they would wait
    /// behind it, unread, until it ends.
    async fn fan_out_alone(&self, bytes: Bytes, proto: Proto) -> Vec<PartResult> {
        let table = self.table.load_full();
        let masters = table.serving_masters();
        if masters.is_empty() {
            self.trigger.request(Trigger::Unserved);
            return vec![Err(RouteError::NoMasters)];
        }
        let dedicate = self.pool.dedicate();
        join_all(masters.iter().map(|node| {
            let bytes = bytes.clone();
            async move {
                let conn = dedicate
                    .open(node.addr(), Purpose::WhileBusy, proto)
                    .await?;
                Ok(conn.send(bytes, 0).await?)
            }
        }))
        .await
    }

    /// Loads the script named `sha` into `node`, if slotgate knows it, so that the EVALSHA that
    /// met NOSCRIPT there can be sent again; whether it is loaded now.
    pub(super) async fn heal(&self, node: &Node, sha: &[u8], lane: Lane) -> bool {
        let Some(body) = self.scripts.body(sha) else {
            return false;
        };
        // The request goes to the node a second time: the client's later requests wait for it,
        // as after any other request a node refused.
        self.disruptions.disrupted();
        let load = Router::command(&[b"SCRIPT", b"LOAD", &body]);
        match node.send(load, 0, lane, None).await {
            Ok(reply) if reply.error().is_none() => {
                self.metrics.noscript_heals.inc();
                true
            }
            outcome => {
                tracing::debug!(node = %node.addr(), ?outcome, "could not load a script again");
                false
            }
        }
    }
}

/// Whether Redis flushes for these arguments, `SCRIPT FLUSH [ASYNC|SYNC]`; it refuses anything
/// else, and a refused flush must not make slotgate forget.
fn flushes(args: &[Bytes]) -> bool {
    match args.get(2..) {
        Some([]) => true,
        Some([mode]) => mode.eq_ignore_ascii_case(b"SYNC") || mode.eq_ignore_ascii_case(b"ASYNC"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::flushes;
    use crate::protocol::test_args as args;

    #[test]
    fn only_a_flush_redis_accepts_makes_slotgate_forget() {
        assert!(flushes(&args(&["SCRIPT", "FLUSH"])));
        assert!(flushes(&args(&["script", "flush", "async"])));
        assert!(flushes(&args(&["SCRIPT", "FLUSH", "Sync"])));
        assert!(!flushes(&args(&["SCRIPT", "FLUSH", "X"])));
        assert!(!flushes(&args(&["SCRIPT", "FLUSH", "SYNC", "ASYNC"])));
    }
}
