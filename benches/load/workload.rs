//! What the clients send: the workloads, their key spaces, and how one request is written for
//! either target.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use fastrand::Rng;
use slotgate::cluster::Slot;
use slotgate::protocol::Reply;

use crate::resp::{Client, SlotMap, Target};

/// Keys per MGET/MSET.
pub const MULTI_KEYS: usize = 10;

/// Keys that exist before any run, so every GET is a hit and costs the same on both targets.
pub struct KeySpace {
    keys: Vec<Bytes>,
    /// Key indices per master, to deal multi-key requests over every master.
    by_master: Vec<Vec<u32>>,
    value: Bytes,
}

impl KeySpace {
    /// No hash tags in the names: each key lands in its own slot, as an application's keys do.
    pub fn new(prefix: &str, count: usize, value_len: usize, map: &SlotMap) -> KeySpace {
        let mut by_master = vec![Vec::new(); map.masters.len()];
        let keys: Vec<Bytes> = (0..count)
            .map(|i| Bytes::from(format!("bench:{prefix}:{i:07}")))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            by_master[map.master_index(Slot::for_key(key))].push(i as u32);
        }
        KeySpace {
            keys,
            by_master,
            value: Bytes::from(vec![b'x'; value_len]),
        }
    }

    pub fn value_len(&self) -> usize {
        self.value.len()
    }

    fn pick(&self, rng: &mut Rng) -> &[u8] {
        &self.keys[rng.usize(..self.keys.len())]
    }

    /// Round-robin over the masters, so every multi-key request touches all of them: the case
    /// where a proxy has to split, fan out and merge.
    fn pick_spread(&self, rng: &mut Rng) -> [u32; MULTI_KEYS] {
        let mut picks = [0; MULTI_KEYS];
        for (i, pick) in picks.iter_mut().enumerate() {
            let pool = &self.by_master[i % self.by_master.len()];
            *pick = pool[rng.usize(..pool.len())];
        }
        picks
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Set,
    MGet,
    MSet,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Set => "SET",
            Op::MGet => "MGET",
            Op::MSet => "MSET",
        }
    }
}

/// What slotgate should reach on this workload (from the performance issue); reported, not
/// enforced, since a shared 2-core machine cannot be trusted to fail a build on.
#[derive(Clone, Copy, Debug)]
pub struct Goal {
    /// `None` where the performance goals state no throughput: 10 busy clients leave little to
    /// batch, so those rows show what the extra hop costs rather than test a promise.
    pub min_ratio: Option<f64>,
    pub max_cpu_us: Option<f64>,
    pub max_rss_mib: f64,
}

pub struct Workload {
    pub name: &'static str,
    pub op: Op,
    pub clients: usize,
    pub pipeline: usize,
    /// Connections held open beside the busy clients, each sending a PING about once a second.
    pub idle: usize,
    pub keys: Arc<KeySpace>,
    pub goal: Goal,
}

/// Ordered so that the process-lifetime peak RSS read after each workload belongs to the
/// 50-client workloads until the 1,000-connection one runs last.
pub fn all(small: &Arc<KeySpace>, big: &Arc<KeySpace>) -> Vec<Workload> {
    let p1 = Goal {
        min_ratio: Some(0.85),
        max_cpu_us: Some(6.0),
        max_rss_mib: 20.0,
    };
    let p16 = Goal {
        min_ratio: Some(0.8),
        max_cpu_us: Some(1.0),
        max_rss_mib: 20.0,
    };
    let multi = Goal {
        min_ratio: Some(0.8),
        max_cpu_us: None,
        max_rss_mib: 20.0,
    };
    let few = Goal {
        min_ratio: None,
        ..p1
    };
    let idle = Goal {
        max_rss_mib: 50.0,
        ..few
    };
    let w = |name, op, clients, pipeline, idle, keys: &Arc<KeySpace>, goal| Workload {
        name,
        op,
        clients,
        pipeline,
        idle,
        keys: keys.clone(),
        goal,
    };
    vec![
        w("set-p1", Op::Set, 50, 1, 0, small, p1),
        w("get-p1", Op::Get, 50, 1, 0, small, p1),
        w("set-p16", Op::Set, 50, 16, 0, small, p16),
        w("get-p16", Op::Get, 50, 16, 0, small, p16),
        w("mset-10", Op::MSet, 50, 1, 0, small, multi),
        w("mget-10", Op::MGet, 50, 1, 0, small, multi),
        w("set-1k", Op::Set, 50, 1, 0, big, p1),
        w("get-1k", Op::Get, 50, 1, 0, big, p1),
        // The control for the next one: its busy load without the idle connections, so the
        // cost of holding 1,000 connections is not confused with the cost of having 10 clients.
        w("get-p1-c10", Op::Get, 10, 1, 0, small, few),
        w("get-idle1000", Op::Get, 10, 1, 1000, small, idle),
    ]
}

