//! The run's figures as JSON, hand-written to keep serde_json out of the dependencies.

use std::fmt::Write as _;

use crate::common::json::{num, onum, quote};
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
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub elapsed_secs: f64,
}

pub fn json(meta: &Meta, rows: &[Row]) -> String {
    let mut o = String::from("{\n");
    let _ = writeln!(o, "  \"commit\": {},", quote(&meta.commit));
    let _ = writeln!(
        o,
        "  \"machine\": {{\"nproc\": {}, \"cpu_model\": {}, \"redis\": {}, \"clk_tck\": {}, \
         \"loadavg_start\": {}, \"loadavg_end\": {}}},",
        meta.nproc,
        quote(&meta.cpu_model),
        quote(&meta.redis),
        meta.clk_tck,
        quote(&meta.loadavg_start),
        quote(&meta.loadavg_end)
    );
    let _ = writeln!(
        o,
        "  \"settings\": {{\"quick\": {}, \"rounds\": {}, \"warmup_secs\": {}, \"measure_secs\": {}}},",
        meta.quick,
        meta.rounds,
        num(meta.warmup_secs),
        num(meta.measure_secs)
    );
    let _ = writeln!(o, "  \"elapsed_secs\": {},", num(meta.elapsed_secs));
    o.push_str("  \"workloads\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let w = &r.w;
        let _ = writeln!(
            o,
            "    {{\"name\": {}, \"op\": {}, \"clients\": {}, \"pipeline\": {}, \
             \"idle_connections\": {}, \"value_bytes\": {}, \"ratio\": {}, \"median_round_ratio\": {},",
            quote(w.name),
            quote(w.op.name()),
            w.clients,
            w.pipeline,
            w.idle,
            w.keys.value_len(),
            num(r.ratio()),
            onum(r.median_ratio())
        );
        let _ = writeln!(
            o,
            "     \"goal\": {{\"min_ratio\": {}, \"max_cpu_us_per_req\": {}, \"max_rss_mib\": {}}},",
            onum(w.goal.min_ratio),
            onum(w.goal.max_cpu_us),
            num(w.goal.max_rss_mib)
        );
        let _ = writeln!(
            o,
            "     \"direct\": {},",
            side_json(&r.direct, meta.clk_tck)
        );
        let _ = write!(
            o,
            "     \"slotgate\": {}}}",
            side_json(&r.slotgate, meta.clk_tck)
        );
        o.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    o.push_str("  ]\n}\n");
    o
}

fn side_json(side: &Side, clk_tck: u64) -> String {
    let rounds: Vec<String> = side.round_rps.iter().map(|&r| num(r)).collect();
    let kib = |k: Option<u64>| onum(k.map(|k| k as f64 / MIB));
    format!(
        "{{\"requests\": {}, \"rps\": {}, \"rounds_rps\": [{}], \"p50_us\": {}, \"p99_us\": {}, \
         \"p999_us\": {}, \"max_us\": {}, \"errors\": {}, \"first_error\": {}, \
         \"client_cpu_us_per_req\": {}, \"cpu_us_per_req\": {}, \"cpu_user_us_per_req\": {}, \
         \"cpu_system_us_per_req\": {}, \"redis_cpu_us_per_req\": {}, \
         \"redis_cpu_user_us_per_req\": {}, \"vm_rss_mib\": {}, \
         \"vm_hwm_mib\": {}, \"backend_connections\": {}, \"idle_pings\": {}}}",
        side.tally.requests,
        num(side.rps()),
        rounds.join(", "),
        num(side.quantile_us(0.5)),
        num(side.quantile_us(0.99)),
        num(side.quantile_us(0.999)),
        num(side.tally.hist.max() as f64 / 1000.0),
        side.errors(),
        side.first_error().map_or_else(|| "null".into(), quote),
        onum(side.cpu_us(side.client_ticks, Ticks::total, clk_tck)),
        onum(side.cpu_us(side.proxy_ticks, Ticks::total, clk_tck)),
        onum(side.cpu_us(side.proxy_ticks, |t| t.user, clk_tck)),
        onum(side.cpu_us(side.proxy_ticks, |t| t.system, clk_tck)),
        onum(side.cpu_us(side.cluster_ticks, Ticks::total, clk_tck)),
        onum(side.cpu_us(side.cluster_ticks, |t| t.user, clk_tck)),
        kib(side.rss_kib),
        kib(side.hwm_kib),
        onum(side.backend_conns),
        side.idle.pings
    )
}
