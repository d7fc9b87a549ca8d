//! Tests of `classify` and `learn` through the public API, plus the completeness check against a
//! capture of Redis 7.0's `COMMAND` reply.

use bytes::Bytes;

use super::keys::KeySpec;
use super::table::Handling;
use super::traits::Blocks;
use super::*;
use crate::protocol::Frame;

/// `COMMAND` from redis-server 7.0.15, one line per command and subcommand:
/// `name arity first_key last_key step flags`.
const REDIS_70: &str = include_str!("testdata/redis-7.0-commands.txt");

fn req(words: &[&str]) -> Request {
    Request::from_args(
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect(),
    )
}

fn classify(words: &[&str]) -> Action {
    CommandTable::builtin().classify(&req(words)).action
}

fn traits(words: &[&str]) -> Traits {
    CommandTable::builtin().classify(&req(words)).traits
}

/// The key positions of a keyed plan, sorted; panics on any other plan.
fn keys(words: &[&str]) -> Vec<usize> {
    match classify(words) {
        Action::Keyed(keys) => {
            let mut v: Vec<usize> = keys.iter().collect();
            v.sort_unstable();
            v
        }
        other => panic!("{words:?} -> {other:?}, expected Keyed"),
    }
}

/// The error line a refused request gets; panics if it is not refused.
fn error(words: &[&str]) -> String {
    let request = req(words);
    match CommandTable::builtin().classify(&request).action {
        Action::Reject(kind) => kind.rejection(&request).to_string(),
        other => panic!("{words:?} -> {other:?}, expected Reject"),
    }
}

struct Redis70 {
    name: &'static str,
    arity: i32,
    first: usize,
    last: isize,
    step: usize,
    flags: Vec<&'static str>,
}

