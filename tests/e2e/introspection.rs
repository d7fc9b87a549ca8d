//! What tools and client libraries ask a server about itself: INFO, CONFIG GET, CLUSTER and
//! COMMAND. slotgate must look like one standalone Redis 7 server, with the cluster's figures
//! where they add up; each answer is checked against what a cluster node says itself.

use std::io::Write;
use std::time::{Duration, Instant};

use redis::Value;

use crate::raw::{connect, expect};
use crate::resp3::{ask, node_for, resp3_client, text};
use crate::{env, q, q_err};

/// A plain client straight to the node on `port`.
fn node_client(port: u16) -> redis::Connection {
    let con = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .expect("connect to a node");
    con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    con
}

fn any_master() -> u16 {
    env().cluster.masters()[0]
}

fn info_text(con: &mut redis::Connection, args: &[&str]) -> String {
    match q(con, args) {
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        other => panic!("{args:?}: {other:?}"),
    }
}

/// `name:value` lines of an INFO text, in order.
fn fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn field(text: &str, name: &str) -> Option<String> {
    fields(text)
        .into_iter()
        .find_map(|(n, v)| (n == name).then_some(v))
}

fn number(text: &str, name: &str) -> u64 {
    let value = field(text, name).unwrap_or_else(|| panic!("no {name} in {text}"));
    value.parse().unwrap_or_else(|_| panic!("{name}:{value}"))
}

fn titles(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .map(|t| t.trim_end().to_owned())
        .collect()
}

