//! The checks every chaos test ends with: every acknowledged write reads back through the proxy,
//! the proxy still answers, and no client saw its writes go backwards.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::Value;

use crate::common::proxy::Proxy;
use crate::load::{connect, LoadResult};
use crate::report::{self, Marks};
use crate::watch::PingStats;

/// Reads are retried this often before a key counts as unreadable: the checks run once the
/// cluster has settled, but the proxy may still be one refresh behind.
const READ_ATTEMPTS: usize = 3;

pub struct EndCheck {
    pub checked: usize,
    /// Keys whose value is neither the last acknowledged one nor one written after it.
    pub lost: Vec<String>,
    /// Failed reads, including those that succeeded on a retry.
    pub read_errors: Vec<String>,
    pub ping: Result<(), String>,
}

/// Reads every key of the ledger back through the proxy on a fresh connection.
pub fn end_check(proxy: &Proxy, r: &LoadResult) -> EndCheck {
    let mut check = EndCheck {
        checked: 0,
        lost: Vec::new(),
        read_errors: Vec::new(),
        ping: Ok(()),
    };
    let mut con =
        connect(proxy.addr).unwrap_or_else(|e| panic!("cannot connect to the proxy: {e}"));
    check.ping = match redis::cmd("PING").query::<Value>(&mut con) {
        Ok(Value::SimpleString(s)) if s == "PONG" => Ok(()),
        other => Err(format!("PING answered {other:?}")),
    };
    for state in &r.keys {
        let mut got = None;
        for attempt in 1..=READ_ATTEMPTS {
            match redis::cmd("GET")
                .arg(&state.key)
                .query::<Option<String>>(&mut con)
            {
                Ok(v) => {
                    got = Some(v);
                    break;
                }
                Err(e) => {
                    check
                        .read_errors
                        .push(format!("GET {} attempt {attempt}: {e}", state.key));
                    if e.code().is_none() {
                        con = connect(proxy.addr)
                            .unwrap_or_else(|e| panic!("cannot reconnect to the proxy: {e}"));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        check.checked += 1;
        match got {
            Some(v) if state.allows(v.as_deref()) => {}
            Some(v) => check.lost.push(format!(
                "{} (slot {}, shard {}) reads {v:?}; last acked {:?}, unsure since {:?}",
                state.key, state.slot, state.shard, state.acked, state.unsure
            )),
            None => check.lost.push(format!(
                "{} (slot {}, shard {}) unreadable after {READ_ATTEMPTS} attempts; last acked \
                 {:?}",
                state.key, state.slot, state.shard, state.acked
            )),
        }
    }
    check
}

/// A test's failed expectations, all collected before it panics, so one run reports every way
/// the proxy misbehaved rather than only the first.
pub struct Verdict {
    name: &'static str,
    failures: Vec<String>,
    /// The cluster's directory, whose node logs are kept when the test fails: the harness
    /// removes the directory when the cluster is dropped.
    cluster_dir: PathBuf,
}

impl Verdict {
    pub fn check(&mut self, ok: bool, failure: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(failure());
        }
    }

    /// Panics with every failed expectation, after saving the nodes' logs.
    pub fn done(self) {
        if !self.failures.is_empty() {
            panic!(
                "{}: {} expectation(s) failed:\n- {}\n{}",
                self.name,
                self.failures.len(),
                self.failures.join("\n- "),
                keep_logs(self.name, &self.cluster_dir)
            );
        }
    }
}

/// Copies every node's `redis.log` (one directory per port) out of the cluster's directory.
fn keep_logs(name: &str, cluster_dir: &Path) -> String {
    let to =
        std::env::temp_dir().join(format!("slotgate-chaos-logs-{}-{name}", std::process::id()));
    let mut kept = 0;
    for node in fs::read_dir(cluster_dir).into_iter().flatten().flatten() {
        let log = node.path().join("redis.log");
        let copy = to.join(format!("{}.log", node.file_name().to_string_lossy()));
        if fs::create_dir_all(&to).is_ok() && fs::copy(&log, &copy).is_ok() {
            kept += 1;
        }
    }
    format!("{kept} node logs kept in {}", to.display())
}

/// Prints the test's report and checks what every test expects; the test adds its own checks to
/// the verdict and calls `done`.
pub fn finish(
    name: &'static str,
    cluster_dir: &Path,
    proxy: &Proxy,
    r: &LoadResult,
    marks: &Marks,
    ping: &PingStats,
) -> Verdict {
    let end = end_check(proxy, r);
    report::print(name, r, marks, ping, &end);
    let mut v = Verdict {
        name,
        failures: Vec::new(),
        cluster_dir: cluster_dir.to_owned(),
    };
    v.check(r.acked_writes >= 500, || {
        format!(
            "the load barely ran: {} acknowledged writes",
            r.acked_writes
        )
    });
    v.check(r.violations.is_empty(), || {
        format!(
            "{} order violations, e.g.:\n  {}",
            r.violations.len(),
            r.violations[..r.violations.len().min(5)].join("\n  ")
        )
    });
    v.check(end.lost.is_empty(), || {
        format!(
            "{} of {} keys do not hold their last acknowledged value (or a later one), e.g.:\n  {}",
            end.lost.len(),
            end.checked,
            end.lost[..end.lost.len().min(5)].join("\n  ")
        )
    });
    v.check(end.ping.is_ok(), || {
        format!("the proxy no longer answers PING: {:?}", end.ping)
    });
    v
}
