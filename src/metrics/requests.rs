//! Client requests as clients see them: how many each command got and how they ended, how long
//! they took, how many are in flight and how deep clients pipeline.
//!
//! Every request is observed, so these live per worker: each worker's sessions (all on the
//! worker's one thread) write their own [`WorkerRequests`] with plain stores, indexed by the
//! command's [`CommandId`], and [`Requests`] adds the workers up when `/metrics` is scraped. Only
//! commands that were seen get series, so the exposition stays small while the label set stays
//! bounded by the command table.

use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricType};

use super::cells::{self, Latency, LatencySum, Owned, Span};
use crate::command::CommandId;

const REQUESTS: &str = "slotgate_requests_total";
const DURATION: &str = "slotgate_request_duration_seconds";
const INFLIGHT: &str = "slotgate_inflight_requests";
const DEPTH: &str = "slotgate_pipeline_depth";

/// Upper bounds of the pipeline-depth histogram: powers of two, so the bucket is a bit count.
const DEPTH_BOUNDS: [u64; 12] = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// The bucket of a depth: the first bound it does not exceed, or past the last.
fn depth_bucket(depth: usize) -> usize {
    match depth {
        0 => 0,
        d => (usize::BITS - (d - 1).leading_zeros()) as usize + 1,
    }
}

/// Aligned to a cache line, so one command's cells start a line of their own. The latency
/// histogram counts every answer; the ok ones are those that are not errors.
#[derive(Debug, Default)]
#[repr(align(64))]
struct CommandCells {
    error: Owned,
    latency: Latency,
}

impl CommandCells {
    /// Answers so far, ok and errors. The error count is read first: its writer raises it
    /// before the histogram, so ok (the difference) never comes out too high.
    fn counts(&self) -> (u64, u64) {
        let error = self.error.get();
        (self.latency.count().saturating_sub(error), error)
    }
}

/// One worker's request counts. Written only by the sessions of that worker, which all run on
/// its single thread (see `frontend::Worker`). Aligned (and so sized) to two cache lines, as
/// crossbeam's `CachePadded` is: workers' cells are made one after another, and two workers
/// writing one line would pass it back and forth on every request.
#[derive(Debug)]
#[repr(align(128))]
pub struct WorkerRequests {
    commands: Box<[CommandCells]>,
    /// Requests read whose client left before their reply was written.
    dropped: Owned,
    /// Requests read (and protocol errors answered in their place) by the depth they found,
    /// the last past every bound: their total is the number read.
    depth: [Owned; DEPTH_BOUNDS.len() + 1],
    depth_sum: Owned,
}

impl WorkerRequests {
    fn new() -> WorkerRequests {
        WorkerRequests {
            commands: (0..CommandId::COUNT)
                .map(|_| CommandCells::default())
                .collect(),
            dropped: Owned::default(),
            depth: Default::default(),
            depth_sum: Owned::default(),
        }
    }

    /// A client sent one more request while `in_flight` of its earlier ones were unanswered.
    pub fn read(&self, in_flight: usize) {
        if let Some(bucket) = self.depth.get(depth_bucket(in_flight)) {
            bucket.add(1);
        }
        self.depth_sum.add(in_flight as u64);
    }

    /// A request's reply was written (or queued to be), `took` after the request was read.
    #[inline]
    pub fn answered(&self, command: CommandId, error: bool, took: Span) {
        let cells = &self.commands[command.index()];
        if error {
            cells.error.add(1);
        }
        cells.latency.observe_span(took);
    }

    /// A client left with `n` requests read and never answered.
    pub fn dropped(&self, n: usize) {
        if n > 0 {
            self.dropped.add(n as u64);
        }
    }
}

/// Every worker's [`WorkerRequests`], added up at scrape time.
pub struct Requests {
    workers: Mutex<Vec<Arc<WorkerRequests>>>,
    descs: Vec<Desc>,
}

/// Totals over every worker, read at one scrape.
struct Totals {
    ok: Vec<u64>,
    error: Vec<u64>,
    latency: Vec<LatencySum>,
    read: u64,
    dropped: u64,
    depth: [u64; DEPTH_BOUNDS.len()],
    depth_sum: u64,
}

impl Requests {
    pub fn new() -> Requests {
        Requests {
            workers: Mutex::new(Vec::new()),
            descs: vec![
                cells::desc(REQUESTS, REQUESTS_HELP, &["command", "result"]),
                cells::desc(DURATION, DURATION_HELP, &["command"]),
                cells::desc(INFLIGHT, INFLIGHT_HELP, &[]),
                cells::desc(DEPTH, DEPTH_HELP, &[]),
            ],
        }
    }

    /// The cells of one more worker; called once per worker, when it is built.
    pub fn worker(&self) -> Arc<WorkerRequests> {
        let w = Arc::new(WorkerRequests::new());
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(w.clone());
        w
    }

    /// Requests answered so far, ok or not, over every worker: INFO's `total_commands_processed`.
    pub fn answered(&self) -> u64 {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers
            .iter()
            .flat_map(|w| w.commands.iter())
            .map(|c| c.latency.count())
            .sum()
    }

    /// Answered requests of `command` with `error` or not, over every worker (for tests).
    pub fn count(&self, command: CommandId, error: bool) -> u64 {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers
            .iter()
            .map(|w| {
                let (ok, errors) = w.commands[command.index()].counts();
                if error {
                    errors
                } else {
                    ok
                }
            })
            .sum()
    }

