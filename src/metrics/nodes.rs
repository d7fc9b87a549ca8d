//! Per backend node: round-trip latency, requests in flight, connections, errors by kind, bytes
//! each way. A node gets its series when a worker first connects to it, and loses them once no
//! worker keeps a connection to it (it left the cluster), so their number follows the cluster's.
//!
//! Every connection's driver task owns a [`ConnMetrics`] and updates it with plain stores (one
//! writer: the driver); the scrape adds a node's connections up, with what its closed
//! connections had counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricType};

use super::cells::{self, Latency, LatencySum, Owned, Span};

const DURATION: &str = "slotgate_backend_request_duration_seconds";
const INFLIGHT: &str = "slotgate_backend_inflight_requests";
const CONNECTIONS: &str = "slotgate_backend_connections";
const ERRORS: &str = "slotgate_backend_errors_total";
const RECEIVED: &str = "slotgate_backend_received_bytes_total";
const SENT: &str = "slotgate_backend_sent_bytes_total";

/// Every value of `slotgate_backend_errors_total`'s `kind` label: how a connection to a node
/// failed. Each series exists from the node's first scrape.
pub const BACKEND_ERROR_KINDS: &[&str] = &[
    // A connect, or the PING that checks a fresh connection, failed or timed out.
    "connect_failed",
    // The node left requests without any reply for the operation timeout.
    "timeout",
    "read_failed",
    "write_failed",
    // The node closed the connection.
    "closed",
    "malformed_reply",
    "unsolicited_reply",
];

fn kind_index(kind: &str) -> usize {
    BACKEND_ERROR_KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_else(|| panic!("unlisted backend error kind {kind}"))
}

/// One connection's cells; written only by its driver task. Aligned (and so sized) to two cache
/// lines: connections of different workers are made side by side, and must not share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ConnCells {
    /// 1 while a shared connection is open.
    open: Owned,
    inflight: Owned,
    sent: Owned,
    received: Owned,
    /// Round trips of the requests whose reply counts as the node's latency.
    latency: Latency,
}

/// What a closed connection had counted, kept for its node's totals.
#[derive(Debug, Default)]
struct Retired {
    sent: u64,
    received: u64,
    latency: LatencySum,
}

/// One node's metrics, shared by every worker's connections to it.
#[derive(Debug)]
pub struct NodeMetrics {
    addr: String,
    errors: [AtomicU64; BACKEND_ERROR_KINDS.len()],
    conns: Mutex<Vec<Arc<ConnCells>>>,
    retired: Mutex<Retired>,
}

impl NodeMetrics {
    fn new(addr: &str) -> NodeMetrics {
        NodeMetrics {
            addr: addr.to_owned(),
            errors: Default::default(),
            conns: Mutex::new(Vec::new()),
            retired: Mutex::new(Retired::default()),
        }
    }

