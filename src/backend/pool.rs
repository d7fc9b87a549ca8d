//! Every node one worker talks to, found by address: the only place a node's connections are
//! created, so a slot-map change or a redirect to a new node reuses what exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;

use super::dedicated::Dedicate;
use super::health::Health;
use super::node::Node;
use super::settings::BackendSettings;
use crate::cluster::NodeAddr;
use crate::metrics::Metrics;

/// Every node the proxy talks to, by address. Consulted only when the slot map changes or a
/// redirect names a node, never per request, so a plain mutex (never held across an await) is fine.
pub struct Pool {
    nodes: Mutex<HashMap<NodeAddr, Arc<Node>>>,
    settings: Arc<BackendSettings>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// Where this pool's connection drivers run: the runtime of the worker that owns the pool.
    rt: Handle,
    /// Connections of one client's own; their seats are shared with every other worker.
    dedicate: Arc<Dedicate>,
}

impl Pool {
    pub fn new(
        settings: Arc<BackendSettings>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        rt: Handle,
        dedicate: Arc<Dedicate>,
    ) -> Pool {
        Pool {
            nodes: Mutex::new(HashMap::new()),
            settings,
            metrics,
            health,
            rt,
            dedicate,
        }
    }

    pub fn dedicate(&self) -> &Dedicate {
        &self.dedicate
    }

    /// Some node the proxy uses cannot be reached right now.
    pub fn degraded(&self) -> bool {
        self.health.degraded()
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The node at `addr`, connecting to it on first use.
    pub fn node(&self, addr: &NodeAddr) -> Arc<Node> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes
            .entry(addr.clone())
            .or_insert_with(|| {
                Arc::new(Node::connect(
                    addr.clone(),
                    self.settings.clone(),
                    self.metrics.clone(),
                    self.health.clone(),
                    &self.rt,
                ))
            })
            .clone()
    }

    /// The node at `addr` if this pool already connects to it; never opens a connection.
    pub fn existing(&self, addr: &str) -> Option<Arc<Node>> {
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes
            .iter()
            .find(|(a, _)| a.as_ref() == addr)
            .map(|(_, n)| n.clone())
    }

    /// Forgets nodes not in `keep`. Their connections close once the last request using them is done.
    pub fn retain(&self, keep: &[NodeAddr]) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes.retain(|addr, _| keep.contains(addr));
    }
}
