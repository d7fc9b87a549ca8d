//! A master that hangs without being replaced (a stall shorter than a failover): the proxy's only
//! timeout for sent requests is its connection's hung-node check. A request that is not safe to
//! repeat must get the documented timeout error after about one operation timeout, not sooner and
//! not never; a read sent at the same moment is held and answered once the node wakes.

use std::time::{Duration, Instant};

use slotgate::cluster::Slot;

use crate::setup::{self, OP_TIMEOUT_MS, SETTLE};

#[test]
fn hung_master_times_out_unsafe_requests_and_holds_reads() {
    let mut env = setup::start();
    let victim = env.cluster.masters()[0];
    let key = (0..)
        .map(|i| format!("hung:{i}"))
        .find(|k| {
            env.cluster
                .master_of_slot(Slot::for_key(k.as_bytes()).get())
                == victim
        })
        .expect("some key lives on every master");
    let mut writer = env.proxy.client();
    let mut reader = env.proxy.client();
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .query(&mut writer)
        .unwrap();

    env.cluster.stop(victim);
    let stopped = Instant::now();
    let read = std::thread::spawn({
        let key = key.clone();
        move || {
            let r: redis::RedisResult<String> = redis::cmd("GET").arg(&key).query(&mut reader);
            (r, stopped.elapsed())
        }
    });
    let incr: redis::RedisResult<i64> = redis::cmd("INCR").arg(&key).query(&mut writer);
    let waited = stopped.elapsed();
    env.cluster.cont(victim);

    let err = incr.expect_err("INCR to a hung master cannot succeed");
    let expected = format!("timed out after {OP_TIMEOUT_MS} ms");
    assert!(
        err.to_string().contains(&expected),
        "INCR error {err:?} should say {expected:?}"
    );
    let op = Duration::from_millis(OP_TIMEOUT_MS);
    // The check runs a few times per timeout: never before a full timeout, and at most a couple of
    // check periods after it; the rest of the bound is slack for a busy two-core machine.
    assert!(
        waited >= op,
        "gave up after {waited:?}, before the {op:?} timeout"
    );
    assert!(waited < op * 3, "took {waited:?} to notice a hung node");

    let (got, read_took) = read.join().unwrap();
    // INCR was written before the node stopped reading, so it may have run once the node woke:
    // its outcome is unknown, which is exactly what the error says.
    let value = got.expect("a GET is safe to repeat and is held until the node answers");
    assert!(value == "1" || value == "2", "GET returned {value:?}");
    assert!(
        read_took >= waited,
        "the GET was answered while the node was stopped"
    );
    env.cluster.wait_ok(SETTLE);
}
