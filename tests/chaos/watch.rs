//! Side threads that timestamp what happens during a test: when a replica becomes master, and
//! how quickly the proxy answers a PING while a backend misbehaves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::Value;

use crate::load::connect;
use crate::setup::node_cmd;

const POLL: Duration = Duration::from_millis(50);

/// Polls `ROLE` on one node every 50 ms and keeps the first time it answers `master`.
pub struct Promotion {
    port: u16,
    promoted: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Promotion {
    pub fn watch(port: u16) -> Promotion {
        let promoted = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let promoted = promoted.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
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
            stop,
            thread: Some(thread),
        }
    }

    /// When the node became master; panics if it does not within `timeout`.
    pub fn wait(&self, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = *self.promoted.lock().unwrap_or_else(PoisonError::into_inner) {
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

impl Drop for Promotion {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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
pub struct Pinger {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<PingStats>>,
}

impl Pinger {
    pub fn start(proxy: SocketAddr) -> Pinger {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
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
        });
        Pinger {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> PingStats {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("stopped only once");
        thread.join().expect("the PING prober panicked")
    }
}

/// A test that panics mid-way must not leave the prober running.
impl Drop for Pinger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
