//! Counters, gauges and histograms the proxy keeps, and the HTTP endpoint that exposes them.
//!
//! The metrics live in their own [`Registry`] rather than prometheus's global one, so each test
//! (and each proxy instance in one process) counts on its own.
//!
//! What every request touches is kept apart from the registry's own metric types, which take an
//! atomic read-modify-write (and for a labelled family, a hash lookup) per update: per worker,
//! in cells only that worker writes, indexed by command id ([`requests`]), and per backend
//! connection, in cells only its driver writes ([`nodes`]). The registry adds them up when
//! scraped. Rare events (redirections, refreshes, errors) use the registry's types, their
//! labelled children resolved once, here, and every series created up front so that `rate()`
//! and alerts on "errors > 0" work before the first error. Label values are bounded: commands
//! come from the command table, nodes from the slot map, kinds from fixed lists; none ever goes
//! into a metric name.
//!
//! Each event that is both logged and counted has one method here that does both (the
//! `tracing` line and the metric), so the two never drift apart.

mod cells;
pub mod http;
pub mod nodes;
#[cfg(target_os = "linux")]
mod process;
pub mod requests;
pub mod slot_map;
mod totals;

use std::sync::Arc;

pub use cells::{Span, Spans};
pub use http::{serve, HealthSource};
pub use nodes::{ConnMetrics, NodeMetrics, BACKEND_ERROR_KINDS};
pub use requests::{Requests, WorkerRequests};
pub use slot_map::SlotMapSummary;
pub use totals::{node_totals, NodeTotals};

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every value of `slotgate_topology_refreshes_total`'s `trigger` label: what started a
/// slot-map refresh (see `cluster::refresh::Trigger`).
pub const REFRESH_TRIGGERS: &[&str] = &[
    "startup",
    "periodic",
    "incomplete",
    "degraded",
    "moved",
    "failure",
    "unserved",
    "reload",
];

/// Every value of `slotgate_errors_total`'s `kind` label, so each series exists at 0 from the
/// first scrape and the set stays bounded. Route and command tests check that every error kind
/// they emit is listed here.
pub const ERROR_KINDS: &[&str] = &[
    // slotgate could not get an answer from the cluster (route::RouteError)
    "crossslot",
    "slot_unserved",
    "no_masters",
    "too_many_redirects",
    "backend_unavailable",
    "backend_connection_lost",
    "backend_timeout",
    "dedicated_exhausted",
    "split_failed",
    "fan_out_failed",
    "invalid_cursor",
    "scan_cursor_too_large",
    "unexpected_reply",
    "transaction_moved",
    "watch_refused",
    "no_replica",
    "wait_refused",
    // slotgate refused the request itself (command::RejectKind)
    "wrong_arity",
    "unknown_command",
    "unknown_subcommand",
    "bad_arguments",
    "blocking",
    "pubsub",
    "monitor",
    "script_debug",
    "keyspace_in_transaction",
    "admin",
    "auth",
    "cluster_state",
    "single_database",
    "client_subcommand",
    "client_pause",
    "migrate",
    "movable_keys",
    "no_keys",
    "node_config",
    "cluster_disabled",
];

/// The proxy's metrics. Cheap to share behind an `Arc`; nothing here takes a lock per request.
#[derive(Clone)]
pub struct Metrics {
    /// What `/metrics` encodes; holds every metric below.
    pub registry: Registry,
    /// Client connections open now.
    pub client_connections: IntGauge,
    /// Client connections accepted since start; with the gauge, shows churn.
    pub client_connections_accepted: IntCounter,
    /// Clients turned away at `max_clients`.
    pub client_connections_rejected: IntCounter,
    /// Clients waiting in a blocking command (BLPOP, XREAD BLOCK, ...) now.
    pub blocked_clients: IntGauge,
    /// Requests by command and result, their latency, in-flight count and pipelining, kept
    /// per worker.
    pub requests: Arc<Requests>,
    /// MOVED redirections followed; a steady rate means a stale slot map.
    pub redirections_moved: IntCounter,
    /// ASK redirections followed; expected while slots migrate.
    pub redirections_ask: IntCounter,
    /// Requests given up after `topology.max_redirects` redirections: a cluster in flux.
    pub redirect_giveups: IntCounter,
    /// Slots whose owner two nodes reported differently in one refresh (resolved by config
    /// epoch). Brief bursts during a failover are normal; a steady rate means a split view.
    pub topology_disagreements: IntCounter,
    /// Subscriber connections open now: one per worker with subscribed clients.
    pub subscriber_connections: IntGauge,
    /// Connections of one client's own (WATCH, MULTI, blocking commands) open now.
    pub dedicated_connections: IntGauge,
    /// Backend connections re-established after a failure.
    pub backend_reconnects_total: IntCounter,
    /// Client input that was not valid RESP or broke a protocol limit.
    pub protocol_errors_total: IntCounter,
    /// EVALSHA requests a master answered NOSCRIPT, sent again after slotgate loaded the script
    /// there: after a failover or a restart, one per script and master is expected.
    pub noscript_heals: IntCounter,
    /// Per backend node: latency, in flight, connections, errors, bytes.
    nodes: Arc<nodes::Nodes>,
    /// The slot map's epoch, coverage, roles and age.
    slot_map: Arc<slot_map::SlotMap>,
    /// Slot-map refreshes by trigger and outcome.
    refreshes: IntCounterVec,
    /// Clients disconnected for leaving too many bytes of replies unread, by the limit broken.
    output_limit: IntCounterVec,
    /// Error replies slotgate made itself, by kind (one of [`ERROR_KINDS`]); errors the nodes
    /// sent (WRONGTYPE, ...) are passed through and counted only as requests with an error.
    errors: IntCounterVec,
}

