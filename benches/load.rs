//! The load benchmark: a real Redis Cluster driven once directly, by a cluster-aware client, and
//! once through slotgate, workload by workload and round by round, so that machine noise hits
//! both alike and slotgate's cost shows as a ratio. Run it with `scripts/bench-load.sh`.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it only prints how to run it: it
//! starts six Redis nodes and runs for minutes, which no test run should pay for.

#[path = "../tests/common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "load/json.rs"]
mod json;
#[path = "load/report.rs"]
mod report;
#[path = "load/resp.rs"]
mod resp;
#[path = "load/run.rs"]
mod run;
#[path = "load/workload.rs"]
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{Node, RedisCluster};
use common::machine::{cpu_model, git_commit, loadavg, nproc, redis_version};
use common::slotgate::{binary, target_dir, Launch, Slotgate};
use json::Meta;
use report::Row;
use resp::{SlotMap, Target};
use run::Timing;
use workload::KeySpace;

const USAGE: &str =
    "usage: scripts/bench-load.sh [--quick] [--rounds N] [--secs S] [--only NAME,...]
  --quick      1 round of 1 s per target and workload (smoke test, about a minute)
  --rounds N   rounds per workload, each running direct and slotgate once (default 3)
  --secs S     measured seconds per run (default 4), after a warm-up of an eighth of that
  --only LIST  run only these workloads (names as in the table)";

/// Fixed by the performance issue: 3 masters with one replica each, node timeout 5 s.
const MASTERS: usize = 3;
const REPLICAS_PER_MASTER: usize = 1;
const NODE_TIMEOUT_MS: u64 = 5000;

struct Options {
    quick: bool,
    rounds: usize,
    timing: Timing,
    only: Option<Vec<String>>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut quick = false;
        let (mut rounds, mut secs, mut only) = (None, None, None);
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value")).cloned();
            match arg.as_str() {
                "--bench" => {}
                "--quick" => quick = true,
                "--rounds" => rounds = Some(value("--rounds")?),
                "--secs" => secs = Some(value("--secs")?),
                "--only" => only = Some(value("--only")?),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let rounds = match rounds {
            Some(r) => r
                .parse::<usize>()
                .ok()
                .filter(|&r| (1..=100).contains(&r))
                .ok_or("--rounds takes 1 to 100")?,
            None if quick => 1,
            None => 3,
        };
        let secs = match secs {
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|&s| (0.1..=600.0).contains(&s))
                .ok_or("--secs takes 0.1 to 600")?,
            None if quick => 1.0,
            None => 4.0,
        };
        let measure = Duration::from_secs_f64(secs);
        Ok(Options {
            quick,
            rounds,
            timing: Timing {
                warmup: (measure / 8).max(Duration::from_millis(200)),
                measure,
            },
            only: only.map(|o| o.split(',').map(str::to_owned).collect()),
        })
    }
}

fn main() -> ExitCode {
    common::main("load", USAGE, Options::parse, bench)
}

