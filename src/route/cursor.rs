//! SCAN's cursor for a whole cluster, in the one unsigned 64-bit number a client of one Redis
//! server expects. Pure: the router decides which node to ask, this only packs and unpacks.
//!
//! The cursor names the *shard* being walked, not a node: a slot the shard owns, so the walk finds
//! the shard again after a failover, and a short tag of the master that served its last page,
//! so a new master (whose dict hashes keys with another seed, making the old cursor meaningless
//! there) starts that shard over instead of skipping part of it.

use crate::cluster::{NodeAddr, Slot};

/// Bits of the node's own SCAN cursor: a node's cursor is below its dict's table size, so 40
/// bits hold the cursor of a node with up to a trillion buckets.
pub const NODE_BITS: u32 = 40;
const SLOT_BITS: u32 = 14;
const TAG_BITS: u32 = 64 - NODE_BITS - SLOT_BITS;
const NODE_MASK: u64 = (1 << NODE_BITS) - 1;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

/// Why a SCAN cursor cannot be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Redis' own words for a cursor that is not a number `strtoul` reads whole.
    #[error("ERR invalid cursor")]
    Invalid,
    /// Refused rather than truncated: a truncated cursor would silently skip keys.
    #[error("ERR slotgate: SCAN cursor {cursor} of {addr} does not fit in {NODE_BITS} bits")]
    NodeCursorTooLarge { addr: NodeAddr, cursor: u64 },
}

/// Where a cluster-wide SCAN stands, between two calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanCursor {
    /// Names the shard being walked: the slot that placed it in the walk (its highest slot).
    pub slot: Slot,
    /// Which master served the shard's last page; meaningless while `node` is 0.
    tag: u16,
    /// That master's own cursor; 0 starts the shard from its beginning.
    node: u64,
}

impl ScanCursor {
    /// The start of the shard `slot` names.
    pub fn enter(slot: Slot) -> ScanCursor {
        ScanCursor {
            slot,
            tag: 0,
            node: 0,
        }
    }

    /// `node`'s cursor `cursor` into the shard `slot` names.
    pub fn within(slot: Slot, node: &NodeAddr, cursor: u64) -> Result<ScanCursor, CursorError> {
        if cursor > NODE_MASK {
            return Err(CursorError::NodeCursorTooLarge {
                addr: node.clone(),
                cursor,
            });
        }
        Ok(ScanCursor {
            slot,
            tag: tag(node),
            node: cursor,
        })
    }

    /// `None` for 0, the start of the whole walk. Any other number is some position: Redis too
    /// accepts any cursor, and answers a made-up one with some keys, never an error.
    pub fn decode(value: u64) -> Option<ScanCursor> {
        if value == 0 {
            return None;
        }
        let slot = (value >> NODE_BITS) & SLOT_MASK;
        Some(ScanCursor {
            // 14 bits always make a valid slot.
            slot: Slot::new(slot as u16)?,
            tag: ((value >> (NODE_BITS + SLOT_BITS)) & TAG_MASK) as u16,
            node: value & NODE_MASK,
        })
    }

    /// Never 0 for a position the walk returns: a shard is entered at a slot above the previous
    /// one's, and a page within a shard has a node cursor other than 0.
    pub fn encode(self) -> u64 {
        (u64::from(self.tag) << (NODE_BITS + SLOT_BITS))
            | (u64::from(self.slot.get()) << NODE_BITS)
            | self.node
    }

    /// The cursor to send `master`, the shard's master now: the saved one if it served the last
    /// page, else 0, since another node's cursor says nothing about this one's dict.
    pub fn resume_on(self, master: &NodeAddr) -> u64 {
        match self.node != 0 && self.tag == tag(master) {
            true => self.node,
            false => 0,
        }
    }
}

/// A short name for a node, the same in every slotgate process (CRC16 of its address), so a
/// client may continue a walk through another slotgate in front of the same cluster.
fn tag(node: &NodeAddr) -> u16 {
    let crc = crc16::State::<crc16::XMODEM>::calculate(node.as_bytes());
    (u64::from(crc) & TAG_MASK) as u16
}

