//! Wiring only: builds the parts from a validated config and runs them until shutdown. Tests call
//! [`run`] with listeners bound to port 0, so they exercise exactly what the binary runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::backend::{BackendSettings, Dedicate, Health, Pool};
use crate::cluster::{refresh, NodeAddr, RefreshSettings, RefreshTrigger, TopologySink, Trigger};
use crate::command::CommandTable;
use crate::config::Config;
use crate::error::AppError;
use crate::frontend::{self, Frontend, SessionSettings, SlowlogSettings, Worker};
use crate::metrics::http::HealthSource;
use crate::metrics::Metrics;
use crate::order::Disruptions;
use crate::protocol::Limits;
use crate::route::{RouteSettings, Router, Routers, ScriptCache, ScriptLimits};

struct Readiness(Arc<Routers>);

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
///
/// The data path runs on `workers` threads (one per core by default), each a single-threaded
/// runtime with its own router and backend connections; the caller's runtime only accepts
/// clients, refreshes the slot map and serves metrics.
pub async fn run(
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let metrics = Arc::new(Metrics::new());
    let trigger = RefreshTrigger::default();
    let stop = CancellationToken::new();
    // However `run` ends, even by being dropped, the worker threads end with it.
    let _stop_workers = stop.clone().drop_guard();
    let (runtimes, mut stopped) = start_workers(worker_count(config.workers), &stop).await?;
    let backend = backend_settings(&config);
    let routers = routers(&config, &backend, &runtimes, &trigger, &metrics);
    let all = Arc::new(Routers::new(routers.clone(), metrics.clone()));
    spawn_background(&config, all, trigger, metrics_listener, &metrics, &stop);
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let settings = session_settings(&config, port, backend);
    let first = Frontend::new(routers[0].clone(), metrics, settings);
    tokio::spawn(first.sample_ops(stop.clone().cancelled_owned()));
    let workers: Vec<Arc<Worker>> = runtimes
        .into_iter()
        .zip(routers)
        .map(|(rt, router)| Arc::new(Worker::new(rt, Arc::new(first.sibling(router)))))
        .collect();
    tracing::info!(listen = %config.listen, port, workers = workers.len(), "slotgate serving");
    frontend::serve(listener, workers, config.max_clients, shutdown).await;
    stop.cancel();
    // Every worker thread drops its sender after its runtime, and with it every session and
    // backend connection, is gone.
    let _ = stopped.recv().await;
    Ok(())
}

/// One router per worker runtime, each with its own backend connections; they share the refresh
/// trigger, the metrics, the disruption count and the scripts clients loaded.
fn routers(
    config: &Config,
    backend: &Arc<BackendSettings>,
    runtimes: &[Handle],
    trigger: &RefreshTrigger,
    metrics: &Arc<Metrics>,
) -> Vec<Arc<Router>> {
    let b = &config.backend;
    let on_failure = trigger.clone();
    let disruptions = Arc::new(Disruptions::default());
    let health = Arc::new(Health::new(
        Arc::new(move || on_failure.request(Trigger::Failure)),
        disruptions.clone(),
    ));
    let route = RouteSettings {
        max_redirects: config.topology.max_redirects,
        hold_timeout: b.hold_timeout(),
        read_from: b.read_from,
    };
    let scripts = Arc::new(ScriptCache::new(ScriptLimits {
        max_scripts: config.scripts.cache_max_scripts,
        max_bytes: config.scripts.cache_max_bytes,
    }));
    let dedicate = Arc::new(Dedicate::new(
        b.max_dedicated_per_node,
        backend.clone(),
        metrics.clone(),
        health.clone(),
    ));
    runtimes
        .iter()
        .map(|rt| {
            let pool = Pool::new(
                backend.clone(),
                metrics.clone(),
                health.clone(),
                rt.clone(),
                dedicate.clone(),
            );
            Arc::new(Router::new(
                pool,
                trigger.clone(),
                route,
                metrics.clone(),
                disruptions.clone(),
                scripts.clone(),
            ))
        })
        .collect()
}

