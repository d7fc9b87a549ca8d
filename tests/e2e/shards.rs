//! Several shard threads behave as one server: clients on different shards see one keyspace,
//! distinct client ids and one command count, and each shard has its own backend connections.

use std::time::{Duration, Instant};

use redis::Value;

use crate::common::proxy::Proxy;
use crate::{env, q};

fn info_field(c: &mut redis::Connection, field: &str) -> u64 {
    let Value::BulkString(text) = q(c, &["INFO"]) else {
        panic!("INFO reply")
    };
    let text = String::from_utf8(text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("INFO lacks {field}: {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn clients_on_different_shards_act_as_one_server() {
    let env = env();
    let proxy = Proxy::start(vec![env.cluster.seed_addr()], |c| c.workers = 3);
    // New clients go to the shard with the fewest, so six open clients sit two to a shard.
    let mut clients: Vec<_> = (0..6).map(|_| proxy.client()).collect();

    let mut ids: Vec<i64> = clients
        .iter_mut()
        .map(|c| match q(c, &["CLIENT", "ID"]) {
            Value::Int(id) => id,
            other => panic!("CLIENT ID reply {other:?}"),
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "client ids repeat across shards: {ids:?}");

    let before = info_field(&mut clients[0], "total_commands_processed");
    // Each client writes keys on every master and reads the next client's keys.
    let mut sent = 0;
    for (i, c) in clients.iter_mut().enumerate() {
        for k in 0..8 {
            let key = format!("shards:{i}:{k}");
            assert_eq!(q(c, &["SET", &key, &i.to_string()]), Value::Okay);
            sent += 1;
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let next = (i + 1) % 6;
        for k in 0..8 {
            let key = format!("shards:{next}:{k}");
            assert_eq!(
                q(c, &["GET", &key]),
                Value::BulkString(next.to_string().into_bytes())
            );
            sent += 1;
        }
    }
    // The first INFO was counted once its reply was written, before this one was read.
    let after = info_field(&mut clients[0], "total_commands_processed");
    assert_eq!(after - before, sent + 1);
    assert_eq!(info_field(&mut clients[3], "connected_clients"), 6);

    // One connection per master for each of the three shards.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = proxy.scrape().sum("slotgate_backend_connections", &[]);
        if open == 9.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backend connections {open:?}, want 3 shards x 3 masters"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
