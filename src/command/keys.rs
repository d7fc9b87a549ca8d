//! Where a request's keys are. Most commands keep them at fixed positions (Redis' legacy
//! first/last/step triple); the rest need a look at their arguments, and each such rule here mirrors
//! the `getkeys_proc` Redis 7.0 itself uses to route in cluster mode, so slotgate and the nodes agree
//! on which keys must share a slot.

use bytes::Bytes;

use super::reject::{ArgError, RejectKind};

/// Key positions as indices into `Request::args()`: at most one extra index (a STORE destination, a
/// ZUNIONSTORE destination) plus one strided range. Every index is below the request's argument count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    /// 0 means none: index 0 is the command name, never a key. Saves the `Option` tag.
    extra: usize,
    start: usize,
    end: usize,
    /// Never 0 (`step_by` panics on 0).
    step: usize,
}

impl Keys {
    /// No keys.
    pub const NONE: Keys = Keys {
        extra: 0,
        start: 0,
        end: 0,
        step: 1,
    };

    /// `start..end` every `step`; an empty range is normalised so equal key sets compare equal.
    pub(crate) fn range(start: usize, end: usize, step: usize) -> Keys {
        if start >= end {
            return Keys::NONE;
        }
        Keys {
            extra: 0,
            start,
            end,
            step: step.max(1),
        }
    }

    pub(crate) fn single(index: usize) -> Keys {
        Keys::range(index, index + 1, 1)
    }

    /// Adds one more key position (must be > 0).
    pub(crate) fn with_extra(self, index: usize) -> Keys {
        debug_assert!(index > 0);
        Keys {
            extra: index,
            ..self
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let extra = (self.extra != 0).then_some(self.extra);
        extra
            .into_iter()
            .chain((self.start..self.end).step_by(self.step))
    }

    /// The position of the only key, when there is exactly one: most requests, which then skip
    /// the general iterator.
    #[inline]
    pub fn only(&self) -> Option<usize> {
        (self.extra == 0 && self.end == self.start + 1).then_some(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.extra == 0 && self.start >= self.end
    }
}

/// How a command's keys are found. The arity check has already passed when these run, so the fixed
/// positions a command's arity guarantees are present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeySpec {
    /// Redis' legacy triple: keys at `first..=last` every `step`; a negative `last` counts back from
    /// the end (-1 = the last argument). Also what learned commands use.
    Range {
        first: usize,
        last: isize,
        step: usize,
    },
    /// MSETNX: key/value pairs from index 1. An odd count is an arity error in Redis, and the pairs
    /// must be complete before they say which arguments are keys.
    Pairs,
    /// A count of keys at `at`, the keys right after it (EVAL, ZUNION, LMPOP, ...); `dest` adds index 1
    /// (ZUNIONSTORE's destination). `rule` is how the command validates the count.
    Numkeys {
        at: usize,
        dest: bool,
        rule: NumkeysRule,
    },
    /// XREAD / XREADGROUP: options, then STREAMS k1 .. kn id1 .. idn.
    Streams { group: bool },
    /// SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dest].
    SortStore,
    /// GEORADIUS(BYMEMBER) key ... [STORE dest] [STOREDIST dest].
    GeoStore,
}

/// Each command family checks its numkeys argument in its own order with its own words; slotgate
/// copies them so a client sees what a node would have said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumkeysRule {
    /// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO: 0 keys is fine (the script runs on any master).
    Script,
    /// FCALL, FCALL_RO: like scripts, but a non-number reads "Bad number of keys provided".
    Function,
    /// ZUNION, ZINTER, ZDIFF, ZINTERCARD and their STORE forms: at least 1 key.
    SortedSet,
    /// SINTERCARD.
    SetCard,
    /// LMPOP, ZMPOP: at least 1 key, and a LEFT|RIGHT / MIN|MAX word after them.
    MultiPop,
}

