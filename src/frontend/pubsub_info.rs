//! `PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB` for the whole cluster. Each
//! node knows only the clients connected to it, and sees each slotgate worker's subscriber
//! connection as one subscriber however many clients share it, so slotgate asks every node and
//! then counts its own clients in place of its own connections.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use super::hub::{Hub, Kind};
use crate::command::PubSubQuery;
use crate::protocol::{Frame, Limits, Reply, Request};
use crate::route::{RouteError, Router};

/// Asks every node (masters only for shard channels, which live there) and merges the answers.
pub(super) async fn answer(
    router: &Router,
    hubs: &[Arc<Hub>],
    query: PubSubQuery,
    req: &Request,
    limits: &Limits,
) -> Reply {
    let masters_only = matches!(query, PubSubQuery::ShardChannels | PubSubQuery::ShardNumSub);
    let replies: Vec<Frame> = router
        .ask_every_node(req.to_resp(), masters_only)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|r| r.parse(limits).ok())
        .collect();
    if replies.is_empty() {
        return RouteError::NoMasters.to_reply();
    }
    let names = &req.args()[2..];
    match query {
        PubSubQuery::Channels | PubSubQuery::ShardChannels => union(&replies),
        PubSubQuery::NumSub => num_sub(&replies, names, |n| local(hubs, Kind::Channel, n)),
        PubSubQuery::ShardNumSub => num_sub(&replies, names, |n| local(hubs, Kind::Shard, n)),
        PubSubQuery::NumPat => Reply::integer_reply(
            replies
                .iter()
                .map(|f| match f {
                    Frame::Integer(n) => *n,
                    _ => 0,
                })
                .sum(),
        ),
    }
}

/// Clients of every worker that want `name`, and the workers' connections subscribed to it.
fn local(hubs: &[Arc<Hub>], kind: Kind, name: &Bytes) -> (i64, i64) {
    hubs.iter().fold((0, 0), |(clients, links), hub| {
        let (c, linked) = hub.local(kind, name);
        (clients + c as i64, links + i64::from(linked))
    })
}

/// Every channel any node names, once.
fn union(replies: &[Frame]) -> Reply {
    let mut all = BTreeSet::new();
    for reply in replies {
        if let Frame::Array(items) = reply {
            all.extend(items.iter().filter_map(|i| match i {
                Frame::Bulk(b) => Some(b.clone()),
                _ => None,
            }));
        }
    }
    let items: Vec<Reply> = all.iter().map(|c| Reply::bulk(c)).collect();
    Reply::array(&items)
}

/// `[channel, count, ...]` in the order asked, each count the nodes' sum with slotgate's
/// connections replaced by slotgate's clients.
fn num_sub(replies: &[Frame], names: &[Bytes], local: impl Fn(&Bytes) -> (i64, i64)) -> Reply {
    let mut items = Vec::with_capacity(names.len() * 2);
    for (i, name) in names.iter().enumerate() {
        let at_nodes: i64 = replies
            .iter()
            .map(|r| match r {
                Frame::Array(pairs) => match pairs.get(2 * i + 1) {
                    Some(Frame::Integer(n)) => *n,
                    _ => 0,
                },
                _ => 0,
            })
            .sum();
        let (clients, links) = local(name);
        items.push(Reply::bulk(name));
        items.push(Reply::integer_reply((at_nodes - links).max(0) + clients));
    }
    Reply::array(&items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn channels_are_the_union_of_every_nodes() {
        let replies = [
            Frame::Array(vec![bulk("a"), bulk("b")]),
            Frame::Array(vec![bulk("b"), bulk("c")]),
        ];
        let want = Reply::array(&[Reply::bulk(b"a"), Reply::bulk(b"b"), Reply::bulk(b"c")]);
        assert_eq!(union(&replies), want);
    }

    #[test]
    fn numsub_counts_slotgates_clients_not_its_connections() {
        // Node 1 has 2 direct subscribers of "a" plus slotgate's connection; node 2 has one of "b".
        let replies = [
            Frame::Array(vec![
                bulk("a"),
                Frame::Integer(3),
                bulk("b"),
                Frame::Integer(0),
            ]),
            Frame::Array(vec![
                bulk("a"),
                Frame::Integer(0),
                bulk("b"),
                Frame::Integer(1),
            ]),
        ];
        let names = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        // 500 slotgate clients want "a" over one connection; nobody through slotgate wants "b".
        let local = |n: &Bytes| if &n[..] == b"a" { (500, 1) } else { (0, 0) };
        let want = Reply::array(&[
            Reply::bulk(b"a"),
            Reply::integer_reply(502),
            Reply::bulk(b"b"),
            Reply::integer_reply(1),
        ]);
        assert_eq!(num_sub(&replies, &names, local), want);
    }
}
