//! The one table: for every command name Redis 7.0 knows, its arity and how slotgate handles it.
//! An allow-list in the manner of Envoy's `supported_commands.h`: a command not listed here (and not
//! learned from a backend) is refused as unknown rather than forwarded somewhere by guesswork.
//!
//! Arities and fixed key ranges are Redis 7.0's own (`COMMAND`); a test compares every entry with a
//! capture of a real 7.0 server, so a typo here fails the build's tests.

use std::sync::Arc;

use super::index::NameIndex;
use super::keys::{KeySpec, NumkeysRule};
use super::local::LocalCommand;
use super::reject::{Reason, RejectKind};
use super::traits::{Blocks, EntryTraits, Repeat, ScriptArg};
use super::{FanOut, PubSubCommand, PubSubQuery, SplitKind, TxnCommand};

/// What slotgate does with a command once its name and arity check out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handling {
    /// Forward to the master owning the keys' slot.
    Keyed(KeySpec),
    /// No keys; any master gives the same answer.
    AnyMaster,
    Split(SplitKind),
    FanOut(FanOut),
    Local(LocalCommand),
    Transaction(TxnCommand),
    PubSub(PubSubCommand),
    PubSubQuery(PubSubQuery),
    /// `WAIT numreplicas timeout`, asked of every serving master.
    Wait,
    Reject(Reason),
    /// Refused as Redis refuses it when cluster support is off: slotgate shows clients one
    /// standalone server.
    Standalone,
    /// A container (OBJECT, CLIENT, ...): `args[1]` picks a `NAME|SUB` entry, which has its own arity
    /// and handling; `unmatched` says what a subcommand without an entry gets.
    Container(Unmatched),
}

/// What a container does with a subcommand that has no entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unmatched {
    /// Ask the learned entries (a newer server may have added one), else Redis' own "unknown
    /// subcommand" error.
    Unknown,
    /// Refuse, naming `NAME SUB`, and never learn: a new subcommand here could break the shared
    /// backend connection (CLIENT REPLY, CLIENT TRACKING, ...).
    Reject(Reason),
}

impl Unmatched {
    pub(crate) fn reject(self) -> RejectKind {
        match self {
            Unmatched::Unknown => RejectKind::UnknownSubcommand,
            Unmatched::Reject(reason) => RejectKind::Unsupported {
                reason,
                subcommand: true,
            },
        }
    }
}

/// Arity, handling and traits: everything about a command except its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    /// Redis semantics: n > 0 exactly n arguments (name included), n < 0 at least -n, 0 unchecked.
    pub(crate) arity: i32,
    pub(crate) handling: Handling,
    pub(crate) traits: EntryTraits,
}

impl Spec {
    pub(crate) fn arity_ok(&self, argc: usize) -> bool {
        let need = self.arity.unsigned_abs() as usize;
        if self.arity > 0 {
            argc == need
        } else {
            argc >= need
        }
    }
}

/// A builtin entry. Names are canonical ASCII uppercase; a subcommand is `CONTAINER|SUB`, the way
/// Redis 7 names them.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: &'static str,
    pub(crate) spec: Spec,
}

/// A command learned from a backend's `COMMAND` reply; the name is stored uppercase.
#[derive(Clone, Debug)]
pub(crate) struct Learned {
    pub(crate) name: Box<[u8]>,
    pub(crate) spec: Spec,
}

/// Builtin entries plus learned ones, each set kept sorted by name so lookup is a binary search with
/// a case-insensitive comparison: no allocation and no length limit on the hot path. The builtin
/// top-level names, which every request looks up, also have a hash index. A clone copies two index
/// vectors and the learned entries: build a new table off the hot path, swap it in whole.
#[derive(Clone, Debug)]
pub struct CommandTable {
    top: Vec<&'static Entry>,
    top_index: Arc<NameIndex>,
    subs: Vec<&'static Entry>,
    pub(crate) learned_top: Vec<Learned>,
    pub(crate) learned_subs: Vec<Learned>,
}

/// A builtin command, or a `container|sub` subcommand, as a small number: its place in the sorted
/// index of the builtin table, the same in every table this build makes. Metrics keep their
/// per-command series in arrays indexed by it, so counting a request costs no hashing of its
/// name and no lock. Commands the table does not know (and those learned from the cluster) are
/// all [`CommandId::OTHER`], which keeps the set of series bounded whatever clients send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommandId(u16);

