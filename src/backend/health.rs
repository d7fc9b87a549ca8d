//! What the connections of one worker report to the rest of the proxy: whether any node is down
//! (the refresher polls hard while one is), and when a request may have been disturbed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::cluster::NodeAddr;
use crate::logging::Throttle;
use crate::order::Disruptions;

/// What every connection reports to: how many are down right now, and whom to tell when one
/// fails. Lets the refresher poll hard while a node is unreachable (a killed master sends no
/// MOVED; only polling finds its replacement) and calmly otherwise.
pub struct Health {
    down: AtomicUsize,
    /// A request refused or lost by a connection may be sent again: see [`crate::order`].
    disruptions: Arc<Disruptions>,
    on_failure: Arc<dyn Fn() + Send + Sync>,
    /// One warning per node and kind an interval, over every connection of every worker: each
    /// keeps its own connections to a node, and all of them lose it at once.
    pub(crate) quiet: Throttle<(NodeAddr, &'static str)>,
}

impl Health {
    /// `on_failure` runs whenever a connection breaks or cannot be opened; it must be cheap.
    pub fn new(on_failure: Arc<dyn Fn() + Send + Sync>, disruptions: Arc<Disruptions>) -> Health {
        Health {
            down: AtomicUsize::new(0),
            disruptions,
            on_failure,
            quiet: Throttle::default(),
        }
    }

    /// Some connection cannot reach its node.
    pub fn degraded(&self) -> bool {
        self.down.load(Ordering::Relaxed) > 0
    }

    /// Must be called before the affected request learns of it.
    pub(crate) fn disrupted(&self) {
        self.disruptions.disrupted();
    }

    pub(crate) fn failed(&self) {
        (self.on_failure)();
    }

    pub(crate) fn mark_down(&self) {
        self.down.fetch_add(1, Ordering::Relaxed);
        self.failed();
    }

    pub(crate) fn mark_up(&self) {
        self.down.fetch_sub(1, Ordering::Relaxed);
    }
}