    /// The cells of one more connection, for its driver alone.
    pub fn connection(self: &Arc<Self>) -> ConnMetrics {
        let cells = Arc::new(ConnCells::default());
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cells.clone());
        ConnMetrics {
            cells,
            node: self.clone(),
        }
    }

    /// A connection to the node could not be made: counted every time. The log line is the
    /// connection's own, throttled per node, since a node that stays down fails every retry.
    pub fn unreachable(&self) {
        self.count_error("connect_failed");
    }

    /// A connection failed with `kind` (one of [`BACKEND_ERROR_KINDS`]); `why` says it in
    /// words. A connection of one client's own (`dedicated`) is logged at debug level: its
    /// client hears of it, and a failover ends many at once. A shared connection's loss is
    /// logged by the connection, throttled per node.
    pub fn lost(&self, kind: &'static str, why: &str, dedicated: bool) {
        self.count_error(kind);
        if dedicated {
            tracing::debug!(node = %self.addr, why, "dedicated connection lost");
        }
    }

    fn count_error(&self, kind: &str) {
        self.errors[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// The node's errors of `kind` so far (for tests).
    pub fn errors(&self, kind: &str) -> u64 {
        self.errors[kind_index(kind)].load(Ordering::Relaxed)
    }

    fn collect_into(&self, f: &mut Families) {
        let node = self.addr.as_str();
        let (mut open, mut inflight) = (0, 0);
        let mut latency = LatencySum::default();
        // Both locks at once, in the order a closing connection takes them, so a connection
        // is counted either live or retired, never neither: a counter must not dip.
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let (mut sent, mut received) = (retired.sent, retired.received);
        latency.clone_from(&retired.latency);
        drop(retired);
        for c in conns.iter() {
            open += c.open.get();
            inflight += c.inflight.get();
            sent += c.sent.get();
            received += c.received.get();
            c.latency.add_to(&mut latency);
        }
        drop(conns);
        let labels = [("node", node)];
        f.duration
            .mut_metric()
            .push(cells::histogram(&labels, &latency));
        f.inflight
            .mut_metric()
            .push(cells::gauge(&labels, inflight as f64));
        f.connections
            .mut_metric()
            .push(cells::gauge(&labels, open as f64));
        f.received
            .mut_metric()
            .push(cells::counter(&labels, received));
        f.sent.mut_metric().push(cells::counter(&labels, sent));
        for (kind, n) in BACKEND_ERROR_KINDS.iter().zip(&self.errors) {
            f.errors.mut_metric().push(cells::counter(
                &[("node", node), ("kind", kind)],
                n.load(Ordering::Relaxed),
            ));
        }
    }
}

/// One connection's metrics, owned by its driver task: the only writer of its cells. Dropping
/// it (the connection ended for good) folds its counts into the node's.
#[derive(Debug)]
pub struct ConnMetrics {
    cells: Arc<ConnCells>,
    node: Arc<NodeMetrics>,
}

impl ConnMetrics {
    pub fn node(&self) -> &NodeMetrics {
        &self.node
    }

    /// The shared connection is open (true) or closed.
    pub fn set_open(&self, open: bool) {
        self.cells.open.set(u64::from(open));
    }

    /// A request went on its way to the node.
    pub fn sent_request(&self) {
        self.cells.inflight.add(1);
    }

    /// A request's reply came after `round_trip` on the connection; `None` where the round
    /// trip says nothing of the node (a blocking command waits by design).
    #[inline]
    pub fn replied(&self, round_trip: Option<Span>) {
        self.cells.inflight.sub(1);
        if let Some(span) = round_trip {
            self.cells.latency.observe_span(span);
        }
    }

    /// Every request still waiting was failed or dropped with the connection.
    pub fn none_in_flight(&self) {
        self.cells.inflight.set(0);
    }

    pub fn wrote(&self, bytes: usize) {
        self.cells.sent.add(bytes as u64);
    }

    pub fn read(&self, bytes: usize) {
        self.cells.received.add(bytes as u64);
    }
}

impl Drop for ConnMetrics {
    fn drop(&mut self) {
        let mut conns = self.node.conns.lock().unwrap_or_else(|e| e.into_inner());
        let mut retired = self.node.retired.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|c| !Arc::ptr_eq(c, &self.cells));
        retired.sent += self.cells.sent.get();
        retired.received += self.cells.received.get();
        self.cells.latency.add_to(&mut retired.latency);
    }
}

struct Families {
    duration: proto::MetricFamily,
    inflight: proto::MetricFamily,
    connections: proto::MetricFamily,
    errors: proto::MetricFamily,
    received: proto::MetricFamily,
    sent: proto::MetricFamily,
}

const DURATION_HELP: &str =
    "Round trip of a request on a shared backend connection, from its batch's write to its reply.";
const INFLIGHT_HELP: &str = "Requests sent to the node and not answered yet.";
const CONNECTIONS_HELP: &str = "Shared backend connections open to the node now.";
const ERRORS_HELP: &str = "Backend connections that failed, by how.";
const RECEIVED_HELP: &str = "Bytes read from the node.";
const SENT_HELP: &str = "Bytes written to the node.";

/// Every node slotgate uses, by address.
pub struct Nodes {
    nodes: Mutex<BTreeMap<String, Weak<NodeMetrics>>>,
    descs: Vec<Desc>,
}

impl Nodes {
    pub fn new() -> Nodes {
        Nodes {
            nodes: Mutex::new(BTreeMap::new()),
            descs: vec![
                cells::desc(DURATION, DURATION_HELP, &["node"]),
                cells::desc(INFLIGHT, INFLIGHT_HELP, &["node"]),
                cells::desc(CONNECTIONS, CONNECTIONS_HELP, &["node"]),
                cells::desc(ERRORS, ERRORS_HELP, &["node", "kind"]),
                cells::desc(RECEIVED, RECEIVED_HELP, &["node"]),
                cells::desc(SENT, SENT_HELP, &["node"]),
            ],
        }
    }

