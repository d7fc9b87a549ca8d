//! Turns a request into a [`Plan`]: where its keys are and how slotgate handles it. Pure, and knows
//! nothing of slots: route hashes the key positions given here.
//!
//! Everything comes from one table (`table.rs`), looked up without allocating; key positions that
//! depend on the arguments are in `keys.rs`; commands the table lacks can be learned from a backend
//! (`learn.rs`).

mod index;
mod keys;
mod learn;
mod local;
mod reject;
mod table;
mod traits;

#[cfg(test)]
mod tests;

use bytes::Bytes;

use crate::protocol::Request;

pub use keys::Keys;
pub use local::LocalCommand;
pub use reject::{ArgError, Reason, RejectKind, Rejection};
pub use table::{CommandId, CommandTable};
pub use traits::Traits;

use table::{Handling, Spec};

/// How a multi-key command is cut into per-slot parts and its replies put back together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitKind {
    /// MGET k1 k2 ... : reply is an array in the client's key order.
    MGet,
    /// MSET k1 v1 k2 v2 ... : +OK after every part answered +OK.
    MSet,
    /// DEL / UNLINK / EXISTS / TOUCH k1 k2 ... : integer replies summed. (EXISTS counts a key given twice twice.)
    SumKeys,
}

impl SplitKind {
    /// How many arguments each key carries along, itself included (MSET: its value).
    pub fn stride(self) -> usize {
        match self {
            SplitKind::MSet => 2,
            SplitKind::MGet | SplitKind::SumKeys => 1,
        }
    }
}

/// Commands whose answer is every master's answers combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanOut {
    /// Ask every master, reply with the sum of their integer replies (DBSIZE).
    SumIntegers,
    /// `SCRIPT LOAD`: every master's sha, which must agree; slotgate remembers the script, to load
    /// it again where a master loses it.
    ScriptLoad,
    /// `SCRIPT FLUSH`: `+OK` from every master; slotgate forgets its scripts too.
    ScriptFlush,
    /// `SCRIPT EXISTS`: 1 only where every master has the script.
    ScriptExists,
    /// `FUNCTION LOAD`, `DELETE`, `FLUSH`, `RESTORE`: the same reply from every master.
    Same,
    /// `SCRIPT KILL`, `FUNCTION KILL`: `+OK` if any master killed one, else `NOTBUSY`.
    Kill,
    /// `FUNCTION STATS`: the reply of a master running a function, else the first master's.
    FunctionStats,
    /// Ask every master, reply with their arrays one after another (KEYS).
    ConcatArrays,
    /// Ask every master, `+OK` once each has said it (FLUSHALL, FLUSHDB).
    AllOk,
    /// Ask masters one at a time, in random order, until one has a value (RANDOMKEY).
    FirstValue,
    /// Ask one master per call, in turn, with a cursor of slotgate's own (SCAN).
    Scan,
}

/// The transaction commands: the session keeps their state, and a connection of the client's own
/// runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnCommand {
    Multi,
    Exec,
    Discard,
    /// `WATCH key ...`: its keys are every argument after the name.
    Watch,
    Unwatch,
}

/// The subscribe commands: the session keeps the client's subscriptions, and shares one
/// subscriber connection per worker among all its subscribed clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PubSubCommand {
    Subscribe,
    Unsubscribe,
    PSubscribe,
    PUnsubscribe,
    /// `SSUBSCRIBE channel ...`: channels of one slot, as on Redis Cluster.
    SSubscribe,
    SUnsubscribe,
}

/// `PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB`: every node knows only its
/// own subscribers, so slotgate asks them all and adds its own clients in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PubSubQuery {
    Channels,
    NumSub,
    NumPat,
    ShardChannels,
    ShardNumSub,
}

/// What slotgate makes of one request: what to do with it, and what the command is like. `Copy`
/// and small: it is made for every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub action: Action,
    /// What the command is like; nothing is set for a rejected request.
    pub traits: Traits,
    /// Which command it is, for metrics: set for a rejected request too when its name (or its
    /// container's) is in the table.
    pub command: CommandId,
}

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Forward the request unchanged to the master owning its keys' slot (route checks they share one
    /// slot, else CROSSSLOT). Covers every single-key command and every multi-key command that cannot
    /// be split. Never empty.
    Keyed(Keys),
    /// No key, any master can answer (COMMAND, TIME, LASTSAVE, PUBLISH, EVAL with no keys, ...).
    AnyMaster,
    Split(SplitKind),
    FanOut(FanOut),
    Local(LocalCommand),
    Transaction(TxnCommand),
    PubSub(PubSubCommand),
    PubSubQuery(PubSubQuery),
    /// `WAIT numreplicas timeout`, its arguments checked: a client's writes went to any master
    /// over shared connections, so every serving master is asked how many of its replicas have
    /// everything written so far, and the client gets the smallest count.
    Wait,
    /// Refuse without asking a backend; the connection stays usable.
    /// [`RejectKind::rejection`] gives the error line.
    Reject(RejectKind),
}

