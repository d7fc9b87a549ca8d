//! One client connection. The only place that guarantees reply order: every request takes a place
//! in an ordered queue (`inflight`), and replies are written in the order the requests arrived,
//! however the backends they went to race each other.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::client_admin;
use super::clients::{Listed, Peer};
use super::inflight::{Answered, Inflight, Popped, Stamp};
use super::info;
use super::local::{self, After, ClientState};
use super::pubsub_info;
use super::subscription::{self, Subscription};
use super::transaction::Transaction;
use super::Frontend;
use crate::backend::Lane;
use crate::budget::{Breach, Budget, Reading};
use crate::command::{Action, CommandId, Keys, LocalCommand, PubSubCommand, TxnCommand};
use crate::metrics::Spans;
use crate::protocol::{Proto, ProtocolError, Reply, Request, RequestCodec};
use crate::reads::Reads;
use crate::route::split;

/// Replies at least this big are written straight from their buffer instead of being copied into
/// the batch.
const DIRECT_WRITE: usize = 64 * 1024;

pub async fn run(stream: TcpStream, fe: Arc<Frontend>) {
    let id = fe.totals.next_client_id.fetch_add(1, Ordering::Relaxed);
    let affinity = fe.next_affinity.fetch_add(1, Ordering::Relaxed);
    fe.metrics.client_connections.inc();
    fe.metrics.client_connections_accepted.inc();
    let peer = Peer {
        addr: stream.peer_addr().ok(),
        laddr: stream.local_addr().ok(),
        fd: i64::from(std::os::fd::AsRawFd::as_raw_fd(&stream)),
    };
    let peer_addr = peer.addr;
    let (rd, mut wr) = stream.into_split();
    let mut requests = FramedRead::with_capacity(
        Reads::new(rd),
        RequestCodec::new(fe.settings.limits),
        16 * 1024,
    );
    let given = fe.client_settings();
    let output = Arc::new(Budget::new(given.output));
    let mut session = Session {
        fe: fe.clone(),
        client: ClientState {
            id,
            ..Default::default()
        },
        listed: fe.totals.clients.enter(id, peer, output.clone()),
        replies: Replies::On,
        reply_command: false,
        silent: VecDeque::new(),
        inflight: Inflight::new(
            fe.router.clone(),
            Lane {
                affinity,
                proto: Proto::Resp2,
                replica_reads: fe.router.reads_replicas(),
            },
            output,
        ),
        affinity,
        reading: true,
        disruptions: 0,
        parked: VecDeque::new(),
        barrier: false,
        blocking: false,
        late_error: None,
        quit: false,
        txn: None,
        subs: None,
        read_at: Instant::now(),
        peer: peer_addr,
        spans: Spans::new(),
    };
    let mut out = BytesMut::with_capacity(16 * 1024);
    let max_pipeline = given.max_pipeline;
    let idle = given.idle_timeout;
    let idle_sleep = tokio::time::sleep(idle.unwrap_or(std::time::Duration::MAX / 4));
    tokio::pin!(idle_sleep);
    let budget = session.inflight.budget().clone();
    let pause_at = given.output.pause_at();
    // The budget is also how CLIENT KILL ends this session: it wakes the task it last saw, so
    // it must have seen this one before the first reply is written.
    std::future::poll_fn(|cx| {
        let _ = std::future::Future::poll(std::pin::pin!(budget.breached()), cx);
        std::task::Poll::Ready(())
    })
    .await;
    // Ends once the client has nothing more to say and every reply it is owed is written.
    while session.reading || !session.inflight.is_empty() || !session.parked.is_empty() {
        let messages = session.subs.as_ref().map(|s| s.member.budget.clone());
        tokio::select! {
            biased;
            // Watched here only once replies have passed a mark (the write below always watches):
            // a look on every turn of this loop is a cost on every request.
            breach = budget.breached(), if budget.alerted() => {
                session.cut_off(breach);
                break;
            }
            breach = breached(messages.as_deref()) => {
                session.cut_off(breach);
                break;
            }
            Some(popped) = session.inflight.next(), if !session.inflight.is_empty() => {
                // A client that does not read can leave this write pending for ever: its limits
                // are watched meanwhile.
                let written = tokio::select! {
                    written = session.write_replies(popped, &mut wr, &mut out) => written.is_ok(),
                    breach = budget.breached() => {
                        session.cut_off(breach);
                        false
                    }
                    breach = breached(messages.as_deref()) => {
                        session.cut_off(breach);
                        false
                    }
                };
                if !written {
                    break;
                }
            }
            // After the replies in flight: a (P)SUBSCRIBE's confirmation goes out before messages
            // of its channels, as on Redis.
            Some(message) = next_message(&mut session.subs), if session.inflight.is_empty() => {
                let written = tokio::select! {
                    written = session.write_messages(message, &mut wr, &mut out) => written.is_ok(),
                    breach = breached(messages.as_deref()) => {
                        session.cut_off(breach);
                        false
                    }
                };
                if !written {
                    break;
                }
            }
            next = next_request(&mut requests, &budget), if session.reading
                && session.inflight.len() + session.parked.len() < max_pipeline
                && budget.total() < pause_at => {
                let next = match next {
                    Next::Input(next) => next,
                    // CLIENT KILL, seen while waiting for the client; other branches see it on
                    // the loop's next turn, through the budget's alert.
                    Next::Killed => break,
                    // Shutting down: what was read is answered, nothing more is read, and the
                    // loop ends once every reply is written.
                    Next::Drain => {
                        session.reading = false;
                        continue;
                    }
                };
                if let (Some(Ok(_)), Some(d)) = (&next, idle) {
                    idle_sleep.as_mut().reset(tokio::time::Instant::now() + d);
                }
                // One clock read per socket read: the requests it completed arrived together.
                if requests.get_mut().take_fresh() {
                    session.read_at = Instant::now();
                }
                if session.read(next) == Gone::Cancel {
                    break;
                }
            }
            // A subscriber only listens: as on Redis, it is never idle.
            () = &mut idle_sleep, if idle.is_some() && session.inflight.is_empty() && session.subs.is_none() => break,
            else => break,
        }
    }
    let unanswered =
        session.inflight.len() + session.parked.len() + usize::from(session.late_error.is_some());
    session.fe.requests.dropped(unanswered);
    let _ = wr.shutdown().await;
    fe.metrics.client_connections.dec();
}

