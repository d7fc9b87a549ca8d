//! Where read-only commands go when replicas may serve them.

use serde::{Deserialize, Serialize};

/// `backend.read_from`. Replicas lag their master a little, so a client reading from one may not
/// see its own last write: a choice for the operator, off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// Every command to the slot's master.
    #[default]
    Master,
    /// Read-only commands to a healthy replica of the slot's shard, or its master when it has
    /// none.
    PreferReplica,
    /// Read-only commands to replicas only: a shard with no healthy replica answers them with
    /// an error.
    Replica,
}

impl ReadFrom {
    pub fn uses_replicas(self) -> bool {
        self != ReadFrom::Master
    }
}
