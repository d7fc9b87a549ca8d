//! The router's follow loop against scripted fake nodes on loopback: what a client gets when a
//! node redirects, refuses or drops a request, and what the router learns from it. Each fake node
//! answers `PING` (the connection check) itself and everything else by its script.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::codec::FramedRead;

use super::router::{RouteSettings, Router};
use crate::backend::{BackendSettings, Health, Pool};
use crate::cluster::{NodeAddr, RefreshTrigger, Shard, Slot, Topology};
use crate::command::CommandTable;
use crate::metrics::Metrics;
use crate::order::{Disruptions, Turn};
use crate::protocol::{Limits, Reply, Request, RequestCodec};

/// What a fake node does with one command: reply with these bytes, or drop the connection.
enum Answer {
    Reply(Bytes),
    HangUp,
}

/// A script sees the command's arguments and how many commands the node has seen before it.
type Script = Arc<dyn Fn(&[Bytes], usize) -> Answer + Send + Sync>;

/// Starts a fake node; returns its address and a count of the commands it answered or refused.
async fn fake_node(script: Script) -> (NodeAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: NodeAddr = listener.local_addr().unwrap().to_string().into();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (script, seen) = (script.clone(), seen.clone());
            tokio::spawn(async move {
                let (rd, mut wr) = stream.into_split();
                let mut commands = FramedRead::new(rd, RequestCodec::new(Limits::default()));
                while let Some(Ok(req)) = commands.next().await {
                    let answer = match req.name().eq_ignore_ascii_case(b"PING") {
                        true => Answer::Reply(Bytes::from_static(b"+PONG\r\n")),
                        false => script(req.args(), seen.fetch_add(1, Ordering::SeqCst)),
                    };
                    match answer {
                        Answer::Reply(bytes) => {
                            if wr.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                        Answer::HangUp => return,
                    }
                }
            });
        }
    });
    (addr, count)
}

fn router(metrics: Arc<Metrics>) -> Router {
    let settings = Arc::new(BackendSettings {
        connections_per_node: 1,
        max_inflight: 64,
        connect_timeout: Duration::from_secs(1),
        op_timeout: Duration::from_secs(5),
        reconnect_backoff_min: Duration::from_millis(10),
        reconnect_backoff_max: Duration::from_millis(20),
        limits: Limits::default(),
    });
    let disruptions = Arc::new(Disruptions::default());
    let health = Arc::new(Health::new(Arc::new(|| {}), disruptions.clone()));
    let pool = Pool::new(
        settings,
        metrics.clone(),
        health,
        tokio::runtime::Handle::current(),
    );
    let route = RouteSettings {
        max_redirects: 5,
        hold_timeout: Duration::from_millis(300),
    };
    Router::new(pool, RefreshTrigger::default(), route, metrics, disruptions)
}

/// A map in which `owner` serves every slot.
fn all_slots_at(owner: &NodeAddr) -> Topology {
    let shard = Shard {
        master: owner.clone(),
        replicas: Vec::new(),
        epoch: 1,
    };
    Topology::from_ranges([(0, 16383, shard)]).unwrap()
}

fn request(words: &[&str]) -> Request {
    Request::from_args(words.iter().map(|w| Bytes::from(w.to_string())).collect())
}

/// Runs `words` the way a session's slow path does.
async fn run(router: &Router, words: &[&str]) -> Reply {
    let req = request(words);
    let plan = CommandTable::builtin().classify(&req);
    router.execute(&req, plan, 0, Turn::now()).await
}

/// A script that answers every command with `reply`.
fn always(reply: impl Into<Bytes>) -> Script {
    let reply = reply.into();
    Arc::new(move |_, _| Answer::Reply(reply.clone()))
}

/// A redirection of key `k`'s slot to `addr`.
fn redirect(kind: &str, addr: &NodeAddr) -> Bytes {
    let slot = Slot::for_key(b"k").get();
    Bytes::from(format!("-{kind} {slot} {addr}\r\n"))
}

