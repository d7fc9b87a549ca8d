//! Connections of one client's own, for commands that keep state on the connection they run on
//! (WATCH, MULTI) or hold it (BLPOP and the other blocking commands). The shared connections
//! stay as fast as they are because nothing stateful ever touches them.
//!
//! Each node has a fixed number of seats, shared by every worker: a client that wants one more
//! than that gets a clear error instead of the proxy opening sockets without bound. A dedicated
//! connection is opened once and never reopened (a silent reconnect would lose a WATCH without
//! anyone knowing), and it is closed when its holder drops it, which also cancels a blocked
//! command on the node: nothing is popped for a client that is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use super::conn::{Check, Conn, Failure, Pending};
use super::error::BackendError;
use super::health::Health;
use super::node::outcome;
use super::settings::BackendSettings;
use crate::cluster::NodeAddr;
use crate::metrics::Metrics;
use crate::protocol::{Proto, Reply};

/// What a dedicated connection is for, which decides its operation timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// WATCH and transactions: answered at once, so the operation timeout applies.
    State,
    /// Blocking commands: they wait by their own timeout (0 = forever), so no operation timeout.
    Blocking,
    /// SCRIPT KILL, FUNCTION KILL, FUNCTION STATS: answered at once, also by a node busy running
    /// a script, which answers the connection check's PING with BUSY.
    WhileBusy,
}

/// One client's connection to one node. Dropping it closes the connection.
pub struct Dedicated {
    addr: NodeAddr,
    conn: Conn,
    driver: AbortHandle,
    op_timeout: std::time::Duration,
    _seat: OwnedSemaphorePermit,
}

impl Dedicated {
    pub fn addr(&self) -> &NodeAddr {
        &self.addr
    }

    /// Sends `bytes` (one or more commands) and returns the reply of the last, discarding the
    /// first `skip` replies.
    pub async fn send(&self, bytes: Bytes, skip: u8) -> Result<Reply, BackendError> {
        let (tx, rx) = oneshot::channel();
        let unavailable = || BackendError::Unavailable {
            addr: self.addr.clone(),
        };
        let pending = Pending {
            bytes,
            skip,
            reply: tx,
            budget: None,
        };
        self.conn
            .enqueue(pending)
            .await
            .map_err(|()| unavailable())?;
        outcome(&self.addr, self.op_timeout, None, rx.await)
    }

    /// Sends every command in `commands` at once, in order, and returns each one's reply: what a
    /// transaction needs to see whether every queued command was accepted.
    pub async fn send_all(&self, commands: Vec<Bytes>) -> Vec<Result<Reply, BackendError>> {
        let mut replies = self.send_each(commands).await;
        let mut all = Vec::with_capacity(replies.len());
        while let Some(reply) = replies.next().await {
            all.push(reply);
        }
        all
    }

    /// Sends every command in `commands` at once, in order, and hands their replies back one by
    /// one: a caller can stop at a reply that tells it enough (a refused first command) without
    /// waiting for the others, which may block.
    pub async fn send_each(&self, commands: Vec<Bytes>) -> Replies<'_> {
        let mut answers = Vec::with_capacity(commands.len());
        for bytes in commands {
            let (tx, rx) = oneshot::channel();
            let pending = Pending {
                bytes,
                skip: 0,
                reply: tx,
                budget: None,
            };
            let queued = self.conn.enqueue(pending).await.is_ok();
            answers.push(queued.then_some(rx));
        }
        Replies {
            conn: self,
            answers: answers.into_iter(),
        }
    }
}

/// The replies to commands sent together by [`Dedicated::send_each`], in order.
pub struct Replies<'a> {
    conn: &'a Dedicated,
    answers: std::vec::IntoIter<Option<oneshot::Receiver<Result<Reply, Failure>>>>,
}

impl Replies<'_> {
    /// How many replies are still to come.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.len() == 0
    }

    /// The next command's reply, `None` after the last.
    pub async fn next(&mut self) -> Option<Result<Reply, BackendError>> {
        let conn = self.conn;
        Some(match self.answers.next()? {
            Some(rx) => outcome(&conn.addr, conn.op_timeout, None, rx.await),
            None => Err(BackendError::Unavailable {
                addr: conn.addr.clone(),
            }),
        })
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The seats for dedicated connections, per node, shared by every worker.
pub struct Dedicate {
    seats: Mutex<HashMap<NodeAddr, Arc<Semaphore>>>,
    max_per_node: usize,
    state: Arc<BackendSettings>,
    blocking: Arc<BackendSettings>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// How long a blocking command may wait without a reply before its connection is taken for
/// hung: far beyond any timeout a client gives, so in effect never.
const BLOCKING_OP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

impl Dedicate {
    pub fn new(
        max_per_node: usize,
        settings: Arc<BackendSettings>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Dedicate {
        // A client's own connections always go to masters, for writes too.
        let settings = Arc::new(BackendSettings {
            readonly: false,
            ..(*settings).clone()
        });
        let blocking = Arc::new(BackendSettings {
            op_timeout: BLOCKING_OP_TIMEOUT,
            ..(*settings).clone()
        });
        Dedicate {
            seats: Mutex::new(HashMap::new()),
            max_per_node,
            state: settings,
            blocking,
            metrics,
            health,
        }
    }

    /// Opens a connection of its own to `addr`, speaking the client's `proto`, on the caller's
    /// runtime, if a seat is free.
    pub async fn open(
        &self,
        addr: &NodeAddr,
        purpose: Purpose,
        proto: Proto,
    ) -> Result<Dedicated, BackendError> {
        let seat =
            self.seats_of(addr)
                .try_acquire_owned()
                .map_err(|_| BackendError::NoDedicatedSeat {
                    addr: addr.clone(),
                    max: self.max_per_node,
                })?;
        let settings = match purpose {
            Purpose::State | Purpose::WhileBusy => &self.state,
            Purpose::Blocking => &self.blocking,
        };
        let check = match purpose {
            Purpose::WhileBusy => Check::Alive,
            Purpose::State | Purpose::Blocking => Check::Serving,
        };
        let op_timeout = settings.op_timeout;
        let (conn, driver) = Conn::open_dedicated(
            addr.clone(),
            proto,
            settings.clone(),
            self.metrics.clone(),
            self.health.clone(),
            check,
        )
        .await
        .map_err(|e| {
            tracing::debug!(node = %addr, error = %e, "dedicated connection failed");
            BackendError::Unavailable { addr: addr.clone() }
        })?;
        Ok(Dedicated {
            addr: addr.clone(),
            conn,
            driver,
            op_timeout,
            _seat: seat,
        })
    }

    fn seats_of(&self, addr: &NodeAddr) -> Arc<Semaphore> {
        let mut seats = self.seats.lock().unwrap_or_else(|e| e.into_inner());
        seats
            .entry(addr.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max_per_node)))
            .clone()
    }
}
