//! The failover benchmark: a steady load through the release binary of slotgate while one master
//! of a real Redis Cluster is SIGKILLed, to put numbers on what the README promises in "When the
//! cluster changes": how many errors clients see, how soon the failed shard serves again once its
//! replica is promoted, and how much the other shards slow down meanwhile. Each round starts a
//! fresh cluster, because a round leaves the old master dead. Run it with
//! `scripts/bench-failover.sh`.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it only prints how to run it: it
//! starts six Redis nodes per round and deliberately breaks them, which no test run should pay
//! for.
//!
//! Unlike the chaos tests, which check correctness with an in-process proxy, this measures the
//! binary operators run, with its default settings except `backend.hold_timeout_ms`, and kills
//! the master mid-load without pausing its writes first.

#[path = "../tests/common/cluster.rs"]
mod cluster;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{sleep, JoinHandle};
use std::time::{Duration, Instant};

use cluster::RedisCluster;
use hdrhistogram::Histogram;
use redis::Value;
use slotgate::cluster::{Slot, SLOT_COUNT};

const USAGE: &str = "usage: scripts/bench-failover.sh [--rounds N] [--node-timeout-ms MS] \
[--clients N] [--rate R] [--warmup-secs S] [--after-secs S] [--hold-timeout-ms MS]
  --rounds N            rounds, each on a fresh cluster, killing masters in turn (default 1)
  --node-timeout-ms MS  cluster-node-timeout of the Redis nodes (default 2000)
  --clients N           client connections, pipeline 1, pinned to the masters in turn (default 30)
  --rate R              total requests per second over all clients; 0 = as fast as they can
                        (default 3000)
  --warmup-secs S       load before the kill (default 3)
  --after-secs S        load after the promotion is seen (default 3)
  --hold-timeout-ms MS  slotgate's backend.hold_timeout_ms (default 17000, slotgate's default)";

/// The shape the failover issue asks for: 3 masters, one replica each.
const MASTERS: usize = 3;
const REPLICAS_PER_MASTER: usize = 1;
const KEYS_PER_CLIENT: usize = 16;
/// The issue asks for the promotion to be timestamped at this resolution.
const ROLE_POLL: Duration = Duration::from_millis(20);
/// Node timeout plus an election takes far less than this even on a busy machine; past it the
/// round has failed, not merely been slow.
const PROMOTION_GRACE: Duration = Duration::from_secs(30);
/// A reply the old master sent just before dying can reach the client a little after the kill.
/// No success can come from the shard again until the promotion, at least a node timeout later,
/// so any success this long after the kill came from the new master.
const STALE_REPLY_GRACE_US: u64 = 100_000;
/// Requests during the first second still pay for connects and cold caches; the baseline the
/// failover is compared with starts after it.
const BASELINE_SKIP_US: u64 = 1_000_000;
const SLOTGATE_READY_TIMEOUT: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds what a confused peer on the metrics port can make us buffer.
const MAX_HTTP_BODY: u64 = 1 << 20;
/// Free ports come from binding port 0 and letting go, so another process may take one before
/// slotgate binds it; a fresh pair is tried then.
const SLOTGATE_START_ATTEMPTS: usize = 3;
/// Hour-long latencies would mean a hung run; anything up to that is recorded exactly enough.
const HIST_MAX_US: u64 = 3_600_000_000;

struct Options {
    rounds: usize,
    node_timeout_ms: u64,
    clients: usize,
    rate: f64,
    warmup: Duration,
    after: Duration,
    hold_timeout_ms: u64,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            rounds: 1,
            node_timeout_ms: 2000,
            clients: 30,
            rate: 3000.0,
            warmup: Duration::from_secs(3),
            after: Duration::from_secs(3),
            hold_timeout_ms: 17_000,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value")).cloned();
            match arg.as_str() {
                "--bench" => {}
                "--rounds" => o.rounds = int(&value(arg)?, arg, 1, 100)? as usize,
                "--node-timeout-ms" => o.node_timeout_ms = int(&value(arg)?, arg, 100, 60_000)?,
                "--clients" => o.clients = int(&value(arg)?, arg, 3, 1000)? as usize,
                "--rate" => o.rate = float(&value(arg)?, arg, 0.0, 1e6)?,
                "--warmup-secs" => o.warmup = secs(&value(arg)?, arg, 1.0)?,
                "--after-secs" => o.after = secs(&value(arg)?, arg, 0.5)?,
                "--hold-timeout-ms" => o.hold_timeout_ms = int(&value(arg)?, arg, 1, 600_000)?,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(o)
    }

