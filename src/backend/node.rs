use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::conn::{Conn, Pending};
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
