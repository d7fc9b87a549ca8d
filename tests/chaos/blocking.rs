//! Blocking commands across a failover of the master they wait on. Four clients wait in
//! `BLPOP {q}:list 0` through slotgate (each on a connection of its own to the list's master)
//! when that master is replaced, then six values are pushed through slotgate.
//!
//! `manual_failover_sends_blocked_pops_to_the_new_master` (`CLUSTER FAILOVER` on the replica):
//! the old master releases its blocked clients with `-UNBLOCKED`, which means they popped
//! nothing. A witness blocked on the old master directly, not through slotgate, must get exactly
//! that error, which shows the test exercises that path. Through slotgate the test asserts:
//! - no client gets a reply during the failover: every BLPOP is sent again, and all four end up
//!   blocked on the new master and none on the old one;
//! - after six RPUSHes each client has got exactly one value, no value went to two clients, and
//!   the two values nobody popped are still in the list (LRANGE through slotgate, LLEN on the
//!   new master), so nothing was lost or duplicated.
//!
//! `sigkill_master_tells_blocked_pops_the_outcome_is_unknown` (SIGKILL of the master): the
//! connections die with the BLPOPs written, so slotgate cannot know whether they popped
//! anything. The test asserts:
//! - each client gets `ERR slotgate: connection to 127.0.0.1:PORT lost, outcome unknown`,
//!   naming the killed master, within 5 s of the kill (not a hang, not another error);
//! - each then sends BLPOP again at once, while the master is down: the connection is refused, so
//!   that BLPOP never ran; it is held and must end up blocked on the promoted replica, with no
//!   reply before the push; after six RPUSHes the same exactly-once check as above holds;
//! - a fifth client, blocked on a list of another shard (which Redis releases with `-CLUSTERDOWN`
//!   while the cluster is failing), gets no error and exactly the one value pushed for it.
//!
//! Every client connection has a 15 s read timeout and every wait is bounded, so a lost wake-up
//! fails the test instead of hanging it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use redis::Value;
use slotgate::cluster::Slot;

use crate::load::connect;
use crate::setup::{self, info_field, node_cmd, shard_of, PROMOTION_TIMEOUT};
use crate::watch::Promotion;

