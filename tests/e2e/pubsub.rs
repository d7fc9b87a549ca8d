//! Publish/subscribe through slotgate in RESP2, byte for byte as Redis answers, and the shared
//! subscriber connections behind it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redis::Value;

use crate::common::proxy::Proxy;
use crate::raw::{connect, expect};
use crate::transactions::own_proxy;
use crate::{env, q};

fn publish(channel: &str, message: &str) {
    q(&mut env().proxy.client(), &["PUBLISH", channel, message]);
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

fn push(kind: &str, name: &str, count: i64) -> Vec<u8> {
    format!("*3\r\n{}{}:{count}\r\n", bulk(kind), bulk(name)).into_bytes()
}

fn message(channel: &str, payload: &str) -> Vec<u8> {
    message_kind("message", channel, payload)
}

/// A raw client of `proxy` subscribed to `channel`, its confirmation read.
fn subscriber(proxy: &Proxy, channel: &str) -> TcpStream {
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("SUBSCRIBE {channel}\r\n").as_bytes())
        .unwrap();
    expect(&mut s, &push("subscribe", channel, 1));
    s
}

#[test]
fn subscribed_mode_in_resp2() {
    let mut s = connect();
    s.write_all(b"SUBSCRIBE ps1:a ps1:b\r\n").unwrap();
    expect(&mut s, &push("subscribe", "ps1:a", 1));
    expect(&mut s, &push("subscribe", "ps1:b", 2));
    publish("ps1:a", "hello");
    expect(&mut s, &message("ps1:a", "hello"));

    s.write_all(b"PING\r\nPING hi\r\n").unwrap();
    expect(
        &mut s,
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n*2\r\n$4\r\npong\r\n$2\r\nhi\r\n",
    );
    s.write_all(b"GET ps1:x\r\n").unwrap();
    expect(
        &mut s,
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );

    s.write_all(b"PSUBSCRIBE ps1:p*\r\n").unwrap();
    expect(&mut s, &push("psubscribe", "ps1:p*", 3));
    publish("ps1:pq", "hi");
    expect(
        &mut s,
        format!(
            "*4\r\n{}{}{}{}",
            bulk("pmessage"),
            bulk("ps1:p*"),
            bulk("ps1:pq"),
            bulk("hi")
        )
        .as_bytes(),
    );

    s.write_all(b"UNSUBSCRIBE ps1:a ps1:b\r\n").unwrap();
    expect(&mut s, &push("unsubscribe", "ps1:a", 2));
    expect(&mut s, &push("unsubscribe", "ps1:b", 1));
    s.write_all(b"PUNSUBSCRIBE\r\n").unwrap();
    expect(&mut s, &push("punsubscribe", "ps1:p*", 0));
    // Out of subscribed mode, everything works again; nothing subscribed answers with a nil.
    s.write_all(b"GET ps1:x\r\nUNSUBSCRIBE\r\n").unwrap();
    expect(&mut s, b"$-1\r\n*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
}

#[test]
fn reset_leaves_subscribed_mode() {
    let mut s = connect();
    s.write_all(b"SUBSCRIBE ps2:a\r\n").unwrap();
    expect(&mut s, &push("subscribe", "ps2:a", 1));
    s.write_all(b"RESET\r\nGET ps2:x\r\n").unwrap();
    expect(&mut s, b"+RESET\r\n$-1\r\n");
    publish("ps2:a", "gone");
    s.write_all(b"PING\r\n").unwrap();
    // No message for a client that left, only the PING's reply.
    expect(&mut s, b"+PONG\r\n");
}

/// What every node says `PUBSUB NUMSUB channel` is, added up: how many connections subscribe.
fn node_subscriptions(channel: &str) -> i64 {
    let cluster = &env().cluster;
    cluster
        .ports()
        .into_iter()
        .map(|port| {
            let out = cluster.cli(port, &["PUBSUB", "NUMSUB", channel]);
            out.lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn a_thousand_subscribers_share_the_subscriber_connections() {
    let proxy = own_proxy(|c| c.workers = 2);
    let mut subscribers: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(proxy.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(b"SUBSCRIBE ps3:all\r\n").unwrap();
            s
        })
        .collect();
    for s in &mut subscribers {
        expect(s, &push("subscribe", "ps3:all", 1));
    }
    // One subscriber connection per worker, however many clients.
    assert!(
        node_subscriptions("ps3:all") <= 2,
        "{}",
        node_subscriptions("ps3:all")
    );
    assert!(proxy.metric("slotgate_subscriber_connections") <= Some(2.0));
    q(&mut proxy.client(), &["PUBLISH", "ps3:all", "to everyone"]);
    for s in &mut subscribers {
        expect(s, &message("ps3:all", "to everyone"));
    }
    drop(subscribers);
    let start = Instant::now();
    while node_subscriptions("ps3:all") != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the node still subscribes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_subscriber_that_stops_reading_is_cut_off_and_the_others_get_every_message() {
    let proxy = own_proxy(|c| {
        c.client.pubsub_output_buffer_hard_bytes = 1024 * 1024;
        c.client.pubsub_output_buffer_soft_bytes = 256 * 1024;
    });
    let mut slow = subscriber(&proxy, "ps4:feed");
    let mut fast = subscriber(&proxy, "ps4:feed");
    let payload = "m".repeat(16 * 1024);
    let mut publisher = proxy.client();
    let want = message("ps4:feed", &payload);
    let mut got = vec![0u8; want.len()];
    // 400 x 16 KiB = 6.4 MiB: far past the slow one's 1 MiB limit.
    for _ in 0..400 {
        q(&mut publisher, &["PUBLISH", "ps4:feed", &payload]);
        fast.read_exact(&mut got).unwrap();
        assert!(got == want, "the fast subscriber missed a message");
    }
    let start = Instant::now();
    while proxy.metric("slotgate_output_limit_disconnects_total{limit=\"hard\"}") != Some(1.0) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the slow subscriber was not cut off"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sink = vec![0u8; 64 * 1024];
    let mut read = 0;
    while let Ok(n) = slow.read(&mut sink) {
        if n == 0 {
            break;
        }
        read += n;
    }
    assert!(
        read < 400 * want.len(),
        "the slow subscriber got everything: {read}"
    );
    assert_eq!(
        q(&mut publisher, &["PING"]),
        Value::SimpleString("PONG".into())
    );
}

#[test]
fn sharded_pubsub_reaches_the_subscriber_and_counts_apart() {
    let mut s = connect();
    s.write_all(b"SSUBSCRIBE {shps1}a {shps1}b\r\n").unwrap();
    expect(&mut s, &push("ssubscribe", "{shps1}a", 1));
    expect(&mut s, &push("ssubscribe", "{shps1}b", 2));
    s.write_all(b"SUBSCRIBE shps1:plain\r\n").unwrap();
    // Plain channels and patterns are counted apart from shard channels, as Redis does.
    expect(&mut s, &push("subscribe", "shps1:plain", 1));
    q(
        &mut env().proxy.client(),
        &["SPUBLISH", "{shps1}a", "sharded"],
    );
    expect(&mut s, &message_kind("smessage", "{shps1}a", "sharded"));
    s.write_all(b"SSUBSCRIBE {shps1}a other\r\n").unwrap();
    expect(
        &mut s,
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    );
    s.write_all(b"SUNSUBSCRIBE\r\n").unwrap();
    expect(&mut s, &push("sunsubscribe", "{shps1}a", 1));
    expect(&mut s, &push("sunsubscribe", "{shps1}b", 0));
}

/// The channel's slot moves to another master while a client subscribes: Redis drops the shard
/// subscription there (a `sunsubscribe` push to slotgate), and slotgate subscribes again at the
/// new owner, so the client keeps receiving without doing anything.
#[test]
fn a_shard_channel_keeps_delivering_across_a_reshard_of_its_slot() {
    use crate::transactions::{move_slot, slot_and_masters};
    let (slot, from, to) = slot_and_masters("{shps2}");
    let mut s = connect();
    s.write_all(b"SSUBSCRIBE {shps2}feed\r\n").unwrap();
    expect(&mut s, &push("ssubscribe", "{shps2}feed", 1));
    let mut publisher = env().proxy.client();
    q(&mut publisher, &["SPUBLISH", "{shps2}feed", "before"]);
    expect(&mut s, &message_kind("smessage", "{shps2}feed", "before"));

    move_slot(slot, from, to);
    // Publish until the subscriber hears one: at most once, so the first may go unheard while
    // slotgate subscribes at the new owner.
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut heard = None;
    let mut buf = vec![0u8; 4096];
    for i in 0.. {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nothing heard after the move"
        );
        q(
            &mut publisher,
            &["SPUBLISH", "{shps2}feed", &format!("after-{i}")],
        );
        if let Ok(n) = s.read(&mut buf) {
            if n > 0 {
                heard = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                break;
            }
        }
    }
    let heard = heard.unwrap();
    assert!(
        heard.contains("smessage") && heard.contains("after-"),
        "{heard}"
    );
    println!("heard again {:?} after the move", start.elapsed());
    move_slot(slot, to, from);
}

fn message_kind(kind: &str, channel: &str, payload: &str) -> Vec<u8> {
    format!("*3\r\n{}{}{}", bulk(kind), bulk(channel), bulk(payload)).into_bytes()
}

#[test]
fn pubsub_numsub_counts_slotgates_clients_and_channels_spans_the_cluster() {
    let proxy = own_proxy(|_| {});
    let subscribers: Vec<TcpStream> = (0..5).map(|_| subscriber(&proxy, "ps5:chat")).collect();
    let mut c = proxy.client();
    let numsub = q(&mut c, &["PUBSUB", "NUMSUB", "ps5:chat", "ps5:nobody"]);
    assert_eq!(
        numsub,
        Value::Array(vec![
            Value::BulkString(b"ps5:chat".to_vec()),
            Value::Int(5),
            Value::BulkString(b"ps5:nobody".to_vec()),
            Value::Int(0),
        ])
    );
    let Value::Array(channels) = q(&mut c, &["PUBSUB", "CHANNELS", "ps5:*"]) else {
        panic!("PUBSUB CHANNELS is an array")
    };
    assert_eq!(channels, vec![Value::BulkString(b"ps5:chat".to_vec())]);
    drop(subscribers);
}
