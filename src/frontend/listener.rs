//! The accept loop: the one place that admits clients, so the client limit and the spread over
//! workers are decided once, before a session exists.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::{session, Worker};

/// Accepts clients until `shutdown` resolves and hands each to the worker with the fewest. Past
/// `max_clients`, a new client gets Redis' own error and is closed, so the limit protects memory
/// without hanging anyone.
pub async fn serve(
    listener: TcpListener,
    workers: Vec<Arc<Worker>>,
    max_clients: usize,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(max_clients));
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
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
        if let Err(e) = crate::keepalive::set(&stream, worker.fe.settings.tcp_keepalive) {
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
