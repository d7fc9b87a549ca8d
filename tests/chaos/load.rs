//! The load every chaos test runs: client threads, each with its own connection through the proxy
//! and its own keys, doing `SET k v` then `GET k` in a loop. Some threads spread their keys
//! evenly over all masters, the others keep to one master each (see `LoadSpec`).
//!
//! Each thread keeps a ledger per key: the value last acknowledged with `OK`, and the values
//! written since whose `SET` failed (they may or may not have been applied). A `GET` must return
//! the acknowledged value or one of those; anything else (an older value, a value never written,
//! nil after an acknowledged write) is an order violation. Every error is kept with its time, its
//! key's slot and the master that owned the slot when the load started (its "shard").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::Value;
use slotgate::cluster::Slot;

/// Time a thread gives a single request: above the proxy's hold timeout plus its op timeout, so
/// a client-side timeout means the proxy kept a request longer than it may.
pub const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(15);

pub struct LoadSpec {
    pub prefix: &'static str,
    /// Threads whose keys cycle over every master: they check that one client's requests to
    /// different masters do not disturb each other, but a request held on a failed shard stalls
    /// them, so they alone cannot show what healthy shards answer meanwhile.
    pub mixed_threads: usize,
    /// Threads whose keys all live on one master, this many per master: the healthy shards keep
    /// being asked while the failed one is down.
    pub pinned_threads_per_shard: usize,
    /// Keys per thread for each master it uses.
    pub keys_per_shard: usize,
    /// Bounds, in case the stop flag is never set.
    pub max_ops_per_thread: u64,
    pub max_duration: Duration,
    /// Pause after each SET+GET pair, so the load leaves CPU to the Redis nodes: with a 1 s node
    /// timeout, starved nodes would fail over on their own.
    pub think: Duration,
}

impl LoadSpec {
    pub fn new(prefix: &'static str) -> LoadSpec {
        LoadSpec {
            prefix,
            mixed_threads: 3,
            pinned_threads_per_shard: 1,
            keys_per_shard: 16,
            max_ops_per_thread: 200_000,
            max_duration: Duration::from_secs(90),
            think: Duration::from_millis(1),
        }
    }
}

/// One key's ledger.
#[derive(Clone, Debug)]
pub struct KeyState {
    pub key: String,
    pub slot: u16,
    pub shard: u16,
    /// The value of the last `SET` answered `OK`.
    pub acked: Option<String>,
    /// Values of later `SET`s that failed: each may or may not have been applied.
    pub unsure: Vec<String>,
}

impl KeyState {
    pub fn allows(&self, got: Option<&str>) -> bool {
        match got {
            None => self.acked.is_none(),
            Some(v) => self.acked.as_deref() == Some(v) || self.unsure.iter().any(|u| u == v),
        }
    }
}

#[derive(Clone, Debug)]
pub struct OpError {
    pub sent: Instant,
    pub at: Instant,
    pub op: &'static str,
    pub key: String,
    pub slot: u16,
    pub shard: u16,
    pub text: String,
    /// The proxy answered with an error reply, rather than the connection failing or the client
    /// giving up waiting.
    pub from_proxy: bool,
}

pub struct LoadResult {
    pub started: Instant,
    pub stopped: Instant,
    /// Master ports when the load started; a key's shard is one of them.
    pub shards: Vec<u16>,
    pub keys: Vec<KeyState>,
    pub errors: Vec<OpError>,
    /// Completion time and shard of every successful request.
    pub successes: Vec<(Instant, u16)>,
    pub violations: Vec<String>,
    pub ops: u64,
    pub acked_writes: u64,
    pub max_latency: BTreeMap<u16, Duration>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<ThreadLog>>,
    started: Instant,
    shards: Vec<u16>,
}

#[derive(Default)]
struct ThreadLog {
    keys: Vec<KeyState>,
    errors: Vec<OpError>,
    successes: Vec<(Instant, u16)>,
    violations: Vec<String>,
    ops: u64,
    acked_writes: u64,
    max_latency: BTreeMap<u16, Duration>,
}

