//! Scripts and functions through slotgate: `SCRIPT` and `FUNCTION` reach every master and answer
//! as one server would, `EVAL`/`FCALL` route by their keys, and an `EVALSHA` that meets a master
//! without its script is healed instead of failing. Error texts are compared byte for byte with
//! what redis-server 7.0 answers.
//!
//! Tests that flush scripts or functions on every master, or keep one busy, run on a cluster of
//! their own, one at a time: on the shared one they would pull scripts from under the others.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use redis::Value;
use slotgate::cluster::Slot;
use slotgate::protocol::{Limits, ReplyCodec};
use tokio_util::codec::Decoder;

use crate::common::cluster::RedisCluster;
use crate::common::proxy::Proxy;
use crate::{env, q, Env};

const NOSCRIPT: &[u8] = b"-NOSCRIPT No matching script. Please use EVAL.\r\n";
const NOTBUSY: &[u8] = b"-NOTBUSY No scripts in execution right now.\r\n";

/// The cluster and proxy of the tests that flush or block every master; a test holds the guard
/// for as long as it runs.
fn own() -> MutexGuard<'static, Env> {
    static OWN: OnceLock<Mutex<Env>> = OnceLock::new();
    OWN.get_or_init(|| {
        let cluster = RedisCluster::start(3, 0, 2000);
        let proxy = Proxy::start(vec![cluster.seed_addr()], |_| {});
        Mutex::new(Env { cluster, proxy })
    })
    .lock()
    .unwrap_or_else(PoisonError::into_inner)
}

