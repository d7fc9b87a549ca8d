//! A client's pipelined writes to one key must run in the order it sent them even when they are
//! held and sent again: here its slot has no owner for a moment, so every request for it is
//! held, and all are released at once when the slot is assigned again.

use std::time::Duration;

use slotgate::cluster::Slot;

use crate::setup::{self, SETTLE};

#[test]
fn pipelined_writes_held_together_run_in_order() {
    let env = setup::start();
    let key = "order:key";
    let slot = Slot::for_key(key.as_bytes()).get().to_string();
    let owner = env
        .cluster
        .master_of_slot(Slot::for_key(key.as_bytes()).get());
    let mut c = env.proxy.client();
    let () = redis::cmd("SET").arg(key).arg(0).query(&mut c).unwrap();

    for port in env.cluster.ports() {
        env.cluster.cli(port, &["CLUSTER", "DELSLOTS", &slot]);
    }
    // Let a periodic refresh (1 s here) learn that the slot has no owner: the requests then wait
    // in the router's hold, all at once, rather than one by one at the head of the client's queue.
    std::thread::sleep(Duration::from_millis(1500));
    let writes = 40;
    let client = std::thread::spawn(move || {
        let mut pipe = redis::pipe();
        for i in 1..=writes {
            pipe.cmd("SET").arg(key).arg(i);
        }
        pipe.cmd("GET").arg(key);
        pipe.query::<Vec<redis::Value>>(&mut c)
    });
    // Long enough for every request to be read and held, well inside the hold timeout.
    std::thread::sleep(Duration::from_millis(700));
    env.cluster.cli(owner, &["CLUSTER", "ADDSLOTS", &slot]);

    let replies = client.join().unwrap().expect("held requests are answered");
    assert_eq!(replies.len(), writes + 1);
    for (i, r) in replies[..writes].iter().enumerate() {
        assert_eq!(*r, redis::Value::Okay, "SET #{}", i + 1);
    }
    let last = redis::Value::BulkString(writes.to_string().into_bytes());
    assert_eq!(replies[writes], last, "GET after the writes");
    env.cluster.wait_ok(SETTLE);
    assert_eq!(
        env.cluster.cli(owner, &["GET", key]),
        writes.to_string(),
        "the last write is the one that stays"
    );
}
