//! One client thread: SET and GET in turn on its own keys, paced, timing every request.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::thread::sleep;
use std::time::{Duration, Instant};

use redis::Value;

use crate::load::{ClientLog, Sample, Shared};

pub struct Client {
    pub id: usize,
    pub proxy: SocketAddr,
    pub keys: Vec<String>,
    pub shard: u8,
    pub period: Option<Duration>,
    pub read_timeout: Duration,
    pub t0: Instant,
    pub first: Instant,
    pub deadline: Instant,
}

impl Client {
    pub fn run(self, shared: &Shared) -> ClientLog {
        let mut log = ClientLog::default();
        let mut con: Option<redis::Connection> = None;
        let mut next = self.first;
        let mut j: u64 = 0;
        while !shared.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline {
            if let Some(period) = self.period {
                let now = Instant::now();
                if next > now {
                    sleep(next - now);
                }
                // A client that was held skips the slots it missed instead of bursting to catch
                // up: the load after a failover should look like the load before it.
                next = (next + period).max(Instant::now());
            }
            let key = &self.keys[(j / 2) as usize % self.keys.len()];
            let mut cmd = redis::cmd(if j.is_multiple_of(2) { "SET" } else { "GET" });
            cmd.arg(key);
            if j.is_multiple_of(2) {
                cmd.arg(format!("c{}:{j}", self.id));
            }
            let sent = Instant::now();
            let result = self.request(&mut con, &cmd, j.is_multiple_of(2));
            let done = Instant::now();
            let sent_us = sent.saturating_duration_since(self.t0).as_micros() as u64;
            let latency_us = done.saturating_duration_since(sent).as_micros() as u64;
            log.samples.push(Sample {
                sent_us,
                latency_us,
                shard: self.shard,
                ok: result.is_ok(),
            });
            match result {
                Ok(()) => {
                    shared.last_ok[usize::from(self.shard)]
                        .fetch_max(sent_us + latency_us + 1, Ordering::Relaxed);
                }
                Err(text) => {
                    *log.errors.entry((self.shard, text)).or_default() += 1;
                    if con.is_none() {
                        // Slotgate unreachable: do not spin on connect.
                        sleep(Duration::from_millis(10));
                    }
                }
            }
            j += 1;
        }
        log
    }

    /// Error replies keep the connection; I/O errors and timeouts drop it, since a late reply
    /// would otherwise be taken for the next request's.
    fn request(
        &self,
        con: &mut Option<redis::Connection>,
        cmd: &redis::Cmd,
        is_set: bool,
    ) -> Result<(), String> {
        if con.is_none() {
            *con = Some(
                connect(self.proxy, self.read_timeout)
                    .map_err(|e| format!("client: cannot connect to slotgate: {e}"))?,
            );
        }
        let c = con.as_mut().expect("connected above");
        match cmd.query::<Value>(c) {
            Ok(Value::Okay) if is_set => Ok(()),
            Ok(Value::BulkString(_) | Value::Nil) if !is_set => Ok(()),
            Ok(other) => Err(format!("client: unexpected reply {other:?}")),
            Err(e) if e.code().is_some() => Err(e.to_string()),
            Err(e) => {
                *con = None;
                let what = if e.is_timeout() {
                    "client: no reply within the client read timeout"
                } else {
                    "client: connection failed"
                };
                Err(format!("{what}: {e}"))
            }
        }
    }
}

fn connect(proxy: SocketAddr, read_timeout: Duration) -> Result<redis::Connection, String> {
    let client = redis::Client::open(format!("redis://{proxy}/")).map_err(|e| e.to_string())?;
    let con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(read_timeout))
        .and_then(|()| con.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| e.to_string())?;
    Ok(con)
}