/// A connection that sees the bytes as Redis (or slotgate) writes them.
fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Sends `args` as one command and returns its one reply, byte for byte.
fn call(s: &mut TcpStream, args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    s.write_all(&out).unwrap();
    let mut codec = ReplyCodec::new(Limits::default());
    let mut buf = BytesMut::new();
    loop {
        if let Some(reply) = codec.decode(&mut buf).expect("a valid reply") {
            assert!(buf.is_empty(), "one command, one reply");
            return reply.into_bytes().to_vec();
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("reading a reply");
        assert!(n > 0, "connection closed before the reply");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `call` with text arguments.
fn say(s: &mut TcpStream, words: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    call(s, &args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_reply(got: Vec<u8>, want: &[u8]) {
    assert_eq!(text(&got), text(want));
}

/// The payload of a bulk string reply.
fn bulk_of(reply: &[u8]) -> Vec<u8> {
    let text_end = reply.iter().position(|&b| b == b'\r').unwrap();
    assert_eq!(reply[0], b'$', "not a bulk: {}", text(reply));
    let len: usize = text(&reply[1..text_end]).parse().unwrap();
    reply[text_end + 2..text_end + 2 + len].to_vec()
}

fn sha1(body: &str) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// One key (`prefix:N`) on each master, with that master's port.
fn key_per_master(cluster: &RedisCluster, prefix: &str) -> Vec<(String, u16)> {
    let masters = cluster.masters().len();
    let mut found: Vec<(String, u16)> = Vec::new();
    for i in 0..1000 {
        let key = format!("{prefix}:{i}");
        let port = cluster.master_of_slot(Slot::for_key(key.as_bytes()).get());
        if found.iter().all(|&(_, p)| p != port) {
            found.push((key, port));
        }
        if found.len() == masters {
            return found;
        }
    }
    panic!("no key of {prefix} on some master: {found:?}");
}

fn heals(proxy: &Proxy) -> f64 {
    proxy.metric("slotgate_noscript_heals_total").unwrap()
}

// ---------------------------------------------------------------- on the shared cluster

#[test]
fn a_loaded_script_runs_by_sha_on_every_master() {
    let env = env();
    let mut c = env.proxy.client();
    let body = "return redis.call('SET', KEYS[1], ARGV[1])";
    assert_eq!(q(&mut c, &["SCRIPT", "LOAD", body]), bulk(&sha1(body)));
    let sha = sha1(body);
    for (key, port) in key_per_master(&env.cluster, "sc1") {
        assert_eq!(q(&mut c, &["EVALSHA", &sha, "1", &key, "v1"]), Value::Okay);
        assert_eq!(q(&mut c, &["GET", &key]), bulk("v1"));
        // Loaded on that master itself, not only somewhere.
        assert_eq!(env.cluster.cli(port, &["SCRIPT", "EXISTS", &sha]), "1");
    }
    assert_eq!(
        q(&mut c, &["SCRIPT", "EXISTS", &sha]),
        Value::Array(vec![Value::Int(1)])
    );
}

#[test]
fn a_script_exists_only_where_every_master_has_it() {
    let env = env();
    let one_master = env.cluster.masters()[0];
    let direct = "return 'sc2: loaded on one master, around slotgate'";
    let sha_direct = env.cluster.cli(one_master, &["SCRIPT", "LOAD", direct]);
    assert_eq!(sha_direct, sha1(direct));
    let everywhere = "return 'sc2: loaded through slotgate'";
    let mut s = raw(env.proxy.addr);
    let sha = bulk_of(&say(&mut s, &["SCRIPT", "LOAD", everywhere]));
    assert_reply(
        call(
            &mut s,
            &[
                b"SCRIPT",
                b"EXISTS",
                sha_direct.as_bytes(),
                &sha,
                &[b'f'; 40],
            ],
        ),
        b"*3\r\n:0\r\n:1\r\n:0\r\n",
    );
    // slotgate never saw that script, so it cannot heal it on the other masters.
    let (elsewhere, _) = key_per_master(&env.cluster, "sc2")
        .into_iter()
        .find(|&(_, port)| port != one_master)
        .unwrap();
    assert_reply(
        say(&mut s, &["EVALSHA", &sha_direct, "1", &elsewhere]),
        NOSCRIPT,
    );
}

#[test]
fn eval_routes_by_its_keys() {
    let mut c = env().proxy.client();
    let set = "return redis.call('SET', KEYS[1], ARGV[1])";
    for (key, _) in key_per_master(&env().cluster, "sc3") {
        assert_eq!(q(&mut c, &["EVAL", set, "1", &key, "x"]), Value::Okay);
        assert_eq!(q(&mut c, &["GET", &key]), bulk("x"));
    }
    let both = "return redis.call('MSET', KEYS[1], 'a', KEYS[2], 'b')";
    assert_eq!(
        q(&mut c, &["EVAL", both, "2", "{sc3}a", "{sc3}b"]),
        Value::Okay
    );
    // No keys: any master runs it.
    assert_eq!(q(&mut c, &["EVAL", "return 7", "0"]), Value::Int(7));
    assert_eq!(
        q(&mut c, &["EVAL_RO", "return ARGV[1]", "0", "r"]),
        bulk("r")
    );
    assert_ne!(Slot::for_key(b"sc3:a"), Slot::for_key(b"sc3:b"));
    let mut s = raw(env().proxy.addr);
    assert_reply(
        say(&mut s, &["EVAL", both, "2", "sc3:a", "sc3:b"]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    );
}

#[test]
fn a_sha_never_loaded_gets_redis_own_noscript() {
    let mut s = raw(env().proxy.addr);
    let never = "f".repeat(40);
    assert_reply(say(&mut s, &["EVALSHA", &never, "0"]), NOSCRIPT);
    assert_reply(say(&mut s, &["EVALSHA", &never, "1", "sc4:k"]), NOSCRIPT);
    assert_reply(say(&mut s, &["EVALSHA_RO", "abc", "1", "sc4:k"]), NOSCRIPT);
}

#[test]
fn subcommands_and_arguments_are_refused_in_redis_words() {
    let mut s = raw(env().proxy.addr);
    for (words, want) in [
        (
            &["SCRIPT"][..],
            &b"-ERR wrong number of arguments for 'script' command\r\n"[..],
        ),
        (
            &["SCRIPT", "FOO"],
            b"-ERR unknown subcommand 'FOO'. Try SCRIPT HELP.\r\n",
        ),
        (
            &["script", "load"],
            b"-ERR wrong number of arguments for 'script|load' command\r\n",
        ),
        (
            &["SCRIPT", "EXISTS"],
            b"-ERR wrong number of arguments for 'script|exists' command\r\n",
        ),
        (
            &["SCRIPT", "FLUSH", "X"],
            b"-ERR SCRIPT FLUSH only support SYNC|ASYNC option\r\n",
        ),
        (&["SCRIPT", "KILL"], NOTBUSY),
        (
            &["FUNCTION", "FOO"],
            b"-ERR unknown subcommand 'FOO'. Try FUNCTION HELP.\r\n",
        ),
        (
            &["FUNCTION", "LOAD"],
            b"-ERR wrong number of arguments for 'function|load' command\r\n",
        ),
        (&["FUNCTION", "LOAD", "x"], b"-ERR Missing library metadata\r\n"),
        (
            &["FUNCTION", "FLUSH", "x"],
            b"-ERR FUNCTION FLUSH only supports SYNC|ASYNC option\r\n",
        ),
        (&["FUNCTION", "LIST", "foo"], b"-ERR Unknown argument foo\r\n"),
        (
            &["FUNCTION", "RESTORE", "bad"],
            b"-ERR DUMP payload version or checksum are wrong\r\n",
        ),
        (
            &["FUNCTION", "RESTORE", "bad", "x"],
            b"-ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.\r\n",
        ),
        (&["FUNCTION", "DELETE", "sc5-nope"], b"-ERR Library not found\r\n"),
        (&["FUNCTION", "KILL"], NOTBUSY),
        (&["FCALL", "sc5-nope", "0"], b"-ERR Function not found\r\n"),
    ] {
        let got = say(&mut s, words);
        assert_eq!(text(&got), text(want), "{words:?}");
    }
    let debug = text(&say(&mut s, &["SCRIPT", "DEBUG", "YES"]));
    assert!(
        debug.starts_with("-ERR 'SCRIPT DEBUG' is not supported by slotgate"),
        "{debug}"
    );
}

#[test]
fn functions_load_run_list_and_delete_on_every_master() {
    let env = env();
    let lib = "#!lua name=sc6\n\
        redis.register_function('sc6_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)\n\
        redis.register_function{function_name='sc6_get', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}";
    let mut c = env.proxy.client();
    let mut s = raw(env.proxy.addr);
    assert_eq!(q(&mut c, &["FUNCTION", "LOAD", lib]), bulk("sc6"));
    assert_reply(
        say(&mut s, &["FUNCTION", "LOAD", lib]),
        b"-ERR Library 'sc6' already exists\r\n",
    );
    assert_eq!(
        q(&mut c, &["FUNCTION", "LOAD", "REPLACE", lib]),
        bulk("sc6")
    );
    let keys = key_per_master(&env.cluster, "sc6");
    for (key, port) in &keys {
        assert_eq!(q(&mut c, &["FCALL", "sc6_set", "1", key, "f"]), Value::Okay);
        assert_eq!(q(&mut c, &["FCALL_RO", "sc6_get", "1", key]), bulk("f"));
        let listed = env
            .cluster
            .cli(*port, &["FUNCTION", "LIST", "LIBRARYNAME", "sc6"]);
        assert!(listed.contains("sc6_set"), "{port}: {listed}");
    }
    let listed = format!(
        "{:?}",
        q(&mut c, &["FUNCTION", "LIST", "LIBRARYNAME", "sc6"])
    );
    assert!(
        listed.contains("sc6_set") && listed.contains("sc6_get"),
        "{listed}"
    );
    assert_eq!(q(&mut c, &["FUNCTION", "DELETE", "sc6"]), Value::Okay);
    assert_reply(
        say(&mut s, &["FCALL_RO", "sc6_get", "1", &keys[0].0]),
        b"-ERR Function not found\r\n",
    );
    assert_reply(
        say(&mut s, &["FUNCTION", "DELETE", "sc6"]),
        b"-ERR Library not found\r\n",
    );
    for (_, port) in &keys {
        let listed = env
            .cluster
            .cli(*port, &["FUNCTION", "LIST", "LIBRARYNAME", "sc6"]);
        assert_eq!(listed, "", "{port}");
    }
}

#[test]
fn a_resp3_client_gets_its_scripts_replies_in_resp3() {
    let mut s = raw(env().proxy.addr);
    assert!(say(&mut s, &["HELLO", "3"]).starts_with(b"%7\r\n"));
    let body = "redis.setresp(3); return redis.call('HGETALL', KEYS[1])";
    let sha = sha1(body);
    let loaded = say(&mut s, &["SCRIPT", "LOAD", body]);
    assert_reply(loaded, format!("$40\r\n{sha}\r\n").as_bytes());
    assert_reply(say(&mut s, &["DEL", "{sc7}h"]), b":0\r\n");
    assert_reply(say(&mut s, &["HSET", "{sc7}h", "f", "v"]), b":1\r\n");
    assert_reply(
        say(&mut s, &["EVALSHA", &sha, "1", "{sc7}h"]),
        b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n",
    );
    assert_reply(say(&mut s, &["EVAL", "return nil", "0"]), b"_\r\n");
    assert_reply(
        say(&mut s, &["SCRIPT", "EXISTS", &sha, &"f".repeat(40)]),
        b"*2\r\n:1\r\n:0\r\n",
    );
    assert_reply(say(&mut s, &["EVALSHA", &"f".repeat(40), "0"]), NOSCRIPT);
    assert!(say(&mut s, &["FUNCTION", "STATS"]).starts_with(b"%2\r\n$14\r\nrunning_script\r\n"));
}

// ---------------------------------------------------------------- on a cluster of their own

#[test]
fn an_evalsha_is_healed_on_a_master_that_lost_its_script() {
    let own = own();
    let (cluster, proxy) = (&own.cluster, &own.proxy);
    let mut c = proxy.client();
    let before = heals(proxy);
    let body = "return redis.call('INCR', KEYS[1])";
    let sha = sha1(body);
    assert_eq!(q(&mut c, &["SCRIPT", "LOAD", body]), bulk(&sha));
    let keys = key_per_master(cluster, "heal1");
    for (key, _) in &keys {
        q(&mut c, &["DEL", key]);
        assert_eq!(q(&mut c, &["EVALSHA", &sha, "1", key]), Value::Int(1));
    }
    // A failover or a restart leaves a master without the script; so does a flush on it alone.
    for (_, port) in &keys {
        assert_eq!(cluster.cli(*port, &["SCRIPT", "FLUSH"]), "OK");
    }
    for (key, port) in &keys {
        assert_eq!(q(&mut c, &["EVALSHA", &sha, "1", key]), Value::Int(2));
        assert_eq!(cluster.cli(*port, &["SCRIPT", "EXISTS", &sha]), "1");
    }
    assert_eq!(heals(proxy) - before, keys.len() as f64);

    // A script slotgate saw in an EVAL heals the same way, in RESP3 too.
    let evald = "return 'evald ' .. redis.call('GET', KEYS[1])";
    let (key, port) = &keys[0];
    let mut s = raw(proxy.addr);
    assert!(say(&mut s, &["HELLO", "3"]).starts_with(b"%7\r\n"));
    assert_reply(
        say(&mut s, &["EVAL", evald, "1", key]),
        b"$7\r\nevald 2\r\n",
    );
    assert_eq!(cluster.cli(*port, &["SCRIPT", "FLUSH", "ASYNC"]), "OK");
    assert_reply(
        say(&mut s, &["EVALSHA_RO", &sha1(evald), "1", key]),
        b"$7\r\nevald 2\r\n",
    );

    // Keyless, it runs on whichever master the client's keyless commands go to.
    let keyless = "return 'anywhere'";
    assert_eq!(q(&mut c, &["EVAL", keyless, "0"]), bulk("anywhere"));
    for (_, port) in &keys {
        cluster.cli(*port, &["SCRIPT", "FLUSH"]);
    }
    assert_eq!(
        q(&mut c, &["EVALSHA", &sha1(keyless).to_uppercase(), "0"]),
        bulk("anywhere")
    );
}

#[test]
fn script_flush_through_slotgate_forgets_what_it_would_heal_with() {
    let own = own();
    let (cluster, proxy) = (&own.cluster, &own.proxy);
    let mut s = raw(proxy.addr);
    let body = "return 'flushed'";
    let sha = bulk_of(&say(&mut s, &["SCRIPT", "LOAD", body]));
    let (key, port) = key_per_master(cluster, "heal2").remove(0);
    // A flush the masters refuse changes nothing.
    assert_reply(
        say(&mut s, &["SCRIPT", "FLUSH", "BOTH"]),
        b"-ERR SCRIPT FLUSH only support SYNC|ASYNC option\r\n",
    );
    cluster.cli(port, &["SCRIPT", "FLUSH"]);
    assert_reply(
        call(&mut s, &[b"EVALSHA", &sha, b"1", key.as_bytes()]),
        b"$7\r\nflushed\r\n",
    );
    assert_reply(say(&mut s, &["SCRIPT", "FLUSH", "ASYNC"]), b"+OK\r\n");
    assert_reply(call(&mut s, &[b"SCRIPT", b"EXISTS", &sha]), b"*1\r\n:0\r\n");
    assert_reply(
        call(&mut s, &[b"EVALSHA", &sha, b"1", key.as_bytes()]),
        NOSCRIPT,
    );
}

#[test]
fn functions_dump_and_restore_on_every_master() {
    let own = own();
    let (cluster, proxy) = (&own.cluster, &own.proxy);
    let mut s = raw(proxy.addr);
    let lib = "#!lua name=fn1\nredis.register_function('fn1_echo', function(keys, args) return keys[1] end)";
    assert_reply(say(&mut s, &["FUNCTION", "FLUSH"]), b"+OK\r\n");
    assert_reply(say(&mut s, &["FUNCTION", "LOAD", lib]), b"$3\r\nfn1\r\n");
    let payload = bulk_of(&say(&mut s, &["FUNCTION", "DUMP"]));
    assert_reply(say(&mut s, &["FUNCTION", "FLUSH", "SYNC"]), b"+OK\r\n");
    let keys = key_per_master(cluster, "fn1");
    assert_reply(
        say(&mut s, &["FCALL", "fn1_echo", "1", &keys[0].0]),
        b"-ERR Function not found\r\n",
    );
    assert_reply(
        call(&mut s, &[b"FUNCTION", b"RESTORE", &payload]),
        b"+OK\r\n",
    );
    for (key, port) in &keys {
        let want = format!("${}\r\n{key}\r\n", key.len());
        assert_reply(
            say(&mut s, &["FCALL", "fn1_echo", "1", key]),
            want.as_bytes(),
        );
        assert!(cluster
            .cli(*port, &["FUNCTION", "LIST"])
            .contains("fn1_echo"));
    }
    assert_reply(
        call(&mut s, &[b"FUNCTION", b"RESTORE", &payload]),
        b"-ERR Library fn1 already exists\r\n",
    );
    assert_reply(
        call(&mut s, &[b"FUNCTION", b"RESTORE", &payload, b"REPLACE"]),
        b"+OK\r\n",
    );
    assert_reply(say(&mut s, &["FUNCTION", "DELETE", "fn1"]), b"+OK\r\n");
}

/// Runs `words` on a client of its own, in a thread: it blocks until killed.
fn busy(proxy: &Proxy, words: &'static [&'static str]) -> std::thread::JoinHandle<Vec<u8>> {
    let mut s = raw(proxy.addr);
    std::thread::spawn(move || say(&mut s, words))
}

/// Sends `words` until a master answers `+OK` rather than NOTBUSY (the busy command may not
/// have started yet).
fn kill_until_ok(s: &mut TcpStream, words: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = say(s, words);
        if reply == b"+OK\r\n" {
            return;
        }
        assert!(
            reply.starts_with(b"-NOTBUSY") || reply.starts_with(b"-BUSY"),
            "{}",
            text(&reply)
        );
        assert!(Instant::now() < deadline, "{words:?}: {}", text(&reply));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills whatever still runs on every master when dropped, so that a failed test does not leave
/// a master busy for the tests after it.
struct Unbusy<'a>(&'a RedisCluster);

impl Drop for Unbusy<'_> {
    fn drop(&mut self) {
        for port in self.0.masters() {
            let _ = self.0.try_cli(port, &["SCRIPT", "KILL"]);
            let _ = self.0.try_cli(port, &["FUNCTION", "KILL"]);
        }
    }
}

#[test]
fn a_busy_script_or_function_is_killed_through_slotgate() {
    let own = own();
    let (cluster, proxy) = (&own.cluster, &own.proxy);
    for port in cluster.masters() {
        cluster.cli(port, &["CONFIG", "SET", "busy-reply-threshold", "100"]);
    }
    let _unbusy = Unbusy(cluster);
    let mut s = raw(proxy.addr);
    assert_reply(say(&mut s, &["SCRIPT", "KILL"]), NOTBUSY);

    let spinning = busy(proxy, &["EVAL", "while true do end", "0"]);
    kill_until_ok(&mut s, &["SCRIPT", "KILL"]);
    let killed = text(&spinning.join().unwrap());
    assert!(
        killed.starts_with("-ERR Script killed by user with SCRIPT KILL..."),
        "{killed}"
    );
    assert_reply(say(&mut s, &["SCRIPT", "KILL"]), NOTBUSY);

    let lib = "#!lua name=spin\nredis.register_function('spin', function() while true do end end)";
    assert_reply(
        say(&mut s, &["FUNCTION", "LOAD", "REPLACE", lib]),
        b"$4\r\nspin\r\n",
    );
    let spinning = busy(proxy, &["FCALL", "spin", "0"]);
    // FUNCTION STATS shows the master that runs it, whichever that is.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text(&say(&mut s, &["FUNCTION", "STATS"])).contains("$4\r\nspin\r\n") {
        assert!(
            Instant::now() < deadline,
            "FUNCTION STATS never showed spin"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_until_ok(&mut s, &["FUNCTION", "KILL"]);
    let killed = text(&spinning.join().unwrap());
    assert!(killed.starts_with("-ERR Script killed by user"), "{killed}");
    assert_reply(say(&mut s, &["FUNCTION", "KILL"]), NOTBUSY);
    assert_reply(say(&mut s, &["FUNCTION", "DELETE", "spin"]), b"+OK\r\n");
}