/// Reads a client's cursor as Redis 7 does (`strtoul` in base 10): an optional sign, where `-n`
/// wraps around as in C, digits up to 2^64-1, nothing after them; the empty string is 0;
/// leading whitespace or anything else is an invalid cursor. The argument ends at a NUL byte,
/// as the C string Redis reads does.
pub fn parse_client(arg: &[u8]) -> Result<u64, CursorError> {
    let text = arg.split(|&b| b == 0).next().unwrap_or_default();
    let (negative, digits) = match text.split_first() {
        None => return Ok(0),
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        Some(_) => (false, text),
    };
    if digits.is_empty() {
        return Err(CursorError::Invalid);
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(CursorError::Invalid);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(CursorError::Invalid)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(n: u16) -> Slot {
        Slot::new(n).unwrap()
    }

    fn addr(s: &str) -> NodeAddr {
        NodeAddr::from(s)
    }

    #[test]
    fn a_position_survives_the_round_trip() {
        let node = addr("10.0.0.1:6379");
        for (s, c) in [(0, 1), (5460, 17), (16383, NODE_MASK), (10922, 1 << 39)] {
            let cursor = ScanCursor::within(slot(s), &node, c).unwrap();
            let value = cursor.encode();
            assert_ne!(value, 0);
            assert_eq!(ScanCursor::decode(value), Some(cursor));
            assert_eq!(cursor.resume_on(&node), c);
        }
        let entered = ScanCursor::enter(slot(16383));
        assert_eq!(ScanCursor::decode(entered.encode()), Some(entered));
    }

    #[test]
    fn the_fields_sit_where_the_layout_says() {
        let node = addr("127.0.0.1:7000");
        let c = ScanCursor::within(slot(5460), &node, 12345).unwrap();
        let value = c.encode();
        assert_eq!(value & NODE_MASK, 12345);
        assert_eq!((value >> 40) & SLOT_MASK, 5460);
        assert_eq!(value >> 54, u64::from(tag(&node)));
        assert!(tag(&node) < 1 << 10);
        // Entering a shard: only the slot is set.
        assert_eq!(ScanCursor::enter(slot(1)).encode(), 1 << 40);
    }

    #[test]
    fn zero_is_the_start_of_the_walk() {
        assert_eq!(ScanCursor::decode(0), None);
    }

    #[test]
    fn another_master_starts_the_shard_over() {
        let (old, new) = (addr("127.0.0.1:7000"), addr("127.0.0.1:7003"));
        assert_ne!(tag(&old), tag(&new));
        let c = ScanCursor::within(slot(5460), &old, 99).unwrap();
        let back = ScanCursor::decode(c.encode()).unwrap();
        assert_eq!(back.resume_on(&new), 0);
        assert_eq!(back.resume_on(&old), 99);
        // Entering a shard starts it from 0 on whichever node serves it.
        assert_eq!(ScanCursor::enter(slot(5460)).resume_on(&old), 0);
    }

    #[test]
    fn the_tag_is_the_same_in_every_process() {
        // CRC16/XMODEM of the address, low 10 bits: a fixed function, not a per-process hasher.
        assert_eq!(tag(&addr("123456789")), 0x31C3 & 0x3FF);
    }

    #[test]
    fn a_node_cursor_too_large_is_refused_not_cut() {
        let node = addr("n:1");
        let e = ScanCursor::within(slot(0), &node, 1 << 40).unwrap_err();
        assert_eq!(
            e,
            CursorError::NodeCursorTooLarge {
                addr: node,
                cursor: 1 << 40
            }
        );
        assert_eq!(
            e.to_string(),
            "ERR slotgate: SCAN cursor 1099511627776 of n:1 does not fit in 40 bits"
        );
    }

    /// Each case was sent to redis-server 7.0.15 as `SCAN <arg>`: a number there means it
    /// answered a page, `None` that it said `-ERR invalid cursor`.
    #[test]
    fn client_cursors_read_as_redis_reads_them() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"17", Some(17)),
            (b"01", Some(1)),
            (b"+1", Some(1)),
            (b"-0", Some(0)),
            (b"-1", Some(u64::MAX)),
            (b"-18446744073709551615", Some(1)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"00000000000000000000000000001", Some(1)),
            (b"", Some(0)),
            (b"0\0x", Some(0)),
            (b"18446744073709551616", None),
            (b"-18446744073709551616", None),
            (b"x", None),
            (b"1x", None),
            (b"1.0", None),
            (b" 1", None),
            (b"\t1", None),
            (b"1 ", None),
            (b"-", None),
            (b"+", None),
        ];
        for &(arg, want) in cases {
            let got = parse_client(arg).ok();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(arg));
        }
        assert_eq!(
            parse_client(b"x").unwrap_err().to_string(),
            "ERR invalid cursor"
        );
    }
}
