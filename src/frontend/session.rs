//! One client connection. The only place that guarantees reply order: every request takes a place
//! in an ordered queue (`inflight`), and replies are written in the order the requests arrived,
//! however the backends they went to race each other.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::inflight::Inflight;
use super::info::{self, Keyspace, Sections};
use super::local::{self, After, ClientState};
use super::pubsub_info;
use super::subscription::{self, Subscription};
use super::transaction::Transaction;
use super::Frontend;
use crate::backend::Lane;
use crate::budget::{Breach, Budget};
use crate::command::{Action, Keys, LocalCommand, PubSubCommand, TxnCommand};
use crate::protocol::{Frame, Proto, ProtocolError, Reply, Request, RequestCodec};
use crate::route::split;
use crate::route::Router;

/// Replies at least this big are written straight from their buffer instead of being copied into
/// the batch.
const DIRECT_WRITE: usize = 64 * 1024;

pub async fn run(stream: TcpStream, fe: Arc<Frontend>) {
    let id = fe.totals.next_client_id.fetch_add(1, Ordering::Relaxed);
    let affinity = fe.next_affinity.fetch_add(1, Ordering::Relaxed);
    fe.metrics.client_connections.inc();
    fe.metrics.client_connections_total.inc();
    let (rd, mut wr) = stream.into_split();
    let mut requests =
        FramedRead::with_capacity(rd, RequestCodec::new(fe.settings.limits), 16 * 1024);
    let mut session = Session {
        fe: fe.clone(),
        client: ClientState {
            id,
            ..Default::default()
        },
        inflight: Inflight::new(
            fe.router.clone(),
            Lane {
                affinity,
                proto: Proto::Resp2,
            },
            Arc::new(Budget::new(fe.settings.output)),
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
        answered: (0, 0),
    };
    let mut out = BytesMut::with_capacity(16 * 1024);
    let max_pipeline = fe.settings.max_pipeline;
    let idle = fe.settings.idle_timeout;
    let idle_sleep = tokio::time::sleep(idle.unwrap_or(std::time::Duration::MAX / 4));
    tokio::pin!(idle_sleep);
    let budget = session.inflight.budget().clone();
    let pause_at = fe.settings.output.pause_at();
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
            Some(reply) = session.inflight.next(), if !session.inflight.is_empty() => {
                // A client that does not read can leave this write pending for ever: its limits
                // are watched meanwhile.
                let written = tokio::select! {
                    written = session.write_replies(reply, &mut wr, &mut out) => written.is_ok(),
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
            next = requests.next(), if session.reading
                && session.inflight.len() + session.parked.len() < max_pipeline
                && budget.total() < pause_at => {
                if let (Some(Ok(_)), Some(d)) = (&next, idle) {
                    idle_sleep.as_mut().reset(tokio::time::Instant::now() + d);
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
    session.publish_counts();
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
    inflight: Inflight,
    reading: bool,
    /// The router's disruption count when the oldest request in flight was dispatched.
    disruptions: u64,
    /// Requests read after a disruption or behind a blocking command, waiting for everything
    /// before them to be answered. Bounded with the in-flight requests by `max_pipeline`.
    parked: VecDeque<Request>,
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
    /// read before it.
    late_error: Option<Reply>,
    /// WATCH, MULTI and their reserved connection; dropped with the session, closing it.
    txn: Option<Transaction>,
    /// Channels and patterns, and the client's place in the worker's hub; dropped with the
    /// session, unsubscribing it.
    subs: Option<Subscription>,
    /// Which backend connection (and, for keyless commands, which master) this client uses.
    affinity: usize,
    /// Replies (ok, error) gathered for the batch being written, not yet in the metrics.
    answered: (u64, u64),
}

impl Session {
    /// Writes `first` and every reply already done after it with one syscall, then dispatches a
    /// parked request if nothing is in flight any more.
    async fn write_replies(
        &mut self,
        first: Reply,
        wr: &mut OwnedWriteHalf,
        out: &mut BytesMut,
    ) -> std::io::Result<()> {
        let mut next = Some(first);
        while let Some(reply) = next {
            self.count(&reply);
            let bytes = reply.bytes();
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
            }
            next = self.inflight.next().now_or_never().flatten();
        }
        self.publish_counts();
        self.hold(out.len());
        if !out.is_empty() {
            wr.write_all(out).await?;
        }
        out.clear();
        self.hold(0);
        if self.inflight.is_empty() {
            self.barrier = false;
            self.blocking = false;
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
            self.ready(Reply::error_line(
                "CROSSSLOT Keys in request don't hash to the same slot",
            ));
            return;
        }
        let subs = self.subs.get_or_insert_with(|| {
            Subscription::new(self.fe.hub.join(self.fe.settings.pubsub_output))
        });
        let change = subs.apply(cmd, &req.args()[1..], self.client.proto);
        let (hub, id) = (subs.member.hub().clone(), subs.member.id());
        if !change.removed.is_empty() {
            hub.unsubscribe(id, change.kind, &change.removed);
        }
        let active = subs.active();
        match change.added.is_empty() {
            true => self.ready(change.reply),
            false => {
                let (kind, added, reply) = (change.kind, change.added, change.reply);
                self.inflight.task(Box::pin(async move {
                    hub.subscribe(id, kind, added).await;
                    reply
                }));
            }
        }
        if !active {
            // Out of subscribed mode: the hub forgets the client.
            self.subs = None;
        }
    }

    /// Tells the budget what the session holds: replies waiting in the queue, and `writing` bytes
    /// on their way to the socket.
    fn hold(&self, writing: usize) {
        self.inflight.budget().hold(self.inflight.held() + writing);
    }

    /// Disconnects a client whose unread replies broke a limit, as Redis does.
    fn cut_off(&self, breach: Breach) {
        let budget = self.inflight.budget();
        tracing::warn!(
            client = self.client.id,
            limit = breach.label(),
            bytes = budget.total(),
            "client does not read its replies; disconnected at its output buffer limit"
        );
        self.fe.metrics.output_limit_disconnects(breach.label());
    }

    /// Dispatches parked requests in order until one has to wait again, then a protocol error
    /// that came after them. A QUIT among them ends it: Redis runs nothing after QUIT.
    fn dispatch_parked(&mut self) {
        while !self.barrier && self.in_step() {
            let Some(req) = self.parked.pop_front() else {
                if let Some(error) = self.late_error.take() {
                    self.ready(error);
                }
                return;
            };
            self.dispatch(req);
            if self.quit {
                self.parked.clear();
                self.late_error = None;
                return;
            }
        }
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
            Some(Ok(req)) => match self.parked.is_empty() && !self.barrier && self.in_step() {
                true => self.dispatch(req),
                false => {
                    self.blocking |= self.is_blocking(&req);
                    self.parked.push_back(req);
                }
            },
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
                let error = Reply::error_line(&format!("ERR {e}"));
                match self.parked.is_empty() {
                    true => self.ready(error),
                    false => self.late_error = Some(error),
                }
                self.reading = false;
            }
        }
        Gone::Stay
    }

    fn ready(&mut self, reply: Reply) {
        self.inflight.ready(reply);
    }

    /// Counted here and published once per written batch: the shared counters are touched by
    /// every worker's thread, and one update per pipelined batch keeps them off the request path.
    fn count(&mut self, reply: &Reply) {
        match reply.error() {
            Some(_) => self.answered.1 += 1,
            None => self.answered.0 += 1,
        }
    }

    fn publish_counts(&mut self) {
        let (ok, error) = std::mem::take(&mut self.answered);
        if ok > 0 {
            self.fe.metrics.requests_ok.inc_by(ok);
        }
        if error > 0 {
            self.fe.metrics.requests_error.inc_by(error);
        }
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

    fn dispatch(&mut self, req: Request) {
        if self.inflight.is_empty() {
            self.disruptions = self.fe.router.disruptions();
        }
        let plan = self.fe.router.classify(&req);
        if let Some(txn) = self.txn.as_mut().filter(|t| t.in_multi()) {
            if !runs_now_in_multi(plan.action) {
                let reply = txn.queue(req, plan);
                self.ready(reply);
                return;
            }
        }
        // RESP3 has no subscribed mode: pushes come beside replies, and any command may be sent.
        let subscribed = self.subs.as_ref().is_some_and(Subscription::active)
            && self.client.proto == Proto::Resp2;
        if subscribed && !allowed_subscribed(plan.action) {
            self.ready(subscription::not_allowed(req.name()));
            return;
        }
        match plan.action {
            Action::Local(LocalCommand::Ping) if subscribed => {
                self.ready(subscription::pong(req.args().get(1)));
            }
            Action::Local(LocalCommand::Hello | LocalCommand::Reset)
                if !self.inflight.is_empty() =>
            {
                // They may switch the protocol, and so the backend connections the client's
                // later requests take; those must not overtake the earlier ones on the old
                // connections. So they wait, and everything after them, until all is answered.
                self.parked.push_front(req);
                self.barrier = true;
            }
            Action::PubSub(cmd) => self.pubsub(cmd, req),
            Action::PubSubQuery(query) => {
                let fe = self.fe.clone();
                self.inflight.task(Box::pin(async move {
                    let limits = fe.settings.limits;
                    pubsub_info::answer(&fe.router, &fe.hubs(), query, &req, &limits).await
                }));
            }
            Action::Local(cmd) => {
                if cmd == LocalCommand::Reset {
                    self.txn = None;
                    self.subs = None;
                }
                let proto = self.client.proto;
                let answered = local::answer(cmd, req.args(), &mut self.client);
                if self.client.proto != proto {
                    self.inflight.set_lane(self.lane());
                }
                match answered {
                    (reply, After::Continue) => self.ready(reply),
                    (reply, After::Close) => {
                        self.ready(reply);
                        self.reading = false;
                        self.quit = true;
                    }
                    (_, After::Info) => self.info(&req),
                }
            }
            Action::Transaction(cmd) => self.transaction(cmd, req),
            Action::Reject(kind) => {
                self.fe.metrics.error(kind.label());
                self.ready(Reply::error_line(&kind.rejection(&req).to_string()));
            }
            _ => {
                let lane = self.lane();
                let budget = self.inflight.budget();
                // A lone request holds at most its own reply, written as soon as it comes;
                // only replies that can pile up behind others are counted as they arrive. That
                // keeps the accounting off the unpipelined request path.
                let counted = (!self.inflight.is_empty()).then_some(budget);
                if let Some(started) = self.fe.router.start(&req, plan, lane, counted) {
                    self.inflight.fast(req, started);
                    return;
                }
                if plan.traits.blocking() {
                    self.barrier = true;
                    self.blocking = true;
                }
                let router = self.fe.router.clone();
                let turn = self.inflight.next_turn();
                let budget = Some(budget.clone());
                self.inflight.task(Box::pin(async move {
                    router.execute(&req, plan, lane, turn, budget).await
                }));
            }
        }
    }

    /// The shared connections this client's requests take.
    fn lane(&self) -> Lane {
        Lane {
            affinity: self.affinity,
            proto: self.client.proto,
        }
    }

    /// MULTI, EXEC, DISCARD, WATCH and UNWATCH outside a MULTI's queue.
    fn transaction(&mut self, cmd: TxnCommand, req: Request) {
        let router = self.fe.router.clone();
        let turn = self.inflight.next_turn();
        let proto = self.client.proto;
        match cmd {
            TxnCommand::Multi => {
                let reply = self.txn.get_or_insert_with(Transaction::default).multi();
                self.ready(reply);
            }
            TxnCommand::Exec => match self.txn.take() {
                Some(t) if t.in_multi() => match t.exec() {
                    Err(reply) => self.ready(reply),
                    Ok(exec) => {
                        self.inflight.task(Box::pin(async move {
                            router
                                .exec(exec.slot, exec.queued, &exec.reserved, proto, turn)
                                .await
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
                            router.watch(slot, &req, &reserved, proto, turn).await
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

    fn info(&mut self, req: &Request) {
        let sections = Sections::parse(req.args());
        let fe = self.fe.clone();
        let stats = fe.stats();
        let lane = self.lane();
        self.inflight.task(Box::pin(async move {
            let keyspace = match sections.needs_keyspace() {
                true => Some(keyspace(&fe.router, fe.settings.limits, lane).await),
                false => None,
            };
            let text = info::render(&sections, &stats, keyspace.as_ref());
            Reply::text(lane.proto, text.as_bytes())
        }));
    }
}

/// Sums `INFO keyspace` over the masters; a master that fails to answer is left out. Asked on
/// the client's own lane, so it counts the client's earlier writes.
async fn keyspace(router: &Router, limits: crate::protocol::Limits, lane: Lane) -> Keyspace {
    let mut ks = Keyspace::default();
    let cmd = Router::command(&[b"INFO", b"keyspace"]);
    for reply in router.fan_out(cmd, lane, None).await.into_iter().flatten() {
        match reply.parse(&limits) {
            Ok(Frame::Bulk(text)) => ks.add(&text),
            Ok(Frame::Verbatim(text)) => ks.add(text.strip_prefix(b"txt:").unwrap_or(&text)),
            _ => {}
        }
    }
    ks
}
