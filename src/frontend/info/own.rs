//! INFO fields that describe the server the client talks to, which is slotgate, not a node: its
//! process, its clients, the commands it answered.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::frontend::local::REDIS_VERSION;

/// A field whose value is slotgate's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Own {
    RedisVersion,
    SlotgateVersion,
    ProcessId,
    RunId,
    TcpPort,
    ServerTimeUsec,
    UptimeSeconds,
    UptimeDays,
    Executable,
    ConfigFile,
    ConnectedClients,
    MaxClients,
    BlockedClients,
    TotalConnections,
    TotalCommands,
    OpsPerSec,
    RejectedConnections,
    ReplicationId,
    CpuSys,
    CpuUser,
    CpuSysMainThread,
    CpuUserMainThread,
}

impl Own {
    pub fn value(self, s: &Stats) -> String {
        let p = &s.process;
        match self {
            Own::RedisVersion => REDIS_VERSION.to_owned(),
            Own::SlotgateVersion => env!("CARGO_PKG_VERSION").to_owned(),
            Own::ProcessId => std::process::id().to_string(),
            Own::RunId => p.run_id.clone(),
            Own::TcpPort => s.tcp_port.to_string(),
            Own::ServerTimeUsec => s.now.as_micros().to_string(),
            Own::UptimeSeconds => s.uptime.as_secs().to_string(),
            Own::UptimeDays => (s.uptime.as_secs() / 86400).to_string(),
            Own::Executable => p.executable.clone(),
            Own::ConfigFile => p.config_file.clone(),
            Own::ConnectedClients => s.connected_clients.to_string(),
            Own::MaxClients => s.maxclients.to_string(),
            Own::BlockedClients => s.blocked_clients.to_string(),
            Own::TotalConnections => s.total_connections.to_string(),
            Own::TotalCommands => s.total_commands.to_string(),
            Own::OpsPerSec => s.ops_per_sec.to_string(),
            Own::RejectedConnections => s.rejected_connections.to_string(),
            Own::ReplicationId => p.replication_id.clone(),
            Own::CpuSys => seconds(s.cpu.process.sys),
            Own::CpuUser => seconds(s.cpu.process.user),
            Own::CpuSysMainThread => seconds(s.cpu.main_thread.sys),
            Own::CpuUserMainThread => seconds(s.cpu.main_thread.user),
        }
    }
}

/// Redis prints CPU time from a `timeval`: `%ld.%06ld`.
fn seconds(d: Duration) -> String {
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// slotgate's own figures at the moment INFO was asked.
pub struct Stats {
    pub uptime: Duration,
    /// Since the Unix epoch.
    pub now: Duration,
    pub tcp_port: u16,
    pub connected_clients: i64,
    pub maxclients: usize,
    pub blocked_clients: i64,
    pub total_connections: u64,
    pub total_commands: u64,
    pub ops_per_sec: u64,
    pub rejected_connections: u64,
    pub cpu: Cpu,
    pub process: std::sync::Arc<Process>,
}

impl Stats {
    /// The wall clock, for `server_time_usec`.
    pub fn since_epoch() -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// What stays the same for the life of the process.
#[derive(Debug)]
pub struct Process {
    /// 40 random hex digits, as Redis makes one per start: tools tell a restart by it.
    pub run_id: String,
    /// The replication id of a master nobody replicates from; made like the run id.
    pub replication_id: String,
    pub executable: String,
    pub config_file: String,
}

impl Process {
    pub fn new() -> Process {
        Process {
            run_id: random_id(),
            replication_id: random_id(),
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            config_file: config_file(),
        }
    }
}

impl Default for Process {
    fn default() -> Self {
        Process::new()
    }
}

fn random_id() -> String {
    (0..40)
        .map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0'))
        .collect()
}

/// The config file slotgate was started with, made absolute as Redis prints it. `app::run` gets
/// the config already loaded, so the path is read again from the command line, with the same
/// parser; slotgate started in-process (tests) has none.
fn config_file() -> String {
    use clap::Parser;
    crate::cli::Cli::try_parse_from(std::env::args_os())
        .ok()
        .and_then(|cli| cli.config)
        .map(|path| std::fs::canonicalize(&path).unwrap_or(path))
        .map(|path| path.display().to_string())
        .unwrap_or_default()
}

/// CPU time spent in user and kernel mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Times {
    pub user: Duration,
    pub sys: Duration,
}

/// The process' CPU time and its main thread's, as Redis reports its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    pub process: Times,
    pub main_thread: Times,
}

impl Cpu {
    /// From `/proc`; zero where there is none (not Linux).
    pub fn read() -> Cpu {
        let stat = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| times(&text))
                .unwrap_or_default()
        };
        // The thread first: the process' time, read after, then includes all of it.
        let main_thread = stat(&format!("/proc/self/task/{}/stat", std::process::id()));
        Cpu {
            process: stat("/proc/self/stat"),
            main_thread,
        }
    }
}

/// Linux reports CPU time in clock ticks of `USER_HZ`, which is 100 on every architecture.
const TICKS_PER_SEC: u64 = 100;

/// `utime` and `stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name in
/// field 2 may hold spaces and parentheses, so fields are counted after its last `)`.
fn times(stat: &str) -> Option<Times> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let ticks = |f: Option<&str>| f?.parse::<u64>().ok();
    let user = ticks(fields.next())?;
    let sys = ticks(fields.next())?;
    let duration = |t: u64| Duration::from_millis(t * 1000 / TICKS_PER_SEC);
    Some(Times {
        user: duration(user),
        sys: duration(sys),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_come_from_proc_stat_ticks() {
        let line = "4242 (slot gate) (x)) S 1 4242 4242 0 -1 4194560 1510 0 0 0 \
                    1234 56 0 0 20 0 9 0 1000 0 0";
        assert_eq!(
            times(line),
            Some(Times {
                user: Duration::from_millis(12_340),
                sys: Duration::from_millis(560),
            })
        );
        assert_eq!(times("garbage"), None);
        assert_eq!(seconds(Duration::from_millis(12_340)), "12.340000");
        assert_eq!(seconds(Duration::ZERO), "0.000000");
    }

    #[test]
    fn run_ids_are_40_hex_digits_and_differ() {
        let (a, b) = (Process::new(), Process::new());
        assert_eq!(a.run_id.len(), 40);
        assert!(a.run_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a.run_id, b.run_id);
        assert_ne!(a.run_id, a.replication_id);
    }

    #[test]
    fn the_process_spent_at_least_what_its_main_thread_did() {
        let cpu = Cpu::read();
        assert!(cpu.process.user >= cpu.main_thread.user, "{cpu:?}");
        assert!(cpu.process.sys >= cpu.main_thread.sys, "{cpu:?}");
    }
}
