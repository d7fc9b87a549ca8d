//! One round: a fresh cluster, slotgate in front of it, steady load, one master killed, and the
//! wait for its replica's promotion and the shard's recovery.

use std::collections::BTreeMap;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use redis::Value;
use slotgate::cluster::SLOT_COUNT;

use crate::cluster::RedisCluster;
use crate::common::metrics::{http_get, in_family, samples};
use crate::common::slotgate::{Launch, Slotgate};
use crate::load::Load;
use crate::options::Options;
use crate::report::RoundReport;
use crate::{MASTERS, PROMOTION_GRACE, REPLICAS_PER_MASTER, STALE_REPLY_GRACE_US};

/// The issue asks for the promotion to be timestamped at this resolution.
const ROLE_POLL: Duration = Duration::from_millis(20);

/// One fresh cluster, one slotgate, one kill. Drop order does the cleanup on every exit path:
/// the load stops first, then slotgate, then the cluster.
pub fn round(
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
    let slotgate = Slotgate::start(&Launch {
        bin,
        // Every node, as an operator would list them: the first may be the one that dies.
        seeds: &cluster.addrs(),
        config: Some(config),
        log,
        // The config's directory, which `TempDir` cannot remove when the bench is killed.
        scratch: config.parent(),
    })?;

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
    let metrics = http_get(slotgate.probe.metrics, "/metrics")
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
    samples(body)
        .filter(|(series, _)| FAMILIES.iter().any(|f| in_family(series, f)))
        .map(|(series, v)| (series.to_owned(), v))
        .collect()
}
