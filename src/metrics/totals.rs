//! Totals per backend node, read back from the registry for the status page: the same figures
//! `/metrics` shows, so the page and a dashboard never disagree.

use std::collections::BTreeMap;

use prometheus::Registry;

/// The round-trip histogram, labelled by `node`.
const ROUND_TRIPS: &str = "slotgate_backend_request_duration_seconds";
/// Errors on a node's connections, labelled by `node` and `kind`.
const ERRORS: &str = "slotgate_backend_errors_total";

/// What slotgate has sent one node since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeTotals {
    pub requests: u64,
    pub latency_seconds_sum: f64,
    pub errors: u64,
}

/// Every node's totals, by address; nodes with no series yet are absent.
pub fn node_totals(registry: &Registry) -> BTreeMap<String, NodeTotals> {
    let mut out: BTreeMap<String, NodeTotals> = BTreeMap::new();
    for family in registry.gather() {
        let name = family.name();
        if name != ROUND_TRIPS && name != ERRORS {
            continue;
        }
        for m in family.get_metric() {
            let Some(node) = m
                .get_label()
                .iter()
                .find(|l| l.name() == "node")
                .map(|l| l.value().to_owned())
            else {
                continue;
            };
            let totals = out.entry(node).or_default();
            match name {
                ROUND_TRIPS => {
                    let h = m.get_histogram();
                    totals.requests += h.get_sample_count();
                    totals.latency_seconds_sum += h.get_sample_sum();
                }
                _ => totals.errors += m.get_counter().get_value() as u64,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

    #[test]
    fn totals_come_from_the_labelled_series() {
        let registry = Registry::new();
        let trips = HistogramVec::new(HistogramOpts::new(ROUND_TRIPS, "h"), &["node"]).unwrap();
        let errors = IntCounterVec::new(Opts::new(ERRORS, "e"), &["node", "kind"]).unwrap();
        registry.register(Box::new(trips.clone())).unwrap();
        registry.register(Box::new(errors.clone())).unwrap();
        trips.with_label_values(&["a:1"]).observe(0.25);
        trips.with_label_values(&["a:1"]).observe(0.25);
        errors.with_label_values(&["a:1", "timeout"]).inc();
        errors.with_label_values(&["b:1", "lost"]).inc_by(2);
        let totals = node_totals(&registry);
        assert_eq!(
            totals["a:1"],
            NodeTotals {
                requests: 2,
                latency_seconds_sum: 0.5,
                errors: 1
            }
        );
        assert_eq!(totals["b:1"].errors, 2);
    }
}
