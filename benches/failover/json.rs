//! The same figures as the table, written to target/bench-failover.json.

use std::fmt::Write as _;

use crate::common::json::quote;
use crate::options::Options;
use crate::report::{Lat, RoundReport};
use crate::{MASTERS, REPLICAS_PER_MASTER};

/// The machine and the run, as far as the numbers depend on them.
pub struct Meta {
    pub nproc: usize,
    pub cpu: String,
    pub redis: String,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub elapsed_secs: f64,
}

pub fn json(opts: &Options, meta: &Meta, rounds: &[RoundReport]) -> String {
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
