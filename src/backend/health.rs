use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// What every connection reports to: how many are down right now, and whom to tell when one
/// fails. Lets the refresher poll hard while a node is unreachable (a killed master sends no
/// MOVED; only polling finds its replacement) and calmly otherwise.
pub struct Health {
    down: AtomicUsize,
    /// Counts events after which an earlier request may be sent again (or later than usual):
    /// a request refused or lost by a connection, a change of route, a request held. Sessions
    /// compare it to keep a client's requests in order across such a retry; see `disrupted`.
    disruptions: AtomicU64,
    on_failure: Arc<dyn Fn() + Send + Sync>,
}

impl Health {
    /// `on_failure` runs whenever a connection breaks or cannot be opened; it must be cheap.
    pub fn new(on_failure: Arc<dyn Fn() + Send + Sync>) -> Health {
        Health {
            down: AtomicUsize::new(0),
            disruptions: AtomicU64::new(0),
            on_failure,
        }
    }

    /// Some connection cannot reach its node.
    pub fn degraded(&self) -> bool {
        self.down.load(Ordering::Relaxed) > 0
    }

    /// Must be called before the affected request learns of it: a session that then sends a
    /// later request of the same client sees the count changed and waits for the earlier one.
    pub fn disrupted(&self) {
        self.disruptions.fetch_add(1, Ordering::SeqCst);
    }

    pub fn disruptions(&self) -> u64 {
        self.disruptions.load(Ordering::SeqCst)
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