fn redis70() -> Vec<Redis70> {
    REDIS_70
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 6, "{line}");
            Redis70 {
                name: f[0],
                arity: f[1].parse().unwrap(),
                first: f[2].parse().unwrap(),
                last: f[3].parse().unwrap(),
                step: f[4].parse().unwrap(),
                flags: f[5].split(',').filter(|&f| f != "-").collect(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------- one of every family

#[test]
fn single_key_commands_of_every_family() {
    for words in [
        &["GET", "k"][..],
        &["SET", "k", "v", "EX", "10"],
        &["HSET", "k", "f", "v"],
        &["LPUSH", "k", "a", "b"],
        &["SADD", "k", "m"],
        &["ZADD", "k", "1", "m"],
        &["XADD", "k", "*", "f", "v"],
        &["EXPIRE", "k", "10"],
        &["TTL", "k"],
        &["RESTORE", "k", "0", "payload"],
        &["SETBIT", "k", "7", "1"],
        &["BITFIELD_RO", "k", "GET", "u8", "0"],
        &["PFADD", "k", "a"],
        &["GEOADD", "k", "13.3", "38.1", "p"],
        &[
            "GEOSEARCH",
            "k",
            "FROMLONLAT",
            "0",
            "0",
            "BYRADIUS",
            "1",
            "km",
        ],
        &["GEORADIUS_RO", "k", "0", "0", "1", "km"],
        &["SORT_RO", "k", "BY", "w_*"],
        &["SPUBLISH", "channel", "message"],
    ] {
        assert_eq!(keys(words), vec![1], "{words:?}");
    }
}

#[test]
fn subcommands_with_a_key_at_index_two() {
    assert_eq!(keys(&["OBJECT", "ENCODING", "k"]), vec![2]);
    assert_eq!(keys(&["object", "freq", "k"]), vec![2]);
    assert_eq!(keys(&["MEMORY", "USAGE", "k", "SAMPLES", "5"]), vec![2]);
    assert_eq!(keys(&["XINFO", "STREAM", "k", "FULL"]), vec![2]);
    assert_eq!(keys(&["XINFO", "CONSUMERS", "k", "g"]), vec![2]);
    assert_eq!(
        keys(&["XGROUP", "CREATE", "k", "g", "$", "MKSTREAM"]),
        vec![2]
    );
    assert_eq!(keys(&["XGROUP", "SETID", "k", "g", "0"]), vec![2]);
    assert_eq!(classify(&["OBJECT", "HELP"]), Action::AnyMaster);
    assert_eq!(classify(&["XINFO", "HELP"]), Action::AnyMaster);
}

#[test]
fn same_slot_multi_key_commands_list_every_key() {
    assert_eq!(keys(&["MSETNX", "a", "1", "b", "2"]), vec![1, 3]);
    assert_eq!(keys(&["RENAME", "a", "b"]), vec![1, 2]);
    assert_eq!(keys(&["RENAMENX", "a", "b"]), vec![1, 2]);
    assert_eq!(keys(&["COPY", "a", "b", "REPLACE"]), vec![1, 2]);
    assert_eq!(keys(&["SMOVE", "a", "b", "m"]), vec![1, 2]);
    assert_eq!(keys(&["LMOVE", "a", "b", "LEFT", "RIGHT"]), vec![1, 2]);
    assert_eq!(keys(&["RPOPLPUSH", "a", "b"]), vec![1, 2]);
    assert_eq!(keys(&["LCS", "a", "b", "LEN"]), vec![1, 2]);
    assert_eq!(keys(&["SUNION", "a", "b", "c"]), vec![1, 2, 3]);
    assert_eq!(keys(&["SINTERSTORE", "d", "a", "b"]), vec![1, 2, 3]);
    assert_eq!(keys(&["SDIFF", "a"]), vec![1]);
    assert_eq!(keys(&["PFCOUNT", "a", "b"]), vec![1, 2]);
    assert_eq!(keys(&["PFMERGE", "d", "a", "b"]), vec![1, 2, 3]);
    assert_eq!(keys(&["BITOP", "AND", "d", "a", "b"]), vec![2, 3, 4]);
    assert_eq!(keys(&["ZRANGESTORE", "d", "s", "0", "-1"]), vec![1, 2]);
    assert_eq!(
        keys(&[
            "GEOSEARCHSTORE",
            "d",
            "s",
            "FROMLONLAT",
            "0",
            "0",
            "BYRADIUS",
            "1",
            "km"
        ]),
        vec![1, 2]
    );
}

#[test]
fn every_movable_keys_rule() {
    // numkeys at 2, keys from 3
    assert_eq!(
        keys(&["EVAL", "return 1", "2", "a", "b", "arg"]),
        vec![3, 4]
    );
    assert_eq!(keys(&["EVALSHA_RO", "sha", "1", "a"]), vec![3]);
    assert_eq!(keys(&["FCALL", "f", "1", "a", "arg"]), vec![3]);
    assert_eq!(classify(&["EVAL", "return 1", "0"]), Action::AnyMaster);
    assert_eq!(classify(&["FCALL_RO", "f", "0", "arg"]), Action::AnyMaster);
    // destination, numkeys at 2
    assert_eq!(
        keys(&["ZUNIONSTORE", "d", "2", "a", "b", "AGGREGATE", "MAX"]),
        vec![1, 3, 4]
    );
    assert_eq!(keys(&["ZINTERSTORE", "d", "1", "a"]), vec![1, 3]);
    assert_eq!(keys(&["ZDIFFSTORE", "d", "2", "a", "b"]), vec![1, 3, 4]);
    // numkeys at 1
    assert_eq!(keys(&["ZUNION", "2", "a", "b", "WITHSCORES"]), vec![2, 3]);
    assert_eq!(keys(&["ZINTER", "1", "a"]), vec![2]);
    assert_eq!(keys(&["ZDIFF", "2", "a", "b"]), vec![2, 3]);
    assert_eq!(
        keys(&["ZINTERCARD", "2", "a", "b", "LIMIT", "5"]),
        vec![2, 3]
    );
    assert_eq!(keys(&["SINTERCARD", "2", "a", "b"]), vec![2, 3]);
    assert_eq!(
        keys(&["LMPOP", "2", "a", "b", "LEFT", "COUNT", "2"]),
        vec![2, 3]
    );
    assert_eq!(keys(&["ZMPOP", "1", "a", "MIN"]), vec![2]);
    // after STREAMS
    assert_eq!(
        keys(&["XREAD", "COUNT", "2", "STREAMS", "a", "b", "0", "0"]),
        vec![4, 5]
    );
    assert_eq!(
        keys(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", ">"]),
        vec![5]
    );
    // SORT with STORE
    assert_eq!(keys(&["SORT", "k", "LIMIT", "0", "5", "ALPHA"]), vec![1]);
    assert_eq!(keys(&["SORT", "k", "GET", "#", "STORE", "d"]), vec![1, 5]);
    // GEORADIUS with STORE / STOREDIST
    assert_eq!(keys(&["GEORADIUS", "k", "0", "0", "1", "km"]), vec![1]);
    assert_eq!(
        keys(&["GEORADIUS", "k", "0", "0", "1", "km", "STORE", "d"]),
        vec![1, 7]
    );
    assert_eq!(
        keys(&["GEORADIUSBYMEMBER", "k", "m", "1", "km", "STOREDIST", "d"]),
        vec![1, 6]
    );
}

#[test]
fn bad_numkeys_get_the_nodes_own_words() {
    assert_eq!(
        error(&["EVAL", "s", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(&["EVAL", "s", "-1"]),
        "ERR Number of keys can't be negative"
    );
    assert_eq!(
        error(&["EVAL", "s", "2", "a"]),
        "ERR Number of keys can't be greater than number of args"
    );
    assert_eq!(
        error(&["FCALL", "f", "x"]),
        "ERR Bad number of keys provided"
    );
    assert_eq!(
        error(&["ZUNIONSTORE", "d", "0", "a"]),
        "ERR at least 1 input key is needed for 'zunionstore' command"
    );
    assert_eq!(
        error(&["zdiff", "0", "a"]),
        "ERR at least 1 input key is needed for 'zdiff' command"
    );
    assert_eq!(error(&["ZINTER", "5", "a"]), "ERR syntax error");
    assert_eq!(
        error(&["SINTERCARD", "-1", "a"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        error(&["SINTERCARD", "3", "a"]),
        "ERR Number of keys can't be greater than number of args"
    );
    assert_eq!(error(&["LMPOP", "2", "a", "LEFT"]), "ERR syntax error");
    assert_eq!(
        error(&["ZMPOP", "x", "a", "MIN"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        error(&["XREAD", "STREAMS", "a", "b", "c"]),
        "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
    );
    assert_eq!(
        error(&["XREAD", "GROUP", "g", "c", "STREAMS", "a", "0"]),
        "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
    );
    assert_eq!(error(&["XREAD", "COUNT", "1", "x"]), "ERR syntax error");
}

// ---------------------------------------------------------------- split, fan-out, local, any

#[test]
fn split_commands() {
    assert_eq!(
        classify(&["MGET", "a", "b"]),
        Action::Split(SplitKind::MGet)
    );
    assert_eq!(
        classify(&["MSET", "a", "1", "b", "2"]),
        Action::Split(SplitKind::MSet)
    );
    for name in ["DEL", "UNLINK", "EXISTS", "TOUCH"] {
        assert_eq!(
            classify(&[name, "a", "b"]),
            Action::Split(SplitKind::SumKeys),
            "{name}"
        );
    }
    assert_eq!(
        error(&["MSET", "a", "1", "b"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        error(&["MSET", "a"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        error(&["MSETNX", "a", "1", "b"]),
        "ERR wrong number of arguments for 'msetnx' command"
    );
    assert_eq!(SplitKind::MSet.stride(), 2);
    assert_eq!(SplitKind::SumKeys.stride(), 1);
}

#[test]
fn local_any_master_and_fan_out() {
    use LocalCommand as L;
    for (words, local) in [
        (&["PING"][..], L::Ping),
        (&["ping", "hello"], L::Ping),
        (&["ECHO", "x"], L::Echo),
        (&["QUIT"], L::Quit),
        (&["SELECT", "0"], L::Select),
        (&["CLIENT", "SETNAME", "me"], L::ClientSetName),
        (&["client", "getname"], L::ClientGetName),
        (
            &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"],
            L::ClientSetInfo,
        ),
        (&["CLIENT", "ID"], L::ClientId),
        (&["CLIENT", "INFO"], L::ClientInfo),
        (&["CLIENT", "LIST", "TYPE", "normal"], L::ClientList),
        (&["client", "kill", "ID", "7"], L::ClientKill),
        (&["CLIENT", "REPLY", "OFF"], L::ClientReply),
        (&["CLIENT", "NO-EVICT", "on"], L::ClientNoEvict),
        (&["CLIENT", "NO-TOUCH", "off"], L::ClientNoTouch),
        (&["READONLY"], L::ReadOnly),
        (&["readwrite"], L::ReadWrite),
        (&["HELLO", "2"], L::Hello),
        (&["INFO", "server"], L::Info),
        (&["RESET"], L::Reset),
        (&["CLUSTER", "KEYSLOT", "k"], L::ClusterKeyslot),
    ] {
        assert_eq!(classify(words), Action::Local(local), "{words:?}");
    }
    for words in [
        &["COMMAND"][..],
        &["COMMAND", "COUNT"],
        &["COMMAND", "INFO", "get"],
        &["COMMAND", "DOCS", "get"],
        &["COMMAND", "GETKEYS", "GET", "k"],
        &["TIME"],
        &["LASTSAVE"],
        &["PUBLISH", "ch", "msg"],
        &["LOLWUT"],
        &["CONFIG", "GET", "maxmemory"],
        &["config", "get", "a*", "b*"],
        &["CONFIG", "HELP"],
    ] {
        assert_eq!(classify(words), Action::AnyMaster, "{words:?}");
    }
    for (words, fan_out) in [
        (&["DBSIZE"][..], FanOut::SumIntegers),
        (&["KEYS", "*"], FanOut::ConcatArrays),
        (&["RANDOMKEY"], FanOut::FirstValue),
        (&["FLUSHALL"], FanOut::AllOk),
        (&["flushdb", "ASYNC"], FanOut::AllOk),
        // The nodes answer a bad argument themselves, each the same, in Redis' words.
        (&["FLUSHALL", "NOW"], FanOut::AllOk),
        (&["SCAN", "0"], FanOut::Scan),
        (
            &["scan", "42", "MATCH", "k*", "COUNT", "10", "TYPE", "string"],
            FanOut::Scan,
        ),
    ] {
        assert_eq!(classify(words), Action::FanOut(fan_out), "{words:?}");
    }
    for words in [
        &["SCAN"][..],
        &["KEYS"],
        &["KEYS", "a", "b"],
        &["RANDOMKEY", "x"],
    ] {
        let name = words[0].to_ascii_lowercase();
        assert_eq!(
            error(words),
            format!("ERR wrong number of arguments for '{name}' command")
        );
    }
    assert_eq!(
        error(&["PING", "a", "b"]),
        "ERR wrong number of arguments for 'ping' command"
    );
}

#[test]
fn script_and_function_management_reaches_every_master() {
    for (words, fan_out) in [
        (&["SCRIPT", "LOAD", "return 1"][..], FanOut::ScriptLoad),
        (&["script", "exists", "a", "b"], FanOut::ScriptExists),
        (&["SCRIPT", "FLUSH"], FanOut::ScriptFlush),
        (&["SCRIPT", "FLUSH", "ASYNC"], FanOut::ScriptFlush),
        (&["SCRIPT", "KILL"], FanOut::Kill),
        (&["FUNCTION", "KILL"], FanOut::Kill),
        (&["FUNCTION", "LOAD", "REPLACE", "code"], FanOut::Same),
        (&["function", "delete", "lib"], FanOut::Same),
        (&["FUNCTION", "FLUSH", "SYNC"], FanOut::Same),
        (&["FUNCTION", "RESTORE", "payload", "REPLACE"], FanOut::Same),
        (&["FUNCTION", "STATS"], FanOut::FunctionStats),
    ] {
        assert_eq!(classify(words), Action::FanOut(fan_out), "{words:?}");
    }
    for words in [
        &["FUNCTION", "LIST"][..],
        &["FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "my*"],
        &["FUNCTION", "DUMP"],
        &["FUNCTION", "HELP"],
        &["SCRIPT", "HELP"],
    ] {
        assert_eq!(classify(words), Action::AnyMaster, "{words:?}");
    }
}

#[test]
fn script_and_function_arguments_are_checked_as_redis_does() {
    // Texts of redis-server 7.0.15.
    for (words, line) in [
        (
            &["SCRIPT"][..],
            "ERR wrong number of arguments for 'script' command",
        ),
        (
            &["SCRIPT", "FOO"],
            "ERR unknown subcommand 'FOO'. Try SCRIPT HELP.",
        ),
        (
            &["script", "foo", "bar"],
            "ERR unknown subcommand 'foo'. Try SCRIPT HELP.",
        ),
        (
            &["SCRIPT", "LOAD"],
            "ERR wrong number of arguments for 'script|load' command",
        ),
        (
            &["script", "load", "a", "b"],
            "ERR wrong number of arguments for 'script|load' command",
        ),
        (
            &["SCRIPT", "EXISTS"],
            "ERR wrong number of arguments for 'script|exists' command",
        ),
        (
            &["SCRIPT", "KILL", "x"],
            "ERR wrong number of arguments for 'script|kill' command",
        ),
        (
            &["FUNCTION"],
            "ERR wrong number of arguments for 'function' command",
        ),
        (
            &["FUNCTION", "FOO"],
            "ERR unknown subcommand 'FOO'. Try FUNCTION HELP.",
        ),
        (
            &["FUNCTION", "LOAD"],
            "ERR wrong number of arguments for 'function|load' command",
        ),
        (
            &["FUNCTION", "DELETE"],
            "ERR wrong number of arguments for 'function|delete' command",
        ),
    ] {
        assert_eq!(error(words), line, "{words:?}");
    }
}

#[test]
fn scripts_say_whether_they_carry_a_body_or_a_sha() {
    for words in [
        &["EVAL", "return 1", "0"][..],
        &["eval_ro", "return 1", "1", "k"],
    ] {
        let t = traits(words);
        assert!(t.script_body() && !t.script_sha(), "{words:?}");
    }
    for words in [
        &["EVALSHA", "abc", "0"][..],
        &["evalsha_ro", "abc", "1", "k"],
    ] {
        let t = traits(words);
        assert!(t.script_sha() && !t.script_body(), "{words:?}");
    }
    for words in [
        &["FCALL", "f", "0"][..],
        &["GET", "k"],
        &["SCRIPT", "LOAD", "x"],
    ] {
        let t = traits(words);
        assert!(!t.script_sha() && !t.script_body(), "{words:?}");
    }
    // A refused EVALSHA is never sent, so nothing is healed.
    assert!(!traits(&["EVALSHA", "abc", "x"]).script_sha());
}

// ---------------------------------------------------------------- rejections

#[test]
fn arity_errors_use_redis_text() {
    assert_eq!(
        error(&["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        error(&["GeT", "a", "b"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        error(&["SET", "k"]),
        "ERR wrong number of arguments for 'set' command"
    );
    assert_eq!(
        error(&["OBJECT", "ENCODING"]),
        "ERR wrong number of arguments for 'object|encoding' command"
    );
    assert_eq!(
        error(&["object"]),
        "ERR wrong number of arguments for 'object' command"
    );
    assert_eq!(
        error(&["Xgroup", "Create", "k"]),
        "ERR wrong number of arguments for 'xgroup|create' command"
    );
    assert_eq!(
        error(&["CLIENT", "SETNAME"]),
        "ERR wrong number of arguments for 'client|setname' command"
    );
    assert_eq!(
        error(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "a"]),
        "ERR wrong number of arguments for 'xreadgroup' command"
    );
    // Arity is checked before any key is looked for.
    assert_eq!(
        error(&["EVAL", "s"]),
        "ERR wrong number of arguments for 'eval' command"
    );
    assert_eq!(
        error(&["ZUNIONSTORE", "d", "1"]),
        "ERR wrong number of arguments for 'zunionstore' command"
    );
}

#[test]
fn unknown_commands_use_redis_text() {
    assert_eq!(
        error(&["foo", "a", "b"]),
        "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        error(&["FoO"]),
        "ERR unknown command 'FoO', with args beginning with: "
    );
    assert_eq!(
        error(&["foo", "a\r\nb", "c\0d"]),
        "ERR unknown command 'foo', with args beginning with: 'a  b' 'c' "
    );
    let long_a = "a".repeat(100);
    let long_b = "b".repeat(100);
    assert_eq!(
        error(&["foo", &long_a, &long_b, "c"]),
        format!(
            "ERR unknown command 'foo', with args beginning with: '{long_a}' '{}' ",
            "b".repeat(25)
        )
    );
    let many = vec!["ab"; 100];
    let mut words = vec!["foo"];
    words.extend(many);
    assert_eq!(
        error(&words),
        format!(
            "ERR unknown command 'foo', with args beginning with: {}",
            "'ab' ".repeat(26)
        )
    );
    let long_name = "x".repeat(200);
    assert_eq!(
        error(&[&long_name, "y"]),
        format!(
            "ERR unknown command '{}', with args beginning with: 'y' ",
            "x".repeat(128)
        )
    );
    // A subcommand name is not a top-level command.
    assert!(error(&["OBJECT|ENCODING", "k"]).starts_with("ERR unknown command 'OBJECT|ENCODING'"));
    assert!(error(&["GET\0x", "k"]).starts_with("ERR unknown command 'GET'"));
    assert_eq!(
        error(&["object", "foo"]),
        "ERR unknown subcommand 'foo'. Try OBJECT HELP."
    );
    assert_eq!(
        error(&["xinfo", "z\r\nq", "k"]),
        "ERR unknown subcommand 'z  q'. Try XINFO HELP."
    );
}

#[test]
fn rejected_commands_name_themselves() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["WAITAOF", "1", "0", "0"],
            "'WAITAOF' is not supported by slotgate (blocking",
        ),
        (&["MONITOR"], "'MONITOR'"),
        (
            &["script", "debug", "yes"],
            "'SCRIPT DEBUG' is not supported by slotgate (the Lua debugger",
        ),
        (
            &["CONFIG", "SET", "maxmemory", "1"],
            "'CONFIG SET' is not supported by slotgate (a proxy cannot change every node \
             consistently; configure the nodes directly)",
        ),
        (&["config", "rewrite"], "'CONFIG REWRITE'"),
        (&["CONFIG", "RESETSTAT"], "'CONFIG RESETSTAT'"),
        (&["DEBUG", "SLEEP", "1"], "'DEBUG'"),
        (&["SHUTDOWN"], "'SHUTDOWN'"),
        (&["REPLICAOF", "NO", "ONE"], "'REPLICAOF'"),
        (&["SLAVEOF", "NO", "ONE"], "'SLAVEOF'"),
        (&["SAVE"], "'SAVE'"),
        (&["BGSAVE"], "'BGSAVE'"),
        (&["BGREWRITEAOF"], "'BGREWRITEAOF'"),
        (&["SYNC"], "'SYNC'"),
        (&["PSYNC", "?", "-1"], "'PSYNC'"),
        (&["ACL", "WHOAMI"], "'ACL'"),
        (
            &["AUTH", "secret"],
            "'AUTH' is not supported by slotgate (authentication is not supported)",
        ),
        (&["MIGRATE", "h", "6379", "k", "0", "1000"], "'MIGRATE'"),
        (&["ASKING"], "'ASKING'"),
        (
            &["SWAPDB", "0", "1"],
            "'SWAPDB' is not supported by slotgate (a cluster has only database 0)",
        ),
        (&["MOVE", "k", "1"], "'MOVE'"),
        (&["MEMORY", "STATS"], "'MEMORY STATS'"),
        (
            &["client", "tracking", "on"],
            "'CLIENT TRACKING' is not supported by slotgate (supported: CLIENT SETNAME",
        ),
        (&["CLIENT", "CACHING", "YES"], "'CLIENT CACHING'"),
        (&["CLIENT", "UNBLOCK", "7"], "'CLIENT UNBLOCK'"),
        (
            &["CLIENT", "PAUSE", "10"],
            "'CLIENT PAUSE' is not supported by slotgate (it would pause only one node's clients",
        ),
        (&["CLIENT", "UNPAUSE"], "'CLIENT UNPAUSE'"),
        (
            &["MIGRATE", "h", "1", "k", "0", "10"],
            "'MIGRATE' is not supported by slotgate (moving keys between nodes is resharding",
        ),
        (&["CLIENT", "whatever"], "'CLIENT WHATEVER'"),
    ];
    for (words, expected) in cases {
        let line = error(words);
        assert!(
            line.starts_with(&format!("ERR {expected}")),
            "{words:?}: {line}"
        );
    }
}

/// What redis-server 7.0.15 started without `cluster-enabled` answers, byte for byte.
#[test]
fn cluster_is_answered_as_by_a_standalone_server() {
    let mut refused = 0;
    for cmd in redis70().iter().filter(|c| c.name.starts_with("cluster|")) {
        let mut words: Vec<&str> = cmd.name.split('|').collect();
        while words.len() < cmd.arity.unsigned_abs() as usize {
            words.push("1");
        }
        if cmd.name == "cluster|keyslot" {
            assert_eq!(
                classify(&words),
                Action::Local(LocalCommand::ClusterKeyslot)
            );
            continue;
        }
        assert_eq!(
            error(&words),
            "ERR This instance has cluster support disabled",
            "{words:?}"
        );
        refused += 1;
    }
    assert_eq!(refused, 26);
    assert_eq!(
        error(&["CLUSTER", "bogus"]),
        "ERR unknown subcommand 'bogus'. Try CLUSTER HELP."
    );
    assert_eq!(
        error(&["CLUSTER", "INFO", "x"]),
        "ERR wrong number of arguments for 'cluster|info' command"
    );
    assert_eq!(
        error(&["CLUSTER"]),
        "ERR wrong number of arguments for 'cluster' command"
    );
}

#[test]
fn lookup_is_case_insensitive() {
    for name in ["get", "GET", "Get", "gEt"] {
        assert_eq!(keys(&[name, "k"]), vec![1], "{name}");
    }
    for name in ["georadius_ro", "GeoRadius_Ro"] {
        assert_eq!(keys(&[name, "k", "0", "0", "1", "km"]), vec![1]);
    }
    assert_eq!(keys(&["oBjEcT", "EnCoDiNg", "k"]), vec![2]);
    assert_eq!(keys(&["restore", "k", "0", "x"]), vec![1]);
    assert_eq!(
        classify(&["Client", "SetName", "x"]),
        Action::Local(LocalCommand::ClientSetName)
    );
    // A near miss is not a match.
    assert!(matches!(
        classify(&["GETT", "k"]),
        Action::Reject(RejectKind::UnknownCommand)
    ));
    assert!(matches!(
        classify(&["GE", "k"]),
        Action::Reject(RejectKind::UnknownCommand)
    ));
    assert!(matches!(
        classify(&[""]),
        Action::Reject(RejectKind::UnknownCommand)
    ));
}

// ---------------------------------------------------------------- the table against Redis 7.0

/// Every command and subcommand Redis 7.0 knows classifies to a decision, given the minimum number
/// of arguments its arity allows: never "unknown", never an arity error.
#[test]
fn every_redis_70_command_is_in_the_table() {
    let table = CommandTable::builtin();
    let reference = redis70();
    let mut checked = 0;
    for cmd in &reference {
        let prefix = format!("{}|", cmd.name);
        if reference.iter().any(|c| c.name.starts_with(&prefix)) {
            // A container alone: Redis answers an arity or unknown-subcommand error too; its
            // subcommands are checked one by one.
            assert!(
                table.find_top(cmd.name.as_bytes()).is_some(),
                "{}",
                cmd.name
            );
            checked += 1;
            continue;
        }
        let mut words: Vec<&str> = cmd.name.split('|').collect();
        let argc = cmd.arity.unsigned_abs() as usize;
        while words.len() < argc.max(1) {
            words.push("1");
        }
        let plan = table.classify(&req(&words)).action;
        assert!(
            !matches!(
                plan,
                Action::Reject(
                    RejectKind::UnknownCommand
                        | RejectKind::UnknownSubcommand
                        | RejectKind::WrongArity { .. }
                )
            ),
            "{} ({words:?}) -> {plan:?}",
            cmd.name
        );
        checked += 1;
    }
    assert!(checked > 350, "the capture lost lines: {checked}");
}

/// Arity and fixed key positions were typed by hand; Redis 7.0 is the reference.
#[test]
fn builtin_entries_agree_with_redis_70() {
    let table = CommandTable::builtin();
    let reference = redis70();
    let mut compared = 0;
    for entry in table.builtin_entries() {
        let name = entry.name.to_ascii_lowercase();
        let Some(redis) = reference.iter().find(|c| c.name == name) else {
            // Newer than 7.0.
            assert!(
                ["WAITAOF", "CLIENT|SETINFO", "CLIENT|NO-TOUCH"].contains(&entry.name),
                "{} is not a Redis 7.0 command",
                entry.name
            );
            continue;
        };
        compared += 1;
        assert_eq!(entry.spec.arity, redis.arity, "arity of {name}");
        let declared = match entry.spec.handling {
            Handling::Keyed(KeySpec::Range { first, last, step }) => Some((first, last, step)),
            Handling::Keyed(KeySpec::Pairs) | Handling::Split(SplitKind::MSet) => Some((1, -1, 2)),
            Handling::Split(_) => Some((1, -1, 1)),
            _ => None,
        };
        // SORT_RO is flagged movable because BY and GET patterns name keys, but Redis routes it by
        // its one key (`sortROGetKeys`), and so does slotgate.
        let movable = redis.flags.contains(&"movablekeys") && entry.name != "SORT_RO";
        if let Some(declared) = declared {
            assert_eq!(
                declared,
                (redis.first, redis.last, redis.step),
                "keys of {name}"
            );
            assert!(!movable, "{name} has movable keys");
        }
        // WAIT blocks its client, though Redis 7.0 does not flag it.
        assert_eq!(
            redis.flags.contains(&"blocking") || entry.name == "WAIT",
            entry.spec.traits.blocks != Blocks::Never,
            "blocking trait of {name}"
        );
        if movable {
            assert!(
                matches!(
                    entry.spec.handling,
                    Handling::Keyed(spec) if !matches!(spec, KeySpec::Range { .. })
                ) || matches!(entry.spec.handling, Handling::Reject(_)),
                "{name} has movable keys but a fixed rule"
            );
        }
    }
    assert!(compared > 250, "{compared}");
}

#[test]
fn builtin_names_are_unique_and_canonical() {
    let table = CommandTable::builtin();
    let mut names: Vec<&str> = table.builtin_entries().map(|e| e.name).collect();
    for name in &names {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_lowercase()),
            "{name}"
        );
        if let Some((container, _)) = name.split_once('|') {
            assert!(
                matches!(
                    table.find_top(container.as_bytes()).map(|s| s.handling),
                    Some(Handling::Container(_))
                ),
                "{name} has no container entry"
            );
        }
    }
    let total = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), total, "duplicate names in the table");
}

// ---------------------------------------------------------------- learn

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn command_frame(
    name: &str,
    arity: i64,
    flags: &[&str],
    (first, last, step): (i64, i64, i64),
    subcommands: Vec<Frame>,
) -> Frame {
    Frame::Array(vec![
        bulk(name),
        Frame::Integer(arity),
        Frame::Array(
            flags
                .iter()
                .map(|f| Frame::Simple(Bytes::copy_from_slice(f.as_bytes())))
                .collect(),
        ),
        Frame::Integer(first),
        Frame::Integer(last),
        Frame::Integer(step),
        Frame::Array(vec![]),
        Frame::Array(vec![]),
        Frame::Array(vec![]),
        Frame::Array(subcommands),
    ])
}

/// The capture rebuilt as the `COMMAND` reply Frame a 7.0 node sends (subcommands nested).
fn redis70_reply() -> Frame {
    let all = redis70();
    let frame = |c: &Redis70, subs| {
        command_frame(
            c.name,
            i64::from(c.arity),
            &c.flags,
            (c.first as i64, c.last as i64, c.step as i64),
            subs,
        )
    };
    Frame::Array(
        all.iter()
            .filter(|c| !c.name.contains('|'))
            .map(|c| {
                let prefix = format!("{}|", c.name);
                let subs = all
                    .iter()
                    .filter(|s| s.name.starts_with(&prefix))
                    .map(|s| frame(s, vec![]))
                    .collect();
                frame(c, subs)
            })
            .collect(),
    )
}

#[test]
fn learning_redis_70_adds_nothing_the_table_decided() {
    let mut table = CommandTable::builtin();
    assert_eq!(table.learn(&redis70_reply()), 0);
}

#[test]
fn learn_adds_unknown_commands_by_their_flags() {
    let mut table = CommandTable::builtin();
    let reply = Frame::Array(vec![
        // Redis 7.4 hash field expiry: one key.
        command_frame(
            "hexpire",
            -6,
            &["write", "denyoom", "fast"],
            (1, 1, 1),
            vec![],
        ),
        // A module command with key/value pairs.
        command_frame("mod.mset", -3, &["write"], (1, -1, 2), vec![]),
        command_frame("mod.version", 1, &["readonly", "fast"], (0, 0, 0), vec![]),
        command_frame("mod.admin", 1, &["admin"], (0, 0, 0), vec![]),
        command_frame("mod.flush", 1, &["write"], (0, 0, 0), vec![]),
        command_frame(
            "mod.state",
            1,
            &["readonly", "fast", "noscript"],
            (0, 0, 0),
            vec![],
        ),
        command_frame("mod.bpop", -3, &["write", "blocking"], (1, -2, 1), vec![]),
        command_frame("mod.eval", -3, &["write", "movablekeys"], (0, 0, 0), vec![]),
        command_frame(
            "mod.tool",
            -2,
            &[],
            (0, 0, 0),
            vec![
                command_frame("mod.tool|get", 3, &["readonly"], (2, 2, 1), vec![]),
                command_frame("mod.tool|help", 2, &["readonly", "fast"], (0, 0, 0), vec![]),
                // Misnamed: not under its container.
                command_frame("other|x", 2, &["readonly"], (0, 0, 0), vec![]),
            ],
        ),
        // Builtins stay as they are.
        command_frame("get", 2, &["readonly", "fast"], (0, 0, 0), vec![]),
        command_frame("keys", 2, &["readonly", "fast"], (0, 0, 0), vec![]),
        // New subcommands: learned under OBJECT, never under CLIENT.
        command_frame(
            "object",
            -2,
            &[],
            (0, 0, 0),
            vec![command_frame(
                "object|newthing",
                3,
                &["readonly"],
                (2, 2, 1),
                vec![],
            )],
        ),
        command_frame(
            "client",
            -2,
            &[],
            (0, 0, 0),
            vec![command_frame(
                "client|newthing",
                2,
                &["readonly", "fast"],
                (0, 0, 0),
                vec![],
            )],
        ),
    ]);
    assert_eq!(table.learn(&reply), 12);
    assert_eq!(table.learned_count(), 12);
    // Learning the same reply again changes nothing.
    assert_eq!(table.learn(&reply), 0);

    let plan = |words: &[&str]| table.classify(&req(words)).action;
    let keyed = |words: &[&str]| match plan(words) {
        Action::Keyed(k) => k.iter().collect::<Vec<_>>(),
        other => panic!("{words:?} -> {other:?}"),
    };
    assert_eq!(keyed(&["HEXPIRE", "h", "10", "FIELDS", "1", "f"]), vec![1]);
    assert_eq!(keyed(&["mod.mset", "a", "1", "b", "2"]), vec![1, 3]);
    assert_eq!(plan(&["MOD.VERSION"]), Action::AnyMaster);
    let refused = |words: &[&str]| match plan(words) {
        Action::Reject(RejectKind::Unsupported { reason, .. }) => reason,
        other => panic!("{words:?} -> {other:?}"),
    };
    assert_eq!(refused(&["mod.admin"]), Reason::Admin);
    assert_eq!(refused(&["mod.flush"]), Reason::NoKeys);
    assert_eq!(refused(&["mod.state"]), Reason::NoKeys);
    assert_eq!(refused(&["mod.bpop", "k", "0"]), Reason::Blocking);
    assert_eq!(refused(&["mod.eval", "x", "0"]), Reason::MovableKeys);
    assert_eq!(keyed(&["MOD.TOOL", "GET", "k"]), vec![2]);
    assert_eq!(plan(&["mod.tool", "help"]), Action::AnyMaster);
    assert_eq!(
        plan(&["mod.tool", "x"]),
        Action::Reject(RejectKind::UnknownSubcommand)
    );
    assert_eq!(keyed(&["OBJECT", "NEWTHING", "k"]), vec![2]);
    assert_eq!(refused(&["CLIENT", "NEWTHING"]), Reason::ClientSubcommand);
    // Learned arity is enforced too.
    let request = req(&["mod.version", "extra"]);
    match table.classify(&request).action {
        Action::Reject(kind) => assert_eq!(
            kind.rejection(&request).to_string(),
            "ERR wrong number of arguments for 'mod.version' command"
        ),
        other => panic!("{other:?}"),
    }
    // The builtins did not move.
    assert_eq!(keyed(&["GET", "k"]), vec![1]);
    assert_eq!(plan(&["KEYS", "*"]), Action::FanOut(FanOut::ConcatArrays));
}

#[test]
fn learn_skips_malformed_entries() {
    let mut table = CommandTable::builtin();
    let good = command_frame("mod.ok", 2, &["readonly"], (1, 1, 1), vec![]);
    let reply = Frame::Array(vec![
        Frame::Integer(3),
        Frame::Array(vec![]),
        Frame::Array(vec![bulk("mod.short"), Frame::Integer(2)]),
        Frame::Array(vec![
            Frame::Integer(1),
            Frame::Integer(2),
            Frame::Array(vec![]),
            Frame::Integer(1),
            Frame::Integer(1),
            Frame::Integer(1),
        ]),
        command_frame("", 2, &[], (1, 1, 1), vec![]),
        command_frame("has space", 2, &[], (1, 1, 1), vec![]),
        command_frame("mod.bad|name", 2, &[], (1, 1, 1), vec![]),
        command_frame("mod.far", 2, &[], (1_000_000, 1_000_000, 1), vec![]),
        command_frame("mod.neg", 2, &[], (-1, 1, 1), vec![]),
        command_frame("mod.backwards", 2, &[], (3, 1, 1), vec![]),
        command_frame("mod.arity", i64::MAX, &[], (1, 1, 1), vec![]),
        good,
    ]);
    assert_eq!(table.learn(&reply), 1);
    assert_eq!(table.learn(&Frame::Integer(1)), 0);
    assert_eq!(table.learn(&Frame::NullArray), 0);
    assert!(matches!(
        table.classify(&req(&["mod.ok", "k"])).action,
        Action::Keyed(_)
    ));
    // A Redis 6 entry has only seven fields and no subcommands.
    let redis6 = Frame::Array(vec![Frame::Array(vec![
        Frame::Simple(Bytes::from_static(b"mod.six")),
        Frame::Integer(-2),
        Frame::Array(vec![Frame::Simple(Bytes::from_static(b"write"))]),
        Frame::Integer(1),
        Frame::Integer(-1),
        Frame::Integer(1),
        Frame::Array(vec![]),
    ])]);
    assert_eq!(table.learn(&redis6), 1);
    match table.classify(&req(&["MOD.SIX", "a", "b"])).action {
        Action::Keyed(k) => assert_eq!(k.iter().collect::<Vec<_>>(), vec![1, 2]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn learned_keys_never_point_past_the_arguments() {
    let mut table = CommandTable::builtin();
    let reply = Frame::Array(vec![command_frame(
        "mod.loose",
        0,
        &["write"],
        (2, 5, 1),
        vec![],
    )]);
    assert_eq!(table.learn(&reply), 1);
    // Arity 0 checks nothing, so the node gets to answer a short request itself.
    assert_eq!(
        table.classify(&req(&["mod.loose"])).action,
        Action::AnyMaster
    );
    match table.classify(&req(&["mod.loose", "a", "b", "c"])).action {
        Action::Keyed(k) => assert_eq!(k.iter().collect::<Vec<_>>(), vec![2, 3]),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- traits

/// `readonly` was typed by hand on each entry; Redis 7.0's flags are the reference.
#[test]
fn readonly_traits_agree_with_redis_70() {
    let reference = redis70();
    let mut readonly = 0;
    for entry in CommandTable::builtin().builtin_entries() {
        let name = entry.name.to_ascii_lowercase();
        let flagged = reference
            .iter()
            .find(|c| c.name == name)
            .is_some_and(|c| c.flags.contains(&"readonly"));
        assert_eq!(entry.spec.traits.readonly, flagged, "readonly of {name}");
        readonly += usize::from(flagged);
    }
    assert!(readonly >= 90, "{readonly}");
}

#[test]
fn reads_and_plain_writes_replay_others_do_not() {
    for ok in [
        &["get", "k"][..],
        &["MGET", "a", "b"],
        &["EXISTS", "a", "b"],
        &["SET", "k", "v", "EX", "5"],
        &["mset", "a", "1"],
        &["HMSET", "h", "f", "v"],
        &["SETEX", "k", "5", "v"],
        &["zrange", "z", "0", "1"],
        &["XINFO", "STREAM", "s"],
        &["EVAL_RO", "return 1", "1", "k"],
    ] {
        assert!(traits(ok).replay_safe(), "{ok:?}");
    }
    for no in [
        &["INCR", "k"][..],
        &["SET", "k", "v", "nx"],
        &["SET", "k", "v", "GET"],
        &["DEL", "k"],
        &["LPUSH", "l", "x"],
        &["EVAL", "return 1", "1", "k"],
        &["averyveryverylongcommandname"],
    ] {
        assert!(!traits(no).replay_safe(), "{no:?}");
    }
    assert!(traits(&["GET", "k"]).readonly());
    assert!(!traits(&["SET", "k", "v"]).readonly());
}

#[test]
fn connection_state_commands_need_a_reserved_connection() {
    for words in [&["MULTI"][..], &["WATCH", "k"], &["EXEC"], &["UNWATCH"]] {
        assert!(
            matches!(classify(words), Action::Transaction(_)),
            "{words:?}"
        );
        assert!(traits(words).reserved(), "{words:?}");
    }
    for words in [
        &["SUBSCRIBE", "c"][..],
        &["PSUBSCRIBE", "c*"],
        &["UNSUBSCRIBE"],
        &["SSUBSCRIBE", "c"],
        &["SUNSUBSCRIBE"],
    ] {
        assert!(matches!(classify(words), Action::PubSub(_)), "{words:?}");
        assert!(traits(words).reserved(), "{words:?}");
    }
    assert!(!traits(&["GET", "k"]).reserved());
    assert!(!traits(&["PUBLISH", "c", "m"]).reserved());
}

#[test]
fn blocking_commands_route_by_key_and_say_they_block() {
    for (words, want) in [
        (&["BLPOP", "a", "b", "0"][..], vec![1, 2]),
        (&["BRPOP", "a", "1.5"], vec![1]),
        (&["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"], vec![1, 2]),
        (&["BRPOPLPUSH", "a", "b", "0"], vec![1, 2]),
        (&["BLMPOP", "0", "2", "a", "b", "LEFT"], vec![3, 4]),
        (&["BZPOPMIN", "z", "0"], vec![1]),
        (&["BZMPOP", "0", "1", "z", "MIN"], vec![3]),
        (&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"], vec![4]),
        (
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "10",
                "STREAMS",
                "s",
                ">",
            ],
            vec![7],
        ),
    ] {
        assert_eq!(keys(words), want, "{words:?}");
        assert!(traits(words).blocking(), "{words:?}");
    }
    assert!(!traits(&["XREAD", "STREAMS", "s", "0"]).blocking());
    assert!(!traits(&["LPOP", "a"]).blocking());
}

#[test]
fn wait_blocks_its_client_and_its_arguments_get_redis_errors() {
    for words in [
        &["WAIT", "1", "0"][..],
        &["wait", "0", "100"],
        &["WAIT", "-1", "9223372036854775807"],
    ] {
        assert_eq!(classify(words), Action::Wait, "{words:?}");
        assert!(traits(words).blocking(), "{words:?}");
    }
    // Redis checks numreplicas first, then the timeout (redis-server 7.0.15's words).
    let not_an_integer = "ERR value is not an integer or out of range";
    assert_eq!(error(&["WAIT", "x", "0"]), not_an_integer);
    assert_eq!(error(&["WAIT", "x", "y"]), not_an_integer);
    assert_eq!(error(&["WAIT", "9223372036854775808", "0"]), not_an_integer);
    let bad_timeout = "ERR timeout is not an integer or out of range";
    assert_eq!(error(&["WAIT", "0", "x"]), bad_timeout);
    assert_eq!(error(&["WAIT", "0", "1.5"]), bad_timeout);
    assert_eq!(error(&["WAIT", "0", "9223372036854775808"]), bad_timeout);
    assert_eq!(error(&["WAIT", "0", "-1"]), "ERR timeout is negative");
    assert_eq!(
        error(&["WAIT", "0"]),
        "ERR wrong number of arguments for 'wait' command"
    );
}

#[test]
fn learned_commands_take_readonly_from_the_cluster() {
    let mut table = CommandTable::builtin();
    let reply = Frame::Array(vec![
        command_frame("mod.get", 2, &["readonly"], (1, 1, 1), vec![]),
        command_frame("mod.set", 3, &["write"], (1, 1, 1), vec![]),
    ]);
    assert_eq!(table.learn(&reply), 2);
    let get = table.classify(&req(&["mod.get", "k"])).traits;
    assert!(get.readonly() && get.replay_safe());
    let set = table.classify(&req(&["mod.set", "k", "v"])).traits;
    assert!(!set.readonly() && !set.replay_safe());
}

// ---------------------------------------------------------------- plumbing

#[test]
fn plan_stays_small() {
    // Five words of action and a byte of traits: well inside one cache line.
    assert!(
        std::mem::size_of::<Plan>() <= 48,
        "{}",
        std::mem::size_of::<Plan>()
    );
}

#[test]
fn every_rejection_is_a_listed_metric_label() {
    use crate::metrics::ERROR_KINDS;
    let reasons = [
        Reason::Blocking,
        Reason::PubSub,
        Reason::Monitor,
        Reason::ScriptDebug,
        Reason::KeyspaceInTransaction,
        Reason::Admin,
        Reason::Auth,
        Reason::ClusterState,
        Reason::SingleDatabase,
        Reason::ClientSubcommand,
        Reason::ClientPause,
        Reason::Migrate,
        Reason::MovableKeys,
        Reason::NoKeys,
        Reason::NodeConfig,
    ];
    let kinds = reasons
        .iter()
        .map(|&reason| RejectKind::Unsupported {
            reason,
            subcommand: false,
        })
        .chain([
            RejectKind::WrongArity { subcommand: false },
            RejectKind::UnknownCommand,
            RejectKind::UnknownSubcommand,
            RejectKind::BadArguments(ArgError::Syntax),
            RejectKind::ClusterDisabled,
        ]);
    for kind in kinds {
        assert!(ERROR_KINDS.contains(&kind.label()), "{kind:?}");
    }
}

#[test]
fn reject_kinds_have_stable_labels() {
    assert_eq!(RejectKind::UnknownCommand.label(), "unknown_command");
    assert_eq!(
        RejectKind::WrongArity { subcommand: true }.label(),
        "wrong_arity"
    );
    assert_eq!(
        RejectKind::Unsupported {
            reason: Reason::Blocking,
            subcommand: false
        }
        .label(),
        "blocking"
    );
    assert_eq!(
        RejectKind::BadArguments(ArgError::Syntax).label(),
        "bad_arguments"
    );
}

#[test]
fn every_request_is_labelled_by_a_bounded_command_name() {
    let table = CommandTable::builtin();
    let label = |words: &[&str]| {
        let args: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        table.classify(&Request::from_args(args)).command.label()
    };
    assert_eq!(label(&["GET", "k"]), "get");
    assert_eq!(
        label(&["get"]),
        "get",
        "wrong arity still names the command"
    );
    assert_eq!(label(&["Client", "LIST"]), "client|list");
    assert_eq!(
        label(&["CLIENT", "NOPE"]),
        "client",
        "unknown subcommand: its container"
    );
    assert_eq!(label(&["slowlog", "get", "1"]), "slowlog|get");
    assert_eq!(label(&["NOSUCHCOMMAND"]), "other");
    assert_eq!(CommandId::OTHER.label(), "other");
    let mut labels: Vec<&str> = (0..CommandId::COUNT)
        .map(|i| CommandId::from_index(i).label())
        .collect();
    assert!(labels.iter().all(|l| l
        .bytes()
        .all(|b| !b.is_ascii_uppercase() && b != b' ' && b != b'"')));
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), CommandId::COUNT, "every id has its own label");
}
