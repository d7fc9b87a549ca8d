//! The backend's knobs as plain values, resolved from the config once at start-up so the data
//! path never looks into the config.

use std::time::Duration;

use crate::protocol::Limits;

/// Backend knobs, resolved from the config once so the data path reads plain values.
#[derive(Clone, Debug)]
pub struct BackendSettings {
    pub connections_per_node: usize,
    /// Bound on requests queued or awaiting a reply on one connection: the backpressure point.
    pub max_inflight: usize,
    pub connect_timeout: Duration,
    pub op_timeout: Duration,
    pub reconnect_backoff_min: Duration,
    pub reconnect_backoff_max: Duration,
    pub limits: Limits,
    /// Send READONLY on every new connection, so a replica serves reads of its master's slots.
    /// Harmless on a master, which serves its own slots either way.
    pub readonly: bool,
    /// Idle time before TCP keepalive probes start on a node connection; `None` turns them off.
    pub tcp_keepalive: Option<Duration>,
}
