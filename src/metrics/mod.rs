//! Counters and gauges the data path bumps, and the HTTP endpoint that exposes them.
//!
//! The metrics live in their own [`Registry`] rather than prometheus's global one, so each test
//! (and each proxy instance in one process) counts on its own.
//!
//! Labelled families are resolved to their children once, here: the data path holds a plain
//! [`IntCounter`] per label value and pays one atomic add per event, instead of a hash lookup
//! and a lock on the family for every request. Creating every child up front also makes each
//! series exist at 0 from the first scrape, so `rate()` and alerts on "errors > 0" work before
//! the first error. The label values are few and fixed; anything open-ended (a command name, a
//! node address) would need a family kept here instead, and never goes into a metric name.

pub mod http;
mod nodes;

pub use http::{serve, HealthSource};
pub use nodes::{node_totals, NodeTotals};

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

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

/// The proxy's metrics. Cheap to share behind an `Arc`; every field is lock-free to update.
#[derive(Clone)]
pub struct Metrics {
    /// What `/metrics` encodes; holds every metric below.
    pub registry: Registry,
    /// Client connections open now.
    pub client_connections: IntGauge,
    /// Client connections accepted since start; with the gauge, shows churn.
    pub client_connections_total: IntCounter,
    /// Clients turned away at `max_clients`.
    pub client_connections_rejected: IntCounter,
    /// Clients waiting in a blocking command (BLPOP, XREAD BLOCK, ...) now.
    pub blocked_clients: IntGauge,
    /// Requests answered with a normal reply (`slotgate_requests_total{result="ok"}`).
    pub requests_ok: IntCounter,
    /// Requests answered with an error reply, whether from the proxy or the node
    /// (`slotgate_requests_total{result="error"}`).
    pub requests_error: IntCounter,
    /// MOVED redirections followed; a steady rate means a stale slot map.
    pub redirections_moved: IntCounter,
    /// ASK redirections followed; expected while slots migrate.
    pub redirections_ask: IntCounter,
    /// Slot-map refreshes that produced a topology.
    pub topology_refreshes_ok: IntCounter,
    /// Slot-map refreshes that failed; the previous topology stays in use.
    pub topology_refreshes_error: IntCounter,
    /// Slots whose owner two nodes reported differently in one refresh (resolved by config
    /// epoch). Brief bursts during a failover are normal; a steady rate means a split view.
    pub topology_disagreements: IntCounter,
    /// Backend connections open now.
    pub backend_connections: IntGauge,
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
    /// Clients disconnected for leaving too many bytes of replies unread, by the limit broken.
    output_limit: IntCounterVec,
    /// Error replies slotgate made itself, by kind (one of [`ERROR_KINDS`]); errors the nodes
    /// sent (WRONGTYPE, ...) are passed through and counted only in `requests_error`.
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
        let family = |name: &str, help: &str, label: &str| {
            let v = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid family");
            register(&registry, v)
        };

        let requests = family(
            "slotgate_requests_total",
            "Client requests answered, by result.",
            "result",
        );
        let redirections = family(
            "slotgate_redirections_total",
            "MOVED and ASK redirections followed, by kind.",
            "kind",
        );
        let refreshes = family(
            "slotgate_topology_refreshes_total",
            "Slot-map refreshes, by result.",
            "result",
        );
        let errors = family(
            "slotgate_errors_total",
            "Error replies slotgate made itself, by kind.",
            "kind",
        );
        for kind in ERROR_KINDS {
            errors.with_label_values(&[kind]);
        }
        let output_limit = family(
            "slotgate_output_limit_disconnects_total",
            "Clients disconnected at their output buffer limit, by the limit broken.",
            "limit",
        );
        for limit in ["hard", "soft"] {
            output_limit.with_label_values(&[limit]);
        }

        Self {
            client_connections: gauge(
                "slotgate_client_connections",
                "Client connections open now.",
            ),
            client_connections_total: counter(
                "slotgate_client_connections_total",
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
            requests_ok: requests.with_label_values(&["ok"]),
            requests_error: requests.with_label_values(&["error"]),
            redirections_moved: redirections.with_label_values(&["moved"]),
            redirections_ask: redirections.with_label_values(&["ask"]),
            topology_refreshes_ok: refreshes.with_label_values(&["ok"]),
            topology_refreshes_error: refreshes.with_label_values(&["error"]),
            topology_disagreements: counter(
                "slotgate_topology_disagreements_total",
                "Slots whose owner nodes reported differently in one refresh.",
            ),
            backend_connections: gauge(
                "slotgate_backend_connections",
                "Backend connections open now.",
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

    /// The registry in Prometheus text format, as `/metrics` serves it.
    pub fn encode_text(&self) -> Result<String, prometheus::Error> {
        let mut out = String::new();
        prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)?;
        Ok(out)
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
        assert_eq!(
            family_names(&Metrics::new()),
            [
                "slotgate_backend_connections",
                "slotgate_backend_reconnects_total",
                "slotgate_blocked_clients",
                "slotgate_client_connections",
                "slotgate_client_connections_rejected_total",
                "slotgate_client_connections_total",
                "slotgate_dedicated_connections",
                "slotgate_errors_total",
                "slotgate_noscript_heals_total",
                "slotgate_output_limit_disconnects_total",
                "slotgate_protocol_errors_total",
                "slotgate_redirections_total",
                "slotgate_requests_total",
                "slotgate_subscriber_connections",
                "slotgate_topology_disagreements_total",
                "slotgate_topology_refreshes_total",
            ]
        );
    }

    #[test]
    fn labelled_series_exist_at_zero_before_any_event() {
        let text = Metrics::new().encode_text().unwrap();
        for line in [
            "slotgate_requests_total{result=\"ok\"} 0",
            "slotgate_requests_total{result=\"error\"} 0",
            "slotgate_redirections_total{kind=\"moved\"} 0",
            "slotgate_redirections_total{kind=\"ask\"} 0",
            "slotgate_topology_refreshes_total{result=\"ok\"} 0",
            "slotgate_topology_refreshes_total{result=\"error\"} 0",
            "slotgate_errors_total{kind=\"crossslot\"} 0",
            "slotgate_errors_total{kind=\"backend_timeout\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn pre_resolved_children_update_their_family() {
        let m = Metrics::new();
        m.requests_ok.inc();
        m.requests_ok.inc();
        m.requests_error.inc();
        m.redirections_ask.inc();
        m.topology_refreshes_error.inc();
        m.client_connections.set(3);
        m.backend_reconnects_total.inc_by(4);
        m.error("crossslot");
        let text = m.encode_text().unwrap();
        for line in [
            "slotgate_requests_total{result=\"ok\"} 2",
            "slotgate_requests_total{result=\"error\"} 1",
            "slotgate_redirections_total{kind=\"ask\"} 1",
            "slotgate_redirections_total{kind=\"moved\"} 0",
            "slotgate_topology_refreshes_total{result=\"error\"} 1",
            "slotgate_client_connections 3",
            "slotgate_backend_reconnects_total 4",
            "slotgate_errors_total{kind=\"crossslot\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
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
