//! TCP keepalive on client and backend sockets, set once when a socket is made.
//!
//! A peer that vanishes without a FIN or a RST (a host powered off, a NAT or firewall that
//! forgot the flow) leaves an idle connection open for ever otherwise: a client's seat counts
//! against `max_clients` and its session lives on, and a backend connection with nothing in
//! flight looks healthy until the next request times out on it. Probes sent while the
//! connection is idle find such a peer, and the kernel then fails the socket like any other
//! broken connection.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// Unanswered probes after which the kernel gives the connection up.
#[cfg(any(target_os = "linux", target_os = "android"))]
const PROBES: u32 = 3;

/// Turns keepalive on, with the first probe after `idle` without traffic; `None` leaves the
/// socket as it is. Where the platform allows, later probes follow every third of `idle` and
/// three unanswered ones end the connection, so a dead peer is noticed about twice `idle` after
/// its last packet (the kernel's own defaults would take over two hours).
pub fn set(stream: &TcpStream, idle: Option<Duration>) -> std::io::Result<()> {
    let Some(idle) = idle else {
        return Ok(());
    };
    let params = TcpKeepalive::new().with_time(idle);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let params = params
        .with_interval((idle / PROBES).max(Duration::from_secs(1)))
        .with_retries(PROBES);
    SockRef::from(stream).set_tcp_keepalive(&params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn keepalive_is_on_only_when_asked() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        set(&stream, None).unwrap();
        assert!(!SockRef::from(&stream).keepalive().unwrap());
        set(&stream, Some(Duration::from_secs(60))).unwrap();
        let sock = SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
            assert_eq!(
                sock.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(20)
            );
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
        }
    }
}
