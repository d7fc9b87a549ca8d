//! What every chaos test starts from: its own cluster with a short node timeout, its own proxy
//! with short timeouts, and small helpers to talk to single nodes and to run `redis-cli --cluster`.

use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::Value;
use slotgate::cluster::{Slot, SLOT_COUNT};
use slotgate::config::Config;

use crate::common::cluster::RedisCluster;
use crate::common::proxy::Proxy;

/// Short, so a failover completes within a couple of seconds.
pub const NODE_TIMEOUT_MS: u64 = 1000;
pub const OP_TIMEOUT_MS: u64 = 1000;
pub const CONNECT_TIMEOUT_MS: u64 = 300;
/// How long the proxy may hold a request for an unreachable master or its promoted replica.
pub const HOLD_TIMEOUT_MS: u64 = 8000;
/// Generous: the cluster settles in a few seconds, but this machine is small and busy.
pub const SETTLE: Duration = Duration::from_secs(30);
/// A promotion takes node timeout plus an election; far less than this.
pub const PROMOTION_TIMEOUT: Duration = Duration::from_secs(15);

/// One test's cluster and proxy. Fields drop in order: the proxy first, then the nodes, then the
/// lock that lets the next test start.
pub struct Env {
    pub proxy: Proxy,
    pub cluster: RedisCluster,
    _serial: MutexGuard<'static, ()>,
}

/// Starts a 3-master + 3-replica cluster and a proxy seeded with every node, after waiting for
/// any other chaos test of this process to finish.
pub fn start() -> Env {
    start_with(|_| {})
}

/// `start`, with `tweak` adjusting the proxy's configuration after the chaos settings above
/// (`cfg.workers = 1` for one subscriber connection, say).
pub fn start_with(tweak: impl FnOnce(&mut Config)) -> Env {
    static SERIAL: Mutex<()> = Mutex::new(());
    // A failed test poisons the lock; the next one still runs on a fresh cluster.
    let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let cluster = RedisCluster::start(3, 1, NODE_TIMEOUT_MS);
    let proxy = Proxy::start(cluster.addrs(), |cfg| {
        cfg.backend.op_timeout_ms = OP_TIMEOUT_MS;
        cfg.backend.connect_timeout_ms = CONNECT_TIMEOUT_MS;
        cfg.backend.hold_timeout_ms = HOLD_TIMEOUT_MS;
        cfg.topology.min_refresh_interval_ms = 100;
        cfg.topology.refresh_interval_ms = 1000;
        tweak(cfg);
    });
    Env {
        proxy,
        cluster,
        _serial: serial,
    }
}

/// One command to one node over a fresh connection, with timeouts so a stopped node cannot hang
/// the test.
pub fn node_cmd(port: u16, args: &[&str]) -> Result<Value, String> {
    let what = || format!("127.0.0.1:{port} {}", args.join(" "));
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .map_err(|e| format!("{}: {e}", what()))?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .map_err(|e| format!("{}: {e}", what()))?;
    con.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| format!("{}: {e}", what()))?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query::<Value>(&mut con)
        .map_err(|e| format!("{}: {e}", what()))
}

/// A reply as text, for status, bulk and integer replies.
pub fn text(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".to_owned(),
        Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// The value of `field` in `INFO <section>` on `port`, as text: `blocked_clients` of `clients`
/// reads `"4"`, `cmdstat_get` of `commandstats` reads `"calls=3,usec=..."`.
pub fn info_field(port: u16, section: &str, field: &str) -> Result<String, String> {
    let info = text(&node_cmd(port, &["INFO", section])?);
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| format!("127.0.0.1:{port} INFO {section} has no {field}"))
}

/// `calls` of `command` (lower case, e.g. `set`) in `INFO commandstats` on `port`: how many times
/// the node ran it itself (a message from another node over the cluster bus does not count). A
/// command never called has no line at all: 0.
pub fn command_calls(port: u16, command: &str) -> u64 {
    info_field(port, "commandstats", &format!("cmdstat_{command}"))
        .ok()
        .and_then(|v| v.strip_prefix("calls=")?.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// The master of `key`'s slot and its replica.
pub fn shard_of(env: &Env, key: &str) -> (u16, u16) {
    let master = env
        .cluster
        .master_of_slot(Slot::for_key(key.as_bytes()).get());
    (master, env.cluster.replica_of(master))
}

/// The master port of every slot as `port` sees it (`CLUSTER SLOTS`), 0 for unassigned.
pub fn slot_owners(port: u16) -> Vec<u16> {
    let reply = node_cmd(port, &["CLUSTER", "SLOTS"]).unwrap_or_else(|e| panic!("{e}"));
    let Value::Array(ranges) = reply else {
        panic!("CLUSTER SLOTS: not an array: {reply:?}");
    };
    let mut owners = vec![0u16; SLOT_COUNT];
    for range in ranges {
        let Value::Array(fields) = range else {
            panic!("CLUSTER SLOTS: bad range {range:?}");
        };
        let (start, end) = (int(&fields[0]) as usize, int(&fields[1]) as usize);
        let Value::Array(master) = &fields[2] else {
            panic!("CLUSTER SLOTS: bad master {:?}", fields[2]);
        };
        let master_port = u16::try_from(int(&master[1])).expect("a port");
        owners[start..=end].fill(master_port);
    }
    owners
}

/// Redis replicates asynchronously, so a master that dies right after acknowledging a write may
/// take it along; that loss is Redis's, not the proxy's. To make "no acknowledged write is lost"
/// a fair assertion, `master` stops executing writes (they queue, unanswered, like on a node
/// that is about to crash) and its replicas catch up before the caller stages the fault. Nothing
/// acknowledged after this call can come from `master`.
pub fn quiesce_writes(cluster: &RedisCluster, master: u16) {
    let paused =
        node_cmd(master, &["CLIENT", "PAUSE", "10000", "WRITE"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(paused, Value::Okay, "CLIENT PAUSE on {master}");
    cluster.wait_replicas_synced(Duration::from_secs(10));
}

/// Runs `redis-cli <args>` (e.g. `--cluster reshard ...`) and returns stdout and stderr, or an
/// error with both if it fails or outlives `timeout`.
pub fn redis_cli(args: &[&str], timeout: Duration) -> Result<String, String> {
    let out = Command::new("timeout")
        .arg(timeout.as_secs().max(1).to_string())
        .arg("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "redis-cli {} failed ({}):\n{text}",
            args.join(" "),
            out.status
        ))
    }
}
