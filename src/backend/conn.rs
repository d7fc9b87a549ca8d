//! One pipelined connection to one node. Requests from every client arrive on a bounded channel;
//! a writer drains whatever is queued into one batch and writes it with one syscall, and a reader
//! hands each reply to the oldest waiter: Redis answers in order, so FIFO matching is exact.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use super::batch::Batch;
use super::health::Health;
use super::settings::BackendSettings;
use crate::cluster::NodeAddr;
use crate::metrics::Metrics;
use crate::protocol::{ProtocolError, Reply, ReplyCodec};

/// Write the batch once it holds this much, so one batch never grows without bound.
const BATCH_LIMIT: usize = 64 * 1024;
/// How finely the hung-node check divides the operation timeout: a hung node is given up on
/// between one timeout and one timeout plus two of these periods after its last reply.
const HUNG_CHECKS_PER_TIMEOUT: u32 = 4;
/// Checks no more often than this, whatever the timeout.
const MIN_HUNG_CHECK: Duration = Duration::from_millis(5);

/// Why a connection answers a request with no reply. A dropped sender says the third thing: the
/// connection died with the request possibly executed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request never reached the node (it was refused while the node was down), so the
    /// caller may send it anywhere without risking a double execution.
    NotSent,
    /// The request was written, and the node then answered nothing for a whole operation
    /// timeout: it is hung, and the request may or may not have run.
    TimedOut,
}

pub(crate) type ReplySender = oneshot::Sender<Result<Reply, Failure>>;

/// A request on its way to the node. `skip` counts replies to discard before the one that answers
/// it: an `ASKING` sent in the same write comes back first.
pub(crate) struct Pending {
    pub bytes: Bytes,
    pub skip: u8,
    pub reply: ReplySender,
}

/// A waiter for a reply. Dropping one (when the connection dies) tells its caller the connection
/// was lost with the request possibly executed, with no extra bookkeeping.
struct Waiter {
    skip: u8,
    reply: ReplySender,
}

/// The sending side of one connection. Cloned senders keep the driver alive; when the last one is
/// dropped, the driver finishes what is queued and exits.
#[derive(Clone)]
pub(crate) struct Conn {
    tx: mpsc::Sender<Pending>,
}

impl Conn {
    /// The driver runs on `rt`, the runtime of the shard whose clients use this connection, so a
    /// reply wakes its client on the same thread.
    pub fn spawn(
        addr: NodeAddr,
        settings: Arc<BackendSettings>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        rt: &Handle,
    ) -> Conn {
        let (tx, rx) = mpsc::channel(settings.max_inflight);
        rt.spawn(supervise(addr, rx, settings, metrics, health));
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

    /// Queues a request only if there is room now; never waits. The fast path uses it, and falls
    /// back to [`Conn::enqueue`] (through the router's slow path) when it refuses.
    pub fn try_enqueue(&self, p: Pending) -> bool {
        self.tx.try_send(p).is_ok()
    }
}

/// Keeps one connection up for as long as anyone may send on it, reconnecting with capped,
/// jittered exponential backoff so a restarting node is not stormed by every proxy at once.
/// While the node cannot be reached, requests are refused at once as [`Failure::NotSent`]
/// instead of queueing: the router holds them until the slot's new master is known, and sends
/// them there.
async fn supervise(
    addr: NodeAddr,
    mut rx: mpsc::Receiver<Pending>,
    s: Arc<BackendSettings>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) {
    let mut backoff = s.reconnect_backoff_min;
    let mut down = false;
    let mut connected_before = false;
    loop {
        if rx.is_closed() && rx.is_empty() {
            break;
        }
        match open(&addr, &s).await {
            Ok(stream) => {
                if down {
                    health.mark_up();
                    down = false;
                    tracing::info!(node = %addr, "backend reachable again");
                }
                if connected_before {
                    metrics.backend_reconnects_total.inc();
                }
                connected_before = true;
                backoff = s.reconnect_backoff_min;
                metrics.backend_connections.inc();
                // Owned halves, not `tokio::io::split`: that one takes a lock on every read and
                // every write.
                let (rd, wr) = stream.into_split();
                let end = drive(rd, wr, &mut rx, &s, &health).await;
                metrics.backend_connections.dec();
                match end {
                    End::Closed => break,
                    End::Failed(why) => {
                        tracing::warn!(node = %addr, why, "backend connection lost");
                        health.failed();
                    }
                }
            }
            Err(e) => {
                if !down {
                    tracing::warn!(node = %addr, error = %e, "backend unreachable");
                    health.mark_down();
                    down = true;
                }
                let wait = backoff.mul_f64(0.5 + fastrand::f64());
                if !refuse_for(&mut rx, wait, &health).await {
                    break;
                }
                backoff = (backoff * 2).min(s.reconnect_backoff_max);
            }
        }
    }
    if down {
        health.mark_up();
    }
}

/// Opens a connection and checks the node answers PING: a stopped or loading node accepts TCP
/// connections (the kernel does) but must not be handed traffic.
async fn open(addr: &str, s: &BackendSettings) -> std::io::Result<TcpStream> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        let mut pong = [0u8; 7];
        stream.read_exact(&mut pong).await?;
        if &pong != b"+PONG\r\n" {
            return Err(std::io::Error::other("node did not answer PING with PONG"));
        }
        Ok(stream)
    };
    match tokio::time::timeout(s.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect or PING timed out",
        )),
    }
}