impl KeySpec {
    /// The key positions for `args`, or why the arguments cannot name any. An empty result means the
    /// command legitimately has no keys this time (EVAL with numkeys 0) and any master can run it.
    pub(crate) fn resolve(self, args: &[Bytes]) -> Result<Keys, RejectKind> {
        let argc = args.len();
        match self {
            KeySpec::Range { first, last, step } => Ok(legacy_range(argc, first, last, step)),
            KeySpec::Pairs => {
                if argc.is_multiple_of(2) {
                    return Err(RejectKind::WrongArity { subcommand: false });
                }
                Ok(Keys::range(1, argc, 2))
            }
            KeySpec::Numkeys { at, dest, rule } => {
                let keys = numkeys(args, at, rule)?;
                Ok(if dest { keys.with_extra(1) } else { keys })
            }
            KeySpec::Streams { group } => streams(args, group),
            KeySpec::SortStore => Ok(sort_store(args)),
            KeySpec::GeoStore => Ok(geo_store(args)),
        }
    }
}

/// Keys at `first..=last` by `step`, clamped to the arguments present: learned specs come from a
/// backend and are not trusted to fit, and Redis itself reports no keys when they do not.
fn legacy_range(argc: usize, first: usize, last: isize, step: usize) -> Keys {
    if first == 0 {
        return Keys::NONE;
    }
    let last = if last < 0 {
        match argc.checked_sub(last.unsigned_abs()) {
            Some(last) => last,
            None => return Keys::NONE,
        }
    } else {
        last.unsigned_abs().min(argc.saturating_sub(1))
    };
    Keys::range(first, last + 1, step)
}

fn numkeys(args: &[Bytes], at: usize, rule: NumkeysRule) -> Result<Keys, RejectKind> {
    use ArgError::*;
    let bad = |e| Err(RejectKind::BadArguments(e));
    let argc = args.len();
    let parsed = args.get(at).and_then(|arg| parse_i64(arg));
    // Arguments after the count, all of which could be keys.
    let room = argc.saturating_sub(at + 1) as i64;
    let count = match rule {
        NumkeysRule::Script | NumkeysRule::Function => {
            let Some(n) = parsed else {
                return bad(if rule == NumkeysRule::Script {
                    NotAnInteger
                } else {
                    BadNumberOfKeys
                });
            };
            if n > room {
                return bad(NumkeysExceedArgs);
            }
            if n < 0 {
                return bad(NegativeNumkeys);
            }
            n
        }
        NumkeysRule::SortedSet => {
            let Some(n) = parsed else {
                return bad(NotAnInteger);
            };
            if n < 1 {
                return bad(NoInputKey);
            }
            if n > room {
                return bad(Syntax);
            }
            n
        }
        NumkeysRule::SetCard => match parsed {
            Some(n) if n >= 1 => {
                if n > room {
                    return bad(NumkeysExceedArgs);
                }
                n
            }
            _ => return bad(NumkeysNotPositive),
        },
        NumkeysRule::MultiPop => match parsed {
            // The LEFT|RIGHT or MIN|MAX word must follow the keys.
            Some(n) if n >= 1 => {
                if n >= room {
                    return bad(Syntax);
                }
                n
            }
            _ => return bad(NumkeysNotPositive),
        },
    };
    // count <= room < argc, so the cast is lossless.
    let count = count as usize;
    Ok(Keys::range(at + 1, at + 1 + count, 1))
}

/// Mirrors Redis 7.0's `xreadCommand` option loop: the first STREAMS ends the options, so a stream
/// named "BLOCK" after it is just a key.
fn streams(args: &[Bytes], group: bool) -> Result<Keys, RejectKind> {
    use ArgError::*;
    let bad = |e| Err(RejectKind::BadArguments(e));
    let argc = args.len();
    let mut i = 1;
    while i < argc {
        let more = argc - i - 1;
        let option = &args[i][..];
        // BLOCK's effect is the command table's business (traits); here it is an option with a value.
        if (option.eq_ignore_ascii_case(b"BLOCK") || option.eq_ignore_ascii_case(b"COUNT"))
            && more > 0
        {
            i += 1;
        } else if option.eq_ignore_ascii_case(b"STREAMS") && more > 0 {
            let first = i + 1;
            let pairs = argc - first;
            if !pairs.is_multiple_of(2) {
                return bad(UnbalancedStreams);
            }
            return Ok(Keys::range(first, first + pairs / 2, 1));
        } else if option.eq_ignore_ascii_case(b"GROUP") && more >= 2 {
            if !group {
                return bad(GroupOutsideXreadgroup);
            }
            i += 2;
        } else if option.eq_ignore_ascii_case(b"NOACK") {
            if !group {
                return bad(NoackOutsideXreadgroup);
            }
        } else {
            return bad(Syntax);
        }
        i += 1;
    }
    // STREAMS is mandatory.
    bad(Syntax)
}