fn backend_settings(config: &Config) -> Arc<BackendSettings> {
    let b = &config.backend;
    Arc::new(BackendSettings {
        connections_per_node: b.connections_per_node,
        max_inflight: b.max_inflight_per_connection,
        connect_timeout: b.connect_timeout(),
        op_timeout: b.op_timeout(),
        reconnect_backoff_min: b.reconnect_backoff_min(),
        reconnect_backoff_max: b.reconnect_backoff_max(),
        limits: reply_limits(limits(config)),
        readonly: b.read_from.uses_replicas(),
    })
}

/// The slot-map refresher, the command learner and the metrics endpoint, on the caller's runtime.
fn spawn_background(
    config: &Config,
    all: Arc<Routers>,
    trigger: RefreshTrigger,
    metrics_listener: Option<TcpListener>,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) {
    let connect_timeout = config.backend.connect_timeout();
    let refresh_settings = RefreshSettings {
        interval: config.topology.refresh_interval(),
        min_interval: config.topology.min_refresh_interval(),
        connect_timeout,
        // A slot map query is small: a node that takes longer than a connect is as good as down.
        query_timeout: connect_timeout,
        limits: reply_limits(limits(config)),
    };
    let seeds: Vec<NodeAddr> = config
        .seeds
        .iter()
        .map(|s| NodeAddr::from(s.as_str()))
        .collect();
    tokio::spawn(refresh::run(
        seeds,
        all.clone() as Arc<dyn TopologySink>,
        trigger,
        refresh_settings.clone(),
        stop.clone().cancelled_owned(),
    ));
    tokio::spawn(learn_commands(all.clone(), refresh_settings, stop.clone()));
    if let Some(l) = metrics_listener {
        tokio::spawn(crate::metrics::http::serve(
            l,
            metrics.clone(),
            Arc::new(Readiness(all)),
            stop.clone().cancelled_owned(),
        ));
    }
}

fn session_settings(
    config: &Config,
    port: u16,
    subscriber: Arc<BackendSettings>,
) -> SessionSettings {
    SessionSettings {
        max_pipeline: config.client.max_pipeline,
        max_clients: config.max_clients,
        idle_timeout: config.client.idle_timeout(),
        limits: limits(config),
        output: config.client.output_limits(),
        pubsub_output: config.client.pubsub_output_limits(),
        subscriber,
        port,
        slowlog: SlowlogSettings {
            slower_than: config.slowlog.slower_than(),
            max_len: config.slowlog.max_len,
        },
    }
}

fn worker_count(workers: usize) -> usize {
    match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Starts `n` threads, each running a single-threaded runtime until `stop` is cancelled. The
/// receiver yields `None` once all of them have dropped their runtimes. Each runtime is built and
/// dropped on its own thread: dropping one here, inside the caller's runtime, would panic.
async fn start_workers(
    n: usize,
    stop: &CancellationToken,
) -> Result<(Vec<Handle>, mpsc::Receiver<()>), AppError> {
    let (done, stopped) = mpsc::channel(1);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (started, handle) = oneshot::channel();
        let stop = stop.clone();
        let done = done.clone();
        std::thread::Builder::new()
            .name(format!("slotgate-worker-{i}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let rt = match rt {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                let _ = started.send(Ok(rt.handle().clone()));
                rt.block_on(stop.cancelled());
                drop(rt);
                drop(done);
            })
            .map_err(AppError::Runtime)?;
        match handle.await {
            Ok(Ok(h)) => handles.push(h),
            Ok(Err(e)) => return Err(AppError::Runtime(e)),
            Err(_) => {
                return Err(AppError::Runtime(std::io::Error::other(
                    "worker thread ended",
                )))
            }
        }
    }
    Ok((handles, stopped))
}

/// Learns key positions of commands the builtin table lacks (modules, newer servers) from a
/// master's `COMMAND` reply, once the cluster is reachable. Until then the builtin table serves.
async fn learn_commands(routers: Arc<Routers>, s: RefreshSettings, stop: CancellationToken) {
    loop {
        let master = routers
            .current()
            .shards()
            .first()
            .map(|sh| sh.master.clone());
        if let Some(addr) = master {
            match refresh::query(&addr, &[b"COMMAND"], &s).await {
                Ok(reply) => {
                    let mut table = CommandTable::builtin();
                    let learned = table.learn(&reply);
                    routers.set_commands(table);
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