/// Every field a real node prints appears in slotgate's INFO, except the replicas' lines
/// (`slave0:...`): a standalone master with no replicas lists none.
#[test]
fn info_has_every_field_a_node_has() {
    let mut c = env().proxy.client();
    q(&mut c, &["SET", "intro:k", "1"]);
    let node = info_text(&mut node_client(any_master()), &["INFO", "everything"]);
    let ours = info_text(&mut c, &["INFO", "everything"]);
    assert_eq!(titles(&ours), titles(&node));
    let names: Vec<String> = fields(&ours).into_iter().map(|(n, _)| n).collect();
    let replica = |name: &str| {
        name.strip_prefix("slave")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut checked = 0;
    for (name, _) in fields(&node).into_iter().filter(|(n, _)| !replica(n)) {
        assert!(names.contains(&name), "slotgate's INFO lacks {name}");
        checked += 1;
    }
    assert!(checked > 200, "{checked}");
    assert!(fields(&node).iter().any(|(n, _)| replica(n)), "{node}");
    assert!(!names.iter().any(|n| replica(n)), "{ours}");
}

#[test]
fn info_describes_a_standalone_server() {
    let mut c = env().proxy.client();
    let text = info_text(&mut c, &["INFO"]);
    for (name, value) in [
        ("redis_version", "7.0.0"),
        ("redis_mode", "standalone"),
        ("role", "master"),
        ("connected_slaves", "0"),
        ("cluster_enabled", "0"),
        ("cluster_connections", "0"),
        ("used_cpu_sys_children", "0.000000"),
    ] {
        assert_eq!(field(&text, name).as_deref(), Some(value), "{name}");
    }
    // slotgate runs inside this test process.
    assert_eq!(number(&text, "process_id"), u64::from(std::process::id()));
    assert_eq!(
        number(&text, "tcp_port"),
        u64::from(env().proxy.addr.port())
    );
    assert!(number(&text, "connected_clients") >= 1);
    let run_id = field(&text, "run_id").unwrap();
    assert_eq!(run_id.len(), 40);
    assert!(run_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let again = info_text(&mut c, &["INFO", "server"]);
    assert_eq!(field(&again, "run_id"), Some(run_id), "made once at start");
    let node = info_text(&mut node_client(any_master()), &["INFO", "server"]);
    assert_eq!(field(&again, "os"), field(&node, "os"));
    assert_eq!(field(&again, "arch_bits"), field(&node, "arch_bits"));
}

/// Each master's used_memory, read before and after slotgate's sum: the nodes' memory moves a
/// little between the readings, and other tests write meanwhile.
#[test]
fn used_memory_is_the_masters_sum() {
    let masters = env().cluster.masters();
    let sum = || -> u64 {
        masters
            .iter()
            .map(|p| {
                number(
                    &info_text(&mut node_client(*p), &["INFO", "memory"]),
                    "used_memory",
                )
            })
            .sum()
    };
    let before = sum();
    let text = info_text(&mut env().proxy.client(), &["INFO", "memory"]);
    let after = sum();
    let ours = number(&text, "used_memory");
    let (low, high) = (before.min(after), before.max(after));
    let slack = high / 10;
    assert!(
        ours + slack >= low && ours <= high + slack,
        "used_memory {ours}, masters {before}..{after}"
    );
    let human = field(&text, "used_memory_human").unwrap();
    assert!(human.ends_with('M') || human.ends_with('K'), "{human}");
}

#[test]
fn info_sections_are_selected_as_by_a_node() {
    let mut c = env().proxy.client();
    let mut node = node_client(any_master());
    for args in [
        &["INFO"][..],
        &["INFO", "default"],
        &["INFO", "all"],
        &["INFO", "everything"],
        &["INFO", "server", "KEYSPACE"],
        &["INFO", "commandstats"],
        &["INFO", "cpu", "modules", "errorstats"],
    ] {
        assert_eq!(
            titles(&info_text(&mut c, args)),
            titles(&info_text(&mut node, args)),
            "{args:?}"
        );
    }
    assert_eq!(info_text(&mut c, &["INFO", "bogus"]), "");
    let cluster = info_text(&mut c, &["INFO", "cluster"]);
    assert_eq!(cluster, "# Cluster\r\ncluster_enabled:0\r\n");
}

#[test]
fn instantaneous_ops_per_sec_counts_slotgates_commands() {
    let mut s = connect();
    let pings = "PING\r\n".repeat(200);
    let start = Instant::now();
    let mut c = env().proxy.client();
    let mut seen = 0;
    while start.elapsed() < Duration::from_secs(10) {
        for _ in 0..5 {
            s.write_all(pings.as_bytes()).unwrap();
            for _ in 0..200 {
                expect(&mut s, b"+PONG\r\n");
            }
        }
        seen = number(
            &info_text(&mut c, &["INFO", "stats"]),
            "instantaneous_ops_per_sec",
        );
        if seen > 0 {
            break;
        }
    }
    assert!(seen > 0, "instantaneous_ops_per_sec stayed 0");
}

#[test]
fn blocked_clients_counts_a_client_in_blpop() {
    // A proxy of its own: on the shared one, other tests' blocked clients would count too.
    let proxy = crate::transactions::own_proxy(|_| {});
    let mut c = proxy.client();
    let blocked =
        |c: &mut redis::Connection| number(&info_text(c, &["INFO", "clients"]), "blocked_clients");
    assert_eq!(blocked(&mut c), 0);
    let mut blocker = proxy.client();
    let waiter = std::thread::spawn(move || q(&mut blocker, &["BLPOP", "intro:blocked", "20"]));
    let start = Instant::now();
    while blocked(&mut c) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "blocked_clients stayed 0"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(blocked(&mut c), 1);
    q(&mut c, &["RPUSH", "intro:blocked", "x"]);
    assert!(matches!(waiter.join().unwrap(), Value::Array(_)));
    assert_eq!(blocked(&mut c), 0, "unblocked");
}

#[test]
fn info_in_resp3_is_a_verbatim_string() {
    let mut c = resp3_client();
    let reply = text(&ask(&mut c, "INFO server"));
    assert!(reply.starts_with('='), "{reply}");
    assert!(reply.contains("\r\ntxt:# Server\r\n"), "{reply}");
    assert!(reply.contains("redis_mode:standalone\r\n"), "{reply}");
}

/// A flat array of names and values, as sorted pairs.
fn pairs(reply: Value) -> Vec<(Value, Value)> {
    let Value::Array(flat) = reply else {
        panic!("{reply:?}")
    };
    let mut pairs: Vec<(Value, Value)> = flat
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    pairs.sort_by_key(|(name, _)| format!("{name:?}"));
    pairs
}

#[test]
fn config_get_is_a_masters_own_answer() {
    let mut c = env().proxy.client();
    let mut node = node_client(any_master());
    for args in [
        &["CONFIG", "GET", "maxmemory"][..],
        &["CONFIG", "GET", "maxmemory*", "hz"],
    ] {
        // Pairs come in the order of each node's own hash table.
        assert_eq!(
            pairs(q(&mut c, args)),
            pairs(q(&mut node, args)),
            "{args:?}"
        );
    }
    let Value::Array(pair) = q(&mut c, &["CONFIG", "GET", "maxmemory"]) else {
        panic!("CONFIG GET reply")
    };
    assert_eq!(pair[0], Value::BulkString(b"maxmemory".to_vec()));
    let help = q(&mut c, &["CONFIG", "HELP"]);
    assert!(
        matches!(help, Value::Array(ref lines) if lines.len() > 5),
        "{help:?}"
    );

    // RESP3: the node's own map.
    let mut c3 = resp3_client();
    let mut node3 = node_for("any");
    let via = ask(&mut c3, "CONFIG GET maxmemory");
    assert!(via.starts_with(b"%1\r\n"), "{}", text(&via));
    assert_eq!(text(&via), text(&ask(&mut node3, "CONFIG GET maxmemory")));
}

#[test]
fn config_changes_are_refused() {
    let mut s = connect();
    for (command, name) in [
        ("CONFIG SET maxmemory 1", "CONFIG SET"),
        ("config rewrite", "CONFIG REWRITE"),
        ("CONFIG RESETSTAT", "CONFIG RESETSTAT"),
    ] {
        s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let line = format!(
            "-ERR '{name}' is not supported by slotgate (a proxy cannot change every node \
             consistently; configure the nodes directly)\r\n"
        );
        expect(&mut s, line.as_bytes());
    }
    let mut c = env().proxy.client();
    assert!(q_err(&mut c, &["CONFIG", "SET", "maxmemory"]).contains("wrong number of arguments"));
    let Value::Array(pair) = q(&mut c, &["CONFIG", "GET", "maxmemory"]) else {
        panic!("CONFIG GET reply")
    };
    assert_eq!(
        pair.len(),
        2,
        "the refused SET changed nothing it could see"
    );
}

/// The texts of redis-server 7.0.15 started without `cluster-enabled`.
#[test]
fn cluster_is_refused_as_by_a_standalone_server() {
    let mut s = connect();
    for command in [
        "CLUSTER INFO",
        "CLUSTER SLOTS",
        "CLUSTER SHARDS",
        "CLUSTER NODES",
        "CLUSTER MYID",
        "CLUSTER LINKS",
        "CLUSTER HELP",
        "CLUSTER COUNTKEYSINSLOT 1",
        "CLUSTER GETKEYSINSLOT 1 1",
        "CLUSTER RESET",
    ] {
        s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        expect(
            &mut s,
            b"-ERR This instance has cluster support disabled\r\n",
        );
    }
    s.write_all(b"CLUSTER bogus\r\n").unwrap();
    expect(
        &mut s,
        b"-ERR unknown subcommand 'bogus'. Try CLUSTER HELP.\r\n",
    );
    s.write_all(b"CLUSTER INFO x\r\n").unwrap();
    expect(
        &mut s,
        b"-ERR wrong number of arguments for 'cluster|info' command\r\n",
    );
}

#[test]
fn cluster_keyslot_matches_a_node() {
    let mut c = env().proxy.client();
    let mut node = node_client(any_master());
    for key in ["foo", "{user1000}.following", "a{b}c", "{}x", ""] {
        let args = ["CLUSTER", "KEYSLOT", key];
        assert_eq!(q(&mut c, &args), q(&mut node, &args), "{key:?}");
    }
}

#[test]
fn command_introspection_is_a_nodes_own() {
    let mut c = env().proxy.client();
    let mut node = node_client(any_master());
    for args in [
        &["COMMAND", "COUNT"][..],
        &["COMMAND", "INFO", "get", "mset", "nosuchcommand"],
        &["COMMAND", "DOCS", "get"],
        &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"],
        &[
            "COMMAND", "GETKEYS", "EVAL", "return 1", "2", "k1", "k2", "arg",
        ],
    ] {
        assert_eq!(q(&mut c, args), q(&mut node, args), "{args:?}");
    }
    // In the order of each node's own hash table.
    let sorted = |reply: Value| {
        let Value::Array(mut names) = reply else {
            panic!("{reply:?}")
        };
        names.sort_by_key(|n| format!("{n:?}"));
        names
    };
    let list = ["COMMAND", "LIST", "FILTERBY", "PATTERN", "cl*"];
    assert_eq!(sorted(q(&mut c, &list)), sorted(q(&mut node, &list)));
    for args in [
        &["COMMAND", "GETKEYS", "PING"][..],
        &["COMMAND", "GETKEYS", "NOSUCHCOMMAND", "x"],
        &["COMMAND", "BOGUS"],
    ] {
        assert_eq!(q_err(&mut c, args), q_err(&mut node, args), "{args:?}");
    }
    let Value::Int(count) = q(&mut c, &["COMMAND", "COUNT"]) else {
        panic!("COMMAND COUNT reply")
    };
    let Value::Array(all) = q(&mut c, &["COMMAND"]) else {
        panic!("COMMAND reply")
    };
    assert_eq!(all.len() as i64, count);
}
