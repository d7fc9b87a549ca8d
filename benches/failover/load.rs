//! The load: client threads through slotgate, each recording every request it sent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use slotgate::cluster::Slot;

use crate::client::Client;
use crate::options::Options;
use crate::PROMOTION_GRACE;

const KEYS_PER_CLIENT: usize = 16;

/// One request as a client saw it. Times are microseconds since the load started, so a round's
/// samples sort and compare without `Instant` arithmetic.
#[derive(Clone, Copy)]
pub struct Sample {
    pub sent_us: u64,
    pub latency_us: u64,
    /// Index into the round's masters, sorted by port: the master that owned the key's slot
    /// when the load started.
    pub shard: u8,
    pub ok: bool,
}

impl Sample {
    pub fn done_us(&self) -> u64 {
        self.sent_us + self.latency_us
    }
}

#[derive(Default)]
pub struct ClientLog {
    pub samples: Vec<Sample>,
    /// Error texts by shard, with counts: the texts tell a held-then-failed request from a
    /// dropped connection or a client timeout.
    pub errors: BTreeMap<(u8, String), u64>,
}

pub struct LoadResult {
    t0: Instant,
    pub samples: Vec<Sample>,
    pub errors: BTreeMap<(u8, String), u64>,
    pub stopped_us: u64,
}

impl LoadResult {
    pub fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_micros() as u64
    }
}

pub struct Shared {
    pub stop: AtomicBool,
    /// Completion time (µs since start, plus one so 0 means never) of each shard's latest
    /// success, so the round can wait for the victim shard to serve again without locks.
    pub last_ok: Vec<AtomicU64>,
}

/// Client threads, each with its own connection through slotgate and its own keys, all on one
/// master. Pinning matters: a client whose keys cycle over every master stalls on the first key
/// of the failed shard, and the healthy shards would then see no load at all during exactly the
/// window their latency is measured in.
pub struct Load {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<ClientLog>>,
    t0: Instant,
}

impl Load {
    pub fn start(
        opts: &Options,
        proxy: SocketAddr,
        owners: &[u16],
        shards: &[u16],
        n: usize,
    ) -> Load {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            last_ok: shards.iter().map(|_| AtomicU64::new(0)).collect(),
        });
        let t0 = Instant::now();
        // Bounds a run whose main thread never stops it.
        let deadline = t0
            + opts.warmup
            + Duration::from_millis(opts.node_timeout_ms)
            + PROMOTION_GRACE
            + opts.after
            + 2 * Duration::from_millis(opts.hold_timeout_ms)
            + Duration::from_secs(30);
        let period = opts.period();
        let read_timeout = opts.client_read_timeout();
        let threads = (0..opts.clients)
            .map(|c| {
                let shard = c % shards.len();
                let keys = pick_keys(n, c, owners, shards[shard]);
                let shared = shared.clone();
                // Spread the clients' first requests over one period, so the paced load is
                // steady rather than 30 requests at once every period.
                let offset = period.map_or(Duration::ZERO, |p| p * c as u32 / opts.clients as u32);
                let client = Client {
                    id: c,
                    proxy,
                    keys,
                    shard: shard as u8,
                    period,
                    read_timeout,
                    t0,
                    first: t0 + offset,
                    deadline,
                };
                std::thread::spawn(move || client.run(&shared))
            })
            .collect();
        Load {
            shared,
            threads,
            t0,
        }
    }

    pub fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_micros() as u64
    }

    pub fn last_ok_us(&self, shard: usize) -> u64 {
        self.shared.last_ok[shard]
            .load(Ordering::Relaxed)
            .saturating_sub(1)
    }

    pub fn stop(mut self) -> LoadResult {
        self.shared.stop.store(true, Ordering::Relaxed);
        let stopped_us = self.us(Instant::now());
        let mut samples = Vec::new();
        let mut errors: BTreeMap<(u8, String), u64> = BTreeMap::new();
        for t in std::mem::take(&mut self.threads) {
            // A panicked client only loses its own samples; the round is still worth reporting.
            let Ok(log) = t.join() else { continue };
            samples.extend(log.samples);
            for (k, v) in log.errors {
                *errors.entry(k).or_default() += v;
            }
        }
        samples.sort_unstable_by_key(|s| s.sent_us);
        LoadResult {
            t0: self.t0,
            samples,
            errors,
            stopped_us,
        }
    }
}

/// A round that fails half-way must not leave its clients hammering the next round's cluster.
impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Key names carry the round and client, so no two clients share a key and a round never reads
/// an earlier round's values.
fn pick_keys(round: usize, client: usize, owners: &[u16], shard: u16) -> Vec<String> {
    (0u64..)
        .map(|i| format!("fo:r{round}:c{client}:k{i}"))
        .filter(|k| owners[usize::from(Slot::for_key(k.as_bytes()).get())] == shard)
        .take(KEYS_PER_CLIENT)
        .collect()
}
