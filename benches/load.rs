//! The load benchmark: a real Redis Cluster driven once directly, by a cluster-aware client, and
//! once through slotgate, workload by workload and round by round, so that machine noise hits
//! both alike and slotgate's cost shows as a ratio. Run it with `scripts/bench-load.sh`.
//!
//! An A/B run (SLOTGATE_BENCH_BASELINE naming an older slotgate binary) adds that binary as a
//! third target in every round, so a change and its baseline meet the same noise too, and their
//! ratio is measured in one run rather than across two runs on a machine whose load moves.
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
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{Node, RedisCluster};
use common::machine::{cpu_model, git_commit, loadavg, nproc, redis_version};
use common::slotgate::{binary, target_dir, Launch, Probe, Slotgate};
use json::Meta;
use report::Row;
use resp::{SlotMap, Target};
use run::Timing;
use tokio::runtime::Runtime;
use workload::{KeySpace, Workload};

const USAGE: &str =
    "usage: scripts/bench-load.sh [--quick] [--rounds N] [--secs S] [--only NAME,...]
  --quick      1 round of 1 s per target and workload (smoke test, about a minute)
  --rounds N   rounds per workload, each running every target once (default 3)
  --secs S     measured seconds per run (default 4), after a warm-up of an eighth of that
  --only LIST  run only these workloads (names as in the table)
environment:
  SLOTGATE_BENCH_CONFIG=FILE   run slotgate (and the baseline) with this config file
  SLOTGATE_BENCH_BASELINE=BIN  an A/B run: every round also runs BIN, an older slotgate binary
                               with the same config and flags, as a third target, \"baseline\";
                               the table and JSON add its figures and slotgate/baseline ratios";

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
    let baseline = baseline_binary()?;
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
        baseline: baseline.as_ref().map(|b| b.display().to_string()),
        loadavg_start: loadavg(),
        loadavg_end: String::new(),
        elapsed_secs: 0.0,
    };
    print_header(&meta);

    let bin = binary();
    let target_dir = target_dir(&bin);
    let (cluster, redis_pids) = start_cluster()?;
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

    let proxies = Proxies::start(&bin, baseline.as_deref(), cluster.seed_addr(), &target_dir)?;
    let targets = proxies.targets(&map);
    rt.block_on(async {
        for c in &targets {
            workload::verify(&c.target, &small).await?;
        }
        Ok::<_, String>(())
    })?;
    let workloads = selected(opts, &small, &big)?;
    let mut run_seed = 1;
    let rows = (workloads.iter())
        .map(|w| measure(&rt, w, &targets, opts, &redis_pids, &mut run_seed))
        .collect::<Result<Vec<_>, _>>()?;
    drop(proxies);
    drop(cluster);

    meta.loadavg_end = loadavg();
    meta.elapsed_secs = started.elapsed().as_secs_f64();
    finish(&meta, &rows, &target_dir)
}

fn print_header(meta: &Meta) {
    println!(
        "slotgate load benchmark, commit {}; {} cores, {}; {}; load average {}",
        meta.commit, meta.nproc, meta.cpu_model, meta.redis, meta.loadavg_start
    );
    println!(
        "{} round(s) per workload, each {:.1} s warm-up + {:.1} s measured per target",
        meta.rounds, meta.warmup_secs, meta.measure_secs
    );
    if let Some(b) = &meta.baseline {
        println!("A/B run: every round also runs the baseline {b}");
    }
}

/// A path from the environment; empty counts as unset.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// SLOTGATE_BENCH_BASELINE, checked before a cluster is started for nothing.
fn baseline_binary() -> Result<Option<PathBuf>, String> {
    match env_path("SLOTGATE_BENCH_BASELINE") {
        Some(b) if !b.is_file() => Err(format!(
            "SLOTGATE_BENCH_BASELINE={}: no such file",
            b.display()
        )),
        b => Ok(b),
    }
}

/// The cluster and its nodes' pids, taken once: nothing in this bench kills or restarts a node.
fn start_cluster() -> Result<(RedisCluster, Vec<u32>), String> {
    let cluster = RedisCluster::start(MASTERS, REPLICAS_PER_MASTER, NODE_TIMEOUT_MS);
    let pids = (cluster.nodes.iter())
        .map(Node::pid)
        .collect::<Option<_>>()
        .ok_or("a Redis node has no process right after the cluster started")?;
    Ok((cluster, pids))
}

