//! Every client slotgate serves, over all workers, so that `CLIENT LIST`, `CLIENT INFO` and
//! `CLIENT KILL` see them as one server's clients. A client is entered once when it connects and
//! removed when it leaves; what a listing shows is written only when it changes (a name, the
//! protocol, subscriptions), except the time of the last request, one relaxed store per request
//! of a clock that a background tick keeps.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::budget::Budget;
use crate::command::CommandId;
use crate::protocol::Proto;

/// How often the clock behind `idle=` moves; a listing's idle time is this coarse.
const TICK: Duration = Duration::from_millis(100);

pub struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientEntry>>>,
    epoch: Instant,
    /// Milliseconds since `epoch`, moved every [`TICK`]: reading it is all a request pays.
    now_ms: AtomicU64,
    /// The proxy is shutting down: a client entered from now on is told to drain at once.
    /// Written and read under the clients' lock, so no client is entered unseen by a drain.
    draining: AtomicBool,
}

/// [`ClientEntry`]'s `cmd` before the client's first command.
const NO_COMMAND: u16 = u16::MAX;

/// One client as listings show it.
pub struct ClientEntry {
    pub id: u64,
    addr: String,
    laddr: String,
    fd: i64,
    created: Instant,
    last_ms: AtomicU64,
    blocked: AtomicBool,
    /// Commands queued in MULTI, or -1 outside one.
    multi: AtomicI64,
    /// The [`CommandId`] of its latest command (`cmd`), [`NO_COMMAND`] before the first.
    cmd: AtomicU16,
    shown: Mutex<Shown>,
    /// Its replies not yet read (`omem`), and the way to end its session.
    budget: Arc<Budget>,
}

/// What changes only when the client says so.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    pub proto: Proto,
    pub sub: usize,
    pub psub: usize,
    pub ssub: usize,
}

/// Where a client is connected from and to.
pub struct Peer {
    pub addr: Option<SocketAddr>,
    pub laddr: Option<SocketAddr>,
    pub fd: i64,
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry {
            clients: Mutex::new(BTreeMap::new()),
            epoch: Instant::now(),
            now_ms: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        })
    }

    /// Moves the clock until the registry is gone. Needs a runtime.
    pub fn start_clock(self: &Arc<Self>) {
        let weak: Weak<Registry> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(registry) = weak.upgrade() else {
                    return;
                };
                let now = registry.epoch.elapsed().as_millis() as u64;
                registry.now_ms.store(now, Ordering::Relaxed);
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientEntry>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters a client; it stays listed until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>, id: u64, peer: Peer, budget: Arc<Budget>) -> Listed {
        let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        let entry = Arc::new(ClientEntry {
            id,
            addr: show(peer.addr),
            laddr: show(peer.laddr),
            fd: peer.fd,
            created: Instant::now(),
            last_ms: AtomicU64::new(self.now_ms.load(Ordering::Relaxed)),
            blocked: AtomicBool::new(false),
            multi: AtomicI64::new(-1),
            cmd: AtomicU16::new(NO_COMMAND),
            shown: Mutex::new(Shown::default()),
            budget,
        });
        {
            let mut clients = self.lock();
            clients.insert(id, entry.clone());
            if self.draining.load(Ordering::Relaxed) {
                entry.budget.drain();
            }
        }
        Listed {
            registry: self.clone(),
            entry,
        }
    }

    /// Tells every client's session, and every one entered later, to stop reading, answer what
    /// it read and close.
    pub fn drain(&self) {
        let clients = self.lock();
        self.draining.store(true, Ordering::Relaxed);
        for client in clients.values() {
            client.budget.drain();
        }
    }

    /// Every client that `keep` selects, in id order.
    pub fn select(&self, keep: impl Fn(&ClientEntry) -> bool) -> Vec<Arc<ClientEntry>> {
        self.lock().values().filter(|c| keep(c)).cloned().collect()
    }

    /// The `CLIENT LIST` line of `entry`, newline included, as Redis writes it.
    pub fn line(&self, entry: &ClientEntry) -> String {
        let shown = entry.shown();
        let now_ms = self.now_ms.load(Ordering::Relaxed);
        let idle = now_ms.saturating_sub(entry.last_ms.load(Ordering::Relaxed)) / 1000;
        let text = |b: &Option<Bytes>| {
            b.as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let mut line = String::with_capacity(256);
        let _ = writeln!(
            line,
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub={} psub={} \
             ssub={} multi={} omem={} cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            entry.id,
            entry.addr,
            entry.laddr,
            entry.fd,
            text(&shown.name),
            entry.created.elapsed().as_secs(),
            idle,
            entry.flags(&shown),
            shown.sub,
            shown.psub,
            shown.ssub,
            entry.multi.load(Ordering::Relaxed),
            entry.budget.total(),
            entry.command(),
            shown.proto.version(),
            text(&shown.lib_name),
            text(&shown.lib_ver),
        );
        line
    }
}