/// Mirrors Redis 7.0's `sortGetKeys`, quirks included: options it does not know take no argument,
/// the last STORE wins, and the word after STORE is scanned as an option too. Invalid SORT syntax is
/// left for the node to report.
fn sort_store(args: &[Bytes]) -> Keys {
    let argc = args.len();
    let mut store = 0;
    let mut i = 2;
    while i < argc {
        let arg = &args[i][..];
        if arg.eq_ignore_ascii_case(b"LIMIT") {
            i += 2;
        } else if arg.eq_ignore_ascii_case(b"STORE") && i + 1 < argc {
            store = i + 1;
        } else if arg.eq_ignore_ascii_case(b"GET") || arg.eq_ignore_ascii_case(b"BY") {
            i += 1;
        }
        i += 1;
    }
    with_store(store)
}

/// Mirrors Redis 7.0's `georadiusGetKeys`: STORE and STOREDIST take one argument, the last one wins
/// (as it does when the command runs), and the scan starts at index 5 for both commands.
fn geo_store(args: &[Bytes]) -> Keys {
    let argc = args.len();
    let mut store = 0;
    let mut i = 5;
    while i < argc {
        let arg = &args[i][..];
        if (arg.eq_ignore_ascii_case(b"STORE") || arg.eq_ignore_ascii_case(b"STOREDIST"))
            && i + 1 < argc
        {
            store = i + 1;
            i += 1;
        }
        i += 1;
    }
    with_store(store)
}

fn with_store(store: usize) -> Keys {
    let key = Keys::single(1);
    if store == 0 {
        key
    } else {
        key.with_extra(store)
    }
}

