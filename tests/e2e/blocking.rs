//! Blocking commands through slotgate: each runs on a connection of its own, so it never holds
//! up another client, and a client that leaves while blocked pops nothing.

use std::io::Write;
use std::time::Duration;

use redis::Value;

use crate::transactions::own_proxy;
use crate::{env, q, q_err};

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// A raw client sends `commands`, blocks (one dedicated connection open), and leaves; returns
/// once slotgate has closed that connection.
fn block_then_leave(proxy: &crate::common::proxy::Proxy, commands: &[u8]) {
    let mut raw = std::net::TcpStream::connect(proxy.addr).unwrap();
    raw.write_all(commands).unwrap();
    let wait = Duration::from_secs(10);
    proxy.wait_metric("slotgate_dedicated_connections", 1.0, wait);
    drop(raw);
    proxy.wait_metric("slotgate_dedicated_connections", 0.0, wait);
}

/// Runs `args` on its own client in a thread and returns its reply.
fn in_thread(args: &'static [&'static str]) -> std::thread::JoinHandle<Value> {
    let mut c = env().proxy.client();
    std::thread::spawn(move || q(&mut c, args))
}

#[test]
fn blpop_is_woken_by_another_clients_push_while_a_third_keeps_working() {
    let waiter = in_thread(&["BLPOP", "{bl1}q", "0"]);
    // A third client's pipelined SET/GET load runs through while BLPOP waits.
    let mut busy = env().proxy.client();
    for round in 0..20 {
        let mut pipe = redis::pipe();
        for i in 0..50 {
            pipe.cmd("SET").arg(format!("bl1:busy:{i}")).arg(round);
            pipe.cmd("GET").arg(format!("bl1:busy:{i}"));
        }
        let replies: Vec<Value> = pipe.query(&mut busy).unwrap();
        assert_eq!(replies[99], bulk(&round.to_string()));
    }
    assert!(!waiter.is_finished(), "BLPOP returned with nothing pushed");
    q(&mut env().proxy.client(), &["RPUSH", "{bl1}q", "job"]);
    assert_eq!(
        waiter.join().unwrap(),
        Value::Array(vec![bulk("{bl1}q"), bulk("job")])
    );
}

#[test]
fn a_client_that_leaves_while_blocked_pops_nothing() {
    let proxy = own_proxy(|_| {});
    block_then_leave(&proxy, b"BLPOP {bl2}q 0\r\n");
    let mut c = proxy.client();
    q(&mut c, &["RPUSH", "{bl2}q", "kept"]);
    assert_eq!(
        q(&mut c, &["LRANGE", "{bl2}q", "0", "-1"]),
        Value::Array(vec![bulk("kept")])
    );
}

#[test]
fn blmove_within_one_hash_tag_and_crossslot_otherwise() {
    let mut c = env().proxy.client();
    q(&mut c, &["RPUSH", "{bl3}src", "a"]);
    assert_eq!(
        q(
            &mut c,
            &["BLMOVE", "{bl3}src", "{bl3}dst", "LEFT", "RIGHT", "0"]
        ),
        bulk("a")
    );
    assert_eq!(
        q(&mut c, &["LRANGE", "{bl3}dst", "0", "-1"]),
        Value::Array(vec![bulk("a")])
    );
    let e = q_err(&mut c, &["BLMOVE", "bl3:a", "bl3:b", "LEFT", "RIGHT", "0"]);
    assert!(e.contains("hash to the same slot"), "{e}");
    // Its own timeout, not slotgate's: an empty list times out after 0.1 s with a null reply.
    assert_eq!(q(&mut c, &["BLPOP", "{bl3}empty", "0.1"]), Value::Nil);
}

#[test]
fn xreadgroup_block_gets_the_next_entry() {
    let mut c = env().proxy.client();
    q(
        &mut c,
        &["XGROUP", "CREATE", "{bl4}s", "g", "$", "MKSTREAM"],
    );
    let reader = in_thread(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c1",
        "BLOCK",
        "0",
        "STREAMS",
        "{bl4}s",
        ">",
    ]);
    std::thread::sleep(Duration::from_millis(100));
    q(&mut c, &["XADD", "{bl4}s", "1-1", "f", "v"]);
    let got = reader.join().unwrap();
    let Value::Array(streams) = got else {
        panic!("{got:?}")
    };
    assert_eq!(streams.len(), 1, "{streams:?}");
}

#[test]
fn requests_behind_a_blocking_command_wait_for_it_as_on_redis() {
    let mut c = env().proxy.client();
    let mut pipe = redis::pipe();
    pipe.cmd("BLPOP").arg("{bl5}q").arg("0.2");
    pipe.cmd("RPUSH").arg("{bl5}q").arg("late");
    pipe.cmd("LLEN").arg("{bl5}q");
    let replies: Vec<Value> = pipe.query(&mut c).unwrap();
    // The RPUSH ran after BLPOP timed out, not while it waited.
    assert_eq!(replies, vec![Value::Nil, Value::Int(1), Value::Int(1)]);
}

#[test]
fn past_the_seat_limit_a_blocking_command_gets_a_clear_error() {
    let proxy = own_proxy(|c| c.backend.max_dedicated_per_node = 1);
    let mut raw = std::net::TcpStream::connect(proxy.addr).unwrap();
    raw.write_all(b"BLPOP {bl6}q 0\r\n").unwrap();
    proxy.wait_metric(
        "slotgate_dedicated_connections",
        1.0,
        Duration::from_secs(10),
    );
    let mut c = proxy.client();
    let e = q_err(&mut c, &["BLPOP", "{bl6}q", "0"]);
    assert!(e.contains("dedicated connections"), "{e}");
    assert_eq!(q(&mut c, &["PING"]), Value::SimpleString("PONG".into()));
    drop(raw);
}

#[test]
fn behind_a_blocking_command_a_protocol_error_and_quit_keep_their_place() {
    use std::io::Read;
    let mut s = crate::raw::connect();
    s.write_all(b"BLPOP {bl7}q 0.1\r\nGET {bl7}x\r\n*1\r\n$zz\r\n")
        .unwrap();
    crate::raw::expect(
        &mut s,
        b"*-1\r\n$-1\r\n-ERR Protocol error: invalid bulk length\r\n",
    );
    let mut s = crate::raw::connect();
    s.write_all(b"BLPOP {bl7}q 0.1\r\nQUIT\r\nGET {bl7}x\r\n")
        .unwrap();
    crate::raw::expect(&mut s, b"*-1\r\n+OK\r\n");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "ran after QUIT: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn a_parked_blocking_command_of_a_client_that_left_never_runs() {
    let proxy = own_proxy(|_| {});
    // The second BLPOP waits behind the first; the client leaves while both are pending.
    block_then_leave(&proxy, b"BLPOP {bl8}q 0.3\r\nBLPOP {bl8}q 0\r\n");
    std::thread::sleep(Duration::from_millis(500));
    let mut c = proxy.client();
    q(&mut c, &["RPUSH", "{bl8}q", "kept"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(q(&mut c, &["LLEN", "{bl8}q"]), Value::Int(1));
}
