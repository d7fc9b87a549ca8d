//! The `slotgate` binary as an operator runs it: flags, config errors, readiness, SIGHUP reloads
//! and the SIGTERM drain.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::RedisCluster;

fn slotgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_slotgate"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    http_get(port, path)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The whole response, headers and body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    Some(text)
}

#[test]
fn config_errors_name_the_key_and_stop_startup() {
    let dir = std::env::temp_dir().join(format!("slotgate-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "seeds: [\"127.0.0.1:7000\"]\nlisten_port: 1\n",
            "listen_port",
        ),
        (
            "seeds: [\"127.0.0.1:7000\"]\nbackend:\n  op_timeout_ms: 0\n",
            "backend.op_timeout_ms",
        ),
        ("seeds: []\n", "seeds"),
    ];
    for (i, (yaml, key)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let out = slotgate().arg("--config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(key),
            "stderr for {yaml:?} should name {key}: {err}"
        );
    }
    let out = slotgate()
        .args(["--config", "/nonexistent/slotgate.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/slotgate.yaml"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn not_ready_without_a_cluster_and_exits_cleanly_on_sigterm() {
    let (listen, metrics) = (free_port(), free_port());
    // A short hold, so the client's request for an unserved slot fails quickly; the flags below
    // override the file's other values.
    let config = std::env::temp_dir().join(format!("slotgate-hold-{}.yaml", std::process::id()));
    std::fs::write(
        &config,
        "seeds: [\"127.0.0.1:1\"]\nlisten: 127.0.0.1:1\nbackend:\n  hold_timeout_ms: 300\n",
    )
    .unwrap();
    // Nothing listens on the seed: the proxy must start anyway and report not ready.
    let mut child = slotgate()
        .arg("--config")
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--seed", &format!("127.0.0.1:{}", free_port())])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = http_status(metrics, "/readyz") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "metrics endpoint never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 503);
    assert_eq!(http_status(metrics, "/livez"), Some(200));
    // A client gets a clear error rather than a hang.
    let mut c = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET k\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"-CLUSTERDOWN"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let kill = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "exit status {s}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn check_config_says_ok_or_why_not() {
    let dir = TempDir::new("check");
    let good = dir.file("good.yaml", "seeds: [\"127.0.0.1:7000\"]\n");
    let out = slotgate()
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    // The flags apply on top of the file, as at start-up.
    let out = slotgate()
        .arg("--check-config")
        .arg(&good)
        .args(["--listen", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`listen`"), "{err}");
    let bad = dir.file("bad.yaml", "seeds: [\"127.0.0.1:7000\"]\nmax_clients: 0\n");
    let out = slotgate().arg("--check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_clients"), "{err}");
}

#[test]
fn sighup_applies_what_it_can_names_what_needs_a_restart_and_ignores_a_bad_file() {
    let dir = TempDir::new("hup");
    let (listen, metrics) = (free_port(), free_port());
    let file = |max_clients: &str, level: &str, metrics_port: u16, slower_than_us: i64| {
        format!(
            "seeds: [\"127.0.0.1:{}\"]\nlisten: 127.0.0.1:{listen}\n\
             metrics_listen: 127.0.0.1:{metrics_port}\nmax_clients: {max_clients}\n\
             log: {{level: {level}}}\nslowlog: {{log_slower_than_us: {slower_than_us}}}\n",
            free_port()
        )
    };
    let config = dir.file("slotgate.yaml", &file("1", "warn", metrics, -1));
    let proxy = Running::start(slotgate().arg("--config").arg(&config));
    wait_for_http(metrics);
    // One client is all max_clients lets in.
    let mut first = connect(listen);
    assert_eq!(ask(&mut first, "PING"), "+PONG\r\n");
    assert_eq!(
        read_reply(&mut connect(listen)),
        "-ERR max number of clients reached\r\n"
    );
    assert!(
        !proxy.output().contains(" INFO "),
        "info lines at warn: {}",
        proxy.output()
    );
    assert_eq!(
        ask(&mut first, "SLOWLOG LEN"),
        ":0\r\n",
        "the slow log is off"
    );

    // A new limit, level and slow-log threshold apply, the last to a client already connected;
    // a new metrics address needs a restart and is named.
    std::fs::write(&config, file("2", "info", free_port(), 0)).unwrap();
    proxy.signal("-HUP");
    proxy.wait_for_line(|l| l.contains("config reloaded") && l.contains("max_clients"));
    proxy.wait_for_line(|l| l.contains("need a restart") && l.contains("metrics_listen"));
    let mut second = connect(listen);
    assert_eq!(ask(&mut second, "PING"), "+PONG\r\n");
    assert_eq!(http_status(metrics, "/livez"), Some(200), "metrics moved");
    first.write_all(b"ECHO slow\r\n").unwrap();
    assert_eq!(read_resp(&mut first), "$4\r\nslow\r\n");
    first.write_all(b"SLOWLOG GET\r\n").unwrap();
    let logged = read_resp(&mut first);
    assert!(logged.contains("$4\r\nECHO\r\n$4\r\nslow\r\n"), "{logged}");

    // A file that does not validate changes nothing: the limit stays 2.
    std::fs::write(&config, file("0", "debug", metrics, 0)).unwrap();
    proxy.signal("-HUP");
    proxy.wait_for_line(|l| l.contains("config reload failed") && l.contains("max_clients"));
    assert_eq!(
        read_reply(&mut connect(listen)),
        "-ERR max number of clients reached\r\n"
    );
    assert!(!proxy.output().contains(" DEBUG "), "{}", proxy.output());
    assert_eq!(ask(&mut first, "PING"), "+PONG\r\n");
    proxy.signal("-TERM");
    assert!(proxy.wait().success());
}

#[test]
fn sigterm_drains_requests_in_flight_refuses_new_clients_and_exits_0() {
    let cluster = RedisCluster::start(3, 0, 5000);
    let (listen, metrics) = (free_port(), free_port());
    let proxy = Running::start(
        slotgate()
            .args(["--seed", &cluster.seed_addr()])
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")]),
    );
    wait_for(Duration::from_secs(30), "ready", || {
        http_status(metrics, "/readyz") == Some(200)
    });
    let mut idle = connect(listen);
    assert_eq!(ask(&mut idle, "PING"), "+PONG\r\n");
    let mut blocked = connect(listen);
    blocked.write_all(b"BLPOP drain:empty 2\r\n").unwrap();
    // The BLPOP is in flight, on a connection of its own, before the signal.
    wait_for(Duration::from_secs(10), "the BLPOP sent", || {
        http_get(metrics, "/metrics")
            .is_some_and(|m| m.lines().any(|l| l == "slotgate_dedicated_connections 1"))
    });
    let signalled = Instant::now();
    proxy.signal("-TERM");

    wait_for(Duration::from_secs(1), "readyz 503", || {
        http_status(metrics, "/readyz") == Some(503)
    });
    wait_for(Duration::from_secs(1), "new clients refused", || {
        TcpStream::connect(("127.0.0.1", listen)).is_err()
    });
    // The idle client is closed at once, the blocked one gets its reply when it is due.
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "idle client closed late"
    );
    assert_eq!(read_reply(&mut blocked), "*-1\r\n");
    assert!(signalled.elapsed() >= Duration::from_millis(1500));
    let status = proxy.wait();
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "drain took too long"
    );
    let output = proxy.output();
    assert!(output.contains("draining"), "{output}");
    drop(cluster);
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("slotgate-bin-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary, running, with its output (standard output and error) gathered line by line.
struct Running {
    child: Mutex<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(command: &mut Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Running {
            child: Mutex::new(child),
            lines,
        }
    }

    /// `kill -HUP pid`, `kill -TERM pid`.
    fn signal(&self, which: &str) {
        let pid = self.child.lock().unwrap().id().to_string();
        let status = Command::new("kill").args([which, &pid]).status().unwrap();
        assert!(status.success(), "kill {which} {pid}");
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn wait_for_line(&self, want: impl Fn(&str) -> bool) {
        wait_for(Duration::from_secs(10), "a log line", || {
            self.lines.lock().unwrap().iter().any(|l| want(l))
        });
    }

    /// Its exit status, within 15 s.
    fn wait(&self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.lock().unwrap().try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "still running: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn wait_for(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "no {what} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_http(port: u16) {
    wait_for(Duration::from_secs(20), "metrics endpoint", || {
        http_status(port, "/livez").is_some()
    });
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends an inline command and reads its one-line reply.
fn ask(s: &mut TcpStream, command: &str) -> String {
    s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    read_reply(s)
}

/// Reads one whole RESP2 reply, nested arrays and bulk strings included.
fn read_resp(s: &mut TcpStream) -> String {
    let line = read_reply(s);
    let n: i64 = line[1..line.len() - 2].parse().unwrap_or(-1);
    match line.as_bytes()[0] {
        b'$' if n >= 0 => {
            let mut body = vec![0u8; n as usize + 2];
            s.read_exact(&mut body).unwrap();
            line + &String::from_utf8_lossy(&body)
        }
        b'*' if n >= 0 => (0..n).fold(line, |all, _| all + &read_resp(s)),
        _ => line,
    }
}

/// Reads until the reply's first line is complete; the replies read here are one line long.
fn read_reply(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => got.push(byte[0]),
            Err(e) => panic!("read after {:?}: {e}", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}
