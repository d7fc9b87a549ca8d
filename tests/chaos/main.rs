//! Chaos tests: faults staged on a real Redis Cluster while client threads write and read through
//! slotgate. A master is SIGKILLed, SIGSTOPped or restarted; a replica takes over by hand; slots
//! move in bulk; a new master joins and takes slots. Each test asks that the other shards never
//! notice, that the faulty shard serves again soon after its replica is promoted, that no
//! acknowledged write is lost and that no client ever reads a value older than its own last
//! acknowledged write. Clients blocked in BLPOP while their master is replaced must each get
//! one value exactly once, or be told that the outcome is unknown (`blocking.rs`). Subscribers
//! must hear again soon after the node holding slotgate's subscriber connection is killed or
//! stopped, and from then on get every message in order (`pubsub.rs`); shard channels' subscribers
//! likewise when the channel's master fails over or is killed, never hearing a message twice
//! (`sharded.rs`).
//!
//! Every test starts its own cluster and its own proxy, because it breaks them. They run one at a
//! time (`setup::start` holds a lock): six Redis nodes, a proxy and six client threads per test
//! already fill a two-core machine, and with a 1 s cluster-node-timeout an overloaded machine
//! makes nodes suspect healthy peers. Measured windows are printed; run with `--nocapture`.

#[path = "../common/mod.rs"]
mod common;

mod blocking;
mod extra_node;
mod failover;
mod hung;
mod load;
mod order;
mod planned;
mod pubsub;
mod report;
mod run;
mod setup;
mod sharded;
mod verify;
mod watch;
