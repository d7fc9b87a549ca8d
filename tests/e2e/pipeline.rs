//! Pipelining, binary safety and big values through the proxy.

use redis::Value;

use crate::common::proxy::Proxy;
use crate::{env, q};

#[test]
fn ten_thousand_command_pipeline_answers_in_order() {
    set_get_pipeline(&mut env().proxy.client(), "pl", 5000);
}

/// Pipelines `SET prefix:i i` and `GET prefix:i` for every i below `n`, and checks every reply
/// in order. Consecutive keys land on different masters; replies must still come back in order.
fn set_get_pipeline(c: &mut redis::Connection, prefix: &str, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SET").arg(format!("{prefix}:{i}")).arg(i);
        pipe.cmd("GET").arg(format!("{prefix}:{i}"));
    }
    let replies: Vec<Value> = pipe.query(c).unwrap();
    assert_eq!(replies.len(), 2 * n);
    for (i, pair) in replies.chunks(2).enumerate() {
        assert_eq!(pair[0], Value::Okay, "SET #{i}");
        assert_eq!(
            pair[1],
            Value::BulkString(i.to_string().into_bytes()),
            "GET #{i}"
        );
    }
}

#[test]
fn mixed_pipeline_keeps_order_across_fast_and_split_requests() {
    // Single-key commands are sent while the proxy reads them; split and keyless ones run as
    // futures of their own. Replies, and the order the node sees writes of one key in, must
    // still follow the client's order, however the two kinds interleave.
    let mut c = env().proxy.client();
    let mut pipe = redis::pipe();
    let n = 400;
    for i in 0..n {
        let (a, b) = (format!("mx:{i}:a"), format!("mx:{i}:b"));
        pipe.cmd("SET").arg(&a).arg(i);
        pipe.cmd("MSET").arg(&b).arg(i + 1).arg(&a).arg(i + 2);
        pipe.cmd("GET").arg(&a);
        pipe.cmd("MGET").arg(&a).arg(&b).arg("mx:none");
        pipe.cmd("INCR").arg(&a);
        pipe.cmd("DBSIZE");
        pipe.cmd("DEL").arg(&a).arg(&b).arg("mx:none");
        pipe.cmd("GET").arg(&b);
    }
    let replies: Vec<Value> = pipe.query(&mut c).unwrap();
    assert_eq!(replies.len(), n * 8);
    let bulk = |v: usize| Value::BulkString(v.to_string().into_bytes());
    for (i, r) in replies.chunks(8).enumerate() {
        assert_eq!(r[0], Value::Okay, "SET #{i}");
        assert_eq!(r[1], Value::Okay, "MSET #{i}");
        assert_eq!(r[2], bulk(i + 2), "GET after MSET #{i}");
        assert_eq!(
            r[3],
            Value::Array(vec![bulk(i + 2), bulk(i + 1), Value::Nil]),
            "MGET #{i}"
        );
        assert_eq!(r[4], Value::Int(i as i64 + 3), "INCR #{i}");
        assert!(
            matches!(r[5], Value::Int(n) if n >= 2),
            "DBSIZE #{i}: {:?}",
            r[5]
        );
        assert_eq!(r[6], Value::Int(2), "DEL #{i}");
        assert_eq!(r[7], Value::Nil, "GET after DEL #{i}");
    }
}

#[test]
fn binary_keys_and_values() {
    let mut c = env().proxy.client();
    let all: Vec<u8> = (0..=255u8).collect();
    let key: Vec<u8> = [b"bin:\r\n\0{".as_slice(), &all].concat();
    let _: () = redis::cmd("SET").arg(&key).arg(&all).query(&mut c).unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut c).unwrap();
    assert_eq!(got, all);
    let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&key)
        .arg(b"bin:other\r\n")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, vec![Some(all.clone()), None]);
}

#[test]
fn sixty_four_mib_value() {
    let mut c = env().proxy.client();
    let value: Vec<u8> = (0..64 * 1024 * 1024)
        .map(|i: usize| (i % 251) as u8)
        .collect();
    let _: () = redis::cmd("SET")
        .arg("big:64m")
        .arg(&value)
        .query(&mut c)
        .unwrap();
    assert_eq!(
        q(&mut c, &["STRLEN", "big:64m"]),
        Value::Int(64 * 1024 * 1024)
    );
    let got: Vec<u8> = redis::cmd("GET").arg("big:64m").query(&mut c).unwrap();
    assert!(got == value, "64 MiB value came back different");
    let _: () = redis::cmd("DEL").arg("big:64m").query(&mut c).unwrap();
}

#[test]
fn many_clients_at_once() {
    let proxy = &env().proxy;
    let handles: Vec<_> = (0..50)
        .map(|t| {
            let mut c = proxy.client();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let k = format!("mc:{t}:{i}");
                    q(&mut c, &["SET", &k, &k]);
                    assert_eq!(q(&mut c, &["GET", &k]), Value::BulkString(k.into_bytes()));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn reply_with_more_elements_than_the_request_array_limit() {
    let mut c = env().proxy.client();
    let _: () = redis::cmd("DEL").arg("big:list").query(&mut c).unwrap();
    let n = 1_100_000usize;
    for chunk in (0..n).collect::<Vec<_>>().chunks(50_000) {
        let _: () = redis::cmd("RPUSH")
            .arg("big:list")
            .arg(chunk)
            .query(&mut c)
            .unwrap();
    }
    let all: Vec<u64> = redis::cmd("LRANGE")
        .arg("big:list")
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    assert_eq!(all.len(), n);
    assert_eq!(all[n - 1], (n - 1) as u64);
    let _: () = redis::cmd("DEL").arg("big:list").query(&mut c).unwrap();
}

#[test]
fn two_thousand_concurrent_clients() {
    use std::io::{Read, Write};
    let addr = env().proxy.addr;
    let mut conns: Vec<std::net::TcpStream> = (0..2000)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    for (i, s) in conns.iter_mut().enumerate() {
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        s.write_all(format!("SET cc:{i} {i}\r\nGET cc:{i}\r\n").as_bytes())
            .unwrap();
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let want = format!("+OK\r\n${}\r\n{i}\r\n", i.to_string().len());
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), want, "client {i}");
    }
}

#[test]
fn a_tiny_inflight_limit_slows_a_pipeline_but_never_stalls_it() {
    // Two requests in flight per backend connection: the writer must send what it holds before
    // waiting for room, or it waits for replies to requests it has not written (until the
    // hung-node check fails them all as timed out, after the short timeout set here).
    let env = env();
    let proxy = Proxy::start(vec![env.cluster.seed_addr()], |c| {
        c.backend.max_inflight_per_connection = 2;
        c.backend.op_timeout_ms = 1_000;
    });
    set_get_pipeline(&mut proxy.client(), "tiny", 20);
}