    /// Time between two requests of one client; `None` runs each client flat out.
    fn period(&self) -> Option<Duration> {
        (self.rate > 0.0).then(|| Duration::from_secs_f64(self.clients as f64 / self.rate))
    }

    /// Above the hold timeout and slotgate's default 5 s op timeout, so a client-side timeout
    /// means slotgate kept a request longer than it may, not that the client was impatient.
    fn client_read_timeout(&self) -> Duration {
        Duration::from_millis(self.hold_timeout_ms + 10_000)
    }
}

fn int(v: &str, name: &str, min: u64, max: u64) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or(format!("{name} takes {min} to {max}"))
}

fn float(v: &str, name: &str, min: f64, max: f64) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or(format!("{name} takes {min} to {max}"))
}

fn secs(v: &str, name: &str, min: f64) -> Result<Duration, String> {
    float(v, name, min, 600.0).map(Duration::from_secs_f64)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("failover benchmark: run with scripts/bench-failover.sh");
        return ExitCode::SUCCESS;
    }
    let opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("failover: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match bench(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(opts: &Options) -> Result<(), String> {
    let started = Instant::now();
    // Built by cargo in the bench profile, which is the release profile: target/release/slotgate,
    // the binary scripts/bench-failover.sh built.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_slotgate"));
    let target_dir = bin
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    let tmp = TempDir::new()?;
    let config = tmp.0.join("slotgate.yaml");
    std::fs::write(
        &config,
        format!(
            "# Written by benches/failover.rs; everything else keeps its default.\n\
             backend:\n  hold_timeout_ms: {}\n",
            opts.hold_timeout_ms
        ),
    )
    .map_err(|e| format!("{}: {e}", config.display()))?;

    let loadavg_start = loadavg();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "slotgate failover benchmark: {} round(s); {nproc} cores, {}; {}; load average {loadavg_start}",
        opts.rounds,
        cpu_model(),
        redis_version()
    );
    println!(
        "{MASTERS} masters x {REPLICAS_PER_MASTER} replica, cluster-node-timeout {} ms; {} clients \
         at pipeline 1, {}; slotgate {} with hold_timeout_ms {}",
        opts.node_timeout_ms,
        opts.clients,
        match opts.period() {
            Some(_) => format!("{:.0} req/s in total", opts.rate),
            None => "unpaced".to_owned(),
        },
        bin.display(),
        opts.hold_timeout_ms
    );

    let mut rounds = Vec::new();
    for n in 1..=opts.rounds {
        let log = target_dir.join(format!("bench-failover-slotgate-{n}.log"));
        let r = round(opts, n, &bin, &config, &log)?;
        eprintln!(
            "round {n}: victim {}, kill -> promotion {} ms, promotion -> first success {}, \
             {} errors",
            r.victim,
            r.kill_to_promotion_ms(),
            opt_ms(r.promotion_to_success_ms()),
            r.errors_total()
        );
        rounds.push(r);
    }
    let loadavg_end = loadavg();
    let elapsed = started.elapsed().as_secs_f64();

    println!();
    print!("{}", table(&rounds));
    println!(
        "\nnoise: {nproc} cores shared by {} client threads, slotgate and {} redis-server \
         processes, plus whatever else runs (load average {loadavg_start} at start, {loadavg_end} \
         at end).",
        opts.clients,
        MASTERS * (1 + REPLICAS_PER_MASTER)
    );
    let json_path = target_dir.join("bench-failover.json");
    let meta = Meta {
        nproc,
        cpu: cpu_model(),
        redis: redis_version(),
        loadavg_start,
        loadavg_end,
        elapsed_secs: elapsed,
    };
    std::fs::write(&json_path, json(opts, &meta, &rounds))
        .map_err(|e| format!("{}: {e}", json_path.display()))?;
    println!("wrote {}; total {elapsed:.0} s", json_path.display());
    Ok(())
}