impl Load {
    /// Starts the threads. `owners` is the slot map (master port per slot) the keys are spread
    /// over.
    pub fn start(proxy: SocketAddr, owners: &[u16], spec: LoadSpec) -> Load {
        let mut shards: Vec<u16> = owners.iter().copied().filter(|&p| p != 0).collect();
        shards.sort_unstable();
        shards.dedup();
        assert!(!shards.is_empty(), "the slot map has no master");
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let spec = Arc::new(spec);
        // Each thread's set of masters: every master for the mixed ones, then one each.
        let mut plans: Vec<Vec<u16>> = vec![shards.clone(); spec.mixed_threads];
        for &shard in &shards {
            plans.extend((0..spec.pinned_threads_per_shard).map(|_| vec![shard]));
        }
        let threads = plans
            .iter()
            .enumerate()
            .map(|(t, plan)| {
                let keys = pick_keys(&spec, t, owners, plan);
                let stop = stop.clone();
                let spec = spec.clone();
                std::thread::spawn(move || run_thread(t, proxy, keys, &spec, &stop, started))
            })
            .collect();
        Load {
            stop,
            threads,
            started,
            shards,
        }
    }

    pub fn stop(mut self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        let stopped = Instant::now();
        let mut result = LoadResult {
            started: self.started,
            stopped,
            shards: std::mem::take(&mut self.shards),
            keys: Vec::new(),
            errors: Vec::new(),
            successes: Vec::new(),
            violations: Vec::new(),
            ops: 0,
            acked_writes: 0,
            max_latency: BTreeMap::new(),
        };
        for thread in std::mem::take(&mut self.threads) {
            let log = thread.join().expect("a load thread panicked");
            result.keys.extend(log.keys);
            result.errors.extend(log.errors);
            result.successes.extend(log.successes);
            result.violations.extend(log.violations);
            result.ops += log.ops;
            result.acked_writes += log.acked_writes;
            for (shard, latency) in log.max_latency {
                let max = result.max_latency.entry(shard).or_default();
                *max = (*max).max(latency);
            }
        }
        result.errors.sort_by_key(|e| e.at);
        result.successes.sort_unstable_by_key(|s| s.0);
        result
    }
}

/// A test that panics mid-way must not leave its threads hammering the next test's machine.
impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The same number of keys on each of `shards`, interleaved so consecutive requests of one
/// thread go to different masters.
fn pick_keys(spec: &LoadSpec, thread: usize, owners: &[u16], shards: &[u16]) -> Vec<KeyState> {
    let mut per_shard: Vec<Vec<KeyState>> = shards.iter().map(|_| Vec::new()).collect();
    let mut i = 0u64;
    while per_shard
        .iter()
        .any(|keys| keys.len() < spec.keys_per_shard)
    {
        let key = format!("{}:t{thread}:k{i}", spec.prefix);
        i += 1;
        let slot = Slot::for_key(key.as_bytes()).get();
        let shard = owners[usize::from(slot)];
        let Some(bucket) = shards.iter().position(|&s| s == shard) else {
            continue;
        };
        let bucket = &mut per_shard[bucket];
        if bucket.len() < spec.keys_per_shard {
            bucket.push(KeyState {
                key,
                slot,
                shard,
                acked: None,
                unsure: Vec::new(),
            });
        }
    }
    let mut keys = Vec::new();
    for rank in 0..spec.keys_per_shard {
        keys.extend(per_shard.iter().map(|bucket| bucket[rank].clone()));
    }
    keys
}

