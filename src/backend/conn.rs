//! One pipelined connection to one node. Requests from every client arrive on a bounded channel;
//! a writer drains whatever is queued into one buffer and writes it with one syscall, and a reader
//! hands each reply to the oldest waiter: Redis answers in order, so FIFO matching is exact.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use super::settings::BackendSettings;
use crate::cluster::NodeAddr;
use crate::metrics::Metrics;
use crate::protocol::{Reply, ReplyCodec};

/// Writes larger than this skip the batch buffer: copying a big value only to write it is waste.
const DIRECT_WRITE: usize = 16 * 1024;
/// Flush the batch buffer once it holds this much, so one batch never grows without bound.
const BATCH_LIMIT: usize = 64 * 1024;

/// A request on its way to the node. `skip` counts replies to discard before the one that answers
/// it: an `ASKING` sent in the same write comes back first.
pub(crate) struct Pending {
    pub bytes: Bytes,
    pub skip: u8,
    pub reply: oneshot::Sender<Reply>,
}

/// A waiter for a reply. Dropping one (when the connection dies) tells its caller the connection
/// was lost, with no extra bookkeeping.
struct Waiter {
    skip: u8,
    reply: oneshot::Sender<Reply>,
}

/// The sending side of one connection. Cloned senders keep the driver alive; when the last one is
/// dropped, the driver finishes what is queued and exits.
#[derive(Clone)]
pub(crate) struct Conn {
    tx: mpsc::Sender<Pending>,
}

impl Conn {
    pub fn spawn(addr: NodeAddr, settings: Arc<BackendSettings>, metrics: Arc<Metrics>) -> Conn {
        let (tx, rx) = mpsc::channel(settings.max_inflight);
        tokio::spawn(supervise(addr, rx, settings, metrics));
        Conn { tx }
    }

    /// Queues a request. Ordering depends on this: a client's requests must enter the channel in
    /// the order the session first polls them. `try_send` does that synchronously; an awaited send
    /// can yield to tokio's cooperative budget and be overtaken by a later request of the same
    /// client. When the channel is full, an unconstrained send joins the semaphore's FIFO queue on
    /// its first poll, so later requests (whose `try_send` fails while anyone waits) queue behind it.
    pub async fn enqueue(&self, p: Pending) -> Result<(), ()> {
        match self.tx.try_send(p) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
            Err(mpsc::error::TrySendError::Full(p)) => tokio::task::unconstrained(self.tx.send(p))
                .await
                .map_err(|_| ()),
        }
    }
}

/// Keeps one connection up for as long as anyone may send on it, reconnecting with capped,
/// jittered exponential backoff so a restarting node is not stormed by every proxy at once.
async fn supervise(
    addr: NodeAddr,
    mut rx: mpsc::Receiver<Pending>,
    s: Arc<BackendSettings>,
    metrics: Arc<Metrics>,
) {
    let mut backoff = s.reconnect_backoff_min;
    let mut first = true;
    loop {
        if rx.is_closed() && rx.is_empty() {
            return;
        }
        if !first {
            metrics.backend_reconnects_total.inc();
        }
        first = false;
        let stream = match tokio::time::timeout(s.connect_timeout, TcpStream::connect(&*addr)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::warn!(node = %addr, error = %e, "backend connect failed");
                backoff = sleep_backoff(backoff, &s).await;
                continue;
            }
            Err(_) => {
                tracing::warn!(node = %addr, "backend connect timed out");
                backoff = sleep_backoff(backoff, &s).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        backoff = s.reconnect_backoff_min;
        tracing::debug!(node = %addr, "backend connected");
        metrics.backend_connections.inc();
        let closed = drive(stream, &mut rx, &s).await;
        metrics.backend_connections.dec();
        if closed {
            return;
        }
        tracing::warn!(node = %addr, "backend connection lost");
    }
}

async fn sleep_backoff(current: Duration, s: &BackendSettings) -> Duration {
    let jittered = current.mul_f64(0.5 + fastrand::f64());
    tokio::time::sleep(jittered).await;
    (current * 2).min(s.reconnect_backoff_max)
}

/// Runs one live connection. Returns true when every sender is gone (clean shutdown), false when
/// the connection failed and should be re-established.
async fn drive(stream: TcpStream, rx: &mut mpsc::Receiver<Pending>, s: &BackendSettings) -> bool {
    let (rd, wr) = stream.into_split();
    // Bounded by the in-flight limit: the writer waits for room before sending more.
    let (wtx, wrx) = mpsc::channel::<Waiter>(s.max_inflight);
    tokio::select! {
        closed = write_loop(wr, rx, wtx) => closed,
        () = read_loop(rd, wrx, s) => false,
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    rx: &mut mpsc::Receiver<Pending>,
    waiters: mpsc::Sender<Waiter>,
) -> bool {
    let mut buf = BytesMut::with_capacity(BATCH_LIMIT);
    loop {
        let Some(first) = rx.recv().await else {
            return true;
        };
        let mut next = Some(first);
        while let Some(p) = next {
            let Ok(permit) = waiters.reserve().await else {
                return false;
            };
            // The waiter is queued before its bytes can reach the wire, so the reader always finds it.
            permit.send(Waiter {
                skip: p.skip,
                reply: p.reply,
            });
            if p.bytes.len() >= DIRECT_WRITE {
                if !buf.is_empty() && wr.write_all(&buf).await.is_err() {
                    return false;
                }
                buf.clear();
                if wr.write_all(&p.bytes).await.is_err() {
                    return false;
                }
            } else {
                buf.extend_from_slice(&p.bytes);
                if buf.len() >= BATCH_LIMIT {
                    if wr.write_all(&buf).await.is_err() {
                        return false;
                    }
                    buf.clear();
                }
            }
            next = rx.try_recv().ok();
        }
        if !buf.is_empty() {
            if wr.write_all(&buf).await.is_err() {
                return false;
            }
            buf.clear();
        }
    }
}

async fn read_loop(rd: OwnedReadHalf, mut waiters: mpsc::Receiver<Waiter>, s: &BackendSettings) {
    let mut replies = FramedRead::with_capacity(rd, ReplyCodec::new(s.limits), 16 * 1024);
    let mut current: Option<Waiter> = None;
    loop {
        let reply = match replies.next().await {
            Some(Ok(reply)) => reply,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "malformed reply from backend; dropping connection");
                return;
            }
            None => return,
        };
        // A reply with no waiter means the stream is out of step; nothing after it can be trusted.
        let Some(mut w) = current.take().or_else(|| waiters.try_recv().ok()) else {
            tracing::warn!("unsolicited reply from backend; dropping connection");
            return;
        };
        if w.skip > 0 {
            w.skip -= 1;
            current = Some(w);
            continue;
        }
        // The caller may have timed out and gone; its reply is simply dropped.
        let _ = w.reply.send(reply);
    }
}