    /// The metrics of the node at `addr`, made when the first worker connects to it. They live
    /// as long as someone holds them: every connection to the node does.
    pub fn node(&self, addr: &str) -> Arc<NodeMetrics> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(node) = nodes.get(addr).and_then(Weak::upgrade) {
            return node;
        }
        let node = Arc::new(NodeMetrics::new(addr));
        nodes.insert(addr.to_owned(), Arc::downgrade(&node));
        node
    }
}

impl Default for Nodes {
    fn default() -> Self {
        Nodes::new()
    }
}

impl Collector for Nodes {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let mut f = Families {
            duration: cells::family(DURATION, DURATION_HELP, MetricType::HISTOGRAM),
            inflight: cells::family(INFLIGHT, INFLIGHT_HELP, MetricType::GAUGE),
            connections: cells::family(CONNECTIONS, CONNECTIONS_HELP, MetricType::GAUGE),
            errors: cells::family(ERRORS, ERRORS_HELP, MetricType::COUNTER),
            received: cells::family(RECEIVED, RECEIVED_HELP, MetricType::COUNTER),
            sent: cells::family(SENT, SENT_HELP, MetricType::COUNTER),
        };
        let live: Vec<Arc<NodeMetrics>> = {
            let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
            nodes.retain(|_, n| n.strong_count() > 0);
            nodes.values().filter_map(Weak::upgrade).collect()
        };
        for node in &live {
            node.collect_into(&mut f);
        }
        vec![
            f.duration,
            f.inflight,
            f.connections,
            f.errors,
            f.received,
            f.sent,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(families: &[proto::MetricFamily], name: &str, labels: &[(&str, &str)]) -> f64 {
        let f = families.iter().find(|f| f.name() == name).unwrap();
        let m = f
            .get_metric()
            .iter()
            .find(|m| {
                labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                })
            })
            .unwrap_or_else(|| panic!("no {name} {labels:?}"));
        match f.get_field_type() {
            MetricType::COUNTER => m.get_counter().get_value(),
            MetricType::GAUGE => m.get_gauge().get_value(),
            _ => m.get_histogram().get_sample_count() as f64,
        }
    }

    #[test]
    fn connections_add_up_and_closed_ones_still_count() {
        let nodes = Nodes::new();
        let node = nodes.node("10.0.0.1:7000");
        assert!(Arc::ptr_eq(&node, &nodes.node("10.0.0.1:7000")));
        let (a, b) = (node.connection(), node.connection());
        a.set_open(true);
        b.set_open(true);
        a.sent_request();
        a.sent_request();
        a.wrote(100);
        a.replied(Some(Span {
            ns: 30_000,
            bucket: 0,
        }));
        b.sent_request();
        b.wrote(20);
        b.read(7);
        b.replied(None);
        node.lost("timeout", "no reply", false);
        let f = nodes.collect();
        let n = [("node", "10.0.0.1:7000")];
        assert_eq!(value(&f, CONNECTIONS, &n), 2.0);
        assert_eq!(value(&f, INFLIGHT, &n), 1.0);
        assert_eq!(value(&f, SENT, &n), 120.0);
        assert_eq!(value(&f, RECEIVED, &n), 7.0);
        assert_eq!(
            value(&f, DURATION, &n),
            1.0,
            "a blocking reply is not timed"
        );
        let timeouts = [("node", "10.0.0.1:7000"), ("kind", "timeout")];
        assert_eq!(value(&f, ERRORS, &timeouts), 1.0);
        let closed = [("node", "10.0.0.1:7000"), ("kind", "closed")];
        assert_eq!(value(&f, ERRORS, &closed), 0.0, "every kind from the start");

        drop(a);
        let f = nodes.collect();
        assert_eq!(value(&f, CONNECTIONS, &n), 1.0);
        assert_eq!(
            value(&f, SENT, &n),
            120.0,
            "a closed connection's bytes stay"
        );
        assert_eq!(value(&f, DURATION, &n), 1.0);
    }

    #[test]
    fn a_node_nobody_uses_any_more_loses_its_series() {
        let nodes = Nodes::new();
        let conn = nodes.node("10.0.0.2:7000").connection();
        assert_eq!(nodes.collect()[0].get_metric().len(), 1);
        drop(conn);
        assert!(nodes.collect()[0].get_metric().is_empty());
    }

    #[test]
    fn error_kinds_are_unique_labels() {
        let mut kinds = BACKEND_ERROR_KINDS.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), BACKEND_ERROR_KINDS.len());
    }
}
