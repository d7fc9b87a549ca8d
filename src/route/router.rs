//! Executing a classified request against the cluster: pick the master from the current snapshot,
//! follow MOVED/ASK/TRYAGAIN, fan out split commands and merge their replies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;

use super::error::RouteError;
use super::follow::{Follow, Next};
use super::merge::{merge, PartResult};
use super::read_from::ReadFrom;
use super::redirect::{self, Redirect};
use super::script_cache::ScriptCache;
use super::split::{self, Split};
use super::table::RouteTable;
use crate::backend::{BackendError, Lane, Node, Pool, Purpose};
use crate::budget::Budget;
use crate::cluster::{NodeAddr, RefreshTrigger, Slot, Topology, Trigger};
use crate::command::{Action, CommandTable, Keys, Plan, SplitKind};
use crate::metrics::Metrics;
use crate::order::{Disruptions, Turn};
use crate::protocol::{encode_command, Proto, Reply, Request};

const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// How often a held request looks again for its slot's master. Short, because the refresher
/// polls fast while a node is down and the request should run as soon as the new map lands.
const HOLD_POLL: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug)]
pub struct RouteSettings {
    pub max_redirects: u32,
    /// How long a request waits for an unreachable master, or its replacement.
    pub hold_timeout: Duration,
    pub read_from: ReadFrom,
}

pub struct Router {
    pub(super) table: ArcSwap<RouteTable>,
    commands: ArcSwap<CommandTable>,
    pub(super) pool: Pool,
    pub(super) trigger: RefreshTrigger,
    pub(super) settings: RouteSettings,
    pub(super) metrics: Arc<Metrics>,
    pub(super) disruptions: Arc<Disruptions>,
    /// The scripts clients loaded through slotgate, shared by every worker.
    pub(super) scripts: Arc<ScriptCache>,
}

impl Router {
    pub fn new(
        pool: Pool,
        trigger: RefreshTrigger,
        settings: RouteSettings,
        metrics: Arc<Metrics>,
        disruptions: Arc<Disruptions>,
        scripts: Arc<ScriptCache>,
    ) -> Router {
        let table = RouteTable::build(Topology::empty(), &pool, settings.read_from.uses_replicas());
        Router {
            table: ArcSwap::from_pointee(table),
            commands: ArcSwap::from_pointee(CommandTable::builtin()),
            pool,
            trigger,
            settings,
            metrics,
            disruptions,
            scripts,
        }
    }

    /// Read-only commands may go to replicas (`backend.read_from`).
    pub fn reads_replicas(&self) -> bool {
        self.settings.read_from.uses_replicas()
    }

    pub fn classify(&self, req: &Request) -> Plan {
        self.commands.load().classify(req)
    }

    /// Replaces the command table, e.g. after learning the backend's `COMMAND` reply.
    pub(super) fn set_commands(&self, table: Arc<CommandTable>) {
        self.commands.store(table);
    }

    /// Every slot has a master: the proxy can serve any key.
    pub fn is_ready(&self) -> bool {
        self.table.load().topology.is_complete()
    }

    /// A slot map is loaded: some slot has a master.
    pub fn has_slot_map(&self) -> bool {
        !self.table.load().serving_masters().is_empty()
    }

    /// A master that serves slots has a connection open from this worker.
    pub fn reaches_a_master(&self) -> bool {
        self.table
            .load()
            .serving_masters()
            .iter()
            .any(|n| n.is_up())
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.table.load().topology.clone()
    }