#[tokio::test]
async fn moved_is_followed_and_the_slot_remembered() {
    let (new_owner, new_seen) = fake_node(always(&b"$1\r\nv\r\n"[..])).await;
    let (old_owner, old_seen) = fake_node(always(redirect("MOVED", &new_owner))).await;
    let metrics = Arc::new(Metrics::new());
    let router = router(metrics.clone());
    router.install(&all_slots_at(&old_owner));

    assert_eq!(run(&router, &["GET", "k"]).await, Reply::bulk(b"v"));
    assert_eq!(metrics.redirections_moved.get(), 1);
    assert_eq!(
        router.topology().master_of(Slot::for_key(b"k")),
        Some(&new_owner)
    );
    // The next request goes to the new owner directly.
    assert_eq!(run(&router, &["GET", "k"]).await, Reply::bulk(b"v"));
    assert_eq!(old_seen.load(Ordering::SeqCst), 1);
    assert_eq!(new_seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn ask_sends_asking_first_and_leaves_the_map_alone() {
    let (importing, _) = fake_node(Arc::new(|args, _| {
        match args[0].eq_ignore_ascii_case(b"ASKING") {
            true => Answer::Reply(Bytes::from_static(b"+OK\r\n")),
            // Without ASKING first, a node importing the slot would redirect back.
            false => Answer::Reply(Bytes::from_static(b"$8\r\nimported\r\n")),
        }
    }))
    .await;
    let (owner, _) = fake_node(always(redirect("ASK", &importing))).await;
    let metrics = Arc::new(Metrics::new());
    let router = router(metrics.clone());
    router.install(&all_slots_at(&owner));

    assert_eq!(run(&router, &["GET", "k"]).await, Reply::bulk(b"imported"));
    assert_eq!(metrics.redirections_ask.get(), 1);
    assert_eq!(
        router.topology().master_of(Slot::for_key(b"k")),
        Some(&owner)
    );
}

#[tokio::test]
async fn a_redirect_loop_ends_at_the_limit() {
    let slot = Slot::for_key(b"k").get();
    let (a, _) = fake_node(always(&b"-TRYAGAIN later\r\n"[..])).await;
    let router = router(Arc::new(Metrics::new()));
    router.install(&all_slots_at(&a));
    let reply = run(&router, &["GET", "k"]).await;
    assert_eq!(
        reply,
        Reply::error_line(&format!(
            "ERR slotgate: too many redirections for slot {slot} (limit 5)"
        ))
    );
}

/// The node reads the command and closes the connection before answering: the command may have
/// run. Only one that is safe to repeat is sent again; the node answers the second attempt.
#[tokio::test]
async fn a_lost_request_is_sent_again_only_when_safe() {
    let (node, seen) = fake_node(Arc::new(|_, n| match n {
        0 | 2 => Answer::HangUp,
        _ => Answer::Reply(Bytes::from_static(b"+OK\r\n")),
    }))
    .await;
    let metrics = Arc::new(Metrics::new());
    let router = router(metrics.clone());
    router.install(&all_slots_at(&node));

    assert_eq!(run(&router, &["SET", "k", "v"]).await, Reply::ok());
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    let reply = run(&router, &["INCR", "k"]).await;
    assert_eq!(
        reply,
        Reply::error_line(&format!(
            "ERR slotgate: connection to {node} lost, outcome unknown"
        ))
    );
    assert_eq!(seen.load(Ordering::SeqCst), 3, "INCR was not sent twice");
    let text = metrics.encode_text().unwrap();
    assert!(
        text.contains("slotgate_errors_total{kind=\"backend_connection_lost\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn cross_slot_keys_are_refused_without_a_round_trip() {
    let (node, seen) = fake_node(always(&b"+OK\r\n"[..])).await;
    let metrics = Arc::new(Metrics::new());
    let router = router(metrics.clone());
    router.install(&all_slots_at(&node));
    assert_eq!(
        run(&router, &["RENAME", "a", "b"]).await,
        Reply::error_line("CROSSSLOT Keys in request don't hash to the same slot")
    );
    assert_eq!(seen.load(Ordering::SeqCst), 0);
    let text = metrics.encode_text().unwrap();
    assert!(text.contains("slotgate_errors_total{kind=\"crossslot\"} 1"));
}
