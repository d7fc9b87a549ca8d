//! `instantaneous_ops_per_sec` as Redis computes it (`trackInstantaneousMetric`): the commands
//! answered are sampled every 100 ms, each sample turned into a rate, and the last 16 rates
//! averaged. Sampled by a task of its own, so the request path pays nothing for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// Tokio's clock, the same as std's except in tests that pause time.
use tokio::time::Instant;

/// How often the count is sampled (Redis' `serverCron` runs it every 100 ms).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Rates averaged (Redis' `STATS_METRIC_SAMPLES`).
const SAMPLES: usize = 16;

/// The latest average, written by the sampling task and read by INFO on any worker.
#[derive(Debug, Default)]
pub struct OpsRate(AtomicU64);

impl OpsRate {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, ops_per_sec: u64) {
        self.0.store(ops_per_sec, Ordering::Relaxed);
    }
}

/// The last rates, and the count and time they are measured from.
#[derive(Debug)]
struct Samples {
    rates: [u64; SAMPLES],
    next: usize,
    last: (Instant, u64),
}

impl Samples {
    fn new(now: Instant, count: u64) -> Samples {
        Samples {
            rates: [0; SAMPLES],
            next: 0,
            last: (now, count),
        }
    }

    fn track(&mut self, now: Instant, count: u64) {
        let (then, before) = self.last;
        let millis = now.duration_since(then).as_millis() as u64;
        let ops = count.saturating_sub(before);
        self.rates[self.next] = match millis {
            0 => 0,
            ms => ops * 1000 / ms,
        };
        self.next = (self.next + 1) % SAMPLES;
        self.last = (now, count);
    }

    /// Like Redis, the sum over all 16 slots, so the figure ramps up over the first 1.6 s.
    fn per_sec(&self) -> u64 {
        self.rates.iter().sum::<u64>() / SAMPLES as u64
    }
}

/// Samples `count()` into `rate` every [`SAMPLE_EVERY`] until `stop` resolves.
pub async fn sample(
    rate: std::sync::Arc<OpsRate>,
    count: impl Fn() -> u64,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples = Samples::new(Instant::now(), count());
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticks.tick() => {
                samples.track(Instant::now(), count());
                rate.set(samples.per_sec());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_the_last_sixteen_rates() {
        let start = Instant::now();
        let mut s = Samples::new(start, 0);
        // 50 commands every 100 ms: 500/s once all sixteen samples are in.
        for i in 1..=8u32 {
            s.track(start + SAMPLE_EVERY * i, u64::from(i) * 50);
        }
        assert_eq!(s.per_sec(), 250);
        for i in 9..=40u32 {
            s.track(start + SAMPLE_EVERY * i, u64::from(i) * 50);
        }
        assert_eq!(s.per_sec(), 500);
        // Silence brings it back to 0.
        for i in 41..=56u32 {
            s.track(start + SAMPLE_EVERY * i, 40 * 50);
        }
        assert_eq!(s.per_sec(), 0);
    }

    #[test]
    fn no_time_passed_is_no_rate() {
        let start = Instant::now();
        let mut s = Samples::new(start, 0);
        s.track(start, 100);
        assert_eq!(s.per_sec(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_publishes_the_rate_until_stopped() {
        let rate = std::sync::Arc::new(OpsRate::default());
        let start = Instant::now();
        // 100 commands per 100 ms of (paused, auto-advancing) time.
        let count = move || (start.elapsed().as_millis() as u64 / 100) * 100;
        let stop = tokio::time::sleep(Duration::from_secs(3));
        sample(rate.clone(), count, stop).await;
        assert_eq!(rate.get(), 1000);
    }
}
