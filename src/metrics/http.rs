//! The operator's HTTP endpoint: `/metrics` for Prometheus, `/readyz` and `/livez` (and
//! `/healthz`, its alias, which many charts expect) for the orchestrator, and `/` with
//! `/status.json` for a person: a page that draws the cluster as slotgate sees it. Deliberately
//! tiny (HTTP/1.1 only, no router crate) since it serves a scraper
//! and a probe, not users.
//!
//! [`serve`] takes a bound listener and a shutdown future rather than an address, so tests bind
//! `127.0.0.1:0`, read the real port back, and stop the server in-process.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::Metrics;

/// Connections served at once. A scraper and a probe or two is the normal load; the cap keeps a
/// misbehaving client from turning the metrics port into a way to exhaust the proxy's memory or
/// file descriptors. Further connections wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// A client that has not sent its request headers by then is dropped, so idle or slow-loris
/// connections cannot hold all [`MAX_CONNECTIONS`] slots.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for responses already being written before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (typically out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Whether the proxy can take traffic, as `/readyz` reports it, and whether it still runs, as
/// `/livez` does. A trait rather than a flag so the application can answer from live state (say,
/// "a slot map is loaded and a master reachable") and tests can answer whatever they need. An
/// `Err` carries why, for the response body: the first thing an operator looks at.
pub trait HealthSource: Send + Sync {
    /// `Ok` when a client connecting now would be served.
    fn ready(&self) -> Result<(), String>;
    /// `Err` when some part of the proxy has stopped making progress. That the endpoint answers
    /// at all already says the thread serving it runs.
    fn live(&self) -> Result<(), String> {
        Ok(())
    }

    /// The status page's data, as JSON; `None` where there is none to give.
    fn status_json(&self) -> Option<Vec<u8>> {
        None
    }
}

/// The status page: one self-contained file, no external assets, so it works where the
/// operator's browser reaches nothing but slotgate.
const STATUS_PAGE: &str = include_str!("status.html");

/// Serves the endpoint on `listener` until `shutdown` completes, then stops accepting, lets
/// requests in progress finish (for at most a few seconds), and returns. Errors on single
/// connections are logged and never end the server: losing metrics must not take the proxy down.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<dyn HealthSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Connection tasks watch this to start a graceful close; its sender's `closed()` then tells
    // us when the last of them has finished.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);

    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "metrics endpoint: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };

        let metrics = Arc::clone(&metrics);
        let health = Arc::clone(&health);
        let service = service_fn(move |request: Request<Incoming>| {
            let response = respond(&request, &metrics, health.as_ref());
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut connection = pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "metrics endpoint: connection ended with an error");
            }
        });
    }

    drop(listener);
    drop(stop_rx);
    // Fails only when no connection task is left to tell, which is fine.
    let _ = stop_tx.send(());
    if tokio::time::timeout(DRAIN_TIMEOUT, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("metrics endpoint: connections still open after shutdown; leaving them");
    }
}

/// Synchronous on purpose: every answer is computed from in-memory state, so there is nothing
/// to await and no reason to hold the request's body.
fn respond(
    request: &Request<Incoming>,
    metrics: &Metrics,
    health: &dyn HealthSource,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(
        path,
        "/metrics" | "/readyz" | "/livez" | "/healthz" | "/" | "/status.json"
    ) {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    // HEAD is answered like GET; hyper leaves the body out.
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/metrics" => match metrics.encode_text() {
            Ok(body) => {
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(prometheus::TEXT_FORMAT),
                );
                response
            }
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: encoding failed");
                text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n")
            }
        },
        "/" => typed(
            Bytes::from_static(STATUS_PAGE.as_bytes()),
            "text/html; charset=utf-8",
        ),
        "/status.json" => match health.status_json() {
            Some(json) => typed(Bytes::from(json), "application/json"),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        "/readyz" => match health.ready() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        // `/healthz` is `/livez` under the name many charts probe.
        _ => match health.live() {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not live: {why}\n"),
            ),
        },
    }
}

