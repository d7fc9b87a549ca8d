//! The cluster as slotgate sees it, for the operator's status page: masters with their replicas
//! and slot ranges, whether slotgate reaches each node, its traffic to each, and the last changes
//! of the slot map. Built on demand from the current snapshot; only the change log is kept.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cluster::{Topology, SLOT_COUNT};
use crate::metrics::NodeTotals;

/// Changes kept for the page: enough to see a failover and what led to it.
const CHANGES_KEPT: usize = 32;

#[derive(Serialize)]
pub struct Status {
    pub version: &'static str,
    pub slots_covered: usize,
    pub shards: Vec<ShardView>,
    /// Every node the map names, by address.
    pub nodes: BTreeMap<String, NodeView>,
    /// Newest last.
    pub changes: Vec<Change>,
}

#[derive(Serialize)]
pub struct ShardView {
    pub master: String,
    pub replicas: Vec<String>,
    /// `[first, last]` slot runs this shard serves.
    pub ranges: Vec<[u16; 2]>,
    pub slots: usize,
    pub epoch: u64,
}

#[derive(Serialize, Default)]
pub struct NodeView {
    pub role: &'static str,
    /// Whether slotgate holds an open connection to it; `None` for a node it has no reason to
    /// connect to (a replica, unless reads go to replicas).
    pub up: Option<bool>,
    /// Requests answered on its shared connections, and their round trips summed, since start:
    /// the page turns them into a rate and a mean latency between two looks.
    pub requests: u64,
    pub latency_seconds_sum: f64,
    pub errors: u64,
}

#[derive(Clone, Serialize)]
pub struct Change {
    pub at_unix_ms: u64,
    pub what: String,
}

/// The last changes of the slot map, in words.
#[derive(Default)]
pub struct ChangeLog {
    entries: Mutex<VecDeque<Change>>,
}

impl ChangeLog {
    /// Records what differs from `old` to `new`, if anything does.
    pub fn record(&self, old: &Topology, new: &Topology) {
        let lines = describe(old, new);
        if lines.is_empty() {
            return;
        }
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for what in lines {
            if entries.len() == CHANGES_KEPT {
                entries.pop_front();
            }
            entries.push_back(Change { at_unix_ms, what });
        }
    }

    pub fn entries(&self) -> Vec<Change> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().cloned().collect()
    }
}

/// One line per run of slots that changed owner, and per shard whose replicas changed.
pub fn describe(old: &Topology, new: &Topology) -> Vec<String> {
    let owner = |t: &Topology, slot: usize| {
        let slot = crate::cluster::Slot::new(slot as u16)?;
        t.master_of(slot).map(|a| a.to_string())
    };
    let mut lines = Vec::new();
    let mut run: Option<(usize, Option<String>, Option<String>)> = None;
    for slot in 0..=SLOT_COUNT {
        let pair = (slot < SLOT_COUNT).then(|| (owner(old, slot), owner(new, slot)));
        let same_run = match (&run, &pair) {
            (Some((_, a, b)), Some((x, y))) => a == x && b == y,
            _ => false,
        };
        if same_run {
            continue;
        }
        if let Some((first, from, to)) = run.take() {
            if from != to {
                let name = |o: Option<String>| o.unwrap_or_else(|| "nobody".to_owned());
                lines.push(format!(
                    "slots {first}-{}: {} -> {}",
                    slot - 1,
                    name(from),
                    name(to)
                ));
            }
        }
        run = pair.map(|(from, to)| (slot, from, to));
    }
    let replicas = |t: &Topology| -> BTreeMap<String, Vec<String>> {
        t.shards()
            .iter()
            .map(|s| {
                let r = s.replicas.iter().map(|r| r.to_string()).collect();
                (s.master.to_string(), r)
            })
            .collect()
    };
    let (before, after) = (replicas(old), replicas(new));
    for (master, now) in &after {
        match before.get(master) {
            Some(was) if was == now => {}
            _ => lines.push(format!("{master} has replicas [{}]", now.join(", "))),
        }
    }
    lines
}