/// Writes request `tag` of a batch into the client's connection(s).
pub fn push_request(client: &mut Client, w: &Workload, rng: &mut Rng, tag: u32) {
    let ks = &*w.keys;
    match w.op {
        Op::Get => {
            let key = ks.pick(rng);
            client.conn_for_key(key).push([b"GET".as_slice(), key], tag);
        }
        Op::Set => {
            let key = ks.pick(rng);
            client
                .conn_for_key(key)
                .push([b"SET".as_slice(), key, &ks.value], tag);
        }
        Op::MGet => push_multi(client, b"MGET", None, ks, rng, tag),
        Op::MSet => push_multi(client, b"MSET", Some(&ks.value), ks, rng, tag),
    }
}

/// A plain client sends one command; a cluster-aware one sends one per slot (a cluster refuses
/// anything else with CROSSSLOT), pipelined per master.
fn push_multi(
    client: &mut Client,
    name: &'static [u8],
    value: Option<&[u8]>,
    ks: &KeySpace,
    rng: &mut Rng,
    tag: u32,
) {
    let picks = ks.pick_spread(rng);
    let key = |i: u32| &ks.keys[i as usize][..];
    let mut args: [&[u8]; 1 + 2 * MULTI_KEYS] = [&[]; 1 + 2 * MULTI_KEYS];
    if !client.is_cluster_aware() {
        let n = fill(&mut args, name, picks.iter().map(|&i| key(i)), value);
        client
            .conn_for_key(key(picks[0]))
            .push(args[..n].iter().copied(), tag);
        return;
    }
    let slots = picks.map(|i| Slot::for_key(key(i)));
    for (i, slot) in slots.iter().enumerate() {
        if slots[..i].contains(slot) {
            continue;
        }
        let same_slot = picks
            .iter()
            .zip(&slots)
            .filter(|&(_, s)| s == slot)
            .map(|(&k, _)| key(k));
        let n = fill(&mut args, name, same_slot, value);
        client
            .conn_for_slot(*slot)
            .push(args[..n].iter().copied(), tag);
    }
}

/// On the stack, so a sub-command costs no allocation beyond its encoding.
fn fill<'a>(
    args: &mut [&'a [u8]],
    name: &'a [u8],
    keys: impl Iterator<Item = &'a [u8]>,
    value: Option<&'a [u8]>,
) -> usize {
    args[0] = name;
    let mut n = 1;
    for key in keys {
        args[n] = key;
        n += 1;
        if let Some(value) = value {
            args[n] = value;
            n += 1;
        }
    }
    n
}

/// Checks one reply as cheaply as the op allows; for MGET returns the element count, which the
/// caller sums over sub-replies, the one check that a split and merge lost nothing.
pub fn check(op: Op, reply: &Reply) -> Result<usize, String> {
    if let Some(e) = reply.error() {
        return Err(String::from_utf8_lossy(e).into_owned());
    }
    let ok = match op {
        Op::MGet => {
            return reply
                .array_elements()
                .map(|e| e.len())
                .ok_or_else(|| "MGET reply is not an array".into())
        }
        Op::Get => reply.bytes().first() == Some(&b'$'),
        Op::Set | Op::MSet => reply.is_ok(),
    };
    if ok {
        Ok(0)
    } else {
        Err(format!(
            "unexpected {} reply {:?}",
            op.name(),
            String::from_utf8_lossy(&reply.bytes()[..reply.bytes().len().min(40)])
        ))
    }
}

/// Writes every key once through a cluster-aware client, deep-pipelined; not measured.
pub async fn preload(map: &Arc<SlotMap>, ks: &Arc<KeySpace>) -> Result<(), String> {
    const TASKS: usize = 8;
    const BATCH: usize = 64;
    let target = Target::Direct(map.clone());
    let mut tasks = Vec::with_capacity(TASKS);
    for first in 0..TASKS {
        let mut client = Client::connect(&target)
            .await
            .map_err(|e| format!("preload: {e}"))?;
        let ks = ks.clone();
        tasks.push(tokio::spawn(async move {
            let indices: Vec<usize> = (first..ks.keys.len()).step_by(TASKS).collect();
            for chunk in indices.chunks(BATCH) {
                for &i in chunk {
                    let key = &ks.keys[i];
                    client
                        .conn_for_key(key)
                        .push([b"SET".as_slice(), key, &ks.value], 0);
                }
                client.exchange().await?;
                if let Some((_, reply, _)) = client.replies().find(|(_, r, _)| !r.is_ok()) {
                    return Err(io::Error::other(format!("SET replied {reply:?}")));
                }
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| format!("preload task: {e}"))?
            .map_err(|e| format!("preload: {e}"))?;
    }
    Ok(())
}

/// One GET through `target`, compared with what preload wrote: proof the target serves the data
/// before any number is taken from it.
pub async fn verify(target: &Target, ks: &KeySpace) -> Result<(), String> {
    let what = |e: &dyn std::fmt::Display| format!("{} check: {e}", target.name());
    let mut client = Client::connect(target).await.map_err(|e| what(&e))?;
    let key = ks.keys[ks.keys.len() / 2].clone();
    client.conn_for_key(&key).push([b"GET".as_slice(), &key], 0);
    client.exchange().await.map_err(|e| what(&e))?;
    let want = Reply::bulk(&ks.value);
    let got = client.replies().next().map(|(_, r, _)| r.clone());
    match got {
        Some(got) if got == want => Ok(()),
        other => Err(what(&format!("GET {key:?} returned {other:?}"))),
    }
}