impl CommandId {
    /// Every command the builtin table does not name.
    pub const OTHER: CommandId = CommandId(BUILTIN.len() as u16);
    /// How many ids there are, [`CommandId::OTHER`] included: the length of an array indexed by
    /// [`CommandId::index`].
    pub const COUNT: usize = BUILTIN.len() + 1;

    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The id at `index`, for code that walks every id.
    pub fn from_index(index: usize) -> CommandId {
        assert!(index < Self::COUNT, "command id {index} out of range");
        CommandId(index as u16)
    }

    /// The name as a metric label: lowercase, subcommands as `client|list`, the way Redis names
    /// them in `INFO commandstats`; `other` for [`CommandId::OTHER`].
    pub fn label(self) -> &'static str {
        static LABELS: std::sync::OnceLock<Box<[String]>> = std::sync::OnceLock::new();
        let labels = LABELS.get_or_init(|| {
            let table = CommandTable::builtin();
            table
                .top
                .iter()
                .chain(&table.subs)
                .map(|e| e.name.to_ascii_lowercase())
                .chain(std::iter::once("other".to_owned()))
                .collect()
        });
        &labels[self.index()]
    }
}

impl CommandTable {
    /// The builtin table alone. The index is sorted here so the static array can stay grouped by
    /// family, for reading.
    pub fn builtin() -> Self {
        let (mut subs, mut top): (Vec<&'static Entry>, Vec<&'static Entry>) =
            BUILTIN.iter().partition(|e| e.name.contains('|'));
        top.sort_unstable_by_key(|e| e.name.as_bytes());
        subs.sort_unstable_by_key(|e| e.name.as_bytes());
        let top_index = Arc::new(NameIndex::new(top.iter().map(|e| e.name.as_bytes())));
        CommandTable {
            top,
            top_index,
            subs,
            learned_top: Vec::new(),
            learned_subs: Vec::new(),
        }
    }

    /// How many commands and subcommands [`learn`](Self::learn) has added (for logs and metrics).
    pub fn learned_count(&self) -> usize {
        self.learned_top.len() + self.learned_subs.len()
    }

    /// The top-level entry for `name`, builtin first, then learned.
    pub(crate) fn find_top(&self, name: &[u8]) -> Option<&Spec> {
        self.find_top_id(name).map(|(spec, _)| spec)
    }

    /// [`find_top`](Self::find_top) with the entry's id: its place in the sorted index.
    pub(crate) fn find_top_id(&self, name: &[u8]) -> Option<(&Spec, CommandId)> {
        let builtin = self
            .top_index
            .find(&self.top, |e| e.name.as_bytes(), name)
            .map(|i| (&self.top[i].spec, CommandId(i as u16)));
        builtin.or_else(|| {
            self.learned_top
                .binary_search_by(|e| cmp_name(&e.name, name, None))
                .ok()
                .map(|i| (&self.learned_top[i].spec, CommandId::OTHER))
        })
    }

    /// The `container|sub` entry and its id; learned ones only where the container lets them in.
    pub(crate) fn find_sub(
        &self,
        container: &[u8],
        sub: &[u8],
        unmatched: Unmatched,
    ) -> Option<(&Spec, CommandId)> {
        let builtin = self
            .subs
            .binary_search_by(|e| cmp_name(e.name.as_bytes(), container, Some(sub)))
            .ok()
            .map(|i| (&self.subs[i].spec, CommandId((self.top.len() + i) as u16)));
        builtin.or_else(|| {
            if unmatched != Unmatched::Unknown {
                return None;
            }
            self.learned_subs
                .binary_search_by(|e| cmp_name(&e.name, container, Some(sub)))
                .ok()
                .map(|i| (&self.learned_subs[i].spec, CommandId::OTHER))
        })
    }

    /// The builtin entry with this name (any case), if any; `|` separates a
    /// subcommand. Used by learn so it never overrides a builtin decision.
    pub(crate) fn builtin_spec(&self, full_name: &[u8]) -> Option<&'static Spec> {
        let (index, query) = match full_name.iter().position(|&b| b == b'|') {
            Some(bar) => (&self.subs, (&full_name[..bar], Some(&full_name[bar + 1..]))),
            None => (&self.top, (full_name, None)),
        };
        index
            .binary_search_by(|e| cmp_name(e.name.as_bytes(), query.0, query.1))
            .ok()
            .map(|i| &index[i].spec)
    }

    #[cfg(test)]
    pub(crate) fn builtin_entries(&self) -> impl Iterator<Item = &'static Entry> + '_ {
        self.top.iter().chain(self.subs.iter()).copied()
    }
}

