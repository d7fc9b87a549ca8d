//! End-to-end tests: a cluster-unaware client talks to slotgate in front of a real 3-master +
//! 3-replica Redis Cluster. All tests in this binary share one cluster and one proxy, so each uses
//! its own key prefix.

#[path = "../common/mod.rs"]
mod common;

mod blocking;
mod clients;
mod families;
mod introspection;
mod keyspace;
mod local;
mod migration;
mod multikey;
mod observability;
mod pipeline;
mod pubsub;
mod raw;
mod replicas;
mod resp3;
mod scripts;
mod shards;
mod slow;
mod status_page;
mod transactions;
mod wait;

use std::sync::OnceLock;

use common::cluster::RedisCluster;
use common::proxy::Proxy;

pub struct Env {
    pub cluster: RedisCluster,
    pub proxy: Proxy,
}

/// The cluster and proxy, started on first use. Never dropped: the harness' watchdog removes the
/// nodes when this process exits, however it exits.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let cluster = RedisCluster::start(3, 1, 2000);
        let proxy = Proxy::start(vec![cluster.seed_addr()], |_| {});
        Env { cluster, proxy }
    })
}

/// Runs a command and returns its reply as a redis::Value, panicking with context on I/O errors.
pub fn q(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query::<redis::Value>(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// Runs a command expected to fail, returning the server's error text.
pub fn q_err(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<redis::Value>(con) {
        Ok(v) => panic!("{args:?} unexpectedly succeeded: {v:?}"),
        Err(e) => e.to_string(),
    }
}
