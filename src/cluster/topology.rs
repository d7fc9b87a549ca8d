//! The immutable slot map. A new one is built off the hot path and swapped in whole, so a request
//! always sees one consistent view and never takes a lock.

use std::sync::Arc;

use super::slot::{Slot, SLOT_COUNT, TAGS_COVER_ALL};

/// A node's address as the cluster announces it, `host:port`. Shared, because every shard, backend
/// and metric label refers to the same few strings.
pub type NodeAddr = Arc<str>;

/// One master and the replicas that would take over its slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub master: NodeAddr,
    pub replicas: Vec<NodeAddr>,
    /// The master's config epoch: when two nodes disagree about who owns a slot, the owner with
    /// the higher epoch is the newer truth (Redis Cluster's own rule). 0 when unknown.
    pub epoch: u64,
}

/// Marks a slot that no shard serves (cluster incomplete, or a master just failed).
const UNOWNED: u16 = u16::MAX;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// `owners[slot]` indexes `shards`, or is `UNOWNED`. A flat array: lookup is one load, and a
    /// whole snapshot is 32 KiB, cheap enough to copy when one slot moves.
    owners: Box<[u16]>,
    shards: Vec<Shard>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    #[error("slot range {start}-{end} is out of bounds")]
    SlotOutOfRange { start: u64, end: u64 },
    #[error("too many shards ({0})")]
    TooManyShards(usize),
    #[error("malformed cluster reply: {0}")]
    Malformed(&'static str),
}

impl Default for Topology {
    fn default() -> Self {
        Topology::empty()
    }
}

impl Topology {
    /// No slot served: what the proxy holds before it has reached any node.
    pub fn empty() -> Topology {
        Topology {
            owners: vec![UNOWNED; SLOT_COUNT].into_boxed_slice(),
            shards: Vec::new(),
        }
    }

    /// Builds a snapshot from `(first_slot, last_slot, shard)` ranges as the cluster reports them.
    /// Ranges that name the same master are merged into one shard.
    pub fn from_ranges(
        ranges: impl IntoIterator<Item = (u64, u64, Shard)>,
    ) -> Result<Topology, TopologyError> {
        let mut topo = Topology::empty();
        for (start, end, shard) in ranges {
            if start > end || end >= SLOT_COUNT as u64 {
                return Err(TopologyError::SlotOutOfRange { start, end });
            }
            let idx = topo.shard_index_or_insert(shard)?;
            for owner in &mut topo.owners[start as usize..=end as usize] {
                *owner = idx;
            }
        }
        Ok(topo)
    }

    fn shard_index_or_insert(&mut self, shard: Shard) -> Result<u16, TopologyError> {
        if let Some(i) = self.shards.iter().position(|s| s.master == shard.master) {
            let known = &mut self.shards[i];
            known.epoch = known.epoch.max(shard.epoch);
            let known = &mut known.replicas;
            for r in shard.replicas {
                if !known.contains(&r) {
                    known.push(r);
                }
            }
            return Ok(i as u16);
        }
        if self.shards.len() >= usize::from(UNOWNED) {
            return Err(TopologyError::TooManyShards(self.shards.len()));
        }
        self.shards.push(shard);
        Ok((self.shards.len() - 1) as u16)
    }

    /// Index into [`Topology::shards`] of the shard serving `slot`.
    pub fn shard_of(&self, slot: Slot) -> Option<usize> {
        match self.owners[slot.index()] {
            UNOWNED => None,
            i => Some(usize::from(i)),
        }
    }