/// One fresh cluster, one slotgate, one kill. Drop order does the cleanup on every exit path:
/// the load stops first, then slotgate, then the cluster.
fn round(
    opts: &Options,
    n: usize,
    bin: &Path,
    config: &Path,
    log: &Path,
) -> Result<RoundReport, String> {
    let mut cluster = RedisCluster::start(MASTERS, REPLICAS_PER_MASTER, opts.node_timeout_ms);
    let owners = slot_owners(cluster.nodes[0].port)?;
    let mut shards: Vec<u16> = owners.clone();
    shards.sort_unstable();
    shards.dedup();
    if shards.len() != MASTERS || shards.contains(&0) {
        return Err(format!("unexpected slot map: masters {shards:?}"));
    }
    // Killing a different master each round spreads the rounds over the slot ranges.
    let victim_idx = (n - 1) % MASTERS;
    let victim = shards[victim_idx];
    let replica = cluster.replica_of(victim);
    let slotgate = Slotgate::start(bin, &cluster.addrs(), config, log)?;

    let load = Load::start(opts, slotgate.addr, &owners, &shards, n);
    sleep(opts.warmup);

    let mut role = RoleProbe::new(replica);
    let kill_at = Instant::now();
    cluster.kill(victim);
    let deadline = kill_at + Duration::from_millis(opts.node_timeout_ms) + PROMOTION_GRACE;
    let promoted_at = loop {
        if role.is_master() {
            break Instant::now();
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "round {n}: replica {replica} of killed master {victim} not promoted within {:?}",
                deadline - kill_at
            ));
        }
        sleep(ROLE_POLL);
    };
    // Keep the load until `after` past the promotion, and in any case until the victim shard has
    // served again or slotgate's hold timeout has run out for every request held.
    let end_at = promoted_at + opts.after;
    let hard_end = end_at + Duration::from_millis(opts.hold_timeout_ms) + Duration::from_secs(5);
    let kill_us = load.us(kill_at);
    loop {
        let now = Instant::now();
        let served = load.last_ok_us(victim_idx) > kill_us + STALE_REPLY_GRACE_US;
        if now >= hard_end || (now >= end_at && served) {
            break;
        }
        sleep(Duration::from_millis(50));
    }
    let result = load.stop();
    let metrics = http_get(slotgate.metrics, "/metrics")
        .map(|(_, body)| scrape(&body))
        .unwrap_or_default();
    drop(slotgate);
    drop(cluster);
    Ok(RoundReport::new(
        n,
        &shards,
        victim_idx,
        replica,
        kill_us,
        result.us(promoted_at),
        opts.period().map(|p| p.as_micros() as u64),
        result,
        metrics,
    ))
}

/// The master port of every slot as `port` sees it, from `CLUSTER SLOTS`.
fn slot_owners(port: u16) -> Result<Vec<u16>, String> {
    let mut con = node_connection(port)?;
    let reply = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Value>(&mut con)
        .map_err(|e| format!("CLUSTER SLOTS on {port}: {e}"))?;
    let bad = || format!("CLUSTER SLOTS on {port}: unexpected reply {reply:?}");
    let Value::Array(ranges) = &reply else {
        return Err(bad());
    };
    let mut owners = vec![0u16; SLOT_COUNT];
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(bad());
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(bad());
        };
        let Some(Value::Int(master_port)) = master.get(1) else {
            return Err(bad());
        };
        let (start, end) = (*start as usize, *end as usize);
        if start > end || end >= SLOT_COUNT {
            return Err(bad());
        }
        owners[start..=end].fill(u16::try_from(*master_port).map_err(|_| bad())?);
    }
    Ok(owners)
}

fn node_connection(port: u16) -> Result<redis::Connection, String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    let con = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    con.set_read_timeout(Some(Duration::from_millis(500)))
        .and_then(|()| con.set_write_timeout(Some(Duration::from_millis(500))))
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    Ok(con)
}

/// Asks the replica itself: the other nodes learn of the promotion later, and slotgate may act
/// on the replica's word as soon as it says so.
struct RoleProbe {
    port: u16,
    con: Option<redis::Connection>,
}

