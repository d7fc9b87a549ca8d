//! Splitting a multi-key command into one sub-command per slot. Pure, so the grouping and the
//! encoding are tested without a cluster.

use bytes::{Bytes, BytesMut};

use crate::cluster::Slot;
use crate::command::{Keys, SplitKind};
use crate::protocol::encode_command_of;

/// Keys of one request that hash to more than one slot, where the command needs them in one.
#[derive(Debug, PartialEq, Eq)]
pub struct CrossSlot;

/// The slot every key of `keys` (positions in `args`) hashes to; `None` for a request without keys.
pub fn one_slot(args: &[Bytes], keys: Keys) -> Result<Option<Slot>, CrossSlot> {
    if let Some(only) = keys.only() {
        return Ok(Some(Slot::for_key(&args[only])));
    }
    let mut slots = keys.iter().map(|i| Slot::for_key(&args[i]));
    let Some(slot) = slots.next() else {
        return Ok(None);
    };
    match slots.all(|s| s == slot) {
        true => Ok(Some(slot)),
        false => Err(CrossSlot),
    }
}

/// The keys of one slot: where they sit in the client's request, and the sub-command for them.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub slot: Slot,
    /// Positions of this part's keys among the request's keys (0 = first key), in client order.
    pub positions: Vec<usize>,
    pub command: Bytes,
}

/// What a multi-key request becomes: unchanged for one slot, or one part per slot.
#[derive(Debug, PartialEq, Eq)]
pub enum Split {
    OneSlot(Slot),
    Parts(Vec<Part>),
}

/// Groups the keys by slot, hashing each key once. Sorting by slot keeps this O(n log n) for
/// requests with many keys (a linear search per key was quadratic: 0.5 s for 100,000 keys), and
/// a stable sort keeps the client's order within each slot.
pub fn split(args: &[Bytes], kind: SplitKind) -> Split {
    let stride = kind.stride();
    let mut keyed: Vec<(Slot, usize)> = args[1..]
        .iter()
        .step_by(stride)
        .enumerate()
        .map(|(pos, key)| (Slot::for_key(key), pos))
        .collect();
    let first = keyed.first().map(|&(s, _)| s);
    if keyed.iter().all(|&(s, _)| Some(s) == first) {
        if let Some(slot) = first {
            return Split::OneSlot(slot);
        }
    }
    keyed.sort_by_key(|&(slot, _)| slot);
    let name = &args[0];
    let mut parts: Vec<Part> = Vec::new();
    for group in keyed.chunk_by(|a, b| a.0 == b.0) {
        let positions: Vec<usize> = group.iter().map(|&(_, pos)| pos).collect();
        let fields = positions
            .iter()
            .flat_map(|&p| &args[1 + p * stride..1 + (p + 1) * stride]);
        let mut command = BytesMut::with_capacity(
            32 + fields.clone().map(|f| f.len() + 16).sum::<usize>() + name.len(),
        );
        encode_command_of(
            1 + positions.len() * stride,
            std::iter::once(name.as_ref()).chain(fields.map(|b| b.as_ref())),
            &mut command,
        );
        parts.push(Part {
            slot: group[0].0,
            positions,
            command: command.freeze(),
        });
    }
    Split::Parts(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_args as args;

    #[test]
    fn one_slot_or_cross_slot() {
        let a = args(&["MSETNX", "{u}a", "1", "{u}b", "2", "c", "3"]);
        assert_eq!(
            one_slot(&a, Keys::range(1, 5, 2)),
            Ok(Some(Slot::for_key(b"u")))
        );
        assert_eq!(one_slot(&a, Keys::range(1, 7, 2)), Err(CrossSlot));
        assert_eq!(one_slot(&a, Keys::NONE), Ok(None));
    }

    #[test]
    fn mget_groups_by_slot_in_client_order() {
        // foo and {foo}x share slot 12182; bar is 5061. Groups come in slot order.
        let a = args(&["MGET", "foo", "bar", "{foo}x"]);
        let parts = parts(split(&a, SplitKind::MGet));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].positions, vec![1]);
        assert_eq!(parts[1].slot.get(), 12182);
        assert_eq!(parts[1].positions, vec![0, 2]);
        assert_eq!(
            &parts[1].command[..],
            b"*3\r\n$4\r\nMGET\r\n$3\r\nfoo\r\n$6\r\n{foo}x\r\n"
        );
    }

    #[test]
    fn mset_keeps_values_with_keys() {
        let a = args(&["mset", "foo", "1", "bar", "2", "{foo}y", "3"]);
        let parts = parts(split(&a, SplitKind::MSet));
        assert_eq!(parts.len(), 2);
        assert_eq!(
            &parts[1].command[..],
            b"*5\r\n$4\r\nmset\r\n$3\r\nfoo\r\n$1\r\n1\r\n$6\r\n{foo}y\r\n$1\r\n3\r\n"
        );
        assert_eq!(
            &parts[0].command[..],
            b"*3\r\n$4\r\nmset\r\n$3\r\nbar\r\n$1\r\n2\r\n"
        );
    }

    #[test]
    fn one_slot_requests_are_not_split() {
        assert_eq!(
            split(
                &args(&["EXISTS", "foo", "foo", "{foo}z"]),
                SplitKind::SumKeys
            ),
            Split::OneSlot(Slot::for_key(b"foo"))
        );
        assert_eq!(
            split(&args(&["MSET", "foo", "bar"]), SplitKind::MSet),
            Split::OneSlot(Slot::for_key(b"foo"))
        );
    }

    #[test]
    fn many_keys_keep_client_order_within_each_slot() {
        let keys: Vec<String> = (0..5000).map(|i| format!("k{}", i % 700)).collect();
        let mut a = vec!["DEL".to_owned()];
        a.extend(keys.iter().cloned());
        let a: Vec<Bytes> = a.into_iter().map(Bytes::from).collect();
        let parts = parts(split(&a, SplitKind::SumKeys));
        let mut seen = vec![false; keys.len()];
        for p in &parts {
            assert!(
                p.positions.windows(2).all(|w| w[0] < w[1]),
                "client order kept"
            );
            for &pos in &p.positions {
                assert_eq!(Slot::for_key(keys[pos].as_bytes()), p.slot);
                seen[pos] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "every key in exactly one part");
    }

    fn parts(s: Split) -> Vec<Part> {
        match s {
            Split::Parts(p) => p,
            Split::OneSlot(_) => panic!("expected parts"),
        }
    }
}
