//! The merge rules one kind at a time, on INFO texts shaped like redis-server 7.0.15's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::frontend::info::own::{Cpu, Process, Times};

fn stats() -> Stats {
    Stats {
        uptime: Duration::from_secs(2 * 86400 + 5),
        now: Duration::from_micros(1_700_000_000_123_456),
        tcp_port: 6380,
        connected_clients: 3,
        maxclients: 10_000,
        blocked_clients: 1,
        total_connections: 4,
        total_commands: 5,
        ops_per_sec: 6,
        rejected_connections: 7,
        cpu: Cpu {
            process: Times {
                user: Duration::from_millis(1500),
                sys: Duration::from_millis(250),
            },
            main_thread: Times::default(),
        },
        process: Arc::new(Process {
            run_id: "a".repeat(40),
            replication_id: "b".repeat(40),
            executable: "/usr/bin/slotgate".to_owned(),
            config_file: String::new(),
        }),
    }
}

fn info(words: &[&str], nodes: &[&str]) -> String {
    let args: Vec<Bytes> = words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    let parsed: Vec<NodeInfo> = nodes.iter().map(|t| NodeInfo::parse(t)).collect();
    render(Selection::parse(&args), &stats(), &parsed)
}

/// The value of `field` in an INFO text.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n")
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
}

const SERVER_A: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:cluster\r\n\
    os:Linux 6.1 x86_64\r\narch_bits:64\r\nprocess_id:111\r\nrun_id:ffff\r\n\
    tcp_port:7000\r\nuptime_in_seconds:9\r\nhz:10\r\nexecutable:/usr/bin/redis-server\r\n";
const SERVER_B: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:cluster\r\n\
    os:Linux 5.0 aarch64\r\narch_bits:32\r\nprocess_id:222\r\ntcp_port:7001\r\nhz:100\r\n\
    new_in_a_later_redis:yes\r\n";

#[test]
fn own_fields_are_slotgates() {
    let text = info(&["INFO", "server"], &[SERVER_A, SERVER_B]);
    assert_eq!(field(&text, "redis_version"), Some("7.0.0"));
    assert_eq!(field(&text, "redis_mode"), Some("standalone"));
    assert_eq!(
        field(&text, "process_id"),
        Some(std::process::id().to_string().as_str())
    );
    assert_eq!(field(&text, "run_id"), Some("a".repeat(40).as_str()));
    assert_eq!(field(&text, "tcp_port"), Some("6380"));
    assert_eq!(field(&text, "uptime_in_seconds"), Some("172805"));
    assert_eq!(field(&text, "uptime_in_days"), Some("2"));
    assert_eq!(field(&text, "server_time_usec"), Some("1700000000123456"));
    assert_eq!(field(&text, "executable"), Some("/usr/bin/slotgate"));
    assert_eq!(field(&text, "config_file"), Some(""));
    let clients = info(&["INFO", "clients"], &[]);
    assert_eq!(field(&clients, "connected_clients"), Some("3"));
    assert_eq!(field(&clients, "blocked_clients"), Some("1"));
    assert_eq!(field(&clients, "maxclients"), Some("10000"));
    let stats_section = info(&["INFO", "stats"], &[]);
    assert_eq!(field(&stats_section, "total_commands_processed"), Some("5"));
    assert_eq!(
        field(&stats_section, "instantaneous_ops_per_sec"),
        Some("6")
    );
    assert_eq!(field(&stats_section, "rejected_connections"), Some("7"));
    let cpu = info(&["INFO", "cpu"], &["# CPU\r\nused_cpu_sys:99.000000\r\n"]);
    assert_eq!(
        cpu,
        "# CPU\r\nused_cpu_sys:0.250000\r\nused_cpu_user:1.500000\r\n\
         used_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n\
         used_cpu_sys_main_thread:0.000000\r\nused_cpu_user_main_thread:0.000000\r\n"
    );
}