impl RoleProbe {
    /// Connects before the kill, so the first poll after it costs no connect.
    fn new(port: u16) -> RoleProbe {
        RoleProbe {
            port,
            con: node_connection(port).ok(),
        }
    }

    fn is_master(&mut self) -> bool {
        if self.con.is_none() {
            self.con = node_connection(self.port).ok();
        }
        let Some(con) = self.con.as_mut() else {
            return false;
        };
        match redis::cmd("ROLE").query::<Value>(con) {
            Ok(Value::Array(fields)) => {
                fields.first() == Some(&Value::BulkString(b"master".to_vec()))
            }
            Ok(_) => false,
            Err(_) => {
                self.con = None;
                false
            }
        }
    }
}

/// One request as a client saw it. Times are microseconds since the load started, so a round's
/// samples sort and compare without `Instant` arithmetic.
#[derive(Clone, Copy)]
struct Sample {
    sent_us: u64,
    latency_us: u64,
    /// Index into the round's masters, sorted by port: the master that owned the key's slot
    /// when the load started.
    shard: u8,
    ok: bool,
}

impl Sample {
    fn done_us(&self) -> u64 {
        self.sent_us + self.latency_us
    }
}

#[derive(Default)]
struct ClientLog {
    samples: Vec<Sample>,
    /// Error texts by shard, with counts: the texts tell a held-then-failed request from a
    /// dropped connection or a client timeout.
    errors: BTreeMap<(u8, String), u64>,
}

struct LoadResult {
    t0: Instant,
    samples: Vec<Sample>,
    errors: BTreeMap<(u8, String), u64>,
    stopped_us: u64,
}

impl LoadResult {
    fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_micros() as u64
    }
}

struct Shared {
    stop: AtomicBool,
    /// Completion time (µs since start, plus one so 0 means never) of each shard's latest
    /// success, so the round can wait for the victim shard to serve again without locks.
    last_ok: Vec<AtomicU64>,
}

/// Client threads, each with its own connection through slotgate and its own keys, all on one
/// master. Pinning matters: a client whose keys cycle over every master stalls on the first key
/// of the failed shard, and the healthy shards would then see no load at all during exactly the
/// window their latency is measured in.
struct Load {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<ClientLog>>,
    t0: Instant,
}

impl Load {
    fn start(opts: &Options, proxy: SocketAddr, owners: &[u16], shards: &[u16], n: usize) -> Load {
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

    fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_micros() as u64
    }

    fn last_ok_us(&self, shard: usize) -> u64 {
        self.shared.last_ok[shard]
            .load(Ordering::Relaxed)
            .saturating_sub(1)
    }

