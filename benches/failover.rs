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

#[path = "failover/client.rs"]
mod client;
#[path = "../tests/common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "failover/json.rs"]
mod json;
#[path = "failover/load.rs"]
mod load;
#[path = "failover/options.rs"]
mod options;
#[path = "failover/report.rs"]
mod report;
#[path = "failover/round.rs"]
mod round;
#[path = "failover/table.rs"]
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::machine::{cpu_model, loadavg, nproc, redis_version};
use common::slotgate::{binary, target_dir};
use json::Meta;
use options::{Options, USAGE};
use report::opt_ms;
use round::round;

/// The shape the failover issue asks for: 3 masters, one replica each.
const MASTERS: usize = 3;
const REPLICAS_PER_MASTER: usize = 1;
/// Node timeout plus an election takes far less than this even on a busy machine; past it the
/// round has failed, not merely been slow.
const PROMOTION_GRACE: Duration = Duration::from_secs(30);
/// A reply the old master sent just before dying can reach the client a little after the kill.
/// No success can come from the shard again until the promotion, at least a node timeout later,
/// so any success this long after the kill came from the new master.
const STALE_REPLY_GRACE_US: u64 = 100_000;

fn main() -> ExitCode {
    common::main("failover", USAGE, Options::parse, bench)
}

fn bench(opts: &Options) -> Result<(), String> {
    let started = Instant::now();
    let bin = binary();
    let target_dir = target_dir(&bin);
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
    let (nproc, cpu, redis) = (nproc(), cpu_model(), redis_version());
    println!(
        "slotgate failover benchmark: {} round(s); {nproc} cores, {cpu}; {redis}; load average \
         {loadavg_start}",
        opts.rounds
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
    print!("{}", table::table(&rounds));
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
        cpu,
        redis,
        loadavg_start,
        loadavg_end,
        elapsed_secs: elapsed,
    };
    common::json::write(&json_path, &json::Report::new(opts, &meta, &rounds))?;
    println!("wrote {}; total {elapsed:.0} s", json_path.display());
    Ok(())
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