#[test]
fn first_masters_value_where_nodes_are_alike() {
    let text = info(&["INFO", "server"], &[SERVER_A, SERVER_B]);
    assert_eq!(field(&text, "os"), Some("Linux 6.1 x86_64"));
    assert_eq!(field(&text, "arch_bits"), Some("64"));
    assert_eq!(field(&text, "hz"), Some("10"));
    // A field slotgate does not list follows, from the first master that has it.
    assert!(text.ends_with("new_in_a_later_redis:yes\r\n"), "{text}");
    // Fields no master reported are left out rather than made up.
    assert_eq!(field(&text, "gcc_version"), None);
}

#[test]
fn a_standalone_master_with_no_replicas() {
    let node = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
        slave0:ip=127.0.0.1,port=7003,state=online,offset=98,lag=0\r\n\
        master_failover_state:no-failover\r\nmaster_replid:cccc\r\n\
        master_repl_offset:98\r\nrepl_backlog_active:1\r\nrepl_backlog_size:1048576\r\n";
    let text = info(&["INFO", "replication"], &[node]);
    let expected = format!(
        "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\
         master_failover_state:no-failover\r\nmaster_replid:{}\r\n\
         master_replid2:0000000000000000000000000000000000000000\r\n\
         master_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\n\
         repl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\n\
         repl_backlog_histlen:0\r\n",
        "b".repeat(40)
    );
    assert_eq!(text, expected);
    let cluster = info(
        &["INFO", "cluster"],
        &["# Cluster\r\ncluster_enabled:1\r\n"],
    );
    assert_eq!(cluster, "# Cluster\r\ncluster_enabled:0\r\n");
    let clients = info(
        &["INFO", "clients"],
        &["# Clients\r\ncluster_connections:4\r\n"],
    );
    assert_eq!(field(&clients, "cluster_connections"), Some("0"));
}

const MEMORY_A: &str = "# Memory\r\nused_memory:1000000\r\nused_memory_human:976.56K\r\n\
    used_memory_rss:4000000\r\nused_memory_peak:2000000\r\nused_memory_overhead:900000\r\n\
    used_memory_startup:800000\r\nused_memory_dataset:100000\r\nallocator_allocated:1100000\r\n\
    allocator_active:1300000\r\ntotal_system_memory:25276203008\r\nmaxmemory:0\r\n\
    maxmemory_policy:noeviction\r\nmem_fragmentation_ratio:4.00\r\n";
const MEMORY_B: &str = "# Memory\r\nused_memory:3000000\r\nused_memory_rss:6000000\r\n\
    used_memory_peak:3000000\r\nused_memory_overhead:1000000\r\nused_memory_startup:800000\r\n\
    used_memory_dataset:2000000\r\nallocator_allocated:3000000\r\nallocator_active:3100000\r\n\
    total_system_memory:1024\r\nmaxmemory:104857600\r\nmaxmemory_policy:allkeys-lru\r\n";

#[test]
fn memory_is_summed_and_its_derived_fields_computed_again() {
    let text = info(&["INFO", "memory"], &[MEMORY_A, MEMORY_B]);
    assert_eq!(field(&text, "used_memory"), Some("4000000"));
    assert_eq!(field(&text, "used_memory_human"), Some("3.81M"));
    assert_eq!(field(&text, "used_memory_rss"), Some("10000000"));
    assert_eq!(field(&text, "used_memory_rss_human"), Some("9.54M"));
    assert_eq!(field(&text, "used_memory_peak"), Some("5000000"));
    assert_eq!(field(&text, "used_memory_peak_perc"), Some("80.00%"));
    // 2100000 of the 4000000 - 1600000 used beyond start-up.
    assert_eq!(field(&text, "used_memory_dataset_perc"), Some("87.50%"));
    assert_eq!(field(&text, "allocator_frag_ratio"), Some("1.07"));
    assert_eq!(field(&text, "mem_fragmentation_ratio"), Some("2.50"));
    assert_eq!(field(&text, "total_system_memory"), Some("25276203008"));
    assert_eq!(field(&text, "total_system_memory_human"), Some("23.54G"));
    assert_eq!(field(&text, "maxmemory_policy"), Some("noeviction"));
}

