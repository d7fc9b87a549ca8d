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
use crate::cluster::NodeAddr;
use crate::metrics::Metrics;
use crate::protocol::{encode_command, Frame, ReplyCodec};
use crate::route::Router;

/// Messages one subscriber may have waiting before it counts as not reading (its bytes are
/// bounded by its budget too).
const QUEUE: usize = 4096;
/// How long a SUBSCRIBE waits for the node's confirmation before answering anyway: the
/// subscription stands and starts when a node can take it.
const CONFIRM_WAIT: Duration = Duration::from_secs(3);

/// A channel or a pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Channel,
    Pattern,
}

impl Kind {
    fn subscribe(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"SUBSCRIBE",
            Kind::Pattern => b"PSUBSCRIBE",
        }
    }

    fn unsubscribe(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"UNSUBSCRIBE",
            Kind::Pattern => b"PUNSUBSCRIBE",
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
    /// What the node has confirmed on the current connection.
    confirmed: HashSet<(Kind, Bytes)>,
    /// Whether the connection task runs.
    running: bool,
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
    pub(super) async fn subscribe(&self, id: u64, kind: Kind, names: Vec<Bytes>) {
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
                tracing::warn!(
                    channels = names.len(),
                    "no node confirmed a subscription in time; it starts once one does"
                );
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
        self.changed.notify_one();
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
        let Frame::Array(items) = frame else {
            return Push::Other;
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
            b"subscribe" => self.confirm(Kind::Channel, name, true),
            b"psubscribe" => self.confirm(Kind::Pattern, name, true),
            b"unsubscribe" => self.confirm(Kind::Channel, name, false),
            b"punsubscribe" => self.confirm(Kind::Pattern, name, false),
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
    Other,
}

/// Keeps the hub's subscriber connection up for as long as the worker runs.
async fn connection(hub: Arc<Hub>) {
    let mut failed: Option<NodeAddr> = None;
    loop {
        let mut served = false;
        for addr in hub.candidates(failed.as_ref()) {
            let Ok(stream) = backend::open(&addr, &hub.settings).await else {
                continue;
            };
            served = true;
            hub.metrics.subscriber_connections.inc();
            let why = serve(&hub, stream).await;
            hub.metrics.subscriber_connections.dec();
            tracing::info!(node = %addr, why, "subscriber connection lost; subscribing elsewhere");
            hub.lock().confirmed.clear();
            failed = Some(addr);
            break;
        }
        if !served {
            // No node reachable (or no slot map yet): look again shortly.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs one subscriber connection until it fails, subscribing to what the clients want.
async fn serve(hub: &Hub, stream: tokio::net::TcpStream) -> &'static str {
    let (rd, mut wr) = stream.into_split();
    let mut pushes = FramedRead::new(rd, ReplyCodec::new(hub.settings.limits));
    let mut at_node: HashSet<(Kind, Bytes)> = HashSet::new();
    let period = hub.settings.op_timeout / 2;
    let mut ping = tokio::time::interval_at(Instant::now() + period, period);
    let mut pong_due: Option<Instant> = None;
    loop {
        let commands = reconcile(hub, &mut at_node);
        if !commands.is_empty() && wr.write_all(&commands).await.is_err() {
            return "write failed";
        }
        tokio::select! {
            push = pushes.next() => {
                let Some(Ok(reply)) = push else {
                    return "closed or malformed";
                };
                let Ok(frame) = reply.parse(&hub.settings.limits) else {
                    return "malformed push";
                };
                if let Push::Pong = hub.on_push(&frame, reply.bytes()) {
                    pong_due = None;
                }
            }
            () = hub.changed.notified() => {}
            now = ping.tick() => {
                if pong_due.is_some_and(|due| now >= due) {
                    return "no PONG within the operation timeout";
                }
                if wr.write_all(b"*1\r\n$4\r\nPING\r\n").await.is_err() {
                    return "write failed";
                }
                pong_due.get_or_insert(now + hub.settings.op_timeout);
            }
        }
    }
}

/// The commands that make the node's subscriptions what the clients want, in one buffer.
fn reconcile(hub: &Hub, at_node: &mut HashSet<(Kind, Bytes)>) -> BytesMut {
    let state = hub.lock();
    let mut out = BytesMut::new();
    for kind in [Kind::Channel, Kind::Pattern] {
        let add: Vec<Bytes> = state
            .wanted
            .keys()
            .filter(|k| k.0 == kind && !at_node.contains(*k))
            .map(|k| k.1.clone())
            .collect();
        let remove: Vec<Bytes> = at_node
            .iter()
            .filter(|k| k.0 == kind && !state.wanted.contains_key(*k))
            .map(|k| k.1.clone())
            .collect();
        for (verb, names, on) in [
            (kind.subscribe(), add, true),
            (kind.unsubscribe(), remove, false),
        ] {
            if names.is_empty() {
                continue;
            }
            encode_command(
                std::iter::once(verb).chain(names.iter().map(|n| &n[..])),
                &mut out,
            );
            for name in names {
                match on {
                    true => at_node.insert((kind, name)),
                    false => at_node.remove(&(kind, name)),
                };
            }
        }
    }
    out
}
