//! Turning a node's `CLUSTER SHARDS` / `CLUSTER SLOTS` reply into a [`Topology`]. Pure: the refresher
//! does the I/O and hands the parsed frame here, so every shape the cluster may send is unit-tested.

use std::collections::HashMap;

use super::topology::{NodeAddr, Shard, Topology, TopologyError};
use crate::protocol::Frame;

/// Config epochs by node id, from `CLUSTER NODES` (the only reply that carries them): lines of
/// `<id> <addr> <flags> <master> <ping> <pong> <config-epoch> <link> <slots...>`.
pub fn epochs(cluster_nodes: &[u8]) -> HashMap<Vec<u8>, u64> {
    cluster_nodes
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut fields = line.split(|&b| b == b' ');
            let id = fields.next()?;
            let epoch = fields.nth(5)?;
            let epoch = std::str::from_utf8(epoch).ok()?.trim().parse().ok()?;
            Some((id.to_vec(), epoch))
        })
        .collect()
}

/// Parses `CLUSTER SHARDS` (Redis 7+). `asked_host` stands in for a node that does not know its own
/// address yet (an empty or `?` endpoint), which is the host we reached it on. `epochs` gives each
/// master's config epoch by node id (0 when missing).
pub fn from_shards(
    reply: &Frame,
    asked_host: &str,
    epochs: &HashMap<Vec<u8>, u64>,
) -> Result<Topology, TopologyError> {
    let Frame::Array(shards) = reply else {
        return Err(TopologyError::Malformed("CLUSTER SHARDS is not an array"));
    };
    let mut ranges = Vec::new();
    for shard in shards {
        let fields = as_map(shard)?;
        let slots =
            field(&fields, b"slots").ok_or(TopologyError::Malformed("shard without slots"))?;
        let nodes =
            field(&fields, b"nodes").ok_or(TopologyError::Malformed("shard without nodes"))?;
        let (Frame::Array(slots), Frame::Array(nodes)) = (slots, nodes) else {
            return Err(TopologyError::Malformed("shard slots/nodes are not arrays"));
        };
        if slots.is_empty() {
            continue;
        }
        let mut master = None;
        let mut epoch = 0;
        let mut replicas = Vec::new();
        for node in nodes {
            let node = as_map(node)?;
            let addr = shard_node_addr(&node, asked_host)?;
            match field(&node, b"role").and_then(text) {
                Some(b"master") => {
                    master = Some(addr);
                    let id = field(&node, b"id").and_then(text).unwrap_or_default();
                    epoch = epochs.get(id).copied().unwrap_or(0);
                }
                _ => {
                    // A failed replica cannot take over, so it is no refresh candidate either.
                    if field(&node, b"health").and_then(text) != Some(b"failed") {
                        replicas.push(addr);
                    }
                }
            }
        }
        let Some(master) = master else {
            // Slots whose master is gone stay unowned until a replica is promoted.
            continue;
        };
        let shard = Shard {
            master,
            replicas,
            epoch,
        };
        for pair in slots.chunks(2) {
            let [start, end] = pair else {
                return Err(TopologyError::Malformed("odd slot range list"));
            };
            ranges.push((number(start)?, number(end)?, shard.clone()));
        }
    }
    Topology::from_ranges(ranges)
}

/// Parses `CLUSTER SLOTS`, the fallback for servers older than 7.0.
pub fn from_slots(reply: &Frame, asked_host: &str) -> Result<Topology, TopologyError> {
    let Frame::Array(entries) = reply else {
        return Err(TopologyError::Malformed("CLUSTER SLOTS is not an array"));
    };
    let mut ranges = Vec::new();
    for entry in entries {
        let Frame::Array(items) = entry else {
            return Err(TopologyError::Malformed("slot range is not an array"));
        };
        let [start, end, master, replicas @ ..] = items.as_slice() else {
            return Err(TopologyError::Malformed("slot range too short"));
        };
        let master = slots_node_addr(master, asked_host)?;
        let replicas = replicas
            .iter()
            .map(|r| slots_node_addr(r, asked_host))
            .collect::<Result<_, _>>()?;
        // CLUSTER SLOTS carries no epochs: such a view never overrides a newer one.
        ranges.push((
            number(start)?,
            number(end)?,
            Shard {
                master,
                replicas,
                epoch: 0,
            },
        ));
    }
    Topology::from_ranges(ranges)
}

