//! RESP3 through slotgate: after `HELLO 3` a client gets every reply as the slot's master makes
//! it for a RESP3 client (maps, sets, doubles, nulls), pushes for pub/sub, and merged replies in
//! RESP3; `HELLO 2` and `RESET` switch back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use slotgate::cluster::Slot;
use slotgate::protocol::{Limits, ReplyCodec};
use tokio_util::codec::Decoder;

use crate::raw::{connect, expect};
use crate::{env, q};

/// Reads exactly one reply and nothing after it (a byte at a time: replies here are small, and
/// the next one may already be on its way).
pub fn read_reply(s: &mut TcpStream) -> Vec<u8> {
    let mut codec = ReplyCodec::new(Limits::default());
    let mut buf = BytesMut::new();
    loop {
        if let Some(reply) = codec.decode(&mut buf).expect("a valid reply") {
            return reply.into_bytes().to_vec();
        }
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).expect("reading a reply");
        buf.extend_from_slice(&byte);
    }
}

/// Sends `command` (inline) and returns its one reply.
pub fn ask(s: &mut TcpStream, command: &str) -> Vec<u8> {
    s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    read_reply(s)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A client of slotgate that has switched to RESP3.
pub fn resp3_client() -> TcpStream {
    let mut s = connect();
    let hello = ask(&mut s, "HELLO 3");
    assert!(hello.starts_with(b"%7\r\n"), "{}", text(&hello));
    assert!(text(&hello).contains("$5\r\nproto\r\n:3\r\n"));
    s
}

/// A RESP3 connection straight to the master of `key`'s slot.
pub fn node_for(key: &str) -> TcpStream {
    let port = env()
        .cluster
        .master_of_slot(Slot::for_key(key.as_bytes()).get());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ask(&mut s, "HELLO 3");
    s
}

#[test]
fn replies_are_the_nodes_own_resp3() {
    let mut c = resp3_client();
    let setup = [
        "DEL {r3a}h {r3a}s {r3a}z {r3a}str",
        "HSET {r3a}h f1 v1 f2 v2",
        "SADD {r3a}s m",
        "ZADD {r3a}z 1.5 m",
        "SET {r3a}str v",
    ];
    for command in setup {
        ask(&mut c, command);
    }
    let mut node = node_for("{r3a}h");
    for command in [
        "HGETALL {r3a}h",
        "SMEMBERS {r3a}s",
        "ZSCORE {r3a}z m",
        "ZRANGE {r3a}z 0 -1 WITHSCORES",
        "GET {r3a}missing",
        "GET {r3a}str",
        "HRANDFIELD {r3a}h -1 WITHVALUES",
        "OBJECT ENCODING {r3a}str",
        "XINFO STREAM {r3a}nostream",
    ] {
        let via = ask(&mut c, command);
        let direct = ask(&mut node, command);
        if command.starts_with("HRANDFIELD") {
            // Random: compare the shape.
            assert_eq!(via[0], direct[0], "{command}");
            continue;
        }
        assert_eq!(text(&via), text(&direct), "{command}");
    }
    assert!(ask(&mut c, "HGETALL {r3a}h").starts_with(b"%2\r\n"));
    assert_eq!(ask(&mut c, "GET {r3a}missing"), b"_\r\n");
    assert_eq!(ask(&mut c, "ZSCORE {r3a}z m"), b",1.5\r\n");

    // Back to RESP2: the same requests get RESP2 again.
    let hello2 = ask(&mut c, "HELLO 2");
    assert!(hello2.starts_with(b"*14\r\n"), "{}", text(&hello2));
    assert_eq!(ask(&mut c, "GET {r3a}missing"), b"$-1\r\n");
    assert!(ask(&mut c, "HGETALL {r3a}h").starts_with(b"*4\r\n"));
    ask(&mut c, "HELLO 3");
    assert_eq!(ask(&mut c, "RESET"), b"+RESET\r\n");
    assert_eq!(ask(&mut c, "GET {r3a}missing"), b"$-1\r\n");
}

#[test]
fn merged_and_local_replies_speak_resp3() {
    let mut c = resp3_client();
    ask(&mut c, "SET r3b:one 1");
    ask(&mut c, "SET r3b:two 2");
    ask(&mut c, "DEL r3b:none");
    // Keys of different slots: split, and merged in the client's order.
    assert_ne!(Slot::for_key(b"r3b:one"), Slot::for_key(b"r3b:two"));
    assert_eq!(
        text(&ask(&mut c, "MGET r3b:one r3b:none r3b:two")),
        "*3\r\n$1\r\n1\r\n_\r\n$1\r\n2\r\n"
    );
    assert_eq!(ask(&mut c, "EXISTS r3b:one r3b:two r3b:none"), b":2\r\n");
    let info = ask(&mut c, "INFO keyspace");
    assert!(info.starts_with(b"="), "{}", text(&info));
    assert!(text(&info).contains("txt:# Keyspace"), "{}", text(&info));
    assert_eq!(ask(&mut c, "CLIENT GETNAME"), b"_\r\n");
    assert!(text(&ask(&mut c, "CLIENT INFO")).contains("resp=3"));
    assert_eq!(ask(&mut c, "PING"), b"+PONG\r\n");
    assert_eq!(ask(&mut c, "DEL r3b:one r3b:two"), b":2\r\n");
}

#[test]
fn transactions_and_blocking_commands_speak_resp3() {
    let mut c = resp3_client();
    ask(&mut c, "DEL {r3c}h {r3c}q");
    assert_eq!(ask(&mut c, "WATCH {r3c}h"), b"+OK\r\n");
    assert_eq!(ask(&mut c, "MULTI"), b"+OK\r\n");
    assert_eq!(ask(&mut c, "HSET {r3c}h f v"), b"+QUEUED\r\n");
    assert_eq!(ask(&mut c, "HGETALL {r3c}h"), b"+QUEUED\r\n");
    assert_eq!(
        text(&ask(&mut c, "EXEC")),
        "*2\r\n:1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    // A WATCH tripped by another client: EXEC's null is RESP3's.
    ask(&mut c, "WATCH {r3c}h");
    q(&mut env().proxy.client(), &["HSET", "{r3c}h", "f", "w"]);
    ask(&mut c, "MULTI");
    ask(&mut c, "HGETALL {r3c}h");
    assert_eq!(ask(&mut c, "EXEC"), b"_\r\n");
    // A blocking command that times out answers RESP3's null too.
    assert_eq!(ask(&mut c, "BLPOP {r3c}q 0.05"), b"_\r\n");
}

/// A client pipelines a request, the switch and a read of what the request wrote: the read must
/// come after the write although the two go over different backend connections.
#[test]
fn a_switch_keeps_the_clients_order() {
    let mut c = connect();
    for round in 0..20 {
        let value = format!("v{round}");
        let pipeline =
            format!("SET r3d:k {value}\r\nHELLO 3\r\nGET r3d:k\r\nHELLO 2\r\nGET r3d:k\r\n");
        c.write_all(pipeline.as_bytes()).unwrap();
        expect(&mut c, b"+OK\r\n");
        assert!(read_reply(&mut c).starts_with(b"%7"));
        expect(
            &mut c,
            format!("${}\r\n{value}\r\n", value.len()).as_bytes(),
        );
        assert!(read_reply(&mut c).starts_with(b"*14"));
        expect(
            &mut c,
            format!("${}\r\n{value}\r\n", value.len()).as_bytes(),
        );
    }
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

fn push(words: &[&str], count: Option<i64>) -> String {
    let len = words.len() + usize::from(count.is_some());
    let mut out = format!(">{len}\r\n");
    words.iter().for_each(|w| out.push_str(&bulk(w)));
    if let Some(n) = count {
        out.push_str(&format!(":{n}\r\n"));
    }
    out
}

/// As redis-server 7.0.15 answers a RESP3 client, byte for byte: pushes for confirmations and
/// messages, and ordinary commands (with ordinary replies) while subscribed.
#[test]
fn pubsub_in_resp3() {
    let mut s = resp3_client();
    s.write_all(b"SUBSCRIBE r3e:a r3e:b\r\n").unwrap();
    expect(&mut s, push(&["subscribe", "r3e:a"], Some(1)).as_bytes());
    expect(&mut s, push(&["subscribe", "r3e:b"], Some(2)).as_bytes());
    q(&mut env().proxy.client(), &["PUBLISH", "r3e:a", "hello"]);
    expect(
        &mut s,
        push(&["message", "r3e:a", "hello"], None).as_bytes(),
    );

    // Any command, answered as usual, while subscribed.
    assert_eq!(ask(&mut s, "PING"), b"+PONG\r\n");
    assert_eq!(ask(&mut s, "SET r3e:k v"), b"+OK\r\n");
    assert_eq!(ask(&mut s, "GET r3e:nokey"), b"_\r\n");

    s.write_all(b"PSUBSCRIBE r3e:p*\r\n").unwrap();
    expect(&mut s, push(&["psubscribe", "r3e:p*"], Some(3)).as_bytes());
    q(&mut env().proxy.client(), &["PUBLISH", "r3e:pq", "hi"]);
    expect(
        &mut s,
        push(&["pmessage", "r3e:p*", "r3e:pq", "hi"], None).as_bytes(),
    );

    s.write_all(b"SSUBSCRIBE {r3e}s\r\n").unwrap();
    expect(&mut s, push(&["ssubscribe", "{r3e}s"], Some(1)).as_bytes());
    q(&mut env().proxy.client(), &["SPUBLISH", "{r3e}s", "sh"]);
    expect(&mut s, push(&["smessage", "{r3e}s", "sh"], None).as_bytes());

    s.write_all(b"UNSUBSCRIBE r3e:a r3e:b\r\nPUNSUBSCRIBE\r\nUNSUBSCRIBE\r\n")
        .unwrap();
    expect(&mut s, push(&["unsubscribe", "r3e:a"], Some(2)).as_bytes());
    expect(&mut s, push(&["unsubscribe", "r3e:b"], Some(1)).as_bytes());
    expect(
        &mut s,
        push(&["punsubscribe", "r3e:p*"], Some(0)).as_bytes(),
    );
    expect(&mut s, b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n");
    s.write_all(b"SUNSUBSCRIBE\r\n").unwrap();
    expect(
        &mut s,
        push(&["sunsubscribe", "{r3e}s"], Some(0)).as_bytes(),
    );
    assert_eq!(ask(&mut s, "PING"), b"+PONG\r\n");
}

/// A RESP2 subscriber may not switch (Redis refuses HELLO in subscribed mode); a RESP3 one that
/// switches back to RESP2 is in RESP2's subscribed mode.
#[test]
fn switching_while_subscribed() {
    let mut s = connect();
    s.write_all(b"SUBSCRIBE r3f:a\r\n").unwrap();
    expect(&mut s, b"*3\r\n$9\r\nsubscribe\r\n$5\r\nr3f:a\r\n:1\r\n");
    assert_eq!(
        text(&ask(&mut s, "HELLO 3")),
        "-ERR Can't execute 'hello': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );

    let mut s = resp3_client();
    s.write_all(b"SUBSCRIBE r3f:b\r\n").unwrap();
    expect(&mut s, push(&["subscribe", "r3f:b"], Some(1)).as_bytes());
    assert!(ask(&mut s, "HELLO 2").starts_with(b"*14"));
    q(&mut env().proxy.client(), &["PUBLISH", "r3f:b", "m"]);
    expect(&mut s, b"*3\r\n$7\r\nmessage\r\n$5\r\nr3f:b\r\n$1\r\nm\r\n");
    assert_eq!(text(&ask(&mut s, "PING")), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
}