#[test]
fn a_limit_is_none_when_any_master_has_none() {
    let text = info(&["INFO", "memory"], &[MEMORY_A, MEMORY_B]);
    assert_eq!(field(&text, "maxmemory"), Some("0"));
    assert_eq!(field(&text, "maxmemory_human"), Some("0B"));
    let limited = MEMORY_A.replace("maxmemory:0", "maxmemory:104857600");
    let text = info(&["INFO", "memory"], &[&limited, MEMORY_B]);
    assert_eq!(field(&text, "maxmemory"), Some("209715200"));
    assert_eq!(field(&text, "maxmemory_human"), Some("200.00M"));
}

#[test]
fn counters_sum_in_the_masters_format_and_flags_take_the_largest() {
    let a = "# Stats\r\nexpired_keys:3\r\nkeyspace_hits:10\r\ninstantaneous_input_kbps:0.50\r\n\
             latest_fork_usec:120\r\n";
    let b = "# Stats\r\nexpired_keys:4\r\nkeyspace_hits:1\r\ninstantaneous_input_kbps:1.25\r\n\
             latest_fork_usec:900\r\n";
    let text = info(&["INFO", "stats"], &[a, b]);
    assert_eq!(field(&text, "expired_keys"), Some("7"));
    assert_eq!(field(&text, "keyspace_hits"), Some("11"));
    assert_eq!(field(&text, "instantaneous_input_kbps"), Some("1.75"));
    assert_eq!(field(&text, "latest_fork_usec"), Some("900"));
    let a = "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:5\r\n";
    let b = "# Persistence\r\nloading:1\r\nrdb_changes_since_last_save:6\r\n";
    let text = info(&["INFO", "persistence"], &[a, b]);
    assert_eq!(field(&text, "loading"), Some("1"));
    assert_eq!(field(&text, "rdb_changes_since_last_save"), Some("11"));
}

#[test]
fn a_status_is_the_worst_any_master_reports() {
    let ok = "# Persistence\r\nrdb_last_bgsave_status:ok\r\naof_last_write_status:ok\r\n";
    let err = "# Persistence\r\nrdb_last_bgsave_status:err\r\naof_last_write_status:ok\r\n";
    let text = info(&["INFO", "persistence"], &[ok, err]);
    assert_eq!(field(&text, "rdb_last_bgsave_status"), Some("err"));
    assert_eq!(field(&text, "aof_last_write_status"), Some("ok"));
}

#[test]
fn command_and_error_stats_add_up_per_command() {
    let a = "# Commandstats\r\n\
             cmdstat_get:calls=2,usec=13,usec_per_call=6.50,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_hget:calls=1,usec=7,usec_per_call=7.00,rejected_calls=0,failed_calls=1\r\n";
    let b = "# Commandstats\r\n\
             cmdstat_set:calls=1,usec=5,usec_per_call=5.00,rejected_calls=1,failed_calls=0\r\n\
             cmdstat_get:calls=1,usec=2,usec_per_call=2.00,rejected_calls=1,failed_calls=0\r\n";
    let text = info(&["INFO", "commandstats"], &[a, b]);
    assert_eq!(
        text,
        "# Commandstats\r\n\
         cmdstat_get:calls=3,usec=15,usec_per_call=5.00,rejected_calls=1,failed_calls=0\r\n\
         cmdstat_hget:calls=1,usec=7,usec_per_call=7.00,rejected_calls=0,failed_calls=1\r\n\
         cmdstat_set:calls=1,usec=5,usec_per_call=5.00,rejected_calls=1,failed_calls=0\r\n"
    );
    let text = info(
        &["INFO", "errorstats"],
        &[
            "# Errorstats\r\nerrorstat_ERR:count=2\r\n",
            "# Errorstats\r\nerrorstat_WRONGTYPE:count=1\r\nerrorstat_ERR:count=1\r\n",
        ],
    );
    assert_eq!(
        text,
        "# Errorstats\r\nerrorstat_ERR:count=3\r\nerrorstat_WRONGTYPE:count=1\r\n"
    );
}