impl CommandTable {
    /// Case-insensitive, allocation-free lookup (no to_lowercase String per request).
    pub fn classify(&self, req: &Request) -> Plan {
        let args = req.args();
        let mut command = CommandId::OTHER;
        match self.plan(args, &mut command) {
            Ok((action, spec)) => Plan {
                action,
                traits: spec.traits.resolve(args),
                command,
            },
            Err(kind) => Plan {
                action: Action::Reject(kind),
                traits: Traits::default(),
                command,
            },
        }
    }

    /// Follows Redis' own order: find the command (and subcommand), check arity, then look at the
    /// arguments. So a request too short for its key positions never reaches key extraction.
    /// `command` is set as soon as the name is found, so a refused request is counted under it.
    fn plan(&self, args: &[Bytes], command: &mut CommandId) -> Result<(Action, &Spec), RejectKind> {
        let argc = args.len();
        let name = args.first().ok_or(RejectKind::UnknownCommand)?;
        let (top, top_id) = self.find_top_id(name).ok_or(RejectKind::UnknownCommand)?;
        *command = top_id;
        if !top.arity_ok(argc) {
            return Err(RejectKind::WrongArity { subcommand: false });
        }
        let (spec, subcommand): (&Spec, bool) = match top.handling {
            Handling::Container(unmatched) => {
                let sub = args
                    .get(1)
                    .ok_or(RejectKind::WrongArity { subcommand: false })?;
                let (spec, sub_id) = self
                    .find_sub(name, sub, unmatched)
                    .ok_or_else(|| unmatched.reject())?;
                *command = sub_id;
                if !spec.arity_ok(argc) {
                    return Err(RejectKind::WrongArity { subcommand: true });
                }
                (spec, true)
            }
            _ => (top, false),
        };
        let action = match spec.handling {
            Handling::Keyed(key_spec) => {
                let keys = key_spec.resolve(args)?;
                if keys.is_empty() {
                    Action::AnyMaster
                } else {
                    Action::Keyed(keys)
                }
            }
            Handling::AnyMaster => Action::AnyMaster,
            Handling::Split(SplitKind::MSet) if argc.is_multiple_of(2) => {
                // Redis' own check: a key without its value.
                return Err(RejectKind::WrongArity { subcommand: false });
            }
            Handling::Split(kind) => Action::Split(kind),
            Handling::FanOut(fan_out) => Action::FanOut(fan_out),
            // PING takes at most one message; Redis checks that in the command, not its arity.
            Handling::Local(LocalCommand::Ping) if argc > 2 => {
                return Err(RejectKind::WrongArity { subcommand: false });
            }
            Handling::Local(command) => Action::Local(command),
            Handling::Transaction(command) => Action::Transaction(command),
            Handling::PubSub(command) => Action::PubSub(command),
            Handling::PubSubQuery(query) => Action::PubSubQuery(query),
            Handling::Wait => {
                wait_arguments(args)?;
                Action::Wait
            }
            Handling::Reject(reason) => return Err(RejectKind::Unsupported { reason, subcommand }),
            Handling::Standalone => return Err(RejectKind::ClusterDisabled),
            // Subcommand entries are never containers themselves (Redis has one level).
            Handling::Container(unmatched) => return Err(unmatched.reject()),
        };
        Ok((action, spec))
    }
}

/// Checks `WAIT numreplicas timeout` as Redis does, in its order and with its words, before
/// slotgate opens a connection to every master for it.
fn wait_arguments(args: &[Bytes]) -> Result<(), RejectKind> {
    let bad = |e| Err(RejectKind::BadArguments(e));
    let int = |i: usize| args.get(i).and_then(|a| keys::parse_i64(a));
    if int(1).is_none() {
        return bad(ArgError::NotAnInteger);
    }
    match int(2) {
        None => bad(ArgError::TimeoutNotAnInteger),
        Some(t) if t < 0 => bad(ArgError::NegativeTimeout),
        Some(_) => Ok(()),
    }
}