impl Metrics {
    /// Builds and registers every metric. Panics only on a programming error (a duplicate or
    /// malformed name), which the unit tests would catch first.
    pub fn new() -> Self {
        let registry = Registry::new();

        let gauge = |name: &str, help: &str| {
            register(&registry, IntGauge::new(name, help).expect("valid gauge"))
        };
        let counter = |name: &str, help: &str| {
            register(
                &registry,
                IntCounter::new(name, help).expect("valid counter"),
            )
        };
        let family = |name: &str, help: &str, labels: &[&str]| {
            let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid family");
            register(&registry, v)
        };

        let redirections = family(
            "slotgate_redirections_total",
            "MOVED and ASK redirections followed, by kind.",
            &["kind"],
        );
        let refreshes = family(
            "slotgate_topology_refreshes_total",
            "Slot-map refreshes, by what started them and whether a node answered.",
            &["trigger", "outcome"],
        );
        for trigger in REFRESH_TRIGGERS {
            for outcome in ["ok", "error"] {
                refreshes.with_label_values(&[trigger, outcome]);
            }
        }
        let errors = family(
            "slotgate_errors_total",
            "Error replies slotgate made itself, by kind.",
            &["kind"],
        );
        for kind in ERROR_KINDS {
            errors.with_label_values(&[kind]);
        }
        let output_limit = family(
            "slotgate_output_limit_disconnects_total",
            "Clients disconnected at their output buffer limit, by the limit broken.",
            &["limit"],
        );
        for limit in ["hard", "soft"] {
            output_limit.with_label_values(&[limit]);
        }
        let build = prometheus::IntGaugeVec::new(
            Opts::new(
                "slotgate_build_info",
                "1, labelled with the version of slotgate running.",
            ),
            &["version"],
        )
        .expect("valid family");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        register(&registry, build);
        // CPU, memory and file descriptors of the process, as every Prometheus client exports.
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(process::Process::for_self()))
            .expect("unique metric names");
        let requests = Arc::new(Requests::new());
        let nodes = Arc::new(nodes::Nodes::new());
        let slot_map = Arc::new(slot_map::SlotMap::new());
        for c in [
            Box::new(Shared(requests.clone())) as Box<dyn Collector>,
            Box::new(Shared(nodes.clone())),
            Box::new(Shared(slot_map.clone())),
        ] {
            registry.register(c).expect("unique metric names");
        }

