//! The client side: accept connections, decode requests, answer in order.

mod client_admin;
mod clients;
mod hub;
mod inflight;
mod info;
mod listener;
mod local;
mod ops;
mod pubsub_info;
mod session;
mod slowlog;
mod subscription;
mod transaction;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use listener::{serve, Admission};
pub use slowlog::SlowlogSettings;

use arc_swap::ArcSwap;
use hub::Hub;

use crate::backend::BackendSettings;
use crate::budget::OutputLimits;
use crate::metrics::{Metrics, WorkerRequests};
use crate::protocol::Limits;
use crate::route::Router;

#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// The settings a reload may change, as at start-up.
    pub client: ClientSettings,
    pub max_clients: usize,
    pub limits: Limits,
    /// How the worker's subscriber connection is opened and checked.
    pub subscriber: Arc<BackendSettings>,
    /// Reported by INFO.
    pub port: u16,
    /// Which requests SLOWLOG keeps, and how many, at start-up (see [`Frontend::reconfigure`]).
    pub slowlog: SlowlogSettings,
}

/// The client settings a config reload may change. A session reads them once, when its client
/// connects (the output limits of a subscriber, when it first subscribes), so a reload applies
/// to the clients that connect after it, and never changes a limit under a session's feet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// Requests one client may have in flight before the proxy stops reading from it.
    pub max_pipeline: usize,
    pub idle_timeout: Option<Duration>,
    /// Idle time before TCP keepalive probes start on a client socket; `None` turns them off.
    pub tcp_keepalive: Option<Duration>,
    /// How many bytes of unread replies a client may leave in slotgate.
    pub output: OutputLimits,
    /// The same for a subscribed client's unread messages.
    pub pubsub_output: OutputLimits,
}

/// Where a client's session runs: one thread's runtime, holding that thread's router and backend
/// connections, so a request, its backend round trip and its reply are handled by one thread and
/// never wake another. Each worker has its own copy of the slot map; on the request path workers
/// share only the disruption count (read per request, written on rare events) and the metrics.
pub struct Worker {
    rt: tokio::runtime::Handle,
    fe: Arc<Frontend>,
    clients: AtomicUsize,
}

impl Worker {
    pub fn new(rt: tokio::runtime::Handle, fe: Arc<Frontend>) -> Worker {
        Worker {
            rt,
            fe,
            clients: AtomicUsize::new(0),
        }
    }

    fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }
}

/// What every session of one worker shares.
pub struct Frontend {
    pub router: Arc<Router>,
    pub metrics: Arc<Metrics>,
    /// This worker's request counts: its sessions, all on its thread, are their only writers.
    requests: Arc<WorkerRequests>,
    pub settings: SessionSettings,
    totals: Arc<Totals>,
    /// The worker's subscribed clients and their one subscriber connection.
    hub: Arc<Hub>,
    /// Numbers this worker's clients in arrival order, to spread them over backend connections
    /// and masters. Not the client id: clients reach workers in rotation, so one worker's ids
    /// share a residue and would all pick the same connection.
    next_affinity: AtomicUsize,
}

/// Figures the whole proxy reports as one server, whichever worker a client landed on.
struct Totals {
    started: Instant,
    next_client_id: AtomicU64,
    /// Every worker's hub, for PUBSUB NUMSUB to count slotgate's subscribers.
    hubs: std::sync::Mutex<Vec<Arc<Hub>>>,
    /// Every worker's clients, for CLIENT LIST and CLIENT KILL.
    clients: Arc<clients::Registry>,
    /// Commands per second, kept by [`Frontend::sample_ops`].
    ops: Arc<ops::OpsRate>,
    /// INFO's run id and the like, made once.
    process: Arc<info::Process>,
    /// The client limit and the clients connected.
    admission: Arc<Admission>,
    /// What a client that connects now is given.
    client: ArcSwap<ClientSettings>,
    /// SLOWLOG's entries, one log for the whole proxy as a server has one.
    slowlog: Arc<slowlog::Slowlog>,
    /// Clients cut off at an output limit, logged once per limit and interval: a fleet of stuck
    /// consumers would otherwise write a line each.
    cut_offs: crate::logging::Throttle<&'static str>,
}

