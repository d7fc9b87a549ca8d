//! WAIT through slotgate: every master counts the replicas that have the client's writes, on a
//! connection of the client's own, and the client gets the smallest count. The shared cluster has
//! one replica per master.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::Value;

use crate::transactions::own_proxy;
use crate::{env, q, q_err};

/// Tests whose counts a sleeping replica would change take turns.
static COUNTS: Mutex<()> = Mutex::new(());

fn counts() -> std::sync::MutexGuard<'static, ()> {
    COUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `args` and returns the reply and how long it took.
fn timed(c: &mut redis::Connection, args: &[&str]) -> (Value, Duration) {
    let start = Instant::now();
    let reply = q(c, args);
    (reply, start.elapsed())
}

#[test]
fn writes_to_every_master_then_wait_1_counts_the_replica_and_leaves_no_key() {
    let _turn = counts();
    let mut c = env().proxy.client();
    // Keys of many slots: every master gets some.
    let mut mset = vec!["MSET"];
    let keys: Vec<String> = (0..30).map(|i| format!("wait1:{i}")).collect();
    for k in &keys {
        mset.extend([k.as_str(), "v"]);
    }
    q(&mut c, &mset);
    let (reply, took) = timed(&mut c, &["WAIT", "1", "2000"]);
    assert_eq!(reply, Value::Int(1));
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let cluster = &env().cluster;
    for master in cluster.masters() {
        let left = cluster.cli(master, &["KEYS", "slotgate:wait:*"]);
        assert!(left.is_empty(), "{master} keeps {left:?}");
    }
}

#[test]
fn wait_for_more_replicas_than_there_are_gives_the_count_at_the_timeout() {
    let _turn = counts();
    let mut c = env().proxy.client();
    q(&mut c, &["SET", "wait2:k", "v"]);
    let (reply, took) = timed(&mut c, &["WAIT", "2", "200"]);
    assert_eq!(reply, Value::Int(1));
    assert!(took >= Duration::from_millis(200), "took {took:?}");
    assert!(took < Duration::from_millis(2000), "took {took:?}");
}

/// Returns once the node on `port` stops answering PING within 50 ms: the DEBUG SLEEP sent to it
/// has begun, however late the thread that sent it ran.
fn asleep(port: u16) {
    let start = Instant::now();
    loop {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        s.write_all(b"PING\r\n").unwrap();
        let mut reply = [0u8; 7];
        if std::io::Read::read(&mut s, &mut reply).is_err() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "node {port} never slept"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The replica of the key's master is asleep: the write is not on it, and WAIT does not count it.
#[test]
fn a_replica_that_has_not_got_the_write_is_not_counted() {
    let _turn = counts();
    let cluster = &env().cluster;
    let slot: u16 = cluster
        .cli(cluster.masters()[0], &["CLUSTER", "KEYSLOT", "{wait3}k"])
        .parse()
        .unwrap();
    let replica = cluster.replica_of(cluster.master_of_slot(slot));
    let sleeper = std::thread::spawn(move || {
        env().cluster.cli(replica, &["DEBUG", "SLEEP", "1"]);
    });
    asleep(replica);
    let mut c = env().proxy.client();
    q(&mut c, &["SET", "{wait3}k", "v"]);
    assert_eq!(q(&mut c, &["WAIT", "1", "100"]), Value::Int(0));
    sleeper.join().unwrap();
    assert_eq!(q(&mut c, &["WAIT", "1", "2000"]), Value::Int(1));
}

#[test]
fn wait_argument_errors_are_redis_own_bytes() {
    let mut s = crate::raw::connect();
    s.write_all(b"WAIT x 0\r\nWAIT 0 x\r\nWAIT 0 -1\r\nWAIT 0 1.5\r\nWAIT 1\r\n")
        .unwrap();
    crate::raw::expect(
        &mut s,
        b"-ERR value is not an integer or out of range\r\n\
          -ERR timeout is not an integer or out of range\r\n\
          -ERR timeout is negative\r\n\
          -ERR timeout is not an integer or out of range\r\n\
          -ERR wrong number of arguments for 'wait' command\r\n",
    );
}

#[test]
fn a_client_that_leaves_during_wait_closes_its_connections() {
    let _turn = counts();
    let proxy = own_proxy(|_| {});
    let cluster = &env().cluster;
    let masters = cluster.masters().len();
    let mut raw = std::net::TcpStream::connect(proxy.addr).unwrap();
    raw.write_all(b"SET wait5:k v\r\nWAIT 2 0\r\n").unwrap();
    let patience = Duration::from_secs(10);
    // One connection per master, each blocked in WAIT for a replica that does not exist.
    proxy.wait_metric("slotgate_dedicated_connections", masters as f64, patience);
    let waiting = || {
        cluster
            .masters()
            .into_iter()
            .filter(|&m| cluster.cli(m, &["CLIENT", "LIST"]).contains("cmd=wait"))
            .count()
    };
    until(
        patience,
        || waiting() == masters,
        "every master runs the WAIT",
    );
    drop(raw);
    proxy.wait_metric("slotgate_dedicated_connections", 0.0, patience);
    // Closed, so the masters have dropped the WAITs too.
    until(patience, || waiting() == 0, "no master runs the WAIT");
}

fn until(patience: Duration, done: impl Fn() -> bool, what: &str) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < patience,
            "not so after {patience:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_request_pipelined_after_wait_runs_after_it() {
    let _turn = counts();
    let mut c = env().proxy.client();
    let waiter = std::thread::spawn(move || {
        let mut pipe = redis::pipe();
        pipe.cmd("WAIT").arg(2).arg(1500);
        pipe.cmd("SET").arg("{wait6}k").arg("after");
        pipe.query::<Vec<Value>>(&mut c).unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut other = env().proxy.client();
    assert_eq!(q(&mut other, &["GET", "{wait6}k"]), Value::Nil);
    assert_eq!(waiter.join().unwrap(), vec![Value::Int(1), Value::Okay]);
    assert_eq!(
        q(&mut other, &["GET", "{wait6}k"]),
        Value::BulkString(b"after".to_vec())
    );
}

#[test]
fn wait_inside_multi_is_refused_and_aborts_exec() {
    let mut c = env().proxy.client();
    q(&mut c, &["MULTI"]);
    let e = q_err(&mut c, &["WAIT", "1", "0"]);
    assert!(
        e.contains("WAIT inside a transaction is not supported"),
        "{e}"
    );
    let e = q_err(&mut c, &["EXEC"]);
    assert!(
        e.contains("Transaction discarded because of previous errors"),
        "{e}"
    );
    assert_eq!(q(&mut c, &["PING"]), Value::SimpleString("PONG".into()));
}
