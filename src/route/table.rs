//! The routing snapshot: the slot map joined to this worker's node connections, built once per
//! slot-map change so the per-request lookup is two array reads and no hash map.

use std::sync::Arc;

use crate::backend::{Node, Pool};
use crate::cluster::{NodeAddr, Slot, Topology};

/// The snapshot the hot path loads once per request: the slot map plus, for each of its shards,
/// the master's connections, so routing is two array lookups and no hash map.
pub struct RouteTable {
    pub topology: Arc<Topology>,
    masters: Vec<Arc<Node>>,
    /// Masters that serve at least one slot, found once here rather than by scanning all 16384
    /// slots on every keyless or fanned-out request.
    serving: Vec<Arc<Node>>,
    /// Each shard's replicas, when reads may go to them (else empty, and no connection is made
    /// to any replica).
    replicas: Vec<Vec<Arc<Node>>>,
    /// The shards a cluster-wide SCAN walks, in order, each named by its highest slot.
    scan_order: Vec<Slot>,
}

impl RouteTable {
    pub fn build(topology: Topology, pool: &Pool, with_replicas: bool) -> RouteTable {
        let masters: Vec<Arc<Node>> = topology
            .shards()
            .iter()
            .map(|s| pool.node(&s.master))
            .collect();
        let serving = topology
            .serving_shards()
            .map(|(i, _)| masters[i].clone())
            .collect();
        let replicas = match with_replicas {
            true => topology
                .shards()
                .iter()
                .map(|s| s.replicas.iter().map(|r| pool.node(r)).collect())
                .collect(),
            false => Vec::new(),
        };
        let scan_order = topology.highest_slots();
        RouteTable {
            topology: Arc::new(topology),
            masters,
            serving,
            replicas,
            scan_order,
        }
    }

    pub fn master_for(&self, slot: Slot) -> Option<&Arc<Node>> {
        self.topology.shard_of(slot).map(|i| &self.masters[i])
    }

    /// A connected replica of the shard serving `slot`: the same one for a client (`affinity`)
    /// while it stays up, so one client's reads see one replica's order.
    pub fn replica_for(&self, slot: Slot, affinity: usize) -> Option<&Arc<Node>> {
        let replicas = self.replicas.get(self.topology.shard_of(slot)?)?;
        let n = replicas.len();
        (0..n)
            .map(|i| &replicas[(affinity + i) % n])
            .find(|r| r.is_up())
    }

    /// Masters that serve at least one slot.
    pub fn serving_masters(&self) -> &[Arc<Node>] {
        &self.serving
    }

    /// The slot naming the shard a SCAN walk starts with.
    pub fn scan_first(&self) -> Option<Slot> {
        self.scan_order.first().copied()
    }

    /// The slot naming the shard a SCAN walks after the one `slot` named when the walk reached
    /// it. Compared with that slot rather than the shard's slots now, so a shard that gained or
    /// lost slots since cannot make the walk jump over the shards between.
    pub fn scan_after(&self, slot: Slot) -> Option<Slot> {
        let next = self.scan_order.partition_point(|&s| s <= slot);
        self.scan_order.get(next).copied()
    }

    /// Whether a MOVED to `addr` for `slot` is news; many in-flight requests report the same move.
    pub fn already_routes(&self, slot: Slot, addr: &NodeAddr) -> bool {
        self.topology.master_of(slot) == Some(addr)
    }
}
