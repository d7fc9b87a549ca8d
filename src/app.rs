//! Wiring only: builds the parts from a validated config and runs them until shutdown. Tests call
//! [`run`] with listeners bound to port 0, so they exercise exactly what the binary runs.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::backend::{BackendSettings, Dedicate, Health, Pool};
use crate::cluster::{
    refresh, NodeAddr, RefreshPlan, RefreshSettings, RefreshTrigger, TopologySink, Trigger,
};
use crate::command::CommandTable;
use crate::config::Config;
use crate::error::AppError;
use crate::frontend::{self, ClientSettings, Frontend, SessionSettings, SlowlogSettings, Worker};
use crate::health::{Heartbeats, Probes};
use crate::metrics::Metrics;
use crate::order::Disruptions;
use crate::protocol::Limits;
use crate::reload;
use crate::route::{RouteSettings, Router, Routers, ScriptCache, ScriptLimits};

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

/// Serves clients on `listener` (and metrics on `metrics_listener`) until `shutdown` resolves,
/// then drains: `/readyz` fails, new clients are refused, and the clients connected get
/// `shutdown.drain_timeout_ms` to have the requests they sent answered.
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
    // No sender: nothing is ever reloaded.
    let (_, reloads) = mpsc::channel(1);
    run_reloadable(config, listener, metrics_listener, shutdown, reloads).await
}

/// [`run`], applying each config that arrives on `reloads` (validated, as the binary loads its
/// file again on SIGHUP): the keys [`reload`] says can change at once take their new values, the
/// others keep theirs and are named in a log line.
pub async fn run_reloadable(
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reloads: mpsc::Receiver<Config>,
) -> Result<(), AppError> {
    let metrics = Arc::new(Metrics::new());
    let trigger = RefreshTrigger::default();
    let stop = CancellationToken::new();
    // However `run` ends, even by being dropped, the worker threads end with it.
    let _stop_workers = stop.clone().drop_guard();
    let n = worker_count(config.workers);
    let heartbeats = Heartbeats::new(n);
    let (runtimes, mut stopped) = start_workers(n, &stop).await?;
    for (i, rt) in runtimes.iter().enumerate() {
        rt.spawn(heartbeats.clone().beat(i));
    }
    let backend = backend_settings(&config);
    let routers = routers(&config, &backend, &runtimes, &trigger, &metrics);
    let all = Arc::new(Routers::new(routers.clone(), metrics.clone()));
    let probes = Arc::new(Probes::new(all.clone(), heartbeats, &config.health));
    let plan = Arc::new(ArcSwap::from_pointee(refresh_plan(&config)));
    spawn_background(
        &config,
        all,
        &plan,
        &trigger,
        metrics_listener,
        &metrics,
        probes.clone(),
        &stop,
    );
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let settings = session_settings(&config, port, backend);
    let first = Arc::new(Frontend::new(routers[0].clone(), metrics, settings));
    tokio::spawn(first.sample_ops(stop.clone().cancelled_owned()));
    let workers: Vec<Arc<Worker>> = runtimes
        .into_iter()
        .zip(routers)
        .map(|(rt, router)| Arc::new(Worker::new(rt, Arc::new(first.sibling(router)))))
        .collect();
    let drain_timeout = Arc::new(AtomicU64::new(config.shutdown.drain_timeout_ms));
    tracing::info!(listen = %config.listen, port, workers = workers.len(), "slotgate serving");
    let live = Live {
        running: config,
        frontend: first.clone(),
        plan,
        trigger,
        probes: probes.clone(),
        drain_timeout: drain_timeout.clone(),
    };
    tokio::spawn(apply_reloads(reloads, live, stop.clone()));
    let admission = first.admission().clone();
    frontend::serve(listener, workers, admission.clone(), shutdown).await;
    // The listener is closed: new clients are refused. Probes say so before the drain starts.
    probes.drain();
    let timeout = Duration::from_millis(drain_timeout.load(Ordering::Relaxed));
    drain(&first, &admission, timeout).await;
    stop.cancel();
    // Every worker thread drops its sender after its runtime, and with it every session and
    // backend connection, is gone.
    let _ = stopped.recv().await;
    Ok(())
}

/// What a reload can change in a running proxy, and the config it runs.
struct Live {
    running: Config,
    frontend: Arc<Frontend>,
    plan: Arc<ArcSwap<RefreshPlan>>,
    trigger: RefreshTrigger,
    probes: Arc<Probes>,
    drain_timeout: Arc<AtomicU64>,
}