/// slotgate, and in an A/B run the baseline binary beside it; each is killed on drop.
struct Proxies {
    slotgate: Slotgate,
    baseline: Option<Slotgate>,
}

/// A target, with the process whose CPU and memory the bench reads: none for direct access.
struct Contender {
    target: Target,
    probe: Option<Probe>,
}

impl Proxies {
    /// Both get the same seed, config and flags, so the binary is all that differs.
    fn start(
        bin: &Path,
        baseline: Option<&Path>,
        seed: String,
        target_dir: &Path,
    ) -> Result<Proxies, String> {
        // A config file to measure a setting against the defaults (workers, connections per node).
        let config = env_path("SLOTGATE_BENCH_CONFIG");
        let seeds = [seed];
        let start = |bin: &Path, name: &str| {
            let log = target_dir.join(format!("bench-load-{name}.log"));
            Slotgate::start(&Launch {
                bin,
                seeds: &seeds,
                config: config.as_deref(),
                log: &log,
                scratch: None,
            })
            .map_err(|e| format!("starting {name}: {e}"))
        };
        Ok(Proxies {
            slotgate: start(bin, "slotgate")?,
            baseline: baseline.map(|b| start(b, "baseline")).transpose()?,
        })
    }

    /// Every round's targets, in the order of its first round.
    fn targets(&self, map: &Arc<SlotMap>) -> Vec<Contender> {
        let proxy = |sg: &Slotgate, target: fn(SocketAddr) -> Target| Contender {
            target: target(sg.addr),
            probe: Some(sg.probe),
        };
        let direct = Contender {
            target: Target::Direct(map.clone()),
            probe: None,
        };
        let mut targets = vec![direct, proxy(&self.slotgate, Target::Slotgate)];
        targets.extend((self.baseline.as_ref()).map(|b| proxy(b, Target::Baseline)));
        targets
    }
}

/// The workloads `--only` names, or all.
fn selected(
    opts: &Options,
    small: &Arc<KeySpace>,
    big: &Arc<KeySpace>,
) -> Result<Vec<Arc<Workload>>, String> {
    let workloads: Vec<_> = workload::all(small, big)
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
    Ok(workloads)
}

/// All rounds of one workload, each running every target once.
fn measure(
    rt: &Runtime,
    w: &Arc<Workload>,
    targets: &[Contender],
    opts: &Options,
    redis_pids: &[u32],
    run_seed: &mut u64,
) -> Result<Row, String> {
    let mut row = Row::new(w.clone());
    for round in 0..opts.rounds {
        // Forwards, then backwards: over two rounds a drift within a round hits every pair of
        // targets alike.
        let mut order: Vec<&Contender> = targets.iter().collect();
        if round % 2 == 1 {
            order.reverse();
        }
        *run_seed += 1;
        for c in order {
            // The same seed for every target: the same keys in the same order.
            let sample = rt
                .block_on(run::once(
                    w,
                    &c.target,
                    opts.timing,
                    c.probe,
                    redis_pids,
                    *run_seed,
                ))
                .map_err(|e| format!("{} on {}: {e}", w.name, c.target.name()))?;
            eprintln!(
                "  {:<13} round {}/{} {:<8} {:>9.0} req/s  p99 {:>7.0} µs  errors {}",
                w.name,
                round + 1,
                opts.rounds,
                c.target.name(),
                sample.tally.requests as f64 / sample.secs,
                sample.tally.hist.value_at_quantile(0.99) as f64 / 1000.0,
                sample.tally.errors + sample.idle.errors
            );
            row.add(&c.target, sample);
        }
    }
    Ok(row)
}

/// The table on stdout, and the same figures in bench-load.json.
fn finish(meta: &Meta, rows: &[Row], target_dir: &Path) -> Result<(), String> {
    println!();
    print!("{}", report::table(rows, meta.clk_tck));
    println!(
        "\nnoise: {} cores shared by the bench client, {} and {} redis-server processes, plus \
         whatever else runs (load average {} at start, {} at end).",
        meta.nproc,
        if meta.baseline.is_some() {
            "slotgate, the baseline"
        } else {
            "slotgate"
        },
        MASTERS * (1 + REPLICAS_PER_MASTER),
        meta.loadavg_start,
        meta.loadavg_end
    );
    let json_path = target_dir.join("bench-load.json");
    common::json::write(&json_path, &json::Report::new(meta, rows))?;
    println!(
        "wrote {}; total {:.0} s",
        json_path.display(),
        meta.elapsed_secs
    );
    Ok(())
}
