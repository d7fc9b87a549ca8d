//! The one place that says where each INFO field's value comes from. Every master is asked the
//! same `INFO`; their fields are then merged one by one by the rule listed here. Fields describing
//! the server a client talks to are slotgate's own; amounts that add up across the cluster (memory,
//! keys, hits) are summed; what every node has alike (the OS, the allocator) is the first master's.
//!
//! The named fields are redis-server 7.0.15's `INFO everything`, in its order. A field a newer
//! server adds follows its section's list with the first master's value, except in the sections
//! slotgate makes whole (Replication, CPU, Cluster).

use super::own::Own;
use super::select::Section;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// slotgate's own value.
    Own(Own),
    /// What a standalone server with no replicas reports.
    Fixed(&'static str),
    /// The first master's value: alike on every node, or meaningful only per node.
    First,
    /// Summed over the masters, in the format the first one used (`0` or `0.00`).
    Sum,
    /// The largest of the masters' values: a flag that any node may raise, a worst case.
    Max,
    /// A limit where 0 means none: summed, or 0 if any master has none.
    Limit,
    /// A status: the first master's that is not `ok`, else `ok`.
    Worst,
    /// Redis' human form (`1.23M`) of another field of the section, after merging.
    Human(&'static str),
    /// One merged field divided by another, as `%.2f`.
    Ratio(&'static str, &'static str),
    /// One merged field as a percentage of another, as `%.2f%%`.
    Percent(&'static str, &'static str),
    /// `used_memory_dataset` as a percentage of the memory used beyond start-up.
    DatasetPercent,
}

/// How a section's lines are merged.
#[derive(Clone, Copy, Debug)]
pub enum Lines {
    /// Named fields, each with its rule. `open`: fields the masters report beyond these follow,
    /// from the first master that has them.
    Fields {
        fields: &'static [(&'static str, Rule)],
        open: bool,
    },
    /// `name:a=1,b=2` lines, each sub-field summed over the masters and `usec_per_call`
    /// computed again from the sums (commandstats, errorstats).
    SumEach,
    /// `name:p50=1.0,p99=2.0` lines, each sub-field the largest over the masters: a latency
    /// percentile of the cluster is at most the worst node's.
    MaxEach,
    /// `db0:keys=..,expires=..,avg_ttl=..`, summed (a cluster has only database 0).
    Keyspace,
    /// Every line the masters print, the first master's value for each name (module lists).
    FirstEach,
}

pub fn lines(section: Section) -> Lines {
    let (fields, open) = match section {
        Section::Server => (SERVER, true),
        Section::Clients => (CLIENTS, true),
        Section::Memory => (MEMORY, true),
        Section::Persistence => (PERSISTENCE, true),
        Section::Stats => (STATS, true),
        // A standalone master with no replicas: the cluster's replicas (`slave0:...`) and
        // replication offsets are the nodes' business, not the client's.
        Section::Replication => (REPLICATION, false),
        Section::Cpu => (CPU, false),
        Section::Cluster => (CLUSTER, false),
        Section::Modules => return Lines::FirstEach,
        Section::Commandstats | Section::Errorstats => return Lines::SumEach,
        Section::Latencystats => return Lines::MaxEach,
        Section::Keyspace => return Lines::Keyspace,
    };
    Lines::Fields { fields, open }
}

use Rule::{DatasetPercent, First, Fixed, Human, Limit, Max, Own as O, Percent, Ratio, Sum, Worst};