impl Default for CommandTable {
    fn default() -> Self {
        CommandTable::builtin()
    }
}

/// Compares a canonical uppercase name with the query `name` (or `name|sub`), uppercasing the query
/// as it goes.
pub(crate) fn cmp_name(canonical: &[u8], name: &[u8], sub: Option<&[u8]>) -> std::cmp::Ordering {
    let bar: &[u8] = if sub.is_some() { b"|" } else { b"" };
    let query = name
        .iter()
        .chain(bar)
        .chain(sub.unwrap_or_default())
        .map(u8::to_ascii_uppercase);
    canonical.iter().copied().cmp(query)
}

const fn entry(name: &'static str, arity: i32, handling: Handling) -> Entry {
    Entry {
        name,
        spec: Spec {
            arity,
            handling,
            traits: EntryTraits::NONE,
        },
    }
}

impl Entry {
    /// Redis flags it `readonly` (a test checks every entry against Redis 7.0's own flags).
    const fn ro(mut self) -> Entry {
        self.spec.traits.readonly = true;
        self
    }

    /// A write that leaves the same state and gives the same reply when it runs twice.
    const fn repeatable(mut self) -> Entry {
        self.spec.traits.repeat = Repeat::Always;
        self
    }

    /// [`Entry::repeatable`] unless one of `options` is given.
    const fn repeatable_unless(mut self, options: &'static [&'static [u8]]) -> Entry {
        self.spec.traits.repeat = Repeat::UnlessOption(options);
        self
    }

    /// Keeps state on the connection it runs on.
    const fn reserved(mut self) -> Entry {
        self.spec.traits.reserved = true;
        self
    }

    /// Waits on the node until data comes or its timeout passes.
    const fn blocking(mut self) -> Entry {
        self.spec.traits.blocks = Blocks::Always;
        self
    }

    /// Its first argument is a script body (`Body`) or a script's sha (`Sha`).
    const fn script(mut self, arg: ScriptArg) -> Entry {
        self.spec.traits.script = arg;
        self
    }

    /// Blocks only when given `option` before `until` (XREAD's BLOCK before STREAMS).
    const fn blocking_with(mut self, option: &'static [u8], until: &'static [u8]) -> Entry {
        self.spec.traits.blocks = Blocks::WithOption { option, until };
        self
    }
}

/// One key, at index 1: the bulk of the table.
const fn key(name: &'static str, arity: i32) -> Entry {
    range(name, arity, 1, 1, 1)
}

/// Keys at a fixed legacy range; multi-key ones must share a slot (route answers CROSSSLOT).
const fn range(name: &'static str, arity: i32, first: usize, last: isize, step: usize) -> Entry {
    entry(
        name,
        arity,
        Handling::Keyed(KeySpec::Range { first, last, step }),
    )
}

const fn movable(name: &'static str, arity: i32, spec: KeySpec) -> Entry {
    entry(name, arity, Handling::Keyed(spec))
}

const fn numkeys(
    name: &'static str,
    arity: i32,
    at: usize,
    dest: bool,
    rule: NumkeysRule,
) -> Entry {
    movable(name, arity, KeySpec::Numkeys { at, dest, rule })
}

const fn any(name: &'static str, arity: i32) -> Entry {
    entry(name, arity, Handling::AnyMaster)
}

const fn split(name: &'static str, arity: i32, kind: SplitKind) -> Entry {
    entry(name, arity, Handling::Split(kind))
}

/// Sent to every serving master, their replies merged as one server's.
const fn fan(name: &'static str, arity: i32, fan_out: FanOut) -> Entry {
    entry(name, arity, Handling::FanOut(fan_out))
}

const fn local(name: &'static str, arity: i32, command: LocalCommand) -> Entry {
    entry(name, arity, Handling::Local(command))
}

const fn no(name: &'static str, arity: i32, reason: Reason) -> Entry {
    entry(name, arity, Handling::Reject(reason))
}

