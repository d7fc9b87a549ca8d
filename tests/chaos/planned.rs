//! Planned changes under load: a manual failover, a bulk reshard, and a new master taking its
//! share of slots. Redis loses nothing in any of them and answers every request with a value or a
//! redirection, so through the proxy clients must see no error at all.

use std::time::{Duration, Instant};

use redis::Value;

use crate::extra_node::ExtraNode;
use crate::load::LoadResult;
use crate::report::{describe, Marks};
use crate::run::Run;
use crate::setup::{
    self, node_cmd, redis_cli, slot_owners, text, NODE_TIMEOUT_MS, PROMOTION_TIMEOUT, SETTLE,
};
use crate::verify::Verdict;
use crate::watch::Promotion;

/// `redis-cli --cluster reshard/rebalance` of thousands of slots on a busy machine.
const CLI_TIMEOUT: Duration = Duration::from_secs(180);
const RESHARD_SLOTS: usize = 2000;

#[test]
fn manual_failover() {
    let env = setup::start();
    let old_master = env.cluster.masters()[0];
    let replica = env.cluster.replica_of(old_master);
    let mut run = Run::start(&env, "manual");
    let promotion = Promotion::watch(replica);

    run.marks.victim = Some(old_master);
    run.marks.fault = Some(run.marks.event("CLUSTER FAILOVER on the replica"));
    let reply = node_cmd(replica, &["CLUSTER", "FAILOVER"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply, Value::Okay, "CLUSTER FAILOVER on {replica}");
    run.marks.promoted = Some(promotion.wait(PROMOTION_TIMEOUT));
    env.cluster.wait_ok(SETTLE);
    run.marks.event("cluster settled");
    std::thread::sleep(Duration::from_secs(2));

    let mut done = run.finish("manual_failover", &env);
    check_no_errors(&mut done.verdict, &done.result, &done.marks);
    done.verdict.done();
}

#[test]
fn reshard_thousands_of_slots() {
    let env = setup::start();
    let masters = env.cluster.masters();
    let (from, to) = (masters[0], masters[1]);
    let (from_id, to_id) = (
        env.cluster.node(from).id.clone(),
        env.cluster.node(to).id.clone(),
    );
    let owned_before = owned_by(&slot_owners(from), to);
    let mut run = Run::start(&env, "reshard");

    run.marks.fault = Some(run.marks.event("reshard started"));
    let entry = env.cluster.node(from).addr();
    let slots = RESHARD_SLOTS.to_string();
    let out = redis_cli(
        &[
            "--cluster",
            "reshard",
            &entry,
            "--cluster-from",
            &from_id,
            "--cluster-to",
            &to_id,
            "--cluster-slots",
            &slots,
            "--cluster-yes",
        ],
        CLI_TIMEOUT,
    );
    run.marks.event("reshard finished");
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    env.cluster.wait_ok(SETTLE);
    run.marks.event("cluster settled");
    std::thread::sleep(Duration::from_secs(1));

    let owned_after = owned_by(&slot_owners(from), to);
    let mut done = run.finish("reshard_thousands_of_slots", &env);
    check_no_errors(&mut done.verdict, &done.result, &done.marks);
    done.verdict
        .check(owned_after == owned_before + RESHARD_SLOTS, || {
            format!(
                "{to} owned {owned_before} slots before and {owned_after} after moving \
             {RESHARD_SLOTS}; redis-cli said:\n{}",
                tail(&out)
            )
        });
    done.verdict.done();
}

#[test]
fn add_master_and_rebalance() {
    let env = setup::start();
    let extra = ExtraNode::start(NODE_TIMEOUT_MS);
    let entry = env.cluster.seed_addr();
    let mut run = Run::start(&env, "rebalance");

    run.marks.event("add-node");
    redis_cli(
        &["--cluster", "add-node", &extra.addr(), &entry],
        CLI_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut ports = env.cluster.ports();
    ports.push(extra.port);
    wait_agreed(&entry, &ports);
    run.marks.fault = Some(run.marks.event("rebalance started"));
    let out = redis_cli(
        &[
            "--cluster",
            "rebalance",
            &entry,
            "--cluster-use-empty-masters",
        ],
        CLI_TIMEOUT,
    );
    run.marks.event("rebalance finished");
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    wait_agreed(&entry, &ports);
    run.marks.event("cluster settled");
    std::thread::sleep(Duration::from_secs(2));

    let owned = owned_by(&slot_owners(extra.port), extra.port);
    let mut done = run.finish("add_master_and_rebalance", &env);
    let (sets, gets, keys) = (
        extra.command_calls("set"),
        extra.command_calls("get"),
        extra.dbsize(),
    );
    println!(
        "  new master {}: {owned} slots, {keys} keys, {sets} SET and {gets} GET calls",
        extra.port
    );
    check_no_errors(&mut done.verdict, &done.result, &done.marks);
    done.verdict.check(owned > 0, || {
        format!(
            "the new master {} owns no slot after rebalance; redis-cli said:\n{}",
            extra.port,
            tail(&out)
        )
    });
    done.verdict.check(keys > 0 && sets > 0 && gets > 0, || {
        format!(
            "the new master got no traffic through the proxy: {keys} keys, {sets} SET and \
             {gets} GET calls"
        )
    });
    done.verdict.done();
}

/// A planned change must be invisible to clients.
fn check_no_errors(v: &mut Verdict, r: &LoadResult, marks: &Marks) {
    let all: Vec<_> = r.errors.iter().collect();
    v.check(all.is_empty(), || {
        format!(
            "{} client errors during a planned change:{}",
            all.len(),
            describe(&all, marks.fault.unwrap_or(r.started))
        )
    });
}

fn owned_by(owners: &[u16], port: u16) -> usize {
    owners.iter().filter(|&&p| p == port).count()
}

/// Waits until every node is `cluster_state:ok` and knows all of `ports`, and `redis-cli --cluster check` finds the nodes
/// agreeing on the slot map with every slot covered. The harness's `wait_ok` only knows the
/// nodes it started.
fn wait_agreed(entry: &str, ports: &[u16]) {
    let deadline = Instant::now() + SETTLE;
    let mut last = String::new();
    while Instant::now() < deadline {
        // A MIGRATE target whose own state is not yet ok refuses the keys with CLUSTERDOWN,
        // and a fresh master waits a little before it turns ok.
        let known = ports.iter().all(|&p| {
            node_cmd(p, &["CLUSTER", "INFO"]).is_ok_and(|info| {
                let info = text(&info);
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", ports.len()))
            })
        });
        if known {
            match redis_cli(&["--cluster", "check", entry], Duration::from_secs(30)) {
                Ok(out)
                    if out.contains("[OK] All nodes agree")
                        && out.contains("[OK] All 16384 slots covered")
                        && !out.contains("[ERR]")
                        && !out.contains("[WARNING]") =>
                {
                    return
                }
                Ok(out) | Err(out) => last = out,
            }
        } else {
            last = "not every node is ok and knows every other yet".to_owned();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the cluster of {ports:?} did not settle within {SETTLE:?}:\n{}",
        tail(&last)
    );
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