/// RESP2 sends maps as flat `[key, value, ...]` arrays.
fn as_map(frame: &Frame) -> Result<Vec<(&[u8], &Frame)>, TopologyError> {
    let Frame::Array(items) = frame else {
        return Err(TopologyError::Malformed("expected a map"));
    };
    items
        .chunks(2)
        .map(|kv| match kv {
            [k, v] => text(k)
                .map(|k| (k, v))
                .ok_or(TopologyError::Malformed("map key is not a string")),
            _ => Err(TopologyError::Malformed("odd map length")),
        })
        .collect()
}

fn field<'a>(map: &[(&[u8], &'a Frame)], name: &[u8]) -> Option<&'a Frame> {
    map.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

fn text(frame: &Frame) -> Option<&[u8]> {
    match frame {
        Frame::Bulk(b) | Frame::Simple(b) => Some(b),
        _ => None,
    }
}

fn number(frame: &Frame) -> Result<u64, TopologyError> {
    match frame {
        Frame::Integer(n) => {
            u64::try_from(*n).map_err(|_| TopologyError::Malformed("negative number"))
        }
        Frame::Bulk(b) | Frame::Simple(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(TopologyError::Malformed("not a number")),
        _ => Err(TopologyError::Malformed("not a number")),
    }
}

fn shard_node_addr(node: &[(&[u8], &Frame)], asked_host: &str) -> Result<NodeAddr, TopologyError> {
    let port = field(node, b"port")
        .ok_or(TopologyError::Malformed("node without port"))
        .and_then(number)?;
    let host = field(node, b"endpoint")
        .and_then(text)
        .filter(|h| known_host(h))
        .or_else(|| field(node, b"ip").and_then(text).filter(|h| known_host(h)));
    make_addr(host, port, asked_host)
}

fn slots_node_addr(node: &Frame, asked_host: &str) -> Result<NodeAddr, TopologyError> {
    let Frame::Array(items) = node else {
        return Err(TopologyError::Malformed("node is not an array"));
    };
    let [host, port, ..] = items.as_slice() else {
        return Err(TopologyError::Malformed("node entry too short"));
    };
    make_addr(
        text(host).filter(|h| known_host(h)),
        number(port)?,
        asked_host,
    )
}

/// `?` and empty mean the node does not know how it is reached.
fn known_host(h: &[u8]) -> bool {
    !h.is_empty() && h != b"?"
}

fn make_addr(host: Option<&[u8]>, port: u64, asked_host: &str) -> Result<NodeAddr, TopologyError> {
    if port == 0 || port > u64::from(u16::MAX) {
        return Err(TopologyError::Malformed("port out of range"));
    }
    let host = match host {
        Some(h) => {
            std::str::from_utf8(h).map_err(|_| TopologyError::Malformed("host is not UTF-8"))?
        }
        None => asked_host,
    };
    // IPv6 literals need brackets to be joined with a port.
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(addr.into())
}

/// Test helper shared with other modules' tests: a bulk frame from text.
#[cfg(test)]
pub(crate) fn bulk(s: &str) -> Frame {
    Frame::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Slot;

    fn node(ip: &str, port: i64, role: &str, health: &str) -> Frame {
        Frame::Array(vec![
            bulk("id"),
            bulk("abc"),
            bulk("port"),
            Frame::Integer(port),
            bulk("ip"),
            bulk(ip),
            bulk("endpoint"),
            bulk(ip),
            bulk("role"),
            bulk(role),
            bulk("replication-offset"),
            Frame::Integer(1),
            bulk("health"),
            bulk(health),
        ])
    }

    fn shard(slots: &[i64], nodes: Vec<Frame>) -> Frame {
        Frame::Array(vec![
            bulk("slots"),
            Frame::Array(slots.iter().map(|&s| Frame::Integer(s)).collect()),
            bulk("nodes"),
            Frame::Array(nodes),
        ])
    }

    #[test]
    fn parses_cluster_shards() {
        let reply = Frame::Array(vec![
            shard(
                &[0, 5460, 16000, 16383],
                vec![
                    node("127.0.0.1", 7000, "master", "online"),
                    node("127.0.0.1", 7003, "replica", "online"),
                ],
            ),
            shard(&[5461, 15999], vec![node("", 7001, "master", "online")]),
            // A shard with no slots (an empty new master) is ignored.
            shard(&[], vec![node("127.0.0.1", 7009, "master", "online")]),
        ]);
        let t = from_shards(
            &reply,
            "10.1.1.1",
            &epochs(b"abc 127.0.0.1:7000@17000 master - 0 0 3 connected 0-5460\n"),
        )
        .unwrap();
        assert!(t.is_complete());
        assert_eq!(t.shards().len(), 2);
        assert_eq!(
            &**t.master_of(Slot::new(16383).unwrap()).unwrap(),
            "127.0.0.1:7000"
        );
        assert_eq!(&*t.shards()[0].replicas[0], "127.0.0.1:7003");
        assert_eq!(
            &**t.master_of(Slot::new(6000).unwrap()).unwrap(),
            "10.1.1.1:7001"
        );
    }

    #[test]
    fn shard_without_master_leaves_slots_unowned() {
        let reply = Frame::Array(vec![shard(
            &[0, 16383],
            vec![node("127.0.0.1", 7003, "replica", "online")],
        )]);
        let t = from_shards(&reply, "h", &HashMap::new()).unwrap();
        assert_eq!(t.covered_slots(), 0);
    }

    #[test]
    fn parses_cluster_slots() {
        let entry = |a: i64, b: i64, ports: &[i64]| {
            let mut v = vec![Frame::Integer(a), Frame::Integer(b)];
            for &p in ports {
                v.push(Frame::Array(vec![
                    bulk("127.0.0.1"),
                    Frame::Integer(p),
                    bulk("id"),
                ]));
            }
            Frame::Array(v)
        };
        let reply = Frame::Array(vec![
            entry(0, 8191, &[7000, 7003]),
            entry(8192, 16383, &[7001]),
        ]);
        let t = from_slots(&reply, "h").unwrap();
        assert!(t.is_complete());
        assert_eq!(&*t.shards()[0].replicas[0], "127.0.0.1:7003");
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        assert!(from_shards(&Frame::Integer(1), "h", &HashMap::new()).is_err());
        assert!(from_slots(&Frame::Array(vec![Frame::Array(vec![])]), "h").is_err());
        let bad_port = Frame::Array(vec![shard(&[0, 1], vec![node("h", 0, "master", "online")])]);
        assert!(from_shards(&bad_port, "h", &HashMap::new()).is_err());
        let bad_range = Frame::Array(vec![shard(&[0], vec![node("h", 1, "master", "online")])]);
        assert!(from_shards(&bad_range, "h", &HashMap::new()).is_err());
    }

    #[test]
    fn epochs_from_cluster_nodes() {
        let text = b"e7d1 127.0.0.1:30004@31004,host-a slave 67ed 0 1426238317239 4 connected\n\
67ed 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922\n\
garbage\n";
        let e = epochs(text);
        assert_eq!(e.get(&b"67ed"[..]), Some(&2));
        assert_eq!(e.get(&b"e7d1"[..]), Some(&4));
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(&*make_addr(Some(b"::1"), 7000, "h").unwrap(), "[::1]:7000");
    }
}