const fn standalone(name: &'static str, arity: i32) -> Entry {
    entry(name, arity, Handling::Standalone)
}

const fn txn(name: &'static str, arity: i32, command: TxnCommand) -> Entry {
    entry(name, arity, Handling::Transaction(command)).reserved()
}

const fn pubsub(name: &'static str, arity: i32, command: PubSubCommand) -> Entry {
    entry(name, arity, Handling::PubSub(command)).reserved()
}

const fn container(name: &'static str, unmatched: Unmatched) -> Entry {
    entry(name, -2, Handling::Container(unmatched))
}

use LocalCommand as L;
use NumkeysRule::{Function, MultiPop, Script, SetCard, SortedSet};
use Reason::*;

/// SET's options that make its reply depend on what was there before.
const SET_REPLY_DEPENDS_ON_THE_PAST: &[&[u8]] = &[b"NX", b"XX", b"GET"];

/// Grouped by Redis' documentation groups; `builtin()` sorts an index over it.
static BUILTIN: &[Entry] = &[
    // --- strings
    key("APPEND", 3),
    key("DECR", 2),
    key("DECRBY", 3),
    key("GET", 2).ro(),
    key("GETDEL", 2),
    key("GETEX", -2),
    key("GETRANGE", 4).ro(),
    key("GETSET", 3),
    key("INCR", 2),
    key("INCRBY", 3),
    key("INCRBYFLOAT", 3),
    range("LCS", -3, 1, 2, 1).ro(),
    split("MGET", -2, SplitKind::MGet).ro(),
    split("MSET", -3, SplitKind::MSet).repeatable(),
    movable("MSETNX", -3, KeySpec::Pairs),
    key("PSETEX", 4).repeatable(),
    key("SET", -3).repeatable_unless(SET_REPLY_DEPENDS_ON_THE_PAST),
    key("SETEX", 4).repeatable(),
    key("SETNX", 3),
    key("SETRANGE", 4),
    key("STRLEN", 2).ro(),
    key("SUBSTR", 4).ro(),
    // --- hashes
    key("HDEL", -3),
    key("HEXISTS", 3).ro(),
    key("HGET", 3).ro(),
    key("HGETALL", 2).ro(),
    key("HINCRBY", 4),
    key("HINCRBYFLOAT", 4),
    key("HKEYS", 2).ro(),
    key("HLEN", 2).ro(),
    key("HMGET", -3).ro(),
    key("HMSET", -4).repeatable(),
    key("HRANDFIELD", -2).ro(),
    key("HSCAN", -3).ro(),
    key("HSET", -4),
    key("HSETNX", 4),
    key("HSTRLEN", 3).ro(),
    key("HVALS", 2).ro(),
    // --- lists
    range("BLMOVE", 6, 1, 2, 1).blocking(),
    numkeys("BLMPOP", -5, 2, false, MultiPop).blocking(),
    range("BLPOP", -3, 1, -2, 1).blocking(),
    range("BRPOP", -3, 1, -2, 1).blocking(),
    range("BRPOPLPUSH", 4, 1, 2, 1).blocking(),
    key("LINDEX", 3).ro(),
    key("LINSERT", 5),
    key("LLEN", 2).ro(),
    range("LMOVE", 5, 1, 2, 1),
    numkeys("LMPOP", -4, 1, false, MultiPop),
    key("LPOP", -2),
    key("LPOS", -3).ro(),
    key("LPUSH", -3),
    key("LPUSHX", -3),
    key("LRANGE", 4).ro(),
    key("LREM", 4),
    key("LSET", 4),
    key("LTRIM", 4),
    key("RPOP", -2),
    range("RPOPLPUSH", 3, 1, 2, 1),
    key("RPUSH", -3),
    key("RPUSHX", -3),
    // --- sets
    key("SADD", -3),
    key("SCARD", 2).ro(),
    range("SDIFF", -2, 1, -1, 1).ro(),
    range("SDIFFSTORE", -3, 1, -1, 1),
    range("SINTER", -2, 1, -1, 1).ro(),
    numkeys("SINTERCARD", -3, 1, false, SetCard).ro(),
    range("SINTERSTORE", -3, 1, -1, 1),
    key("SISMEMBER", 3).ro(),
    key("SMEMBERS", 2).ro(),
    key("SMISMEMBER", -3).ro(),
    range("SMOVE", 4, 1, 2, 1),
    key("SPOP", -2),
    key("SRANDMEMBER", -2).ro(),
    key("SREM", -3),
    key("SSCAN", -3).ro(),
    range("SUNION", -2, 1, -1, 1).ro(),
    range("SUNIONSTORE", -3, 1, -1, 1),
    // --- sorted sets
    numkeys("BZMPOP", -5, 2, false, MultiPop).blocking(),
    range("BZPOPMAX", -3, 1, -2, 1).blocking(),
    range("BZPOPMIN", -3, 1, -2, 1).blocking(),
    key("ZADD", -4),
    key("ZCARD", 2).ro(),
    key("ZCOUNT", 4).ro(),
    numkeys("ZDIFF", -3, 1, false, SortedSet).ro(),
    numkeys("ZDIFFSTORE", -4, 2, true, SortedSet),
    key("ZINCRBY", 4),
    numkeys("ZINTER", -3, 1, false, SortedSet).ro(),
    numkeys("ZINTERCARD", -3, 1, false, SortedSet).ro(),
    numkeys("ZINTERSTORE", -4, 2, true, SortedSet),
    key("ZLEXCOUNT", 4).ro(),
    numkeys("ZMPOP", -4, 1, false, MultiPop),
    key("ZMSCORE", -3).ro(),
    key("ZPOPMAX", -2),
    key("ZPOPMIN", -2),
    key("ZRANDMEMBER", -2).ro(),
    key("ZRANGE", -4).ro(),
    key("ZRANGEBYLEX", -4).ro(),
    key("ZRANGEBYSCORE", -4).ro(),
    range("ZRANGESTORE", -5, 1, 2, 1),
    key("ZRANK", 3).ro(),
    key("ZREM", -3),
    key("ZREMRANGEBYLEX", 4),
    key("ZREMRANGEBYRANK", 4),
    key("ZREMRANGEBYSCORE", 4),
    key("ZREVRANGE", -4).ro(),
    key("ZREVRANGEBYLEX", -4).ro(),
    key("ZREVRANGEBYSCORE", -4).ro(),
    key("ZREVRANK", 3).ro(),
    key("ZSCAN", -3).ro(),
    key("ZSCORE", 3).ro(),
    numkeys("ZUNION", -3, 1, false, SortedSet).ro(),
    numkeys("ZUNIONSTORE", -4, 2, true, SortedSet),
    // --- streams
    key("XACK", -4),
    key("XADD", -5),
    key("XAUTOCLAIM", -6),
    key("XCLAIM", -6),
    key("XDEL", -3),
    container("XGROUP", Unmatched::Unknown),
    range("XGROUP|CREATE", -5, 2, 2, 1),
    range("XGROUP|CREATECONSUMER", 5, 2, 2, 1),
    range("XGROUP|DELCONSUMER", 5, 2, 2, 1),
    range("XGROUP|DESTROY", 4, 2, 2, 1),
    any("XGROUP|HELP", 2),
    range("XGROUP|SETID", -5, 2, 2, 1),
    container("XINFO", Unmatched::Unknown),
    range("XINFO|CONSUMERS", 4, 2, 2, 1).ro(),
    range("XINFO|GROUPS", 3, 2, 2, 1).ro(),
    any("XINFO|HELP", 2),
    range("XINFO|STREAM", -3, 2, 2, 1).ro(),
    key("XLEN", 2).ro(),
    key("XPENDING", -3).ro(),
    key("XRANGE", -4).ro(),
    movable("XREAD", -4, KeySpec::Streams { group: false })
        .ro()
        .blocking_with(b"BLOCK", b"STREAMS"),
    movable("XREADGROUP", -7, KeySpec::Streams { group: true }).blocking_with(b"BLOCK", b"STREAMS"),
    key("XREVRANGE", -4).ro(),
    key("XSETID", -3),
    key("XTRIM", -4),
    // --- keys and expiry
    range("COPY", -3, 1, 2, 1),
    split("DEL", -2, SplitKind::SumKeys),
    key("DUMP", 2).ro(),
    split("EXISTS", -2, SplitKind::SumKeys).ro(),
    key("EXPIRE", -3),
    key("EXPIREAT", -3),
    key("EXPIRETIME", 2).ro(),
    fan("KEYS", 2, FanOut::ConcatArrays).ro(),
    no("MIGRATE", -6, Migrate),
    no("MOVE", 3, SingleDatabase),
    container("OBJECT", Unmatched::Unknown),
    range("OBJECT|ENCODING", 3, 2, 2, 1).ro(),
    range("OBJECT|FREQ", 3, 2, 2, 1).ro(),
    any("OBJECT|HELP", 2),
    range("OBJECT|IDLETIME", 3, 2, 2, 1).ro(),
    range("OBJECT|REFCOUNT", 3, 2, 2, 1).ro(),
    key("PERSIST", 2),
    key("PEXPIRE", -3),
    key("PEXPIREAT", -3),
    key("PEXPIRETIME", 2).ro(),
    key("PTTL", 2).ro(),
    fan("RANDOMKEY", 1, FanOut::FirstValue).ro(),
    range("RENAME", 3, 1, 2, 1),
    range("RENAMENX", 3, 1, 2, 1),
    key("RESTORE", -4),
    fan("SCAN", -2, FanOut::Scan).ro(),
    movable("SORT", -2, KeySpec::SortStore),
    key("SORT_RO", -2).ro(),
    split("TOUCH", -2, SplitKind::SumKeys).ro(),
    key("TTL", 2).ro(),
    key("TYPE", 2).ro(),
    split("UNLINK", -2, SplitKind::SumKeys),
    // Blocks its client, though Redis 7.0 does not flag it `blocking`.
    entry("WAIT", 3, Handling::Wait).blocking(),
    // --- bitmaps
    key("BITCOUNT", -2).ro(),
    key("BITFIELD", -2),
    key("BITFIELD_RO", -2).ro(),
    range("BITOP", -4, 2, -1, 1),
    key("BITPOS", -3).ro(),
    key("GETBIT", 3).ro(),
    key("SETBIT", 4),
    // --- HyperLogLog
    key("PFADD", -2),
    range("PFCOUNT", -2, 1, -1, 1).ro(),
    no("PFDEBUG", 3, Admin),
    range("PFMERGE", -2, 1, -1, 1),
    no("PFSELFTEST", 1, Admin),
    // --- geo
    key("GEOADD", -5),
    key("GEODIST", -4).ro(),
    key("GEOHASH", -2).ro(),
    key("GEOPOS", -2).ro(),
    movable("GEORADIUS", -6, KeySpec::GeoStore),
    key("GEORADIUS_RO", -6).ro(),
    movable("GEORADIUSBYMEMBER", -5, KeySpec::GeoStore),
    key("GEORADIUSBYMEMBER_RO", -5).ro(),
    key("GEOSEARCH", -7).ro(),
    range("GEOSEARCHSTORE", -8, 1, 2, 1),
    // --- scripting
    numkeys("EVAL", -3, 2, false, Script).script(ScriptArg::Body),
    numkeys("EVAL_RO", -3, 2, false, Script)
        .ro()
        .script(ScriptArg::Body),
    numkeys("EVALSHA", -3, 2, false, Script).script(ScriptArg::Sha),
    numkeys("EVALSHA_RO", -3, 2, false, Script)
        .ro()
        .script(ScriptArg::Sha),
    numkeys("FCALL", -3, 2, false, Function),
    numkeys("FCALL_RO", -3, 2, false, Function).ro(),
    // Every master keeps its own libraries: changes go to all of them, and any one can tell
    // what they hold (each was given the same LOADs, DELETEs and RESTOREs through slotgate).
    // LIST and DUMP go to the client's own master for keyless commands, so they read over the
    // connection that carried the client's earlier LOAD, after it.
    container("FUNCTION", Unmatched::Unknown),
    fan("FUNCTION|DELETE", 3, FanOut::Same),
    any("FUNCTION|DUMP", 2),
    fan("FUNCTION|FLUSH", -2, FanOut::Same),
    any("FUNCTION|HELP", 2),
    fan("FUNCTION|KILL", 2, FanOut::Kill),
    any("FUNCTION|LIST", -2),
    fan("FUNCTION|LOAD", -3, FanOut::Same),
    fan("FUNCTION|RESTORE", -3, FanOut::Same),
    fan("FUNCTION|STATS", 2, FanOut::FunctionStats),
    // Every master keeps its own script cache, so the client's scripts go to all of them.
    container("SCRIPT", Unmatched::Unknown),
    no("SCRIPT|DEBUG", 3, ScriptDebug),
    fan("SCRIPT|EXISTS", -3, FanOut::ScriptExists),
    fan("SCRIPT|FLUSH", -2, FanOut::ScriptFlush),
    any("SCRIPT|HELP", 2),
    fan("SCRIPT|KILL", 2, FanOut::Kill),
    fan("SCRIPT|LOAD", 3, FanOut::ScriptLoad),
    // --- connection
    no("AUTH", -2, Auth),
    container("CLIENT", Unmatched::Reject(ClientSubcommand)),
    local("CLIENT|GETNAME", 2, L::ClientGetName),
    local("CLIENT|ID", 2, L::ClientId),
    local("CLIENT|INFO", 2, L::ClientInfo),
    local("CLIENT|KILL", -3, L::ClientKill),
    local("CLIENT|LIST", -2, L::ClientList),
    local("CLIENT|NO-EVICT", 3, L::ClientNoEvict),
    // Redis 7.2.
    local("CLIENT|NO-TOUCH", 3, L::ClientNoTouch),
    no("CLIENT|PAUSE", -3, ClientPause),
    local("CLIENT|REPLY", 3, L::ClientReply),
    local("CLIENT|SETINFO", 4, L::ClientSetInfo),
    local("CLIENT|SETNAME", 3, L::ClientSetName),
    no("CLIENT|UNPAUSE", 2, ClientPause),
    local("ECHO", 2, L::Echo),
    local("HELLO", -1, L::Hello),
    local("PING", -1, L::Ping),
    local("QUIT", -1, L::Quit),
    local("RESET", 1, L::Reset),
    local("SELECT", 2, L::Select),
    // --- server
    no("ACL", -2, Admin),
    no("BGREWRITEAOF", 1, Admin),
    no("BGSAVE", -1, Admin),
    // Every form (COUNT, INFO, DOCS, GETKEYS, LIST, ...) describes the command set, the same on every
    // master; the node checks the subcommand's arity itself.
    any("COMMAND", -1),
    // A node's settings are read from any master (they are set alike across the cluster); a change
    // would have to reach every node, and slotgate cannot make that consistent.
    container("CONFIG", Unmatched::Unknown),
    any("CONFIG|GET", -3),
    any("CONFIG|HELP", 2),
    no("CONFIG|RESETSTAT", 2, NodeConfig),
    no("CONFIG|REWRITE", 2, NodeConfig),
    no("CONFIG|SET", -4, NodeConfig),
    fan("DBSIZE", 1, FanOut::SumIntegers).ro(),
    no("DEBUG", -2, Admin),
    no("FAILOVER", -1, Admin),
    // The nodes check ASYNC|SYNC themselves: a bad argument fails on every master alike, and
    // their first error is the client's, in Redis' words.
    fan("FLUSHALL", -1, FanOut::AllOk),
    fan("FLUSHDB", -1, FanOut::AllOk),
    local("INFO", -1, L::Info),
    any("LASTSAVE", 1),
    no("LATENCY", -2, Admin),
    any("LOLWUT", -1).ro(),
    container("MEMORY", Unmatched::Unknown),
    no("MEMORY|DOCTOR", 2, Admin),
    any("MEMORY|HELP", 2),
    no("MEMORY|MALLOC-STATS", 2, Admin),
    no("MEMORY|PURGE", 2, Admin),
    no("MEMORY|STATS", 2, Admin),
    range("MEMORY|USAGE", -3, 2, 2, 1).ro(),
    no("MODULE", -2, Admin),
    no("MONITOR", 1, Monitor),
    no("PSYNC", -3, Admin),
    no("REPLCONF", -1, Admin),
    no("REPLICAOF", 3, Admin),
    // Only sent by a node that is migrating a slot.
    no("RESTORE-ASKING", -4, ClusterState),
    no("ROLE", 1, Admin),
    no("SAVE", 1, Admin),
    no("SHUTDOWN", -1, Admin),
    no("SLAVEOF", 3, Admin),
    // slotgate's own slow requests, as a server's (see `frontend::slowlog`).
    container("SLOWLOG", Unmatched::Unknown),
    local("SLOWLOG|GET", -2, L::SlowlogGet),
    local("SLOWLOG|HELP", 2, L::SlowlogHelp),
    local("SLOWLOG|LEN", 2, L::SlowlogLen),
    local("SLOWLOG|RESET", 2, L::SlowlogReset),
    no("SWAPDB", 3, SingleDatabase),
    no("SYNC", 1, Admin),
    any("TIME", 1),
    // Redis 7.2; waits like WAIT.
    no("WAITAOF", 4, Blocking),
    // --- cluster
    no("ASKING", 1, ClusterState),
    // Answered as a server without cluster support answers them, so that a client probing for
    // cluster mode stays in standalone mode; only KEYSLOT, pure arithmetic, is answered.
    container("CLUSTER", Unmatched::Unknown),
    standalone("CLUSTER|ADDSLOTS", -3),
    standalone("CLUSTER|ADDSLOTSRANGE", -4),
    standalone("CLUSTER|BUMPEPOCH", 2),
    standalone("CLUSTER|COUNT-FAILURE-REPORTS", 3),
    standalone("CLUSTER|COUNTKEYSINSLOT", 3),
    standalone("CLUSTER|DELSLOTS", -3),
    standalone("CLUSTER|DELSLOTSRANGE", -4),
    standalone("CLUSTER|FAILOVER", -2),
    standalone("CLUSTER|FLUSHSLOTS", 2),
    standalone("CLUSTER|FORGET", 3),
    standalone("CLUSTER|GETKEYSINSLOT", 4),
    standalone("CLUSTER|HELP", 2),
    standalone("CLUSTER|INFO", 2),
    local("CLUSTER|KEYSLOT", 3, L::ClusterKeyslot),
    standalone("CLUSTER|LINKS", 2),
    standalone("CLUSTER|MEET", -4),
    standalone("CLUSTER|MYID", 2),
    standalone("CLUSTER|NODES", 2),
    standalone("CLUSTER|REPLICAS", 3),
    standalone("CLUSTER|REPLICATE", 3),
    standalone("CLUSTER|RESET", -2),
    standalone("CLUSTER|SAVECONFIG", 2),
    standalone("CLUSTER|SET-CONFIG-EPOCH", 3),
    standalone("CLUSTER|SETSLOT", -4),
    standalone("CLUSTER|SHARDS", 2),
    standalone("CLUSTER|SLAVES", 3),
    standalone("CLUSTER|SLOTS", 2),
    local("READONLY", 1, L::ReadOnly),
    local("READWRITE", 1, L::ReadWrite),
    // --- pub/sub
    pubsub("PSUBSCRIBE", -2, PubSubCommand::PSubscribe),
    // The cluster bus delivers a PUBLISH to every node, so any master will do.
    any("PUBLISH", 3),
    container("PUBSUB", Unmatched::Unknown),
    entry(
        "PUBSUB|CHANNELS",
        -2,
        Handling::PubSubQuery(PubSubQuery::Channels),
    ),
    any("PUBSUB|HELP", 2),
    entry(
        "PUBSUB|NUMPAT",
        2,
        Handling::PubSubQuery(PubSubQuery::NumPat),
    ),
    entry(
        "PUBSUB|NUMSUB",
        -2,
        Handling::PubSubQuery(PubSubQuery::NumSub),
    ),
    entry(
        "PUBSUB|SHARDCHANNELS",
        -2,
        Handling::PubSubQuery(PubSubQuery::ShardChannels),
    ),
    entry(
        "PUBSUB|SHARDNUMSUB",
        -2,
        Handling::PubSubQuery(PubSubQuery::ShardNumSub),
    ),
    pubsub("PUNSUBSCRIBE", -1, PubSubCommand::PUnsubscribe),
    // Sharded channels hash like keys.
    key("SPUBLISH", 3),
    pubsub("SSUBSCRIBE", -2, PubSubCommand::SSubscribe),
    pubsub("SUBSCRIBE", -2, PubSubCommand::Subscribe),
    pubsub("SUNSUBSCRIBE", -1, PubSubCommand::SUnsubscribe),
    pubsub("UNSUBSCRIBE", -1, PubSubCommand::Unsubscribe),
    // --- transactions
    txn("DISCARD", 1, TxnCommand::Discard),
    txn("EXEC", 1, TxnCommand::Exec),
    txn("MULTI", 1, TxnCommand::Multi),
    txn("UNWATCH", 1, TxnCommand::Unwatch),
    txn("WATCH", -2, TxnCommand::Watch),
];