fn run_thread(
    t: usize,
    proxy: SocketAddr,
    keys: Vec<KeyState>,
    spec: &LoadSpec,
    stop: &AtomicBool,
    started: Instant,
) -> ThreadLog {
    let mut log = ThreadLog {
        keys,
        ..ThreadLog::default()
    };
    let mut con: Option<redis::Connection> = None;
    let deadline = started + spec.max_duration;
    let mut j: u64 = 0;
    while !stop.load(Ordering::Relaxed) && j < spec.max_ops_per_thread && Instant::now() < deadline
    {
        let k = (j as usize) % log.keys.len();
        let value = format!("t{t}:{j}");
        let set = request(
            &mut con,
            proxy,
            redis::cmd("SET").arg(&log.keys[k].key).arg(&value),
        );
        log.record("SET", k, &set);
        match set.result {
            Ok(Value::Okay) => {
                let state = &mut log.keys[k];
                state.acked = Some(value);
                state.unsure.clear();
                log.acked_writes += 1;
            }
            Ok(other) => {
                log.violations.push(format!(
                    "t{t} SET {} answered {other:?} instead of OK",
                    log.keys[k].key
                ));
                log.keys[k].unsure.push(value);
            }
            Err(_) => log.keys[k].unsure.push(value),
        }
        let get = request(&mut con, proxy, redis::cmd("GET").arg(&log.keys[k].key));
        log.record("GET", k, &get);
        if let Ok(reply) = &get.result {
            let got = match reply {
                Value::Nil => Ok(None),
                Value::BulkString(b) => Ok(Some(String::from_utf8_lossy(b).into_owned())),
                other => Err(format!("{other:?}")),
            };
            let state = &log.keys[k];
            match got {
                Ok(got) if state.allows(got.as_deref()) => {}
                Ok(got) => log.violations.push(format!(
                    "t{t} GET {} (slot {}, shard {}) at +{} ms returned {got:?}; last acked \
                     {:?}, unsure since {:?}",
                    state.key,
                    state.slot,
                    state.shard,
                    get.at.duration_since(started).as_millis(),
                    state.acked,
                    state.unsure
                )),
                Err(other) => log.violations.push(format!(
                    "t{t} GET {} returned a non-string {other}",
                    state.key
                )),
            }
        }
        log.ops += 2;
        j += 1;
        std::thread::sleep(spec.think);
    }
    log
}

struct Outcome {
    sent: Instant,
    at: Instant,
    result: Result<Value, (String, bool)>,
}

/// One request on the thread's connection, reconnecting first if the last one broke. Error
/// replies keep the connection; I/O errors and client-side timeouts drop it, since a late reply
/// would then be taken for the next request's.
fn request(con: &mut Option<redis::Connection>, proxy: SocketAddr, cmd: &redis::Cmd) -> Outcome {
    let sent = Instant::now();
    if con.is_none() {
        match connect(proxy) {
            Ok(c) => *con = Some(c),
            Err(e) => {
                return Outcome {
                    sent,
                    at: Instant::now(),
                    result: Err((format!("client: cannot connect to the proxy: {e}"), false)),
                }
            }
        }
    }
    let c = con.as_mut().expect("connected above");
    let result = match cmd.query::<Value>(c) {
        Ok(v) => Ok(v),
        Err(e) if e.code().is_some() => Err((e.to_string(), true)),
        Err(e) => {
            *con = None;
            let what = if e.is_timeout() {
                "client: no reply within the client read timeout"
            } else {
                "client: connection failed"
            };
            Err((format!("{what}: {e}"), false))
        }
    };
    Outcome {
        sent,
        at: Instant::now(),
        result,
    }
}

pub fn connect(proxy: SocketAddr) -> Result<redis::Connection, String> {
    let client = redis::Client::open(format!("redis://{proxy}/")).map_err(|e| e.to_string())?;
    let con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(CLIENT_READ_TIMEOUT))
        .and_then(|()| con.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| e.to_string())?;
    Ok(con)
}

impl ThreadLog {
    fn record(&mut self, op: &'static str, k: usize, outcome: &Outcome) {
        let state = &self.keys[k];
        let latency = outcome.at.duration_since(outcome.sent);
        let max = self.max_latency.entry(state.shard).or_default();
        *max = (*max).max(latency);
        match &outcome.result {
            Ok(_) => self.successes.push((outcome.at, state.shard)),
            Err((text, from_proxy)) => self.errors.push(OpError {
                sent: outcome.sent,
                at: outcome.at,
                op,
                key: state.key.clone(),
                slot: state.slot,
                shard: state.shard,
                text: text.clone(),
                from_proxy: *from_proxy,
            }),
        }
    }
}