    fn stop(mut self) -> LoadResult {
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

struct Client {
    id: usize,
    proxy: SocketAddr,
    keys: Vec<String>,
    shard: u8,
    period: Option<Duration>,
    read_timeout: Duration,
    t0: Instant,
    first: Instant,
    deadline: Instant,
}

impl Client {
    fn run(self, shared: &Shared) -> ClientLog {
        let mut log = ClientLog::default();
        let mut con: Option<redis::Connection> = None;
        let mut next = self.first;
        let mut j: u64 = 0;
        while !shared.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline {
            if let Some(period) = self.period {
                let now = Instant::now();
                if next > now {
                    sleep(next - now);
                }
                // A client that was held skips the slots it missed instead of bursting to catch
                // up: the load after a failover should look like the load before it.
                next = (next + period).max(Instant::now());
            }
            let key = &self.keys[(j / 2) as usize % self.keys.len()];
            let mut cmd = redis::cmd(if j % 2 == 0 { "SET" } else { "GET" });
            cmd.arg(key);
            if j % 2 == 0 {
                cmd.arg(format!("c{}:{j}", self.id));
            }
            let sent = Instant::now();
            let result = self.request(&mut con, &cmd, j % 2 == 0);
            let done = Instant::now();
            let sent_us = sent.saturating_duration_since(self.t0).as_micros() as u64;
            let latency_us = done.saturating_duration_since(sent).as_micros() as u64;
            log.samples.push(Sample {
                sent_us,
                latency_us,
                shard: self.shard,
                ok: result.is_ok(),
            });
            match result {
                Ok(()) => {
                    shared.last_ok[usize::from(self.shard)]
                        .fetch_max(sent_us + latency_us + 1, Ordering::Relaxed);
                }
                Err(text) => {
                    *log.errors.entry((self.shard, text)).or_default() += 1;
                    if con.is_none() {
                        // Slotgate unreachable: do not spin on connect.
                        sleep(Duration::from_millis(10));
                    }
                }
            }
            j += 1;
        }
        log
    }

    /// Error replies keep the connection; I/O errors and timeouts drop it, since a late reply
    /// would otherwise be taken for the next request's.
    fn request(
        &self,
        con: &mut Option<redis::Connection>,
        cmd: &redis::Cmd,
        is_set: bool,
    ) -> Result<(), String> {
        if con.is_none() {
            *con = Some(
                connect(self.proxy, self.read_timeout)
                    .map_err(|e| format!("client: cannot connect to slotgate: {e}"))?,
            );
        }
        let c = con.as_mut().expect("connected above");
        match cmd.query::<Value>(c) {
            Ok(Value::Okay) if is_set => Ok(()),
            Ok(Value::BulkString(_) | Value::Nil) if !is_set => Ok(()),
            Ok(other) => Err(format!("client: unexpected reply {other:?}")),
            Err(e) if e.code().is_some() => Err(e.to_string()),
            Err(e) => {
                *con = None;
                let what = if e.is_timeout() {
                    "client: no reply within the client read timeout"
                } else {
                    "client: connection failed"
                };
                Err(format!("{what}: {e}"))
            }
        }
    }
}

fn connect(proxy: SocketAddr, read_timeout: Duration) -> Result<redis::Connection, String> {
    let client = redis::Client::open(format!("redis://{proxy}/")).map_err(|e| e.to_string())?;
    let con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(read_timeout))
        .and_then(|()| con.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| e.to_string())?;
    Ok(con)
}

/// p50, p99 and max of some latencies, in µs.
#[derive(Clone, Copy, Default)]
struct Lat {
    count: u64,
    p50: u64,
    p99: u64,
    max: u64,
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

