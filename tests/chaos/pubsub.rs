//! Pub/sub when the node that holds slotgate's subscriber connection fails. The proxy runs one
//! worker, so it has exactly one subscriber connection; five raw-TCP clients SUBSCRIBE to one
//! channel through it, and `PUBSUB NUMSUB` on each node finds the node the connection is on
//! (the one answering 1): the victim, a master or a replica. A separate client then PUBLISHes
//! numbered messages through slotgate every 20 ms, from just after the fault on.
//!
//! Pub/sub delivers at most once: messages published while slotgate has no subscriber
//! connection up are lost, as they are for a client of the failed node itself. The tests never
//! ask for those. They ask that every subscriber hears again, that from the first message each
//! one hears on it gets every later one, in order, without a gap or a duplicate, and that
//! afterwards exactly one node has the channel's subscriber connection.
//!
//! The publisher is a connection whose PUBLISH runs on a master other than the victim (chosen
//! by watching `cmdstat_publish` on the masters): what is measured is the subscriber side, not
//! how slotgate routes a keyless command to a dead master. Every PUBLISH must succeed.
//!
//! - `sigkill_subscriber_node`: the killed node's sockets close with it, so the hub sees its
//!   connection end and subscribes on the next node at once; it does not wait for the cluster to
//!   notice the failure (cluster-node-timeout, 1 s) nor for a replica's promotion (about 2 s
//!   after the kill), since a PUBLISH reaches every live node whatever the cluster's state.
//!   Asserted: every subscriber hears again within [`KILL_WITHIN`] of the kill, 1 s: the node
//!   timeout itself, so before any promotion could happen, and ample for a busy two-core
//!   machine, since it takes a few milliseconds. When a master was killed, the time from its
//!   replica's promotion is printed too (the subscribers hear again before it).
//! - `sigstop_subscriber_node`: a stopped node keeps its sockets open and never answers; only
//!   the hub's PING every half operation timeout finds it, after one operation timeout without
//!   a PONG: between 1 and 1.5 op timeouts after the stop. Asserted: within
//!   [`STOP_WITHIN`], 1.5 op timeouts plus 1 s for a busy two-core machine. The node gets
//!   SIGCONT before any assertion, even if the test fails, and the cluster must settle.
//! - `idle_subscriber_connection_stays_on_its_node`, without a fault: once its last client has
//!   unsubscribed, the subscriber connection is idle, not failed, and must stay on its node.
//!
//! Every socket has a read timeout and every loop a bound in count and time. The subscribers,
//! the publisher and the checks of what was heard serve shard channels too (`sharded.rs`): a
//! [`Feed`] says which kind of channel a test uses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::Value;

use crate::common::cluster::RedisCluster;
use crate::load::connect;
use crate::report::ms;
use crate::setup::{
    self, command_calls, node_cmd, text, Env, OP_TIMEOUT_MS, PROMOTION_TIMEOUT, SETTLE,
};
use crate::watch::Promotion;

/// What a test subscribes to and publishes on: a channel, which every node hears whatever node
/// the PUBLISH ran on, or a shard channel, which lives on its slot's master (and its replicas).
#[derive(Clone, Copy, Debug)]
pub struct Feed {
    pub channel: &'static str,
    /// The command that subscribes, in lower case as the confirmation push names it.
    subscribe: &'static str,
    /// The kind of push a message comes in.
    message: &'static str,
    publish: &'static str,
    /// The `PUBSUB` subcommand that counts a node's subscribers to the channel.
    numsub: &'static str,
}

pub const PLAIN: Feed = Feed {
    channel: "chaos:feed",
    subscribe: "subscribe",
    message: "message",
    publish: "PUBLISH",
    numsub: "NUMSUB",
};

pub const SHARDED: Feed = Feed {
    channel: "{sh}feed",
    subscribe: "ssubscribe",
    message: "smessage",
    publish: "SPUBLISH",
    numsub: "SHARDNUMSUB",
};

