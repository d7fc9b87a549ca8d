//! Which master serves which slot: the slot function, the immutable snapshot, and the refresher
//! that keeps it current. Only `refresh` does I/O.

pub mod discover;
pub mod refresh;
pub mod slot;
pub mod topology;

pub use refresh::{RefreshPlan, RefreshSettings, RefreshTrigger, TopologySink, Trigger};
pub use slot::{Slot, SLOT_COUNT};
pub use topology::{NodeAddr, Shard, Topology, TopologyError};
