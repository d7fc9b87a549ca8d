//! The real-cluster harness checked on its own, so that when a proxy chaos test fails we know
//! the cluster under it behaved as the harness claims: topology as requested, failover promotes
//! the replica we expect, and a restarted node rejoins.

mod common;

use common::cluster::RedisCluster;
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(30);

#[test]
fn cluster_starts_fails_over_and_rejoins() {
    let mut cluster = RedisCluster::start(3, 1, 2000);
    assert_eq!(
        cluster.masters().len(),
        3,
        "masters: {:?}",
        cluster.masters()
    );
    assert_eq!(
        cluster.replicas().len(),
        3,
        "replicas: {:?}",
        cluster.replicas()
    );
    assert_eq!(cluster.addrs().len(), 6);
    assert_eq!(cluster.seed_addr(), cluster.addrs()[0]);

    let seed = cluster.nodes[0].port;
    assert_eq!(cluster.cli(seed, &["-c", "SET", "harness:key", "v1"]), "OK");
    assert_eq!(cluster.cli(seed, &["-c", "GET", "harness:key"]), "v1");

    let slot: u16 = cluster
        .cli(seed, &["CLUSTER", "KEYSLOT", "harness:key"])
        .parse()
        .expect("CLUSTER KEYSLOT returns a number");
    let old_master = cluster.master_of_slot(slot);
    let replica = cluster.replica_of(old_master);
    assert_ne!(old_master, replica);
    cluster.wait_replicas_synced(SETTLE);

    cluster.kill(old_master);
    cluster.wait_ok(SETTLE);
    assert_eq!(
        cluster.master_of_slot(slot),
        replica,
        "the replica took over"
    );
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "masters after failover: {masters:?}");
    assert!(masters.contains(&replica) && !masters.contains(&old_master));
    assert_eq!(cluster.cli(replica, &["-c", "GET", "harness:key"]), "v1");

    cluster.restart(old_master);
    cluster.wait_ok(SETTLE);
    assert_eq!(
        cluster.replica_of(replica),
        old_master,
        "old master rejoins as replica"
    );
    assert_eq!(cluster.masters().len(), 3);
    assert_eq!(cluster.replicas().len(), 3);

    // A stopped node must not hang the harness's own queries.
    cluster.stop(old_master);
    assert_eq!(cluster.replicas().len(), 2);
    cluster.cont(old_master);
    cluster.wait_ok(SETTLE);
}
