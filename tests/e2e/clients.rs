//! CLIENT LIST, INFO, KILL and REPLY about slotgate's own clients, answered as one Redis server
//! answers them about its clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use redis::Value;

use crate::raw::{connect, expect};
use crate::transactions::own_proxy;
use crate::{env, q};

fn text(v: Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        Value::VerbatimString { text, .. } => text,
        other => panic!("not text: {other:?}"),
    }
}

fn own_id(c: &mut redis::Connection) -> i64 {
    match q(c, &["CLIENT", "ID"]) {
        Value::Int(id) => id,
        other => panic!("CLIENT ID gave {other:?}"),
    }
}

/// Blocks until the server closes `s`.
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn list_and_info_show_slotgates_clients() {
    let mut c = env().proxy.client();
    q(&mut c, &["CLIENT", "SETNAME", "cl1-app"]);
    let id = own_id(&mut c);
    let info = text(q(&mut c, &["CLIENT", "INFO"]));
    assert!(
        info.starts_with(&format!("id={id} addr=127.0.0.1:")),
        "{info}"
    );
    let laddr = format!(" laddr={} ", env().proxy.addr);
    assert!(info.contains(&laddr), "{info}");
    assert!(info.contains(" name=cl1-app "), "{info}");
    assert!(info.contains(" flags=N db=0 "), "{info}");
    assert!(info.contains(" resp=2 lib-name="), "{info}");
    assert!(info.ends_with('\n'), "{info}");

    let mut subscriber = connect();
    subscriber.write_all(b"SUBSCRIBE cl1:chan\r\n").unwrap();
    expect(
        &mut subscriber,
        b"*3\r\n$9\r\nsubscribe\r\n$8\r\ncl1:chan\r\n:1\r\n",
    );
    let all = text(q(&mut c, &["CLIENT", "LIST"]));
    let mine = all.lines().find(|l| l.starts_with(&format!("id={id} ")));
    assert!(mine.is_some_and(|l| l.contains(" name=cl1-app ")), "{all}");
    let pubsub = text(q(&mut c, &["CLIENT", "LIST", "TYPE", "pubsub"]));
    assert!(pubsub.lines().all(|l| l.contains(" flags=P ")), "{pubsub}");
    assert!(pubsub.lines().any(|l| l.contains(" sub=1 ")), "{pubsub}");
    assert!(!pubsub.contains(&format!("id={id} ")), "{pubsub}");
    let by_id = text(q(&mut c, &["CLIENT", "LIST", "ID", &id.to_string()]));
    assert_eq!(by_id.lines().count(), 1, "{by_id}");
}

#[test]
fn kill_ends_other_clients_sessions() {
    let mut killer = env().proxy.client();
    let mut victim = connect();
    victim.write_all(b"CLIENT ID\r\n").unwrap();
    let mut buf = [0u8; 32];
    let n = victim.read(&mut buf).unwrap();
    let id = String::from_utf8_lossy(&buf[1..n]).trim().to_string();
    assert_eq!(
        q(&mut killer, &["CLIENT", "KILL", "ID", &id]),
        Value::Int(1)
    );
    assert!(
        closed(&mut victim),
        "the killed client's connection stays open"
    );
    assert_eq!(
        q(&mut killer, &["CLIENT", "KILL", "ID", &id]),
        Value::Int(0)
    );

    // The old form, by address.
    let mut victim = connect();
    let addr = victim.local_addr().unwrap().to_string();
    victim.write_all(b"PING\r\n").unwrap();
    expect(&mut victim, b"+PONG\r\n");
    assert_eq!(q(&mut killer, &["CLIENT", "KILL", &addr]), Value::Okay);
    assert!(closed(&mut victim));

    // SKIPME no: the caller gets its reply, then its connection closes.
    let mut me = connect();
    me.write_all(b"CLIENT ID\r\n").unwrap();
    let n = me.read(&mut buf).unwrap();
    let my_id = String::from_utf8_lossy(&buf[1..n]).trim().to_string();
    me.write_all(format!("CLIENT KILL ID {my_id} SKIPME no\r\n").as_bytes())
        .unwrap();
    expect(&mut me, b":1\r\n");
    assert!(closed(&mut me));
}

/// A client killed while blocked: its command is cancelled on the node, nothing is popped.
#[test]
fn a_blocked_client_killed_pops_nothing() {
    // A proxy of its own, so that its count of dedicated connections is this test's alone.
    let proxy = own_proxy(|_| {});
    let mut victim = TcpStream::connect(proxy.addr).unwrap();
    victim
        .write_all(b"CLIENT ID\r\nBLPOP {cl3}q 0\r\n")
        .unwrap();
    let mut buf = [0u8; 32];
    let n = victim.read(&mut buf).unwrap();
    let id = String::from_utf8_lossy(&buf[1..n]).trim().to_string();
    let mut killer = proxy.client();
    let wait = Duration::from_secs(10);
    proxy.wait_metric("slotgate_dedicated_connections", 1.0, wait);
    let line = text(q(&mut killer, &["CLIENT", "LIST", "ID", &id]));
    assert!(line.contains(" flags=b "), "{line}");
    assert_eq!(
        q(&mut killer, &["CLIENT", "KILL", "ID", &id]),
        Value::Int(1)
    );
    assert!(closed(&mut victim));
    // Its connection to the node is closed, which is what cancels the BLPOP there; give the
    // node a moment to see the close before anything is pushed.
    proxy.wait_metric("slotgate_dedicated_connections", 0.0, wait);
    std::thread::sleep(Duration::from_millis(100));
    q(&mut killer, &["RPUSH", "{cl3}q", "kept"]);
    assert_eq!(
        q(&mut killer, &["LRANGE", "{cl3}q", "0", "-1"]),
        Value::Array(vec![Value::BulkString(b"kept".to_vec())])
    );
}

/// Byte for byte what redis-server 7.0.15 sends for the same bytes.
#[test]
fn reply_off_skip_and_on() {
    let mut s = connect();
    s.write_all(
        b"CLIENT REPLY SKIP\r\nPING a\r\nPING b\r\nCLIENT REPLY OFF\r\nPING c\r\nSET cl4:k v\r\nCLIENT REPLY x\r\nCLIENT REPLY ON\r\nGET cl4:k\r\n",
    )
    .unwrap();
    expect(&mut s, b"$1\r\nb\r\n+OK\r\n$1\r\nv\r\n");
    s.write_all(b"CLIENT REPLY SKIP\r\nRESET\r\nPING\r\n")
        .unwrap();
    expect(&mut s, b"+PONG\r\n");
    s.write_all(b"CLIENT REPLY OFF\r\nRESET\r\nPING\r\n")
        .unwrap();
    expect(&mut s, b"+RESET\r\n+PONG\r\n");
}

#[test]
fn no_evict_no_touch_and_pause() {
    let mut s = connect();
    s.write_all(b"CLIENT NO-EVICT on\r\nCLIENT NO-TOUCH OFF\r\nCLIENT NO-EVICT x\r\n")
        .unwrap();
    expect(&mut s, b"+OK\r\n+OK\r\n-ERR syntax error\r\n");
    s.write_all(b"CLIENT PAUSE 10\r\n").unwrap();
    expect(&mut s, b"-ERR 'CLIENT PAUSE' is not supported by slotgate (it would pause only one node's clients; pause every node directly, or stop the proxy)\r\n");
}
