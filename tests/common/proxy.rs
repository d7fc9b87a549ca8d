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

    /// Every sample on `/metrics`, parsed as Prometheus' text format (see [`Scrape`]).
    pub fn scrape(&self) -> Scrape {
        let (status, body) = self.http_get("/metrics");
        assert_eq!(status, 200, "{body}");
        Scrape::parse(&body)
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

/// One sample of a scrape: its name (with `_bucket`, `_sum`, `_count` for a histogram's) and
/// labels, and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A scrape parsed as Prometheus' text exposition format (version 0.0.4): `# HELP` and `# TYPE`
/// lines, then `name{label="value",...} value` samples. Strict where a scraper is: a malformed
/// line, a sample whose family has no `# TYPE`, a label value with a bad escape or a value that
/// is not a number fails the test.
#[derive(Debug)]
pub struct Scrape {
    /// Family name to its type (`counter`, `gauge`, `histogram`, ...).
    pub types: std::collections::BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut types = std::collections::BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut words = rest.splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        assert!(
                            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                            "bad type in {line:?}"
                        );
                        assert!(
                            types.insert(name.to_owned(), kind.to_owned()).is_none(),
                            "{name} typed twice"
                        );
                    }
                    (Some("HELP"), Some(_), _) => {}
                    _ => panic!("bad comment line {line:?}"),
                }
                continue;
            }
            let sample = parse_sample(line);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = sample.name.strip_suffix(suffix)?;
                    (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                })
                .unwrap_or(&sample.name);
            assert!(types.contains_key(family), "no # TYPE for {line:?}");
            samples.push(sample);
        }
        Scrape { types, samples }
    }

    /// The samples named `name` whose labels include every pair of `labels`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
    }

    /// The one sample named `name` with exactly these `labels` (in any order), if present.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.label(k) == Some(v))
            })
            .map(|s| s.value)
    }

    /// The sum of the samples named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).map(|s| s.value).sum()
    }
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| malformed(line));
    let name = &line[..name_end];
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit()),
        "bad metric name in {line:?}"
    );
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            // A label name, `=`, then a quoted value with \\, \" and \n escapes.
            let start = chars
                .peek()
                .map(|(i, _)| *i)
                .unwrap_or_else(|| malformed(line));
            if inner[start..].starts_with('}') {
                rest = &inner[start + 1..];
                break;
            }
            let eq = inner[start..].find('=').unwrap_or_else(|| malformed(line)) + start;
            let key = &inner[start..eq];
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad label name in {line:?}"
            );
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
            let mut value = String::new();
            loop {
                match chars.next().unwrap_or_else(|| malformed(line)).1 {
                    '"' => break,
                    '\\' => match chars.next().unwrap_or_else(|| malformed(line)).1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        _ => malformed(line),
                    },
                    c => value.push(c),
                }
            }
            labels.push((key.to_owned(), value));
            match chars.next().unwrap_or_else(|| malformed(line)) {
                (_, ',') => {}
                (i, '}') => {
                    rest = &inner[i + 1..];
                    break;
                }
                _ => malformed(line),
            }
        }
    }
    let value = rest.strip_prefix(' ').unwrap_or_else(|| malformed(line));
    let value = value.split(' ').next().unwrap_or_else(|| malformed(line));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| malformed(line)),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

fn malformed<T>(line: &str) -> T {
    panic!("malformed sample line {line:?}")
}
