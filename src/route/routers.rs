//! The routers of all workers, seen as one by the slot-map refresher and the command learner.

use std::sync::Arc;

use super::router::Router;
use super::status::{self, ChangeLog, Status};
use crate::cluster::{Topology, TopologySink, Trigger};
use crate::command::CommandTable;
use crate::metrics::{node_totals, Metrics, SlotMapSummary};

pub struct Routers {
    routers: Vec<Arc<Router>>,
    metrics: Arc<Metrics>,
    changes: ChangeLog,
}

impl Routers {
    /// `routers` must not be empty: the proxy runs at least one worker.
    pub fn new(routers: Vec<Arc<Router>>, metrics: Arc<Metrics>) -> Routers {
        assert!(!routers.is_empty(), "at least one router");
        Routers {
            routers,
            metrics,
            changes: ChangeLog::default(),
        }
    }

    /// The cluster as the status page shows it.
    pub fn status(&self) -> Status {
        let first = &self.routers[0];
        let totals = node_totals(&self.metrics.registry);
        status::status(
            &first.topology(),
            |addr| first.node_up(addr),
            &totals,
            self.changes.entries(),
        )
    }

    /// Every worker can serve any key.
    pub fn is_ready(&self) -> bool {
        self.routers.iter().all(|r| r.is_ready())
    }

    /// Every worker has a slot map.
    pub fn has_slot_map(&self) -> bool {
        self.routers.iter().all(|r| r.has_slot_map())
    }

    /// Every worker has a connection open to some master: each can serve the keys of at least
    /// one shard.
    pub fn reaches_a_master(&self) -> bool {
        self.routers.iter().all(|r| r.reaches_a_master())
    }

    pub fn set_commands(&self, table: CommandTable) {
        let table = Arc::new(table);
        for r in &self.routers {
            r.set_commands(table.clone());
        }
    }
}

impl TopologySink for Routers {
    /// The first worker's map stands for all when the refresher compares and merges epochs. Every
    /// refresh is offered to each worker, so a worker whose map differs (it learnt of a move from
    /// its own MOVED, or missed one another worker learnt) is set right by the next refresh.
    fn current(&self) -> Arc<Topology> {
        self.routers[0].topology()
    }

    fn install(&self, next: Topology, changed: bool) {
        if changed {
            self.changes.record(&self.current(), &next);
        }
        for r in &self.routers {
            r.install(&next);
        }
        if changed {
            self.metrics
                .slot_map_changed(summary(&next), next.serving_shards().count());
        }
    }

    fn degraded(&self) -> bool {
        self.routers.iter().any(|r| r.degraded())
    }

    fn disagreed(&self, slots: usize) {
        self.metrics.topology_disagreed(slots);
    }

    fn refreshed(&self, trigger: Trigger, ok: bool, asked: usize) {
        self.metrics.topology_refreshed(trigger.label(), ok, asked);
    }
}

/// What the metrics show of a slot map.
fn summary(t: &Topology) -> SlotMapSummary {
    let shards = t.shards();
    let masters = shards.iter().map(|s| (s.master.to_string(), "master"));
    let replicas = shards
        .iter()
        .flat_map(|s| s.replicas.iter().map(|r| (r.to_string(), "replica")));
    SlotMapSummary {
        epoch: shards.iter().map(|s| s.epoch).max().unwrap_or(0),
        covered: t.covered_slots(),
        roles: masters.chain(replicas).collect(),
    }
}
