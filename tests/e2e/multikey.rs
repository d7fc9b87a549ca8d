//! Multi-key commands split by slot over every master and merged in the client's order.

use redis::Value;

use crate::{env, q, q_err};

/// Keys that land on every master, checked against the live cluster so the test proves it.
fn spread_keys(prefix: &str, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}:{i}")).collect();
    let cluster = &env().cluster;
    let mut masters: Vec<u16> = keys
        .iter()
        .map(|k| {
            let slot: u16 = cluster
                .cli(cluster.nodes[0].port, &["CLUSTER", "KEYSLOT", k])
                .parse()
                .unwrap();
            cluster.master_of_slot(slot)
        })
        .collect();
    masters.sort();
    masters.dedup();
    assert_eq!(masters.len(), 3, "keys {keys:?} should cover all masters");
    keys
}

#[test]
fn mget_mset_across_all_masters() {
    let mut c = env().proxy.client();
    let keys = spread_keys("mk:a", 30);
    let mut mset = vec!["MSET"];
    let values: Vec<String> = (0..keys.len()).map(|i| format!("v{i}")).collect();
    for (k, v) in keys.iter().zip(&values) {
        mset.push(k);
        mset.push(v);
    }
    assert_eq!(q(&mut c, &mset), Value::Okay);
    // Client order, with a missing key and a repeated key mixed in.
    let mut mget = vec!["MGET", "mk:a:missing"];
    mget.extend(keys.iter().map(|s| s.as_str()));
    mget.push(&keys[0]);
    let Value::Array(got) = q(&mut c, &mget) else {
        panic!("MGET reply")
    };
    assert_eq!(got.len(), keys.len() + 2);
    assert_eq!(got[0], Value::Nil);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(
            got[i + 1],
            Value::BulkString(v.clone().into_bytes()),
            "key {}",
            keys[i]
        );
    }
    assert_eq!(got[keys.len() + 1], Value::BulkString(b"v0".to_vec()));
    // Each value really is on its own master: read them back directly from the cluster.
    let cluster = &env().cluster;
    for (k, v) in keys.iter().zip(&values) {
        let slot: u16 = cluster
            .cli(cluster.nodes[0].port, &["CLUSTER", "KEYSLOT", k])
            .parse()
            .unwrap();
        assert_eq!(&cluster.cli(cluster.master_of_slot(slot), &["GET", k]), v);
    }
}

#[test]
fn counting_commands_sum_over_masters() {
    let mut c = env().proxy.client();
    let keys = spread_keys("mk:b", 30);
    for k in &keys {
        q(&mut c, &["SET", k, "1"]);
    }
    let mut args = vec!["EXISTS"];
    args.extend(keys.iter().map(|s| s.as_str()));
    args.push(&keys[1]);
    args.push("mk:b:nope");
    assert_eq!(
        q(&mut c, &args),
        Value::Int(31),
        "EXISTS counts a repeated key twice"
    );
    args[0] = "TOUCH";
    assert_eq!(q(&mut c, &args), Value::Int(31), "TOUCH counts like EXISTS");
    args[0] = "UNLINK";
    let half = &args[..16];
    assert_eq!(q(&mut c, half), Value::Int(15));
    args[0] = "DEL";
    assert_eq!(q(&mut c, &args), Value::Int(15));
    args[0] = "EXISTS";
    assert_eq!(q(&mut c, &args), Value::Int(0));
}

#[test]
fn unsplittable_commands_need_one_slot() {
    let mut c = env().proxy.client();
    // redis-rs renders the CROSSSLOT code its own way; the raw test checks the exact wire text.
    let crossslot = "Keys in request don't hash to the same slot";
    let e = q_err(&mut c, &["RENAME", "mk:c:a", "mk:c:b"]);
    assert!(e.contains(crossslot), "{e}");
    assert!(q_err(&mut c, &["MSETNX", "mk:c:a", "1", "mk:c:b", "2"]).contains(crossslot));
    assert!(q_err(&mut c, &["SUNIONSTORE", "mk:c:d", "mk:c:a", "mk:c:b"]).contains(crossslot));
    assert!(q_err(&mut c, &["SMOVE", "mk:c:a", "mk:c:b", "x"]).contains(crossslot));
    // With a hash tag they share a slot and pass through.
    assert_eq!(
        q(&mut c, &["MSETNX", "{mk:c}a", "1", "{mk:c}b", "2"]),
        Value::Int(1)
    );
    assert_eq!(q(&mut c, &["RENAME", "{mk:c}a", "{mk:c}z"]), Value::Okay);
    q(&mut c, &["SADD", "{mk:c}s1", "a", "b"]);
    q(&mut c, &["SADD", "{mk:c}s2", "b", "c"]);
    assert_eq!(
        q(&mut c, &["SUNIONSTORE", "{mk:c}s3", "{mk:c}s1", "{mk:c}s2"]),
        Value::Int(3)
    );
    assert_eq!(
        q(
            &mut c,
            &["ZUNIONSTORE", "{mk:c}z3", "2", "{mk:c}s1", "{mk:c}s2"]
        ),
        Value::Int(3)
    );
    assert!(q_err(
        &mut c,
        &["ZUNIONSTORE", "mk:c:z3", "2", "{mk:c}s1", "{mk:c}s2"]
    )
    .contains(crossslot));
    assert_eq!(
        q(&mut c, &["LMOVE", "{mk:c}l1", "{mk:c}l2", "LEFT", "RIGHT"]),
        Value::Nil
    );
    assert_eq!(
        q(
            &mut c,
            &["EVAL", "return redis.call('GET', KEYS[1])", "1", "{mk:c}z"]
        ),
        Value::BulkString(b"1".to_vec())
    );
}

#[test]
fn crossslot_error_is_redis_exact_on_the_wire() {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(env().proxy.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"RENAME mk:d:a mk:d:b\r\n").unwrap();
    let want = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}
