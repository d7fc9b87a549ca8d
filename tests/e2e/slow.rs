//! Clients that do not read their replies: bounded by bytes, disconnected at their output buffer
//! limit, and nobody else notices.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use redis::Value;

use crate::q;
use crate::transactions::own_proxy;

const MIB: usize = 1024 * 1024;

#[test]
fn a_client_that_never_reads_is_cut_off_at_the_hard_limit() {
    let proxy = own_proxy(|c| {
        c.client.output_buffer_hard_bytes = 8 * MIB;
        c.client.output_buffer_soft_bytes = 2 * MIB;
    });
    let mut c = proxy.client();
    let value = vec![b'v'; MIB];
    let _: () = redis::cmd("SET")
        .arg("slow:big")
        .arg(&value)
        .query(&mut c)
        .unwrap();

    let mut slow = std::net::TcpStream::connect(proxy.addr).unwrap();
    slow.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let gets = b"GET slow:big\r\n".repeat(200);
    // The proxy may stop reading (backpressure) or close the connection before all of it is in.
    let _ = slow.write_all(&gets);
    let start = Instant::now();
    while proxy.metric("slotgate_output_limit_disconnects_total{limit=\"hard\"}") != Some(1.0) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not cut off: {:?}",
            proxy.metric("slotgate_output_limit_disconnects_total{limit=\"hard\"}")
        );
        // Other clients are served meanwhile.
        assert_eq!(q(&mut c, &["PING"]), Value::SimpleString("PONG".into()));
        std::thread::sleep(Duration::from_millis(20));
    }
    // The slow client finds its connection closed once it reads what reached its socket.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = vec![0u8; MIB];
    let mut got = 0;
    loop {
        match slow.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < 200 * MIB, "the slow client got every reply: {got}");
    let reply: Vec<u8> = redis::cmd("GET").arg("slow:big").query(&mut c).unwrap();
    assert_eq!(reply.len(), MIB);
}

#[test]
fn a_slow_but_steady_reader_gets_every_reply() {
    let proxy = own_proxy(|c| {
        c.client.output_buffer_hard_bytes = 8 * MIB;
        c.client.output_buffer_soft_bytes = 2 * MIB;
    });
    let mut c = proxy.client();
    let value = vec![b'w'; 256 * 1024];
    let _: () = redis::cmd("SET")
        .arg("slow:mid")
        .arg(&value)
        .query(&mut c)
        .unwrap();
    // Pipelines of 20 x 256 KiB = 5 MiB each, 25 MiB in all: over the soft limit while each is
    // read, never over the hard one. (One pipeline asking for more than the hard limit at once
    // is cut off, as Redis would: its replies are all on their way before any is read.)
    for _ in 0..5 {
        let mut pipe = redis::pipe();
        for _ in 0..20 {
            pipe.cmd("GET").arg("slow:mid");
        }
        let replies: Vec<Vec<u8>> = pipe.query(&mut c).unwrap();
        assert_eq!(replies.len(), 20);
        assert!(replies.iter().all(|r| r.len() == 256 * 1024));
    }
    assert_eq!(
        proxy.metric("slotgate_output_limit_disconnects_total{limit=\"hard\"}"),
        Some(0.0)
    );
}
