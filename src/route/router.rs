//! Executing a classified request against the cluster: pick the master from the current snapshot,
//! follow MOVED/ASK/TRYAGAIN, fan out split commands and merge their replies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;

use super::error::RouteError;
use super::merge::{merge, PartResult};
use super::redirect::{self, Redirect};
use super::split::{self, Split};
use super::table::RouteTable;
use crate::backend::{BackendError, Node, Pool};
use crate::cluster::{NodeAddr, RefreshTrigger, Slot, Topology};
use crate::command::{self, CommandTable, FanOut, Keys, Plan, SplitKind};
use crate::metrics::Metrics;
use crate::protocol::{encode_command, Reply, Request};

const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// How often a held request looks again for its slot's master. Short, because the refresher
/// polls fast while a node is down and the request should run as soon as the new map lands.
const HOLD_POLL: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug)]
pub struct RouteSettings {
    pub max_redirects: u32,
    /// How long a request waits for an unreachable master, or its replacement.
    pub hold_timeout: Duration,
}

pub struct Router {
    pub(super) table: ArcSwap<RouteTable>,
    commands: ArcSwap<CommandTable>,
    pool: Pool,
    trigger: RefreshTrigger,
    settings: RouteSettings,
    metrics: Arc<Metrics>,
}

impl Router {
    pub fn new(
        pool: Pool,
        trigger: RefreshTrigger,
        settings: RouteSettings,
        metrics: Arc<Metrics>,
    ) -> Router {
        let table = RouteTable::build(Topology::empty(), &pool);
        Router {
            table: ArcSwap::from_pointee(table),
            commands: ArcSwap::from_pointee(CommandTable::builtin()),
            pool,
            trigger,
            settings,
            metrics,
        }
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

    pub fn topology(&self) -> Arc<Topology> {
        self.table.load().topology.clone()
    }

    /// Runs a request whose plan needs the cluster. `affinity` keeps one client on one connection
    /// per node, so its commands to that node keep their order.
    pub async fn execute(&self, req: &Request, plan: Plan, affinity: usize) -> Reply {
        let result = match plan {
            Plan::Keyed(keys) => self.keyed(req, keys, affinity).await,
            Plan::AnyMaster => self.any_master(req.to_resp(), affinity).await,
            Plan::Split(kind) => self.split(req, kind, affinity).await,
            Plan::FanOut(FanOut::SumIntegers) => self.sum_all(req.to_resp(), affinity).await,
            Plan::Reject(r) => return Reply::error_line(&r.rejection(req).to_string()),
            Plan::Local(_) => Err(RouteError::UnexpectedReply("a local command")),
        };
        match result {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(error = %e, kind = e.kind(), "request failed");
                e.to_reply()
            }
        }
    }

    async fn keyed(&self, req: &Request, keys: Keys, affinity: usize) -> Result<Reply, RouteError> {
        let args = req.args();
        let mut slots = keys.iter().map(|i| Slot::for_key(&args[i]));
        let Some(slot) = slots.next() else {
            return self.any_master(req.to_resp(), affinity).await;
        };
        if slots.any(|s| s != slot) {
            return Err(RouteError::CrossSlot);
        }
        self.send_to_slot(slot, req.to_resp(), affinity, args).await
    }

    async fn split(
        &self,
        req: &Request,
        kind: SplitKind,
        affinity: usize,
    ) -> Result<Reply, RouteError> {
        let args = req.args();
        let parts = match split::split(args, kind) {
            Split::OneSlot(slot) => {
                return self.send_to_slot(slot, req.to_resp(), affinity, args).await;
            }
            Split::Parts(parts) => parts,
        };
        let keys = match kind {
            SplitKind::MSet => (args.len() - 1) / 2,
            SplitKind::MGet | SplitKind::SumKeys => args.len() - 1,
        };
        let results = join_all(
            parts
                .iter()
                .map(|p| self.send_to_slot(p.slot, p.command.clone(), affinity, args)),
        )
        .await;
        merge(kind, keys, &parts, results)
    }

    async fn any_master(&self, bytes: Bytes, affinity: usize) -> Result<Reply, RouteError> {
        let node = {
            let table = self.table.load();
            let masters = table.serving_masters();
            if masters.is_empty() {
                self.trigger.request();
                return Err(RouteError::NoMasters);
            }
            masters[affinity % masters.len()].clone()
        };
        Ok(node.send(bytes, 0, affinity).await?)
    }

    async fn sum_all(&self, bytes: Bytes, affinity: usize) -> Result<Reply, RouteError> {
        let results = self.fan_out(bytes, affinity).await;
        let mut sum = 0i64;
        for r in results {
            let r = r?;
            match r.integer() {
                Some(n) => sum = sum.saturating_add(n),
                None if r.error().is_some() => return Ok(r),
                None => return Err(RouteError::UnexpectedReply("a fanned-out command")),
            }
        }
        Ok(Reply::integer_reply(sum))
    }

    /// Sends the same command to every serving master and returns their replies.
    pub async fn fan_out(&self, bytes: Bytes, affinity: usize) -> Vec<PartResult> {
        // Keep this snapshot alive across the awaits below, rather than a guard.
        let table = self.table.load_full();
        let masters = table.serving_masters();
        if masters.is_empty() {
            self.trigger.request();
            return vec![Err(RouteError::NoMasters)];
        }
        join_all(masters.iter().map(|n| async {
            n.send(bytes.clone(), 0, affinity)
                .await
                .map_err(RouteError::from)
        }))
        .await
    }