    /// Runs a request whose action needs the cluster. `lane` keeps one client on one connection
    /// per node, so its commands to that node keep their order, in the client's protocol. Local
    /// and refused requests are the session's to answer.
    /// `turn` says when a request may be sent a second time, after a redirection or a hold.
    /// Replies count against the client's `budget` until they are merged or handed back.
    pub async fn execute(
        &self,
        req: &Request,
        plan: Plan,
        lane: Lane,
        turn: Turn,
        budget: Option<Arc<Budget>>,
    ) -> Reply {
        if plan.traits.blocking() {
            return self.blocking(req, plan, lane.proto, turn).await;
        }
        let how = Delivery {
            lane,
            replica_read: lane.replica_reads && plan.traits.readonly(),
            replay_safe: plan.traits.replay_safe(),
            sha: plan
                .traits
                .script_sha()
                .then(|| req.args().get(1))
                .flatten(),
            turn: &turn,
            budget: budget.as_ref(),
        };
        let result = match plan.action {
            Action::Keyed(keys) => self.keyed(req, keys, how).await,
            Action::AnyMaster => self.any_master(req.to_resp(), how).await,
            Action::Split(kind) => self.split(req, kind, how).await,
            Action::FanOut(kind) => self.fan_out_command(req, kind, how).await,
            Action::Local(_)
            | Action::Transaction(_)
            | Action::PubSub(_)
            | Action::PubSubQuery(_)
            | Action::Reject(_) => Err(RouteError::UnexpectedReply("a request for the session")),
            // Blocks its client: handled by `blocking` above.
            Action::Wait => Err(RouteError::UnexpectedReply("WAIT without its barrier")),
        };
        self.answer(result)
    }