impl ClientEntry {
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn laddr(&self) -> &str {
        &self.laddr
    }

    /// Its latest command as Redis names it in `cmd=` (`client|list`), `NULL` before the first.
    fn command(&self) -> &'static str {
        match self.cmd.load(Ordering::Relaxed) {
            NO_COMMAND => "NULL",
            id => CommandId::from_index(usize::from(id)).label(),
        }
    }

    /// Subscribed to anything: Redis counts it as a `pubsub` client.
    pub fn is_pubsub(&self) -> bool {
        let shown = self.shown();
        shown.sub + shown.psub + shown.ssub > 0
    }

    /// Ends its session (`CLIENT KILL`).
    pub fn kill(&self) {
        self.budget.kill();
    }

    fn shown(&self) -> MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Redis' flag letters for what slotgate knows of the client.
    fn flags(&self, shown: &Shown) -> String {
        let mut flags = String::new();
        if shown.sub + shown.psub + shown.ssub > 0 {
            flags.push('P');
        }
        if self.multi.load(Ordering::Relaxed) >= 0 {
            flags.push('x');
        }
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        flags
    }
}

/// A client's place in the registry, held by its session: dropping it removes the client.
pub struct Listed {
    registry: Arc<Registry>,
    entry: Arc<ClientEntry>,
}

impl Listed {
    pub fn entry(&self) -> &Arc<ClientEntry> {
        &self.entry
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The client sent a request.
    pub fn touch(&self) {
        let now = self.registry.now_ms.load(Ordering::Relaxed);
        self.entry.last_ms.store(now, Ordering::Relaxed);
    }

    pub fn show(&self, change: impl FnOnce(&mut Shown)) {
        change(&mut self.entry.shown());
    }

    /// The client sent `command`. One the table does not name (learned from the cluster) is not
    /// shown: `cmd` keeps the one before, as it is only a label for ops to read.
    pub fn set_command(&self, command: CommandId) {
        if command != CommandId::OTHER {
            self.entry
                .cmd
                .store(command.index() as u16, Ordering::Relaxed);
        }
    }

    pub fn set_blocked(&self, blocked: bool) {
        self.entry.blocked.store(blocked, Ordering::Relaxed);
    }

    pub fn set_multi(&self, queued: Option<usize>) {
        let n = queued.map_or(-1, |n| n as i64);
        self.entry.multi.store(n, Ordering::Relaxed);
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.entry.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::OutputLimits;

    fn budget() -> Arc<Budget> {
        Arc::new(Budget::new(OutputLimits {
            hard: 1 << 20,
            soft: 0,
            soft_for: Duration::ZERO,
        }))
    }

    fn peer(port: u16) -> Peer {
        Peer {
            addr: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            laddr: Some(SocketAddr::from(([127, 0, 0, 1], 6380))),
            fd: 9,
        }
    }

    #[test]
    fn lines_show_what_the_client_set_and_leaving_unlists_it() {
        let registry = Registry::new();
        let a = registry.enter(7, peer(5000), budget());
        let b = registry.enter(8, peer(5001), budget());
        a.show(|s| {
            s.name = Some(Bytes::from_static(b"app"));
            s.proto = Proto::Resp3;
            s.sub = 2;
        });
        a.set_multi(Some(3));
        let table = crate::command::CommandTable::builtin();
        let command = |words: &[&str]| {
            let args = words
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            table
                .classify(&crate::protocol::Request::from_args(args))
                .command
        };
        a.set_command(command(&["CLIENT", "LIST"]));
        let line = registry.line(a.entry());
        assert!(
            line.starts_with(
                "id=7 addr=127.0.0.1:5000 laddr=127.0.0.1:6380 fd=9 name=app age=0 idle=0 flags=Px db=0 sub=2 psub=0 ssub=0 multi=3 omem=0 cmd=client|list user=default redir=-1 resp=3 "
            ),
            "{line}"
        );
        assert!(line.ends_with('\n'));
        assert!(registry.line(b.entry()).contains(" flags=N "));
        assert!(registry.line(b.entry()).contains(" cmd=NULL "));
        b.set_command(command(&["get", "k"]));
        b.set_command(command(&["NOSUCHCOMMAND"]));
        assert!(
            registry.line(b.entry()).contains(" cmd=get "),
            "unknown keeps the last"
        );
        let ids = |r: &Registry| r.select(|_| true).iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(&registry), [7, 8]);
        drop(a);
        assert_eq!(ids(&registry), [8]);
    }
}
