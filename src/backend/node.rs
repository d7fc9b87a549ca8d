//! One node as the router sees it: its address and a few shared pipelined connections, with a
//! client kept on one of them so its commands to that node run in the order it sent them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::conn::{Conn, Failure, Pending};
use super::error::BackendError;
use super::health::Health;
use super::settings::BackendSettings;
use crate::budget::Budget;
use crate::cluster::NodeAddr;
use crate::metrics::Metrics;
use crate::protocol::Reply;

/// A handful of shared pipelined connections to one node.
pub struct Node {
    addr: NodeAddr,
    conns: Vec<Conn>,
    op_timeout: Duration,
}

impl Node {
    pub fn connect(
        addr: NodeAddr,
        settings: Arc<BackendSettings>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        rt: &Handle,
    ) -> Node {
        let conns = (0..settings.connections_per_node.max(1))
            .map(|_| {
                Conn::spawn(
                    addr.clone(),
                    settings.clone(),
                    metrics.clone(),
                    health.clone(),
                    rt,
                )
            })
            .collect();
        Node {
            addr,
            conns,
            op_timeout: settings.op_timeout,
        }
    }

    pub fn addr(&self) -> &NodeAddr {
        &self.addr
    }

    /// Queues `bytes` (one command) without waiting, or returns `None` when the connection has
    /// no room (or is gone); the caller then takes the slow path, [`Node::send`].
    ///
    /// Like every request, it has no timer of its own: a node that stops answering is caught by
    /// its connection's hung-node check, which fails every request waiting on it as timed out.
    pub fn try_send(
        &self,
        bytes: Bytes,
        affinity: usize,
        budget: Option<&Arc<Budget>>,
    ) -> Option<PendingReply> {
        let conn = &self.conns[affinity % self.conns.len()];
        let (tx, rx) = oneshot::channel();
        let queued = conn.try_enqueue(Pending {
            bytes,
            skip: 0,
            reply: tx,
            budget: budget.cloned(),
        });
        queued.then_some(PendingReply { rx })
    }

    /// Sends `bytes` (one or more commands) and returns the reply of the last one, discarding the
    /// first `skip` replies. `affinity` picks the connection: one client always uses the same one,
    /// so its commands to this node run in the order it sent them. The reply counts against
    /// `budget` (the client's) until this returns it.
    pub async fn send(
        &self,
        bytes: Bytes,
        skip: u8,
        affinity: usize,
        budget: Option<&Arc<Budget>>,
    ) -> Result<Reply, BackendError> {
        let conn = &self.conns[affinity % self.conns.len()];
        let (tx, rx) = oneshot::channel();
        conn.enqueue(Pending {
            bytes,
            skip,
            reply: tx,
            budget: budget.cloned(),
        })
        .await
        .map_err(|()| BackendError::Unavailable {
            addr: self.addr.clone(),
        })?;
        outcome(&self.addr, self.op_timeout, budget.map(|b| &**b), rx.await)
    }
}

/// What a connection's answer means to the caller; see [`Failure`].
/// A reply is taken off `budget` here, where its caller gets it.
pub(super) fn outcome(
    addr: &NodeAddr,
    op_timeout: Duration,
    budget: Option<&Budget>,
    answer: Result<Result<Reply, Failure>, oneshot::error::RecvError>,
) -> Result<Reply, BackendError> {
    let addr = || addr.clone();
    match answer {
        Ok(Ok(reply)) => {
            if let Some(budget) = budget {
                budget.taken(reply.bytes().len());
            }
            Ok(reply)
        }
        Ok(Err(Failure::NotSent)) => Err(BackendError::Unavailable { addr: addr() }),
        Ok(Err(Failure::TimedOut)) => Err(BackendError::Timeout {
            addr: addr(),
            millis: op_timeout.as_millis() as u64,
        }),
        Err(_) => Err(BackendError::ConnectionLost { addr: addr() }),
    }
}

/// A reply on its way from a node, for a caller that polls it in place instead of awaiting a
/// future of its own.
pub struct PendingReply {
    rx: oneshot::Receiver<Result<Reply, Failure>>,
}

impl PendingReply {
    /// `node` is the one the request went to; it names the node in errors. `budget` is the one
    /// the request was sent with.
    pub fn poll_reply(
        &mut self,
        cx: &mut Context<'_>,
        node: &Node,
        budget: Option<&Budget>,
    ) -> Poll<Result<Reply, BackendError>> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|answer| outcome(&node.addr, node.op_timeout, budget, answer))
    }
}