const SERVER: &[(&str, Rule)] = &[
    ("redis_version", O(Own::RedisVersion)),
    ("slotgate_version", O(Own::SlotgateVersion)),
    ("redis_git_sha1", First),
    ("redis_git_dirty", First),
    ("redis_build_id", First),
    // Clients must not try cluster discovery through slotgate.
    ("redis_mode", Fixed("standalone")),
    ("os", First),
    ("arch_bits", First),
    ("monotonic_clock", First),
    ("multiplexing_api", First),
    ("atomicvar_api", First),
    ("gcc_version", First),
    ("process_id", O(Own::ProcessId)),
    ("process_supervised", Fixed("no")),
    ("run_id", O(Own::RunId)),
    ("tcp_port", O(Own::TcpPort)),
    ("server_time_usec", O(Own::ServerTimeUsec)),
    ("uptime_in_seconds", O(Own::UptimeSeconds)),
    ("uptime_in_days", O(Own::UptimeDays)),
    ("hz", First),
    ("configured_hz", First),
    ("lru_clock", First),
    ("executable", O(Own::Executable)),
    ("config_file", O(Own::ConfigFile)),
    ("io_threads_active", First),
];

const CLIENTS: &[(&str, Rule)] = &[
    ("connected_clients", O(Own::ConnectedClients)),
    ("cluster_connections", Fixed("0")),
    ("maxclients", O(Own::MaxClients)),
    ("client_recent_max_input_buffer", Max),
    ("client_recent_max_output_buffer", Max),
    ("blocked_clients", O(Own::BlockedClients)),
    // slotgate refuses CLIENT TRACKING.
    ("tracking_clients", Fixed("0")),
    // The masters' blocked connections with a timeout: slotgate's clients in BLPOP and the like.
    ("clients_in_timeout_table", Sum),
];

const MEMORY: &[(&str, Rule)] = &[
    ("used_memory", Sum),
    ("used_memory_human", Human("used_memory")),
    ("used_memory_rss", Sum),
    ("used_memory_rss_human", Human("used_memory_rss")),
    ("used_memory_peak", Sum),
    ("used_memory_peak_human", Human("used_memory_peak")),
    (
        "used_memory_peak_perc",
        Percent("used_memory", "used_memory_peak"),
    ),
    ("used_memory_overhead", Sum),
    ("used_memory_startup", Sum),
    ("used_memory_dataset", Sum),
    ("used_memory_dataset_perc", DatasetPercent),
    ("allocator_allocated", Sum),
    ("allocator_active", Sum),
    ("allocator_resident", Sum),
    ("total_system_memory", First),
    ("total_system_memory_human", Human("total_system_memory")),
    ("used_memory_lua", Sum),
    ("used_memory_vm_eval", Sum),
    ("used_memory_lua_human", Human("used_memory_lua")),
    ("used_memory_scripts_eval", Sum),
    ("number_of_cached_scripts", Sum),
    ("number_of_functions", Sum),
    ("number_of_libraries", Sum),
    ("used_memory_vm_functions", Sum),
    ("used_memory_vm_total", Sum),
    ("used_memory_vm_total_human", Human("used_memory_vm_total")),
    ("used_memory_functions", Sum),
    ("used_memory_scripts", Sum),
    ("used_memory_scripts_human", Human("used_memory_scripts")),
    ("maxmemory", Limit),
    ("maxmemory_human", Human("maxmemory")),
    ("maxmemory_policy", First),
    (
        "allocator_frag_ratio",
        Ratio("allocator_active", "allocator_allocated"),
    ),
    ("allocator_frag_bytes", Sum),
    (
        "allocator_rss_ratio",
        Ratio("allocator_resident", "allocator_active"),
    ),
    ("allocator_rss_bytes", Sum),
    (
        "rss_overhead_ratio",
        Ratio("used_memory_rss", "allocator_resident"),
    ),
    ("rss_overhead_bytes", Sum),
    (
        "mem_fragmentation_ratio",
        Ratio("used_memory_rss", "used_memory"),
    ),
    ("mem_fragmentation_bytes", Sum),
    ("mem_not_counted_for_evict", Sum),
    ("mem_replication_backlog", Sum),
    ("mem_total_replication_buffers", Sum),
    ("mem_clients_slaves", Sum),
    ("mem_clients_normal", Sum),
    ("mem_cluster_links", Sum),
    ("mem_aof_buffer", Sum),
    ("mem_allocator", First),
    ("active_defrag_running", Max),
    ("lazyfree_pending_objects", Sum),
    ("lazyfreed_objects", Sum),
];

