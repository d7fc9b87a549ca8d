//! Keeping one client's requests in the order it sent them when some are sent twice.
//!
//! A client's replies always come back in order (the session queues them), but the order in which
//! its commands *run* is set by when they reach a node. Sent once, in order, on the one connection
//! a client uses per node, they run in order. A request that is held, redirected or replayed is
//! sent again later, and two rules keep it from being overtaken or overtaking:
//!
//! - [`Disruptions`]: after any event that may make an earlier request be sent again (a request
//!   refused or lost by a node, a route change, a held request), a session stops reading new
//!   requests until everything in flight is answered, so `SET k 1` held for a new master cannot
//!   be overtaken by a later `SET k 2` that went there directly.
//! - [`Turn`]: a request is sent a second time only once every earlier request of its client has
//!   been answered, so two requests redirected by the same migrating slot are re-sent in the
//!   client's order, whichever redirection came back first.
//!
//! Shared by the backend (which counts disruptions), the router (which waits for turns) and the
//! frontend (which owns both per client): a leaf module, like `metrics`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Counts events after which an earlier request may be sent again, or later than it would have
/// been. Every disruption must be counted before the affected request learns of it: a session
/// that then dispatches a later request of the same client sees the count changed and waits.
#[derive(Debug, Default)]
pub struct Disruptions(AtomicU64);

impl Disruptions {
    pub fn disrupted(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One client's requests as its session answers them: how many have been answered, and who waits
/// for that number to grow.
#[derive(Debug, Default)]
pub struct Line {
    answered: AtomicU64,
    /// Turns waiting right now; the session wakes them only then, so a reply costs two atomics.
    waiting: AtomicUsize,
    wake: Notify,
}

impl Line {
    /// The request at the head of the client's queue has been answered.
    pub fn advance(&self) {
        self.answered.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.wake.notify_waiters();
        }
    }

    /// The turn of the request with `ahead` requests of its client before it.
    pub fn turn(self: &Arc<Self>, ahead: u64) -> Turn {
        Turn {
            line: Some((self.clone(), ahead)),
        }
    }
}

/// When a request may be sent a second time: once every earlier request of its client has been
/// answered.
#[derive(Debug, Default)]
pub struct Turn {
    line: Option<(Arc<Line>, u64)>,
}

impl Turn {
    /// For a request that is already at the head of its client's queue, or that has no client
    /// order to keep (a query of slotgate's own).
    pub fn now() -> Turn {
        Turn { line: None }
    }

    pub async fn wait(&self) {
        let Some((line, ahead)) = &self.line else {
            return;
        };
        let reached = || line.answered.load(Ordering::SeqCst) >= *ahead;
        if reached() {
            return;
        }
        line.waiting.fetch_add(1, Ordering::SeqCst);
        let _unregister = Unregister(&line.waiting);
        loop {
            let woken = line.wake.notified();
            tokio::pin!(woken);
            // Registered before the check, so an advance between the two is not missed.
            woken.as_mut().enable();
            if reached() {
                return;
            }
            woken.await;
        }
    }
}

/// Takes a waiting turn off the count however its wait ends, dropped futures included.
struct Unregister<'a>(&'a AtomicUsize);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_turn_comes_when_every_earlier_request_is_answered() {
        let line = Arc::new(Line::default());
        let third = line.turn(2);
        let waiter = tokio::spawn(async move { third.wait().await });
        line.advance();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "one earlier request is still unanswered"
        );
        line.advance();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the turn came")
            .unwrap();
        assert_eq!(line.waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_head_and_slotgates_own_queries_never_wait() {
        let line = Arc::new(Line::default());
        line.turn(0).wait().await;
        Turn::now().wait().await;
    }

    #[test]
    fn disruptions_count_up() {
        let d = Disruptions::default();
        d.disrupted();
        d.disrupted();
        assert_eq!(d.count(), 2);
    }
}
