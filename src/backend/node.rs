use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::conn::{Conn, NotSent, Pending};
use super::error::BackendError;
use super::health::Health;
use super::settings::BackendSettings;
use crate::cluster::NodeAddr;
use crate::metrics::Metrics;
use crate::protocol::Reply;

/// A handful of shared pipelined connections to one node.
pub struct Node {
    addr: NodeAddr,
    conns: Vec<Conn>,
    op_timeout: std::time::Duration,
}

impl Node {
    pub fn connect(
        addr: NodeAddr,
        settings: Arc<BackendSettings>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Node {
        let conns = (0..settings.connections_per_node.max(1))
            .map(|_| {
                Conn::spawn(
                    addr.clone(),
                    settings.clone(),
                    metrics.clone(),
                    health.clone(),
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
    /// There is no per-request timer here, to keep one off every request: a node that stops
    /// answering is caught by its connection's hung-node check, which drops the connection and
    /// so fails every request waiting on it.
    pub fn try_send(&self, bytes: Bytes, affinity: usize) -> Option<PendingReply> {
        let conn = &self.conns[affinity % self.conns.len()];
        let (tx, rx) = oneshot::channel();
        let queued = conn.try_enqueue(Pending {
            bytes,
            skip: 0,
            reply: tx,
        });
        queued.then_some(PendingReply { rx })
    }

    /// Sends `bytes` (one or more commands) and returns the reply of the last one, discarding the
    /// first `skip` replies. `affinity` picks the connection: one client always uses the same one,
    /// so its commands to this node run in the order it sent them.
    pub async fn send(
        &self,
        bytes: Bytes,
        skip: u8,
        affinity: usize,
    ) -> Result<Reply, BackendError> {
        let conn = &self.conns[affinity % self.conns.len()];
        let (tx, rx) = oneshot::channel();
        let exchange = async {
            conn.enqueue(Pending {
                bytes,
                skip,
                reply: tx,
            })
            .await
            .map_err(|()| BackendError::Unavailable {
                addr: self.addr.clone(),
            })?;
            match rx.await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(_not_sent)) => Err(BackendError::Unavailable {
                    addr: self.addr.clone(),
                }),
                Err(_) => Err(BackendError::ConnectionLost {
                    addr: self.addr.clone(),
                }),
            }
        };
        match tokio::time::timeout(self.op_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::Timeout {
                addr: self.addr.clone(),
                millis: self.op_timeout.as_millis() as u64,
            }),
        }
    }
}

/// A reply on its way from a node, for a caller that polls it in place instead of awaiting a
/// future of its own.
pub struct PendingReply {
    rx: oneshot::Receiver<Result<Reply, NotSent>>,
}

impl PendingReply {
    /// `node` is the one the request went to; it names the node in errors.
    pub fn poll_reply(
        &mut self,
        cx: &mut Context<'_>,
        node: &Node,
    ) -> Poll<Result<Reply, BackendError>> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|outcome| match outcome {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(NotSent)) => Err(BackendError::Unavailable {
                    addr: node.addr.clone(),
                }),
                Err(_) => Err(BackendError::ConnectionLost {
                    addr: node.addr.clone(),
                }),
            })
    }
}
