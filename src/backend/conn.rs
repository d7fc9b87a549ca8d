//! One pipelined connection to one node. Requests from every client arrive on a bounded channel;
//! a writer drains whatever is queued into one batch and writes it with one syscall, and a reader
//! hands each reply to the oldest waiter: Redis answers in order, so FIFO matching is exact.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_util::codec::{Decoder, FramedRead};

use super::batch::Batch;
use super::health::Health;
use super::settings::BackendSettings;
use crate::cluster::NodeAddr;
use prometheus::IntGauge;

use crate::budget::Budget;
use crate::metrics::{ConnMetrics, Metrics, NodeMetrics, Spans};
use crate::protocol::{Limits, Proto, ProtocolError, Reply, ReplyCodec};
use crate::reads::Reads;

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
    /// The client's output budget: its reply counts there from the moment it arrives.
    pub budget: Option<Arc<Budget>>,
}

/// A waiter for a reply. Dropping one (when the connection dies) tells its caller the connection
/// was lost with the request possibly executed, with no extra bookkeeping.
struct Waiter {
    skip: u8,
    reply: ReplySender,
    budget: Option<Arc<Budget>>,
    /// When the writer took the first request of this one's batch: its round trip starts there.
    sent: Instant,
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
    /// `up` says whether the connection is open, for choosing among a shard's replicas.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        addr: NodeAddr,
        proto: Proto,
        settings: Arc<BackendSettings>,
        metrics: Arc<Metrics>,
        node: Arc<NodeMetrics>,
        health: Arc<Health>,
        up: Arc<AtomicBool>,
        rt: &Handle,
    ) -> Conn {
        let (tx, rx) = mpsc::channel(settings.max_inflight);
        let node = Supervised {
            addr,
            proto,
            settings,
            metrics,
            node,
            health,
            up,
        };
        rt.spawn(supervise(node, rx));
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

    /// A connection for one client alone (see `dedicated.rs`): opened now, on the caller's
    /// runtime, and never reopened. When it fails, or the returned handle aborts it, every
    /// request on it fails: whatever the client kept on it is gone, and it must hear so.
    /// Its bytes and failures count for its node, not its round trips: a blocking command waits
    /// by design, and the node's latency is the shared connections'.
    pub async fn open_dedicated(
        addr: NodeAddr,
        proto: Proto,
        settings: Arc<BackendSettings>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        check: Check,
    ) -> std::io::Result<(Conn, AbortHandle)> {
        let stream = open_checked(&addr, &settings, proto, check).await?;
        let (tx, mut rx) = mpsc::channel(settings.max_inflight);
        let conn = metrics.node(&addr).connection();
        let task = tokio::spawn(async move {
            let _open = Open::count(&metrics.dedicated_connections);
            let (rd, wr) = stream.into_split();
            let end = drive(rd, wr, &mut rx, &settings, &health, &conn, false).await;
            if let End::Failed(loss) = end {
                conn.node().lost(loss.kind(), loss.why(), true);
            }
        });
        Ok((Conn { tx }, task.abort_handle()))
    }
}

/// Counts a connection as open for as long as its driver lives, aborted or not.
struct Open(IntGauge);