fn typed(body: Bytes, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(5);

    /// Ready as the first flag says, live as the second.
    struct Flag(AtomicBool, AtomicBool);

    impl HealthSource for Flag {
        fn ready(&self) -> Result<(), String> {
            match self.0.load(Ordering::SeqCst) {
                true => Ok(()),
                false => Err("testing".to_owned()),
            }
        }

        fn live(&self) -> Result<(), String> {
            match self.1.load(Ordering::SeqCst) {
                true => Ok(()),
                false => Err("worker 0 stuck".to_owned()),
            }
        }
    }

    struct Server {
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        health: Arc<Flag>,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<()>,
    }

    impl Server {
        async fn start(ready: bool) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let metrics = Arc::new(Metrics::new());
            let health = Arc::new(Flag(AtomicBool::new(ready), AtomicBool::new(true)));
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(serve(
                listener,
                Arc::clone(&metrics),
                health.clone(),
                async move {
                    let _ = stopped.await;
                },
            ));
            Self {
                addr,
                metrics,
                health,
                stop: Some(stop),
                task,
            }
        }

        async fn shutdown(mut self) {
            self.stop.take().unwrap().send(()).unwrap();
            timeout(WAIT, self.task)
                .await
                .expect("serve returns after shutdown")
                .unwrap();
        }
    }

    struct Reply {
        status: u16,
        head: String,
        body: String,
    }

    /// One request on a fresh connection, read until the server closes it.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        timeout(WAIT, stream.read_to_end(&mut raw))
            .await
            .expect("server closes the connection")
            .unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        Reply {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    #[tokio::test]
    async fn readyz_follows_the_health_source() {
        let server = Server::start(false).await;
        let reply = request(server.addr, "GET", "/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "not ready: testing\n")
        );

        server.health.0.store(true, Ordering::SeqCst);
        let reply = request(server.addr, "GET", "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ready\n"));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn livez_answers_even_when_not_ready() {
        let server = Server::start(false).await;
        let reply = request(server.addr, "GET", "/livez").await;
        assert_eq!(reply.status, 200);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn livez_and_its_alias_healthz_fail_with_the_reason() {
        let server = Server::start(true).await;
        for path in ["/livez", "/healthz"] {
            let reply = request(server.addr, "GET", path).await;
            assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"), "{path}");
        }
        server.health.1.store(false, Ordering::SeqCst);
        for path in ["/livez", "/healthz"] {
            let reply = request(server.addr, "GET", path).await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (503, "not live: worker 0 stuck\n"),
                "{path}"
            );
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn metrics_serves_the_registry_as_text() {
        let server = Server::start(true).await;
        let worker = server.metrics.requests.worker();
        (0..7).for_each(|_| {
            worker.answered(crate::command::CommandId::OTHER, false, Default::default())
        });
        server.metrics.redirections_moved.inc();
        let reply = request(server.addr, "GET", "/metrics").await;
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .head
                .contains("content-type: text/plain; version=0.0.4"),
            "{}",
            reply.head
        );
        let lines: Vec<&str> = reply.body.lines().collect();
        assert!(lines.contains(&"slotgate_requests_total{command=\"other\",result=\"ok\"} 7"));
        assert!(lines.contains(&"slotgate_redirections_total{kind=\"moved\"} 1"));
        assert!(lines.contains(&"# TYPE slotgate_client_connections gauge"));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn query_string_is_ignored() {
        let server = Server::start(true).await;
        assert_eq!(
            request(server.addr, "GET", "/metrics?x=1").await.status,
            200
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn head_has_no_body() {
        let server = Server::start(true).await;
        let reply = request(server.addr, "HEAD", "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, ""));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn the_status_page_is_html() {
        let server = Server::start(true).await;
        let reply = request(server.addr, "GET", "/").await;
        assert_eq!(reply.status, 200);
        assert!(reply.body.starts_with("<!doctype html>"), "{}", reply.body);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn unknown_path_is_404() {
        let server = Server::start(true).await;
        // No status data from this source, so no `/status.json` either.
        for path in ["/metric", "/readyz/extra", "/healthz/", "/status.json"] {
            assert_eq!(
                request(server.addr, "GET", path).await.status,
                404,
                "{path}"
            );
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn other_methods_are_405() {
        let server = Server::start(true).await;
        let reply = request(server.addr, "POST", "/metrics").await;
        assert_eq!(reply.status, 405);
        assert!(reply.head.contains("allow: get, head"), "{}", reply.head);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let server = Server::start(true).await;
        let addr = server.addr;
        server.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn shutdown_closes_idle_keep_alive_connections() {
        let server = Server::start(true).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        let mut chunk = [0u8; 512];
        while !raw.ends_with(b"ready\n") {
            let n = timeout(WAIT, stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert_ne!(n, 0, "closed before the reply was complete");
            raw.extend_from_slice(&chunk[..n]);
        }
        // The connection is kept alive and idle; shutdown must not wait for the drain timeout.
        let started = std::time::Instant::now();
        server.shutdown().await;
        assert!(started.elapsed() < DRAIN_TIMEOUT);
        let n = timeout(WAIT, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "the server closed the connection");
    }
}