        Self {
            client_connections: gauge(
                "slotgate_client_connections",
                "Client connections open now.",
            ),
            client_connections_accepted: counter(
                "slotgate_client_connections_accepted_total",
                "Client connections accepted.",
            ),
            client_connections_rejected: counter(
                "slotgate_client_connections_rejected_total",
                "Client connections refused because max_clients were connected.",
            ),
            blocked_clients: gauge(
                "slotgate_blocked_clients",
                "Clients waiting in a blocking command now.",
            ),
            requests,
            redirections_moved: redirections.with_label_values(&["moved"]),
            redirections_ask: redirections.with_label_values(&["ask"]),
            redirect_giveups: counter(
                "slotgate_redirect_giveups_total",
                "Requests answered with an error after too many redirections.",
            ),
            topology_disagreements: counter(
                "slotgate_topology_disagreements_total",
                "Slots whose owner nodes reported differently in one refresh.",
            ),
            subscriber_connections: gauge(
                "slotgate_subscriber_connections",
                "Subscriber connections open now, shared by every subscribed client of a worker.",
            ),
            dedicated_connections: gauge(
                "slotgate_dedicated_connections",
                "Connections reserved for one client (transactions, blocking commands) open now.",
            ),
            backend_reconnects_total: counter(
                "slotgate_backend_reconnects_total",
                "Backend connections re-established after a failure.",
            ),
            protocol_errors_total: counter(
                "slotgate_protocol_errors_total",
                "Client input rejected as invalid RESP or over a limit.",
            ),
            noscript_heals: counter(
                "slotgate_noscript_heals_total",
                "EVALSHA requests answered NOSCRIPT, sent again after the script was loaded there.",
            ),
            nodes,
            slot_map,
            refreshes,
            errors,
            output_limit,
            registry,
        }
    }

    /// Counts a client disconnected at its `limit` ("hard" or "soft").
    pub fn output_limit_disconnects(&self, limit: &'static str) {
        self.output_limit.with_label_values(&[limit]).inc();
    }

    /// Counts one error reply of `kind`. A hash lookup rather than a pre-resolved child: errors
    /// are off the hot path, and one family keeps the label set in one list.
    pub fn error(&self, kind: &'static str) {
        debug_assert!(ERROR_KINDS.contains(&kind), "unlisted error kind {kind}");
        self.errors.with_label_values(&[kind]).inc();
    }

    /// The metrics of the backend node at `addr`, made on first use.
    pub fn node(&self, addr: &str) -> Arc<NodeMetrics> {
        self.nodes.node(addr)
    }

    /// Requests answered so far, over every worker: INFO's `total_commands_processed`.
    pub fn requests_answered(&self) -> u64 {
        self.requests.answered()
    }

    /// A slot-map refresh ended: counted by `trigger` (one of [`REFRESH_TRIGGERS`]) and outcome;
    /// a refresh no node answered is logged, with how many nodes were asked.
    pub fn topology_refreshed(&self, trigger: &'static str, ok: bool, asked: usize) {
        debug_assert!(
            REFRESH_TRIGGERS.contains(&trigger),
            "unlisted trigger {trigger}"
        );
        let outcome = if ok { "ok" } else { "error" };
        self.refreshes.with_label_values(&[trigger, outcome]).inc();
        // The failure's log line is the refresher's, throttled: it repeats several times a
        // second while the cluster is away.
        let _ = asked;
    }

    /// The refreshes of `trigger` with `outcome` so far (for tests).
    pub fn topology_refreshes(&self, trigger: &str, outcome: &str) -> u64 {
        self.refreshes.with_label_values(&[trigger, outcome]).get()
    }

    /// Nodes disagreed about `slots` slots' owners in one refresh.
    pub fn topology_disagreed(&self, slots: usize) {
        tracing::info!(slots, "nodes disagree on slot owners; newest epoch wins");
        self.topology_disagreements.inc_by(slots as u64);
    }

    /// A different slot map is served from now on, with `shards` shards serving slots.
    pub fn slot_map_changed(&self, summary: SlotMapSummary, shards: usize) {
        tracing::info!(shards, covered = summary.covered, "slot map changed");
        self.slot_map.changed(summary);
    }

    /// A MOVED reply changed a worker's slot map at once, ahead of the refresh it asks for.
    pub fn slot_moved(&self) {
        self.slot_map.touched();
    }

    /// The registry in Prometheus text format, as `/metrics` serves it.
    pub fn encode_text(&self) -> Result<String, prometheus::Error> {
        let mut out = String::new();
        prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

/// A collector the registry owns a handle to, while [`Metrics`] keeps another for the code that
/// updates it.
struct Shared<C>(Arc<C>);

impl<C: Collector> Collector for Shared<C> {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}

/// Adds `metric` to `registry` and hands it back; a duplicate name is a programming error.
fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family_names(m: &Metrics) -> Vec<String> {
        let mut names: Vec<_> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn registers_every_family() {
        let m = Metrics::new();
        // Families with a series per command or node appear once one is seen.
        let _conn = m.node("127.0.0.1:7000").connection();
        m.requests
            .worker()
            .answered(crate::command::CommandId::OTHER, false, Span::default());
        let roles = vec![("127.0.0.1:7000".to_owned(), "master")];
        m.slot_map_changed(
            SlotMapSummary {
                roles,
                ..SlotMapSummary::default()
            },
            1,
        );
        let names = family_names(&m);
        let ours: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("slotgate_"))
            .collect();
        assert_eq!(
            ours,
            [
                "slotgate_backend_connections",
                "slotgate_backend_errors_total",
                "slotgate_backend_inflight_requests",
                "slotgate_backend_received_bytes_total",
                "slotgate_backend_reconnects_total",
                "slotgate_backend_request_duration_seconds",
                "slotgate_backend_sent_bytes_total",
                "slotgate_blocked_clients",
                "slotgate_build_info",
                "slotgate_client_connections",
                "slotgate_client_connections_accepted_total",
                "slotgate_client_connections_rejected_total",
                "slotgate_dedicated_connections",
                "slotgate_errors_total",
                "slotgate_inflight_requests",
                "slotgate_node_role",
                "slotgate_noscript_heals_total",
                "slotgate_output_limit_disconnects_total",
                "slotgate_pipeline_depth",
                "slotgate_protocol_errors_total",
                "slotgate_redirect_giveups_total",
                "slotgate_redirections_total",
                "slotgate_request_duration_seconds",
                "slotgate_requests_total",
                "slotgate_slot_map_age_seconds",
                "slotgate_slot_map_epoch",
                "slotgate_slots_covered",
                "slotgate_subscriber_connections",
                "slotgate_topology_disagreements_total",
                "slotgate_topology_refreshes_total",
            ]
        );
        #[cfg(target_os = "linux")]
        for process in [
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_resident_memory_bytes",
        ] {
            assert!(names.iter().any(|n| n == process), "no {process}");
        }
    }

    #[test]
    fn no_family_name_is_another_s_plus_a_suffix() {
        // OpenMetrics names a counter's family without `_total`: a gauge `x` and a counter
        // `x_total` would be one family twice.
        let m = Metrics::new();
        let names = family_names(&m);
        for n in &names {
            if let Some(base) = n.strip_suffix("_total") {
                assert!(!names.iter().any(|o| o == base), "{n} and {base}");
            }
        }
    }

    #[test]
    fn labelled_series_exist_at_zero_before_any_event() {
        let text = Metrics::new().encode_text().unwrap();
        for line in [
            "slotgate_redirections_total{kind=\"moved\"} 0",
            "slotgate_redirections_total{kind=\"ask\"} 0",
            "slotgate_topology_refreshes_total{outcome=\"ok\",trigger=\"periodic\"} 0",
            "slotgate_topology_refreshes_total{outcome=\"error\",trigger=\"moved\"} 0",
            "slotgate_errors_total{kind=\"crossslot\"} 0",
            "slotgate_errors_total{kind=\"backend_timeout\"} 0",
            "slotgate_redirect_giveups_total 0",
            "slotgate_inflight_requests 0",
            "slotgate_slots_covered 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let version = format!(
            "slotgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == version), "{text}");
    }

    #[test]
    fn pre_resolved_children_update_their_family() {
        let m = Metrics::new();
        m.redirections_ask.inc();
        m.redirections_moved.inc();
        m.topology_refreshed("moved", false, 3);
        m.client_connections.set(3);
        m.backend_reconnects_total.inc_by(4);
        m.error("crossslot");
        let text = m.encode_text().unwrap();
        for line in [
            "slotgate_redirections_total{kind=\"ask\"} 1",
            "slotgate_redirections_total{kind=\"moved\"} 1",
            "slotgate_topology_refreshes_total{outcome=\"error\",trigger=\"moved\"} 1",
            "slotgate_client_connections 3",
            "slotgate_backend_reconnects_total 4",
            "slotgate_errors_total{kind=\"crossslot\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(m.topology_refreshes("moved", "error"), 1);
    }

    #[test]
    fn requests_are_exposed_per_command() {
        let m = Metrics::new();
        let w = m.requests.worker();
        let get = crate::command::CommandTable::builtin()
            .classify(&crate::protocol::Request::from_args(vec![
                "get".into(),
                "k".into(),
            ]))
            .command;
        w.read(0);
        w.answered(
            get,
            false,
            Span {
                ns: 120_000,
                bucket: 2,
            },
        );
        let text = m.encode_text().unwrap();
        for line in [
            "slotgate_requests_total{command=\"get\",result=\"ok\"} 1",
            "slotgate_requests_total{command=\"get\",result=\"error\"} 0",
            "slotgate_request_duration_seconds_bucket{command=\"get\",le=\"0.0001\"} 0",
            "slotgate_request_duration_seconds_bucket{command=\"get\",le=\"0.00025\"} 1",
            "slotgate_request_duration_seconds_count{command=\"get\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(m.requests_answered(), 1);
    }

    #[test]
    fn error_kinds_are_unique_labels() {
        let mut kinds = ERROR_KINDS.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), ERROR_KINDS.len());
        assert!(kinds
            .iter()
            .all(|k| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn instances_do_not_share_counts() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.protocol_errors_total.inc();
        assert_eq!(b.protocol_errors_total.get(), 0);
        // A clone is the same metrics, not a copy: handles share their atomics.
        let a2 = a.clone();
        a2.protocol_errors_total.inc();
        assert_eq!(a.protocol_errors_total.get(), 2);
    }
}