    fn totals(&self) -> Totals {
        let mut t = Totals {
            ok: vec![0; CommandId::COUNT],
            error: vec![0; CommandId::COUNT],
            latency: vec![LatencySum::default(); CommandId::COUNT],
            read: 0,
            dropped: 0,
            depth: [0; DEPTH_BOUNDS.len()],
            depth_sum: 0,
        };
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for w in workers.iter() {
            for (i, c) in w.commands.iter().enumerate() {
                let error = c.error.get();
                let answered = t.latency[i].count;
                c.latency.add_to(&mut t.latency[i]);
                let answered = t.latency[i].count - answered;
                t.ok[i] += answered.saturating_sub(error);
                t.error[i] += error;
            }
            t.dropped += w.dropped.get();
            for (total, b) in t.depth.iter_mut().zip(&w.depth) {
                *total += b.get();
            }
            t.read += w.depth.iter().map(Owned::get).sum::<u64>();
            t.depth_sum += w.depth_sum.get();
        }
        t
    }
}

impl Default for Requests {
    fn default() -> Self {
        Requests::new()
    }
}

const REQUESTS_HELP: &str = "Client requests answered, by command and result: ok, or error for \
    an error reply (whoever made it; slotgate's own are also in slotgate_errors_total).";
const DURATION_HELP: &str = "Time from a request being read to its reply being written or \
    queued to be, by command.";
const INFLIGHT_HELP: &str = "Client requests read and not answered yet.";
const DEPTH_HELP: &str = "Requests a client had in flight when it sent one more.";

impl Collector for Requests {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let t = self.totals();
        let mut requests = cells::family(REQUESTS, REQUESTS_HELP, MetricType::COUNTER);
        let mut duration = cells::family(DURATION, DURATION_HELP, MetricType::HISTOGRAM);
        let mut answered = 0;
        for i in 0..CommandId::COUNT {
            let (ok, error) = (t.ok[i], t.error[i]);
            if ok + error == 0 {
                continue;
            }
            answered += ok + error;
            let command = CommandId::from_index(i).label();
            let m = requests.mut_metric();
            m.push(cells::counter(
                &[("command", command), ("result", "ok")],
                ok,
            ));
            m.push(cells::counter(
                &[("command", command), ("result", "error")],
                error,
            ));
            duration
                .mut_metric()
                .push(cells::histogram(&[("command", command)], &t.latency[i]));
        }
        let mut inflight = cells::family(INFLIGHT, INFLIGHT_HELP, MetricType::GAUGE);
        // The workers are read one after another: a request answered meanwhile could make the
        // difference negative for a moment.
        let open = t.read.saturating_sub(answered + t.dropped);
        inflight.mut_metric().push(cells::gauge(&[], open as f64));
        let mut depth = cells::family(DEPTH, DEPTH_HELP, MetricType::HISTOGRAM);
        let mut h = proto::Histogram::default();
        let mut cumulative = 0;
        h.set_bucket(
            DEPTH_BOUNDS
                .iter()
                .zip(t.depth)
                .map(|(&bound, n)| {
                    cumulative += n;
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(bound as f64);
                    b.set_cumulative_count(cumulative);
                    b
                })
                .collect(),
        );
        h.set_sample_count(t.read.max(cumulative));
        h.set_sample_sum(t.depth_sum as f64);
        let mut m = cells::labelled(&[]);
        m.set_histogram(h);
        depth.mut_metric().push(m);
        vec![requests, duration, inflight, depth]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(ns: u64) -> Span {
        Span {
            ns,
            bucket: cells::latency_bucket(ns),
        }
    }

    #[test]
    fn depth_buckets_are_powers_of_two() {
        for (depth, bucket) in [(0, 0), (1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (1024, 11)] {
            assert_eq!(depth_bucket(depth), bucket, "depth {depth}");
            assert!(depth as u64 <= DEPTH_BOUNDS[bucket]);
        }
        assert_eq!(depth_bucket(1025), DEPTH_BOUNDS.len());
    }

    #[test]
    fn workers_are_added_up_and_unseen_commands_left_out() {
        let r = Requests::new();
        let (a, b) = (r.worker(), r.worker());
        let get = crate::command::CommandTable::builtin()
            .classify(&crate::protocol::Request::from_args(vec![
                "GET".into(),
                "k".into(),
            ]))
            .command;
        for w in [&a, &b] {
            w.read(0);
            w.answered(get, false, span(1_000));
        }
        a.read(1);
        a.answered(get, true, span(2_000_000));
        a.read(2);
        b.read(0);
        b.dropped(1);
        let families = r.collect();
        let requests = &families[0];
        assert_eq!(requests.get_metric().len(), 2, "get's ok and error only");
        let value = |i: usize| requests.get_metric()[i].get_counter().get_value();
        assert_eq!((value(0), value(1)), (2.0, 1.0));
        assert_eq!(requests.get_metric()[0].get_label()[0].value(), "get");
        let h = families[1].get_metric()[0].get_histogram();
        assert_eq!(h.get_sample_count(), 3);
        assert_eq!(h.get_bucket()[0].cumulative_count(), 2);
        // Five read, three answered, one dropped: one in flight.
        assert_eq!(families[2].get_metric()[0].get_gauge().get_value(), 1.0);
        let depth = families[3].get_metric()[0].get_histogram();
        assert_eq!(depth.get_sample_count(), 5);
        assert_eq!(depth.get_sample_sum(), 3.0);
        assert_eq!(r.answered(), 3);
        assert_eq!(r.count(get, true), 1);
    }
}
