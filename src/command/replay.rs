//! Which requests may be sent again when their first attempt's fate is unknown: written to a
//! connection that then died, or never answered. Sending a write twice can apply it twice, so only
//! commands whose effect AND reply are the same however often they run qualify. The README lists
//! them; anything else gets an explicit "outcome unknown" error instead.

use bytes::Bytes;

/// Read-only commands of Redis 7.0 (flag `readonly` in `COMMAND`) that route by key. Sorted.
const READS: &[&str] = &[
    "BITCOUNT",
    "BITFIELD_RO",
    "BITPOS",
    "DUMP",
    "EXISTS",
    "EXPIRETIME",
    "GEODIST",
    "GEOHASH",
    "GEOPOS",
    "GEORADIUSBYMEMBER_RO",
    "GEORADIUS_RO",
    "GEOSEARCH",
    "GET",
    "GETBIT",
    "GETRANGE",
    "HEXISTS",
    "HGET",
    "HGETALL",
    "HKEYS",
    "HLEN",
    "HMGET",
    "HRANDFIELD",
    "HSCAN",
    "HSTRLEN",
    "HVALS",
    "LCS",
    "LINDEX",
    "LLEN",
    "LPOS",
    "LRANGE",
    "MGET",
    "PEXPIRETIME",
    "PFCOUNT",
    "PTTL",
    "SCARD",
    "SDIFF",
    "SINTER",
    "SINTERCARD",
    "SISMEMBER",
    "SMEMBERS",
    "SMISMEMBER",
    "SORT_RO",
    "SRANDMEMBER",
    "SSCAN",
    "STRLEN",
    "SUBSTR",
    "SUNION",
    "TOUCH",
    "TTL",
    "TYPE",
    "XLEN",
    "XPENDING",
    "XRANGE",
    "XREAD",
    "XREVRANGE",
    "ZCARD",
    "ZCOUNT",
    "ZDIFF",
    "ZINTER",
    "ZINTERCARD",
    "ZLEXCOUNT",
    "ZMSCORE",
    "ZRANDMEMBER",
    "ZRANGE",
    "ZRANGEBYLEX",
    "ZRANGEBYSCORE",
    "ZRANK",
    "ZREVRANGE",
    "ZREVRANGEBYLEX",
    "ZREVRANGEBYSCORE",
    "ZREVRANK",
    "ZSCAN",
    "ZSCORE",
    "ZUNION",
];

/// Writes that leave the same state and give the same reply when repeated. Sorted. (DEL or SADD
/// would leave the same state, but their reply counts what changed, and a repeat would lie.)
const IDEMPOTENT_WRITES: &[&str] = &["HMSET", "MSET", "PSETEX", "SET", "SETEX"];

/// Options that make a SET's reply depend on what was there before.
const SET_UNSAFE_OPTIONS: &[&[u8]] = &[b"NX", b"XX", b"GET"];

pub fn replay_safe(args: &[Bytes]) -> bool {
    let Some(name) = args.first() else {
        return false;
    };
    let mut upper = [0u8; 24];
    let Some(buf) = upper.get_mut(..name.len()) else {
        return false;
    };
    for (d, s) in buf.iter_mut().zip(name.iter()) {
        *d = s.to_ascii_uppercase();
    }
    let Ok(name) = std::str::from_utf8(buf) else {
        return false;
    };
    if READS.binary_search(&name).is_ok() {
        return true;
    }
    if IDEMPOTENT_WRITES.binary_search(&name).is_err() {
        return false;
    }
    name != "SET"
        || !args[1..]
            .iter()
            .any(|a| SET_UNSAFE_OPTIONS.iter().any(|o| a.eq_ignore_ascii_case(o)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_args as args;

    #[test]
    fn lists_are_sorted_for_binary_search() {
        assert!(READS.windows(2).all(|w| w[0] < w[1]));
        assert!(IDEMPOTENT_WRITES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn reads_and_plain_sets_replay_others_do_not() {
        for ok in [
            &["get", "k"][..],
            &["MGET", "a", "b"],
            &["SET", "k", "v", "EX", "5"],
            &["mset", "a", "1"],
            &["zrange", "z", "0", "1"],
        ] {
            assert!(replay_safe(&args(ok)), "{ok:?}");
        }
        for no in [
            &["INCR", "k"][..],
            &["SET", "k", "v", "nx"],
            &["SET", "k", "v", "GET"],
            &["DEL", "k"],
            &["LPUSH", "l", "x"],
            &["EVAL_RO", "s", "0"],
            &["averyveryverylongcommandname"],
        ] {
            assert!(!replay_safe(&args(no)), "{no:?}");
        }
    }
}