#[test]
fn latency_percentiles_are_the_worst_masters() {
    let a = "# Latencystats\r\nlatency_percentiles_usec_get:p50=6.015,p99=7.007,p99.9=7.007\r\n";
    let b = "# Latencystats\r\nlatency_percentiles_usec_get:p50=5.001,p99=11.007,p99.9=11.007\r\n";
    let text = info(&["INFO", "latencystats"], &[a, b]);
    assert_eq!(
        text,
        "# Latencystats\r\nlatency_percentiles_usec_get:p50=6.015,p99=11.007,p99.9=11.007\r\n"
    );
}

#[test]
fn the_keyspace_is_summed_and_empty_without_keys() {
    let text = info(
        &["INFO", "keyspace"],
        &[
            "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=100\r\n",
            "# Keyspace\r\n",
            "# Keyspace\r\ndb0:keys=5,expires=2,avg_ttl=300\r\n",
        ],
    );
    assert_eq!(text, "# Keyspace\r\ndb0:keys=15,expires=4,avg_ttl=200\r\n");
    assert_eq!(
        info(&["INFO", "keyspace"], &["# Keyspace\r\n"]),
        "# Keyspace\r\n"
    );
}

#[test]
fn sections_follow_redis_layout_and_module_sections_come_last() {
    let node =
        "# Modules\r\nmodule:name=search,ver=1\r\n\r\n# Cluster\r\ncluster_enabled:1\r\n\r\n\
                # Search\r\nsearch_indexes:2\r\n";
    let text = info(&["INFO", "cluster", "modules", "search"], &[node]);
    assert_eq!(
        text,
        "# Modules\r\nmodule:name=search,ver=1\r\n\r\n# Cluster\r\ncluster_enabled:0\r\n\r\n\
         # Search\r\nsearch_indexes:2\r\n"
    );
    assert_eq!(info(&["INFO", "bogus"], &[""]), "");
}

#[test]
fn without_any_master_only_slotgates_own_fields_remain() {
    let text = info(&["INFO"], &[]);
    for present in [
        "redis_mode:standalone",
        "connected_clients:3",
        "role:master",
        "cluster_enabled:0",
        "used_cpu_user:1.500000",
    ] {
        assert!(text.contains(present), "{present}: {text}");
    }
    assert_eq!(field(&text, "used_memory"), None);
    assert!(text.contains("# Memory\r\n\r\n# Persistence"), "{text}");
}

#[test]
fn node_text_parses_in_both_line_endings() {
    let parsed = NodeInfo::parse("# Server\nos:Linux\n\n# Clients\r\nconnected_clients:1\r\n");
    assert_eq!(parsed.section("Server"), &[("os", "Linux")]);
    assert_eq!(parsed.section("Clients"), &[("connected_clients", "1")]);
    assert!(parsed.section("Memory").is_empty());
}

/// Every field a real server prints comes out of slotgate, from one master like it.
#[test]
fn every_field_of_redis_70_is_printed() {
    let node = include_str!("testdata/redis-7.0-info-everything.txt");
    let text = info(&["INFO", "everything"], &[node]);
    let titles = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("# "))
            .map(|l| l.trim_end().to_owned())
            .collect()
    };
    assert_eq!(titles(&text), titles(node));
    for line in node
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line.split_once(':').unwrap();
        let got = field(&text, name).unwrap_or_else(|| panic!("{name} is missing"));
        if name.starts_with("cmdstat_") || name.starts_with("latency_") || name == "db0" {
            assert_eq!(got, value, "{name}");
        }
    }
}
