//! Wiring only: builds the parts from a validated config and runs them until shutdown. Tests call
//! [`run`] with listeners bound to port 0, so they exercise exactly what the binary runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::backend::{BackendSettings, Health, Pool};
use crate::cluster::{refresh, NodeAddr, RefreshSettings, RefreshTrigger, TopologySink};
use crate::command::CommandTable;
use crate::config::Config;
use crate::frontend::{self, Frontend, SessionSettings};
use crate::metrics::http::HealthSource;
use crate::metrics::Metrics;
use crate::protocol::Limits;
use crate::route::{RouteSettings, Router};

struct Readiness(Arc<Router>);

impl HealthSource for Readiness {
    fn ready(&self) -> bool {
        self.0.is_ready()
    }
}

pub fn limits(config: &Config) -> Limits {
    let p = &config.protocol;
    Limits {
        max_bulk_len: p.max_bulk_len,
        max_array_len: p.max_array_len,
        max_inline_len: p.max_inline_len,
        max_depth: p.max_depth,
        max_frame_len: p.max_frame_len,
    }
}

/// Limits for what the cluster sends back. A reply is the answer to a command the client was
/// allowed to send, so only its total size is capped: an `LRANGE` of two million elements is
/// legitimate, and refusing it would drop a connection other clients share.
fn reply_limits(client: Limits) -> Limits {
    Limits {
        // Every element takes at least 3 bytes (`:0` plus CRLF is 4), so this never binds first.
        max_array_len: client.max_frame_len / 3,
        ..client
    }
}

/// Serves clients on `listener` (and metrics on `metrics_listener`) until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = limits(&config);
    let metrics = Arc::new(Metrics::new());
    let b = &config.backend;
    let trigger = RefreshTrigger::default();
    let on_failure = trigger.clone();
    let health = Arc::new(Health::new(Arc::new(move || on_failure.request())));
    let pool = Pool::new(
        BackendSettings {
            connections_per_node: b.connections_per_node,
            max_inflight: b.max_inflight_per_connection,
            connect_timeout: b.connect_timeout(),
            op_timeout: b.op_timeout(),
            reconnect_backoff_min: b.reconnect_backoff_min(),
            reconnect_backoff_max: b.reconnect_backoff_max(),
            limits: reply_limits(limits),
        },
        metrics.clone(),
        health,
    );
    let router = Arc::new(Router::new(
        pool,
        trigger.clone(),
        RouteSettings {
            max_redirects: config.topology.max_redirects,
            hold_timeout: b.hold_timeout(),
        },
        metrics.clone(),
    ));
    let stop = CancellationToken::new();
    let refresh_settings = RefreshSettings {
        interval: config.topology.refresh_interval(),
        min_interval: config.topology.min_refresh_interval(),
        connect_timeout: b.connect_timeout(),
        // A slot map query is small: a node that takes longer than a connect is as good as down.
        query_timeout: b.connect_timeout(),
        limits: reply_limits(limits),
    };
    let seeds: Vec<NodeAddr> = config
        .seeds
        .iter()
        .map(|s| NodeAddr::from(s.as_str()))
        .collect();
    tokio::spawn(refresh::run(
        seeds,
        router.clone() as Arc<dyn TopologySink>,
        trigger,
        refresh_settings.clone(),
        stop.clone().cancelled_owned(),
    ));
    tokio::spawn(learn_commands(
        router.clone(),
        refresh_settings,
        stop.clone(),
    ));
    if let Some(l) = metrics_listener {
        tokio::spawn(crate::metrics::http::serve(
            l,
            metrics.clone(),
            Arc::new(Readiness(router.clone())),
            stop.clone().cancelled_owned(),
        ));
    }
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let fe = Arc::new(Frontend::new(
        router,
        metrics,
        SessionSettings {
            max_pipeline: config.client.max_pipeline,
            max_clients: config.max_clients,
            idle_timeout: config.client.idle_timeout(),
            limits,
            port,
        },
    ));
    tracing::info!(listen = %config.listen, port, "slotgate serving");
    frontend::serve(listener, fe, shutdown).await;
    stop.cancel();
}

/// Learns key positions of commands the builtin table lacks (modules, newer servers) from a
/// master's `COMMAND` reply, once the cluster is reachable. Until then the builtin table serves.
async fn learn_commands(router: Arc<Router>, s: RefreshSettings, stop: CancellationToken) {
    loop {
        let master = router
            .topology()
            .shards()
            .first()
            .map(|sh| sh.master.clone());
        if let Some(addr) = master {
            match refresh::query(&addr, &[b"COMMAND"], &s).await {
                Ok(reply) => {
                    let mut table = CommandTable::builtin();
                    let learned = table.learn(&reply);
                    router.set_commands(table);
                    tracing::info!(node = %addr, learned, "learned commands from the cluster");
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "COMMAND query failed; will retry"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
