//! Commands whose answer is the whole keyspace's, answered as one Redis server would: DBSIZE,
//! KEYS, RANDOMKEY and FLUSHALL/FLUSHDB ask the masters and combine their replies; SCAN walks
//! the masters one page at a time with a cursor of slotgate's own (`cursor.rs`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::cursor::{self, ScanCursor};
use super::error::RouteError;
use super::merge::{self, FirstValue};
use super::router::{Delivery, Router};
use crate::backend::{Lane, Node};
use crate::cluster::{Slot, Trigger};
use crate::command::FanOut;
use crate::protocol::{encode_command, Reply, Request};

impl Router {
    /// A command no single master can answer alone: for the whole keyspace here, for scripts
    /// and functions in `scripts.rs`.
    pub(super) async fn fan_out_command(
        &self,
        req: &Request,
        fan_out: FanOut,
        how: Delivery<'_>,
    ) -> Result<Reply, RouteError> {
        match fan_out {
            FanOut::SumIntegers => self.sum_all(req.to_resp(), how.lane).await,
            FanOut::ConcatArrays => {
                merge::concat_arrays(self.fan_out(req.to_resp(), how.lane, how.budget).await)
            }
            FanOut::AllOk => merge::same(self.fan_out(req.to_resp(), how.lane, None).await),
            FanOut::FirstValue => self.first_value(req.to_resp(), how.lane).await,
            FanOut::Scan => self.scan(req.args(), how).await,
            FanOut::ScriptLoad
            | FanOut::ScriptFlush
            | FanOut::ScriptExists
            | FanOut::Same
            | FanOut::Kill
            | FanOut::FunctionStats => self.fan_out_merged(req, fan_out, how).await,
        }
    }

    async fn sum_all(&self, bytes: Bytes, lane: Lane) -> Result<Reply, RouteError> {
        match merge::sum_integers(self.fan_out(bytes, lane, None).await) {
            Ok(sum) => Ok(Reply::integer_reply(sum)),
            Err((_, failure)) => failure.into_answer("a fanned-out command"),
        }
    }

    /// Asks the masters one at a time, from a random one on, until one has a value: a key
    /// from a random master that holds any, without asking them all.
    async fn first_value(&self, bytes: Bytes, lane: Lane) -> Result<Reply, RouteError> {
        // Keep this snapshot alive across the awaits below, rather than a guard.
        let table = self.table.load_full();
        let masters = table.serving_masters();
        if masters.is_empty() {
            self.trigger.request(Trigger::Unserved);
            return Err(RouteError::NoMasters);
        }
        let start = fastrand::usize(..masters.len());
        let mut pick = FirstValue::default();
        for node in masters[start..].iter().chain(&masters[..start]) {
            let sent = node.send(bytes.clone(), 0, lane, None).await;
            if let Some(value) = pick.offer(sent.map_err(RouteError::from)) {
                return Ok(value);
            }
        }
        pick.finish(Reply::null(lane.proto))
    }

    /// One page of the walk, from the shard the client's cursor names. While that shard has no
    /// reachable master the request is held like any other, and then asks whichever master
    /// serves the shard by then (from the shard's start, if that is another node).
    async fn scan(&self, args: &[Bytes], how: Delivery<'_>) -> Result<Reply, RouteError> {
        let asked = cursor::parse_client(&args[1])?;
        let mut held_since = None;
        loop {
            match self.scan_once(args, asked, how).await {
                Err(e) if waits_for_a_new_map(&e) => {
                    self.trigger.request(Trigger::Unserved);
                    if !self.keep_holding(&mut held_since).await {
                        return Err(e);
                    }
                    how.turn.wait().await;
                }
                answer => return answer,
            }
        }
    }

    async fn scan_once(
        &self,
        args: &[Bytes],
        asked: u64,
        how: Delivery<'_>,
    ) -> Result<Reply, RouteError> {
        let (slot, node, from) = self.scan_stop(asked)?;
        let reply = node
            .send(scan_command(args, from), 0, how.lane, how.budget)
            .await?;
        if reply.error().is_some() {
            // MATCH, COUNT and TYPE are the node's to check, in its own words.
            return Ok(reply);
        }
        let (next, keys) = merge::scan_page(&reply).ok_or(RouteError::UnexpectedReply("SCAN"))?;
        let cursor = match next {
            0 => self
                .table
                .load()
                .scan_after(slot)
                .map_or(0, |slot| ScanCursor::enter(slot).encode()),
            next => ScanCursor::within(slot, node.addr(), next)?.encode(),
        };
        Ok(merge::scan_reply(cursor, keys))
    }

    /// The shard a cursor names (by one of its slots), the master serving it now, and the cursor
    /// to send that master.
    fn scan_stop(&self, asked: u64) -> Result<(Slot, Arc<Node>, u64), RouteError> {
        let table = self.table.load();
        let (slot, position) = match ScanCursor::decode(asked) {
            Some(position) => (position.slot, Some(position)),
            None => (table.scan_first().ok_or(RouteError::NoMasters)?, None),
        };
        let node = table
            .master_for(slot)
            .ok_or(RouteError::SlotUnserved(slot))?;
        let from = position.map_or(0, |p| p.resume_on(node.addr()));
        Ok((slot, node.clone(), from))
    }
}

/// Errors after which the shard's master may be another node soon: a failover under way.
fn waits_for_a_new_map(e: &RouteError) -> bool {
    matches!(
        e,
        RouteError::Backend(_) | RouteError::SlotUnserved(_) | RouteError::NoMasters
    )
}

/// The client's SCAN with the node's cursor in place of slotgate's; MATCH, COUNT and TYPE go as
/// the client wrote them.
fn scan_command(args: &[Bytes], node_cursor: u64) -> Bytes {
    let cursor = node_cursor.to_string();
    let mut b = BytesMut::new();
    let rest = args.iter().skip(2).map(|a| &a[..]);
    let all = [&args[0][..], cursor.as_bytes()].into_iter().chain(rest);
    encode_command(all, &mut b);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_args as args;

    #[test]
    fn the_nodes_scan_carries_the_clients_options() {
        let client = args(&["scan", "123456789", "MATCH", "k:*", "COUNT", "5"]);
        assert_eq!(
            scan_command(&client, 17).as_ref(),
            b"*6\r\n$4\r\nscan\r\n$2\r\n17\r\n$5\r\nMATCH\r\n$3\r\nk:*\r\n$5\r\nCOUNT\r\n$1\r\n5\r\n"
        );
        assert_eq!(
            scan_command(&args(&["SCAN", "0"]), 0).as_ref(),
            b"*2\r\n$4\r\nSCAN\r\n$1\r\n0\r\n"
        );
    }
}
