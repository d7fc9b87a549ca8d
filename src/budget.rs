//! What one client's replies may hold in slotgate before the client reads them: Redis'
//! `client-output-buffer-limit`, counted in bytes, not requests. A client that pipelines reads of
//! large values and never reads its socket would otherwise make slotgate hold every reply it has
//! asked for.
//!
//! A reply counts from the moment its node's connection hands it over, so the limit holds even
//! for replies the client's session has not looked at yet: the connection adds each reply's
//! length here and, past a limit, wakes the session, which disconnects the client at the hard
//! limit, or when it stays over the soft one for the soft time. Shared by the backend (which
//! adds) and the frontend (which takes, holds and decides): a leaf module, like `metrics`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A client class's limits, as in Redis' `client-output-buffer-limit <class> hard soft secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimits {
    /// Disconnect as soon as the client's replies hold more than this.
    pub hard: usize,
    /// Disconnect when they hold more than this for `soft_for` without a break; 0 turns it off.
    pub soft: usize,
    pub soft_for: Duration,
}

impl OutputLimits {
    /// Above this the session stops reading the client's requests: no new replies are asked for
    /// while the ones it has are not read.
    pub fn pause_at(&self) -> usize {
        match self.soft {
            0 => self.hard / 2,
            soft => soft,
        }
    }
}

/// Which limit a client broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breach {
    Hard,
    Soft,
}

impl Breach {
    pub fn label(self) -> &'static str {
        match self {
            Breach::Hard => "hard",
            Breach::Soft => "soft",
        }
    }
}

/// One client's reply bytes: arrived from nodes but not yet taken by its session (`owed`), and
/// held by the session but not yet written to the socket (`held`).
#[derive(Debug)]
pub struct Budget {
    owed: AtomicUsize,
    held: AtomicUsize,
    limits: OutputLimits,
    over: Notify,
    /// A reply was refused for going over the hard limit: the client is to be cut off.
    broken: AtomicBool,
    /// Since when the total has been over the soft limit.
    over_soft_since: Mutex<Option<Instant>>,
}

impl Budget {
    pub fn new(limits: OutputLimits) -> Budget {
        Budget {
            owed: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            limits,
            over: Notify::new(),
            broken: AtomicBool::new(false),
            over_soft_since: Mutex::new(None),
        }
    }

    pub fn limits(&self) -> OutputLimits {
        self.limits
    }

    /// A reply of `len` bytes arrived for this client. `false` when it would take the client
    /// over its hard limit: it is not counted, the caller drops it, and the client is cut off,
    /// so what slotgate holds never passes the limit by more than the reply being read.
    pub fn arrived(&self, len: usize) -> bool {
        let owed = self.owed.fetch_add(len, Ordering::Relaxed) + len;
        let total = owed + self.held.load(Ordering::Relaxed);
        if total > self.limits.hard {
            self.owed.fetch_sub(len, Ordering::Relaxed);
            self.broken.store(true, Ordering::Relaxed);
            self.over.notify_one();
            return false;
        }
        self.wake_if_over(total);
        true
    }

    /// A reply of `len` bytes the session made (a merged MGET, say) waits for its turn: counted
    /// like an arrived one, but never refused, since it is already made.
    pub fn made(&self, len: usize) {
        let owed = self.owed.fetch_add(len, Ordering::Relaxed) + len;
        self.wake_if_over(owed + self.held.load(Ordering::Relaxed));
    }

    /// The session took a reply of `len` bytes (or it was dropped undelivered).
    pub fn taken(&self, len: usize) {
        self.owed.fetch_sub(len, Ordering::Relaxed);
    }

    /// Cuts the client off as if it had gone over its hard limit: what it is sent is queued
    /// somewhere that is full.
    pub fn cut_off(&self) {
        self.broken.store(true, Ordering::Relaxed);
        self.over.notify_one();
    }

    /// The session holds `bytes` of replies it has not written yet.
    pub fn hold(&self, bytes: usize) {
        self.held.store(bytes, Ordering::Relaxed);
        self.wake_if_over(self.total());
    }

    pub fn total(&self) -> usize {
        self.owed.load(Ordering::Relaxed) + self.held.load(Ordering::Relaxed)
    }

    fn wake_if_over(&self, total: usize) {
        let mark = match self.limits.soft {
            0 => self.limits.hard,
            soft => soft,
        };
        if total > mark {
            self.over.notify_one();
        }
    }

    /// Resolves when the client breaks a limit; until then it waits, waking when replies pass
    /// a limit and when a soft-limit period would end.
    pub async fn breached(&self) -> Breach {
        loop {
            let until = match self.check() {
                Err(breach) => return breach,
                Ok(until) => until,
            };
            match until {
                Some(deadline) => tokio::select! {
                    () = self.over.notified() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                },
                None => self.over.notified().await,
            }
        }
    }

    /// `Ok` with the end of the soft period when over the soft limit.
    fn check(&self) -> Result<Option<Instant>, Breach> {
        let total = self.total();
        if total > self.limits.hard || self.broken.load(Ordering::Relaxed) {
            return Err(Breach::Hard);
        }
        let mut since = self
            .over_soft_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.limits.soft == 0 || total <= self.limits.soft {
            *since = None;
            return Ok(None);
        }
        let deadline = *since.get_or_insert_with(Instant::now) + self.limits.soft_for;
        match Instant::now() >= deadline {
            true => Err(Breach::Soft),
            false => Ok(Some(deadline)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(hard: usize, soft: usize) -> Budget {
        Budget::new(OutputLimits {
            hard,
            soft,
            soft_for: Duration::from_secs(60),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_hard_limit_counts_replies_owed_and_held() {
        let b = budget(100, 0);
        assert!(b.arrived(60));
        b.taken(60);
        b.hold(60);
        assert!(b.arrived(30));
        assert_eq!(b.total(), 90);
        let quiet = tokio::time::timeout(Duration::from_secs(1), b.breached()).await;
        assert!(quiet.is_err(), "breached below the hard limit");
        // The reply that would go over is refused, not held.
        assert!(!b.arrived(20));
        assert_eq!(b.total(), 90);
        assert_eq!(b.breached().await, Breach::Hard);
    }

    #[tokio::test(start_paused = true)]
    async fn the_soft_limit_breaks_only_after_its_time_without_a_break() {
        let b = budget(1000, 100);
        assert!(b.arrived(150));
        let early = tokio::time::timeout(Duration::from_secs(59), b.breached()).await;
        assert!(early.is_err(), "broke the soft limit before its time");
        // Below the soft limit for a moment: the clock starts again.
        b.taken(150);
        tokio::time::timeout(Duration::from_millis(1), b.breached())
            .await
            .unwrap_err();
        assert!(b.arrived(150));
        let start = Instant::now();
        assert_eq!(b.breached().await, Breach::Soft);
        assert!(start.elapsed() >= Duration::from_secs(60));
    }
}