/// Redis' `string2ll`: optional '-', digits, no '+', no spaces, no leading zeros, no overflow. Using
/// the same parser means slotgate accepts exactly the counts a node accepts.
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn keys_of(spec: KeySpec, words: &[&str]) -> Result<Vec<usize>, RejectKind> {
        spec.resolve(&args(words)).map(|k| {
            let mut v: Vec<usize> = k.iter().collect();
            v.sort_unstable();
            v
        })
    }

    #[test]
    fn only_names_a_lone_key_and_nothing_else() {
        assert_eq!(Keys::single(1).only(), Some(1));
        assert_eq!(Keys::range(2, 3, 5).only(), Some(2));
        for several in [
            Keys::NONE,
            Keys::range(1, 3, 1),
            Keys::range(1, 4, 2),
            Keys::single(2).with_extra(1),
            Keys::NONE.with_extra(1),
        ] {
            assert_eq!(several.only(), None, "{several:?}");
        }
        for k in [Keys::single(4), Keys::range(2, 3, 5)] {
            assert_eq!(k.iter().collect::<Vec<_>>(), vec![k.only().unwrap()]);
        }
    }

    #[test]
    fn keys_iterate_extra_then_range() {
        let k = Keys::range(3, 6, 1).with_extra(1);
        assert_eq!(k.iter().collect::<Vec<_>>(), vec![1, 3, 4, 5]);
        assert!(!k.is_empty());
        let k = Keys::range(1, 6, 2);
        assert_eq!(k.iter().collect::<Vec<_>>(), vec![1, 3, 5]);
        assert!(Keys::range(4, 4, 1).is_empty());
        assert_eq!(Keys::range(4, 2, 1), Keys::NONE);
        assert_eq!(Keys::NONE.iter().next(), None);
    }

    #[test]
    fn legacy_ranges_clamp_to_the_arguments() {
        assert_eq!(
            legacy_range(5, 1, -1, 1).iter().collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            legacy_range(5, 1, -2, 1).iter().collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            legacy_range(3, 1, 2, 1).iter().collect::<Vec<_>>(),
            vec![1, 2]
        );
        // A spec that asks for more than is there yields what is there.
        assert_eq!(legacy_range(2, 1, 9, 1).iter().collect::<Vec<_>>(), vec![1]);
        assert!(legacy_range(1, 1, 1, 1).is_empty());
        assert!(legacy_range(1, 1, -5, 1).is_empty());
        assert!(legacy_range(5, 0, 0, 0).is_empty());
    }

    #[test]
    fn numkeys_rules_match_redis() {
        use ArgError::*;
        let script = KeySpec::Numkeys {
            at: 2,
            dest: false,
            rule: NumkeysRule::Script,
        };
        assert_eq!(
            keys_of(script, &["EVAL", "s", "2", "a", "b", "x"]),
            Ok(vec![3, 4])
        );
        assert_eq!(keys_of(script, &["EVAL", "s", "0", "x"]), Ok(vec![]));
        let bad = |e| Err(RejectKind::BadArguments(e));
        assert_eq!(keys_of(script, &["EVAL", "s", "x"]), bad(NotAnInteger));
        assert_eq!(keys_of(script, &["EVAL", "s", "-1"]), bad(NegativeNumkeys));
        assert_eq!(
            keys_of(script, &["EVAL", "s", "2", "a"]),
            bad(NumkeysExceedArgs)
        );
        assert_eq!(
            keys_of(script, &["EVAL", "s", "01", "a"]),
            bad(NotAnInteger)
        );

        let function = KeySpec::Numkeys {
            at: 2,
            dest: false,
            rule: NumkeysRule::Function,
        };
        assert_eq!(
            keys_of(function, &["FCALL", "f", "x"]),
            bad(BadNumberOfKeys)
        );
        assert_eq!(keys_of(function, &["FCALL", "f", "1", "k"]), Ok(vec![3]));

        let store = KeySpec::Numkeys {
            at: 2,
            dest: true,
            rule: NumkeysRule::SortedSet,
        };
        assert_eq!(
            keys_of(
                store,
                &["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]
            ),
            Ok(vec![1, 3, 4])
        );
        assert_eq!(
            keys_of(store, &["ZUNIONSTORE", "d", "0", "a"]),
            bad(NoInputKey)
        );
        assert_eq!(
            keys_of(store, &["ZUNIONSTORE", "d", "-1", "a"]),
            bad(NoInputKey)
        );
        assert_eq!(keys_of(store, &["ZUNIONSTORE", "d", "2", "a"]), bad(Syntax));
        assert_eq!(
            keys_of(store, &["ZUNIONSTORE", "d", "x", "a"]),
            bad(NotAnInteger)
        );

        let card = KeySpec::Numkeys {
            at: 1,
            dest: false,
            rule: NumkeysRule::SetCard,
        };
        assert_eq!(
            keys_of(card, &["SINTERCARD", "2", "a", "b", "LIMIT", "1"]),
            Ok(vec![2, 3])
        );
        assert_eq!(
            keys_of(card, &["SINTERCARD", "x", "a"]),
            bad(NumkeysNotPositive)
        );
        assert_eq!(
            keys_of(card, &["SINTERCARD", "0", "a"]),
            bad(NumkeysNotPositive)
        );
        assert_eq!(
            keys_of(card, &["SINTERCARD", "3", "a"]),
            bad(NumkeysExceedArgs)
        );

        let pop = KeySpec::Numkeys {
            at: 1,
            dest: false,
            rule: NumkeysRule::MultiPop,
        };
        assert_eq!(
            keys_of(pop, &["LMPOP", "2", "a", "b", "LEFT"]),
            Ok(vec![2, 3])
        );
        assert_eq!(keys_of(pop, &["LMPOP", "2", "a", "LEFT"]), bad(Syntax));
        assert_eq!(
            keys_of(pop, &["LMPOP", "-1", "a", "LEFT"]),
            bad(NumkeysNotPositive)
        );
    }

    #[test]
    fn streams_follow_the_streams_keyword() {
        use ArgError::*;
        let xread = KeySpec::Streams { group: false };
        let group = KeySpec::Streams { group: true };
        let bad = |e| Err(RejectKind::BadArguments(e));
        assert_eq!(
            keys_of(xread, &["XREAD", "STREAMS", "a", "b", "0", "0"]),
            Ok(vec![2, 3])
        );
        assert_eq!(
            keys_of(xread, &["XREAD", "count", "5", "streams", "block", "0"]),
            Ok(vec![4])
        );
        assert_eq!(
            keys_of(xread, &["XREAD", "BLOCK", "0", "STREAMS", "a", "0"]),
            Ok(vec![4])
        );
        assert_eq!(
            keys_of(xread, &["XREAD", "STREAMS", "a", "b", "0"]),
            bad(UnbalancedStreams)
        );
        assert_eq!(keys_of(xread, &["XREAD", "COUNT", "1", "x"]), bad(Syntax));
        assert_eq!(
            keys_of(xread, &["XREAD", "COUNT", "1", "STREAMS"]),
            bad(Syntax)
        );
        assert_eq!(
            keys_of(xread, &["XREAD", "GROUP", "g", "c", "STREAMS", "a", "0"]),
            bad(GroupOutsideXreadgroup)
        );
        assert_eq!(
            keys_of(xread, &["XREAD", "NOACK", "STREAMS", "a", "0"]),
            bad(NoackOutsideXreadgroup)
        );
        assert_eq!(
            keys_of(
                group,
                &[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    "c",
                    "NOACK",
                    "COUNT",
                    "2",
                    "STREAMS",
                    "s",
                    ">"
                ]
            ),
            Ok(vec![8])
        );
    }

    #[test]
    fn sort_and_geo_find_their_destination() {
        let sort = KeySpec::SortStore;
        assert_eq!(keys_of(sort, &["SORT", "k"]), Ok(vec![1]));
        assert_eq!(
            keys_of(
                sort,
                &["SORT", "k", "BY", "store", "LIMIT", "0", "1", "STORE", "d"]
            ),
            Ok(vec![1, 8])
        );
        assert_eq!(
            keys_of(sort, &["SORT", "k", "store", "a", "STORE", "b"]),
            Ok(vec![1, 5])
        );
        // STORE with nothing after it is a syntax error for the node to report.
        assert_eq!(keys_of(sort, &["SORT", "k", "STORE"]), Ok(vec![1]));
        let geo = KeySpec::GeoStore;
        assert_eq!(
            keys_of(geo, &["GEORADIUS", "k", "0", "0", "1", "km", "STORE", "d"]),
            Ok(vec![1, 7])
        );
        assert_eq!(
            keys_of(
                geo,
                &[
                    "GEORADIUS",
                    "k",
                    "0",
                    "0",
                    "1",
                    "km",
                    "STORE",
                    "a",
                    "STOREDIST",
                    "b"
                ]
            ),
            Ok(vec![1, 9])
        );
        assert_eq!(
            keys_of(
                geo,
                &["GEORADIUSBYMEMBER", "k", "m", "1", "km", "storedist", "d"]
            ),
            Ok(vec![1, 6])
        );
        assert_eq!(
            keys_of(geo, &["GEORADIUS", "k", "0", "0", "1", "km"]),
            Ok(vec![1])
        );
    }

    #[test]
    fn pairs_need_even_counts() {
        assert_eq!(
            keys_of(KeySpec::Pairs, &["MSETNX", "a", "1", "b", "2"]),
            Ok(vec![1, 3])
        );
        assert_eq!(
            keys_of(KeySpec::Pairs, &["MSETNX", "a", "1", "b"]),
            Err(RejectKind::WrongArity { subcommand: false })
        );
    }

    #[test]
    fn integers_parse_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"17"), Some(17));
        assert_eq!(parse_i64(b"-3"), Some(-3));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
