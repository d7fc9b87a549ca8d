//! Pub/sub for every subscribed client of one worker over one subscriber connection. Redis
//! Cluster delivers a PUBLISH to every node, so one connection to any node hears every channel:
//! the hub subscribes there to the union of its clients' channels and patterns (counting how
//! many clients want each), and hands every message to each client that wants it. A thousand
//! subscribers cost one backend connection per worker, not a thousand.
//!
//! The connection is the hub's alone and re-made whenever it fails: to another node, with every
//! channel and pattern subscribed again, at once (a dead node refuses the connect, so no slot
//! map change is awaited). A node that stops answering is found by a PING every half operation
//! timeout. Messages published while no connection is up are lost, as they would be for a client
//! of the failed node itself: pub/sub delivers at most once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use crate::backend::{self, BackendSettings};
use crate::budget::{Budget, OutputLimits};
use crate::cluster::{NodeAddr, Slot, Topology};
use crate::logging::Throttle;
use crate::metrics::Metrics;
use crate::protocol::{encode_command, Frame, Proto, ReplyCodec};
use crate::route::Router;

/// Messages one subscriber may have waiting before it counts as not reading (its bytes are
/// bounded by its budget too).
const QUEUE: usize = 4096;
/// How long a SUBSCRIBE waits for the node's confirmation before answering anyway: the
/// subscription stands and starts when a node can take it.
const CONFIRM_WAIT: Duration = Duration::from_secs(3);

/// A channel, a pattern, or a shard channel (Redis 7's sharded pub/sub: it lives on the master
/// of its slot, like a key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn subscribe(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"SUBSCRIBE",
            Kind::Pattern => b"PSUBSCRIBE",
            Kind::Shard => b"SSUBSCRIBE",
        }
    }

    fn unsubscribe(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"UNSUBSCRIBE",
            Kind::Pattern => b"PUNSUBSCRIBE",
            Kind::Shard => b"SUNSUBSCRIBE",
        }
    }
}

/// Which subscriber connection: the one to any node, for channels and patterns, or the one to a
/// shard's master, for that shard's channels.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Link {
    Any,
    Shard(NodeAddr),
}

impl Link {
    /// Whether this link is where the hub subscribes `key`. A shard channel stays with the link
    /// that holds it until its node drops it (or the connection ends): after a failover the old
    /// master, now a replica, still delivers the shard's messages, and subscribing at the new
    /// master as well would deliver some twice. A channel nobody holds goes to the slot's master
    /// in the current map.
    fn carries(&self, key: &(Kind, Bytes), topology: &Topology, state: &State) -> bool {
        match (self, key.0) {
            (Link::Any, Kind::Channel | Kind::Pattern) => true,
            (Link::Shard(addr), Kind::Shard) => match state.holder.get(key) {
                Some(holder) => holder == addr,
                None => topology.master_of(Slot::for_key(&key.1)) == Some(addr),
            },
            _ => false,
        }
    }
}

/// Where one subscriber's messages go.
struct Sink {
    tx: mpsc::Sender<Bytes>,
    budget: Arc<Budget>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    sinks: HashMap<u64, Sink>,
    /// Who wants each channel (pattern): the node must be subscribed while any client is.
    wanted: HashMap<(Kind, Bytes), HashSet<u64>>,
    /// What the nodes have confirmed on the current connections.
    confirmed: HashSet<(Kind, Bytes)>,
    /// Whether the connection task for channels and patterns runs.
    running: bool,
    /// The shard masters a connection task runs for.
    shard_links: HashSet<NodeAddr>,
    /// Which shard link has subscribed each shard channel at its node: exactly one at a time.
    holder: HashMap<(Kind, Bytes), NodeAddr>,
}