const PERSISTENCE: &[(&str, Rule)] = &[
    ("loading", Max),
    ("async_loading", Max),
    ("current_cow_peak", Sum),
    ("current_cow_size", Sum),
    ("current_cow_size_age", Max),
    ("current_fork_perc", Max),
    ("current_save_keys_processed", Sum),
    ("current_save_keys_total", Sum),
    ("rdb_changes_since_last_save", Sum),
    ("rdb_bgsave_in_progress", Max),
    ("rdb_last_save_time", First),
    ("rdb_last_bgsave_status", Worst),
    ("rdb_last_bgsave_time_sec", First),
    ("rdb_current_bgsave_time_sec", Max),
    ("rdb_saves", Sum),
    ("rdb_last_cow_size", Sum),
    ("rdb_last_load_keys_expired", Sum),
    ("rdb_last_load_keys_loaded", Sum),
    ("aof_enabled", First),
    ("aof_rewrite_in_progress", Max),
    ("aof_rewrite_scheduled", Max),
    ("aof_last_rewrite_time_sec", First),
    ("aof_current_rewrite_time_sec", Max),
    ("aof_last_bgrewrite_status", Worst),
    ("aof_rewrites", Sum),
    ("aof_rewrites_consecutive_failures", Max),
    ("aof_last_write_status", Worst),
    ("aof_last_cow_size", Sum),
    ("module_fork_in_progress", Max),
    ("module_fork_last_cow_size", Sum),
];

const STATS: &[(&str, Rule)] = &[
    ("total_connections_received", O(Own::TotalConnections)),
    ("total_commands_processed", O(Own::TotalCommands)),
    ("instantaneous_ops_per_sec", O(Own::OpsPerSec)),
    ("total_net_input_bytes", Sum),
    ("total_net_output_bytes", Sum),
    ("total_net_repl_input_bytes", Sum),
    ("total_net_repl_output_bytes", Sum),
    ("instantaneous_input_kbps", Sum),
    ("instantaneous_output_kbps", Sum),
    ("instantaneous_input_repl_kbps", Sum),
    ("instantaneous_output_repl_kbps", Sum),
    ("rejected_connections", O(Own::RejectedConnections)),
    ("sync_full", Sum),
    ("sync_partial_ok", Sum),
    ("sync_partial_err", Sum),
    ("expired_keys", Sum),
    ("expired_stale_perc", Max),
    ("expired_time_cap_reached_count", Sum),
    ("expire_cycle_cpu_milliseconds", Sum),
    ("evicted_keys", Sum),
    ("evicted_clients", Sum),
    ("total_eviction_exceeded_time", Sum),
    ("current_eviction_exceeded_time", Max),
    ("keyspace_hits", Sum),
    ("keyspace_misses", Sum),
    ("pubsub_channels", Sum),
    ("pubsub_patterns", Sum),
    ("pubsubshard_channels", Sum),
    ("latest_fork_usec", Max),
    ("total_forks", Sum),
    ("migrate_cached_sockets", Sum),
    ("slave_expires_tracked_keys", Sum),
    ("active_defrag_hits", Sum),
    ("active_defrag_misses", Sum),
    ("active_defrag_key_hits", Sum),
    ("active_defrag_key_misses", Sum),
    ("total_active_defrag_time", Sum),
    ("current_active_defrag_time", Max),
    ("tracking_total_keys", Sum),
    ("tracking_total_items", Sum),
    ("tracking_total_prefixes", Sum),
    ("unexpected_error_replies", Sum),
    ("total_error_replies", Sum),
    ("dump_payload_sanitizations", Sum),
    ("total_reads_processed", Sum),
    ("total_writes_processed", Sum),
    ("io_threaded_reads_processed", Sum),
    ("io_threaded_writes_processed", Sum),
    ("reply_buffer_shrinks", Sum),
    ("reply_buffer_expands", Sum),
];

