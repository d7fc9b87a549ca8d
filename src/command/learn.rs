//! Learning commands the builtin table does not know (newer Redis versions, modules) from a
//! backend's own `COMMAND` reply, so they route without a code change. The reply comes from the
//! network: every field is checked, and an entry of the wrong shape is skipped, never guessed at.

use crate::protocol::Frame;

use super::keys::KeySpec;
use super::reject::Reason;
use super::table::{CommandTable, Handling, Learned, Spec, Unmatched};
use super::traits::EntryTraits;

/// Longest command name worth learning; real ones are far shorter.
const MAX_NAME_LEN: usize = 128;
/// Key positions beyond this are not a real command's.
const MAX_KEY_POSITION: i64 = 1024;
/// Bounds the memory a misbehaving backend can make slotgate spend.
const MAX_LEARNED: usize = 4096;

impl CommandTable {
    /// Add entries for commands not in the builtin table, from a backend's `COMMAND` reply (RESP2
    /// array of `[name, arity, flags, first_key, last_key, step, acl_categories, tips, key_specs,
    /// subcommands]`; Redis 6 sends only the first seven). Returns how many entries (commands and
    /// subcommands) were added; calling it again with the same reply adds none.
    ///
    /// Fixed key positions become a keyed entry. Anything that blocks, subscribes or administers is
    /// refused, as are movable keys (their rule is not in the reply's legacy triple). A command
    /// without keys goes to any master only if it is flagged both readonly and fast and nothing
    /// suggests it touches connection or server state; otherwise it is refused. Builtins are never
    /// overridden, and subcommands are learned only under containers that ask for them (OBJECT, XINFO,
    /// XGROUP, MEMORY, and learned containers), never under CLIENT.
    pub fn learn(&mut self, command_reply: &Frame) -> usize {
        let Frame::Array(commands) = command_reply else {
            return 0;
        };
        commands.iter().map(|c| self.learn_command(c)).sum()
    }

    fn learn_command(&mut self, frame: &Frame) -> usize {
        let Some(info) = Info::parse(frame) else {
            return 0;
        };
        if info.name.contains(&b'|') {
            return 0;
        }
        let mut added = 0;
        let takes_subcommands = match self.builtin_spec(&info.name) {
            Some(builtin) => builtin.handling == Handling::Container(Unmatched::Unknown),
            None => {
                let handling = if info.subcommands.is_empty() {
                    info.handling()
                } else {
                    Handling::Container(Unmatched::Unknown)
                };
                let spec = Spec {
                    arity: info.arity,
                    handling,
                    traits: info.traits(),
                };
                if self.learned_count() < MAX_LEARNED
                    && insert(&mut self.learned_top, info.name.clone(), spec)
                {
                    added += 1;
                }
                self.find_top(&info.name).map(|s| s.handling)
                    == Some(Handling::Container(Unmatched::Unknown))
            }
        };
        if !takes_subcommands {
            return added;
        }
        for frame in info.subcommands {
            let Some(sub) = Info::parse(frame) else {
                continue;
            };
            // Redis 7 names a subcommand `container|sub`.
            let well_formed = sub.name.len() > info.name.len() + 1
                && sub.name.starts_with(&info.name)
                && sub.name[info.name.len()] == b'|'
                && !sub.name[info.name.len() + 1..].contains(&b'|');
            if !well_formed || self.builtin_spec(&sub.name).is_some() {
                continue;
            }
            let spec = Spec {
                arity: sub.arity,
                handling: sub.handling(),
                traits: sub.traits(),
            };
            if self.learned_count() < MAX_LEARNED && insert(&mut self.learned_subs, sub.name, spec)
            {
                added += 1;
            }
        }
        added
    }
}

/// Inserts keeping `list` sorted; false if the name is already there (the first answer wins).
fn insert(list: &mut Vec<Learned>, name: Vec<u8>, spec: Spec) -> bool {
    match list.binary_search_by(|e| e.name[..].cmp(&name[..])) {
        Ok(_) => false,
        Err(at) => {
            list.insert(
                at,
                Learned {
                    name: name.into_boxed_slice(),
                    spec,
                },
            );
            true
        }
    }
}

/// One checked entry of a `COMMAND` reply.
struct Info<'a> {
    /// Uppercase, printable ASCII.
    name: Vec<u8>,
    arity: i32,
    flags: &'a [Frame],
    first: usize,
    last: isize,
    step: usize,
    subcommands: &'a [Frame],
}

impl<'a> Info<'a> {
    fn parse(frame: &'a Frame) -> Option<Info<'a>> {
        let Frame::Array(fields) = frame else {
            return None;
        };
        let name = match fields.first()? {
            Frame::Bulk(b) | Frame::Simple(b) => b,
            _ => return None,
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN || !name.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        let int = |i: usize| match fields.get(i)? {
            Frame::Integer(n) => Some(*n),
            _ => None,
        };
        let arity = i32::try_from(int(1)?).ok()?;
        let Frame::Array(flags) = fields.get(2)? else {
            return None;
        };
        let (first, last, step) = (int(3)?, int(4)?, int(5)?);
        let positions = 0..=MAX_KEY_POSITION;
        if !positions.contains(&first)
            || !positions.contains(&step)
            || !(-MAX_KEY_POSITION..=MAX_KEY_POSITION).contains(&last)
            || (first > 0 && last >= 0 && last < first)
        {
            return None;
        }
        let subcommands = match fields.get(9) {
            Some(Frame::Array(subs)) => &subs[..],
            _ => &[],
        };
        Some(Info {
            name: name.to_ascii_uppercase(),
            arity,
            flags,
            // All three were range-checked above.
            first: first as usize,
            last: last as isize,
            step: step.max(1) as usize,
            subcommands,
        })
    }

    fn flag(&self, wanted: &str) -> bool {
        self.flags.iter().any(|f| match f {
            Frame::Simple(b) | Frame::Bulk(b) => b.eq_ignore_ascii_case(wanted.as_bytes()),
            _ => false,
        })
    }

    /// Only `readonly` is taken from the cluster: whether a write is safe to repeat is slotgate's
    /// judgement, never guessed for a command it does not know.
    fn traits(&self) -> EntryTraits {
        EntryTraits {
            readonly: self.flag("readonly"),
            reserved: self.flag("blocking") || self.flag("pubsub"),
            ..EntryTraits::NONE
        }
    }

    fn handling(&self) -> Handling {
        if self.flag("blocking") {
            Handling::Reject(Reason::Blocking)
        } else if self.flag("pubsub") {
            Handling::Reject(Reason::PubSub)
        } else if self.flag("admin") {
            Handling::Reject(Reason::Admin)
        } else if self.flag("movablekeys") {
            Handling::Reject(Reason::MovableKeys)
        } else if self.first > 0 {
            Handling::Keyed(KeySpec::Range {
                first: self.first,
                last: self.last,
                step: self.step,
            })
        } else if self.flag("readonly")
            && self.flag("fast")
            && !["write", "noscript", "no_multi", "may_replicate"]
                .iter()
                .any(|f| self.flag(f))
        {
            Handling::AnyMaster
        } else {
            Handling::Reject(Reason::NoKeys)
        }
    }
}
