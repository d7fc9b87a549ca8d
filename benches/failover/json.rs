//! The same figures as the table: the shape of target/bench-failover.json. Scripts read it by
//! these field names, so they stay put.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::common::json::round;
use crate::options::Options;
use crate::report::{Lat, RoundReport, ShardErrors};
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

#[derive(Serialize)]
pub struct Report<'a> {
    nproc: usize,
    cpu: &'a str,
    redis: &'a str,
    loadavg_start: &'a str,
    loadavg_end: &'a str,
    elapsed_secs: f64,
    masters: usize,
    replicas_per_master: usize,
    node_timeout_ms: u64,
    clients: usize,
    rate: f64,
    warmup_secs: f64,
    after_secs: f64,
    hold_timeout_ms: u64,
    rounds: Vec<RoundJson<'a>>,
}

#[derive(Serialize)]
struct RoundJson<'a> {
    round: usize,
    killed_master: u16,
    promoted_replica: u16,
    requests: u64,
    load_secs: f64,
    errors: u64,
    errors_before_kill: u64,
    kill_to_promotion_ms: i64,
    promotion_to_first_success_ms: Option<i64>,
    kill_to_last_error_ms: Option<i64>,
    other_shards_before_kill: Lat,
    other_shards_in_window: Lat,
    other_slowest_sent_from_kill_ms: Option<i64>,
    other_shards_in_window_corrected: Lat,
    held_on_killed_shard: Lat,
    held_on_killed_shard_corrected: Lat,
    held_errors: u64,
    shards: Vec<ShardJson<'a>>,
    slotgate_metrics: &'a BTreeMap<String, f64>,
}

#[derive(Serialize)]
struct ShardJson<'a> {
    port: u16,
    killed: bool,
    requests: u64,
    errors: u64,
    error_texts: Vec<ErrorText<'a>>,
}

#[derive(Serialize)]
struct ErrorText<'a> {
    text: &'a str,
    count: u64,
}

impl<'a> Report<'a> {
    pub fn new(opts: &Options, meta: &'a Meta, rounds: &'a [RoundReport]) -> Report<'a> {
        Report {
            nproc: meta.nproc,
            cpu: &meta.cpu,
            redis: &meta.redis,
            loadavg_start: &meta.loadavg_start,
            loadavg_end: &meta.loadavg_end,
            elapsed_secs: round(meta.elapsed_secs, 1),
            masters: MASTERS,
            replicas_per_master: REPLICAS_PER_MASTER,
            node_timeout_ms: opts.node_timeout_ms,
            clients: opts.clients,
            rate: opts.rate,
            warmup_secs: opts.warmup.as_secs_f64(),
            after_secs: opts.after.as_secs_f64(),
            hold_timeout_ms: opts.hold_timeout_ms,
            rounds: rounds.iter().map(RoundJson::new).collect(),
        }
    }
}

impl<'a> RoundJson<'a> {
    fn new(r: &'a RoundReport) -> RoundJson<'a> {
        RoundJson {
            round: r.n,
            killed_master: r.victim,
            promoted_replica: r.replica,
            requests: r.requests,
            load_secs: round(r.load_secs, 3),
            errors: r.errors_total(),
            errors_before_kill: r.errors_before_kill,
            kill_to_promotion_ms: r.kill_to_promotion_ms(),
            promotion_to_first_success_ms: r.promotion_to_success_ms(),
            kill_to_last_error_ms: r.kill_to_last_error_ms(),
            other_shards_before_kill: r.baseline_others,
            other_shards_in_window: r.window_others,
            other_slowest_sent_from_kill_ms: r.slowest_other_sent_ms,
            other_shards_in_window_corrected: r.window_others_corrected,
            held_on_killed_shard: r.held,
            held_on_killed_shard_corrected: r.held_corrected,
            held_errors: r.held_errors,
            shards: r
                .shards
                .iter()
                .map(|s| ShardJson::new(s, r.victim))
                .collect(),
            slotgate_metrics: &r.metrics,
        }
    }
}

impl<'a> ShardJson<'a> {
    fn new(s: &'a ShardErrors, victim: u16) -> ShardJson<'a> {
        ShardJson {
            port: s.port,
            killed: s.port == victim,
            requests: s.requests,
            errors: s.errors,
            error_texts: (s.texts.iter())
                .map(|(text, count)| ErrorText {
                    text,
                    count: *count,
                })
                .collect(),
        }
    }
}