/// Whether the session goes on after what the client sent.
#[derive(Debug, PartialEq, Eq)]
enum Gone {
    Stay,
    /// The client left while blocked: end the session now, cancelling what is in flight.
    Cancel,
}

/// The next message for a subscribed client; never, for one that is not.
async fn next_message(subs: &mut Option<Subscription>) -> Option<Bytes> {
    match subs {
        Some(s) => s.member.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the session reads next.
enum Next {
    /// What the client sent: a request, the end of its input, or bytes that are not RESP.
    Input(Option<Result<Request, ProtocolError>>),
    /// Another client killed this one.
    Killed,
    /// The proxy is shutting down.
    Drain,
}

/// The client's next request, unless another client killed this one or the proxy drains: the
/// kill or the drain wakes the session, and only the branches polled then can see it, so the
/// read looks (one load).
async fn next_request(
    requests: &mut FramedRead<Reads<OwnedReadHalf>, RequestCodec>,
    budget: &Budget,
) -> Next {
    std::future::poll_fn(|cx| match budget.reading() {
        Reading::Go => requests.poll_next_unpin(cx).map(Next::Input),
        Reading::Killed => std::task::Poll::Ready(Next::Killed),
        Reading::Drain => std::task::Poll::Ready(Next::Drain),
    })
    .await
}

/// When `budget`, if any, is broken.
async fn breached(budget: Option<&Budget>) -> Breach {
    match budget {
        Some(b) => b.breached().await,
        None => std::future::pending().await,
    }
}

/// Messages written to the socket at most at once, so replies are not held up behind them.
const MESSAGE_BATCH: usize = 64 * 1024;

/// Commands a subscribed client may send (RESP2), as Redis allows.
fn allowed_subscribed(action: Action) -> bool {
    matches!(
        action,
        Action::PubSub(_)
            | Action::Local(LocalCommand::Ping | LocalCommand::Quit | LocalCommand::Reset)
    )
}

/// `CLIENT REPLY`: whether the client gets the replies to its next requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replies {
    On,
    Off,
    /// The next request's reply is withheld, then `On` again.
    SkipNext,
}

/// Local commands that change what CLIENT LIST shows of the client.
fn shown_by_list(cmd: LocalCommand) -> bool {
    matches!(
        cmd,
        LocalCommand::ClientSetName
            | LocalCommand::ClientSetInfo
            | LocalCommand::Hello
            | LocalCommand::Reset
    )
}

/// Commands a MULTI runs at once instead of queueing them, as Redis does.
fn runs_now_in_multi(action: Action) -> bool {
    matches!(
        action,
        Action::Transaction(
            TxnCommand::Multi | TxnCommand::Exec | TxnCommand::Discard | TxnCommand::Watch
        ) | Action::Local(LocalCommand::Quit | LocalCommand::Reset)
    )
}

struct Session {
    fe: Arc<Frontend>,
    client: ClientState,
    /// The client's line in CLIENT LIST; dropped with the session, unlisting it.
    listed: Listed,
    /// Set by CLIENT REPLY.
    replies: Replies,
    /// The request being dispatched is a CLIENT REPLY, which decides its own reply's fate.
    reply_command: bool,
    /// Numbers of the queued entries whose replies are withheld (CLIENT REPLY OFF or SKIP), in
    /// order; empty unless the client asked for that.
    silent: VecDeque<u64>,
    inflight: Inflight,
    reading: bool,
    /// The router's disruption count when the oldest request in flight was dispatched.
    disruptions: u64,
    /// Requests read after a disruption or behind a blocking command, waiting for everything
    /// before them to be answered, with when they were read. Bounded with the in-flight requests
    /// by `max_pipeline`.
    parked: VecDeque<(Request, Instant)>,
    /// A request is in flight that nothing after it may overtake: a blocking command (Redis runs
    /// nothing after it until it is answered), or a WATCH or EXEC, which reach their node over a
    /// connection of their own and could otherwise be overtaken on the shared one.
    barrier: bool,
    /// A blocking command is in flight or parked: if the client leaves, it is cancelled rather
    /// than run for nobody. Reading goes on meanwhile so that the leaving is noticed.
    blocking: bool,
    /// QUIT was answered: nothing after it runs.
    quit: bool,
    /// The protocol error that ended the client's input, answered after the parked requests
    /// read before it; and when it was read.
    late_error: Option<(Reply, Instant)>,
    /// WATCH, MULTI and their reserved connection; dropped with the session, closing it.
    txn: Option<Transaction>,
    /// Channels and patterns, and the client's place in the worker's hub; dropped with the
    /// session, unsubscribing it.
    subs: Option<Subscription>,
    /// Which backend connection (and, for keyless commands, which master) this client uses.
    affinity: usize,
    /// When the socket read that completed the latest request happened.
    read_at: Instant,
    /// The client's address, for SLOWLOG.
    peer: Option<SocketAddr>,
    /// The last request time measured: a batch's replies mostly share it.
    spans: Spans,
}

impl Session {
    /// Writes `first` and every reply already done after it with one syscall, then dispatches a
    /// parked request if nothing is in flight any more.
    async fn write_replies(
        &mut self,
        first: Popped,
        wr: &mut OwnedWriteHalf,
        out: &mut BytesMut,
    ) -> std::io::Result<()> {
        // One clock read per batch: every reply in it is queued to be written now. The slow log's
        // threshold is read here too, so that a reload reaches every client.
        let mut now = Instant::now();
        let slow_ns = self.fe.totals.slowlog.threshold_ns();
        let mut next = Some(first);
        while let Some(popped) = next {
            self.count(&popped, now, slow_ns);
            if !self.silent.is_empty() && self.silent.front() == Some(&self.inflight.last_popped())
            {
                self.silent.pop_front();
                next = self.inflight.next().now_or_never().flatten();
                continue;
            }
            let bytes = popped.reply.bytes();
            if bytes.len() < DIRECT_WRITE {
                out.extend_from_slice(bytes);
            } else {
                // Large replies are written straight from their buffer, after the batch so far.
                self.hold(out.len() + bytes.len());
                if !out.is_empty() {
                    wr.write_all(out).await?;
                    out.clear();
                }
                wr.write_all(bytes).await?;
                now = Instant::now();
            }
            next = self.inflight.next().now_or_never().flatten();
        }
        self.hold(out.len());
        if !out.is_empty() {
            wr.write_all(out).await?;
        }
        out.clear();
        self.hold(0);
        if self.inflight.is_empty() {
            self.barrier = false;
            if self.blocking {
                self.blocking = false;
                self.listed.set_blocked(false);
            }
            self.dispatch_parked();
        }
        Ok(())
    }

    /// Writes `first` and the messages queued after it, as one batch.
    async fn write_messages(
        &mut self,
        first: Bytes,
        wr: &mut OwnedWriteHalf,
        out: &mut BytesMut,
    ) -> std::io::Result<()> {
        let Some(subs) = self.subs.as_mut() else {
            return Ok(());
        };
        let budget = subs.member.budget.clone();
        let resp3 = self.client.proto == Proto::Resp3;
        let mut next = Some(first);
        while let Some(message) = next {
            budget.taken(message.len());
            match resp3 {
                // The node's message is a RESP2 array of bulks; RESP3 sends the very same
                // elements as a push, so only the type byte differs.
                true => {
                    out.extend_from_slice(b">");
                    out.extend_from_slice(&message[1..]);
                }
                false => out.extend_from_slice(&message),
            }
            next = match out.len() < MESSAGE_BATCH {
                true => subs.member.rx.try_recv().ok(),
                false => None,
            };
        }
        budget.hold(out.len());
        let written = wr.write_all(out).await;
        out.clear();
        budget.hold(0);
        written
    }

    /// (P)SUBSCRIBE and (P)UNSUBSCRIBE: the replies once the node has confirmed what is new.
    fn pubsub(&mut self, cmd: PubSubCommand, req: Request) {
        let args = req.args();
        let sharded = matches!(cmd, PubSubCommand::SSubscribe | PubSubCommand::SUnsubscribe);
        if sharded && split::one_slot(args, Keys::range(1, args.len(), 1)).is_err() {
            // As Redis Cluster: the shard channels of one command share a slot.
            let reply = Reply::error_line("CROSSSLOT Keys in request don't hash to the same slot");
            self.inflight.answer(reply, req);
            return;
        }
        let subs = self.subs.get_or_insert_with(|| {
            Subscription::new(self.fe.hub.join(self.fe.client_settings().pubsub_output))
        });
        let change = subs.apply(cmd, &req.args()[1..], self.client.proto);
        let (hub, id) = (subs.member.hub().clone(), subs.member.id());
        if !change.removed.is_empty() {
            hub.unsubscribe(id, change.kind, &change.removed);
        }
        let active = subs.active();
        match change.added.is_empty() {
            true => self.inflight.answer(change.reply, req),
            false => {
                let (kind, added, reply) = (change.kind, change.added, change.reply);
                self.inflight.task(Box::pin(async move {
                    hub.subscribe(id, kind, added).await;
                    Answered::to(reply, req)
                }));
            }
        }
        if !active {
            // Out of subscribed mode: the hub forgets the client.
            self.subs = None;
        }
        self.show_client();
    }

    /// Tells the budget what the session holds: replies waiting in the queue, and `writing` bytes
    /// on their way to the socket.
    fn hold(&self, writing: usize) {
        self.inflight.budget().hold(self.inflight.held() + writing);
    }

    /// Disconnects a client whose unread replies broke a limit, as Redis does, or that another
    /// client killed.
    fn cut_off(&self, breach: Breach) {
        if breach == Breach::Killed {
            tracing::debug!(client = self.client.id, "killed by CLIENT KILL");
            return;
        }
        let budget = self.inflight.budget();
        if let Some(held) = self.fe.totals.cut_offs.admit(&breach.label()) {
            tracing::warn!(
                client = self.client.id,
                limit = breach.label(),
                bytes = budget.total(),
                held,
                "client does not read its replies; disconnected at its output buffer limit"
            );
        }
        self.fe.metrics.output_limit_disconnects(breach.label());
    }

    /// Dispatches parked requests in order until one has to wait again, then a protocol error
    /// that came after them. A QUIT among them ends it: Redis runs nothing after QUIT.
    fn dispatch_parked(&mut self) {
        while !self.barrier && self.in_step() {
            let Some(req) = self.parked.pop_front() else {
                if let Some((error, read_at)) = self.late_error.take() {
                    self.stamp(CommandId::OTHER, read_at);
                    self.ready(error);
                }
                return;
            };
            self.dispatch(req.0, req.1);
            if self.quit {
                // Read, and never to be answered.
                let dropped = self.parked.len() + usize::from(self.late_error.is_some());
                self.fe.requests.dropped(dropped);
                self.parked.clear();
                self.late_error = None;
                return;
            }
        }
    }

    /// What is pushed until the next stamp answers a request of `command` read at `read_at`.
    fn stamp(&mut self, command: CommandId, read_at: Instant) {
        self.inflight.stamp(Stamp { command, read_at });
    }

    fn is_blocking(&self, req: &Request) -> bool {
        self.fe.router.classify(req).traits.blocking()
    }

    /// Takes what the client sent next: a request, the end of its input, or bytes that are not
    /// RESP.
    fn read(&mut self, next: Option<Result<Request, ProtocolError>>) -> Gone {
        match next {
            // Checked here, not in the select branch's condition: select! evaluates that once,
            // and a disruption may come while the branch waits for the client.
            Some(Ok(req)) => {
                self.fe
                    .requests
                    .read(self.inflight.len() + self.parked.len());
                self.listed.touch();
                match self.parked.is_empty() && !self.barrier && self.in_step() {
                    true => self.dispatch(req, self.read_at),
                    false => {
                        self.blocking |= self.is_blocking(&req);
                        self.parked.push_back((req, self.read_at));
                    }
                }
            }
            Some(Err(ProtocolError::Io(_))) | None => {
                self.reading = false;
                // As Redis does for a blocked client that leaves: cancel, pop nothing (also for
                // one still parked, which would otherwise run for nobody).
                if self.blocking {
                    return Gone::Cancel;
                }
            }
            Some(Err(e)) => {
                // As Redis does: answer what came before, report the error, close.
                self.fe.metrics.protocol_errors_total.inc();
                tracing::debug!(client = self.client.id, error = %e, "protocol error");
                // Answered in place of a request, and counted as one.
                self.fe
                    .requests
                    .read(self.inflight.len() + self.parked.len());
                let error = Reply::error_line(&format!("ERR {e}"));
                match self.parked.is_empty() {
                    true => {
                        self.stamp(CommandId::OTHER, self.read_at);
                        self.ready(error)
                    }
                    false => self.late_error = Some((error, self.read_at)),
                }
                self.reading = false;
            }
        }
        Gone::Stay
    }

    fn ready(&mut self, reply: Reply) {
        self.inflight.ready(reply);
    }

    /// Counts a reply about to be written at `now`, in this worker's own cells (plain stores,
    /// no lock), and puts its request in SLOWLOG if it was slow: one comparison for the others.
    #[inline]
    fn count(&mut self, popped: &Popped, now: Instant, slow_ns: u64) {
        let took = self.spans.measure(popped.stamp.read_at, now);
        let error = popped.reply.error().is_some();
        self.fe.requests.answered(popped.stamp.command, error, took);
        if took.ns >= slow_ns {
            self.slow(popped, Duration::from_nanos(took.ns));
        }
    }

    /// Logs a slow request: its own words when the queue kept it, else its command's name. A
    /// protocol error, which answers no request, is not logged.
    #[cold]
    fn slow(&self, popped: &Popped, took: Duration) {
        let command = popped.stamp.command;
        let named;
        let args = match self.inflight.popped_request() {
            Some(req) => req.args(),
            None if command == CommandId::OTHER => return,
            None => {
                named = [bytes::Bytes::from_static(command.label().as_bytes())];
                &named[..]
            }
        };
        let slowlog = &self.fe.totals.slowlog;
        slowlog.record(args, took, self.peer, self.client.name.as_ref());
    }

    /// Whether a new request may be sent now without overtaking an earlier one. After a
    /// disruption (a request refused or lost by a node, a route change, a held request) an
    /// earlier request of this client may be sent again, to a new master, after a later one had
    /// gone there directly: SET k 1 then SET k 2 would leave 1. So the session stops reading until
    /// everything in flight is answered. The count is read just before the later request loads
    /// the slot map, and every disruption is counted before the map changes or the earlier
    /// request hears of it; what remains is a map change landing between those two loads.
    fn in_step(&self) -> bool {
        self.inflight.is_empty() || self.fe.router.disruptions() == self.disruptions
    }

    /// Dispatches `req`, read at `read_at`, withholding its reply if CLIENT REPLY says so.
    fn dispatch(&mut self, req: Request, read_at: Instant) {
        let (seq, replies) = (self.inflight.pushed(), self.replies);
        self.dispatch_one(req, read_at);
        if replies == Replies::On && !self.reply_command {
            return;
        }
        if self.inflight.pushed() == seq {
            // Parked again: decided when it is dispatched.
            return;
        }
        let silent = match std::mem::take(&mut self.reply_command) {
            // CLIENT REPLY ON is answered; OFF and SKIP are not.
            true => self.replies != Replies::On,
            false => {
                if replies == Replies::SkipNext {
                    self.replies = Replies::On;
                }
                true
            }
        };
        if silent {
            self.silent.push_back(seq);
        }
    }

    fn dispatch_one(&mut self, req: Request, read_at: Instant) {
        if self.inflight.is_empty() {
            self.disruptions = self.fe.router.disruptions();
        }
        let plan = self.fe.router.classify(&req);
        self.stamp(plan.command, read_at);
        self.listed.set_command(plan.command);
        if let Some(txn) = self.txn.as_mut().filter(|t| t.in_multi()) {
            if !runs_now_in_multi(plan.action) {
                let reply = txn.queue(req, plan);
                self.listed.set_multi(txn.queued());
                self.ready(reply);
                return;
            }
        }
        // RESP3 has no subscribed mode: pushes come beside replies, and any command may be sent.
        let subscribed = self.subs.as_ref().is_some_and(Subscription::active)
            && self.client.proto == Proto::Resp2;
        if subscribed && !allowed_subscribed(plan.action) {
            self.inflight
                .answer(subscription::not_allowed(req.name()), req);
            return;
        }
        match plan.action {
            Action::Local(LocalCommand::Ping) if subscribed => {
                self.inflight
                    .answer(subscription::pong(req.args().get(1)), req);
            }
            Action::Local(
                LocalCommand::Hello
                | LocalCommand::Reset
                | LocalCommand::ReadOnly
                | LocalCommand::ReadWrite,
            ) if !self.inflight.is_empty() => {
                // They may switch the protocol or the nodes that serve reads, and so the backend
                // connections the client's later requests take; those must not overtake the
                // earlier ones on the old connections. So they wait, and everything after them,
                // until all is answered.
                self.parked.push_front((req, read_at));
                self.barrier = true;
            }
            Action::PubSub(cmd) => self.pubsub(cmd, req),
            Action::PubSubQuery(query) => {
                let fe = self.fe.clone();
                self.inflight.task(Box::pin(async move {
                    let limits = fe.settings.limits;
                    let reply =
                        pubsub_info::answer(&fe.router, &fe.hubs(), query, &req, &limits).await;
                    Answered::to(reply, req)
                }));
            }
            Action::Local(cmd) => {
                if cmd == LocalCommand::Reset {
                    self.txn = None;
                    self.subs = None;
                    // As on Redis, RESET ends CLIENT REPLY OFF before it answers; a SKIP still
                    // takes its reply.
                    self.reply_command = self.replies == Replies::Off;
                    self.replies = Replies::On;
                    self.listed.set_multi(None);
                }
                let lane = self.lane();
                let answered = local::answer(cmd, req.args(), &mut self.client);
                if self.lane() != lane {
                    self.inflight.set_lane(self.lane());
                }
                if shown_by_list(cmd) {
                    self.show_client();
                }
                match answered {
                    (reply, After::Continue) => self.inflight.answer(reply, req),
                    (_, After::Session) => self.client_command(cmd, req),
                    (reply, After::Close) => {
                        self.inflight.answer(reply, req);
                        self.reading = false;
                        self.quit = true;
                    }
                    (_, After::Info) => self.info(req),
                }
            }
            Action::Transaction(cmd) => self.transaction(cmd, req),
            Action::Reject(kind) => {
                self.fe.metrics.error(kind.label());
                let reply = Reply::error_line(&kind.rejection(&req).to_string());
                self.inflight.answer(reply, req);
            }
            _ => {
                let lane = self.lane();
                let budget = self.inflight.budget();
                // A lone request holds at most its own reply, written as soon as it comes;
                // only replies that can pile up behind others are counted as they arrive. That
                // keeps the accounting off the unpipelined request path.
                let counted = (!self.inflight.is_empty()).then_some(budget);
                if plan.traits.script_body() {
                    self.fe.router.remember_script(&req);
                }
                if let Some(started) = self.fe.router.start(&req, plan, lane, counted) {
                    self.inflight.fast(req, started);
                    return;
                }
                if plan.traits.blocking() {
                    self.barrier = true;
                    self.blocking = true;
                    self.listed.set_blocked(true);
                }
                let router = self.fe.router.clone();
                let turn = self.inflight.next_turn();
                let budget = Some(budget.clone());
                self.inflight.task(Box::pin(async move {
                    let reply = router.execute(&req, plan, lane, turn, budget).await;
                    Answered::to(reply, req)
                }));
            }
        }
    }

    /// CLIENT INFO, LIST, KILL and REPLY, and SLOWLOG.
    fn client_command(&mut self, cmd: LocalCommand, req: Request) {
        let registry = self.listed.registry().clone();
        match cmd {
            LocalCommand::ClientInfo => {
                let line = registry.line(self.listed.entry());
                self.inflight
                    .answer(Reply::text(self.client.proto, line.as_bytes()), req);
            }
            LocalCommand::ClientList => {
                let reply = client_admin::list(req.args(), &registry, self.client.proto);
                self.inflight.answer(reply, req);
            }
            LocalCommand::SlowlogGet => {
                let reply = self.fe.totals.slowlog.get(req.args());
                self.inflight.answer(reply, req);
            }
            LocalCommand::SlowlogLen => {
                let len = self.fe.totals.slowlog.len();
                self.inflight.answer(Reply::integer_reply(len as i64), req);
            }
            LocalCommand::SlowlogReset => {
                self.fe.totals.slowlog.reset();
                self.inflight.answer(Reply::ok(), req);
            }
            LocalCommand::SlowlogHelp => self.inflight.answer(super::slowlog::help(), req),
            LocalCommand::ClientKill => {
                let killed = client_admin::kill(req.args(), &registry, self.client.id);
                self.inflight.answer(killed.reply, req);
                if killed.me {
                    // As Redis does: the reply goes out, then the connection closes.
                    self.reading = false;
                    self.quit = true;
                }
            }
            _ => {
                let (mode, reply) = match req.args()[2].to_ascii_uppercase().as_slice() {
                    b"ON" => (Replies::On, Reply::ok()),
                    b"OFF" => (Replies::Off, Reply::ok()),
                    b"SKIP" => (Replies::SkipNext, Reply::ok()),
                    _ => (self.replies, Reply::error_line("ERR syntax error")),
                };
                self.reply_command = reply.error().is_none();
                self.replies = mode;
                self.inflight.answer(reply, req);
            }
        }
    }

    /// Copies what CLIENT LIST shows of the client into its line.
    fn show_client(&self) {
        let c = &self.client;
        let (sub, psub, ssub) = self.subs.as_ref().map_or((0, 0, 0), Subscription::counts);
        self.listed.show(|s| {
            s.name.clone_from(&c.name);
            s.lib_name.clone_from(&c.lib_name);
            s.lib_ver.clone_from(&c.lib_ver);
            s.proto = c.proto;
            (s.sub, s.psub, s.ssub) = (sub, psub, ssub);
        });
    }

    /// The shared connections this client's requests take.
    fn lane(&self) -> Lane {
        Lane {
            affinity: self.affinity,
            proto: self.client.proto,
            replica_reads: self.fe.router.reads_replicas() && !self.client.masters_only,
        }
    }

    /// MULTI, EXEC, DISCARD, WATCH and UNWATCH outside a MULTI's queue.
    fn transaction(&mut self, cmd: TxnCommand, req: Request) {
        self.transaction_step(cmd, req);
        let queued = self.txn.as_ref().and_then(Transaction::queued);
        self.listed.set_multi(queued);
    }

    fn transaction_step(&mut self, cmd: TxnCommand, req: Request) {
        let router = self.fe.router.clone();
        let turn = self.inflight.next_turn();
        let proto = self.client.proto;
        match cmd {
            TxnCommand::Multi => {
                let reply = self.txn.get_or_insert_with(Transaction::default).multi();
                self.listed.set_multi(Some(0));
                self.ready(reply);
            }
            TxnCommand::Exec => match self.txn.take() {
                Some(t) if t.in_multi() => match t.exec() {
                    Err(reply) => self.ready(reply),
                    Ok(exec) => {
                        self.inflight.task(Box::pin(async move {
                            let reply = router
                                .exec(exec.slot, exec.queued, &exec.reserved, proto, turn)
                                .await;
                            Answered::to(reply, req)
                        }));
                        self.barrier = true;
                    }
                },
                // Redis keeps the WATCHes of a client that sends a stray EXEC.
                other => {
                    self.txn = other;
                    self.ready(Reply::error_line("ERR EXEC without MULTI"));
                }
            },
            TxnCommand::Discard => match self.txn.take() {
                Some(t) if t.in_multi() => self.ready(Reply::ok()),
                other => {
                    self.txn = other;
                    self.ready(Reply::error_line("ERR DISCARD without MULTI"));
                }
            },
            TxnCommand::Watch => {
                let txn = self.txn.get_or_insert_with(Transaction::default);
                match txn.watch(&req) {
                    Err(reply) => self.ready(reply),
                    Ok(slot) => {
                        let reserved = txn.reserved.clone();
                        self.inflight.task(Box::pin(async move {
                            let reply = router.watch(slot, &req, &reserved, proto, turn).await;
                            Answered::to(reply, req)
                        }));
                        self.barrier = true;
                    }
                }
            }
            TxnCommand::Unwatch => {
                // Closing the reserved connection ends its WATCHes; a WATCH still in flight
                // closes it when it ends.
                self.txn = None;
                self.ready(Reply::ok());
            }
        }
    }

    fn info(&mut self, req: Request) {
        let fe = self.fe.clone();
        let stats = fe.stats();
        let lane = self.lane();
        self.inflight.task(Box::pin(async move {
            let reply = info::answer(&fe.router, &fe.settings.limits, &req, stats, lane).await;
            Answered::to(reply, req)
        }));
    }
}
