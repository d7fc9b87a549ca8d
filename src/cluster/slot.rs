//! Hash slots: the unit Redis Cluster shards its keyspace by.

/// Number of hash slots in a Redis Cluster; fixed by the cluster protocol.
pub const SLOT_COUNT: usize = 16384;

/// A hash slot number.
///
/// Invariant: the value is always `< SLOT_COUNT`. Every constructor masks or checks, so a `Slot` can
/// index a `SLOT_COUNT`-entry table without a bounds failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(u16);

impl Slot {
    /// `None` when `n` is out of range: slot numbers come from the network and must be checked.
    pub fn new(n: u16) -> Option<Slot> {
        (usize::from(n) < SLOT_COUNT).then_some(Slot(n))
    }

    /// The slot Redis Cluster assigns to `key`: CRC16/XMODEM of its hash tag (or of the whole key
    /// when it has none), modulo 16384.
    pub fn for_key(key: &[u8]) -> Slot {
        let crc = crc16::State::<crc16::XMODEM>::calculate(hash_tag(key));
        Slot(crc & (SLOT_COUNT as u16 - 1))
    }

    /// The slot of keys with the hash tag `{n}`: slotgate names keys of its own with such
    /// short tags to reach a chosen master (see [`TAGS_COVER_ALL`]).
    pub fn of_tag(n: u32) -> Slot {
        Slot::for_key(n.to_string().as_bytes())
    }

    pub fn get(self) -> u16 {
        self.0
    }

    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The tags `{0}` to `{TAGS_COVER_ALL - 1}` between them fall in every slot (a test checks it),
/// so a search among them for a tag of a given slot, or of a given master, always ends.
pub const TAGS_COVER_ALL: u32 = 109_758;

/// The part of a key that decides its slot, following Redis' rule exactly: the bytes between the
/// first `{` and the first `}` after it, unless that span is empty or unclosed, in which case the
/// whole key. Applications rely on this to co-locate keys, so any deviation breaks multi-key commands.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values were read from `CLUSTER KEYSLOT` on a real Redis 7.0 node.
    #[test]
    fn matches_cluster_keyslot() {
        let cases: &[(&[u8], u16)] = &[
            (b"foo", 12182),
            (b"bar", 5061),
            (b"", 0),
            (b"a", 15495),
            (b"123456789", 12739),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"foo{bar}{zap}", 5061),
            (b"{}", 15257),
            (b"{a}", 15495),
            (b"}{a}", 15495),
            (b"hello{world", 2258),
            (b"{{}}", 4092),
            (b"\xff\xfe", 3374),
        ];
        for (key, want) in cases {
            assert_eq!(
                Slot::for_key(key).get(),
                *want,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn new_rejects_out_of_range() {
        assert_eq!(Slot::new(16383).map(Slot::get), Some(16383));
        assert_eq!(Slot::new(16384), None);
        assert_eq!(Slot::new(u16::MAX), None);
    }

    #[test]
    fn short_tags_reach_every_slot() {
        let mut reached = vec![false; SLOT_COUNT];
        for n in 0..TAGS_COVER_ALL {
            reached[Slot::of_tag(n).index()] = true;
        }
        assert!(
            reached.iter().all(|&r| r),
            "a slot has no tag below the bound"
        );
        // The tag decides, whatever surrounds it.
        for n in [0, 7, 4242, TAGS_COVER_ALL - 1] {
            let key = format!("slotgate:wait:{{{n}}}");
            assert_eq!(Slot::for_key(key.as_bytes()), Slot::of_tag(n), "{key}");
        }
    }

    #[test]
    fn hash_tag_rules() {
        assert_eq!(hash_tag(b"x{tag}y"), b"tag");
        assert_eq!(hash_tag(b"x{}y"), b"x{}y");
        assert_eq!(hash_tag(b"x{tag"), b"x{tag");
        assert_eq!(hash_tag(b"{{tag}}"), b"{tag");
    }
}
