//! One node as the router sees it: its address and a few shared pipelined connections, with a
//! client kept on one of them so its commands to that node run in the order it sent them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
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
use crate::metrics::{Metrics, NodeMetrics};
use crate::protocol::{Proto, Reply};

/// Which of a node's shared connections carries a client's requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lane {
    /// Picks one of the node's connections (and, for keyless commands, one of the masters): a
    /// client always uses the same one, so its commands to a node run in the order it sent them.
    pub affinity: usize,
    /// The protocol the connection speaks, the client's own, so its replies pass through as
    /// Redis made them for it.
    pub proto: Proto,
    /// The client's read-only commands may go to replicas (`backend.read_from`, and the client
    /// did not send READWRITE).
    pub replica_reads: bool,
}

impl Lane {
    /// For slotgate's own questions to the cluster, whose replies it reads itself.
    pub const INTERNAL: Lane = Lane {
        affinity: 0,
        proto: Proto::Resp2,
        replica_reads: false,
    };
}

/// A handful of shared pipelined connections to one node.
pub struct Node {
    addr: NodeAddr,
    conns: Vec<Conn>,
    /// The same number again for RESP3 clients, opened when the first one comes: most
    /// deployments never have one.
    resp3: OnceLock<Vec<Conn>>,
    opener: Opener,
    op_timeout: Duration,
    /// A connection of its default lane is open: the node can be picked to serve reads.
    up: Arc<AtomicBool>,
}

/// What opening another connection to the node takes.
struct Opener {
    settings: Arc<BackendSettings>,
    metrics: Arc<Metrics>,
    /// The node's series: made when the first worker connects to it, kept while any does.
    node: Arc<NodeMetrics>,
    health: Arc<Health>,
    rt: Handle,
}

impl Opener {
    fn conns(&self, addr: &NodeAddr, proto: Proto, up: &Arc<AtomicBool>) -> Vec<Conn> {
        (0..self.settings.connections_per_node.max(1))
            .map(|_| {
                Conn::spawn(
                    addr.clone(),
                    proto,
                    self.settings.clone(),
                    self.metrics.clone(),
                    self.node.clone(),
                    self.health.clone(),
                    up.clone(),
                    &self.rt,
                )
            })
            .collect()
    }
}

impl Node {
    pub fn connect(
        addr: NodeAddr,
        settings: Arc<BackendSettings>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        rt: &Handle,
    ) -> Node {
        let op_timeout = settings.op_timeout;
        let opener = Opener {
            settings,
            node: metrics.node(&addr),
            metrics,
            health,
            rt: rt.clone(),
        };
        let up = Arc::new(AtomicBool::new(false));
        Node {
            conns: opener.conns(&addr, Proto::Resp2, &up),
            resp3: OnceLock::new(),
            opener,
            addr,
            op_timeout,
            up,
        }
    }

    pub fn addr(&self) -> &NodeAddr {
        &self.addr
    }

    /// Connected: worth sending a read to.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn conn(&self, lane: Lane) -> &Conn {
        let conns = match lane.proto {
            Proto::Resp2 => &self.conns,
            Proto::Resp3 => self
                .resp3
                // Its own flag: only the default lane says whether the node is up.
                .get_or_init(|| {
                    let up = Arc::new(AtomicBool::new(false));
                    self.opener.conns(&self.addr, Proto::Resp3, &up)
                }),
        };
        &conns[lane.affinity % conns.len()]
    }

    /// Queues `bytes` (one command) without waiting, or returns `None` when the connection has
    /// no room (or is gone); the caller then takes the slow path, [`Node::send`].
    ///
    /// Like every request, it has no timer of its own: a node that stops answering is caught by
    /// its connection's hung-node check, which fails every request waiting on it as timed out.
    pub fn try_send(
        &self,
        bytes: Bytes,
        lane: Lane,
        budget: Option<&Arc<Budget>>,
    ) -> Option<PendingReply> {
        let conn = self.conn(lane);
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
    /// first `skip` replies, on the connection `lane` picks. The reply counts against `budget`
    /// (the client's) until this returns it.
    pub async fn send(
        &self,
        bytes: Bytes,
        skip: u8,
        lane: Lane,
        budget: Option<&Arc<Budget>>,
    ) -> Result<Reply, BackendError> {
        let conn = self.conn(lane);
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
