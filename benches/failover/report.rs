//! What a round measured, from its samples: the windows, the errors and the latencies.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::{LoadResult, Sample};
use crate::STALE_REPLY_GRACE_US;

/// Requests during the first second still pay for connects and cold caches; the baseline the
/// failover is compared with starts after it.
const BASELINE_SKIP_US: u64 = 1_000_000;
/// Hour-long latencies would mean a hung run; anything up to that is recorded exactly enough.
const HIST_MAX_US: u64 = 3_600_000_000;

/// p50, p99 and max of some latencies, in µs; written to the JSON as it is.
#[derive(Clone, Copy, Default, Serialize)]
pub struct Lat {
    pub count: u64,
    #[serde(rename = "p50_us")]
    pub p50: u64,
    #[serde(rename = "p99_us")]
    pub p99: u64,
    #[serde(rename = "max_us")]
    pub max: u64,
}

impl Lat {
    fn of<'a>(samples: impl Iterator<Item = &'a Sample>) -> Lat {
        Lat::corrected(samples, None)
    }

    /// With `interval_us`, the paced client's schedule: a request that took several intervals
    /// also stands for the requests its client would have sent meanwhile and did not (coordinated
    /// omission). At pipeline 1 a stalled client sends one slow request where a real application
    /// would have queued many, so without this a one-second stall of every client barely moves
    /// a p99 taken over a few seconds.
    fn corrected<'a>(samples: impl Iterator<Item = &'a Sample>, interval_us: Option<u64>) -> Lat {
        let mut h = Histogram::<u64>::new_with_bounds(1, HIST_MAX_US, 3).expect("valid bounds");
        for s in samples {
            let v = s.latency_us.clamp(1, HIST_MAX_US);
            match interval_us {
                Some(i) => h.record_correct(v, i).expect("value within bounds"),
                None => h.record(v).expect("value within bounds"),
            }
        }
        if h.is_empty() {
            return Lat::default();
        }
        Lat {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }

    pub fn text(&self) -> String {
        if self.count == 0 {
            return "no requests".to_owned();
        }
        format!(
            "{} / {} / {} ms",
            ms_text(self.p50),
            ms_text(self.p99),
            ms_text(self.max)
        )
    }
}

fn ms_text(us: u64) -> String {
    if us < 10_000 {
        format!("{:.2}", us as f64 / 1000.0)
    } else {
        format!("{}", us / 1000)
    }
}

pub struct ShardErrors {
    pub port: u16,
    pub requests: u64,
    pub errors: u64,
    pub texts: Vec<(String, u64)>,
}

/// What one round measured; times are µs since its load started.
pub struct RoundReport {
    pub n: usize,
    pub victim: u16,
    pub replica: u16,
    pub requests: u64,
    pub load_secs: f64,
    pub kill_us: u64,
    pub promoted_us: u64,
    /// The victim shard's first success after the outage began (see `after_outage`).
    pub first_success_us: Option<u64>,
    pub last_error_us: Option<u64>,
    pub errors_before_kill: u64,
    pub shards: Vec<ShardErrors>,
    /// Other shards, before the kill and during [kill, first success on the victim].
    pub baseline_others: Lat,
    pub window_others: Lat,
    /// The same, as the paced clients' schedule saw it (see `Lat::corrected`).
    pub window_others_corrected: Lat,
    /// When the slowest of those was sent, in ms from the kill: it tells a stall at the kill
    /// (slotgate) from one at the promotion (the cluster's own CLUSTERDOWN second).
    pub slowest_other_sent_ms: Option<i64>,
    /// The victim shard's requests that waited for the failover.
    pub held: Lat,
    pub held_corrected: Lat,
    pub held_errors: u64,
    pub metrics: BTreeMap<String, f64>,
}