const CHANNEL: &str = PLAIN.channel;
const SUBSCRIBERS: usize = 5;
pub const PUBLISH_EVERY: Duration = Duration::from_millis(20);
/// Messages each subscriber must hear after its first one after the fault: 2 s of publishing.
const HEARD_AFTER_FIRST: usize = 100;
/// How long after the fault the test listens at most for every subscriber to hear that many.
pub const LISTEN_FOR: Duration = Duration::from_secs(20);
/// The publisher stops after this long (1,250 messages at one per 20 ms) if not stopped before.
const PUBLISH_AT_MOST: Duration = Duration::from_secs(25);
/// Each blocking read on a subscriber's socket returns after this, so that its thread can see
/// the stop flag or its deadline.
const READ_POLL: Duration = Duration::from_millis(200);
/// A SUBSCRIBE is confirmed, and a message before the fault heard, within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// See the module comment: the hub moves away from a killed node at once.
const KILL_WITHIN: Duration = Duration::from_millis(1000);
/// See the module comment: one op timeout, up to half one more for the PING's phase, and 1 s.
const STOP_WITHIN: Duration = Duration::from_millis(OP_TIMEOUT_MS * 3 / 2 + 1000);

#[test]
fn sigkill_subscriber_node() {
    let mut env = setup::start_with(|cfg| cfg.workers = 1);
    let (subscribers, victim, publisher) = prepare(&env);
    let was = role(&env.cluster, victim);
    let promotion = (was == "master").then(|| Promotion::watch(env.cluster.replica_of(victim)));

    let killed = Instant::now();
    env.cluster.kill(victim);
    let exchange = Exchange::start(subscribers, publisher.0, PLAIN, PUBLISH_EVERY).finish(&enough);
    let promoted = promotion.map(|p| p.wait(PROMOTION_TIMEOUT));

    let firsts = check_flow(&exchange, killed, KILL_WITHIN, "SIGKILL");
    let now_on = subscriber_node(&env.cluster, PLAIN);
    assert_ne!(now_on, victim);
    assert_eq!(
        env.proxy.metric("slotgate_subscriber_connections"),
        Some(1.0),
        "one subscriber connection after the kill"
    );
    drop(exchange.subscribers);
    let last_heard = killed + firsts.iter().map(|f| f.1).max().unwrap_or_default();
    let promotion = match promoted.map(|at| (at, ms(at, last_heard))) {
        Some((at, d)) => format!(
            "replica promoted {} ms after the kill: the last subscriber heard again {} ms {} \
             the promotion",
            at.duration_since(killed).as_millis(),
            d.abs(),
            if d < 0 { "before" } else { "after" }
        ),
        None => "no promotion (a replica was killed)".to_owned(),
    };
    println!(
        "\n===== SIGKILL of {victim} ({was}), which held the subscriber connection; publisher \
         on {}: first message heard (number, ms after the kill) {}, bound {} ms; {promotion}; \
         {} published; the subscriber connection is now on {now_on}",
        publisher.1,
        firsts_text(&firsts),
        KILL_WITHIN.as_millis(),
        exchange.sent.len()
    );
}

