//! The building blocks of the hot-path metrics: counters with one writer, histograms made of
//! them, and the code that turns them into Prometheus families at scrape time.
//!
//! A worker thread serves every request of its clients, and a backend connection's driver is one
//! task; each of them owns its cells, so an update is a plain load and store of its own cache
//! line: no lock, no read-modify-write instruction, no allocation, and no cache line bouncing
//! between threads. The scrape, on another thread, reads the cells with relaxed loads and adds the
//! owners up; it may see an update a moment late, never a torn one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use prometheus::proto;

/// A counter (or gauge) that one thread or task at a time updates, and anyone may read.
///
/// Two writers racing would lose updates, never memory: every owner below documents why it is
/// the only writer (a worker's thread, a connection's driver task).
#[derive(Debug, Default)]
pub struct Owned(AtomicU64);

impl Owned {
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of a latency histogram, in seconds: from 50 µs (a request on loopback) to 10 s
/// (a node that is about to be taken for hung).
pub const LATENCY_BOUNDS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// [`LATENCY_BOUNDS`] in nanoseconds, what an observation is compared with.
const LATENCY_BOUNDS_NS: [u64; 17] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The bucket of a latency of `ns` nanoseconds: the first bound it does not exceed, or
/// [`LATENCY_BOUNDS`]`.len()` past the last (counted only in the total).
pub fn latency_bucket(ns: u64) -> usize {
    LATENCY_BOUNDS_NS.partition_point(|&bound| bound < ns)
}

/// A measured time, with the histogram bucket it falls in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub ns: u64,
    pub bucket: usize,
}

/// Measures spans, remembering the last: the replies of one batch mostly share both ends (the
/// socket read their requests came in, the write they go out in), so most are measured by
/// comparing two instants rather than subtracting them and searching the bounds again.
#[derive(Clone, Copy, Debug)]
pub struct Spans {
    from: Instant,
    to: Instant,
    last: Span,
}

impl Spans {
    pub fn new() -> Spans {
        let now = Instant::now();
        Spans {
            from: now,
            to: now,
            last: Span::default(),
        }
    }

    /// The time from `from` to `to` (0 if `to` is earlier).
    #[inline]
    pub fn measure(&mut self, from: Instant, to: Instant) -> Span {
        if from != self.from || to != self.to {
            let ns = to.saturating_duration_since(from).as_nanos() as u64;
            (self.from, self.to) = (from, to);
            self.last = Span {
                ns,
                bucket: latency_bucket(ns),
            };
        }
        self.last
    }
}

impl Default for Spans {
    fn default() -> Self {
        Spans::new()
    }
}

/// A latency histogram with one writer. Every observation lands in exactly one bucket (the last
/// one past [`LATENCY_BOUNDS`]), so the buckets' total is the count and an observation costs two
/// stores: its bucket and the sum.
#[derive(Debug, Default)]
pub struct Latency {
    buckets: [Owned; LATENCY_BOUNDS.len() + 1],
    sum_ns: Owned,
}

impl Latency {
    #[cfg(test)]
    pub fn observe(&self, ns: u64) {
        self.observe_span(Span {
            ns,
            bucket: latency_bucket(ns),
        });
    }

    #[inline]
    pub fn observe_span(&self, span: Span) {
        if let Some(bucket) = self.buckets.get(span.bucket) {
            bucket.add(1);
        }
        self.sum_ns.add(span.ns);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(Owned::get).sum()
    }

    /// Adds this histogram's buckets, sum and count to `into`.
    pub fn add_to(&self, into: &mut LatencySum) {
        // Each cell read once, so the count is exactly the buckets read (the last one included).
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.get();
            if let Some(total) = into.buckets.get_mut(i) {
                *total += n;
            }
            into.count += n;
        }
        into.sum_ns += self.sum_ns.get();
    }
}

/// Several owners' [`Latency`] added up at scrape time, with their count (which includes what
/// fell past the last bound).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencySum {
    pub buckets: [u64; LATENCY_BOUNDS.len()],
    pub sum_ns: u64,
    pub count: u64,
}

impl LatencySum {
    /// The Prometheus histogram: cumulative buckets, the sum in seconds. The count is raised to
    /// the buckets' total should it ever be less, so the histogram stays valid (no bucket above
    /// `+Inf`).
    pub fn to_proto(&self) -> proto::Histogram {
        let mut h = proto::Histogram::default();
        let mut cumulative = 0;
        let buckets = LATENCY_BOUNDS
            .iter()
            .zip(self.buckets)
            .map(|(&bound, n)| {
                cumulative += n;
                let mut b = proto::Bucket::default();
                b.set_upper_bound(bound);
                b.set_cumulative_count(cumulative);
                b
            })
            .collect();
        h.set_bucket(buckets);
        h.set_sample_count(self.count.max(cumulative));
        h.set_sample_sum(self.sum_ns as f64 / 1e9);
        h
    }
}

