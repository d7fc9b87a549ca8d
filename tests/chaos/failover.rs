//! Unplanned failovers: a master is SIGKILLed, SIGSTOPped past the node timeout, or killed and
//! brought back. Only the failed shard may see errors, it must serve again soon after its
//! replica is promoted, and nothing acknowledged may be lost.

use std::time::{Duration, Instant};

use crate::common::cluster::RedisCluster;
use crate::load::LoadResult;
use crate::report::{describe, errors_off_shard, errors_on_shard, promotion_to_success, Marks};
use crate::run::Run;
use crate::setup::{self, HOLD_TIMEOUT_MS, OP_TIMEOUT_MS, PROMOTION_TIMEOUT, SETTLE};
use crate::verify::Verdict;
use crate::watch::Promotion;

/// "About 1 s" after the promotion, asserted generously for a busy two-core machine.
const SERVE_AGAIN_WITHIN_MS: i128 = 3000;

#[test]
fn sigkill_master() {
    let mut env = setup::start();
    let mut run = Run::start(&env, "kill");
    kill_first_master(&mut env, &mut run);
    std::thread::sleep(Duration::from_secs(2));

    let mut done = run.finish("sigkill_master", &env);
    let v = &mut done.verdict;
    check_other_shards(v, &done.result, &done.marks);
    check_serves_again(v, &done.result, &done.marks);
    done.verdict.done();
}

#[test]
fn sigstop_master() {
    let mut env = setup::start();
    let mut run = Run::start(&env, "stop");
    let (victim, _) = fail_first_master(&mut env, &mut run, "SIGSTOP master", RedisCluster::stop);
    let fault = run.marks.fault.expect("set by fail_first_master");
    let promoted = run.marks.promoted.expect("set by fail_first_master");
    // The old master stays frozen well past the promotion: the shard must serve from its new
    // master without any help from the old one.
    std::thread::sleep(
        (promoted + Duration::from_secs(3)).saturating_duration_since(Instant::now()),
    );
    let cont = run.marks.event("SIGCONT old master");
    env.cluster.cont(victim);
    env.cluster.wait_ok(SETTLE);
    run.marks.event("cluster settled");
    std::thread::sleep(Duration::from_secs(2));

    let mut done = run.finish("sigstop_master", &env);
    let (r, marks, v) = (&done.result, &done.marks, &mut done.verdict);
    check_other_shards(v, r, marks);
    check_serves_again(v, r, marks);
    let victim_errors = errors_on_shard(r, victim);
    let unclear: Vec<_> = victim_errors
        .iter()
        .copied()
        .filter(|e| !e.from_proxy)
        .collect();
    v.check(unclear.is_empty(), || {
        format!(
            "{} requests to the stopped shard got no error reply from the proxy (client \
             timeout or dropped connection):{}",
            unclear.len(),
            describe(&unclear, fault)
        )
    });
    let bound = Duration::from_millis(HOLD_TIMEOUT_MS + OP_TIMEOUT_MS + 2000);
    let slowest = r.max_latency.get(&victim).copied().unwrap_or_default();
    v.check(slowest <= bound, || {
        format!(
            "a request to the stopped shard took {} ms, more than hold + op timeout + 2 s ({} ms)",
            slowest.as_millis(),
            bound.as_millis()
        )
    });
    let served_before_cont =
        crate::report::first_success_after(r, victim, fault).is_some_and(|at| at < cont);
    v.check(served_before_cont, || {
        "the stopped shard served nothing between the fault and SIGCONT, although its replica \
         had been master for 3 s"
            .to_owned()
    });
    v.check(done.ping.failures.is_empty(), || {
        format!("PING through the proxy failed: {:?}", done.ping.failures)
    });
    v.check(done.ping.max_latency < Duration::from_millis(500), || {
        format!(
            "the proxy answered a PING only after {} ms while a master was stopped",
            done.ping.max_latency.as_millis()
        )
    });
    done.verdict.done();
}

#[test]
fn restart_node() {
    let mut env = setup::start();
    let mut run = Run::start(&env, "restart");
    let (victim, replica) = kill_first_master(&mut env, &mut run);
    std::thread::sleep(Duration::from_secs(1));
    let restarted = run.marks.event("old master restarted");
    env.cluster.restart(victim);
    env.cluster.wait_ok(SETTLE);
    run.marks
        .event("cluster settled with the old master as a replica");
    std::thread::sleep(Duration::from_secs(2));

    let rejoined_as_replica = env.cluster.replica_of(replica) == victim;
    let mut done = run.finish("restart_node", &env);
    let (r, marks, v) = (&done.result, &done.marks, &mut done.verdict);
    check_other_shards(v, r, marks);
    check_serves_again(v, r, marks);
    let late: Vec<_> = r.errors.iter().filter(|e| e.at >= restarted).collect();
    v.check(late.is_empty(), || {
        format!(
            "{} errors after the old master came back as a replica, which no request should \
             notice:{}",
            late.len(),
            describe(&late, marks.fault.unwrap_or(restarted))
        )
    });
    v.check(rejoined_as_replica, || {
        format!("the restarted node {victim} did not rejoin as a replica of {replica}")
    });
    done.verdict.done();
}

/// SIGKILLs the first master under load, waits for its replica's promotion and a settled
/// cluster, and returns the killed master's port and its (now promoted) replica's.
fn kill_first_master(env: &mut setup::Env, run: &mut Run) -> (u16, u16) {
    let ports = fail_first_master(env, run, "SIGKILL master", RedisCluster::kill);
    env.cluster.wait_ok(SETTLE);
    run.marks.event("cluster settled");
    ports
}

/// Applies `fault` to the first master under load (after pausing its writes so Redis' own
/// asynchronous replication cannot lose an acknowledged write), marks it, and waits for its
/// replica's promotion. Returns the master's port and the replica's.
fn fail_first_master(
    env: &mut setup::Env,
    run: &mut Run,
    what: &'static str,
    fault: fn(&mut RedisCluster, u16),
) -> (u16, u16) {
    let victim = env.cluster.masters()[0];
    let replica = env.cluster.replica_of(victim);
    let promotion = Promotion::watch(replica);
    run.marks.victim = Some(victim);
    run.marks
        .event("writes paused on the victim, replicas synced");
    setup::quiesce_writes(&env.cluster, victim);
    let at = run.marks.event(what);
    fault(&mut env.cluster, victim);
    run.marks.fault = Some(at);
    run.marks.outage_from = Some(at);
    run.marks.promoted = Some(promotion.wait(PROMOTION_TIMEOUT));
    (victim, replica)
}

/// Shards other than the victim must never see an error.
fn check_other_shards(v: &mut Verdict, r: &LoadResult, marks: &Marks) {
    let others = errors_off_shard(r, marks.victim);
    v.check(others.is_empty(), || {
        format!(
            "{} errors on shards other than the failed one ({:?}):{}",
            others.len(),
            marks.victim,
            describe(&others, marks.fault.unwrap_or(r.started))
        )
    });
}

/// The failed shard serves again soon after its replica is promoted.
fn check_serves_again(v: &mut Verdict, r: &LoadResult, marks: &Marks) {
    let window = promotion_to_success(r, marks);
    v.check(window.is_some_and(|w| w < SERVE_AGAIN_WITHIN_MS), || {
        format!(
            "shard {:?} served its first request {} after the promotion, not within {} ms",
            marks.victim,
            window.map_or("never".to_owned(), |w| format!("{w} ms")),
            SERVE_AGAIN_WITHIN_MS
        )
    });
}
