//! The accept loop: the one place that admits clients, so the client limit and the spread over
//! workers are decided once, before a session exists.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::{session, Worker};

/// Who gets in: the client limit (`max_clients`, which a reload may change) and the clients
/// connected, over every worker. A count and a limit rather than a semaphore, so that a lower
/// limit applies at once to the next client without taking seats from those connected.
pub struct Admission {
    limit: AtomicUsize,
    open: AtomicUsize,
}

impl Admission {
    pub fn new(limit: usize) -> Arc<Admission> {
        Arc::new(Admission {
            limit: AtomicUsize::new(limit),
            open: AtomicUsize::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Takes effect for the next client accepted.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Clients whose sessions have not ended yet.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A seat, unless `limit` clients are in. Only the accept loop takes seats, so the check and
    /// the count cannot race another admission.
    fn admit(self: &Arc<Self>) -> Option<Admitted> {
        if self.open() >= self.limit() {
            return None;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Admitted(self.clone()))
    }
}

/// A client counted as connected until its session ends, however it ends.
struct Admitted(Arc<Admission>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts clients until `shutdown` resolves and hands each to the worker with the fewest. Past
/// the admission's limit, a new client gets Redis' own error and is closed, so the limit
/// protects memory without hanging anyone. The listener is dropped on return: from then on a
/// new connection is refused by the kernel.
pub async fn serve(
    listener: TcpListener,
    workers: Vec<Arc<Worker>>,
    admission: Arc<Admission>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let quiet = crate::logging::Throttle::default();
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                if let Some(held) = quiet.admit(&()) {
                    tracing::warn!(error = %e, held, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(permit) = admission.admit() else {
            if let Some(w) = workers.first() {
                w.fe.metrics.client_connections_rejected.inc();
            }
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        };
        let Some(worker) = workers.iter().min_by_key(|s| s.clients()) else {
            return;
        };
        let keepalive = worker.fe.client_settings().tcp_keepalive;
        if let Err(e) = crate::keepalive::set(&stream, keepalive) {
            tracing::debug!(error = %e, "cannot turn TCP keepalive on");
        }
        // The socket leaves this runtime's reactor and joins the worker's.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand a client to a worker");
                continue;
            }
        };
        let seat = Seat::take(worker.clone());
        worker.rt.spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => session::run(stream, seat.0.fe.clone()).await,
                Err(e) => tracing::warn!(error = %e, "cannot register a client"),
            }
            drop(seat);
            drop(permit);
        });
    }
}

/// A client counted against its worker for as long as its session lives, however it ends.
struct Seat(Arc<Worker>);

impl Seat {
    fn take(worker: Arc<Worker>) -> Seat {
        worker.clients.fetch_add(1, Ordering::Relaxed);
        Seat(worker)
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}
