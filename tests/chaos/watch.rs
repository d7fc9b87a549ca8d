//! Side threads that timestamp what happens during a test: when a replica becomes master, and
//! how quickly the proxy answers a PING while a backend misbehaves; [`Background`] runs any
//! such poller.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::Value;

use crate::load::connect;
use crate::setup::node_cmd;

const POLL: Duration = Duration::from_millis(50);

/// A side thread that polls something until it is stopped, then hands back what it kept. It is
/// stopped and joined when dropped too, so that a test that fails mid-way leaves none running.
pub struct Background<T> {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<T>>,
}

impl<T: Send + 'static> Background<T> {
    /// Runs `poll` on a thread of its own; it must return soon once its flag is set.
    pub fn spawn(poll: impl FnOnce(&AtomicBool) -> T + Send + 'static) -> Background<T> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || poll(&flag));
        Background {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the thread and returns what it kept.
    pub fn finish(mut self) -> T {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("finished only once");
        thread.join().expect("a watching thread panicked")
    }
}

impl<T> Drop for Background<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Polls `ROLE` on one node every 50 ms and keeps the first time it answers `master`.
pub struct Promotion {
    port: u16,
    promoted: Arc<Mutex<Option<Instant>>>,
    _poller: Background<()>,
}

impl Promotion {
    pub fn watch(port: u16) -> Promotion {
        let promoted = Arc::new(Mutex::new(None));
        let poller = {
            let promoted = promoted.clone();
            Background::spawn(move |stop| {
                while !stop.load(Ordering::Relaxed) {
                    if is_master(port) {
                        *promoted.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some(Instant::now());
                        return;
                    }
                    std::thread::sleep(POLL);
                }
            })
        };
        Promotion {
            port,
            promoted,
            _poller: poller,
        }
    }

    /// When the node became master, if it has yet (without waiting).
    pub fn at(&self) -> Option<Instant> {
        *self.promoted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the node became master; panics if it does not within `timeout`.
    pub fn wait(&self, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.at() {
                return at;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} was not promoted within {timeout:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn is_master(port: u16) -> bool {
    match node_cmd(port, &["ROLE"]) {
        Ok(Value::Array(fields)) => fields.first() == Some(&Value::BulkString(b"master".to_vec())),
        _ => false,
    }
}

/// What the PING prober saw.
#[derive(Debug)]
pub struct PingStats {
    pub count: u64,
    pub max_latency: Duration,
    pub failures: Vec<String>,
}

/// PINGs the proxy every 100 ms on its own connection. PING is answered by the proxy itself, so
/// it should stay fast whatever the backends do; a slow or failing PING means the proxy is
/// stalled or drowning in held work.
/// Dropped mid-way (a test that panics), it stops too.
pub struct Pinger(Background<PingStats>);

impl Pinger {
    pub fn start(proxy: SocketAddr) -> Pinger {
        Pinger(Background::spawn(move |flag| {
            let mut stats = PingStats {
                count: 0,
                max_latency: Duration::ZERO,
                failures: Vec::new(),
            };
            let mut con: Option<redis::Connection> = None;
            while !flag.load(Ordering::Relaxed) {
                let sent = Instant::now();
                if con.is_none() {
                    match connect(proxy) {
                        Ok(c) => con = Some(c),
                        Err(e) => stats.failures.push(format!("connect: {e}")),
                    }
                }
                if let Some(c) = con.as_mut() {
                    let result = redis::cmd("PING").query::<Value>(c);
                    stats.count += 1;
                    stats.max_latency = stats.max_latency.max(sent.elapsed());
                    match result {
                        Ok(Value::SimpleString(s)) if s == "PONG" => {}
                        other => {
                            stats.failures.push(format!("PING: {other:?}"));
                            con = None;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            stats
        }))
    }

    pub fn stop(self) -> PingStats {
        self.0.finish()
    }
}