    /// The client's reply for a routing outcome; an error of slotgate's own is counted by kind,
    /// and a request given up after too many redirections once more as such. Here, and not in
    /// the redirection loop, so that the loop every request runs stays as small as it was.
    pub(super) fn answer(&self, result: Result<Reply, RouteError>) -> Reply {
        match result {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(error = %e, kind = e.kind(), "request failed");
                self.metrics.error(e.kind());
                if let RouteError::TooManyRedirects { .. } = e {
                    self.metrics.redirect_giveups.inc();
                }
                e.to_reply()
            }
        }
    }

    async fn keyed(
        &self,
        req: &Request,
        keys: Keys,
        how: Delivery<'_>,
    ) -> Result<Reply, RouteError> {
        match split::one_slot(req.args(), keys) {
            Ok(Some(slot)) => self.send_to_slot(slot, req.to_resp(), how).await,
            Ok(None) => self.any_master(req.to_resp(), how).await,
            Err(split::CrossSlot) => Err(RouteError::CrossSlot),
        }
    }

    async fn split(
        &self,
        req: &Request,
        kind: SplitKind,
        how: Delivery<'_>,
    ) -> Result<Reply, RouteError> {
        let parts = match split::split(req.args(), kind) {
            Split::OneSlot(slot) => return self.send_to_slot(slot, req.to_resp(), how).await,
            Split::Parts(parts) => parts,
        };
        let results = join_all(
            parts
                .iter()
                .map(|p| self.send_to_slot(p.slot, p.command.clone(), how)),
        )
        .await;
        merge(kind, &parts, results)
    }

    /// An EVALSHA's NOSCRIPT is healed here too: keyless, it has no slot to follow.
    async fn any_master(&self, bytes: Bytes, how: Delivery<'_>) -> Result<Reply, RouteError> {
        let node = {
            let table = self.table.load();
            let masters = table.serving_masters();
            if masters.is_empty() {
                self.trigger.request(Trigger::Unserved);
                return Err(RouteError::NoMasters);
            }
            masters[how.lane.affinity % masters.len()].clone()
        };
        let reply = node.send(bytes.clone(), 0, how.lane, how.budget).await?;
        match how.sha {
            Some(sha) if redirect::is_noscript(&reply) => {
                if !self.heal(&node, sha, how.lane).await {
                    return Ok(reply);
                }
                how.turn.wait().await;
                Ok(node.send(bytes, 0, how.lane, how.budget).await?)
            }
            _ => Ok(reply),
        }
    }

    /// Sends the same command to every serving master and returns their replies, which count
    /// against `budget` (the client's) until they are returned.
    pub async fn fan_out(
        &self,
        bytes: Bytes,
        lane: Lane,
        budget: Option<&Arc<Budget>>,
    ) -> Vec<PartResult> {
        // Keep this snapshot alive across the awaits below, rather than a guard.
        let table = self.table.load_full();
        let masters = table.serving_masters();
        if masters.is_empty() {
            self.trigger.request(Trigger::Unserved);
            return vec![Err(RouteError::NoMasters)];
        }
        join_all(masters.iter().map(|n| async {
            n.send(bytes.clone(), 0, lane, budget)
                .await
                .map_err(RouteError::from)
        }))
        .await
    }

    /// Sends the same command to every node of the slot map, replicas too unless `masters_only`:
    /// what each node alone knows (its own subscribers, say).
    pub async fn ask_every_node(&self, bytes: Bytes, masters_only: bool) -> Vec<PartResult> {
        let topology = self.topology();
        let nodes: Vec<NodeAddr> = match masters_only {
            true => topology.shards().iter().map(|s| s.master.clone()).collect(),
            false => topology.all_nodes(),
        };
        join_all(nodes.iter().map(|addr| {
            let (node, bytes) = (self.pool.node(addr), bytes.clone());
            async move {
                node.send(bytes, 0, Lane::INTERNAL, None)
                    .await
                    .map_err(RouteError::from)
            }
        }))
        .await
    }

    /// Sends to the master of `slot`, following redirections until a real answer arrives.
    ///
    /// While the slot's master is unreachable the request is held, up to the hold timeout, and
    /// sent to whichever master serves the slot once the map changes. A request that may already
    /// have run (its connection died after writing it, or it timed out) is sent again only when
    /// it is `replay_safe`; otherwise the client is told the outcome is unknown.
    async fn send_to_slot(
        &self,
        slot: Slot,
        bytes: Bytes,
        how: Delivery<'_>,
    ) -> Result<Reply, RouteError> {
        let follow = self
            .follow_for(slot, how.replay_safe)
            .healing(how.sha.cloned());
        let via = Via::Shared {
            lane: how.lane,
            budget: how.budget,
        };
        let first = match how.replica_read {
            true => match self.replica(slot, how.lane.affinity)? {
                // The replica's answer is followed like any first attempt: a MOVED (its map is
                // not ours) or a lost connection goes on at the master.
                Some(replica) => {
                    let sent = self.attempt(via, &replica, &bytes, false).await;
                    Some((replica, sent))
                }
                None => None,
            },
            false => None,
        };
        self.follow(follow, bytes, via, first, how.turn).await
    }

    /// The replica a read of `slot` goes to; `None` means the master, when `prefer_replica`
    /// lets a shard without a connected replica fall back to it.
    pub(super) fn replica(
        &self,
        slot: Slot,
        affinity: usize,
    ) -> Result<Option<Arc<Node>>, RouteError> {
        let table = self.table.load();
        match (table.replica_for(slot, affinity), self.settings.read_from) {
            (Some(replica), _) => Ok(Some(replica.clone())),
            (None, ReadFrom::Replica) if table.master_for(slot).is_some() => {
                Err(RouteError::NoReplica(slot))
            }
            (None, _) => Ok(None),
        }
    }

    pub(super) fn follow_for(&self, slot: Slot, replay_safe: bool) -> Follow {
        Follow::new(slot, replay_safe, self.settings.max_redirects)
    }

    /// Carries out [`Follow`]'s decisions, optionally carrying on from a first attempt already
    /// made (the session's fast path sent the request and got an outcome that needs the router).
    /// Every attempt but the first waits for the request's `turn`.
    pub(super) async fn follow(
        &self,
        mut follow: Follow,
        bytes: Bytes,
        via: Via<'_>,
        mut first: Option<(Arc<Node>, Result<Reply, BackendError>)>,
        turn: &Turn,
    ) -> Result<Reply, RouteError> {
        let mut held_since: Option<Instant> = None;
        let mut sent_before = first.is_some();
        loop {
            let next = match first.take() {
                Some((node, sent)) => self.settle(&mut follow, &node, sent),
                None => {
                    if sent_before {
                        turn.wait().await;
                    }
                    sent_before = true;
                    match self.target(&mut follow) {
                        Some((node, asking)) => {
                            let sent = self.attempt(via, &node, &bytes, asking).await;
                            self.settle(&mut follow, &node, sent)
                        }
                        None => follow.unserved(),
                    }
                }
            };
            match next {
                Next::Done(result) => return result,
                Next::Hold { otherwise } => {
                    self.trigger.request(Trigger::Unserved);
                    if !self.keep_holding(&mut held_since).await {
                        return otherwise;
                    }
                }
                Next::Moved { slot, addr } => {
                    self.metrics.redirections_moved.inc();
                    self.apply_moved(slot, &addr);
                }
                Next::Ask { .. } => self.metrics.redirections_ask.inc(),
                Next::Heal {
                    sha,
                    addr,
                    otherwise,
                } => {
                    if !self.heal(&self.pool.node(&addr), &sha, via.lane()).await {
                        return otherwise;
                    }
                }
                Next::TryAgain(backoff) => {
                    self.disruptions.disrupted();
                    // Keys of one slot are split across two nodes mid-migration; let it move on.
                    self.trigger.request(Trigger::Moved);
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// One attempt at `node`; `asking` sends `ASKING` first, in the same write, and skips its
    /// `+OK`.
    async fn attempt(
        &self,
        via: Via<'_>,
        node: &Node,
        bytes: &Bytes,
        asking: bool,
    ) -> Result<Reply, BackendError> {
        let (bytes, skip) = match asking {
            false => (bytes.clone(), 0),
            true => {
                let mut b = BytesMut::with_capacity(ASKING.len() + bytes.len());
                b.extend_from_slice(ASKING);
                b.extend_from_slice(bytes);
                (b.freeze(), 1)
            }
        };
        match via {
            Via::Shared { lane, budget } => node.send(bytes, skip, lane, budget).await,
            Via::Blocking(proto) => {
                let dedicate = self.pool.dedicate();
                let conn = dedicate.open(node.addr(), Purpose::Blocking, proto).await?;
                conn.send(bytes, skip).await
            }
        }
    }

    /// Runs a command that may block, as one Redis server would for this client: after every
    /// earlier request of the client is answered, and on a connection of its own, exempt from
    /// the operation timeout, so it never delays another client. Followed like any request: a
    /// redirection, or `UNBLOCKED` when its master turns replica in a failover (nothing was
    /// popped), sends it again to the slot's owner. WAIT, too, runs once everything before it
    /// is answered: the writes it waits for are those.
    pub async fn blocking(&self, req: &Request, plan: Plan, proto: Proto, turn: Turn) -> Reply {
        turn.wait().await;
        let _blocked = Blocked::count(&self.metrics.blocked_clients);
        let result = match plan.action {
            Action::Wait => self.wait(req).await,
            Action::Keyed(keys) => match split::one_slot(req.args(), keys) {
                Ok(Some(slot)) => {
                    let follow = self.follow_for(slot, plan.traits.replay_safe());
                    self.follow(follow, req.to_resp(), Via::Blocking(proto), None, &turn)
                        .await
                }
                Ok(None) => Err(RouteError::UnexpectedReply(
                    "a blocking command without keys",
                )),
                Err(split::CrossSlot) => Err(RouteError::CrossSlot),
            },
            _ => Err(RouteError::UnexpectedReply(
                "a blocking command without keys",
            )),
        };
        self.answer(result)
    }

    /// Where the next attempt goes: a redirection's target, else the slot's master in the map.
    fn target(&self, follow: &mut Follow) -> Option<(Arc<Node>, bool)> {
        match follow.take_detour() {
            Some((addr, asking)) => Some((self.pool.node(&addr), asking)),
            None => {
                let table = self.table.load();
                table.master_for(follow.slot()).map(|n| (n.clone(), false))
            }
        }
    }

    /// What one attempt's outcome means; every failed send asks for a slot-map refresh, since a
    /// broken connection is how a dead master shows itself.
    fn settle(&self, follow: &mut Follow, node: &Node, sent: Result<Reply, BackendError>) -> Next {
        match sent {
            Ok(reply) => follow.after_reply(reply, node.addr()),
            Err(e) => {
                self.trigger.request(Trigger::Failure);
                follow.after_error(e)
            }
        }
    }

    /// Counts events after which a request may be sent again, or later than it would have been:
    /// a session compares it between two requests of one client to keep them in order.
    pub fn disruptions(&self) -> u64 {
        self.disruptions.count()
    }

    /// Waits a moment for the slot map to change, unless the request has been held too long.
    pub(super) async fn keep_holding(&self, held_since: &mut Option<Instant>) -> bool {
        if held_since.is_none() {
            self.disruptions.disrupted();
        }
        let since = *held_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.settings.hold_timeout {
            return false;
        }
        tokio::time::sleep(HOLD_POLL).await;
        true
    }

    /// Learns from a MOVED that came outside a request (a subscriber connection's SSUBSCRIBE):
    /// the slot's new owner is used at once.
    pub fn note_redirect(&self, reply: &Reply, replied_by: &str) {
        if let Some(Redirect::Moved { slot, addr }) = redirect::classify(reply, replied_by) {
            self.apply_moved(slot, &addr);
        }
    }

    /// Points `slot` at `addr` right away, and asks for a full refresh to learn what else moved.
    pub(super) fn apply_moved(&self, slot: Slot, addr: &NodeAddr) {
        if !self.table.load().already_routes(slot, addr) {
            self.disruptions.disrupted();
            self.metrics.slot_moved();
            self.table.rcu(|cur| {
                if cur.already_routes(slot, addr) {
                    return Arc::clone(cur);
                }
                Arc::new(RouteTable::build(
                    cur.topology.with_slot_moved(slot, addr),
                    &self.pool,
                    self.reads_replicas(),
                ))
            });
        }
        self.trigger.request(Trigger::Moved);
    }

    /// Serves `next` from now on, unless it is what this router already serves (another shard's
    /// MOVED may have taught it first).
    pub fn install(&self, next: &Topology) {
        if *self.table.load().topology == *next {
            return;
        }
        let table = RouteTable::build(next.clone(), &self.pool, self.reads_replicas());
        let keep = table.topology.all_nodes();
        self.disruptions.disrupted();
        self.table.store(Arc::new(table));
        self.pool.retain(&keep);
    }

    /// Whether this worker has an open connection to `addr`; `None` when it has none to have
    /// (a node it does not route to).
    pub fn node_up(&self, addr: &str) -> Option<bool> {
        self.pool.existing(addr).map(|n| n.is_up())
    }

    /// Some node is unreachable.
    pub fn degraded(&self) -> bool {
        self.pool.degraded()
    }

    /// Builds a command for every master, e.g. `INFO keyspace`.
    pub fn command(args: &[&[u8]]) -> Bytes {
        let mut b = BytesMut::new();
        encode_command(args.iter().copied(), &mut b);
        b.freeze()
    }
}

/// A client counted as blocked (INFO's `blocked_clients`) while its blocking command runs,
/// however that ends: a client that leaves drops the command's future.
struct Blocked<'a>(&'a prometheus::IntGauge);

impl<'a> Blocked<'a> {
    fn count(gauge: &'a prometheus::IntGauge) -> Blocked<'a> {
        gauge.inc();
        Blocked(gauge)
    }
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// How one request is sent, the same for every part of a split one.
#[derive(Clone, Copy)]
pub(super) struct Delivery<'a> {
    pub(super) lane: Lane,
    /// A read-only command of a client whose reads may go to replicas.
    pub(super) replica_read: bool,
    replay_safe: bool,
    /// An EVALSHA's sha: its NOSCRIPT is healed.
    sha: Option<&'a Bytes>,
    pub(super) turn: &'a Turn,
    pub(super) budget: Option<&'a Arc<Budget>>,
}

/// Which connection an attempt goes on.
#[derive(Clone, Copy, Debug)]
pub(super) enum Via<'a> {
    /// The shared, pipelined connection `lane` picks: keeps one client's order per node.
    /// Replies count against the client's `budget` while they wait.
    Shared {
        lane: Lane,
        budget: Option<&'a Arc<Budget>>,
    },
    /// A connection of the request's own, in the client's protocol, for a command that may
    /// block; closed after its reply, so dropping the request (its client left) cancels the
    /// command on the node.
    Blocking(Proto),
}

impl Via<'_> {
    /// The shared connections for slotgate's own commands made on the request's behalf (a
    /// script loaded to heal it), in the request's protocol.
    fn lane(self) -> Lane {
        match self {
            Via::Shared { lane, .. } => lane,
            Via::Blocking(proto) => Lane {
                proto,
                ..Lane::INTERNAL
            },
        }
    }
}
