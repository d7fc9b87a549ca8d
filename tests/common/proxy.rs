//! slotgate started in-process in front of a cluster, the way the binary runs it: the same
//! `app::run`, on its own runtime thread, with listeners on port 0.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use slotgate::config::Config;

pub struct Proxy {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy seeded with `seeds`, after `tweak` adjusts the defaults, and waits until
    /// `/readyz` says every slot is covered (the harness turns that rule on).
    pub fn start(seeds: Vec<String>, tweak: impl FnOnce(&mut Config)) -> Proxy {
        let p = Proxy::start_unready(seeds, tweak);
        p.wait_ready(Duration::from_secs(30));
        p
    }

    /// Starts without waiting for readiness (for start-up tests).
    pub fn start_unready(seeds: Vec<String>, tweak: impl FnOnce(&mut Config)) -> Proxy {
        let mut config = Config {
            seeds,
            ..Config::default()
        };
        // Tests start once every slot can be served, not as soon as one can.
        config.health.ready_requires_full_coverage = true;
        // A test's proxy stops when the test ends, with whatever its clients are doing.
        config.shutdown.drain_timeout_ms = 0;
        tweak(&mut config);
        let config = config.validate().expect("test config is valid");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        metrics.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                let m = tokio::net::TcpListener::from_std(metrics).unwrap();
                slotgate::app::run(config, l, Some(m), async move {
                    let _ = stopped.await;
                })
                .await
                .expect("proxy runs");
            });
            // Sessions and backend connections ended with their worker threads before `run`
            // returned; what is left here (refresher, metrics server) goes with the runtime.
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        Proxy {
            addr,
            metrics_addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// A plain, cluster-unaware client connection.
    pub fn client(&self) -> redis::Connection {
        let con = redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .expect("connect to slotgate");
        con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        con
    }

    /// HTTP status of `GET path` on the metrics listener, and the body.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.metrics_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The value of one series on `/metrics`, e.g. `slotgate_dedicated_connections`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics");
        body.lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    /// Waits until `series` reads `want`, panicking with its last value after `timeout`.
    pub fn wait_metric(&self, series: &str, want: f64, timeout: Duration) {
        let start = Instant::now();
        loop {
            let now = self.metric(series);
            if now == Some(want) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{series} is {now:?}, not {want}, after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let start = Instant::now();
        while self.http_get("/readyz").0 != 200 {
            assert!(
                start.elapsed() < timeout,
                "slotgate not ready after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