fn bench(opts: &Options) -> Result<(), String> {
    let started = Instant::now();
    let mut meta = Meta {
        commit: git_commit(),
        nproc: nproc(),
        cpu_model: cpu_model(),
        redis: redis_version(),
        clk_tck: common::proc::clock_ticks(),
        quick: opts.quick,
        rounds: opts.rounds,
        warmup_secs: opts.timing.warmup.as_secs_f64(),
        measure_secs: opts.timing.measure.as_secs_f64(),
        loadavg_start: loadavg(),
        loadavg_end: String::new(),
        elapsed_secs: 0.0,
    };
    println!(
        "slotgate load benchmark, commit {}; {} cores, {}; {}; load average {}",
        meta.commit, meta.nproc, meta.cpu_model, meta.redis, meta.loadavg_start
    );
    println!(
        "{} round(s) per workload, each {:.1} s warm-up + {:.1} s measured per target",
        opts.rounds, meta.warmup_secs, meta.measure_secs
    );

    let bin = binary();
    let target_dir = target_dir(&bin);

    let cluster = RedisCluster::start(MASTERS, REPLICAS_PER_MASTER, NODE_TIMEOUT_MS);
    // Taken once: nothing in this bench kills or restarts a node.
    let redis_pids: Vec<u32> = cluster
        .nodes
        .iter()
        .map(Node::pid)
        .collect::<Option<_>>()
        .ok_or("a Redis node has no process right after the cluster started")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let seed: SocketAddr = cluster
        .seed_addr()
        .parse()
        .map_err(|e| format!("seed address: {e}"))?;
    let map = Arc::new(rt.block_on(SlotMap::fetch(seed))?);
    let small = Arc::new(KeySpace::new("small", 100_000, 32, &map));
    let big = Arc::new(KeySpace::new("big", 10_000, 1024, &map));
    let t = Instant::now();
    rt.block_on(async {
        workload::preload(&map, &small).await?;
        workload::preload(&map, &big).await
    })?;
    eprintln!("preloaded 110,000 keys in {:.1?}", t.elapsed());

    let log = target_dir.join("bench-load-slotgate.log");
    // A config file to measure a setting against the defaults (workers, connections per node).
    let config = std::env::var_os("SLOTGATE_BENCH_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let slotgate = Slotgate::start(&Launch {
        bin: &bin,
        seeds: &[cluster.seed_addr()],
        config: config.as_deref(),
        log: &log,
        scratch: None,
    })?;
    let direct = Target::Direct(map.clone());
    let proxied = Target::Slotgate(slotgate.addr);
    rt.block_on(async {
        workload::verify(&direct, &small).await?;
        workload::verify(&proxied, &small).await
    })?;

    let workloads: Vec<_> = workload::all(&small, &big)
        .into_iter()
        .filter(|w| {
            opts.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|n| n == w.name))
        })
        .map(Arc::new)
        .collect();
    if workloads.is_empty() {
        return Err(format!("--only matched no workload\n{USAGE}"));
    }
    let mut rows = Vec::new();
    let mut run_seed = 1;
    for w in &workloads {
        let mut row = Row::new(w.clone());
        for round in 0..opts.rounds {
            // Alternating who goes first cancels any drift within a round.
            let order = if round % 2 == 0 {
                [&direct, &proxied]
            } else {
                [&proxied, &direct]
            };
            run_seed += 1;
            for target in order {
                let is_slotgate = matches!(target, Target::Slotgate(_));
                let probe = is_slotgate.then_some(slotgate.probe);
                // The same seed for both targets: the same keys in the same order.
                let sample = rt
                    .block_on(run::once(
                        w,
                        target,
                        opts.timing,
                        probe,
                        &redis_pids,
                        run_seed,
                    ))
                    .map_err(|e| format!("{} on {}: {e}", w.name, target.name()))?;
                eprintln!(
                    "  {:<13} round {}/{} {:<8} {:>9.0} req/s  p99 {:>7.0} µs  errors {}",
                    w.name,
                    round + 1,
                    opts.rounds,
                    target.name(),
                    sample.tally.requests as f64 / sample.secs,
                    sample.tally.hist.value_at_quantile(0.99) as f64 / 1000.0,
                    sample.tally.errors + sample.idle.errors
                );
                row.add(is_slotgate, sample);
            }
        }
        rows.push(row);
    }
    drop(slotgate);
    drop(cluster);

    meta.loadavg_end = loadavg();
    meta.elapsed_secs = started.elapsed().as_secs_f64();
    println!();
    print!("{}", report::table(&rows, meta.clk_tck));
    println!(
        "\nnoise: {} cores shared by the bench client, slotgate and {} redis-server processes, plus \
         whatever else runs (load average {} at start, {} at end).",
        meta.nproc,
        MASTERS * (1 + REPLICAS_PER_MASTER),
        meta.loadavg_start,
        meta.loadavg_end
    );
    let json_path = target_dir.join("bench-load.json");
    common::json::write(&json_path, &json::Report::new(&meta, &rows))?;
    println!(
        "wrote {}; total {:.0} s",
        json_path.display(),
        meta.elapsed_secs
    );
    Ok(())
}