impl Open {
    fn count(gauge: &IntGauge) -> Open {
        gauge.inc();
        Open(gauge.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Keeps one connection up for as long as anyone may send on it, reconnecting with capped,
/// jittered exponential backoff so a restarting node is not stormed by every proxy at once.
/// While the node cannot be reached, requests are refused at once as [`Failure::NotSent`]
/// instead of queueing: the router holds them until the slot's new master is known, and sends
/// them there.
/// What a supervised connection is to and how it reports.
struct Supervised {
    addr: NodeAddr,
    proto: Proto,
    settings: Arc<BackendSettings>,
    metrics: Arc<Metrics>,
    node: Arc<NodeMetrics>,
    health: Arc<Health>,
    up: Arc<AtomicBool>,
}

async fn supervise(node: Supervised, mut rx: mpsc::Receiver<Pending>) {
    let Supervised {
        addr,
        proto,
        settings: s,
        metrics,
        node,
        health,
        up,
    } = node;
    // One connection at a time, over every reconnection: this task is its only writer.
    let conn = node.connection();
    let mut backoff = s.reconnect_backoff_min;
    let mut down = false;
    // "Unreachable" was logged for this connection: "reachable again" is worth a line too.
    let mut told_down = false;
    let mut connected_before = false;
    loop {
        if rx.is_closed() && rx.is_empty() {
            break;
        }
        match open(&addr, &s, proto).await {
            Ok(stream) => {
                if down {
                    health.mark_up();
                    down = false;
                    if std::mem::take(&mut told_down) {
                        tracing::info!(node = %addr, "backend reachable again");
                    }
                }
                if connected_before {
                    metrics.backend_reconnects_total.inc();
                }
                connected_before = true;
                backoff = s.reconnect_backoff_min;
                conn.set_open(true);
                up.store(true, Ordering::Relaxed);
                // Owned halves, not `tokio::io::split`: that one takes a lock on every read and
                // every write.
                let (rd, wr) = stream.into_split();
                let end = drive(rd, wr, &mut rx, &s, &health, &conn, true).await;
                up.store(false, Ordering::Relaxed);
                conn.set_open(false);
                match end {
                    End::Closed => break,
                    End::Failed(loss) => {
                        node.lost(loss.kind(), loss.why(), false);
                        if let Some(held) = health.quiet.admit(&(addr.clone(), "lost")) {
                            let why = loss.why();
                            tracing::warn!(node = %addr, why, held, "backend connection lost");
                        }
                        health.failed();
                    }
                }
            }
            Err(e) => {
                node.unreachable();
                if !down {
                    health.mark_down();
                    down = true;
                }
                // Asked again on every failed attempt while held back, so that a node that
                // stays away is in the log within an interval.
                if !told_down {
                    if let Some(held) = health.quiet.admit(&(addr.clone(), "unreachable")) {
                        tracing::warn!(node = %addr, error = %e, held, "backend unreachable");
                        told_down = true;
                    }
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

/// Opens a connection speaking `proto` and checks the node answers PING: a stopped or loading
/// node accepts TCP connections (the kernel does) but must not be handed traffic.
pub(crate) async fn open(
    addr: &str,
    s: &BackendSettings,
    proto: Proto,
) -> std::io::Result<TcpStream> {
    open_checked(addr, s, proto, Check::Serving).await
}

/// What answer to the connection check's PING makes a node fit for the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// PONG: the node serves requests.
    Serving,
    /// PONG, or BUSY: a node busy running a script still answers what stops or shows it
    /// (SCRIPT KILL, FUNCTION KILL, FUNCTION STATS), which is all such a connection is for.
    Alive,
}

pub(crate) async fn open_checked(
    addr: &str,
    s: &BackendSettings,
    proto: Proto,
    check: Check,
) -> std::io::Result<TcpStream> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        if let Err(e) = crate::keepalive::set(&stream, s.tcp_keepalive) {
            tracing::debug!(node = addr, error = %e, "cannot turn TCP keepalive on");
        }
        if proto == Proto::Resp3 {
            ask(&mut stream, b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n", &s.limits).await?;
        }
        if s.readonly {
            ask(&mut stream, b"*1\r\n$8\r\nREADONLY\r\n", &s.limits).await?;
        }
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        let pong = read_one(&mut stream, &s.limits).await?;
        let busy = || pong.error().is_some_and(|e| e.starts_with(b"BUSY"));
        if pong.bytes()[..] != b"+PONG\r\n"[..] && !(check == Check::Alive && busy()) {
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

/// Sends one command that sets up a fresh connection (HELLO 3, READONLY) and checks it was not
/// refused.
async fn ask(stream: &mut TcpStream, command: &[u8], limits: &Limits) -> std::io::Result<()> {
    stream.write_all(command).await?;
    let reply = read_one(stream, limits).await?;
    match reply.error() {
        None => Ok(()),
        Some(e) => Err(std::io::Error::other(format!(
            "node refused {}: {}",
            String::from_utf8_lossy(command)
                .split("\r\n")
                .nth(2)
                .unwrap_or_default(),
            String::from_utf8_lossy(e)
        ))),
    }
}

/// The one reply to a fresh connection's one command: nothing else is in flight on it, so it is
/// all there is to read.
async fn read_one(stream: &mut TcpStream, limits: &Limits) -> std::io::Result<Reply> {
    let mut codec = ReplyCodec::new(*limits);
    let mut buf = BytesMut::with_capacity(512);
    loop {
        if let Some(reply) = codec.decode(&mut buf).map_err(std::io::Error::other)? {
            return Ok(reply);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
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

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Every sender is gone: shut down.
    Closed,
    /// The connection failed and should be re-established.
    Failed(Loss),
}

/// How a connection failed: its node's error kind in the metrics, and words for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    WriteFailed,
    ReadFailed,
    MalformedReply,
    ClosedByNode,
    UnsolicitedReply,
    /// No reply within the operation timeout: the node is taken for hung.
    Hung,
}

impl Loss {
    /// One of [`crate::metrics::BACKEND_ERROR_KINDS`].
    fn kind(self) -> &'static str {
        match self {
            Loss::WriteFailed => "write_failed",
            Loss::ReadFailed => "read_failed",
            Loss::MalformedReply => "malformed_reply",
            Loss::ClosedByNode => "closed",
            Loss::UnsolicitedReply => "unsolicited_reply",
            Loss::Hung => "timeout",
        }
    }

    fn why(self) -> &'static str {
        match self {
            Loss::WriteFailed => "write failed",
            Loss::ReadFailed => "read failed",
            Loss::MalformedReply => "malformed reply",
            Loss::ClosedByNode => "closed by the node",
            Loss::UnsolicitedReply => "unsolicited reply",
            Loss::Hung => "no reply within the operation timeout",
        }
    }
}

/// Generic over the two halves so the loops can be driven over an in-memory pipe in tests;
/// production instantiates it once, with a TCP stream's owned halves. `m` is the connection's
/// metrics, written by this task alone; `timed` says whether its round trips are the node's
/// latency.
async fn drive<R, W>(
    rd: R,
    wr: W,
    rx: &mut mpsc::Receiver<Pending>,
    s: &BackendSettings,
    health: &Health,
    m: &ConnMetrics,
    timed: bool,
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
        closed = write_loop(wr, rx, wtx, m) => match closed {
            true => End::Closed,
            false => End::Failed(Loss::WriteFailed),
        },
        loss = read_loop(rd, &mut wrx, &mut current, s, health, m, timed) => End::Failed(loss),
    };
    if matches!(end, End::Failed(_)) {
        health.disrupted();
    }
    drop((current, wrx));
    m.none_in_flight();
    end
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    rx: &mut mpsc::Receiver<Pending>,
    waiters: mpsc::Sender<Waiter>,
    m: &ConnMetrics,
) -> bool {
    let mut batch = Batch::new(BATCH_LIMIT);
    loop {
        let Some(first) = rx.recv().await else {
            return true;
        };
        // One clock read per batch: every request in it is timed from here.
        let sent = Instant::now();
        let mut next = Some(first);
        let mut yielded = false;
        while let Some(p) = next {
            let permit = match waiters.try_reserve() {
                Ok(permit) => permit,
                Err(TrySendError::Closed(())) => return false,
                // Room comes back as replies arrive, and replies only come for what was written:
                // with the batch unwritten, waiting here could wait for itself.
                Err(TrySendError::Full(())) => {
                    if !batch.is_empty() && write(&mut batch, &mut wr, m).await.is_err() {
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
                budget: p.budget,
                sent,
            });
            m.sent_request();
            batch.push(p.bytes);
            if batch.is_full() && write(&mut batch, &mut wr, m).await.is_err() {
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
        if !batch.is_empty() && write(&mut batch, &mut wr, m).await.is_err() {
            return false;
        }
    }
}

/// Writes the batch, counting its bytes for the node.
async fn write<W: AsyncWrite + Unpin>(
    batch: &mut Batch,
    wr: &mut W,
    m: &ConnMetrics,
) -> std::io::Result<()> {
    m.wrote(batch.bytes());
    batch.write_to(wr).await
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
    m: &ConnMetrics,
    timed: bool,
) -> Loss {
    let mut replies =
        FramedRead::with_capacity(Reads::new(rd), ReplyCodec::new(s.limits), 16 * 1024);
    // When the last read brought bytes: the replies it completed arrived then.
    let mut arrived = Instant::now();
    let mut spans = Spans::new();
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
                    return Loss::Hung;
                }
                continue;
            }
        };
        let reply = match next {
            Some(Ok(reply)) => reply,
            Some(Err(ProtocolError::Io(_))) => return Loss::ReadFailed,
            Some(Err(_)) => return Loss::MalformedReply,
            None => return Loss::ClosedByNode,
        };
        let reads = replies.get_mut();
        if reads.take_fresh() {
            arrived = Instant::now();
            m.read(reads.take_bytes() as usize);
        }
        answered += 1;
        // A RESP3 push answers no request. Nothing slotgate sends on these connections asks for
        // one (no SUBSCRIBE, no CLIENT TRACKING), but one must never be taken for a reply.
        if reply.bytes().first() == Some(&b'>') {
            continue;
        }
        // A reply with no waiter means the stream is out of step; nothing after it can be trusted.
        let Some(mut w) = current.take().or_else(|| waiters.try_recv().ok()) else {
            return Loss::UnsolicitedReply;
        };
        if w.skip > 0 {
            w.skip -= 1;
            *current = Some(w);
            continue;
        }
        m.replied(timed.then(|| spans.measure(w.sent, arrived)));
        deliver(w, reply);
    }
}

/// Hands `reply` to its caller, counting it against the caller's budget while it waits there.
/// A reply that would take its client over its hard limit is dropped here: that client is being
/// cut off, and holding the reply is what the limit is there to prevent.
fn deliver(w: Waiter, reply: Reply) {
    let len = reply.bytes().len();
    if let Some(budget) = &w.budget {
        if !budget.arrived(len) {
            return;
        }
    }
    // The caller may be gone (its client disconnected); the reply is simply dropped.
    if w.reply.send(Ok(reply)).is_err() {
        if let Some(budget) = &w.budget {
            budget.taken(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use tokio::io::{DuplexStream, WriteHalf};
    use tokio::sync::oneshot::error::TryRecvError;
    use tokio::task::JoinHandle;
    use tokio::time::Instant;

    use super::*;
    use crate::order::Disruptions;
    use crate::protocol::Limits;

    const OP_TIMEOUT: Duration = Duration::from_secs(1);
    /// The hung-node check's period at [`OP_TIMEOUT`].
    const PERIOD: Duration = Duration::from_millis(250);

    type Answer = oneshot::Receiver<Result<Reply, Failure>>;

    /// Counts the writes that reach the pipe. It also takes every slice of a vectored write at
    /// once, as a socket does; the pipe alone would take only the first, one write per request.
    struct Counted {
        inner: WriteHalf<DuplexStream>,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
            if matches!(polled, Poll::Ready(Ok(_))) {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            polled
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            self.poll_write(cx, &joined)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A driver over an in-memory pipe, with the test playing the node at the pipe's other end.
    /// The tests run on one thread, so the driver starts only when the test first waits: requests
    /// sent before that are all queued when the writer first looks.
    struct Fixture {
        /// None once the test hangs up, which is how the driver learns to shut down.
        conn: Option<Conn>,
        node: DuplexStream,
        disruptions: Arc<Disruptions>,
        writes: Arc<AtomicUsize>,
        /// Hands the request channel back when the driver ends, so that a request still in it
        /// is not dropped with the task: in `supervise` it would wait for the next connection.
        driver: JoinHandle<(End, mpsc::Receiver<Pending>)>,
    }

    impl Fixture {
        fn start(max_inflight: usize) -> Fixture {
            let s = BackendSettings {
                connections_per_node: 1,
                max_inflight,
                connect_timeout: OP_TIMEOUT,
                op_timeout: OP_TIMEOUT,
                reconnect_backoff_min: OP_TIMEOUT,
                reconnect_backoff_max: OP_TIMEOUT,
                limits: Limits::default(),
                readonly: false,
                tcp_keepalive: None,
            };
            assert_eq!(s.op_timeout / HUNG_CHECKS_PER_TIMEOUT, PERIOD);
            let (tx, mut rx) = mpsc::channel(max_inflight);
            let (near, node) = tokio::io::duplex(64 * 1024);
            let (rd, wr) = tokio::io::split(near);
            let writes = Arc::new(AtomicUsize::new(0));
            let wr = Counted {
                inner: wr,
                writes: writes.clone(),
            };
            let disruptions = Arc::new(Disruptions::default());
            let health = Arc::new(Health::new(Arc::new(|| {}), disruptions.clone()));
            let h = health.clone();
            let node_metrics = Metrics::new().node("test:1");
            let driver = tokio::spawn(async move {
                let m = node_metrics.connection();
                let end = drive(rd, wr, &mut rx, &s, &h, &m, true).await;
                (end, rx)
            });
            Fixture {
                conn: Some(Conn { tx }),
                node,
                disruptions,
                writes,
                driver,
            }
        }

        /// Queues a request the way the fast path does.
        fn send(&self, bytes: &[u8], skip: u8) -> Answer {
            let (reply, answer) = oneshot::channel();
            let bytes = Bytes::copy_from_slice(bytes);
            let conn = self.conn.as_ref().unwrap();
            assert!(conn.try_enqueue(Pending {
                bytes,
                skip,
                reply,
                budget: None,
            }));
            answer
        }

        /// Sends a GET per key, all queued at once, and reads them at the node in that order.
        async fn gets<const N: usize>(&mut self, keys: [&str; N]) -> [Answer; N] {
            let answers = keys.map(|k| self.send(&get(k), 0));
            self.expect(&keys.map(get).concat()).await;
            answers
        }

        /// Sends a GET of `k` redirected by ASK (so with `ASKING` before it in the same write),
        /// then a plain GET of `j`, and reads both at the node.
        async fn asked_then_plain(&mut self) -> [Answer; 2] {
            let asking_get = [command(&["ASKING"]), get("k")].concat();
            let answers = [self.send(&asking_get, 1), self.send(&get("j"), 0)];
            self.expect(&[asking_get, get("j")].concat()).await;
            answers
        }

        /// Reads what the driver wrote to the node, which must be exactly `want`.
        async fn expect(&mut self, want: &[u8]) {
            let mut got = vec![0; want.len()];
            let read = soon(self.node.read_exact(&mut got)).await;
            read.expect("the driver closed the connection");
            assert_eq!(got, want, "the node received something else");
        }

        async fn reply(&mut self, bytes: &[u8]) {
            let written = self.node.write_all(bytes).await;
            written.expect("the driver closed the connection");
        }

        /// Waits for the driver to stop. The request channel comes back with the end, for the
        /// caller to keep alive while it looks at what the driver left behind.
        async fn ended(&mut self) -> (End, mpsc::Receiver<Pending>) {
            soon(&mut self.driver).await.unwrap()
        }
    }

    /// Bounds every wait, so that a broken driver fails a test instead of hanging it: with the
    /// clock paused, a check that never fires would otherwise tick on forever.
    async fn soon<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(10 * OP_TIMEOUT, f)
            .await
            .expect("still waiting after ten operation timeouts")
    }

    /// Lets the driver run until it waits for something: with the clock paused, time moves only
    /// once every task is idle.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    fn command(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out += &format!("${}\r\n{a}\r\n", a.len());
        }
        out.into_bytes()
    }

    fn get(key: &str) -> Vec<u8> {
        command(&["GET", key])
    }

    fn bulk(value: &str) -> Vec<u8> {
        format!("${}\r\n{value}\r\n", value.len()).into_bytes()
    }

    /// The reply a caller got; panics on a failure or a lost connection.
    async fn replied(answer: Answer) -> Vec<u8> {
        soon(answer).await.unwrap().unwrap().into_bytes().to_vec()
    }

    /// A dropped sender: the connection was lost with the request possibly executed.
    async fn lost(answer: Answer) -> bool {
        soon(answer).await.is_err()
    }

    async fn timed_out(answer: Answer) -> bool {
        matches!(soon(answer).await, Ok(Err(Failure::TimedOut)))
    }

    /// The documented window: no sooner than a timeout after the node went quiet, and no later
    /// than two check periods after that.
    fn assert_given_up_in_time(quiet_since: Instant) {
        let waited = quiet_since.elapsed();
        assert!(waited >= OP_TIMEOUT, "gave up after {waited:?}");
        assert!(
            waited <= OP_TIMEOUT + 2 * PERIOD,
            "gave up after {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pipelined_requests_go_out_in_one_write_and_replies_return_in_order() {
        let mut f = Fixture::start(16);
        let answers = f.gets(["a", "b", "c"]).await;
        assert_eq!(
            f.writes.load(Ordering::Relaxed),
            1,
            "one write for the batch"
        );

        let values = ["value of a", "value of b", "value of c"];
        f.reply(&values.map(bulk).concat()).await;
        for (answer, value) in answers.into_iter().zip(values) {
            assert_eq!(replied(answer).await, bulk(value));
        }
        f.conn = None;
        assert_eq!(f.ended().await.0, End::Closed);
        assert_eq!(f.disruptions.count(), 0);
    }

    /// The reply after the skipped one goes to the next caller: exactly one was discarded.
    #[tokio::test(start_paused = true)]
    async fn asking_reply_is_skipped() {
        let mut f = Fixture::start(16);
        let [redirected, next] = f.asked_then_plain().await;

        f.reply(&[b"+OK\r\n".to_vec(), bulk("k's"), bulk("j's")].concat())
            .await;
        assert_eq!(replied(redirected).await, bulk("k's"));
        assert_eq!(replied(next).await, bulk("j's"));
    }

    #[tokio::test(start_paused = true)]
    async fn hung_node_times_out_every_waiter() {
        let mut f = Fixture::start(16);
        let quiet_since = Instant::now();
        let answers = f.gets(["a", "b"]).await;

        for answer in answers {
            assert!(timed_out(answer).await);
        }
        assert_given_up_in_time(quiet_since);
        let end = f.ended().await.0;
        assert_eq!(end, End::Failed(Loss::Hung));
        assert!(f.disruptions.count() > 0);
    }

    /// The waiter that has had its ASKING reply is held apart from the queued ones.
    #[tokio::test(start_paused = true)]
    async fn hung_node_times_out_a_waiter_past_its_asking_reply() {
        let mut f = Fixture::start(16);
        let [redirected, queued] = f.asked_then_plain().await;
        f.reply(b"+OK\r\n").await;
        let quiet_since = Instant::now();

        assert!(timed_out(redirected).await);
        assert!(timed_out(queued).await);
        assert_given_up_in_time(quiet_since);
    }

    /// Idle time is not a stall: a request that arrives after a long idle spell still gets a whole
    /// timeout for its reply.
    #[tokio::test(start_paused = true)]
    async fn idle_connection_is_not_declared_hung() {
        let mut f = Fixture::start(16);
        tokio::time::sleep(10 * OP_TIMEOUT).await;
        assert!(!f.driver.is_finished(), "{:?}", f.ended().await.0);

        let [answer] = f.gets(["a"]).await;
        tokio::time::sleep(OP_TIMEOUT - Duration::from_millis(1)).await;
        f.reply(&bulk("late")).await;
        assert_eq!(replied(answer).await, bulk("late"));
    }

    /// An extra reply can only be noticed when nobody waits for one, so the caller still waiting
    /// here is one the writer holds back for want of in-flight room.
    #[tokio::test(start_paused = true)]
    async fn unsolicited_reply_fails_the_connection() {
        let mut f = Fixture::start(1);
        let [first] = f.gets(["a"]).await;
        let held = f.send(&get("b"), 0);
        settle().await;

        f.reply(&[bulk("a's"), b"+EXTRA\r\n".to_vec()].concat())
            .await;
        assert_eq!(replied(first).await, bulk("a's"));
        let (end, _queue) = f.ended().await;
        assert_eq!(end, End::Failed(Loss::UnsolicitedReply));
        assert!(lost(held).await);
    }

    #[tokio::test(start_paused = true)]
    async fn reply_cut_in_half_is_delivered_whole_once_complete() {
        let mut f = Fixture::start(16);
        let [mut cut, next] = f.gets(["a", "b"]).await;

        let whole = bulk("a value long enough to cut");
        let (head, tail) = whole.split_at(whole.len() / 2);
        f.reply(head).await;
        tokio::time::sleep(PERIOD).await;
        assert!(matches!(cut.try_recv(), Err(TryRecvError::Empty)));
        f.reply(&[tail, &bulk("b's")].concat()).await;
        assert_eq!(replied(cut).await, whole);
        assert_eq!(replied(next).await, bulk("b's"));
    }

    #[tokio::test(start_paused = true)]
    async fn node_closing_mid_request_loses_the_waiters() {
        let mut f = Fixture::start(16);
        let [answered, unanswered] = f.gets(["a", "b"]).await;

        f.reply(&bulk("a's")).await;
        f.node.shutdown().await.unwrap();
        assert_eq!(replied(answered).await, bulk("a's"));
        assert!(lost(unanswered).await);
        assert_eq!(f.ended().await.0, End::Failed(Loss::ClosedByNode));
        assert!(f.disruptions.count() > 0);
    }
}
