//! A case-insensitive hash index over the builtin top-level command names.
//!
//! Every request's name is looked up, and a binary search over some 240 names with a
//! case-folding comparison took about 420 instructions for `SET`, more than hashing the key's
//! slot. Hashing the case-folded name and probing an open-addressed array of positions costs a
//! few instructions per byte of the name plus one comparison, whatever the table's size.

/// Positions in a sorted name list, found by the case-folded name's hash; built once per table.
#[derive(Clone, Debug)]
pub(crate) struct NameIndex {
    /// `EMPTY` or a position in the list the index was built from. A power of two long, at
    /// least twice the names, so probe runs stay short and always reach an empty slot.
    slots: Box<[u16]>,
}

const EMPTY: u16 = u16::MAX;

impl NameIndex {
    /// Indexes `names` (canonical uppercase, distinct, fewer than `u16::MAX`).
    pub(crate) fn new<'a>(names: impl ExactSizeIterator<Item = &'a [u8]>) -> NameIndex {
        let len = (names.len() * 2).next_power_of_two().max(8);
        assert!(names.len() < usize::from(EMPTY), "too many names to index");
        let mut slots = vec![EMPTY; len].into_boxed_slice();
        let mask = len - 1;
        for (position, name) in names.enumerate() {
            let mut i = hash(name) as usize & mask;
            while slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            slots[i] = position as u16;
        }
        NameIndex { slots }
    }

    /// The position of `name` (any case) in the list the index was built from, given that list.
    #[inline]
    pub(crate) fn find<T>(
        &self,
        list: &[T],
        name_of: impl Fn(&T) -> &[u8],
        name: &[u8],
    ) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut i = hash(name) as usize & mask;
        loop {
            let position = self.slots[i];
            if position == EMPTY {
                return None;
            }
            let position = usize::from(position);
            if name_of(&list[position]).eq_ignore_ascii_case(name) {
                return Some(position);
            }
            i = (i + 1) & mask;
        }
    }
}

/// FNV-1a over the ASCII-uppercased bytes.
#[inline]
fn hash(name: &[u8]) -> u32 {
    name.iter().fold(0x811c_9dc5, |h: u32, &b| {
        (h ^ u32::from(b.to_ascii_uppercase())).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<&'static [u8]> {
        vec![b"DEL", b"GET", b"MGET", b"SET", b"SETEX", b"ZADD"]
    }

    #[test]
    fn finds_every_name_in_any_case_and_nothing_else() {
        let list = names();
        let index = NameIndex::new(list.iter().copied());
        let find = |n: &[u8]| index.find(&list, |e| e, n);
        for (i, name) in list.iter().enumerate() {
            assert_eq!(find(name), Some(i));
            assert_eq!(find(&name.to_ascii_lowercase()), Some(i));
        }
        assert_eq!(find(b"sEtEx"), Some(4));
        for absent in [&b""[..], b"SE", b"SETE", b"SETEXX", b"GE\0T", b"\xff"] {
            assert_eq!(find(absent), None, "{absent:?}");
        }
    }

    #[test]
    fn a_full_probe_run_still_ends() {
        // Eight slots, four names: whatever their hashes, an empty slot stops every search.
        let list: Vec<&[u8]> = vec![b"A", b"B", b"C", b"D"];
        let index = NameIndex::new(list.iter().copied());
        assert_eq!(index.slots.len(), 8);
        for n in 0..=255u8 {
            let found = index.find(&list, |e| e, &[n]);
            let want = list.iter().position(|e| e.eq_ignore_ascii_case(&[n]));
            assert_eq!(found, want, "{n}");
        }
    }
}