impl Live {
    /// Applies what can change at once, keeps the rest, and says which is which.
    fn apply(&mut self, loaded: Config) {
        let changes = reload::changes(&self.running, &loaded);
        // Restart-only keys keep their running values, also where a reloadable part reads them
        // (the refresher's connect timeout, say).
        let next = reload::in_force(&self.running, &loaded);
        let c = &next;
        self.frontend
            .reconfigure(client_settings(c), c.max_clients, slowlog_settings(c));
        if changes
            .applied
            .iter()
            .any(|k| k.starts_with("seeds") || k.starts_with("topology."))
        {
            // Ends a wait under the old interval; the next refresh asks the new seeds.
            self.plan.store(Arc::new(refresh_plan(c)));
            self.trigger.request(Trigger::Reload);
        }
        self.probes.configure(&c.health);
        self.drain_timeout
            .store(c.shutdown.drain_timeout_ms, Ordering::Relaxed);
        self.running = next;
        if changes.is_empty() {
            tracing::info!("config reloaded: nothing changed");
            return;
        }
        if !changes.applied.is_empty() {
            tracing::info!(applied = ?changes.applied, "config reloaded");
        }
        if !changes.need_restart.is_empty() {
            tracing::warn!(
                keys = ?changes.need_restart,
                "config reloaded, but these keys need a restart and keep their running values"
            );
        }
    }
}

/// Applies each reloaded config until the proxy stops.
async fn apply_reloads(
    mut reloads: mpsc::Receiver<Config>,
    mut live: Live,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            loaded = reloads.recv() => match loaded {
                Some(config) => live.apply(config),
                None => return,
            },
        }
    }
}

/// Lets every client finish the requests it has sent, for at most `timeout`: each reads nothing
/// more, writes its replies and closes, an idle one at once. A client still in a request at the
/// deadline is closed with the workers, and hears nothing more.
async fn drain(fe: &Frontend, admission: &frontend::Admission, timeout: Duration) {
    let started = tokio::time::Instant::now();
    fe.drain();
    let open = admission.open();
    if open > 0 {
        let timeout_ms = timeout.as_millis() as u64;
        tracing::info!(
            clients = open,
            timeout_ms,
            "draining: answering requests in flight"
        );
    }
    while admission.open() > 0 {
        if started.elapsed() >= timeout {
            tracing::warn!(
                clients = admission.open(),
                "drain timeout: closing clients with requests still in flight"
            );
            return;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    if open > 0 {
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "drained");
    }
}

/// How often a drain looks whether every client is gone.
const DRAIN_POLL: Duration = Duration::from_millis(10);

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
        tcp_keepalive: b.tcp_keepalive(),
    })
}

/// What the refresher asks and how often, from the config.
fn refresh_plan(config: &Config) -> RefreshPlan {
    let connect_timeout = config.backend.connect_timeout();
    RefreshPlan {
        seeds: config
            .seeds
            .iter()
            .map(|s| NodeAddr::from(s.as_str()))
            .collect(),
        settings: RefreshSettings {
            interval: config.topology.refresh_interval(),
            min_interval: config.topology.min_refresh_interval(),
            connect_timeout,
            // A slot map query is small: a node slower than a connect is as good as down.
            query_timeout: connect_timeout,
            limits: reply_limits(limits(config)),
        },
    }
}

/// The slot-map refresher, the command learner and the metrics endpoint, on the caller's runtime.
#[allow(clippy::too_many_arguments)]
fn spawn_background(
    config: &Config,
    all: Arc<Routers>,
    plan: &Arc<ArcSwap<RefreshPlan>>,
    trigger: &RefreshTrigger,
    metrics_listener: Option<TcpListener>,
    metrics: &Arc<Metrics>,
    probes: Arc<Probes>,
    stop: &CancellationToken,
) {
    tokio::spawn(refresh::run(
        plan.clone(),
        all.clone() as Arc<dyn TopologySink>,
        trigger.clone(),
        stop.clone().cancelled_owned(),
    ));
    let learn = refresh_plan(config).settings;
    tokio::spawn(learn_commands(all.clone(), learn, stop.clone()));
    if let Some(l) = metrics_listener {
        tokio::spawn(crate::metrics::http::serve(
            l,
            metrics.clone(),
            probes,
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
        client: client_settings(config),
        max_clients: config.max_clients,
        limits: limits(config),
        subscriber,
        port,
        slowlog: slowlog_settings(config),
    }
}

fn slowlog_settings(config: &Config) -> SlowlogSettings {
    SlowlogSettings {
        slower_than: config.slowlog.slower_than(),
        max_len: config.slowlog.max_len,
    }
}

fn client_settings(config: &Config) -> ClientSettings {
    let c = &config.client;
    ClientSettings {
        max_pipeline: c.max_pipeline,
        idle_timeout: c.idle_timeout(),
        tcp_keepalive: c.tcp_keepalive(),
        output: c.output_limits(),
        pubsub_output: c.pubsub_output_limits(),
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
