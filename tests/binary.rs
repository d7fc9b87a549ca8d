//! The `slotgate` binary as an operator runs it: flags, config errors, readiness, SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_whitespace().nth(1)?.parse().ok()
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
