//! The measured windows of one test, printed so a run with `--nocapture` shows how long each
//! fault was visible to clients, and the queries the assertions are made of.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::load::{LoadResult, OpError};
use crate::verify::EndCheck;
use crate::watch::PingStats;

/// What the test did, and when.
#[derive(Default)]
pub struct Marks {
    /// When the fault was staged (kill, stop, failover command, reshard start, ...).
    pub fault: Option<Instant>,
    /// When the replica answered `ROLE` with `master`.
    pub promoted: Option<Instant>,
    /// The shard (master port at load start) the fault is aimed at.
    pub victim: Option<u16>,
    /// From when on the victim's old master cannot answer (killed or stopped): a success after it
    /// came from the promoted replica, even before the 50 ms poll noticed the promotion.
    pub outage_from: Option<Instant>,
    /// Other moments worth printing, in the order they happened.
    pub events: Vec<(&'static str, Instant)>,
}

impl Marks {
    pub fn event(&mut self, what: &'static str) -> Instant {
        let now = Instant::now();
        self.events.push((what, now));
        now
    }
}

/// Signed milliseconds from `base` to `at`.
pub fn ms(base: Instant, at: Instant) -> i128 {
    if at >= base {
        at.duration_since(base).as_millis() as i128
    } else {
        -(base.duration_since(at).as_millis() as i128)
    }
}

pub fn errors_on_shard(r: &LoadResult, shard: u16) -> Vec<&OpError> {
    r.errors.iter().filter(|e| e.shard == shard).collect()
}

pub fn errors_off_shard(r: &LoadResult, shard: Option<u16>) -> Vec<&OpError> {
    r.errors.iter().filter(|e| Some(e.shard) != shard).collect()
}

/// The first request on `shard` that succeeded after `after`.
pub fn first_success_after(r: &LoadResult, shard: u16, after: Instant) -> Option<Instant> {
    r.successes
        .iter()
        .find(|&&(at, s)| s == shard && at > after)
        .map(|&(at, _)| at)
}

/// Milliseconds from the promotion to the first request the victim shard served after it
/// (negative when the proxy got there before the 50 ms poll noticed); `None` if it never did.
pub fn promotion_to_success(r: &LoadResult, marks: &Marks) -> Option<i128> {
    let promoted = marks.promoted?;
    let victim = marks.victim?;
    let after = marks.outage_from.unwrap_or(promoted);
    first_success_after(r, victim, after).map(|at| ms(promoted, at))
}

/// Distinct error texts with how often each was seen, most frequent first.
pub fn error_texts<'a>(errors: impl IntoIterator<Item = &'a OpError>) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in errors {
        *counts.entry(format!("{} {}", e.op, e.text)).or_default() += 1;
    }
    let mut texts: Vec<_> = counts.into_iter().collect();
    texts.sort_by_key(|t| std::cmp::Reverse(t.1));
    texts
}

/// A short description of some errors, for assertion messages.
pub fn describe(errors: &[&OpError], base: Instant) -> String {
    let mut out = String::new();
    for e in errors.iter().take(8) {
        out.push_str(&format!(
            "\n  {} {} (slot {}, shard {}) sent at {:+} ms, failed at {:+} ms: {}",
            e.op,
            e.key,
            e.slot,
            e.shard,
            ms(base, e.sent),
            ms(base, e.at),
            e.text
        ));
    }
    if errors.len() > 8 {
        out.push_str(&format!("\n  ... and {} more", errors.len() - 8));
    }
    out
}

pub fn print(name: &str, r: &LoadResult, marks: &Marks, ping: &PingStats, end: &EndCheck) {
    let base = marks.fault.unwrap_or(r.started);
    let base_name = if marks.fault.is_some() {
        "fault"
    } else {
        "load start"
    };
    let mut out = format!(
        "\n===== {name}: {} requests, {} acked writes in {:.1} s; {} errors, {} order \
         violations; times in ms from the {base_name}",
        r.ops,
        r.acked_writes,
        r.stopped.duration_since(r.started).as_secs_f64(),
        r.errors.len(),
        r.violations.len()
    );
    out.push_str(&format!("\n  load started at {:+}", ms(base, r.started)));
    for (what, at) in &marks.events {
        out.push_str(&format!("\n  {what} at {:+}", ms(base, *at)));
    }
    out.push_str(&format!("\n  load stopped at {:+}", ms(base, r.stopped)));
    for &shard in &r.shards {
        let errors = errors_on_shard(r, shard);
        let ok = r.successes.iter().filter(|s| s.1 == shard).count();
        let tag = if marks.victim == Some(shard) {
            " (victim)"
        } else {
            ""
        };
        let span = match (errors.first(), errors.last()) {
            (Some(first), Some(last)) => format!(
                ", errors from {:+} to {:+}",
                ms(base, first.at),
                ms(base, last.at)
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "\n  shard {shard}{tag}: {ok} ok, {} errors{span}, slowest request {} ms",
            errors.len(),
            r.max_latency
                .get(&shard)
                .copied()
                .unwrap_or_default()
                .as_millis()
        ));
    }
    if let Some(fault) = marks.fault {
        out.push_str(&match r.errors.last() {
            Some(last) => format!("\n  WINDOW fault -> last error: {} ms", ms(fault, last.at)),
            None => "\n  WINDOW fault -> last error: no errors".to_owned(),
        });
    }
    if let Some(promoted) = marks.promoted {
        out.push_str(&format!(
            "\n  promotion seen at {:+} (polled every 50 ms)",
            ms(base, promoted)
        ));
        if let Some(victim) = marks.victim {
            out.push_str(&match promotion_to_success(r, marks) {
                Some(window) => {
                    format!("\n  WINDOW promotion -> first success on shard {victim}: {window} ms")
                }
                None => format!(
                    "\n  WINDOW promotion -> first success on shard {victim}: never (no \
                     success after the promotion)"
                ),
            });
        }
    }
    for (text, count) in error_texts(&r.errors).iter().take(10) {
        out.push_str(&format!("\n  error x{count}: {text}"));
    }
    for v in r.violations.iter().take(5) {
        out.push_str(&format!("\n  ORDER VIOLATION: {v}"));
    }
    out.push_str(&format!(
        "\n  proxy PING: {} probes, slowest {} ms, {} failures",
        ping.count,
        ping.max_latency.as_millis(),
        ping.failures.len()
    ));
    out.push_str(&format!(
        "\n  end check: {} keys read back, {} lost, {} transient read errors, PING {}",
        end.checked,
        end.lost.len(),
        end.read_errors.len(),
        match &end.ping {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.clone(),
        }
    ));
    for lost in end.lost.iter().take(5) {
        out.push_str(&format!("\n  LOST: {lost}"));
    }
    println!("{out}");
}