#[test]
fn sigstop_subscriber_node() {
    let mut env = setup::start_with(|cfg| cfg.workers = 1);
    let (subscribers, victim, publisher) = prepare(&env);
    let was = role(&env.cluster, victim);

    let stopped = Instant::now();
    env.cluster.stop(victim);
    // Whatever happens, the node runs again before anything is asserted, so that the cluster
    // can settle and shut down.
    let during = panic::catch_unwind(AssertUnwindSafe(|| {
        let exchange =
            Exchange::start(subscribers, publisher.0, PLAIN, PUBLISH_EVERY).finish(&enough);
        (exchange, subscriber_node(&env.cluster, PLAIN))
    }));
    let resumed = Instant::now();
    env.cluster.cont(victim);
    let (exchange, moved_to) = during.unwrap_or_else(|p| panic::resume_unwind(p));

    let firsts = check_flow(&exchange, stopped, STOP_WITHIN, "SIGSTOP");
    assert_ne!(moved_to, victim);
    env.cluster.wait_ok(SETTLE);
    // Once running again, the stopped node reads that the hub closed its connection there.
    let deadline = Instant::now() + ANSWER_WITHIN;
    while numsub(&env.cluster, PLAIN)
        .iter()
        .filter(|(_, n)| *n != 0)
        .count()
        != 1
    {
        assert!(
            Instant::now() < deadline,
            "after SIGCONT, NUMSUB {CHANNEL} per node: {:?}",
            numsub(&env.cluster, PLAIN)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(subscriber_node(&env.cluster, PLAIN), moved_to);
    drop(exchange.subscribers);
    println!(
        "\n===== SIGSTOP of {victim} ({was}, {} after SIGCONT), which held the subscriber \
         connection; publisher on {}: first message heard (number, ms after the stop) {}, \
         bound {} ms; {} published; the subscriber connection moved to {moved_to}; SIGCONT {} \
         ms after the stop",
        role(&env.cluster, victim),
        publisher.1,
        firsts_text(&firsts),
        STOP_WITHIN.as_millis(),
        exchange.sent.len(),
        resumed.duration_since(stopped).as_millis()
    );
}

/// Each plain test listens until every subscriber has heard more than [`HEARD_AFTER_FIRST`].
fn enough(heard: &[Vec<Heard>]) -> bool {
    heard.iter().all(|h| h.len() > HEARD_AFTER_FIRST)
}

/// `[(number, ms), ...]` of each subscriber's first message after the fault.
fn firsts_text(firsts: &[(u64, Duration)]) -> String {
    let pairs: Vec<(u64, u128)> = firsts.iter().map(|(n, d)| (*n, d.as_millis())).collect();
    format!("{pairs:?}")
}

/// A subscriber connection whose clients have all unsubscribed is idle, not broken: the hub
/// goes on checking it with a PING, which a node out of subscribed mode answers with `+PONG`
/// rather than `["pong", ""]`, and the connection must stay on its node (the same client id
/// there) for several op timeouts.
#[test]
fn idle_subscriber_connection_stays_on_its_node() {
    let env = setup::start_with(|cfg| cfg.workers = 1);
    let mut subscriber = Subscriber::connect(env.proxy.addr, PLAIN);
    let node = subscriber_node(&env.cluster, PLAIN);
    let id = subscribed_client_id(node);
    subscriber
        .stream
        .write_all(format!("UNSUBSCRIBE {CHANNEL}\r\n").as_bytes())
        .unwrap();
    assert_eq!(
        subscriber.next(Instant::now() + ANSWER_WITHIN),
        Ok(Some(vec!["unsubscribe".into(), CHANNEL.into(), "0".into()]))
    );
    let unsubscribed = Instant::now();
    let watch = Duration::from_millis(OP_TIMEOUT_MS * 4);
    while unsubscribed.elapsed() < watch {
        let client =
            node_cmd(node, &["CLIENT", "LIST", "ID", &id]).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !text(&client).trim().is_empty(),
            "the idle subscriber connection (client {id} on {node}) was closed {} ms after the \
             last UNSUBSCRIBE, though the node was up and answering",
            unsubscribed.elapsed().as_millis()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The id of the one client of `node` subscribed to a channel, from `CLIENT LIST`.
fn subscribed_client_id(node: u16) -> String {
    let list = text(&node_cmd(node, &["CLIENT", "LIST"]).unwrap_or_else(|e| panic!("{e}")));
    list.lines()
        .find(|l| l.split(' ').any(|f| f == "sub=1"))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .unwrap_or_else(|| panic!("no subscribed client on {node}:\n{list}"))
        .to_owned()
}

/// Subscribes the clients, finds the node of the subscriber connection, picks a publisher off
/// it, and checks that every client hears a message published before the fault.
fn prepare(env: &Env) -> (Vec<Subscriber>, u16, (redis::Connection, u16)) {
    let mut subscribers = subscribe(env, PLAIN, SUBSCRIBERS);
    let victim = subscriber_node(&env.cluster, PLAIN);
    assert_eq!(
        env.proxy.metric("slotgate_subscriber_connections"),
        Some(1.0),
        "one worker, one subscriber connection"
    );
    let (mut con, on) = publisher_avoiding(env, victim);
    all_hear_before(&mut subscribers, &mut con, PLAIN);
    (subscribers, victim, (con, on))
}

/// `count` raw-TCP clients subscribed to `feed` through slotgate.
pub fn subscribe(env: &Env, feed: Feed, count: usize) -> Vec<Subscriber> {
    (0..count)
        .map(|_| Subscriber::connect(env.proxy.addr, feed))
        .collect()
}

/// Publishes `before` on `con` and checks that every subscriber hears it.
pub fn all_hear_before(subscribers: &mut [Subscriber], con: &mut redis::Connection, feed: Feed) {
    let _: i64 = redis::cmd(feed.publish)
        .arg(feed.channel)
        .arg("before")
        .query(con)
        .unwrap_or_else(|e| panic!("{} through slotgate: {e}", feed.publish));
    for (i, s) in subscribers.iter_mut().enumerate() {
        let push = s.next(Instant::now() + ANSWER_WITHIN);
        assert_eq!(
            push,
            Ok(Some(vec![
                feed.message.into(),
                feed.channel.into(),
                "before".into()
            ])),
            "subscriber {i}, before the fault"
        );
    }
}

/// `master` or `replica`, as the node itself says.
fn role(cluster: &RedisCluster, port: u16) -> &'static str {
    match cluster.masters().contains(&port) {
        true => "master",
        false => "replica",
    }
}

/// `PUBSUB NUMSUB` (`SHARDNUMSUB`) of the feed's channel on every node that can answer (neither
/// killed nor stopped): how many connections subscribe to the channel there.
pub fn numsub(cluster: &RedisCluster, feed: Feed) -> Vec<(u16, i64)> {
    cluster
        .nodes
        .iter()
        .filter(|n| n.is_running())
        .map(|n| {
            let reply = node_cmd(n.port, &["PUBSUB", feed.numsub, feed.channel]);
            match reply {
                Ok(Value::Array(fields)) if fields.len() == 2 => match fields[1] {
                    Value::Int(count) => (n.port, count),
                    _ => panic!("PUBSUB {} on {}: {fields:?}", feed.numsub, n.port),
                },
                other => panic!("PUBSUB {} on {}: {other:?}", feed.numsub, n.port),
            }
        })
        .collect()
}

/// The one node subscribed to the channel (count 1, every other running node 0).
pub fn subscriber_node(cluster: &RedisCluster, feed: Feed) -> u16 {
    let counts = numsub(cluster, feed);
    let subscribed: Vec<&(u16, i64)> = counts.iter().filter(|(_, n)| *n != 0).collect();
    match subscribed[..] {
        [(port, 1)] => *port,
        _ => panic!(
            "not exactly one node with {} {} 1: {counts:?}",
            feed.numsub, feed.channel
        ),
    }
}

/// How many PUBLISH commands `port` has run itself.
fn publish_calls(port: u16) -> u64 {
    command_calls(port, "publish")
}

/// A connection through slotgate whose PUBLISH runs on a master other than `avoid`, and that
/// master. Slotgate keeps each client on one master for keyless commands, taking them in turn,
/// so one of the first few connections will do.
fn publisher_avoiding(env: &Env, avoid: u16) -> (redis::Connection, u16) {
    let masters = env.cluster.masters();
    for _ in 0..=masters.len() {
        let mut con = connect(env.proxy.addr).unwrap_or_else(|e| panic!("{e}"));
        let before: Vec<u64> = masters.iter().map(|&m| publish_calls(m)).collect();
        let _: i64 = redis::cmd("PUBLISH")
            .arg("chaos:probe")
            .arg("where")
            .query(&mut con)
            .unwrap_or_else(|e| panic!("PUBLISH through slotgate: {e}"));
        let ran_on = masters
            .iter()
            .zip(&before)
            .find(|(&m, &calls)| publish_calls(m) > calls)
            .map(|(&m, _)| m)
            .expect("a master ran the PUBLISH");
        if ran_on != avoid {
            return (con, ran_on);
        }
    }
    panic!("every connection's PUBLISH ran on {avoid}");
}

/// One raw-TCP client in subscribed mode.
pub struct Subscriber {
    stream: TcpStream,
    unread: Vec<u8>,
    feed: Feed,
}

impl Subscriber {
    /// Connects through slotgate and subscribes to the feed's channel.
    fn connect(proxy: SocketAddr, feed: Feed) -> Subscriber {
        let stream = TcpStream::connect(proxy).unwrap_or_else(|e| panic!("{proxy}: {e}"));
        stream.set_read_timeout(Some(READ_POLL)).unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut s = Subscriber {
            stream,
            unread: Vec::new(),
            feed,
        };
        s.stream
            .write_all(format!("{} {}\r\n", feed.subscribe, feed.channel).as_bytes())
            .unwrap();
        let confirmed = s.next(Instant::now() + ANSWER_WITHIN);
        assert_eq!(
            confirmed,
            Ok(Some(vec![
                feed.subscribe.into(),
                feed.channel.into(),
                "1".into()
            ]))
        );
        s
    }

    /// The next push, or `None` if none is complete by `until`.
    fn next(&mut self, until: Instant) -> Result<Option<Vec<String>>, String> {
        loop {
            if let Some((push, used)) = parse_push(&self.unread)? {
                self.unread.drain(..used);
                return Ok(Some(push));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("slotgate closed the connection".to_owned()),
                Ok(n) => self.unread.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Reports every message as it arrives, until `stop` or a deadline; an unexpected push or a
    /// lost connection ends the thread with an error. The thread hands the subscriber back, still
    /// subscribed.
    fn listen(
        mut self,
        client: usize,
        heard: Sender<Heard>,
        stop: Arc<AtomicBool>,
    ) -> JoinHandle<(Subscriber, Result<(), String>)> {
        std::thread::spawn(move || {
            let result = self.report(client, &heard, &stop);
            (self, result)
        })
    }

    fn report(
        &mut self,
        client: usize,
        heard: &Sender<Heard>,
        stop: &AtomicBool,
    ) -> Result<(), String> {
        let give_up = Instant::now() + LISTEN_FOR + Duration::from_secs(5);
        while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
            let Some(push) = self.next(Instant::now() + READ_POLL)? else {
                continue;
            };
            let at = Instant::now();
            let seq = match &push[..] {
                [kind, channel, seq]
                    if kind == self.feed.message && channel == self.feed.channel =>
                {
                    seq.parse()
                        .map_err(|e| format!("message {seq:?} is not a number: {e}"))?
                }
                _ => return Err(format!("unexpected push {push:?}")),
            };
            if heard.send(Heard { client, seq, at }).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// One RESP2 push (an array of bulk strings and integers) from the front of `buf`, with its
/// length in bytes; `None` while it is incomplete.
fn parse_push(buf: &[u8]) -> Result<Option<(Vec<String>, usize)>, String> {
    let mut at = 0;
    let Some(head) = line(buf, &mut at) else {
        return Ok(None);
    };
    let count: usize = head
        .strip_prefix('*')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("not a push: {head:?}"))?;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let Some(item) = line(buf, &mut at) else {
            return Ok(None);
        };
        if let Some(n) = item.strip_prefix(':') {
            items.push(n.to_owned());
            continue;
        }
        let len: usize = item
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("not a bulk string or an integer: {item:?}"))?;
        if buf.len() < at + len + 2 {
            return Ok(None);
        }
        items.push(String::from_utf8_lossy(&buf[at..at + len]).into_owned());
        at += len + 2;
    }
    Ok(Some((items, at)))
}

/// The line that starts at `at`, without its CRLF, moving `at` past it.
fn line(buf: &[u8], at: &mut usize) -> Option<String> {
    let len = buf[*at..].windows(2).position(|w| w == b"\r\n")?;
    let text = String::from_utf8_lossy(&buf[*at..*at + len]).into_owned();
    *at += len + 2;
    Some(text)
}

/// A message one subscriber got.
pub struct Heard {
    client: usize,
    pub seq: u64,
    pub at: Instant,
}

/// One PUBLISH (SPUBLISH) of an exchange: when it was sent, when its reply came, and the reply
/// (how many subscribers the node that ran it has) or the error.
pub struct Sent {
    pub at: Instant,
    pub answered: Instant,
    pub reply: Result<i64, String>,
}

/// What happened after the fault.
pub struct Exchange {
    feed: Feed,
    /// Each PUBLISH, by message number.
    pub sent: Vec<Sent>,
    /// Each subscriber's messages, in the order they came.
    pub heard: Vec<Vec<Heard>>,
    /// Subscribers whose connection failed, or that got something other than a message.
    failures: Vec<String>,
    /// Still subscribed (unless they failed), so that the nodes can be asked where.
    pub subscribers: Vec<Subscriber>,
}

/// An exchange under way: the publisher and a listener per subscriber run in threads of their
/// own, each bounded in time even if [`Running::finish`] is never called.
pub struct Running {
    stop: Arc<AtomicBool>,
    heard: mpsc::Receiver<Heard>,
    listeners: Vec<JoinHandle<(Subscriber, Result<(), String>)>>,
    publishing: JoinHandle<Vec<Sent>>,
    clients: usize,
    feed: Feed,
}

impl Exchange {
    /// Starts publishing numbered messages on `feed`'s channel on `publisher`, one `every` (the
    /// plain tests: [`PUBLISH_EVERY`]), while the subscribers listen.
    pub fn start(
        subscribers: Vec<Subscriber>,
        publisher: redis::Connection,
        feed: Feed,
        every: Duration,
    ) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, heard) = mpsc::channel();
        let clients = subscribers.len();
        let listeners: Vec<_> = subscribers
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.listen(i, tx.clone(), stop.clone()))
            .collect();
        drop(tx);
        let publishing = publish(publisher, feed, every, stop.clone());
        Running {
            stop,
            heard,
            listeners,
            publishing,
            clients,
            feed,
        }
    }
}

impl Running {
    /// Listens until `enough` says that what the subscribers heard (each one's messages so far)
    /// will do, or [`LISTEN_FOR`] passed, then stops the publisher and the listeners.
    pub fn finish(self, enough: &dyn Fn(&[Vec<Heard>]) -> bool) -> Exchange {
        let mut heard: Vec<Vec<Heard>> = (0..self.clients).map(|_| Vec::new()).collect();
        let deadline = Instant::now() + LISTEN_FOR;
        while !enough(&heard) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            // A timeout, or every listener ended (its error is reported below).
            let Ok(h) = self.heard.recv_timeout(left) else {
                break;
            };
            heard[h.client].push(h);
        }
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.publishing.join().expect("the publisher panicked");
        let mut failures = Vec::new();
        let mut subscribers = Vec::new();
        for (i, l) in self.listeners.into_iter().enumerate() {
            let (s, result) = l.join().expect("a subscriber thread panicked");
            if let Err(e) = result {
                failures.push(format!("subscriber {i}: {e}"));
            }
            subscribers.push(s);
        }
        Exchange {
            feed: self.feed,
            sent,
            heard,
            failures,
            subscribers,
        }
    }
}

/// `PUBLISH channel <n>` (or `SPUBLISH`) for n = 0, 1, ..., one `every`, until `stop` or for
/// [`PUBLISH_AT_MOST`]. One that is held does not make the next ones come in a burst: the pace
/// starts again from its reply.
fn publish(
    mut con: redis::Connection,
    feed: Feed,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Sent>> {
    std::thread::spawn(move || {
        let mut sent = Vec::new();
        let started = Instant::now();
        let mut next = started;
        let at_most = PUBLISH_AT_MOST.as_millis() / every.as_millis().max(1);
        for seq in 0..at_most as u64 {
            if stop.load(Ordering::Relaxed) || started.elapsed() >= PUBLISH_AT_MOST {
                break;
            }
            let at = Instant::now();
            let reply: redis::RedisResult<i64> = redis::cmd(feed.publish)
                .arg(feed.channel)
                .arg(seq)
                .query(&mut con);
            let answered = Instant::now();
            sent.push(Sent {
                at,
                answered,
                reply: reply.map_err(|e| e.to_string()),
            });
            next = (next + every).max(answered);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        sent
    })
}

/// The PUBLISHes that failed: message number and error.
pub fn failed_publishes(ex: &Exchange) -> Vec<(usize, &str)> {
    ex.sent
        .iter()
        .enumerate()
        .filter_map(|(seq, s)| s.reply.as_ref().err().map(|e| (seq, e.as_str())))
        .collect()
}

/// Every PUBLISH (SPUBLISH) through slotgate succeeded.
pub fn assert_published(ex: &Exchange, what: &str) {
    let failed = failed_publishes(ex);
    assert!(
        failed.is_empty(),
        "{} of {} {}es through slotgate failed after the {what}: {:?}",
        failed.len(),
        ex.sent.len(),
        ex.feed.publish,
        &failed[..failed.len().min(5)]
    );
}

/// One subscriber's messages, as [`flows`] found them.
pub struct Flow {
    /// The first message heard, and when.
    pub first: (u64, Instant),
    /// The first message of the gap-free run that lasts to the last one heard: from there on the
    /// subscriber got every message.
    pub resumed: (u64, Instant),
    /// The message numbers missing between the first and the last heard, as inclusive ranges.
    pub lost: Vec<(u64, u64)>,
    /// How many messages that last run holds.
    pub tail: usize,
}

/// Checks that no subscriber failed, and that each heard something, never a number twice, none
/// out of order and none that was not published; returns what each heard.
pub fn flows(ex: &Exchange, what: &str) -> Vec<Flow> {
    assert!(
        ex.failures.is_empty(),
        "after the {what}: {:?}",
        ex.failures
    );
    let mut flows = Vec::new();
    for (client, heard) in ex.heard.iter().enumerate() {
        let (Some(first), Some(last)) = (heard.first(), heard.last()) else {
            panic!(
                "subscriber {client} heard nothing within {LISTEN_FOR:?} of the {what}, while {} \
                 messages were published",
                ex.sent.len()
            );
        };
        let mut resumed = first;
        let mut lost = Vec::new();
        for (i, pair) in heard.windows(2).enumerate() {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(
                b.seq > a.seq,
                "subscriber {client} heard message {} after {}; around it, (number, ms sent, ms \
                 answered, ms heard) from the sending of {}: {:?}",
                b.seq,
                a.seq,
                a.seq,
                around(ex, heard, i)
            );
            if b.seq > a.seq + 1 {
                lost.push((a.seq + 1, b.seq - 1));
                resumed = b;
            }
        }
        assert!(
            last.seq < ex.sent.len() as u64,
            "subscriber {client} heard message {}, but only {} were published",
            last.seq,
            ex.sent.len()
        );
        flows.push(Flow {
            first: (first.seq, first.at),
            resumed: (resumed.seq, resumed.at),
            lost,
            tail: (last.seq - resumed.seq + 1) as usize,
        });
    }
    flows
}

/// The messages heard around the `i`th, each with when it was sent, answered and heard, in ms
/// from the sending of the `i`th.
fn around(ex: &Exchange, heard: &[Heard], i: usize) -> Vec<(u64, i128, i128, i128)> {
    let Some(base) = ex.sent.get(heard[i].seq as usize).map(|s| s.at) else {
        return Vec::new();
    };
    heard[i.saturating_sub(5)..(i + 7).min(heard.len())]
        .iter()
        .map(|h| {
            let (at, answered) = ex
                .sent
                .get(h.seq as usize)
                .map_or((0, 0), |s| (ms(base, s.at), ms(base, s.answered)));
            (h.seq, at, answered, ms(base, h.at))
        })
        .collect()
}

/// Every PUBLISH succeeded, and every subscriber heard again within `within` of the fault and
/// then every message, in order, at least [`HEARD_AFTER_FIRST`] of them. Returns each
/// subscriber's first message and how long after the fault it came.
fn check_flow(ex: &Exchange, fault: Instant, within: Duration, what: &str) -> Vec<(u64, Duration)> {
    assert_published(ex, what);
    let mut firsts = Vec::new();
    for (client, flow) in flows(ex, what).iter().enumerate() {
        let (seq, at) = flow.first;
        assert!(
            flow.lost.is_empty(),
            "subscriber {client} heard messages from {seq} on, but missed {:?}",
            flow.lost
        );
        assert!(
            flow.tail > HEARD_AFTER_FIRST,
            "subscriber {client} heard only {} messages in {LISTEN_FOR:?} after the {what} \
             (from {seq} on)",
            flow.tail
        );
        let after = at.duration_since(fault);
        assert!(
            after <= within,
            "subscriber {client} heard again {} ms after the {what}, not within {} ms",
            after.as_millis(),
            within.as_millis()
        );
        firsts.push((seq, after));
    }
    firsts
}