    /// Sends to the master of `slot`, following redirections until a real answer arrives.
    ///
    /// While the slot's master is unreachable the request is held, up to the hold timeout, and
    /// sent to whichever master serves the slot once the map changes. A request that may already
    /// have run (its connection died after writing it, or it timed out) is sent again only when
    /// `args` is safe to repeat (`command::replay_safe`); otherwise the client is told the outcome
    /// is unknown.
    pub async fn send_to_slot(
        &self,
        slot: Slot,
        bytes: Bytes,
        affinity: usize,
        args: &[Bytes],
    ) -> Result<Reply, RouteError> {
        self.follow(slot, bytes, affinity, args, None).await
    }

    /// [`Router::send_to_slot`], optionally carrying on from a first attempt already made (the
    /// session's fast path sent the request and got an outcome that needs the router).
    pub(super) async fn follow(
        &self,
        slot: Slot,
        bytes: Bytes,
        affinity: usize,
        args: &[Bytes],
        mut first: Option<(Arc<Node>, Result<Reply, BackendError>)>,
    ) -> Result<Reply, RouteError> {
        // Where to send next when a redirect overrides the slot map, and whether to ASK.
        let mut redirected: Option<(Arc<Node>, bool)> = None;
        let mut redirects = 0u32;
        let mut held_since: Option<Instant> = None;
        loop {
            let (node, sent) = match first.take() {
                Some(attempt) => attempt,
                None => {
                    let (node, asking) = match redirected.take() {
                        Some(target) => target,
                        None => match self.table.load().master_for(slot) {
                            Some(n) => (n.clone(), false),
                            None => {
                                self.trigger.request();
                                if self.keep_holding(&mut held_since).await {
                                    continue;
                                }
                                return Err(RouteError::SlotUnserved(slot));
                            }
                        },
                    };
                    let sent = if asking {
                        let mut b = BytesMut::with_capacity(ASKING.len() + bytes.len());
                        b.extend_from_slice(ASKING);
                        b.extend_from_slice(&bytes);
                        node.send(b.freeze(), 1, affinity).await
                    } else {
                        node.send(bytes.clone(), 0, affinity).await
                    };
                    (node, sent)
                }
            };
            let reply = match sent {
                Ok(r) => r,
                Err(e) => {
                    self.trigger.request();
                    let resend = !e.maybe_executed() || command::replay_safe(args);
                    if resend && self.keep_holding(&mut held_since).await {
                        continue;
                    }
                    return Err(e.into());
                }
            };
            let redirect = match redirect::classify(&reply, node.addr()) {
                None if redirect::is_cluster_down(&reply) => {
                    // The cluster refused the command (it did not run): while a failed master is
                    // being replaced, full-coverage clusters refuse every slot for about a
                    // second. Hold it like a request for an unreachable master.
                    self.trigger.request();
                    if self.keep_holding(&mut held_since).await {
                        continue;
                    }
                    return Ok(reply);
                }
                None => return Ok(reply),
                Some(r) => r,
            };
            redirects += 1;
            if redirects > self.settings.max_redirects {
                return Err(RouteError::TooManyRedirects {
                    slot,
                    limit: self.settings.max_redirects,
                });
            }
            match redirect {
                Redirect::Moved { slot: moved, addr } => {
                    self.metrics.redirections_moved.inc();
                    self.apply_moved(moved, &addr);
                    redirected = Some((self.pool.node(&addr), false));
                }
                Redirect::Ask { addr } => {
                    self.metrics.redirections_ask.inc();
                    redirected = Some((self.pool.node(&addr), true));
                }
                Redirect::TryAgain => {
                    self.pool.health().disrupted();
                    // Keys of one slot are split across two nodes mid-migration; let it move on.
                    self.trigger.request();
                    tokio::time::sleep(Duration::from_millis(5 << redirects.min(6))).await;
                }
            }
        }
    }

    /// Counts events after which a request may be sent again, or later than it would have been:
    /// a session compares it between two requests of one client to keep them in order.
    pub fn disruptions(&self) -> u64 {
        self.pool.health().disruptions()
    }

    /// Waits a moment for the slot map to change, unless the request has been held too long.
    async fn keep_holding(&self, held_since: &mut Option<Instant>) -> bool {
        if held_since.is_none() {
            self.pool.health().disrupted();
        }
        let since = *held_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.settings.hold_timeout {
            return false;
        }
        tokio::time::sleep(HOLD_POLL).await;
        true
    }

    /// Points `slot` at `addr` right away, and asks for a full refresh to learn what else moved.
    fn apply_moved(&self, slot: Slot, addr: &NodeAddr) {
        if !self.table.load().already_routes(slot, addr) {
            self.pool.health().disrupted();
            self.table.rcu(|cur| {
                if cur.already_routes(slot, addr) {
                    return Arc::clone(cur);
                }
                Arc::new(RouteTable::build(
                    cur.topology.with_slot_moved(slot, addr),
                    &self.pool,
                ))
            });
        }
        self.trigger.request();
    }

    /// Serves `next` from now on, unless it is what this router already serves (another shard's
    /// MOVED may have taught it first).
    pub fn install(&self, next: &Topology) {
        if *self.table.load().topology == *next {
            return;
        }
        let table = RouteTable::build(next.clone(), &self.pool);
        let keep = table.topology.all_nodes();
        self.pool.health().disrupted();
        self.table.store(Arc::new(table));
        self.pool.retain(&keep);
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
