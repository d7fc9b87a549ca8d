//! The status page at `/` on the metrics address, loaded in headless Chromium as an operator's
//! browser would: it draws every node of the cluster, and the browser reports no console message
//! (an error in the page's script, or a failed fetch, would show there).

use std::process::Command;

use crate::env;

/// The page's DOM once its script has run (and looked at `/status.json` twice), and what
/// Chromium logged meanwhile.
fn load_in_chromium(url: &str) -> (String, String) {
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("Chromium is needed for this test: scripts/test.sh installs Debian's `chromium`");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("Chromium runs");
    assert!(out.status.success(), "Chromium failed: {:?}", out.status);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_page_shows_every_node_without_a_console_message() {
    let proxy = &env().proxy;
    let (_, json) = proxy.http_get("/status.json");
    assert!(json.contains("\"slots_covered\":16384"), "{json}");
    let url = format!("http://{}/", proxy.metrics_addr);
    let (dom, log) = load_in_chromium(&url);
    for addr in env().cluster.addrs() {
        assert!(dom.contains(&addr), "{addr} is not on the page:\n{dom}");
    }
    assert!(
        dom.contains("16384 of 16384 slots served by 3 masters"),
        "{dom}"
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "the page logged: {console:#?}");
}