/// The page's view of `topology`; `up` says whether slotgate reaches a node, `totals` its
/// traffic to each.
pub fn status(
    topology: &Topology,
    up: impl Fn(&str) -> Option<bool>,
    totals: &BTreeMap<String, NodeTotals>,
    changes: Vec<Change>,
) -> Status {
    let ranges = topology.ranges();
    let mut nodes = BTreeMap::new();
    let mut node = |addr: String, role: &'static str| {
        let t = totals.get(&addr).copied().unwrap_or_default();
        let view = NodeView {
            role,
            up: up(&addr),
            requests: t.requests,
            latency_seconds_sum: t.latency_seconds_sum,
            errors: t.errors,
        };
        nodes.insert(addr, view);
    };
    let shards = topology
        .shards()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            node(s.master.to_string(), "master");
            s.replicas
                .iter()
                .for_each(|r| node(r.to_string(), "replica"));
            let mine: Vec<[u16; 2]> = ranges
                .iter()
                .filter(|(_, _, shard)| *shard == i)
                .map(|&(a, b, _)| [a, b])
                .collect();
            ShardView {
                master: s.master.to_string(),
                replicas: s.replicas.iter().map(|r| r.to_string()).collect(),
                slots: mine.iter().map(|[a, b]| usize::from(b - a) + 1).sum(),
                ranges: mine,
                epoch: s.epoch,
            }
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        slots_covered: topology.covered_slots(),
        shards,
        nodes,
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{NodeAddr, Shard};

    fn shard(master: &str, replicas: &[&str]) -> Shard {
        Shard {
            master: NodeAddr::from(master),
            replicas: replicas.iter().map(|r| NodeAddr::from(*r)).collect(),
            epoch: 1,
        }
    }

    fn two(a_last: u64, a_replica: &str) -> Topology {
        Topology::from_ranges([
            (0, a_last, shard("a:1", &[a_replica])),
            (a_last + 1, 16383, shard("b:1", &["b:2"])),
        ])
        .unwrap()
    }

    #[test]
    fn a_move_and_a_new_replica_are_told_in_words() {
        let lines = describe(&two(8000, "a:2"), &two(8100, "a:3"));
        assert_eq!(
            lines,
            ["slots 8001-8100: b:1 -> a:1", "a:1 has replicas [a:3]"]
        );
        assert!(describe(&two(8000, "a:2"), &two(8000, "a:2")).is_empty());
        let from_nothing = describe(&Topology::empty(), &two(8000, "a:2"));
        assert_eq!(from_nothing[0], "slots 0-8000: nobody -> a:1");
    }

    #[test]
    fn the_view_has_every_node_and_each_shards_ranges() {
        let totals = BTreeMap::from([(
            "a:1".to_owned(),
            NodeTotals {
                requests: 5,
                latency_seconds_sum: 0.5,
                errors: 1,
            },
        )]);
        let view = status(&two(99, "a:2"), |a| Some(a == "a:1"), &totals, Vec::new());
        assert_eq!(view.slots_covered, 16384);
        assert_eq!(view.shards[0].ranges, [[0, 99]]);
        assert_eq!(view.shards[1].slots, 16284);
        assert_eq!(view.nodes.len(), 4);
        assert_eq!(view.nodes["a:1"].requests, 5);
        assert_eq!(view.nodes["b:2"].role, "replica");
        assert_eq!(view.nodes["b:1"].up, Some(false));
    }

    #[test]
    fn the_log_keeps_the_newest() {
        let log = ChangeLog::default();
        for i in 0..40 {
            log.record(&two(1000 + i, "a:2"), &two(1001 + i, "a:2"));
        }
        let entries = log.entries();
        assert_eq!(entries.len(), CHANGES_KEPT);
        assert_eq!(entries.last().unwrap().what, "slots 1040-1040: b:1 -> a:1");
    }
}
