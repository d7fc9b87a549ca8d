//! `INFO` as a client of one Redis server expects it: every section and field redis-server 7.0
//! prints, made of slotgate's own figures and every master's INFO merged field by field
//! (`fields.rs` says how each field is merged).

mod fields;
mod keyspace;
mod merge;
mod number;
mod own;
mod select;

pub use own::{Cpu, Process, Stats};

use merge::NodeInfo;
use select::Selection;

use crate::backend::Lane;
use crate::protocol::{Frame, Limits, Reply, Request};
use crate::route::Router;

/// Asks every serving master the client's own `INFO` request, so their sections are the ones
/// it selected, and merges the replies with slotgate's figures. A master that fails is left
/// out. Asked on the client's lane, so the keyspace counts the client's earlier writes.
pub async fn answer(
    router: &Router,
    limits: &Limits,
    req: &Request,
    stats: Stats,
    lane: Lane,
) -> Reply {
    let selection = Selection::parse(req.args());
    let replies = router.fan_out(req.to_resp(), lane, None).await;
    let texts: Vec<String> = replies
        .into_iter()
        .flatten()
        .filter_map(|reply| text(&reply, limits))
        .collect();
    let nodes: Vec<NodeInfo> = texts.iter().map(|t| NodeInfo::parse(t)).collect();
    let text = merge::render(selection, &stats, &nodes);
    Reply::text(lane.proto, text.as_bytes())
}

/// A master's INFO text: a bulk in RESP2, a verbatim string in RESP3.
fn text(reply: &Reply, limits: &Limits) -> Option<String> {
    let bytes = match reply.parse(limits).ok()? {
        Frame::Bulk(text) => text,
        Frame::Verbatim(text) => text.slice(text.len().min(4)..),
        _ => return None,
    };
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