pub struct Hub {
    state: Mutex<State>,
    /// Wakes the connection task: what the clients want has changed.
    changed: Notify,
    /// Wakes subscribers waiting for a confirmation.
    confirmed: Notify,
    router: Arc<Router>,
    settings: Arc<BackendSettings>,
    metrics: Arc<Metrics>,
    /// Keeps the warning of a subscription no node confirmed, which every SUBSCRIBE meets while
    /// the cluster is away, to one line an interval.
    quiet: Throttle<()>,
}

/// One subscribed client's place in the hub; leaving it (dropping) unsubscribes it everywhere.
pub(super) struct Member {
    id: u64,
    hub: Arc<Hub>,
    pub rx: mpsc::Receiver<Bytes>,
    pub budget: Arc<Budget>,
}

impl Member {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        state.sinks.remove(&self.id);
        state.wanted.retain(|_, ids| {
            ids.remove(&self.id);
            !ids.is_empty()
        });
        drop(state);
        self.hub.changed.notify_waiters();
        self.hub.changed.notify_one();
    }
}

impl Hub {
    pub fn new(router: Arc<Router>, settings: Arc<BackendSettings>, metrics: Arc<Metrics>) -> Hub {
        Hub {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            confirmed: Notify::new(),
            router,
            settings,
            metrics,
            quiet: Throttle::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new subscriber, whose unread messages may hold `limits` bytes.
    pub(super) fn join(self: &Arc<Self>, limits: OutputLimits) -> Member {
        let (tx, rx) = mpsc::channel(QUEUE);
        let budget = Arc::new(Budget::new(limits));
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.sinks.insert(
            id,
            Sink {
                tx,
                budget: budget.clone(),
            },
        );
        if !state.running {
            state.running = true;
            tokio::spawn(connection(self.clone()));
        }
        Member {
            id,
            hub: self.clone(),
            rx,
            budget,
        }
    }

    /// Subscribes `member` to `names`, returning once the node has confirmed every one (or after
    /// [`CONFIRM_WAIT`]), so that a message published after the client's confirmation reaches it.
    pub(super) async fn subscribe(self: &Arc<Self>, id: u64, kind: Kind, names: Vec<Bytes>) {
        {
            let mut state = self.lock();
            for name in &names {
                state
                    .wanted
                    .entry((kind, name.clone()))
                    .or_default()
                    .insert(id);
            }
        }
        if kind == Kind::Shard {
            self.ensure_shard_links();
        }
        self.changed.notify_waiters();
        self.changed.notify_one();
        let deadline = Instant::now() + CONFIRM_WAIT;
        loop {
            let woken = self.confirmed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                // Done when the node confirmed each name, or the client no longer wants it.
                let state = self.lock();
                let all = names.iter().all(|n| {
                    let key = (kind, n.clone());
                    state.confirmed.contains(&key)
                        || !state.wanted.get(&key).is_some_and(|ids| ids.contains(&id))
                });
                if all {
                    return;
                }
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                if let Some(held) = self.quiet.admit(&()) {
                    tracing::warn!(
                        channels = names.len(),
                        held,
                        "no node confirmed a subscription in time; it starts once one does"
                    );
                }
                return;
            }
        }
    }

    pub(super) fn unsubscribe(&self, id: u64, kind: Kind, names: &[Bytes]) {
        let mut state = self.lock();
        for name in names {
            let key = (kind, name.clone());
            if let Some(ids) = state.wanted.get_mut(&key) {
                ids.remove(&id);
                if ids.is_empty() {
                    state.wanted.remove(&key);
                }
            }
        }
        drop(state);
        self.changed.notify_waiters();
        self.changed.notify_one();
    }

    /// Starts a connection task for every shard master that owns a wanted shard channel and has
    /// none yet.
    fn ensure_shard_links(self: &Arc<Self>) {
        let topology = self.router.topology();
        let mut state = self.lock();
        let owners: HashSet<NodeAddr> = state
            .wanted
            .keys()
            .filter(|k| k.0 == Kind::Shard)
            .filter_map(|k| topology.master_of(Slot::for_key(&k.1)).cloned())
            .collect();
        for owner in owners {
            if state.shard_links.insert(owner.clone()) {
                tokio::spawn(shard_link(self.clone(), owner));
            }
        }
    }

    /// How many of this worker's clients want `name`, and whether the hub subscribes to it at a
    /// node for them (where it counts as one subscriber).
    pub(super) fn local(&self, kind: Kind, name: &Bytes) -> (usize, bool) {
        let state = self.lock();
        let key = (kind, name.clone());
        let clients = state.wanted.get(&key).map_or(0, HashSet::len);
        (clients, state.confirmed.contains(&key))
    }

    /// `link` no longer holds `keys` at its node: another link may take them.
    fn release(&self, link: &Link, keys: &[(Kind, Bytes)]) {
        let Link::Shard(addr) = link else {
            return;
        };
        let mut state = self.lock();
        for key in keys {
            if state.holder.get(key) == Some(addr) {
                state.holder.remove(key);
            }
        }
        drop(state);
        self.changed.notify_waiters();
        self.changed.notify_one();
    }

    /// A shard link that holds nothing and would take nothing: its connection can go.
    fn idle(&self, link: &Link, at_node: &HashSet<(Kind, Bytes)>) -> bool {
        if *link == Link::Any || !at_node.is_empty() {
            return false;
        }
        let topology = self.router.topology();
        let state = self.lock();
        !state
            .wanted
            .keys()
            .any(|k| link.carries(k, &topology, &state))
    }

    /// Hands a message to every member that wants `key`. A member that does not keep up (its
    /// queue or its budget full) is cut off: the others still get every message.
    fn deliver(&self, key: &(Kind, Bytes), message: &Bytes) {
        let state = self.lock();
        let Some(ids) = state.wanted.get(key) else {
            return;
        };
        for id in ids {
            let Some(sink) = state.sinks.get(id) else {
                continue;
            };
            if !sink.budget.arrived(message.len()) {
                continue;
            }
            if sink.tx.try_send(message.clone()).is_err() {
                sink.budget.taken(message.len());
                sink.budget.cut_off();
            }
        }
    }

    /// Records the node's answer to a (P)(UN)SUBSCRIBE, or delivers a message.
    fn on_push(&self, frame: &Frame, raw: &Bytes) -> Push {
        let items = match frame {
            Frame::Array(items) => items,
            // Outside subscribed mode (every client gone) the node answers PING with +PONG.
            Frame::Simple(s) if s.eq_ignore_ascii_case(b"PONG") => return Push::Pong,
            _ => return Push::Other,
        };
        let text = |i: usize| match items.get(i) {
            Some(Frame::Bulk(b)) => Some(b.clone()),
            _ => None,
        };
        let Some(kind) = text(0) else {
            return Push::Other;
        };
        let Some(name) = text(1) else {
            return Push::Other;
        };
        match &kind.to_ascii_lowercase()[..] {
            b"message" => self.deliver(&(Kind::Channel, name), raw),
            b"pmessage" => self.deliver(&(Kind::Pattern, name), raw),
            b"smessage" => self.deliver(&(Kind::Shard, name), raw),
            b"subscribe" => self.confirm(Kind::Channel, name, true),
            b"psubscribe" => self.confirm(Kind::Pattern, name, true),
            b"ssubscribe" => self.confirm(Kind::Shard, name, true),
            b"unsubscribe" => self.confirm(Kind::Channel, name, false),
            b"punsubscribe" => self.confirm(Kind::Pattern, name, false),
            // Also sent unasked when the channel's slot leaves the node (resharding, failover).
            b"sunsubscribe" => {
                self.confirm(Kind::Shard, name.clone(), false);
                return Push::Dropped((Kind::Shard, name));
            }
            b"pong" => return Push::Pong,
            _ => return Push::Other,
        }
        Push::Handled
    }

    fn confirm(&self, kind: Kind, name: Bytes, on: bool) {
        let mut state = self.lock();
        match on {
            true => state.confirmed.insert((kind, name)),
            false => state.confirmed.remove(&(kind, name)),
        };
        drop(state);
        self.confirmed.notify_waiters();
    }

    /// Nodes to try, masters of the current slot map first, rotated so that the one that just
    /// failed comes last.
    fn candidates(&self, failed: Option<&NodeAddr>) -> Vec<NodeAddr> {
        let topology = self.router.topology();
        let mut nodes: Vec<NodeAddr> = topology
            .shards()
            .iter()
            .map(|s| s.master.clone())
            .chain(topology.shards().iter().flat_map(|s| s.replicas.clone()))
            .collect();
        if let Some(at) = failed.and_then(|f| nodes.iter().position(|n| n == f)) {
            nodes.rotate_left(at + 1);
        }
        nodes
    }
}

enum Push {
    Handled,
    Pong,
    /// The node no longer subscribes to this.
    Dropped((Kind, Bytes)),
    Other,
}

/// Keeps the hub's subscriber connection for channels and patterns up for as long as the worker
/// runs.
async fn connection(hub: Arc<Hub>) {
    let mut failed: Option<NodeAddr> = None;
    loop {
        let mut served = false;
        for addr in hub.candidates(failed.as_ref()) {
            let Ok(stream) = backend::open(&addr, &hub.settings, Proto::Resp2).await else {
                continue;
            };
            served = true;
            let why = serve(&hub, &Link::Any, stream).await;
            tracing::info!(node = %addr, why, "subscriber connection lost; subscribing elsewhere");
            failed = Some(addr);
            break;
        }
        // Shortly, not at once: a node that keeps refusing (an error reply each time) must not
        // make the hub reconnect in a tight loop.
        let pause = if served { 10 } else { 100 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Keeps a subscriber connection to the shard master `addr` while it owns a wanted shard
/// channel. When the connection fails, or the channels move, the links of their new owners
/// take them over (the slot map says which, once a MOVED or a refresh has taught it).
async fn shard_link(hub: Arc<Hub>, addr: NodeAddr) {
    loop {
        if let Ok(stream) = backend::open(&addr, &hub.settings, Proto::Resp2).await {
            let why = serve(&hub, &Link::Shard(addr.clone()), stream).await;
            tracing::info!(node = %addr, why, "shard subscriber connection lost");
        }
        hub.ensure_shard_links();
        let done = {
            let topology = hub.router.topology();
            let mut state = hub.lock();
            let link = Link::Shard(addr.clone());
            let done = !state
                .wanted
                .keys()
                .any(|k| link.carries(k, &topology, &state));
            if done {
                state.shard_links.remove(&addr);
            }
            done
        };
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How often a link looks again at which of the wanted channels are its own: a slot map change
/// moves shard channels between links without any message on them.
const RECHECK: Duration = Duration::from_millis(250);

/// Runs one subscriber connection until it fails, subscribing to what the clients want of it.
async fn serve(hub: &Arc<Hub>, link: &Link, stream: tokio::net::TcpStream) -> &'static str {
    let (rd, mut wr) = stream.into_split();
    let mut pushes = FramedRead::new(rd, ReplyCodec::new(hub.settings.limits));
    let mut at_node: HashSet<(Kind, Bytes)> = HashSet::new();
    let period = hub.settings.op_timeout / 2;
    let mut ping = tokio::time::interval_at(Instant::now() + period, period);
    let mut recheck = tokio::time::interval(RECHECK);
    let mut pong_due: Option<Instant> = None;
    hub.metrics.subscriber_connections.inc();
    let end = loop {
        let commands = reconcile(hub, link, &mut at_node);
        if !commands.is_empty() && wr.write_all(&commands).await.is_err() {
            break "write failed";
        }
        tokio::select! {
            push = pushes.next() => {
                let Some(Ok(reply)) = push else {
                    break "closed or malformed";
                };
                if reply.error().is_some() {
                    // SSUBSCRIBE to a node that no longer owns the slot: learn where it went.
                    hub.router.note_redirect(&reply, link_addr(link));
                    if *link == Link::Any {
                        break "error reply";
                    }
                    let dropped: Vec<_> = at_node.drain().collect();
                    hub.release(link, &dropped);
                    hub.ensure_shard_links();
                    continue;
                }
                let Ok(frame) = reply.parse(&hub.settings.limits) else {
                    break "malformed push";
                };
                match hub.on_push(&frame, reply.bytes()) {
                    Push::Pong => pong_due = None,
                    Push::Dropped(key) => {
                        at_node.remove(&key);
                        hub.release(link, std::slice::from_ref(&key));
                        hub.ensure_shard_links();
                    }
                    Push::Handled | Push::Other => {}
                }
            }
            () = hub.changed.notified() => {}
            _ = recheck.tick() => {
                if hub.idle(link, &at_node) {
                    break "nothing left to subscribe here";
                }
            }
            now = ping.tick() => {
                if pong_due.is_some_and(|due| now >= due) {
                    break "no PONG within the operation timeout";
                }
                if wr.write_all(b"*1\r\n$4\r\nPING\r\n").await.is_err() {
                    break "write failed";
                }
                pong_due.get_or_insert(now + hub.settings.op_timeout);
            }
        }
    };
    hub.metrics.subscriber_connections.dec();
    let held: Vec<_> = at_node.into_iter().collect();
    for key in &held {
        hub.lock().confirmed.remove(key);
    }
    hub.release(link, &held);
    end
}

fn link_addr(link: &Link) -> &str {
    match link {
        Link::Any => "",
        Link::Shard(addr) => addr,
    }
}

/// The commands that make the node's subscriptions what the clients want of this link, in one
/// buffer.
fn reconcile(hub: &Hub, link: &Link, at_node: &mut HashSet<(Kind, Bytes)>) -> BytesMut {
    let topology = hub.router.topology();
    let mut state = hub.lock();
    let mut out = BytesMut::new();
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        let add: Vec<Bytes> = state
            .wanted
            .keys()
            .filter(|k| k.0 == kind && !at_node.contains(*k) && link.carries(k, &topology, &state))
            .map(|k| k.1.clone())
            .collect();
        let remove: Vec<Bytes> = at_node
            .iter()
            .filter(|k| {
                k.0 == kind
                    && !(state.wanted.contains_key(*k) && link.carries(k, &topology, &state))
            })
            .map(|k| k.1.clone())
            .collect();
        // One command per shard channel: a node refuses an SSUBSCRIBE of channels in several
        // slots as a whole.
        let one_each = kind == Kind::Shard;
        for (verb, names, on) in [
            (kind.subscribe(), add, true),
            (kind.unsubscribe(), remove, false),
        ] {
            let groups: Vec<&[Bytes]> = match one_each {
                true => names.chunks(1).collect(),
                false => vec![&names[..]],
            };
            for group in groups.into_iter().filter(|g| !g.is_empty()) {
                encode_command(
                    std::iter::once(verb).chain(group.iter().map(|n| &n[..])),
                    &mut out,
                );
            }
            for name in names {
                let key = (kind, name);
                if !on {
                    // Not confirmed from now on: a client subscribing again must wait for the
                    // node's new confirmation, not take the old one.
                    state.confirmed.remove(&key);
                    if let Link::Shard(addr) = link {
                        if state.holder.get(&key) == Some(addr) {
                            state.holder.remove(&key);
                        }
                    }
                    at_node.remove(&key);
                } else {
                    if let Link::Shard(addr) = link {
                        state.holder.insert(key.clone(), addr.clone());
                    }
                    at_node.insert(key);
                }
            }
        }
    }
    out
}
