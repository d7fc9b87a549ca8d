//! Splitting a multi-key command into one sub-command per slot. Pure, so the grouping and the
//! encoding are tested without a cluster.

use bytes::{Bytes, BytesMut};

use crate::cluster::Slot;
use crate::command::SplitKind;
use crate::protocol::encode_command;

/// The keys of one slot: where they sit in the client's request, and the sub-command for them.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub slot: Slot,
    /// Positions of this part's keys among the request's keys (0 = first key), in client order.
    pub positions: Vec<usize>,
    pub command: Bytes,
}

/// How many arguments each key carries along (MSET: its value).
fn stride(kind: SplitKind) -> usize {
    match kind {
        SplitKind::MSet => 2,
        SplitKind::MGet | SplitKind::SumKeys => 1,
    }
}

/// The single slot every key hashes to, if there is one: then the request can go out unchanged.
pub fn common_slot(args: &[Bytes], kind: SplitKind) -> Option<Slot> {
    let mut keys = args[1..].iter().step_by(stride(kind));
    let first = Slot::for_key(keys.next()?);
    keys.all(|k| Slot::for_key(k) == first).then_some(first)
}

/// Groups the keys by slot, keeping the client's order within each group and ordering groups by
/// the first key that needs them.
pub fn split(args: &[Bytes], kind: SplitKind) -> Vec<Part> {
    let stride = stride(kind);
    let name = &args[0];
    let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
    for (pos, key) in args[1..].iter().step_by(stride).enumerate() {
        let slot = Slot::for_key(key);
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, positions)) => positions.push(pos),
            None => groups.push((slot, vec![pos])),
        }
    }
    groups
        .into_iter()
        .map(|(slot, positions)| {
            let mut command = BytesMut::new();
            let parts = positions
                .iter()
                .flat_map(|&p| &args[1 + p * stride..1 + (p + 1) * stride]);
            encode_command(
                std::iter::once(name.as_ref()).chain(parts.map(|b| b.as_ref())),
                &mut command,
            );
            Part {
                slot,
                positions,
                command: command.freeze(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn mget_groups_by_slot_in_client_order() {
        // foo and {foo}x share slot 12182; bar is 5061.
        let a = args(&["MGET", "foo", "bar", "{foo}x"]);
        let parts = split(&a, SplitKind::MGet);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].slot.get(), 12182);
        assert_eq!(parts[0].positions, vec![0, 2]);
        assert_eq!(
            &parts[0].command[..],
            b"*3\r\n$4\r\nMGET\r\n$3\r\nfoo\r\n$6\r\n{foo}x\r\n"
        );
        assert_eq!(parts[1].positions, vec![1]);
    }

    #[test]
    fn mset_keeps_values_with_keys() {
        let a = args(&["mset", "foo", "1", "bar", "2", "{foo}y", "3"]);
        let parts = split(&a, SplitKind::MSet);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            &parts[0].command[..],
            b"*5\r\n$4\r\nmset\r\n$3\r\nfoo\r\n$1\r\n1\r\n$6\r\n{foo}y\r\n$1\r\n3\r\n"
        );
        assert_eq!(
            &parts[1].command[..],
            b"*3\r\n$4\r\nmset\r\n$3\r\nbar\r\n$1\r\n2\r\n"
        );
    }

    #[test]
    fn common_slot_detects_single_slot_requests() {
        assert_eq!(
            common_slot(&args(&["DEL", "{t}a", "{t}b"]), SplitKind::SumKeys),
            Some(Slot::for_key(b"t"))
        );
        assert_eq!(
            common_slot(&args(&["DEL", "foo", "bar"]), SplitKind::SumKeys),
            None
        );
        // MSET values never influence the slot.
        assert_eq!(
            common_slot(&args(&["MSET", "foo", "bar"]), SplitKind::MSet),
            Some(Slot::for_key(b"foo"))
        );
    }

    #[test]
    fn duplicate_keys_stay_separate_positions() {
        let parts = split(&args(&["EXISTS", "foo", "foo"]), SplitKind::SumKeys);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].positions, vec![0, 1]);
    }
}
