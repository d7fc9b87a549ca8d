//! Keyspace-wide commands through slotgate, answered as one Redis server would: SCAN walks every
//! master with one cursor (across a failover too), KEYS and RANDOMKEY see the whole cluster,
//! FLUSHALL and FLUSHDB empty every master.
//!
//! Tests on the shared cluster only look at keys of their own prefix (MATCH). Those that flush,
//! need an empty cluster or fail a master over run one at a time on a cluster of their own, so
//! they cannot touch another test's keys.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::Value;
use slotgate::cluster::Slot;
use slotgate::protocol::{Frame, Limits, Reply};

use crate::common::cluster::RedisCluster;
use crate::common::proxy::Proxy;
use crate::resp3::ask;
use crate::{env, q};

/// Hash tags whose slot other e2e tests move between masters while they run. SCAN may miss or
/// repeat a key whose slot moves during a walk (as documented), so walks on the shared cluster
/// leave those slots out of what they assert.
const MOVING_TAGS: [&str; 5] = ["{mig}", "{obs3-moved}", "{shps2}", "{tx8}", "{tx9}"];

/// `n` keys named `prefix:i`, none in a slot another test moves, spread over every master.
fn spread_keys(cluster: &RedisCluster, prefix: &str, n: usize) -> Vec<String> {
    let moving: Vec<Slot> = MOVING_TAGS
        .iter()
        .map(|t| Slot::for_key(t.as_bytes()))
        .collect();
    let keys: Vec<String> = (0..)
        .map(|i| format!("{prefix}:{i}"))
        .filter(|k| !moving.contains(&Slot::for_key(k.as_bytes())))
        .take(n)
        .collect();
    let masters: HashSet<u16> = keys
        .iter()
        .take(30)
        .map(|k| cluster.master_of_slot(Slot::for_key(k.as_bytes()).get()))
        .collect();
    assert_eq!(
        masters.len(),
        3,
        "keys of {prefix} should cover all masters"
    );
    keys
}

fn set_all(c: &mut redis::Connection, keys: &[String]) {
    let mut pipe = redis::pipe();
    for k in keys {
        pipe.cmd("SET").arg(k).arg("v").ignore();
    }
    pipe.query::<()>(c).unwrap();
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

/// One SCAN call: the next cursor and the page's keys.
fn scan_once(c: &mut redis::Connection, cursor: &str, options: &[&str]) -> (String, Vec<String>) {
    let mut args = vec!["SCAN", cursor];
    args.extend_from_slice(options);
    match q(c, &args) {
        Value::Array(page) if page.len() == 2 => match &page[1] {
            Value::Array(keys) => (text(&page[0]), keys.iter().map(text).collect()),
            other => panic!("SCAN keys are not an array: {other:?}"),
        },
        other => panic!("SCAN replied {other:?}"),
    }
}

/// A whole walk from cursor 0 until slotgate says 0: every key returned, and how many calls.
fn scan_walk(c: &mut redis::Connection, options: &[&str]) -> (Vec<String>, usize) {
    let (mut cursor, mut seen, mut calls) = ("0".to_string(), Vec::new(), 0);
    loop {
        let (next, keys) = scan_once(c, &cursor, options);
        seen.extend(keys);
        calls += 1;
        if next == "0" {
            return (seen, calls);
        }
        assert!(calls < 10_000, "the walk never ends");
        cursor = next;
    }
}

fn missing<'a>(want: &'a [String], seen: &[String]) -> Vec<&'a String> {
    let seen: HashSet<&String> = seen.iter().collect();
    want.iter().filter(|k| !seen.contains(k)).collect()
}

/// Sends `command` on a fresh raw connection to `addr` and returns the reply's bytes.
fn raw(addr: SocketAddr, command: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    String::from_utf8_lossy(&ask(&mut s, command)).into_owned()
}

/// A raw connection to `addr` that has switched to RESP3.
fn resp3(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let hello = ask(&mut s, "HELLO 3");
    assert!(hello.starts_with(b"%"), "{hello:?}");
    s
}

