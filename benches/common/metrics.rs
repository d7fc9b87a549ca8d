//! slotgate's HTTP side: `/readyz` to know it is up, `/metrics` to see what it did.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// Far above any /metrics page; bounds what a confused peer can make us buffer.
const MAX_HTTP_BODY: u64 = 1 << 20;

/// Status code and body of `GET path`.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.take(MAX_HTTP_BODY)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no HTTP status line")?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_owned()))
}

/// Every sample of a Prometheus text page, as its name with labels (as printed) and its value.
pub fn samples(body: &str) -> impl Iterator<Item = (&str, f64)> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(series, v)| Some((series, v.parse().ok()?)))
}

/// Whether `series`, a name with or without labels, is of the family `name`, and not merely of
/// one whose name starts the same.
pub fn in_family(series: &str, name: &str) -> bool {
    series
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
}

/// Sum over every label set of one family; `None` if the family is absent.
pub fn metric_sum(body: &str, name: &str) -> Option<f64> {
    samples(body)
        .filter(|(series, _)| in_family(series, name))
        .map(|(_, v)| v)
        .reduce(|a, b| a + b)
}