impl Frontend {
    pub fn new(router: Arc<Router>, metrics: Arc<Metrics>, settings: SessionSettings) -> Frontend {
        let hub = Arc::new(Hub::new(
            router.clone(),
            settings.subscriber.clone(),
            metrics.clone(),
        ));
        let clients = clients::Registry::new();
        clients.start_clock();
        let totals = Arc::new(Totals {
            started: Instant::now(),
            next_client_id: AtomicU64::new(1),
            hubs: std::sync::Mutex::new(vec![hub.clone()]),
            clients,
            ops: Arc::default(),
            process: Arc::new(info::Process::new()),
            admission: Admission::new(settings.max_clients),
            client: ArcSwap::from_pointee(settings.client.clone()),
            slowlog: Arc::new(slowlog::Slowlog::new(settings.slowlog)),
            cut_offs: crate::logging::Throttle::default(),
        });
        Frontend {
            hub,
            router,
            requests: metrics.requests.worker(),
            metrics,
            settings,
            totals,
            next_affinity: AtomicUsize::new(0),
        }
    }

    /// The frontend of another worker: its own router, the same client ids and totals.
    pub fn sibling(&self, router: Arc<Router>) -> Frontend {
        let hub = Arc::new(Hub::new(
            router.clone(),
            self.settings.subscriber.clone(),
            self.metrics.clone(),
        ));
        self.totals
            .hubs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hub.clone());
        Frontend {
            hub,
            router,
            requests: self.metrics.requests.worker(),
            metrics: self.metrics.clone(),
            settings: self.settings.clone(),
            totals: self.totals.clone(),
            next_affinity: AtomicUsize::new(0),
        }
    }

    /// What a client that connects now is given.
    pub fn client_settings(&self) -> Arc<ClientSettings> {
        self.totals.client.load_full()
    }

    /// Applies reloaded client settings, for every worker, to the clients that connect from now
    /// on, the client limit to the next client accepted, and the slow log's settings to the
    /// next replies written.
    pub fn reconfigure(
        &self,
        client: ClientSettings,
        max_clients: usize,
        slowlog: SlowlogSettings,
    ) {
        self.totals.client.store(Arc::new(client));
        self.totals.admission.set_limit(max_clients);
        self.totals.slowlog.configure(slowlog);
    }

    /// The client limit and the clients connected, shared by every worker.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.totals.admission
    }

    /// Tells every client of every worker, and every client still to start, to read nothing
    /// more, answer what it read and close: the proxy is shutting down.
    pub fn drain(&self) {
        self.totals.clients.drain();
    }

    /// Every worker's hub.
    fn hubs(&self) -> Vec<Arc<Hub>> {
        self.totals
            .hubs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stats(&self) -> info::Stats {
        let m = &self.metrics;
        info::Stats {
            uptime: self.totals.started.elapsed(),
            now: info::Stats::since_epoch(),
            tcp_port: self.settings.port,
            connected_clients: m.client_connections.get(),
            maxclients: self.totals.admission.limit(),
            blocked_clients: m.blocked_clients.get(),
            total_connections: m.client_connections_accepted.get(),
            total_commands: total_commands(m),
            ops_per_sec: self.totals.ops.get(),
            rejected_connections: m.client_connections_rejected.get(),
            cpu: info::Cpu::read(),
            process: self.totals.process.clone(),
        }
    }

    /// Samples the commands every worker answered, for INFO's `instantaneous_ops_per_sec`,
    /// until `stop` resolves. One task for the whole proxy, off the request path.
    pub fn sample_ops(
        &self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let metrics = self.metrics.clone();
        ops::sample(
            self.totals.ops.clone(),
            move || total_commands(&metrics),
            stop,
        )
    }
}

/// Every answered request is counted once, as ok or as an error.
fn total_commands(m: &Metrics) -> u64 {
    m.requests_answered()
}