const LIST: &str = "{q}:list";
/// Same hash tag, so the same slot and master as `LIST`.
const WITNESS_LIST: &str = "{q}:witness";
const CLIENTS: usize = 4;
const PUSHED: usize = 6;
/// Blocked clients show up on a node, or a held BLPOP reaches the new master, within this.
const BLOCKED_WITHIN: Duration = Duration::from_secs(15);
/// A client whose connection to the master died is told within this.
const TOLD_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn manual_failover_sends_blocked_pops_to_the_new_master() {
    let env = setup::start();
    let (old, new) = shard_of(&env, LIST);
    let pops = poppers(env.proxy.addr, LIST, CLIENTS, 1);
    let witness = witness(old, WITNESS_LIST);
    wait_blocked(old, CLIENTS + 1);

    let promotion = Promotion::watch(new);
    let failover = Instant::now();
    let reply = node_cmd(new, &["CLUSTER", "FAILOVER"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply, Value::Okay, "CLUSTER FAILOVER on {new}");
    let promoted = promotion.wait(PROMOTION_TIMEOUT);
    let released = witness
        .recv_timeout(BLOCKED_WITHIN)
        .expect("the old master answers its blocked client");
    let err = released.expect_err("the witness's BLPOP cannot pop from an empty list");
    assert_eq!(
        err.code(),
        Some("UNBLOCKED"),
        "the old master released its blocked client with {err}, not UNBLOCKED"
    );
    let reblocked = wait_blocked(new, CLIENTS);
    assert_eq!(
        blocked(old),
        Ok(0),
        "clients still blocked on the old master"
    );
    assert_no_reply_yet(&pops, "during the failover");

    let pushed = Instant::now();
    let popped = push_and_collect(&env, &pops, LIST, CLIENTS);
    let served = Instant::now();
    check_the_rest(&env, new, LIST, &popped);
    println!(
        "\n===== manual failover with {CLIENTS} BLPOPs: promoted {} ms after CLUSTER FAILOVER, \
         all blocked on the new master after {} ms, all served {} ms after the first RPUSH",
        promoted.duration_since(failover).as_millis(),
        reblocked.duration_since(failover).as_millis(),
        served.duration_since(pushed).as_millis()
    );
}

#[test]
fn sigkill_master_tells_blocked_pops_the_outcome_is_unknown() {
    let mut env = setup::start();
    let (victim, replica) = shard_of(&env, LIST);
    let control_list = list_off_shard(&env, victim);
    let control_master = env
        .cluster
        .master_of_slot(Slot::for_key(control_list.as_bytes()).get());
    let pops = poppers(env.proxy.addr, LIST, CLIENTS, 2);
    let control = poppers(env.proxy.addr, control_list, 1, 1);
    wait_blocked(victim, CLIENTS);
    wait_blocked(control_master, 1);

    let promotion = Promotion::watch(replica);
    let killed = Instant::now();
    env.cluster.kill(victim);
    let lost = format!("connection to 127.0.0.1:{victim} lost, outcome unknown");
    let mut told = Vec::new();
    for _ in 0..CLIENTS {
        let pop = next_pop(&pops, TOLD_WITHIN, "an error after the kill");
        let err = pop.reply.as_ref().expect_err("nothing was pushed");
        assert!(
            err.code() == Some("ERR") && err.detail().is_some_and(|d| d.contains(&lost)),
            "client {} got {err}, not the error {lost:?}",
            pop.client
        );
        let after = pop.at.duration_since(killed);
        assert!(
            after < TOLD_WITHIN,
            "client {} was told after {after:?}",
            pop.client
        );
        told.push((pop.client, after.as_millis()));
    }
    told.sort_unstable();
    let clients: Vec<usize> = told.iter().map(|t| t.0).collect();
    assert_eq!(
        clients,
        (0..CLIENTS).collect::<Vec<_>>(),
        "one error per client"
    );
    let promoted = promotion.wait(PROMOTION_TIMEOUT);
    let reblocked = wait_blocked(replica, CLIENTS);
    assert_no_reply_yet(&pops, "while the held BLPOPs wait on the new master");
    assert_no_reply_yet(&control, "on the healthy shard");

    let pushed = Instant::now();
    let popped = push_and_collect(&env, &pops, LIST, CLIENTS);
    let served = Instant::now();
    check_the_rest(&env, replica, LIST, &popped);
    let control_popped = push_and_collect(&env, &control, control_list, 1);
    check_the_rest(&env, control_master, control_list, &control_popped);
    println!(
        "\n===== SIGKILL with {CLIENTS} BLPOPs: outcome unknown after {:?} ms (client, ms after \
         the kill); promoted after {} ms; held BLPOPs all blocked on the new master after {} ms; \
         all served {} ms after the first RPUSH; healthy shard's BLPOP stats: {}",
        told,
        promoted.duration_since(killed).as_millis(),
        reblocked.duration_since(killed).as_millis(),
        served.duration_since(pushed).as_millis(),
        info_field(control_master, "commandstats", "cmdstat_blpop").unwrap_or_default()
    );
}

/// A list whose slot another master than `master` serves.
fn list_off_shard(env: &setup::Env, master: u16) -> &'static str {
    [
        "{c0}:list",
        "{c1}:list",
        "{c2}:list",
        "{c3}:list",
        "{c4}:list",
    ]
    .into_iter()
    .find(|k| {
        env.cluster
            .master_of_slot(Slot::for_key(k.as_bytes()).get())
            != master
    })
    .expect("five hash tags do not all land on one master of three")
}

/// What one BLPOP through slotgate returned, and when.
struct Pop {
    client: usize,
    at: Instant,
    reply: redis::RedisResult<(String, String)>,
}

/// `clients` threads, each on a connection of its own through slotgate, each sending
/// `BLPOP list 0` until it pops a value, at most `attempts` times; every reply is reported as it
/// comes.
fn poppers(
    proxy: SocketAddr,
    list: &'static str,
    clients: usize,
    attempts: usize,
) -> Receiver<Pop> {
    let (tx, rx) = mpsc::channel();
    for client in 0..clients {
        let tx = tx.clone();
        let mut con = connect(proxy).unwrap_or_else(|e| panic!("client {client}: {e}"));
        std::thread::spawn(move || {
            for _ in 0..attempts {
                let reply = redis::cmd("BLPOP").arg(list).arg(0).query(&mut con);
                let popped = reply.is_ok();
                let pop = Pop {
                    client,
                    at: Instant::now(),
                    reply,
                };
                if tx.send(pop).is_err() || popped {
                    return;
                }
            }
        });
    }
    rx
}