/// A family to be filled with metrics, as a custom collector hands it to the registry.
pub fn family(name: &str, help: &str, kind: proto::MetricType) -> proto::MetricFamily {
    let mut f = proto::MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f
}

/// A metric with these labels, its value still to set.
pub fn labelled(labels: &[(&str, &str)]) -> proto::Metric {
    let pairs = labels
        .iter()
        .map(|(name, value)| {
            let mut p = proto::LabelPair::default();
            p.set_name((*name).to_owned());
            p.set_value((*value).to_owned());
            p
        })
        .collect();
    proto::Metric::from_label(pairs)
}

pub fn counter(labels: &[(&str, &str)], value: u64) -> proto::Metric {
    let mut m = labelled(labels);
    let mut c = proto::Counter::default();
    c.set_value(value as f64);
    m.set_counter(c);
    m
}

pub fn gauge(labels: &[(&str, &str)], value: f64) -> proto::Metric {
    let mut m = labelled(labels);
    let mut g = proto::Gauge::default();
    g.set_value(value);
    m.set_gauge(g);
    m
}

pub fn histogram(labels: &[(&str, &str)], sum: &LatencySum) -> proto::Metric {
    let mut m = labelled(labels);
    m.set_histogram(sum.to_proto());
    m
}

/// The description the registry keeps for a family a custom collector makes.
pub fn desc(name: &str, help: &str, labels: &[&str]) -> prometheus::core::Desc {
    prometheus::core::Desc::new(
        name.to_owned(),
        help.to_owned(),
        labels.iter().map(|l| (*l).to_owned()).collect(),
        Default::default(),
    )
    .expect("valid metric description")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_agree_in_both_units() {
        for (s, ns) in LATENCY_BOUNDS.iter().zip(LATENCY_BOUNDS_NS) {
            assert_eq!((s * 1e9).round() as u64, ns);
        }
        assert!(LATENCY_BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_latency_lands_in_the_first_bucket_it_does_not_exceed() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(50_000), 0);
        assert_eq!(latency_bucket(50_001), 1);
        assert_eq!(latency_bucket(1_000_000), 4);
        assert_eq!(latency_bucket(10_000_000_000), 16);
        assert_eq!(latency_bucket(10_000_000_001), 17);
    }

    #[test]
    fn histograms_add_up_cumulatively() {
        let (a, b) = (Latency::default(), Latency::default());
        a.observe(40_000);
        a.observe(2_000_000);
        b.observe(60_000_000_000);
        let mut sum = LatencySum::default();
        a.add_to(&mut sum);
        b.add_to(&mut sum);
        assert_eq!(sum.count, 3, "60 s past the last bound is counted too");
        let h = sum.to_proto();
        let cumulative: Vec<u64> = h
            .get_bucket()
            .iter()
            .map(|b| b.cumulative_count())
            .collect();
        assert_eq!(cumulative[0], 1);
        assert_eq!(cumulative[4], 1);
        assert_eq!(cumulative[5], 2);
        assert_eq!(cumulative[16], 2, "60 s is past the last bound");
        assert_eq!(h.get_sample_count(), 3);
        assert!((h.get_sample_sum() - 60.00204).abs() < 1e-9);
    }

    #[test]
    fn a_count_below_the_buckets_is_raised_to_them() {
        let a = Latency::default();
        a.observe(1);
        let mut sum = LatencySum::default();
        a.add_to(&mut sum);
        sum.count = 0;
        assert_eq!(sum.to_proto().get_sample_count(), 1);
    }

    #[test]
    fn spans_are_measured_once_per_pair_of_instants() {
        let mut spans = Spans::new();
        let start = Instant::now();
        let end = start + std::time::Duration::from_micros(300);
        let span = spans.measure(start, end);
        assert_eq!(
            span,
            Span {
                ns: 300_000,
                bucket: 3
            }
        );
        assert_eq!(spans.measure(start, end), span);
        assert_eq!(spans.measure(end, start).ns, 0, "never negative");
        let later = end + std::time::Duration::from_millis(2);
        assert_eq!(spans.measure(start, later).bucket, 5);
    }

    #[test]
    fn owned_counts_up_and_down() {
        let c = Owned::default();
        c.add(5);
        c.sub(2);
        assert_eq!(c.get(), 3);
        c.set(9);
        assert_eq!(c.get(), 9);
    }
}