fn frame(bytes: Vec<u8>) -> Frame {
    Reply(Bytes::from(bytes))
        .parse(&Limits::default())
        .expect("one valid reply")
}

#[test]
fn scan_walks_every_master_and_ends_at_zero() {
    let keys = spread_keys(&env().cluster, "ks:walk", 300);
    let mut c = env().proxy.client();
    set_all(&mut c, &keys);
    let (seen, calls) = scan_walk(&mut c, &["MATCH", "ks:walk:*", "COUNT", "20"]);
    assert_eq!(missing(&keys, &seen), Vec::<&String>::new());
    assert!(seen.iter().all(|k| k.starts_with("ks:walk:")), "{seen:?}");
    // One shard per call, and COUNT 20 cannot cover a shard's ~100 keys in one call.
    assert!(calls > 3, "{calls} calls");
}

#[test]
fn scan_passes_match_count_and_type_to_the_nodes() {
    let strings = spread_keys(&env().cluster, "ks:type:s", 40);
    let hashes = spread_keys(&env().cluster, "ks:type:h", 40);
    let mut c = env().proxy.client();
    set_all(&mut c, &strings);
    for h in &hashes {
        q(&mut c, &["HSET", h, "f", "v"]);
    }
    let (seen, _) = scan_walk(&mut c, &["MATCH", "ks:type:*", "TYPE", "hash"]);
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    seen_sorted.dedup();
    let mut want = hashes.clone();
    want.sort();
    assert_eq!(seen_sorted, want, "TYPE hash returns the hashes only");
    // A COUNT above any shard's size finishes each shard in one call: one call per master.
    let (seen, calls) = scan_walk(&mut c, &["COUNT", "100000000", "MATCH", "ks:type:s:*"]);
    assert_eq!(calls, 3);
    assert_eq!(missing(&strings, &seen), Vec::<&String>::new());
}

#[test]
fn scan_errors_are_redis_own() {
    let addr = env().proxy.addr;
    // Checked against redis-server 7.0.15.
    for (command, reply) in [
        ("SCAN x", "-ERR invalid cursor\r\n"),
        ("SCAN 1.0", "-ERR invalid cursor\r\n"),
        ("SCAN 18446744073709551616", "-ERR invalid cursor\r\n"),
        (
            "SCAN",
            "-ERR wrong number of arguments for 'scan' command\r\n",
        ),
        ("SCAN 0 COUNT 0", "-ERR syntax error\r\n"),
        ("SCAN 0 MATCH", "-ERR syntax error\r\n"),
        (
            "SCAN 0 COUNT x",
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            "KEYS",
            "-ERR wrong number of arguments for 'keys' command\r\n",
        ),
        (
            "RANDOMKEY x",
            "-ERR wrong number of arguments for 'randomkey' command\r\n",
        ),
    ] {
        assert_eq!(raw(addr, command), reply, "{command}");
    }
    // Redis reads the cursor with strtoul: -1 is 2^64-1, a cursor like any other.
    assert!(raw(addr, "SCAN -1 MATCH ks:nothing:*").starts_with("*2\r\n$"));
}