    fn text(&self) -> String {
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

struct ShardErrors {
    port: u16,
    requests: u64,
    errors: u64,
    texts: Vec<(String, u64)>,
}

/// What one round measured; times are µs since its load started.
struct RoundReport {
    n: usize,
    victim: u16,
    replica: u16,
    requests: u64,
    load_secs: f64,
    kill_us: u64,
    promoted_us: u64,
    /// The victim shard's first success after the outage began (see `after_outage`).
    first_success_us: Option<u64>,
    last_error_us: Option<u64>,
    errors_before_kill: u64,
    shards: Vec<ShardErrors>,
    /// Other shards, before the kill and during [kill, first success on the victim].
    baseline_others: Lat,
    window_others: Lat,
    /// The same, as the paced clients' schedule saw it (see `Lat::corrected`).
    window_others_corrected: Lat,
    /// When the slowest of those was sent, in ms from the kill: it tells a stall at the kill
    /// (slotgate) from one at the promotion (the cluster's own CLUSTERDOWN second).
    slowest_other_sent_ms: Option<i64>,
    /// The victim shard's requests that waited for the failover.
    held: Lat,
    held_corrected: Lat,
    held_errors: u64,
    metrics: BTreeMap<String, f64>,
}

impl RoundReport {
    #[allow(clippy::too_many_arguments)]
    fn new(
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

    fn kill_to_promotion_ms(&self) -> i64 {
        signed_ms(self.kill_us, self.promoted_us)
    }

    /// Negative when slotgate served the shard before the 20 ms poll saw the promotion.
    fn promotion_to_success_ms(&self) -> Option<i64> {
        self.first_success_us
            .map(|at| signed_ms(self.promoted_us, at))
    }

    fn kill_to_last_error_ms(&self) -> Option<i64> {
        self.last_error_us.map(|at| signed_ms(self.kill_us, at))
    }

    fn errors_total(&self) -> u64 {
        self.shards.iter().map(|s| s.errors).sum()
    }

    fn errors_victim_others(&self) -> (u64, u64) {
        let victim = self.shards.iter().find(|s| s.port == self.victim);
        let v = victim.map_or(0, |s| s.errors);
        (v, self.errors_total() - v)
    }
}

fn signed_ms(from_us: u64, to_us: u64) -> i64 {
    (to_us as i64 - from_us as i64) / 1000
}

fn opt_ms(v: Option<i64>) -> String {
    v.map_or("never".to_owned(), |v| format!("{v} ms"))
}

/// One row of the table: a figure of a round, as text.
type Cell = Box<dyn Fn(&RoundReport) -> String>;

fn table(rounds: &[RoundReport]) -> String {
    let metric = |r: &RoundReport, name: &str| {
        r.metrics
            .get(name)
            .map_or("?".to_owned(), |v| format!("{v:.0}"))
    };
    let rows: Vec<(&str, Cell)> = vec![
        (
            "killed master -> promoted replica",
            Box::new(|r| format!("{} -> {}", r.victim, r.replica)),
        ),
        (
            "requests (rate)",
            Box::new(|r| {
                format!(
                    "{} ({:.0}/s)",
                    r.requests,
                    r.requests as f64 / r.load_secs.max(1e-3)
                )
            }),
        ),
        (
            "errors: killed shard / others",
            Box::new(|r| {
                let (v, o) = r.errors_victim_others();
                format!("{v} / {o}")
            }),
        ),
        (
            "window kill -> promotion",
            Box::new(|r| format!("{} ms", r.kill_to_promotion_ms())),
        ),
        (
            "window promotion -> first success",
            Box::new(|r| opt_ms(r.promotion_to_success_ms())),
        ),
        (
            "window kill -> last error",
            Box::new(|r| {
                r.kill_to_last_error_ms()
                    .map_or("no errors".into(), |v| format!("{v} ms"))
            }),
        ),
        (
            "other shards before kill p50/p99/max",
            Box::new(|r| r.baseline_others.text()),
        ),
        (
            "other shards in window: requests",
            Box::new(|r| r.window_others.count.to_string()),
        ),
        (
            "other shards in window p50/p99/max",
            Box::new(|r| r.window_others.text()),
        ),
        (
            "  same, corrected for coord. omission",
            Box::new(|r| r.window_others_corrected.text()),
        ),
        (
            "  slowest of them sent at (from kill)",
            Box::new(|r| opt_ms(r.slowest_other_sent_ms).replace("never", "-")),
        ),
        (
            "held on killed shard: requests (errors)",
            Box::new(|r| format!("{} ({})", r.held.count, r.held_errors)),
        ),
        (
            "held on killed shard p50/p99/max",
            Box::new(|r| r.held.text()),
        ),
        (
            "  same, corrected for coord. omission",
            Box::new(|r| r.held_corrected.text()),
        ),
        (
            "slotgate map refreshes ok / failed",
            Box::new(move |r| {
                format!(
                    "{} / {}",
                    metric(r, "slotgate_topology_refreshes_total{result=\"ok\"}"),
                    metric(r, "slotgate_topology_refreshes_total{result=\"error\"}")
                )
            }),
        ),
        (
            "slotgate backend reconnects",
            Box::new(move |r| metric(r, "slotgate_backend_reconnects_total")),
        ),
    ];
    let label_width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, f)| rounds.iter().map(f).collect())
        .collect();
    let col_width = cells
        .iter()
        .flatten()
        .map(String::len)
        .chain(rounds.iter().map(|r| format!("round {}", r.n).len()))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = write!(out, "{:<label_width$}", "");
    for r in rounds {
        let _ = write!(out, "  {:>col_width$}", format!("round {}", r.n));
    }
    out.push('\n');
    for ((label, _), row) in rows.iter().zip(&cells) {
        let _ = write!(out, "{label:<label_width$}");
        for cell in row {
            let _ = write!(out, "  {cell:>col_width$}");
        }
        out.push('\n');
    }
    out.push_str(
        "\nwindow = [kill, first success on the killed shard]; latencies from when the client \
         sent the request;\n\"corrected\" adds the requests a stalled paced client did not send \
         (HdrHistogram record_correct).\n",
    );
    for r in rounds {
        if r.errors_before_kill > 0 {
            let _ = writeln!(
                out,
                "round {}: {} errors BEFORE the kill",
                r.n, r.errors_before_kill
            );
        }
        for s in &r.shards {
            for (text, count) in s.texts.iter().take(8) {
                let _ = writeln!(out, "round {} shard {}: {count} x {text}", r.n, s.port);
            }
        }
    }
    out
}

struct Meta {
    nproc: usize,
    cpu: String,
    redis: String,
    loadavg_start: String,
    loadavg_end: String,
    elapsed_secs: f64,
}

fn json(opts: &Options, meta: &Meta, rounds: &[RoundReport]) -> String {
    let lat = |l: &Lat| {
        format!(
            "{{\"count\": {}, \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}}}",
            l.count, l.p50, l.p99, l.max
        )
    };
    let opt = |v: Option<i64>| v.map_or("null".to_owned(), |v| v.to_string());
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\n  \"nproc\": {},\n  \"cpu\": {},\n  \"redis\": {},\n  \"loadavg_start\": {},\n  \
         \"loadavg_end\": {},\n  \"elapsed_secs\": {:.1},\n  \"masters\": {MASTERS},\n  \
         \"replicas_per_master\": {REPLICAS_PER_MASTER},\n  \"node_timeout_ms\": {},\n  \
         \"clients\": {},\n  \"rate\": {},\n  \"warmup_secs\": {},\n  \"after_secs\": {},\n  \
         \"hold_timeout_ms\": {},\n  \"rounds\": [",
        meta.nproc,
        quote(&meta.cpu),
        quote(&meta.redis),
        quote(&meta.loadavg_start),
        quote(&meta.loadavg_end),
        meta.elapsed_secs,
        opts.node_timeout_ms,
        opts.clients,
        opts.rate,
        opts.warmup.as_secs_f64(),
        opts.after.as_secs_f64(),
        opts.hold_timeout_ms
    );
    for (i, r) in rounds.iter().enumerate() {
        let shards: Vec<String> = r
            .shards
            .iter()
            .map(|s| {
                let texts: Vec<String> = s
                    .texts
                    .iter()
                    .map(|(t, c)| format!("{{\"text\": {}, \"count\": {c}}}", quote(t)))
                    .collect();
                format!(
                    "{{\"port\": {}, \"killed\": {}, \"requests\": {}, \"errors\": {}, \
                     \"error_texts\": [{}]}}",
                    s.port,
                    s.port == r.victim,
                    s.requests,
                    s.errors,
                    texts.join(", ")
                )
            })
            .collect();
        let metrics: Vec<String> = r
            .metrics
            .iter()
            .map(|(k, v)| format!("{}: {v}", quote(k)))
            .collect();
        let _ = write!(
            out,
            "{}\n    {{\"round\": {}, \"killed_master\": {}, \"promoted_replica\": {}, \
             \"requests\": {}, \"load_secs\": {:.3}, \"errors\": {}, \"errors_before_kill\": {}, \
             \"kill_to_promotion_ms\": {}, \"promotion_to_first_success_ms\": {}, \
             \"kill_to_last_error_ms\": {},\n     \"other_shards_before_kill\": {},\n     \
             \"other_shards_in_window\": {}, \"other_slowest_sent_from_kill_ms\": {},\n     \
             \"other_shards_in_window_corrected\": {},\n     \
             \"held_on_killed_shard\": {}, \"held_on_killed_shard_corrected\": {},\n     \
             \"held_errors\": {},\n     \"shards\": [{}],\n     \"slotgate_metrics\": {{{}}}}}",
            if i == 0 { "" } else { "," },
            r.n,
            r.victim,
            r.replica,
            r.requests,
            r.load_secs,
            r.errors_total(),
            r.errors_before_kill,
            r.kill_to_promotion_ms(),
            opt(r.promotion_to_success_ms()),
            opt(r.kill_to_last_error_ms()),
            lat(&r.baseline_others),
            lat(&r.window_others),
            opt(r.slowest_other_sent_ms),
            lat(&r.window_others_corrected),
            lat(&r.held),
            lat(&r.held_corrected),
            r.held_errors,
            shards.join(", "),
            metrics.join(", ")
        );
    }
    out.push_str("\n  ]\n}\n");
    out
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// slotgate as a child process, started from the release binary with the flags and config file
/// an operator would use.
struct Slotgate {
    child: Child,
    /// Kills slotgate if the bench dies without running `Drop` (Ctrl-C, SIGKILL).
    watchdog: Option<Child>,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Slotgate {
    fn start(bin: &Path, seeds: &[String], config: &Path, log: &Path) -> Result<Slotgate, String> {
        let mut failures = Vec::new();
        for _ in 0..SLOTGATE_START_ATTEMPTS {
            match Slotgate::try_start(bin, seeds, config, log) {
                Ok(sg) => return Ok(sg),
                Err(e) => failures.push(e),
            }
        }
        Err(failures.join("\n"))
    }

    fn try_start(
        bin: &Path,
        seeds: &[String],
        config: &Path,
        log: &Path,
    ) -> Result<Slotgate, String> {
        let (listen, metrics) = free_port_pair()?;
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(config);
        cmd.args(["--listen", &listen.to_string()]);
        cmd.args(["--metrics-listen", &metrics.to_string()]);
        // Every node, as an operator would list them: the first may be the one that dies.
        for seed in seeds {
            cmd.args(["--seed", seed]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let pid = child.id();
        let mut sg = Slotgate {
            child,
            watchdog: None,
            addr: listen,
            metrics,
        };
        sg.watchdog = Some(watchdog(pid, config.parent().unwrap_or(config))?);
        let deadline = Instant::now() + SLOTGATE_READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = sg.child.try_wait() {
                return Err(format!("slotgate exited ({status}){}", log_tail(log)));
            }
            if matches!(http_get(metrics, "/readyz"), Ok((200, _))) {
                return Ok(sg);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "slotgate not ready after {SLOTGATE_READY_TIMEOUT:?}{}",
                    log_tail(log)
                ));
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Slotgate {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Given the exact pid, so it can only ever kill our own child; in its own process group so a
/// Ctrl-C on the bench does not stop it first. It also removes the config's directory, which
/// `TempDir` cannot when the bench is killed.
fn watchdog(pid: u32, dir: &Path) -> Result<Child, String> {
    const SCRIPT: &str = r#"owner=$1; pid=$2; dir=$3
while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
kill -9 "$pid" 2>/dev/null
[ -n "$dir" ] && rm -rf "$dir""#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("slotgate-failover-watchdog")
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the watchdog shell: {e}"))
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    format!("\n--- {}:\n{}", log.display(), tail.join("\n"))
}

fn free_port_pair() -> Result<(SocketAddr, SocketAddr), String> {
    // Both held at once, so the kernel cannot hand out the same port twice.
    let a = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let b = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok((
        a.local_addr().map_err(|e| e.to_string())?,
        b.local_addr().map_err(|e| e.to_string())?,
    ))
}

fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.take(MAX_HTTP_BODY)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no HTTP status line")?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_owned()))
}

/// Every sample of the counter families that say what slotgate did during the failover, keyed
/// by name and labels as Prometheus prints them.
fn scrape(body: &str) -> BTreeMap<String, f64> {
    const FAMILIES: [&str; 5] = [
        "slotgate_requests_total",
        "slotgate_redirections_total",
        "slotgate_topology_refreshes_total",
        "slotgate_topology_disagreements_total",
        "slotgate_backend_reconnects_total",
    ];
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(name, _)| {
            FAMILIES.iter().any(|f| {
                name.strip_prefix(f)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
            })
        })
        .filter_map(|(name, v)| Some((name.to_owned(), v.parse().ok()?)))
        .collect()
}

/// The config file lives as long as the bench, removed however it ends short of a SIGKILL.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let dir = std::env::temp_dir().join(format!("slotgate-failover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn redis_version() -> String {
    let out = Command::new("redis-server").arg("--version").output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let version = text.ok().and_then(|t| {
        t.split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .map(str::to_owned)
    });
    format!("redis {}", version.as_deref().unwrap_or("unknown"))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}
