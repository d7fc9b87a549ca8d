//! The keyspace-wide commands against scripted fake masters on loopback: the SCAN walk from
//! shard to shard, across a failover and a resharding, and the other commands' merges.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::router::Router;
use crate::backend::Lane;
use crate::cluster::{NodeAddr, Shard, Topology};
use crate::command::CommandTable;
use crate::fake::{always, fake_node, request, router, Answer, Script};
use crate::metrics::Metrics;
use crate::order::Turn;
use crate::protocol::{Frame, Limits, Proto, Reply};

async fn run(router: &Router, words: &[&str]) -> Reply {
    run_in(router, words, Proto::Resp2).await
}

async fn run_in(router: &Router, words: &[&str], proto: Proto) -> Reply {
    let req = request(words);
    let plan = CommandTable::builtin().classify(&req);
    let lane = Lane {
        proto,
        ..Lane::INTERNAL
    };
    router.execute(&req, plan, lane, Turn::now(), None).await
}

fn shard(master: &NodeAddr) -> Shard {
    Shard {
        master: master.clone(),
        replicas: Vec::new(),
        epoch: 1,
    }
}

/// A map of `(first, last, master)` ranges.
fn map(ranges: &[(u64, u64, &NodeAddr)]) -> Topology {
    Topology::from_ranges(ranges.iter().map(|&(a, b, m)| (a, b, shard(m)))).unwrap()
}

/// The cursors a fake master was sent, in order.
type Cursors = Arc<Mutex<Vec<u64>>>;

/// A master holding `keys` whose SCAN returns two keys a page; its cursor is the index of the
/// next key, offset by `base` so that two nodes with the same keys use different cursors.
fn scanning(keys: &[&str], base: u64) -> (Script, Cursors) {
    let keys: Vec<Bytes> = keys.iter().map(|k| Bytes::from(k.to_string())).collect();
    let cursors: Cursors = Arc::default();
    let sent = cursors.clone();
    let script: Script = Arc::new(move |args, _| {
        let cursor: u64 = std::str::from_utf8(&args[1]).unwrap().parse().unwrap();
        sent.lock().unwrap().push(cursor);
        let from = cursor.saturating_sub(base) as usize;
        let to = (from + 2).min(keys.len());
        let next = if to == keys.len() {
            0
        } else {
            base + to as u64
        };
        let page: Vec<Reply> = keys[from..to].iter().map(|k| Reply::bulk(k)).collect();
        let reply = Reply::array(&[
            Reply::bulk(next.to_string().as_bytes()),
            Reply::array(&page),
        ]);
        Answer::Reply(reply.into_bytes())
    });
    (script, cursors)
}

/// One SCAN call: the next cursor and the keys of the page.
async fn scan(router: &Router, cursor: &str) -> (String, Vec<String>) {
    let reply = run(router, &["SCAN", cursor]).await;
    let Ok(Frame::Array(page)) = reply.parse(&Limits::default()) else {
        panic!("{reply:?}")
    };
    let [Frame::Bulk(next), Frame::Array(keys)] = &page[..] else {
        panic!("{page:?}")
    };
    let text = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
    let keys = keys
        .iter()
        .map(|k| match k {
            Frame::Bulk(k) => text(k),
            other => panic!("{other:?}"),
        })
        .collect();
    (text(next), keys)
}

/// Calls SCAN from `cursor` until it says 0; every key, and every cursor slotgate gave.
async fn walk_from(router: &Router, cursor: &str) -> (Vec<String>, Vec<String>) {
    let (mut cursor, mut keys, mut cursors) = (cursor.to_string(), Vec::new(), Vec::new());
    loop {
        let (next, page) = scan(router, &cursor).await;
        keys.extend(page);
        if next == "0" {
            return (keys, cursors);
        }
        cursors.push(next.clone());
        cursor = next;
    }
}

#[tokio::test]
async fn scan_walks_the_shards_in_order_of_their_highest_slot() {
    let (a_script, _) = scanning(&["a1", "a2", "a3"], 0);
    let (b_script, _) = scanning(&["b1", "b2", "b3", "b4"], 0);
    let (a, _) = fake_node(a_script).await;
    let (b, _) = fake_node(b_script).await;
    let router = router(Arc::new(Metrics::new()));
    // b's highest slot (100) is below a's (16383): b is walked first.
    router.install(&map(&[(0, 100, &b), (101, 16383, &a)]));
    let (keys, cursors) = walk_from(&router, "0").await;
    assert_eq!(keys, ["b1", "b2", "b3", "b4", "a1", "a2", "a3"]);
    // Two pages of b, one entering a, one more of a.
    assert_eq!(cursors.len(), 3);
}

#[tokio::test]
async fn scan_starts_a_shard_over_on_its_new_master_after_a_failover() {
    let (old_script, old_cursors) = scanning(&["a1", "a2", "a3", "a4", "a5"], 0);
    // The promoted replica has the same keys, in another order and with other cursors.
    let (new_script, new_cursors) = scanning(&["a5", "a3", "a1", "a4", "a2"], 1000);
    let (b_script, _) = scanning(&["b1"], 0);
    let (old, _) = fake_node(old_script).await;
    let (new, _) = fake_node(new_script).await;
    let (b, _) = fake_node(b_script).await;
    let router = router(Arc::new(Metrics::new()));
    router.install(&map(&[(0, 8000, &old), (8001, 16383, &b)]));

    let (cursor, first) = scan(&router, "0").await;
    assert_eq!(first, ["a1", "a2"]);
    router.install(&map(&[(0, 8000, &new), (8001, 16383, &b)]));
    let (rest, _) = walk_from(&router, &cursor).await;

    let mut seen = [first, rest].concat();
    assert_eq!(seen.pop().as_deref(), Some("b1"));
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["a1", "a2", "a3", "a4", "a5"]);
    assert_eq!(*old_cursors.lock().unwrap(), [0]);
    assert_eq!(*new_cursors.lock().unwrap(), [0, 1002, 1004]);
}

