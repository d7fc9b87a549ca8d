//! MULTI/EXEC/DISCARD/WATCH through slotgate, for keys of one slot (hash tags), as on one Redis
//! server: each client's transaction runs on a connection of its own.

use std::time::Duration;

use redis::Value;

use crate::common::proxy::Proxy;
use crate::{env, q, q_err};

/// A proxy of the test's own in front of the shared cluster, for counting its connections.
pub fn own_proxy(tweak: impl FnOnce(&mut slotgate::config::Config)) -> Proxy {
    Proxy::start(vec![env().cluster.seed_addr()], tweak)
}

fn ok() -> Value {
    Value::Okay
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn queued() -> Value {
    Value::SimpleString("QUEUED".into())
}

#[test]
fn a_transaction_runs_its_commands_in_order() {
    let mut c = env().proxy.client();
    assert_eq!(q(&mut c, &["MULTI"]), ok());
    assert_eq!(q(&mut c, &["SET", "{tx1}a", "1"]), queued());
    assert_eq!(q(&mut c, &["INCR", "{tx1}a"]), queued());
    assert_eq!(q(&mut c, &["GET", "{tx1}a"]), queued());
    assert_eq!(
        q(&mut c, &["EXEC"]),
        Value::Array(vec![ok(), Value::Int(2), bulk("2")])
    );
    // Without keys it runs anywhere.
    assert_eq!(q(&mut c, &["MULTI"]), ok());
    assert_eq!(q(&mut c, &["PING"]), queued());
    assert_eq!(
        q(&mut c, &["EXEC"]),
        Value::Array(vec![Value::SimpleString("PONG".into())])
    );
}

#[test]
fn watch_then_a_change_by_another_client_aborts_exec() {
    let mut c = env().proxy.client();
    let mut other = env().proxy.client();
    q(&mut c, &["SET", "{tx2}w", "0"]);
    assert_eq!(q(&mut c, &["WATCH", "{tx2}w"]), ok());
    assert_eq!(q(&mut other, &["SET", "{tx2}w", "theirs"]), ok());
    q(&mut c, &["MULTI"]);
    q(&mut c, &["SET", "{tx2}w", "mine"]);
    assert_eq!(q(&mut c, &["EXEC"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "{tx2}w"]), bulk("theirs"));
    // Unchanged, it runs.
    assert_eq!(q(&mut c, &["WATCH", "{tx2}w"]), ok());
    q(&mut c, &["MULTI"]);
    q(&mut c, &["SET", "{tx2}w", "mine"]);
    assert_eq!(q(&mut c, &["EXEC"]), Value::Array(vec![ok()]));
    assert_eq!(q(&mut c, &["GET", "{tx2}w"]), bulk("mine"));
}

#[test]
fn a_queued_error_makes_exec_abort() {
    let mut c = env().proxy.client();
    q(&mut c, &["MULTI"]);
    q(&mut c, &["SET", "{tx3}a", "1"]);
    let e = q_err(&mut c, &["GET"]);
    assert!(e.contains("wrong number of arguments"), "{e}");
    let e = q_err(&mut c, &["EXEC"]);
    assert!(e.contains("Transaction discarded"), "{e}");
    assert_eq!(q(&mut c, &["GET", "{tx3}a"]), Value::Nil);
}

#[test]
fn another_slot_inside_multi_is_crossslot_and_aborts() {
    let mut c = env().proxy.client();
    q(&mut c, &["MULTI"]);
    q(&mut c, &["SET", "{tx4}a", "1"]);
    let e = q_err(&mut c, &["SET", "{tx4x}b", "1"]);
    assert!(e.contains("hash to the same slot"), "{e}");
    let e = q_err(&mut c, &["EXEC"]);
    assert!(e.contains("Transaction discarded"), "{e}");
    assert_eq!(q(&mut c, &["GET", "{tx4}a"]), Value::Nil);
    let e = q_err(&mut c, &["WATCH", "{tx4}a", "{tx4x}b"]);
    assert!(e.contains("hash to the same slot"), "{e}");
}

#[test]
fn discard_drops_the_queue_and_the_errors_match_redis() {
    let mut c = env().proxy.client();
    q(&mut c, &["MULTI"]);
    q(&mut c, &["SET", "{tx5}d", "1"]);
    assert_eq!(q(&mut c, &["DISCARD"]), ok());
    assert_eq!(q(&mut c, &["GET", "{tx5}d"]), Value::Nil);
    assert!(q_err(&mut c, &["EXEC"]).contains("EXEC without MULTI"));
    assert!(q_err(&mut c, &["DISCARD"]).contains("DISCARD without MULTI"));
    q(&mut c, &["MULTI"]);
    assert!(q_err(&mut c, &["MULTI"]).contains("MULTI calls can not be nested"));
    assert!(q_err(&mut c, &["WATCH", "{tx5}d"]).contains("WATCH inside MULTI is not allowed"));
    assert_eq!(q(&mut c, &["DISCARD"]), ok());
}

/// An optimistic-locking counter: 20 clients each add 1 twenty times with WATCH/GET/MULTI/SET/
/// EXEC, retrying when EXEC says another client got there first. The count must be exact, and
/// every reserved connection closed afterwards.
#[test]
fn twenty_clients_count_exactly_with_watch() {
    let proxy = own_proxy(|_| {});
    let proxy = &proxy;
    q(&mut proxy.client(), &["SET", "{tx6}n", "0"]);
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let client = proxy.client();
            std::thread::spawn(move || {
                let mut c = client;
                for _ in 0..20 {
                    loop {
                        q(&mut c, &["WATCH", "{tx6}n"]);
                        let n: i64 = redis::cmd("GET").arg("{tx6}n").query(&mut c).unwrap();
                        q(&mut c, &["MULTI"]);
                        q(&mut c, &["SET", "{tx6}n", &(n + 1).to_string()]);
                        if q(&mut c, &["EXEC"]) != Value::Nil {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(q(&mut proxy.client(), &["GET", "{tx6}n"]), bulk("400"));
    proxy.wait_metric(
        "slotgate_dedicated_connections",
        0.0,
        Duration::from_secs(10),
    );
}

#[test]
fn reset_and_disconnect_close_the_reserved_connection() {
    let proxy = own_proxy(|_| {});
    let mut c = proxy.client();
    q(&mut c, &["WATCH", "{tx7}a"]);
    q(&mut c, &["MULTI"]);
    q(&mut c, &["SET", "{tx7}a", "1"]);
    assert_eq!(q(&mut c, &["RESET"]), Value::SimpleString("RESET".into()));
    assert!(q_err(&mut c, &["EXEC"]).contains("EXEC without MULTI"));
    assert_eq!(q(&mut c, &["GET", "{tx7}a"]), Value::Nil);
    q(&mut c, &["WATCH", "{tx7}a"]);
    assert_eq!(proxy.metric("slotgate_dedicated_connections"), Some(1.0));
    drop(c);
    proxy.wait_metric(
        "slotgate_dedicated_connections",
        0.0,
        Duration::from_secs(10),
    );
}

/// WATCH binds a transaction to its slot's master. Here the slot then moves to another master
/// (IMPORTING/MIGRATING, MIGRATE of its keys, SETSLOT NODE on every master) before MULTI, SET and
/// EXEC: the old master refuses the queued SET with MOVED, so EXEC must fail with `EXECABORT
/// Transaction discarded because slot S moved to ADDR; nothing ran` naming the new owner, the SET
/// must not have run (GET through slotgate still reads the old value, from the new owner), and a
/// new WATCH/MULTI/EXEC must then run on the new owner. The slot moves back at the end, and a
/// transaction must run there too (slotgate may still route the slot to the other master then,
/// so that WATCH can meet MOVED on its fresh connection). `{tx8}` hashes to a slot (12899) that
/// no other e2e test's keys use, so no other test sees it move.
#[test]
fn a_slot_moved_after_watch_aborts_exec_and_nothing_runs() {
    let cluster = &env().cluster;
    let key = "{tx8}w";
    let (slot, from, to) = slot_and_masters(key);
    let mut c = env().proxy.client();
    assert_eq!(q(&mut c, &["SET", key, "old"]), ok());
    assert_eq!(q(&mut c, &["WATCH", key]), ok());

    move_slot(slot, from, to);
    assert_eq!(q(&mut c, &["MULTI"]), ok());
    assert_eq!(q(&mut c, &["SET", key, "new"]), queued());
    let err = redis::cmd("EXEC")
        .query::<Value>(&mut c)
        .expect_err("EXEC after the watched slot moved");
    let moved =
        format!("Transaction discarded because slot {slot} moved to 127.0.0.1:{to}; nothing ran");
    assert_eq!(err.code(), Some("EXECABORT"), "{err}");
    assert_eq!(err.detail(), Some(moved.as_str()), "{err}");
    assert_eq!(q(&mut c, &["GET", key]), bulk("old"));
    assert_eq!(cluster.cli(to, &["GET", key]), "old", "the key moved along");

    let watched_set = |c: &mut redis::Connection, value: &str| {
        assert_eq!(q(c, &["WATCH", key]), ok());
        assert_eq!(q(c, &["MULTI"]), ok());
        assert_eq!(q(c, &["SET", key, value]), queued());
        assert_eq!(q(c, &["EXEC"]), Value::Array(vec![ok()]));
        assert_eq!(q(c, &["GET", key]), bulk(value));
    };
    watched_set(&mut c, "new");
    assert_eq!(cluster.cli(to, &["GET", key]), "new");

    move_slot(slot, to, from);
    watched_set(&mut c, "back");
    assert_eq!(cluster.cli(from, &["GET", key]), "back");
}

/// A transaction's first WATCH must stay in force when a later WATCH of the same transaction is
/// refused. Here `{tx9}a` is watched, then its slot starts migrating and `{tx9}b` (already moved)
/// is watched too: the old master answers ASK, and slotgate refuses that WATCH with EXECABORT
/// ("is being migrated"). Another client then changes `{tx9}a`. On Redis the first WATCH still
/// holds on the client's connection, so the EXEC that follows must not run: the test asserts that
/// EXEC does not answer `[OK]` (nil or an error are both fine) and that `{tx9}a` keeps the other
/// client's value. `{tx9}` hashes to a slot (8770) that no other e2e test's keys use.
#[test]
fn a_refused_second_watch_keeps_the_first_in_force() {
    let (a, b) = ("{tx9}a", "{tx9}b");
    let (slot, from, to) = slot_and_masters(a);
    let mut c = env().proxy.client();
    let mut other = env().proxy.client();
    assert_eq!(q(&mut c, &["SET", a, "0"]), ok());
    assert_eq!(q(&mut c, &["SET", b, "0"]), ok());
    assert_eq!(q(&mut c, &["WATCH", a]), ok());

    begin_move(slot, from, to);
    migrate_keys(slot, from, to, Some(b));
    let refused = q_err(&mut c, &["WATCH", b]);
    assert_eq!(q(&mut other, &["SET", a, "theirs"]), ok());
    assert_eq!(q(&mut c, &["MULTI"]), ok());
    assert_eq!(q(&mut c, &["SET", a, "mine"]), queued());
    let exec = redis::cmd("EXEC").query::<Value>(&mut c);
    let after = q(&mut c, &["GET", a]);
    migrate_keys(slot, from, to, None);
    end_move(slot, from, to);
    move_slot(slot, to, from);

    assert!(
        exec.as_ref()
            .map_or(true, |v| *v != Value::Array(vec![ok()])),
        "EXEC answered {exec:?} and {a} reads {after:?}: the transaction ran although {a}, \
         watched first, was changed by another client; the second WATCH had been refused with: \
         {refused}"
    );
    assert_eq!(after, bulk("theirs"), "{a} after EXEC answered {exec:?}");
}

/// `key`'s slot (as the cluster computes it), its master, and another master.
pub fn slot_and_masters(key: &str) -> (u16, u16, u16) {
    let cluster = &env().cluster;
    let slot: u16 = cluster
        .cli(cluster.nodes[0].port, &["CLUSTER", "KEYSLOT", key])
        .parse()
        .unwrap();
    let owner = cluster.master_of_slot(slot);
    let other = *cluster.masters().iter().find(|&&m| m != owner).unwrap();
    (slot, owner, other)
}

/// Moves `slot` with its keys from master `from` to master `to`, as `redis-cli --cluster
/// reshard` does.
pub fn move_slot(slot: u16, from: u16, to: u16) {
    begin_move(slot, from, to);
    migrate_keys(slot, from, to, None);
    end_move(slot, from, to);
}

/// Marks `slot` as leaving `from` for `to`: from now on `from` answers ASK for its keys that it no
/// longer holds.
fn begin_move(slot: u16, from: u16, to: u16) {
    let cluster = &env().cluster;
    let slot = slot.to_string();
    let id = |port: u16| cluster.node(port).id.clone();
    cluster.cli(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &id(from)]);
    cluster.cli(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &id(to)]);
}

/// MIGRATEs `only` that key, or every key of `slot` still on `from`, to `to`.
fn migrate_keys(slot: u16, from: u16, to: u16, only: Option<&str>) {
    let cluster = &env().cluster;
    let (slot, port) = (slot.to_string(), to.to_string());
    loop {
        let keys = match only {
            Some(key) => key.to_owned(),
            None => cluster.cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "100"]),
        };
        if keys.is_empty() {
            return;
        }
        let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        migrate.extend(keys.lines());
        assert_eq!(cluster.cli(from, &migrate), "OK", "{migrate:?}");
        if only.is_some() {
            return;
        }
    }
}

/// Tells every master that `to` owns `slot` now: `to` first, so that no node redirects to it
/// before it knows the slot is its own.
fn end_move(slot: u16, from: u16, to: u16) {
    let cluster = &env().cluster;
    let (slot, to_id) = (slot.to_string(), cluster.node(to).id.clone());
    let others = cluster
        .masters()
        .into_iter()
        .filter(|m| *m != to && *m != from);
    for master in [to, from].into_iter().chain(others) {
        cluster.cli(master, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
    }
}

/// Pipelined, a command after EXEC must not overtake it: EXEC goes over the client's own
/// connection, the next command over the shared one.
#[test]
fn a_command_pipelined_after_exec_runs_after_it() {
    let mut c = env().proxy.client();
    for round in 0..20 {
        let mut pipe = redis::pipe();
        pipe.cmd("MULTI")
            .cmd("SET")
            .arg("{tx10}k")
            .arg("in-transaction")
            .cmd("EXEC")
            .cmd("SET")
            .arg("{tx10}k")
            .arg(format!("after-{round}"));
        let _: Vec<Value> = pipe.query(&mut c).unwrap();
        assert_eq!(
            q(&mut c, &["GET", "{tx10}k"]),
            bulk(&format!("after-{round}")),
            "round {round}"
        );
    }
}

#[test]
fn a_stray_exec_keeps_the_watch() {
    let mut c = env().proxy.client();
    let mut other = env().proxy.client();
    q(&mut c, &["SET", "{tx11}w", "0"]);
    q(&mut c, &["WATCH", "{tx11}w"]);
    assert!(q_err(&mut c, &["EXEC"]).contains("EXEC without MULTI"));
    q(&mut other, &["SET", "{tx11}w", "theirs"]);
    q(&mut c, &["MULTI"]);
    q(&mut c, &["SET", "{tx11}w", "mine"]);
    assert_eq!(q(&mut c, &["EXEC"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "{tx11}w"]), bulk("theirs"));
}

/// A WATCH that could not run (no seat for its connection here) must make EXEC fail, not commit
/// without the check.
#[test]
fn a_failed_first_watch_makes_exec_abort() {
    use std::io::Write;
    let proxy = own_proxy(|c| c.backend.max_dedicated_per_node = 1);
    // Another client holds the one seat to the slot's master.
    let mut holder = std::net::TcpStream::connect(proxy.addr).unwrap();
    holder.write_all(b"BLPOP {tx12}q 0\r\n").unwrap();
    proxy.wait_metric(
        "slotgate_dedicated_connections",
        1.0,
        Duration::from_secs(10),
    );
    let mut c = proxy.client();
    assert!(q_err(&mut c, &["WATCH", "{tx12}w"]).contains("dedicated connections"));
    drop(holder);
    proxy.wait_metric(
        "slotgate_dedicated_connections",
        0.0,
        Duration::from_secs(10),
    );
    q(&mut c, &["MULTI"]);
    q(&mut c, &["SET", "{tx12}w", "unwatched"]);
    let e = q_err(&mut c, &["EXEC"]);
    assert!(e.contains("Transaction discarded"), "{e}");
    assert_eq!(q(&mut c, &["GET", "{tx12}w"]), Value::Nil);
}
