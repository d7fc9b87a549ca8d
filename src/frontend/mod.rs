//! The client side: accept connections, decode requests, answer in order.

mod inflight;
mod info;
mod listener;
mod local;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use listener::serve;

use crate::metrics::Metrics;
use crate::protocol::Limits;
use crate::route::Router;

#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// Requests one client may have in flight before the proxy stops reading from it.
    pub max_pipeline: usize,
    pub max_clients: usize,
    pub idle_timeout: Option<Duration>,
    pub limits: Limits,
    /// Reported by INFO.
    pub port: u16,
}

/// What every session shares.
pub struct Frontend {
    pub router: Arc<Router>,
    pub metrics: Arc<Metrics>,
    pub settings: SessionSettings,
    started: Instant,
    next_client_id: AtomicU64,
    commands_processed: AtomicU64,
}

impl Frontend {
    pub fn new(router: Arc<Router>, metrics: Arc<Metrics>, settings: SessionSettings) -> Frontend {
        Frontend {
            router,
            metrics,
            settings,
            started: Instant::now(),
            next_client_id: AtomicU64::new(1),
            commands_processed: AtomicU64::new(0),
        }
    }

    fn stats(&self) -> info::Stats {
        info::Stats {
            uptime_secs: self.started.elapsed().as_secs(),
            tcp_port: self.settings.port,
            connected_clients: self.metrics.client_connections.get(),
            maxclients: self.settings.max_clients,
            total_connections: self.metrics.client_connections_total.get(),
            total_commands: self.commands_processed.load(Ordering::Relaxed),
        }
    }
}
