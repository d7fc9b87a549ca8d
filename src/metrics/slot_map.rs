//! The slot map as metrics: its highest config epoch, how many slots it covers, each node's role,
//! and how long ago it last changed, computed when scraped so it grows between scrapes without
//! anyone updating it.

use std::sync::Mutex;
use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricType};

use super::cells;

const EPOCH: &str = "slotgate_slot_map_epoch";
const AGE: &str = "slotgate_slot_map_age_seconds";
const COVERED: &str = "slotgate_slots_covered";
const ROLE: &str = "slotgate_node_role";

/// What the metrics show of one slot map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotMapSummary {
    /// The highest config epoch of its masters (0 where the cluster did not say).
    pub epoch: u64,
    /// Slots with a master.
    pub covered: usize,
    /// Every node with its role, `master` or `replica`.
    pub roles: Vec<(String, &'static str)>,
}

struct State {
    summary: SlotMapSummary,
    changed_at: Instant,
}

pub struct SlotMap {
    state: Mutex<State>,
    descs: Vec<Desc>,
}

const EPOCH_HELP: &str = "Highest config epoch in the slot map.";
const AGE_HELP: &str =
    "Seconds since the slot map last changed (since start, before the first map).";
const COVERED_HELP: &str = "Slots the slot map gives a master (16384 when complete).";
const ROLE_HELP: &str = "1 for each node of the slot map, labelled with its role.";

impl SlotMap {
    pub fn new() -> SlotMap {
        SlotMap {
            state: Mutex::new(State {
                summary: SlotMapSummary::default(),
                changed_at: Instant::now(),
            }),
            descs: vec![
                cells::desc(EPOCH, EPOCH_HELP, &[]),
                cells::desc(AGE, AGE_HELP, &[]),
                cells::desc(COVERED, COVERED_HELP, &[]),
                cells::desc(ROLE, ROLE_HELP, &["node", "role"]),
            ],
        }
    }

    /// A new slot map is served.
    pub fn changed(&self, summary: SlotMapSummary) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.summary = summary;
        state.changed_at = Instant::now();
    }

    /// One slot moved (a MOVED reply was applied at once): the map changed, its summary did not.
    pub fn touched(&self) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .changed_at = Instant::now();
    }
}

impl Default for SlotMap {
    fn default() -> Self {
        SlotMap::new()
    }
}

impl Collector for SlotMap {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &state.summary;
        let mut epoch = cells::family(EPOCH, EPOCH_HELP, MetricType::GAUGE);
        epoch.mut_metric().push(cells::gauge(&[], s.epoch as f64));
        let mut age = cells::family(AGE, AGE_HELP, MetricType::GAUGE);
        let seconds = state.changed_at.elapsed().as_secs_f64();
        age.mut_metric().push(cells::gauge(&[], seconds));
        let mut covered = cells::family(COVERED, COVERED_HELP, MetricType::GAUGE);
        covered
            .mut_metric()
            .push(cells::gauge(&[], s.covered as f64));
        let mut role = cells::family(ROLE, ROLE_HELP, MetricType::GAUGE);
        for (node, r) in &s.roles {
            role.mut_metric()
                .push(cells::gauge(&[("node", node), ("role", r)], 1.0));
        }
        vec![epoch, age, covered, role]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_last_map_and_its_age() {
        let m = SlotMap::new();
        m.changed(SlotMapSummary {
            epoch: 7,
            covered: 16384,
            roles: vec![("a:1".into(), "master"), ("b:1".into(), "replica")],
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        let f = m.collect();
        assert_eq!(f[0].get_metric()[0].get_gauge().get_value(), 7.0);
        assert!(f[1].get_metric()[0].get_gauge().get_value() >= 0.02);
        assert_eq!(f[2].get_metric()[0].get_gauge().get_value(), 16384.0);
        assert_eq!(f[3].get_metric().len(), 2);
        m.touched();
        assert!(m.collect()[1].get_metric()[0].get_gauge().get_value() < 0.02);
    }
}