    pub fn master_of(&self, slot: Slot) -> Option<&NodeAddr> {
        self.shard_of(slot).map(|i| &self.shards[i].master)
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Runs of consecutive slots with the same owner, as `(first, last, shard)`; unowned slots
    /// are left out. For showing the map to people.
    pub fn ranges(&self) -> Vec<(u16, u16, usize)> {
        let mut out: Vec<(u16, u16, usize)> = Vec::new();
        for (slot, &owner) in self.owners.iter().enumerate() {
            if owner == UNOWNED {
                continue;
            }
            let (slot, shard) = (slot as u16, usize::from(owner));
            match out.last_mut() {
                Some((_, last, s)) if *s == shard && *last + 1 == slot => *last = slot,
                _ => out.push((slot, slot, shard)),
            }
        }
        out
    }

    /// Shards that serve at least one slot: the masters a fan-out must reach.
    pub fn serving_shards(&self) -> impl Iterator<Item = (usize, &Shard)> {
        let mut used = vec![false; self.shards.len()];
        for &o in self.owners.iter() {
            if o != UNOWNED {
                used[usize::from(o)] = true;
            }
        }
        self.shards
            .iter()
            .enumerate()
            .filter(move |(i, _)| used[*i])
    }

    /// For every master that serves a slot, the first tag `{n}` whose keys it serves: a way to
    /// reach each master through a key of slotgate's own. A few tries for masters of many slots,
    /// never more than [`TAGS_COVER_ALL`]; in the order of [`Topology::serving_shards`].
    pub fn tag_per_master(&self) -> Vec<(NodeAddr, u32)> {
        let mut tags: Vec<Option<u32>> = vec![None; self.shards.len()];
        let mut missing = self.serving_shards().count();
        let mut n = 0;
        while missing > 0 && n < TAGS_COVER_ALL {
            if let Some(i) = self.shard_of(Slot::of_tag(n)) {
                if tags[i].is_none() {
                    tags[i] = Some(n);
                    missing -= 1;
                }
            }
            n += 1;
        }
        self.serving_shards()
            .filter_map(|(i, s)| tags[i].map(|n| (s.master.clone(), n)))
            .collect()
    }

    /// The order a cluster-wide SCAN walks the serving shards in: each shard's highest slot,
    /// which names the shard in SCAN's cursor, ascending. The highest, because `redis-cli
    /// --cluster reshard` and `rebalance` move a shard's lowest slots first: this one stays with
    /// the shard longest.
    pub fn highest_slots(&self) -> Vec<Slot> {
        let mut highest: Vec<Option<Slot>> = vec![None; self.shards.len()];
        for (slot, &owner) in self.owners.iter().enumerate() {
            if owner != UNOWNED {
                highest[usize::from(owner)] = Slot::new(slot as u16);
            }
        }
        let mut order: Vec<Slot> = highest.into_iter().flatten().collect();
        order.sort_unstable();
        order
    }

    pub fn covered_slots(&self) -> usize {
        self.owners.iter().filter(|&&o| o != UNOWNED).count()
    }

    /// Every slot has an owner: the proxy can serve any key.
    pub fn is_complete(&self) -> bool {
        self.owners.iter().all(|&o| o != UNOWNED)
    }

    /// A copy in which `slot` belongs to `master`, as a MOVED reply says. Applied at once so the
    /// requests right behind the redirected one go straight to the new owner, before the full
    /// refresh lands.
    pub fn with_slot_moved(&self, slot: Slot, master: &NodeAddr) -> Topology {
        let mut next = self.clone();
        let idx = match next.shard_index_or_insert(Shard {
            master: master.clone(),
            replicas: Vec::new(),
            epoch: 0,
        }) {
            Ok(i) => i,
            // Cannot happen with fewer than 65535 masters; keep the old owner rather than fail.
            Err(_) => return next,
        };
        next.owners[slot.index()] = idx;
        next
    }

    /// Combines several nodes' views: each slot goes to the owner with the highest config epoch
    /// (the first view wins a tie). Also returns how many slots the views disagreed on.
    pub fn merge(views: &[Topology]) -> (Topology, usize) {
        let mut out = Topology::empty();
        // Per view, its shard index -> index in `out`, filled lazily.
        let mut maps: Vec<Vec<Option<u16>>> =
            views.iter().map(|v| vec![None; v.shards.len()]).collect();
        let mut disagreements = 0;
        for slot in 0..SLOT_COUNT {
            let mut best: Option<(usize, &Shard)> = None;
            let mut differs = false;
            for (vi, view) in views.iter().enumerate() {
                let Some(si) = view.shard_at(slot) else {
                    continue;
                };
                let shard = &view.shards[si];
                match best {
                    None => best = Some((vi, shard)),
                    Some((_, b)) => {
                        differs |= b.master != shard.master;
                        if shard.epoch > b.epoch {
                            best = Some((vi, shard));
                        }
                    }
                }
            }
            disagreements += usize::from(differs);
            let Some((vi, shard)) = best else {
                continue;
            };
            let si = views[vi].owners[slot] as usize;
            let idx = match maps[vi][si] {
                Some(i) => i,
                None => match out.shard_index_or_insert(shard.clone()) {
                    Ok(i) => {
                        maps[vi][si] = Some(i);
                        i
                    }
                    Err(_) => continue,
                },
            };
            out.owners[slot] = idx;
        }
        (out, disagreements)
    }

    /// `self` as the next snapshot, except where `current` knows a newer owner (higher epoch): a
    /// node that has not heard of a failover yet must not undo it.
    pub fn keep_newer(self, current: &Topology) -> Topology {
        if !(0..SLOT_COUNT).any(|slot| self.older_at(current, slot)) {
            return self;
        }
        let mut out = Topology::empty();
        for slot in 0..SLOT_COUNT {
            let from = if self.older_at(current, slot) {
                current
            } else {
                &self
            };
            if let Some(si) = from.shard_at(slot) {
                if let Ok(i) = out.shard_index_or_insert(from.shards[si].clone()) {
                    out.owners[slot] = i;
                }
            }
        }
        out
    }

    fn shard_at(&self, slot: usize) -> Option<usize> {
        match self.owners[slot] {
            UNOWNED => None,
            i => Some(usize::from(i)),
        }
    }

    /// `current` has an owner for `slot` with a strictly higher epoch than ours.
    fn older_at(&self, current: &Topology, slot: usize) -> bool {
        let epoch = |t: &Topology| t.shard_at(slot).map(|i| t.shards[i].epoch);
        match (epoch(self), epoch(current)) {
            (Some(mine), Some(theirs)) => theirs > mine,
            _ => false,
        }
    }

    /// Every node address the snapshot knows, masters first: the candidates to ask for a refresh.
    pub fn all_nodes(&self) -> Vec<NodeAddr> {
        let mut out: Vec<NodeAddr> = self.shards.iter().map(|s| s.master.clone()).collect();
        for s in &self.shards {
            out.extend(s.replicas.iter().cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(master: &str) -> Shard {
        epoch_shard(master, 0)
    }

    fn epoch_shard(master: &str, epoch: u64) -> Shard {
        Shard {
            master: master.into(),
            replicas: vec![],
            epoch,
        }
    }

    /// Two nodes' views: one has not heard that slots 0-99 failed over from a:1 (epoch 1) to
    /// r:1 (epoch 7).
    fn before_and_after_failover() -> (Topology, Topology) {
        let view = |owner: Shard| {
            Topology::from_ranges([(0, 99, owner), (100, 16383, epoch_shard("b:1", 2))]).unwrap()
        };
        (view(epoch_shard("a:1", 1)), view(epoch_shard("r:1", 7)))
    }

    #[test]
    fn merge_prefers_higher_epoch_and_counts_disagreement() {
        let (stale, fresh) = before_and_after_failover();
        let (merged, disagree) = Topology::merge(&[stale.clone(), fresh.clone()]);
        assert_eq!(disagree, 100);
        assert_eq!(&**merged.master_of(Slot::new(5).unwrap()).unwrap(), "r:1");
        assert_eq!(&**merged.master_of(Slot::new(500).unwrap()).unwrap(), "b:1");
        assert!(merged.is_complete());
        let (same, none) = Topology::merge(&[fresh.clone(), fresh.clone()]);
        assert_eq!((same, none), (fresh, 0));
    }

    #[test]
    fn an_older_view_never_undoes_a_newer_one() {
        let (stale, current) = before_and_after_failover();
        let kept = stale.keep_newer(&current);
        assert_eq!(&**kept.master_of(Slot::new(5).unwrap()).unwrap(), "r:1");
        // A newer view is taken as it is, including a slot that moved to a new epoch.
        let newer = Topology::from_ranges([(0, 16383, epoch_shard("b:1", 9))]).unwrap();
        assert_eq!(newer.clone().keep_newer(&current), newer);
    }

    #[test]
    fn ranges_cover_and_merge_same_master() {
        let t = Topology::from_ranges([
            (0, 5460, shard("a:1")),
            (5461, 10922, shard("b:1")),
            (10923, 16383, shard("a:1")),
        ])
        .unwrap();
        assert!(t.is_complete());
        assert_eq!(t.shards().len(), 2);
        assert_eq!(&**t.master_of(Slot::new(16383).unwrap()).unwrap(), "a:1");
        assert_eq!(&**t.master_of(Slot::new(5461).unwrap()).unwrap(), "b:1");
    }

    #[test]
    fn scan_order_follows_each_shards_highest_slot() {
        let t = Topology::from_ranges([
            (0, 99, shard("a:1")),
            (100, 199, shard("b:1")),
            (200, 299, shard("a:1")),
            (16000, 16383, shard("c:1")),
            (300, 15999, shard("d:1")),
        ])
        .unwrap();
        let order: Vec<(u16, &str)> = t
            .highest_slots()
            .into_iter()
            .map(|slot| (slot.get(), &**t.master_of(slot).unwrap()))
            .collect();
        assert_eq!(
            order,
            vec![(199, "b:1"), (299, "a:1"), (15999, "d:1"), (16383, "c:1")]
        );
        // A shard that serves nothing is not walked.
        let moved = Topology::from_ranges([(0, 16383, shard("a:1"))])
            .unwrap()
            .with_slot_moved(Slot::new(7).unwrap(), &"b:1".into())
            .with_slot_moved(Slot::new(7).unwrap(), &"a:1".into());
        assert_eq!(moved.shards().len(), 2);
        assert_eq!(moved.highest_slots(), vec![Slot::new(16383).unwrap()]);
    }

    #[test]
    fn incomplete_map_reports_gaps() {
        let t = Topology::from_ranges([(0, 99, shard("a:1"))]).unwrap();
        assert!(!t.is_complete());
        assert_eq!(t.covered_slots(), 100);
        assert_eq!(t.master_of(Slot::new(100).unwrap()), None);
    }

    #[test]
    fn rejects_out_of_range_slots() {
        assert_eq!(
            Topology::from_ranges([(0, 16384, shard("a:1"))]),
            Err(TopologyError::SlotOutOfRange {
                start: 0,
                end: 16384
            })
        );
        assert!(Topology::from_ranges([(10, 5, shard("a:1"))]).is_err());
    }

    #[test]
    fn every_serving_master_gets_a_tag_of_its_own_slots() {
        let tiny = Slot::new(9000).unwrap();
        let t = Topology::from_ranges([(0, 8191, shard("a:1")), (8192, 16383, shard("b:1"))])
            .unwrap()
            .with_slot_moved(tiny, &"c:1".into())
            .with_slot_moved(Slot::new(1).unwrap(), &"b:1".into());
        let tags = t.tag_per_master();
        let masters: Vec<&str> = tags.iter().map(|(m, _)| &**m).collect();
        assert_eq!(masters, ["a:1", "b:1", "c:1"]);
        for (master, n) in &tags {
            let key = format!("slotgate:wait:{{{n}}}");
            let slot = Slot::for_key(key.as_bytes());
            assert_eq!(t.master_of(slot), Some(master), "{key} in slot {slot}");
        }
        // A master of one slot is found too: its tag hashes to exactly that slot.
        assert_eq!(Slot::of_tag(tags[2].1), tiny);
        assert!(Topology::empty().tag_per_master().is_empty());
    }

    #[test]
    fn moved_slot_changes_only_that_slot() {
        let t = Topology::from_ranges([(0, 16383, shard("a:1"))]).unwrap();
        let s = Slot::new(42).unwrap();
        let moved = t.with_slot_moved(s, &"c:1".into());
        assert_eq!(&**moved.master_of(s).unwrap(), "c:1");
        assert_eq!(&**moved.master_of(Slot::new(43).unwrap()).unwrap(), "a:1");
        assert_eq!(moved.serving_shards().count(), 2);
        assert_eq!(&**t.master_of(s).unwrap(), "a:1", "original untouched");
    }
}