#[tokio::test]
async fn scan_loses_nothing_outside_the_slots_a_reshard_moves_mid_walk() {
    let (a_script, _) = scanning(&["a1", "a2", "a3"], 0);
    let (b_script, b_cursors) = scanning(&["b1", "b2", "b3"], 0);
    let (c_script, _) = scanning(&["c1"], 0);
    let (a, _) = fake_node(a_script).await;
    let (b, _) = fake_node(b_script).await;
    let (c, _) = fake_node(c_script).await;
    let router = router(Arc::new(Metrics::new()));
    router.install(&map(&[
        (0, 5000, &a),
        (5001, 10000, &b),
        (10001, 16383, &c),
    ]));

    let (mut cursor, mut seen) = ("0".to_string(), Vec::new());
    for _ in 0..3 {
        let (next, page) = scan(&router, &cursor).await;
        seen.extend(page);
        cursor = next;
    }
    assert_eq!(seen, ["a1", "a2", "a3", "b1", "b2"]);
    // Mid-walk of b, c takes the lowest slots of a and of b, as `redis-cli --cluster
    // rebalance` does for a new master: c's lowest slot is now below b's, but the walk goes on
    // with b where it was, then c.
    router.install(&map(&[
        (0, 99, &c),
        (100, 5000, &a),
        (5001, 5100, &c),
        (5101, 10000, &b),
        (10001, 16383, &c),
    ]));
    let (rest, _) = walk_from(&router, &cursor).await;
    assert_eq!(rest, ["b3", "c1"]);
    assert_eq!(*b_cursors.lock().unwrap(), [0, 2]);
}

#[tokio::test]
async fn scan_is_held_while_its_master_is_gone_and_goes_on_at_the_promoted_one() {
    let (dead, _) = fake_node(Arc::new(|_: &[Bytes], _| Answer::HangUp)).await;
    let (promoted_script, promoted_cursors) = scanning(&["a1"], 0);
    let (promoted, _) = fake_node(promoted_script).await;
    let router = Arc::new(router(Arc::new(Metrics::new())));
    router.install(&map(&[(0, 16383, &dead)]));
    let asking = router.clone();
    let scan = tokio::spawn(async move { run(&asking, &["SCAN", "0"]).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    router.install(&map(&[(0, 16383, &promoted)]));
    let page = Reply::array(&[Reply::bulk(b"0"), Reply::array(&[Reply::bulk(b"a1")])]);
    assert_eq!(scan.await.unwrap(), page);
    assert_eq!(*promoted_cursors.lock().unwrap(), [0]);
}

#[tokio::test]
async fn scan_refuses_a_node_cursor_it_cannot_carry() {
    let (node, _) = fake_node(always(&b"*2\r\n$13\r\n1099511627776\r\n*0\r\n"[..])).await;
    let router = router(Arc::new(Metrics::new()));
    router.install(&map(&[(0, 16383, &node)]));
    let reply = run(&router, &["SCAN", "0"]).await;
    assert_eq!(
        reply,
        Reply::error_line(&format!(
            "ERR slotgate: SCAN cursor 1099511627776 of {node} does not fit in 40 bits"
        ))
    );
}

#[tokio::test]
async fn scan_answers_an_invalid_cursor_and_passes_node_errors_on() {
    let (node, seen) = fake_node(always(&b"-ERR syntax error\r\n"[..])).await;
    let router = router(Arc::new(Metrics::new()));
    router.install(&map(&[(0, 16383, &node)]));
    assert_eq!(
        run(&router, &["SCAN", "12x"]).await,
        Reply::error_line("ERR invalid cursor")
    );
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        run(&router, &["SCAN", "0", "COUNT", "0"]).await,
        Reply::error_line("ERR syntax error")
    );
}

#[tokio::test]
async fn keys_randomkey_and_flushall_over_two_masters() {
    // Both hold no key for RANDOMKEY, and b has just turned replica for FLUSHALL.
    let master = |keys: &'static [u8], flush: &'static [u8]| -> Script {
        Arc::new(move |args: &[Bytes], _| {
            Answer::Reply(Bytes::from_static(match &args[0][..] {
                b"KEYS" => keys,
                b"RANDOMKEY" => b"$-1\r\n",
                b"FLUSHALL" => flush,
                _ => b"+OK\r\n",
            }))
        })
    };
    let readonly = b"-READONLY You can't write against a read only replica.\r\n";
    let (a, _) = fake_node(master(b"*1\r\n$1\r\na\r\n", b"+OK\r\n")).await;
    let (b, _) = fake_node(master(b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n", readonly)).await;
    let router = router(Arc::new(Metrics::new()));
    router.install(&map(&[(0, 8000, &a), (8001, 16383, &b)]));
    let keys = run(&router, &["KEYS", "*"]).await;
    assert_eq!(
        keys.bytes().as_ref(),
        b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
    );
    assert_eq!(run(&router, &["RANDOMKEY"]).await, Reply::null_bulk());
    assert_eq!(
        run_in(&router, &["RANDOMKEY"], Proto::Resp3).await,
        Reply::null(Proto::Resp3)
    );
    let flush = run(&router, &["FLUSHALL", "ASYNC"]).await;
    assert_eq!(
        flush,
        Reply::error_line(
            "ERR slotgate: 1 of 2 masters failed, the others succeeded; first failure: \
             READONLY You can't write against a read only replica."
        )
    );
}
