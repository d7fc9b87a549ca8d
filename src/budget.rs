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

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::{Instant, Sleep};

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

/// Which limit a client broke, or that another client killed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breach {
    Hard,
    Soft,
    /// `CLIENT KILL`: no limit, but the same wake-up ends the session.
    Killed,
}

impl Breach {
    pub fn label(self) -> &'static str {
        match self {
            Breach::Hard => "hard",
            Breach::Soft => "soft",
            Breach::Killed => "killed",
        }
    }
}

/// Whether a session goes on reading its client, as [`Budget::reading`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    Go,
    /// The proxy is shutting down: read nothing more, answer what was read, then close.
    Drain,
    /// `CLIENT KILL`: end the session now.
    Killed,
}

/// [`Budget::ending`]'s values, in the order they override each other.
const GO: u8 = 0;
const DRAIN: u8 = 1;
const KILLED: u8 = 2;

/// One client's reply bytes: arrived from nodes but not yet taken by its session (`owed`), and
/// held by the session but not yet written to the socket (`held`).
///
/// Watching it costs a few atomic loads per look and no lock: the session looks on every turn of
/// its loop, so this is on the request path.
#[derive(Debug)]
pub struct Budget {
    owed: AtomicUsize,
    held: AtomicUsize,
    limits: OutputLimits,
    /// The session waiting in [`Budget::breached`].
    waiter: AtomicWaker,
    /// A reply was refused for going over the hard limit: the client is to be cut off.
    broken: AtomicBool,
    /// Another client asked for this one to be disconnected (`CLIENT KILL`), or the proxy is
    /// draining: [`GO`], [`DRAIN`] or [`KILLED`]. It rides on the budget because the session
    /// already watches the budget, at no cost per request.
    ending: AtomicU8,
    /// Replies have passed the wake-up mark since the session last found all well.
    alert: AtomicBool,
    /// Since when the total has been over the soft limit, in nanoseconds after `epoch` plus one;
    /// 0 while it is not.
    over_soft_since: AtomicU64,
    epoch: Instant,
}

impl Budget {
    pub fn new(limits: OutputLimits) -> Budget {
        Budget {
            owed: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            limits,
            waiter: AtomicWaker::new(),
            broken: AtomicBool::new(false),
            ending: AtomicU8::new(GO),
            alert: AtomicBool::new(false),
            over_soft_since: AtomicU64::new(0),
            epoch: Instant::now(),
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
            self.alert.store(true, Ordering::Relaxed);
            self.waiter.wake();
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
        self.alert.store(true, Ordering::Relaxed);
        self.waiter.wake();
    }

    /// Ends the client's session at its next look, as `CLIENT KILL` does.
    pub fn kill(&self) {
        self.end(KILLED);
    }

    /// Tells the session to read no more requests and close once it has answered the ones it
    /// read: the proxy is shutting down. The alert makes the woken session look again, so it
    /// stays registered for a later wake.
    pub fn drain(&self) {
        self.end(DRAIN);
    }

    fn end(&self, how: u8) {
        self.ending.fetch_max(how, Ordering::Relaxed);
        self.alert.store(true, Ordering::Relaxed);
        self.waiter.wake();
    }

    /// One load, made before each read of the client.
    pub fn reading(&self) -> Reading {
        match self.ending.load(Ordering::Relaxed) {
            GO => Reading::Go,
            DRAIN => Reading::Drain,
            _ => Reading::Killed,
        }
    }

    /// The session holds `bytes` of replies it has not written yet.
    pub fn hold(&self, bytes: usize) {
        self.held.store(bytes, Ordering::Relaxed);
        self.wake_if_over(self.total());
    }

    /// Whether replies have passed the soft (or hard) limit since the session last found them
    /// below it: only then is [`Budget::breached`] worth a look outside a pending write.
    pub fn alerted(&self) -> bool {
        self.alert.load(Ordering::Relaxed)
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
            self.alert.store(true, Ordering::Relaxed);
            self.waiter.wake();
        }
    }

    /// Resolves when the client breaks a limit; until then it waits, woken when replies pass a
    /// limit and when a soft-limit period would end.
    pub fn breached(&self) -> Breached<'_> {
        Breached {
            budget: self,
            soft_end: None,
        }
    }

    /// `Ok` with the end of the soft period when over the soft limit.
    fn check(&self) -> Result<Option<Instant>, Breach> {
        if self.ending.load(Ordering::Relaxed) == KILLED {
            return Err(Breach::Killed);
        }
        let total = self.total();
        if total > self.limits.hard || self.broken.load(Ordering::Relaxed) {
            return Err(Breach::Hard);
        }
        if self.limits.soft == 0 || total <= self.limits.soft {
            if self.over_soft_since.load(Ordering::Relaxed) != 0 {
                self.over_soft_since.store(0, Ordering::Relaxed);
            }
            if self.alert.load(Ordering::Relaxed) {
                self.alert.store(false, Ordering::Relaxed);
            }
            return Ok(None);
        }
        let now = Instant::now();
        let stamp = now.duration_since(self.epoch).as_nanos() as u64 + 1;
        let since = match self.over_soft_since.compare_exchange(
            0,
            stamp,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => stamp,
            Err(earlier) => earlier,
        };
        let deadline = self.epoch + Duration::from_nanos(since - 1) + self.limits.soft_for;
        match now >= deadline {
            true => Err(Breach::Soft),
            false => Ok(Some(deadline)),
        }
    }
}

/// The future of [`Budget::breached`].
pub struct Breached<'a> {
    budget: &'a Budget,
    /// The timer for the end of a soft-limit period, while over the soft limit.
    soft_end: Option<Pin<Box<Sleep>>>,
}

impl Future for Breached<'_> {
    type Output = Breach;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Breach> {
        let budget = self.budget;
        // Registered before the second look, so a wake between the two is not lost.
        if let Err(breach) = budget.check() {
            return Poll::Ready(breach);
        }
        budget.waiter.register(cx.waker());
        match budget.check() {
            Err(breach) => Poll::Ready(breach),
            Ok(None) => {
                self.soft_end = None;
                Poll::Pending
            }
            Ok(Some(deadline)) => {
                let timer = self
                    .soft_end
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    // Still over the soft limit at the end of its period?
                    Poll::Ready(()) => match budget.check() {
                        Err(breach) => Poll::Ready(breach),
                        Ok(_) => {
                            self.soft_end = None;
                            cx.waker().wake_by_ref();
                            Poll::Pending
                        }
                    },
                }
            }
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
    async fn a_drain_is_no_breach_and_a_kill_overrides_it() {
        let b = budget(100, 0);
        assert_eq!(b.reading(), Reading::Go);
        b.drain();
        assert_eq!(b.reading(), Reading::Drain);
        let quiet = tokio::time::timeout(Duration::from_secs(1), b.breached()).await;
        assert!(quiet.is_err(), "a drain is not a breach");
        b.kill();
        b.drain();
        assert_eq!(b.reading(), Reading::Killed);
        assert_eq!(b.breached().await, Breach::Killed);
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
