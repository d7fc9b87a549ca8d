//! The run's figures as JSON: the shape of target/bench-load.json. Scripts read it by these
//! field names, so they stay put.

use serde::Serialize;

use crate::common::json::round;
use crate::common::proc::Ticks;
use crate::report::{Row, Side, MIB};

/// Facts about the run that the numbers depend on.
pub struct Meta {
    pub commit: String,
    pub nproc: usize,
    pub cpu_model: String,
    pub redis: String,
    pub clk_tck: u64,
    pub quick: bool,
    pub rounds: usize,
    pub warmup_secs: f64,
    pub measure_secs: f64,
    /// The older binary of an A/B run, as given in SLOTGATE_BENCH_BASELINE.
    pub baseline: Option<String>,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub elapsed_secs: f64,
}

#[derive(Serialize)]
pub struct Report<'a> {
    commit: &'a str,
    machine: Machine<'a>,
    settings: Settings<'a>,
    elapsed_secs: f64,
    workloads: Vec<WorkloadJson<'a>>,
}

#[derive(Serialize)]
struct Machine<'a> {
    nproc: usize,
    cpu_model: &'a str,
    redis: &'a str,
    clk_tck: u64,
    loadavg_start: &'a str,
    loadavg_end: &'a str,
}

/// The A/B fields are left out without a baseline, so such a file reads as before.
#[derive(Serialize)]
struct Settings<'a> {
    quick: bool,
    rounds: usize,
    warmup_secs: f64,
    measure_secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<&'a str>,
}

#[derive(Serialize)]
struct WorkloadJson<'a> {
    name: &'a str,
    op: &'a str,
    clients: usize,
    pipeline: usize,
    idle_connections: usize,
    value_bytes: usize,
    ratio: f64,
    median_round_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vs_baseline: Option<VsBaseline>,
    goal: GoalJson,
    direct: SideJson<'a>,
    slotgate: SideJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<SideJson<'a>>,
}

/// slotgate's throughput over the baseline's, as `ratio` and `median_round_ratio` are over
/// direct access's.
#[derive(Serialize)]
struct VsBaseline {
    ratio: f64,
    median_round_ratio: Option<f64>,
}

#[derive(Serialize)]
struct GoalJson {
    min_ratio: Option<f64>,
    max_cpu_us_per_req: Option<f64>,
    max_rss_mib: f64,
}

#[derive(Serialize)]
struct SideJson<'a> {
    requests: u64,
    rps: f64,
    rounds_rps: Vec<f64>,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    errors: u64,
    first_error: Option<&'a str>,
    client_cpu_us_per_req: Option<f64>,
    cpu_us_per_req: Option<f64>,
    cpu_user_us_per_req: Option<f64>,
    cpu_system_us_per_req: Option<f64>,
    redis_cpu_us_per_req: Option<f64>,
    redis_cpu_user_us_per_req: Option<f64>,
    vm_rss_mib: Option<f64>,
    vm_hwm_mib: Option<f64>,
    backend_connections: Option<f64>,
    idle_pings: u64,
}

/// Three decimals are more than any of these figures can vouch for.
fn r3(v: f64) -> f64 {
    round(v, 3)
}

impl<'a> Report<'a> {
    pub fn new(meta: &'a Meta, rows: &'a [Row]) -> Report<'a> {
        Report {
            commit: &meta.commit,
            machine: Machine {
                nproc: meta.nproc,
                cpu_model: &meta.cpu_model,
                redis: &meta.redis,
                clk_tck: meta.clk_tck,
                loadavg_start: &meta.loadavg_start,
                loadavg_end: &meta.loadavg_end,
            },
            settings: Settings {
                quick: meta.quick,
                rounds: meta.rounds,
                warmup_secs: r3(meta.warmup_secs),
                measure_secs: r3(meta.measure_secs),
                baseline: meta.baseline.as_deref(),
            },
            elapsed_secs: r3(meta.elapsed_secs),
            workloads: rows
                .iter()
                .map(|r| WorkloadJson::new(r, meta.clk_tck))
                .collect(),
        }
    }
}

impl<'a> WorkloadJson<'a> {
    fn new(r: &'a Row, clk_tck: u64) -> WorkloadJson<'a> {
        let w = &r.w;
        WorkloadJson {
            name: w.name,
            op: w.op.name(),
            clients: w.clients,
            pipeline: w.pipeline,
            idle_connections: w.idle,
            value_bytes: w.keys.value_len(),
            ratio: r3(r.ratio()),
            median_round_ratio: r.median_ratio().map(r3),
            vs_baseline: r.baseline_ratio().map(|ratio| VsBaseline {
                ratio: r3(ratio),
                median_round_ratio: r.median_baseline_ratio().map(r3),
            }),
            goal: GoalJson {
                min_ratio: w.goal.min_ratio.map(r3),
                max_cpu_us_per_req: w.goal.max_cpu_us.map(r3),
                max_rss_mib: r3(w.goal.max_rss_mib),
            },
            direct: SideJson::new(&r.direct, clk_tck),
            slotgate: SideJson::new(&r.slotgate, clk_tck),
            baseline: (r.baseline.as_ref()).map(|b| SideJson::new(b, clk_tck)),
        }
    }
}

impl<'a> SideJson<'a> {
    fn new(side: &'a Side, clk_tck: u64) -> SideJson<'a> {
        let cpu = |ticks, part: fn(Ticks) -> u64| side.cpu_us(ticks, part, clk_tck).map(r3);
        let mib = |k: Option<u64>| k.map(|k| r3(k as f64 / MIB));
        SideJson {
            requests: side.tally.requests,
            rps: r3(side.rps()),
            rounds_rps: side.round_rps.iter().copied().map(r3).collect(),
            p50_us: r3(side.quantile_us(0.5)),
            p99_us: r3(side.quantile_us(0.99)),
            p999_us: r3(side.quantile_us(0.999)),
            max_us: r3(side.tally.hist.max() as f64 / 1000.0),
            errors: side.errors(),
            first_error: side.first_error(),
            client_cpu_us_per_req: cpu(side.client_ticks, Ticks::total),
            cpu_us_per_req: cpu(side.proxy_ticks, Ticks::total),
            cpu_user_us_per_req: cpu(side.proxy_ticks, |t| t.user),
            cpu_system_us_per_req: cpu(side.proxy_ticks, |t| t.system),
            redis_cpu_us_per_req: cpu(side.cluster_ticks, Ticks::total),
            redis_cpu_user_us_per_req: cpu(side.cluster_ticks, |t| t.user),
            vm_rss_mib: mib(side.rss_kib),
            vm_hwm_mib: mib(side.hwm_kib),
            backend_connections: side.backend_conns.map(r3),
            idle_pings: side.idle.pings,
        }
    }
}
