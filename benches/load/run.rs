//! One run: one workload against one target for a warm-up plus a measured window.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::common::proc::{cpu_ticks, self_cpu_ticks, Ticks};
use crate::common::slotgate::{Footprint, Probe};
use crate::resp::{Client, Target, OP_TIMEOUT};
use crate::workload::{check, push_request, Op, Workload, MULTI_KEYS};

/// A backstop only: runs end on time long before this many batches.
const MAX_BATCHES: u64 = 100_000_000;
/// A backstop for idle connections, whose ping loop normally ends on the stop signal.
const MAX_PINGS: u64 = 100_000;
/// Connections opened at once; below the listen backlogs, so opening 1,000 never overflows one.
const CONNECT_CONCURRENCY: usize = 64;
/// Latencies are recorded in nanoseconds up to this (60 s), with 3 significant digits.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
}

/// Per-request latencies and counts; one per client task, merged per run, then per target.
pub struct Tally {
    pub hist: Histogram<u64>,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant bounds"),
            requests: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    pub fn merge(&mut self, other: &Tally) {
        self.hist.add(&other.hist).expect("same bounds");
        self.requests += other.requests;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// The idle connections' side of a run; only failures matter.
#[derive(Default)]
pub struct IdleTally {
    pub pings: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

pub struct Sample {
    pub tally: Tally,
    pub secs: f64,
    pub client_ticks: Option<Ticks>,
    /// The proxy's CPU over the measured window; only for slotgate and baseline runs.
    pub proxy_ticks: Option<Ticks>,
    /// Every Redis node's CPU, summed, over the same window: the reference for slotgate's, as
    /// a node too pays the kernel's loopback cost per request, and less of it per request when
    /// slotgate batches many clients onto few connections.
    pub cluster_ticks: Option<Ticks>,
    pub footprint: Option<Footprint>,
    pub idle: IdleTally,
}

/// CPU counters at one instant.
struct Marks {
    client: Option<Ticks>,
    proxy: Option<Ticks>,
    cluster: Option<Ticks>,
}

impl Marks {
    fn take(probe: Option<Probe>, redis_pids: &[u32]) -> Marks {
        Marks {
            client: self_cpu_ticks(),
            proxy: probe.and_then(|p| p.cpu_ticks()),
            cluster: cluster_ticks(redis_pids),
        }
    }
}

/// A sum with one node missing would pass for a cheaper cluster, so it is no figure at all.
fn cluster_ticks(pids: &[u32]) -> Option<Ticks> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(Ticks::default(), |sum, &pid| {
        Some(sum.plus(cpu_ticks(pid)?))
    })
}

/// `probe` is given for proxy runs only (slotgate, baseline): its CPU is read at the edges of the
/// measured window and its memory and backend connections at the end, while every connection is
/// still open. `redis_pids` are the cluster's nodes, whose CPU is read at the same edges for every
/// target.
pub async fn once(
    w: &Arc<Workload>,
    target: &Target,
    timing: Timing,
    probe: Option<Probe>,
    redis_pids: &[u32],
    seed: u64,
) -> Result<Sample, String> {
    let (stop, stopped) = watch::channel(false);
    let idlers = connect_many(target, w.idle)
        .await
        .map_err(|e| format!("opening {} idle connections: {e}", w.idle))?;
    let mut phases = fastrand::Rng::with_seed(seed ^ 0x1d1e);
    let idlers: Vec<_> = idlers
        .into_iter()
        .map(|c| {
            let phase = Duration::from_millis(phases.u64(..1000));
            tokio::spawn(idle(c, phase, stopped.clone()))
        })
        .collect();

    let clients = connect_many(target, w.clients)
        .await
        .map_err(|e| format!("opening {} client connections: {e}", w.clients))?;
    let warm = Instant::now() + timing.warmup;
    let end = warm + timing.measure;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(busy(c, w.clone(), seed * 1000 + i as u64, warm, end)))
        .collect();

    tokio::time::sleep_until(warm.into()).await;
    let before = Marks::take(probe, redis_pids);
    tokio::time::sleep_until(end.into()).await;
    let after = Marks::take(probe, redis_pids);

    let mut tally = Tally::new();
    let deadline = end + OP_TIMEOUT + Duration::from_secs(5);
    for task in tasks {
        let t = tokio::time::timeout_at(deadline.into(), task)
            .await
            .map_err(|_| "a client did not stop on time".to_string())?
            .map_err(|e| format!("client task: {e}"))?
            .map_err(|e| format!("client: {e}"))?;
        tally.merge(&t);
    }

    let footprint = match probe {
        Some(p) => Some(
            tokio::task::spawn_blocking(move || p.footprint())
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };

    let _ = stop.send(true);
    let mut idle_tally = IdleTally::default();
    for task in idlers {
        let t = tokio::time::timeout(OP_TIMEOUT + Duration::from_secs(5), task)
            .await
            .map_err(|_| "an idle connection did not stop on time".to_string())?
            .map_err(|e| format!("idle task: {e}"))?;
        idle_tally.pings += t.pings;
        idle_tally.errors += t.errors;
        if idle_tally.first_error.is_none() {
            idle_tally.first_error = t.first_error;
        }
    }

    let delta = |a: Option<Ticks>, b: Option<Ticks>| Some(b?.since(a?));
    Ok(Sample {
        tally,
        secs: timing.measure.as_secs_f64(),
        client_ticks: delta(before.client, after.client),
        proxy_ticks: delta(before.proxy, after.proxy),
        cluster_ticks: delta(before.cluster, after.cluster),
        footprint,
        idle: idle_tally,
    })
}

async fn connect_many(target: &Target, n: usize) -> io::Result<Vec<Client>> {
    stream::iter(0..n)
        .map(|_| Client::connect(target))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .try_collect()
        .await
}

/// Closed loop: the next batch goes out when the last one is fully answered. Only batches sent
/// inside `[warm, end)` are counted, each request with the time from its batch's send to its
/// own reply (for a split command, to its last sub-reply).
async fn busy(
    mut client: Client,
    w: Arc<Workload>,
    seed: u64,
    warm: Instant,
    end: Instant,
) -> io::Result<Tally> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::new();
    let mut done = vec![warm; w.pipeline];
    let mut elements = vec![0usize; w.pipeline];
    for _ in 0..MAX_BATCHES {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        for tag in 0..w.pipeline {
            push_request(&mut client, &w, &mut rng, tag as u32);
        }
        client.exchange().await?;
        if sent < warm {
            continue;
        }
        done.fill(sent);
        elements.fill(0);
        for (tag, reply, at) in client.replies() {
            let i = *tag as usize;
            done[i] = done[i].max(*at);
            match check(w.op, reply) {
                Ok(n) => elements[i] += n,
                Err(e) => tally.error(e),
            }
        }
        for (at, n) in done.iter().zip(&elements) {
            tally.hist.saturating_record(nanos(at.duration_since(sent)));
            if w.op == Op::MGet && *n != MULTI_KEYS {
                tally.error(format!("MGET of {MULTI_KEYS} keys returned {n} values"));
            }
        }
        tally.requests += w.pipeline as u64;
    }
    Ok(tally)
}

/// Holds a connection open and pings about once a second, as a pooled but quiet application
/// connection does, until told to stop.
async fn idle(mut client: Client, phase: Duration, mut stop: watch::Receiver<bool>) -> IdleTally {
    let mut tally = IdleTally::default();
    let start = tokio::time::Instant::now() + phase;
    let mut tick = tokio::time::interval_at(start, Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for n in 0..MAX_PINGS {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        let i = n as usize % client.conn_count();
        client.conn(i).push([b"PING".as_slice()], 0);
        let result = client.exchange().await.map_err(|e| e.to_string());
        let result = result.and_then(|()| match client.replies().next() {
            Some((_, r, _)) if r.bytes()[..] == b"+PONG\r\n"[..] => Ok(()),
            other => Err(format!("PING returned {other:?}")),
        });
        match result {
            Ok(()) => tally.pings += 1,
            Err(e) => {
                tally.errors += 1;
                tally.first_error = Some(e);
                // The connection's state is unknown after a failure; stop using it.
                break;
            }
        }
    }
    tally
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