/// A client blocked in `BLPOP list 0` on `port` itself, not through slotgate.
fn witness(port: u16, list: &'static str) -> Receiver<redis::RedisResult<Value>> {
    let (tx, rx) = mpsc::channel();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("127.0.0.1:{port}: {e}"));
    con.set_read_timeout(Some(crate::load::CLIENT_READ_TIMEOUT))
        .unwrap();
    std::thread::spawn(move || {
        let _ = tx.send(redis::cmd("BLPOP").arg(list).arg(0).query(&mut con));
    });
    rx
}

fn next_pop(pops: &Receiver<Pop>, within: Duration, what: &str) -> Pop {
    match pops.recv_timeout(within) {
        Ok(pop) => pop,
        Err(RecvTimeoutError::Timeout) => panic!("no client got {what} within {within:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("every client is done, none got {what}"),
    }
}

fn assert_no_reply_yet(pops: &Receiver<Pop>, when: &str) {
    match pops.try_recv() {
        Err(TryRecvError::Empty) => {}
        Ok(pop) => panic!(
            "client {} was answered {when}, before anything was pushed: {:?}",
            pop.client, pop.reply
        ),
        Err(TryRecvError::Disconnected) => panic!("every client is gone {when}"),
    }
}

/// `blocked_clients` of `port`.
fn blocked(port: u16) -> Result<usize, String> {
    let n = info_field(port, "clients", "blocked_clients")?;
    n.parse().map_err(|e| format!("blocked_clients {n:?}: {e}"))
}

/// Waits until exactly `n` clients are blocked on `port`, and returns when they were.
fn wait_blocked(port: u16, n: usize) -> Instant {
    let deadline = Instant::now() + BLOCKED_WITHIN;
    loop {
        let now = blocked(port);
        if now == Ok(n) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{n} clients should be blocked on {port}, but after {BLOCKED_WITHIN:?}: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pushes `PUSHED` values to `list` through slotgate, one RPUSH each, and returns the values the
/// `clients` blocked clients popped: one each, all different.
fn push_and_collect(
    env: &setup::Env,
    pops: &Receiver<Pop>,
    list: &str,
    clients: usize,
) -> Vec<String> {
    let mut con = connect(env.proxy.addr).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..PUSHED {
        let _: i64 = redis::cmd("RPUSH")
            .arg(list)
            .arg(value(i))
            .query(&mut con)
            .unwrap_or_else(|e| panic!("RPUSH {list} through slotgate: {e}"));
    }
    let mut served = BTreeSet::new();
    let mut popped = Vec::new();
    for _ in 0..clients {
        let pop = next_pop(pops, Duration::from_secs(10), "a value");
        let (key, v) = pop
            .reply
            .unwrap_or_else(|e| panic!("client {} got {e} after the push", pop.client));
        assert_eq!(key, list, "client {}", pop.client);
        assert!(
            served.insert(pop.client),
            "client {} popped twice",
            pop.client
        );
        assert!(!popped.contains(&v), "{v} was popped twice");
        popped.push(v);
    }
    popped
}

fn value(i: usize) -> String {
    format!("v{i}")
}

/// What nobody popped is still in `list`, through slotgate and on `master`: together with
/// `popped`, exactly the values pushed, each once.
fn check_the_rest(env: &setup::Env, master: u16, list: &str, popped: &[String]) {
    let mut con = connect(env.proxy.addr).unwrap_or_else(|e| panic!("{e}"));
    let rest: Vec<String> = redis::cmd("LRANGE")
        .arg(list)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap_or_else(|e| panic!("LRANGE {list} through slotgate: {e}"));
    let mut all: Vec<String> = popped.iter().chain(&rest).cloned().collect();
    all.sort();
    let mut want: Vec<String> = (0..PUSHED).map(value).collect();
    want.sort();
    assert_eq!(all, want, "popped {popped:?}, left {rest:?}");
    let llen = node_cmd(master, &["LLEN", list]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        llen,
        Value::Int((PUSHED - popped.len()) as i64),
        "LLEN on {master}"
    );
}
