//! `SLOWLOG`: slotgate's own requests that took longer than `slowlog.log_slower_than_us`, kept
//! and shown the way Redis keeps and shows its slow commands, so the tools that read a Redis
//! slow log read slotgate's.
//!
//! The duration is the one the request metrics measure: from the request being read to its reply
//! being written (or queued to be), as the client sees it. Unlike Redis, which times only a
//! command's execution, it includes the round trip to the node and any wait behind the client's
//! own earlier requests: a request pipelined behind a slow one is slow too. Checking costs one
//! comparison per request; only a slow one takes the lock here.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::{Frame, Reply};

/// Arguments kept at most per entry, the last one saying how many more there were (Redis'
/// `SLOWLOG_ENTRY_MAX_ARGC`).
const MAX_ARGS: usize = 32;
/// Bytes kept at most per argument (Redis' `SLOWLOG_ENTRY_MAX_STRING`).
const MAX_ARG_BYTES: usize = 128;
/// `SLOWLOG GET` without a count.
const DEFAULT_COUNT: usize = 10;

/// How the slow log is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowlogSettings {
    /// Requests at least this slow are logged; `None` logs none.
    pub slower_than: Option<Duration>,
    /// Entries kept; the oldest goes first.
    pub max_len: usize,
}

impl SlowlogSettings {
    /// The threshold in nanoseconds, `u64::MAX` when off: what the session compares every
    /// request's duration with.
    pub fn threshold_ns(&self) -> u64 {
        self.slower_than
            .map_or(u64::MAX, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
    }
}

#[derive(Debug)]
struct Entry {
    id: u64,
    unix_secs: u64,
    micros: u64,
    args: Vec<Bytes>,
    /// Formatted when shown: a slow request must not also pay for that.
    addr: Option<SocketAddr>,
    name: Bytes,
}

/// The slow log shared by every worker, as one Redis server has one. Its threshold and length
/// are read on every use, so a reload changes them at once.
#[derive(Debug)]
pub struct Slowlog {
    /// [`SlowlogSettings::threshold_ns`].
    threshold_ns: AtomicU64,
    max_len: AtomicUsize,
    /// Ids are never reused, also across `SLOWLOG RESET` (as Redis).
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

impl Slowlog {
    pub fn new(settings: SlowlogSettings) -> Slowlog {
        Slowlog {
            threshold_ns: AtomicU64::new(settings.threshold_ns()),
            max_len: AtomicUsize::new(settings.max_len),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// Requests at least this many nanoseconds slow are logged (`u64::MAX`: none). Sessions
    /// read it once per batch of replies they write.
    pub fn threshold_ns(&self) -> u64 {
        self.threshold_ns.load(Ordering::Relaxed)
    }

    /// Takes a reloaded threshold and length; a shorter length drops the oldest entries now.
    pub fn configure(&self, settings: SlowlogSettings) {
        self.threshold_ns
            .store(settings.threshold_ns(), Ordering::Relaxed);
        self.max_len.store(settings.max_len, Ordering::Relaxed);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .truncate(settings.max_len);
    }

    /// Logs a request that took `took` (already compared with the threshold by the caller).
    /// `args` is the request as the client sent it, cut and redacted here as Redis does.
    pub fn record(
        &self,
        args: &[Bytes],
        took: Duration,
        addr: Option<SocketAddr>,
        name: Option<&Bytes>,
    ) {
        let max_len = self.max_len.load(Ordering::Relaxed);
        if max_len == 0 {
            return;
        }
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            unix_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            micros: took.as_micros().min(u128::from(u64::MAX)) as u64,
            args: kept_args(args),
            addr,
            name: name.cloned().unwrap_or_default(),
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push_front(entry);
        entries.truncate(max_len);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn reset(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// `SLOWLOG GET [count]`'s reply: the newest `count` entries (10 by default, all for -1),
    /// each `[id, unix time, microseconds, [args], client address, client name]`, or Redis'
    /// error for a count it would refuse. Arrays, integers and bulk strings read the same in
    /// RESP3, as Redis' own reply does.
    pub fn get(&self, args: &[Bytes]) -> Reply {
        let count = match args.len() {
            2 => DEFAULT_COUNT,
            3 => match std::str::from_utf8(&args[2])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(-1) => usize::MAX,
                Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => return Reply::error_line("ERR count should be greater than or equal to -1"),
            },
            _ => {
                return Reply::error_line(&format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
                String::from_utf8_lossy(&args[1])
            ))
            }
        };
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let int = |n: u64| Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        let shown = entries
            .iter()
            .take(count)
            .map(|e| {
                Frame::Array(vec![
                    int(e.id),
                    int(e.unix_secs),
                    int(e.micros),
                    Frame::Array(e.args.iter().cloned().map(Frame::Bulk).collect()),
                    Frame::Bulk(Bytes::from(
                        e.addr.map(|a| a.to_string()).unwrap_or_default(),
                    )),
                    Frame::Bulk(e.name.clone()),
                ])
            })
            .collect();
        drop(entries);
        Reply::from(&Frame::Array(shown))
    }
}

/// `SLOWLOG HELP`, Redis 7.0's words, as simple strings.
pub fn help() -> Reply {
    const LINES: [&str; 12] = [
        "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET [<count>]",
        "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
        "    Entries are made of:",
        "    id, timestamp, time in microseconds, arguments array, client IP and port,",
        "    client name",
        "LEN",
        "    Return the length of the slowlog.",
        "RESET",
        "    Reset the slowlog.",
        "HELP",
        "    Prints this help.",
    ];
    let lines = LINES
        .iter()
        .map(|l| Frame::Simple(Bytes::from_static(l.as_bytes())))
        .collect();
    Reply::from(&Frame::Array(lines))
}

/// The arguments an entry keeps, as Redis keeps them: at most [`MAX_ARGS`], the last saying how
/// many more there were, each cut at [`MAX_ARG_BYTES`] with how many bytes more; passwords
/// replaced by `(redacted)`.
fn kept_args(args: &[Bytes]) -> Vec<Bytes> {
    let redacted = redacted(args);
    let keep = match args.len() > MAX_ARGS {
        true => MAX_ARGS - 1,
        false => args.len(),
    };
    let mut out: Vec<Bytes> = args[..keep]
        .iter()
        .enumerate()
        .map(|(i, a)| match redacted.contains(&i) {
            true => Bytes::from_static(b"(redacted)"),
            false if a.len() > MAX_ARG_BYTES => {
                let mut cut = BytesMut::with_capacity(MAX_ARG_BYTES + 32);
                cut.put_slice(&a[..MAX_ARG_BYTES]);
                cut.put_slice(format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes());
                cut.freeze()
            }
            false => a.clone(),
        })
        .collect();
    if args.len() > MAX_ARGS {
        let more = format!("... ({} more arguments)", args.len() - keep);
        out.push(Bytes::from(more));
    }
    out
}

/// Positions of arguments that are secrets, which Redis leaves out of its slow log: AUTH's,
/// HELLO's and MIGRATE's credentials, ACL SETUSER's rules, CONFIG SET's passwords. slotgate
/// refuses most of these commands, but a refused request is logged too.
fn redacted(args: &[Bytes]) -> Vec<usize> {
    let is = |i: usize, word: &str| {
        args.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
    };
    let mut out = Vec::new();
    if is(0, "auth") {
        out.extend(1..args.len());
    } else if is(0, "hello") {
        for i in 2..args.len() {
            if is(i, "auth") {
                out.extend([i + 1, i + 2]);
            }
        }
    } else if is(0, "migrate") {
        for i in 6..args.len() {
            if is(i, "auth") {
                out.push(i + 1);
            } else if is(i, "auth2") {
                out.extend([i + 1, i + 2]);
            }
        }
    } else if is(0, "acl") && is(1, "setuser") {
        out.extend(3..args.len());
    } else if is(0, "config") && is(1, "set") {
        let mut i = 2;
        while i + 1 < args.len() {
            if ["requirepass", "masterauth", "masteruser"]
                .iter()
                .any(|name| is(i, name))
            {
                out.push(i + 1);
            }
            i += 2;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::protocol::test_args as args;

    fn log(max_len: usize) -> Slowlog {
        Slowlog::new(SlowlogSettings {
            slower_than: Some(Duration::ZERO),
            max_len,
        })
    }

    fn get(log: &Slowlog, words: &[&str]) -> Vec<u8> {
        log.get(&args(words)).bytes().to_vec()
    }

    #[test]
    fn entries_read_as_redis_writes_them() {
        let l = log(128);
        let addr: SocketAddr = "127.0.0.1:37234".parse().unwrap();
        l.record(
            &args(&["set", "k", "v"]),
            Duration::from_micros(8),
            Some(addr),
            None,
        );
        let name = Bytes::from_static(b"myname");
        l.record(
            &args(&["get", "k"]),
            Duration::from_micros(5),
            None,
            Some(&name),
        );
        let reply = String::from_utf8(get(&l, &["SLOWLOG", "GET", "1"])).unwrap();
        let (head, tail) = reply.split_at(reply.find(":1\r\n:").unwrap());
        assert_eq!(head, "*1\r\n*6\r\n");
        let tail = tail.split("\r\n").collect::<Vec<_>>();
        assert_eq!(tail[0], ":1", "the newest first");
        assert_eq!(tail[2], ":5");
        assert_eq!(&tail[3..9], ["*2", "$3", "get", "$1", "k", "$0"]);
        assert_eq!(&tail[9..11], ["", "$6"]);
        assert_eq!(tail[11], "myname");
        let all = String::from_utf8(get(&l, &["slowlog", "get"])).unwrap();
        assert!(all.starts_with("*2\r\n"));
        assert!(
            all.contains("$15\r\n127.0.0.1:37234\r\n$0\r\n\r\n"),
            "{all}"
        );
        assert_eq!(l.len(), 2);
        l.reset();
        assert_eq!(get(&l, &["SLOWLOG", "GET", "-1"]), b"*0\r\n");
        l.record(&args(&["ping"]), Duration::ZERO, None, None);
        assert!(
            String::from_utf8(get(&l, &["SLOWLOG", "GET"]))
                .unwrap()
                .contains(":2\r\n"),
            "ids go on after a reset"
        );
    }

    #[test]
    fn keeps_at_most_max_len_entries() {
        let l = log(2);
        for _ in 0..5 {
            l.record(&args(&["ping"]), Duration::ZERO, None, None);
        }
        assert_eq!(l.len(), 2);
        assert_eq!(get(&l, &["SLOWLOG", "GET", "0"]), b"*0\r\n");
        log(0).record(&args(&["ping"]), Duration::ZERO, None, None);
    }

    #[test]
    fn counts_redis_refuses_get_redis_errors() {
        let l = log(4);
        for bad in ["-2", "abc", ""] {
            assert_eq!(
                get(&l, &["SLOWLOG", "GET", bad]),
                b"-ERR count should be greater than or equal to -1\r\n"
            );
        }
        assert_eq!(
            get(&l, &["SLOWLOG", "get", "1", "2"]),
            b"-ERR unknown subcommand or wrong number of arguments for 'get'. Try SLOWLOG HELP.\r\n"
                .to_vec()
        );
    }

    #[test]
    fn long_requests_are_cut_as_redis_cuts_them() {
        let mut many = vec!["rpush".to_owned(), "l".to_owned()];
        many.extend((1..=40).map(|i| i.to_string()));
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let kept = kept_args(&args(&many));
        assert_eq!(kept.len(), 32);
        assert_eq!(kept[30], "29");
        assert_eq!(kept[31], "... (11 more arguments)");

        let big = "x".repeat(200);
        let kept = kept_args(&args(&["set", "big", &big]));
        assert_eq!(
            kept[2],
            format!("{}... (72 more bytes)", "x".repeat(128)).as_bytes()
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let kept = kept_args(&args(&[
            "hello", "2", "auth", "default", "pw", "setname", "nm",
        ]));
        assert_eq!(
            kept,
            args(&[
                "hello",
                "2",
                "auth",
                "(redacted)",
                "(redacted)",
                "setname",
                "nm"
            ])
        );
        assert_eq!(
            kept_args(&args(&["AUTH", "pw"])),
            args(&["AUTH", "(redacted)"])
        );
        assert_eq!(
            kept_args(&args(&[
                "config",
                "set",
                "maxmemory",
                "1",
                "requirepass",
                "s"
            ])),
            args(&[
                "config",
                "set",
                "maxmemory",
                "1",
                "requirepass",
                "(redacted)"
            ])
        );
    }

    #[test]
    fn help_is_redis_help() {
        let h = help();
        let text = String::from_utf8(h.bytes().to_vec()).unwrap();
        assert!(text.starts_with("*12\r\n+SLOWLOG <subcommand>"));
        assert!(text.ends_with("+    Prints this help.\r\n"));
    }

    #[test]
    fn threshold_off_is_never_reached() {
        let off = SlowlogSettings {
            slower_than: None,
            max_len: 1,
        };
        assert_eq!(off.threshold_ns(), u64::MAX);
        let ten_ms = SlowlogSettings {
            slower_than: Some(Duration::from_millis(10)),
            max_len: 1,
        };
        assert_eq!(ten_ms.threshold_ns(), 10_000_000);
    }
}
