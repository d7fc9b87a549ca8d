//! One client's subscriptions, and the replies Redis gives to its (P)(UN)SUBSCRIBE commands:
//! one `[kind, name, count]` array (a push in RESP3) per name, `count` being the channels and patterns the
//! client is subscribed to after it. The messages themselves come from the worker's hub.

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};

use super::hub::{Kind, Member};
use crate::command::PubSubCommand;
use crate::protocol::{Proto, Reply};

pub(super) struct Subscription {
    pub member: Member,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shards: BTreeSet<Bytes>,
}

/// What a (P)(UN)SUBSCRIBE did: the client's replies, and the names the hub must now subscribe
/// (`Some`, to be confirmed before the replies go out) or may drop.
pub(super) struct Change {
    pub kind: Kind,
    pub reply: Reply,
    pub added: Vec<Bytes>,
    pub removed: Vec<Bytes>,
}

impl Subscription {
    pub fn new(member: Member) -> Subscription {
        Subscription {
            member,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            shards: BTreeSet::new(),
        }
    }

    /// Subscribed to anything: the client is in subscribed mode.
    pub fn active(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty() || !self.shards.is_empty()
    }

    /// Channels, patterns and shard channels, as `CLIENT LIST` shows them.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.channels.len(), self.patterns.len(), self.shards.len())
    }

    /// The count Redis puts in a reply: shard channels are counted apart.
    fn count(&self, kind: Kind) -> i64 {
        match kind {
            Kind::Channel | Kind::Pattern => (self.channels.len() + self.patterns.len()) as i64,
            Kind::Shard => self.shards.len() as i64,
        }
    }

    /// Applies the command with arguments `names` (after the command name), answered in `proto`.
    pub fn apply(&mut self, cmd: PubSubCommand, names: &[Bytes], proto: Proto) -> Change {
        let (kind, on, word): (Kind, bool, &[u8]) = match cmd {
            PubSubCommand::Subscribe => (Kind::Channel, true, b"subscribe"),
            PubSubCommand::Unsubscribe => (Kind::Channel, false, b"unsubscribe"),
            PubSubCommand::PSubscribe => (Kind::Pattern, true, b"psubscribe"),
            PubSubCommand::PUnsubscribe => (Kind::Pattern, false, b"punsubscribe"),
            PubSubCommand::SSubscribe => (Kind::Shard, true, b"ssubscribe"),
            PubSubCommand::SUnsubscribe => (Kind::Shard, false, b"sunsubscribe"),
        };
        // UNSUBSCRIBE without names: every channel (pattern) the client has.
        let names: Vec<Bytes> = match (on, names.is_empty()) {
            (false, true) => self.set(kind).iter().cloned().collect(),
            _ => names.to_vec(),
        };
        let mut out = BytesMut::new();
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for name in &names {
            let changed = match on {
                true => self.set_mut(kind).insert(name.clone()),
                false => self.set_mut(kind).remove(name),
            };
            if changed {
                match on {
                    true => added.push(name.clone()),
                    false => removed.push(name.clone()),
                }
            }
            let element = [
                Reply::bulk(word),
                Reply::bulk(name),
                Reply::integer_reply(self.count(kind)),
            ];
            out.extend_from_slice(Reply::push(proto, &element).bytes());
        }
        if names.is_empty() {
            // Redis' answer to an UNSUBSCRIBE with nothing subscribed.
            let element = [
                Reply::bulk(word),
                Reply::null(proto),
                Reply::integer_reply(0),
            ];
            out.extend_from_slice(Reply::push(proto, &element).bytes());
        }
        Change {
            kind,
            reply: Reply(out.freeze()),
            added,
            removed,
        }
    }

    fn set(&self, kind: Kind) -> &BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shards,
        }
    }

    fn set_mut(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shards,
        }
    }
}

/// PING in subscribed mode (RESP2): `["pong", message]`.
pub(super) fn pong(message: Option<&Bytes>) -> Reply {
    let message = message.map(|m| &m[..]).unwrap_or_default();
    Reply::array(&[Reply::bulk(b"pong"), Reply::bulk(message)])
}

/// What Redis says to any other command in subscribed mode.
pub(super) fn not_allowed(name: &[u8]) -> Reply {
    Reply::error_line(&format!(
        "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
        String::from_utf8_lossy(name).to_ascii_lowercase()
    ))
}
