//! Scripted fake cluster nodes on loopback and a router in front of them, for tests of the
//! logic above the backend (following redirections, keeping a client's order) without Redis.
//! Each fake node answers `PING` (the connection check) itself and everything else by its
//! script, and like Redis writes the replies to one read's commands in one write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::codec::FramedRead;

use crate::backend::{BackendSettings, Dedicate, Health, Pool};
use crate::cluster::{NodeAddr, RefreshTrigger, Shard, Slot, Topology};
use crate::metrics::Metrics;
use crate::order::Disruptions;
use crate::protocol::{Limits, Request, RequestCodec};
use crate::route::{RouteSettings, Router, ScriptCache, ScriptLimits};

/// What a fake node does with one command: reply with these bytes, or drop the connection.
pub enum Answer {
    Reply(Bytes),
    HangUp,
}

/// A script sees the command's arguments and how many commands the node has seen before it.
pub type Script = Arc<dyn Fn(&[Bytes], usize) -> Answer + Send + Sync>;

/// Starts a fake node; returns its address and a count of the commands it answered or refused.
pub async fn fake_node(script: Script) -> (NodeAddr, Arc<AtomicUsize>) {
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
                let mut out = BytesMut::new();
                while let Some(Ok(req)) = commands.next().await {
                    let answer = match req.name().eq_ignore_ascii_case(b"PING") {
                        true => Answer::Reply(Bytes::from_static(b"+PONG\r\n")),
                        false => script(req.args(), seen.fetch_add(1, Ordering::SeqCst)),
                    };
                    match answer {
                        Answer::Reply(bytes) => out.extend_from_slice(&bytes),
                        Answer::HangUp => return,
                    }
                    if commands.read_buffer().is_empty() {
                        if wr.write_all(&out).await.is_err() {
                            return;
                        }
                        out.clear();
                    }
                }
            });
        }
    });
    (addr, count)
}

pub fn router(metrics: Arc<Metrics>) -> Router {
    let settings = Arc::new(BackendSettings {
        connections_per_node: 1,
        max_inflight: 64,
        connect_timeout: Duration::from_secs(1),
        op_timeout: Duration::from_secs(5),
        reconnect_backoff_min: Duration::from_millis(10),
        reconnect_backoff_max: Duration::from_millis(20),
        limits: Limits::default(),
        readonly: false,
        tcp_keepalive: None,
    });
    let disruptions = Arc::new(Disruptions::default());
    let health = Arc::new(Health::new(Arc::new(|| {}), disruptions.clone()));
    let dedicate = Arc::new(Dedicate::new(
        4,
        settings.clone(),
        metrics.clone(),
        health.clone(),
    ));
    let pool = Pool::new(
        settings,
        metrics.clone(),
        health,
        tokio::runtime::Handle::current(),
        dedicate,
    );
    let route = RouteSettings {
        max_redirects: 5,
        hold_timeout: Duration::from_millis(300),
        read_from: crate::route::ReadFrom::Master,
    };
    let scripts = Arc::new(ScriptCache::new(ScriptLimits {
        max_scripts: 16,
        max_bytes: 1 << 20,
    }));
    Router::new(
        pool,
        RefreshTrigger::default(),
        route,
        metrics,
        disruptions,
        scripts,
    )
}

/// A map in which `owner` serves every slot.
pub fn all_slots_at(owner: &NodeAddr) -> Topology {
    let shard = Shard {
        master: owner.clone(),
        replicas: Vec::new(),
        epoch: 1,
    };
    Topology::from_ranges([(0, 16383, shard)]).unwrap()
}

pub fn request(words: &[&str]) -> Request {
    Request::from_args(words.iter().map(|w| Bytes::from(w.to_string())).collect())
}

/// A script that answers every command with `reply`.
pub fn always(reply: impl Into<Bytes>) -> Script {
    let reply = reply.into();
    Arc::new(move |_, _| Answer::Reply(reply.clone()))
}

/// A redirection of key `k`'s slot to `addr`.
pub fn redirect(kind: &str, addr: &NodeAddr) -> Bytes {
    let slot = Slot::for_key(b"k").get();
    Bytes::from(format!("-{kind} {slot} {addr}\r\n"))
}