impl RoundReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: usize,
        ports: &[u16],
        victim_idx: usize,
        replica: u16,
        kill_us: u64,
        promoted_us: u64,
        period_us: Option<u64>,
        r: LoadResult,
        metrics: BTreeMap<String, f64>,
    ) -> RoundReport {
        let victim = victim_idx as u8;
        // A request that completed after the kill without being a stale reply of the old master:
        // sent after the kill, or still unanswered well after it.
        let after_outage = |s: &Sample| {
            s.done_us() > kill_us
                && (s.sent_us >= kill_us || s.done_us() > kill_us + STALE_REPLY_GRACE_US)
        };
        let first_success_us = r
            .samples
            .iter()
            .filter(|s| s.shard == victim && s.ok && after_outage(s))
            .map(Sample::done_us)
            .min();
        let window_end = first_success_us.unwrap_or(r.stopped_us);
        let in_window = |s: &Sample| s.sent_us <= window_end && s.done_us() >= kill_us;
        let baseline_others = Lat::of(r.samples.iter().filter(|s| {
            s.shard != victim && s.sent_us >= BASELINE_SKIP_US && s.done_us() < kill_us
        }));
        let window_others = Lat::of(
            r.samples
                .iter()
                .filter(|s| s.shard != victim && in_window(s)),
        );
        let window_others_corrected = Lat::corrected(
            r.samples
                .iter()
                .filter(|s| s.shard != victim && in_window(s)),
            period_us,
        );
        let slowest_other_sent_ms = r
            .samples
            .iter()
            .filter(|s| s.shard != victim && in_window(s))
            .max_by_key(|s| s.latency_us)
            .map(|s| signed_ms(kill_us, s.sent_us));
        let held: Vec<&Sample> = r
            .samples
            .iter()
            .filter(|s| s.shard == victim && s.sent_us <= window_end && after_outage(s))
            .collect();
        let held_errors = held.iter().filter(|s| !s.ok).count() as u64;
        let held_corrected = Lat::corrected(held.iter().copied(), period_us);
        let held_lat = Lat::of(held.into_iter());
        let last_error_us = r
            .samples
            .iter()
            .filter(|s| !s.ok && s.done_us() >= kill_us)
            .map(Sample::done_us)
            .max();
        let errors_before_kill = r
            .samples
            .iter()
            .filter(|s| !s.ok && s.done_us() < kill_us)
            .count() as u64;
        let shards = ports
            .iter()
            .enumerate()
            .map(|(i, &port)| {
                let mine = r.samples.iter().filter(|s| usize::from(s.shard) == i);
                let (requests, errors) =
                    mine.fold((0, 0), |(n, e), s| (n + 1, e + u64::from(!s.ok)));
                let mut texts: Vec<(String, u64)> = r
                    .errors
                    .iter()
                    .filter(|((s, _), _)| usize::from(*s) == i)
                    .map(|((_, t), &c)| (t.clone(), c))
                    .collect();
                texts.sort_by_key(|t| std::cmp::Reverse(t.1));
                ShardErrors {
                    port,
                    requests,
                    errors,
                    texts,
                }
            })
            .collect();
        RoundReport {
            n,
            victim: ports[victim_idx],
            replica,
            requests: r.samples.len() as u64,
            load_secs: r.stopped_us as f64 / 1e6,
            kill_us,
            promoted_us,
            first_success_us,
            last_error_us,
            errors_before_kill,
            shards,
            baseline_others,
            window_others,
            window_others_corrected,
            slowest_other_sent_ms,
            held: held_lat,
            held_corrected,
            held_errors,
            metrics,
        }
    }

    pub fn kill_to_promotion_ms(&self) -> i64 {
        signed_ms(self.kill_us, self.promoted_us)
    }

    /// Negative when slotgate served the shard before the 20 ms poll saw the promotion.
    pub fn promotion_to_success_ms(&self) -> Option<i64> {
        self.first_success_us
            .map(|at| signed_ms(self.promoted_us, at))
    }

    pub fn kill_to_last_error_ms(&self) -> Option<i64> {
        self.last_error_us.map(|at| signed_ms(self.kill_us, at))
    }

    pub fn errors_total(&self) -> u64 {
        self.shards.iter().map(|s| s.errors).sum()
    }

    pub fn errors_victim_others(&self) -> (u64, u64) {
        let victim = self.shards.iter().find(|s| s.port == self.victim);
        let v = victim.map_or(0, |s| s.errors);
        (v, self.errors_total() - v)
    }
}

fn signed_ms(from_us: u64, to_us: u64) -> i64 {
    (to_us as i64 - from_us as i64) / 1000
}

pub fn opt_ms(v: Option<i64>) -> String {
    v.map_or("never".to_owned(), |v| format!("{v} ms"))
}