const REPLICATION: &[(&str, Rule)] = &[
    ("role", Fixed("master")),
    ("connected_slaves", Fixed("0")),
    ("master_failover_state", Fixed("no-failover")),
    ("master_replid", O(Own::ReplicationId)),
    (
        "master_replid2",
        Fixed("0000000000000000000000000000000000000000"),
    ),
    ("master_repl_offset", Fixed("0")),
    ("second_repl_offset", Fixed("-1")),
    ("repl_backlog_active", Fixed("0")),
    ("repl_backlog_size", First),
    ("repl_backlog_first_byte_offset", Fixed("0")),
    ("repl_backlog_histlen", Fixed("0")),
];

const CPU: &[(&str, Rule)] = &[
    ("used_cpu_sys", O(Own::CpuSys)),
    ("used_cpu_user", O(Own::CpuUser)),
    ("used_cpu_sys_children", Fixed("0.000000")),
    ("used_cpu_user_children", Fixed("0.000000")),
    ("used_cpu_sys_main_thread", O(Own::CpuSysMainThread)),
    ("used_cpu_user_main_thread", O(Own::CpuUserMainThread)),
];

const CLUSTER: &[(&str, Rule)] = &[("cluster_enabled", Fixed("0"))];

#[cfg(test)]
mod tests {
    use super::*;

    /// A derived field names fields listed before it in its own section, so they are merged
    /// by the time it is.
    #[test]
    fn derived_fields_refer_to_earlier_fields() {
        for section in Section::ALL {
            let Lines::Fields { fields, .. } = lines(section) else {
                continue;
            };
            for (at, (name, rule)) in fields.iter().enumerate() {
                let sources: &[&str] = match rule {
                    Human(a) => &[a],
                    Ratio(a, b) | Percent(a, b) => &[a, b],
                    DatasetPercent => {
                        &["used_memory", "used_memory_startup", "used_memory_dataset"]
                    }
                    _ => &[],
                };
                for source in sources {
                    assert!(
                        fields[..at].iter().any(|(n, _)| n == source),
                        "{name} needs {source} before it"
                    );
                }
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = Section::ALL
            .iter()
            .filter_map(|s| match lines(*s) {
                Lines::Fields { fields, .. } => Some(fields.iter().map(|(n, _)| *n)),
                _ => None,
            })
            .flatten()
            .collect();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total);
        assert!(total > 180, "{total}");
    }

    /// `INFO everything` of a standalone redis-server 7.0.15.
    const REDIS_70: &str = include_str!("testdata/redis-7.0-info-everything.txt");

    /// The listed fields are redis-server 7.0.15's own, in its order; slotgate adds only its
    /// version.
    #[test]
    fn fields_are_redis_70s_in_its_order() {
        let mut captured: Vec<(&str, Vec<&str>)> = Vec::new();
        for line in REDIS_70.lines() {
            match (line.strip_prefix("# "), captured.last_mut()) {
                (Some(title), _) => captured.push((title, Vec::new())),
                (None, Some((_, names))) => names.extend(line.split_once(':').map(|(n, _)| n)),
                (None, None) => {}
            }
        }
        let mut compared = 0;
        for section in Section::ALL {
            let Lines::Fields { fields, .. } = lines(section) else {
                continue;
            };
            let ours: Vec<&str> = fields
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| *n != "slotgate_version")
                .collect();
            let theirs = captured
                .iter()
                .find(|(t, _)| *t == section.title())
                .map(|(_, names)| names.clone())
                .unwrap_or_default();
            assert_eq!(ours, theirs, "{}", section.title());
            compared += ours.len();
        }
        assert!(compared > 180, "{compared}");
    }
}