/// Refuses every request that arrives during `wait`. Returns false once no sender is left.
async fn refuse_for(rx: &mut mpsc::Receiver<Pending>, wait: Duration, health: &Health) -> bool {
    let sleep = tokio::time::sleep(wait);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            p = rx.recv() => match p {
                Some(p) => {
                    health.disrupted();
                    let _ = p.reply.send(Err(Failure::NotSent));
                }
                None => return false,
            },
        }
    }
}

enum End {
    /// Every sender is gone: shut down.
    Closed,
    /// The connection failed and should be re-established.
    Failed(&'static str),
}

/// Generic over the two halves so the loops can be driven over an in-memory pipe in tests;
/// production instantiates it once, with a TCP stream's owned halves.
async fn drive<R, W>(
    rd: R,
    wr: W,
    rx: &mut mpsc::Receiver<Pending>,
    s: &BackendSettings,
    health: &Health,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Bounded by the in-flight limit: the writer waits for room before sending more.
    let (wtx, mut wrx) = mpsc::channel::<Waiter>(s.max_inflight);
    let mut current: Option<Waiter> = None;
    // The waiters live here rather than in the loops, so that the disruption is counted before
    // they are dropped (which is how their callers learn of it).
    let end = tokio::select! {
        closed = write_loop(wr, rx, wtx) => match closed {
            true => End::Closed,
            false => End::Failed("write failed"),
        },
        why = read_loop(rd, &mut wrx, &mut current, s, health) => End::Failed(why),
    };
    if matches!(end, End::Failed(_)) {
        health.disrupted();
    }
    drop((current, wrx));
    end
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    rx: &mut mpsc::Receiver<Pending>,
    waiters: mpsc::Sender<Waiter>,
) -> bool {
    let mut batch = Batch::new(BATCH_LIMIT);
    loop {
        let Some(first) = rx.recv().await else {
            return true;
        };
        let mut next = Some(first);
        let mut yielded = false;
        while let Some(p) = next {
            let permit = match waiters.try_reserve() {
                Ok(permit) => permit,
                Err(TrySendError::Closed(())) => return false,
                // Room comes back as replies arrive, and replies only come for what was written:
                // with the batch unwritten, waiting here could wait for itself.
                Err(TrySendError::Full(())) => {
                    if !batch.is_empty() && batch.write_to(&mut wr).await.is_err() {
                        return false;
                    }
                    match waiters.reserve().await {
                        Ok(permit) => permit,
                        Err(_) => return false,
                    }
                }
            };
            // The waiter is queued before its bytes can reach the wire, so the reader always finds it.
            permit.send(Waiter {
                skip: p.skip,
                reply: p.reply,
            });
            batch.push(p.bytes);
            if batch.is_full() && batch.write_to(&mut wr).await.is_err() {
                return false;
            }
            next = rx.try_recv().ok();
            if next.is_none() && !yielded && !batch.is_full() {
                // Let the sessions that are ready to run add their requests to this batch: one
                // write for many clients instead of one per request.
                yielded = true;
                tokio::task::yield_now().await;
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() && batch.write_to(&mut wr).await.is_err() {
            return false;
        }
    }
}

/// Matches replies to waiters in order. Also the hung-node detector, and so the only timeout a
/// request has: if requests wait through a whole operation timeout without a single reply, every
/// waiter is told it timed out and the connection is dropped, to be reopened only once the node
/// answers PING again. One check per connection, a few times per timeout, instead of a timer per
/// request: Redis answers a connection's requests in order, so the oldest waiter's wait is the
/// connection's.
async fn read_loop<R: AsyncRead + Unpin>(
    rd: R,
    waiters: &mut mpsc::Receiver<Waiter>,
    current: &mut Option<Waiter>,
    s: &BackendSettings,
    health: &Health,
) -> &'static str {
    let mut replies = FramedRead::with_capacity(rd, ReplyCodec::new(s.limits), 16 * 1024);
    let period = (s.op_timeout / HUNG_CHECKS_PER_TIMEOUT).max(MIN_HUNG_CHECK);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Replies so far, and as of the last check; and when the connection was last seen either
    // idle or making progress. A stall began after that, so waiting a period longer than the
    // timeout before giving up guarantees every waiter a full timeout.
    let (mut answered, mut answered_at_check) = (0u64, 0u64);
    let mut progress_at = tokio::time::Instant::now();
    loop {
        let next = tokio::select! {
            r = replies.next() => r,
            now = tick.tick() => {
                let waiting = current.is_some() || !waiters.is_empty();
                if !waiting || answered != answered_at_check {
                    (progress_at, answered_at_check) = (now, answered);
                } else if now.duration_since(progress_at) >= s.op_timeout + period {
                    health.disrupted();
                    let queued = std::iter::from_fn(|| waiters.try_recv().ok());
                    for w in current.take().into_iter().chain(queued) {
                        let _ = w.reply.send(Err(Failure::TimedOut));
                    }
                    return "no reply within the operation timeout";
                }
                continue;
            }
        };
        let reply = match next {
            Some(Ok(reply)) => reply,
            Some(Err(ProtocolError::Io(_))) => return "read failed",
            Some(Err(_)) => return "malformed reply",
            None => return "closed by the node",
        };
        answered += 1;
        // A reply with no waiter means the stream is out of step; nothing after it can be trusted.
        let Some(mut w) = current.take().or_else(|| waiters.try_recv().ok()) else {
            return "unsolicited reply";
        };
        if w.skip > 0 {
            w.skip -= 1;
            *current = Some(w);
            continue;
        }
        // The caller may be gone (its client disconnected); the reply is simply dropped.
        let _ = w.reply.send(Ok(reply));
    }
}