#[test]
fn keyspace_commands_are_refused_inside_multi() {
    let mut s = TcpStream::connect(env().proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(ask(&mut s, "MULTI"), b"+OK\r\n");
    let refused = String::from_utf8(ask(&mut s, "FLUSHALL")).unwrap();
    assert_eq!(
        refused,
        "-ERR 'FLUSHALL' is not supported by slotgate (inside MULTI it would reach one master \
         only; send it outside the transaction)\r\n"
    );
    assert_eq!(ask(&mut s, "SET ks:multi v"), b"+QUEUED\r\n");
    let exec = String::from_utf8(ask(&mut s, "EXEC")).unwrap();
    assert!(exec.starts_with("-EXECABORT"), "{exec}");
}

#[test]
fn scan_in_resp3_is_an_array_with_a_bulk_cursor() {
    let keys = spread_keys(&env().cluster, "ks:r3", 60);
    set_all(&mut env().proxy.client(), &keys);
    let mut s = resp3(env().proxy.addr);
    let (mut cursor, mut seen) = ("0".to_string(), Vec::new());
    loop {
        let reply = ask(&mut s, &format!("SCAN {cursor} MATCH ks:r3:* COUNT 15"));
        assert!(reply.starts_with(b"*2\r\n$"), "{reply:?}");
        let Frame::Array(page) = frame(reply) else {
            unreachable!()
        };
        let [Frame::Bulk(next), Frame::Array(found)] = &page[..] else {
            panic!("{page:?}")
        };
        for k in found {
            let Frame::Bulk(k) = k else { panic!("{k:?}") };
            seen.push(String::from_utf8(k.to_vec()).unwrap());
        }
        cursor = String::from_utf8(next.to_vec()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(missing(&keys, &seen), Vec::<&String>::new());
}

#[test]
fn keys_sees_every_master() {
    let keys = spread_keys(&env().cluster, "ks:keys", 50);
    let mut c = env().proxy.client();
    set_all(&mut c, &keys);
    let Value::Array(found) = q(&mut c, &["KEYS", "ks:keys:*"]) else {
        panic!("KEYS is not an array")
    };
    let mut found: Vec<String> = found.iter().map(text).collect();
    found.sort();
    let mut want = keys;
    want.sort();
    assert_eq!(found, want);
    // RESP3 gets an array too, as Redis gives.
    let mut s = resp3(env().proxy.addr);
    let reply = ask(&mut s, "KEYS ks:keys:*");
    assert!(reply.starts_with(b"*50\r\n"), "{reply:?}");
}

#[test]
fn randomkey_names_some_key_of_a_cluster_that_has_keys() {
    let mut c = env().proxy.client();
    q(&mut c, &["SET", "ks:random", "v"]);
    // Whichever master it asks first: other tests' keys are as good an answer as this one.
    assert!(!text(&q(&mut c, &["RANDOMKEY"])).is_empty());
}

// ---------------------------------------------------------------- on a cluster of their own

struct Own {
    cluster: RedisCluster,
    proxy: Proxy,
}

/// A cluster and slotgate of this file's own, for one test at a time. slotgate re-reads the
/// slot map every 200 ms, so a test can wait for it to learn of a failover.
fn own() -> MutexGuard<'static, Own> {
    static OWN: OnceLock<Mutex<Own>> = OnceLock::new();
    OWN.get_or_init(|| {
        let cluster = RedisCluster::start(3, 1, 2000);
        let proxy = Proxy::start(vec![cluster.seed_addr()], |c| {
            c.topology.refresh_interval_ms = 200;
        });
        Mutex::new(Own { cluster, proxy })
    })
    .lock()
    .unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn flushall_and_flushdb_empty_every_master() {
    let own = own();
    // The other tests on this cluster leave keys behind; empty it without the command under test.
    for &master in &own.cluster.masters() {
        own.cluster.cli(master, &["FLUSHALL"]);
    }
    let mut c = own.proxy.client();
    let keys = spread_keys(&own.cluster, "ks:flush", 60);
    for command in [
        "FLUSHALL ASYNC",
        "FLUSHDB ASYNC",
        "FLUSHALL SYNC",
        "FLUSHDB",
    ] {
        set_all(&mut c, &keys);
        assert_eq!(q(&mut c, &["DBSIZE"]), Value::Int(60), "before {command}");
        let args: Vec<&str> = command.split(' ').collect();
        assert_eq!(q(&mut c, &args), Value::Okay, "{command}");
        assert_eq!(q(&mut c, &["DBSIZE"]), Value::Int(0), "after {command}");
        for &master in &own.cluster.masters() {
            assert_eq!(own.cluster.cli(master, &["DBSIZE"]), "0", "{command}");
        }
    }
    // Checked against redis-server 7.0.15.
    for command in ["FLUSHALL FOO", "FLUSHALL ASYNC SYNC", "FLUSHDB a b"] {
        assert_eq!(raw(own.proxy.addr, command), "-ERR syntax error\r\n");
    }
}

#[test]
fn randomkey_is_null_on_an_empty_cluster_and_a_key_otherwise() {
    let own = own();
    let mut c = own.proxy.client();
    assert_eq!(q(&mut c, &["FLUSHALL"]), Value::Okay);
    assert_eq!(q(&mut c, &["RANDOMKEY"]), Value::Nil);
    assert_eq!(ask(&mut resp3(own.proxy.addr), "RANDOMKEY"), b"_\r\n");
    // One key on one master: every RANDOMKEY finds it, whichever master it asks first.
    q(&mut c, &["SET", "ks:only", "v"]);
    for _ in 0..10 {
        assert_eq!(
            q(&mut c, &["RANDOMKEY"]),
            Value::BulkString(b"ks:only".to_vec())
        );
    }
    let keys = spread_keys(&own.cluster, "ks:rk", 30);
    set_all(&mut c, &keys);
    let named: HashSet<String> = (0..30).map(|_| text(&q(&mut c, &["RANDOMKEY"]))).collect();
    assert!(named.len() > 1, "{named:?}");
    assert!(
        named.iter().all(|k| k == "ks:only" || keys.contains(k)),
        "{named:?}"
    );
}

#[test]
fn scan_continues_across_a_failover_and_sees_every_key() {
    let own = own();
    let (cluster, proxy) = (&own.cluster, &own.proxy);
    let mut c = proxy.client();
    let keys = spread_keys(cluster, "ks:fo", 300);
    set_all(&mut c, &keys);
    let options = ["MATCH", "ks:fo:*", "COUNT", "10"];

    // The walk starts with the shard of slot 0 (the lowest slots, so the lowest highest slot):
    // one small page, and that shard is not done.
    let victim = cluster.master_of_slot(0);
    let (cursor, first) = scan_once(&mut c, "0", &options);
    let on_victim = keys
        .iter()
        .filter(|k| cluster.master_of_slot(Slot::for_key(k.as_bytes()).get()) == victim)
        .count();
    assert!(first.len() < on_victim, "{} of {on_victim}", first.len());
    assert!(first
        .iter()
        .all(|k| cluster.master_of_slot(Slot::for_key(k.as_bytes()).get()) == victim));

    fail_over(cluster, proxy, victim);

    let (mut cursor, mut seen, mut calls) = (cursor, first, 1);
    while cursor != "0" {
        let (next, page) = scan_once(&mut c, &cursor, &options);
        seen.extend(page);
        calls += 1;
        assert!(calls < 10_000, "the walk never ends");
        cursor = next;
    }
    assert_eq!(missing(&keys, &seen), Vec::<&String>::new());
}

/// `CLUSTER FAILOVER` on a replica of `master`, then waits until slotgate's slot map has it.
fn fail_over(cluster: &RedisCluster, proxy: &Proxy, master: u16) {
    let replica = cluster.replica_of(master);
    assert_eq!(cluster.cli(replica, &["CLUSTER", "FAILOVER"]), "OK");
    let start = Instant::now();
    while !cluster.masters().contains(&replica) {
        assert!(start.elapsed() < Duration::from_secs(20), "no promotion");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.wait_ok(Duration::from_secs(20));
    // Two refreshes that end after the cluster agreed: the second began after it did.
    let refreshed = || {
        let ok = [("outcome", "ok")];
        proxy.scrape().sum("slotgate_topology_refreshes_total", &ok)
    };
    let want = refreshed() + 2.0;
    let start = Instant::now();
    while refreshed() < want {
        assert!(start.elapsed() < Duration::from_secs(10), "no refresh");
        std::thread::sleep(Duration::from_millis(20));
    }
}
