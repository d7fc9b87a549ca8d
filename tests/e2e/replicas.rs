//! `backend.read_from`: read-only commands served by replicas, writes by masters, READWRITE and
//! READONLY per client, and what happens when a shard has no replica left.

use std::time::{Duration, Instant};

use redis::Value;
use slotgate::cluster::Slot;
use slotgate::route::ReadFrom;

use crate::common::cluster::RedisCluster;
use crate::common::proxy::Proxy;
use crate::transactions::own_proxy;
use crate::{env, q, q_err};

/// `calls` of `cmdstat_<command>` in the node's INFO commandstats.
fn calls(cluster: &RedisCluster, port: u16, command: &str) -> u64 {
    let info = cluster.cli(port, &["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn reads_go_to_the_replica_writes_to_the_master() {
    let cluster = &env().cluster;
    let proxy = own_proxy(|c| c.backend.read_from = ReadFrom::PreferReplica);
    let mut c = proxy.client();
    let key = "{rr1}k";
    let master = cluster.master_of_slot(Slot::for_key(key.as_bytes()).get());
    let replica = cluster.replica_of(master);
    q(&mut c, &["SET", key, "v"]);
    // The replica has it once WAIT says so.
    assert_eq!(q(&mut c, &["WAIT", "1", "5000"]), Value::Int(1));
    let before = calls(cluster, replica, "get");
    for _ in 0..20 {
        assert_eq!(q(&mut c, &["GET", key]), bulk("v"));
    }
    assert_eq!(calls(cluster, replica, "get") - before, 20);

    // READWRITE: this client's reads go to the master; READONLY: back to the replica.
    assert_eq!(q(&mut c, &["READWRITE"]), Value::Okay);
    let (replica_before, master_before) = (
        calls(cluster, replica, "get"),
        calls(cluster, master, "get"),
    );
    for _ in 0..5 {
        q(&mut c, &["GET", key]);
    }
    assert_eq!(calls(cluster, replica, "get"), replica_before);
    assert!(calls(cluster, master, "get") >= master_before + 5);
    assert_eq!(q(&mut c, &["READONLY"]), Value::Okay);
    q(&mut c, &["GET", key]);
    assert_eq!(calls(cluster, replica, "get"), replica_before + 1);

    // A split read (MGET over several slots) reads replicas too; a transaction reads the master.
    q(&mut c, &["MGET", "rr1:a", "rr1:b", "rr1:c"]);
    let before = calls(cluster, replica, "get");
    q(&mut c, &["MULTI"]);
    q(&mut c, &["GET", key]);
    assert_eq!(q(&mut c, &["EXEC"]), Value::Array(vec![bulk("v")]));
    assert_eq!(calls(cluster, replica, "get"), before);
}

#[test]
fn the_default_reads_masters_and_accepts_readonly() {
    let cluster = &env().cluster;
    let mut c = env().proxy.client();
    let key = "{rr2}k";
    let master = cluster.master_of_slot(Slot::for_key(key.as_bytes()).get());
    let replica = cluster.replica_of(master);
    let before = calls(cluster, replica, "get");
    assert_eq!(q(&mut c, &["READONLY"]), Value::Okay);
    for _ in 0..5 {
        q(&mut c, &["GET", key]);
    }
    assert_eq!(calls(cluster, replica, "get"), before);
    assert_eq!(q(&mut c, &["READWRITE"]), Value::Okay);
}

/// A shard whose replica is gone: `prefer_replica` reads its master, `replica` says why not.
#[test]
fn without_a_replica() {
    let mut cluster = RedisCluster::start(3, 1, 2000);
    let prefer = Proxy::start(vec![cluster.seed_addr()], |c| {
        c.backend.read_from = ReadFrom::PreferReplica;
    });
    let strict = Proxy::start(vec![cluster.seed_addr()], |c| {
        c.backend.read_from = ReadFrom::Replica;
    });
    let key = "{rr3}k";
    let slot = Slot::for_key(key.as_bytes()).get();
    let master = cluster.master_of_slot(slot);
    let replica = cluster.replica_of(master);
    let (mut p, mut s) = (prefer.client(), strict.client());
    q(&mut p, &["SET", key, "v"]);
    assert_eq!(q(&mut p, &["WAIT", "1", "5000"]), Value::Int(1));
    assert_eq!(q(&mut s, &["GET", key]), bulk("v"));

    cluster.kill(replica);
    // The first read after the kill may find the connection broken; a read is safe to repeat,
    // so it is answered from the master.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(q(&mut p, &["GET", key]), bulk("v"));
        let answer = redis::cmd("GET").arg(key).query::<Value>(&mut s);
        match answer {
            Err(e)
                if e.to_string()
                    .contains(&format!("no replica serves slot {slot}")) =>
            {
                break
            }
            other => assert!(Instant::now() < deadline, "still served: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = q_err(&mut s, &["GET", key]);
    assert!(refused.contains("(read_from: replica)"), "{refused}");
    // Writes are untouched, in both modes.
    assert_eq!(q(&mut s, &["SET", key, "w"]), Value::Okay);
    assert_eq!(q(&mut p, &["GET", key]), bulk("w"));
}
