//! The bench's own RESP client. Both targets go through the same few lines of client code, so the
//! client's cost cancels out of the comparison. The cluster-aware side does what a good cluster
//! client does and no more: one slot map read at start, CRC16 per key, one connection per master,
//! multi-key commands split by slot.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::future::try_join_all;
use slotgate::cluster::{Slot, SLOT_COUNT};
use slotgate::protocol::{encode_command, Frame, Limits, Reply, ReplyCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// Bounds every exchange, so a wedged node or proxy fails the run instead of hanging it.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Large enough that a pipeline of 1 KiB replies arrives in one read.
const READ_CHUNK: usize = 32 * 1024;

/// One TCP connection. Commands are written as one batch and the replies read back in order,
/// each stamped with when its bytes arrived, which is what a per-request latency needs.
pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    codec: ReplyCodec,
    /// The tag of every command written and not yet answered, in sending order.
    pending: Vec<u32>,
    /// The last exchange's replies with their tags and arrival times.
    got: Vec<(u32, Reply, Instant)>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = tokio::time::timeout(OP_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect to {addr}")))??;
        // Batches are written whole, but a lone request must not wait on Nagle either.
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(4096),
            codec: ReplyCodec::new(Limits::default()),
            pending: Vec::with_capacity(16),
            got: Vec::with_capacity(16),
        })
    }

    pub fn push<'a>(&mut self, args: impl IntoIterator<Item = &'a [u8]>, tag: u32) {
        encode_command(args, &mut self.wbuf);
        self.pending.push(tag);
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        Ok(())
    }

    async fn drain(&mut self) -> io::Result<()> {
        let mut next = 0;
        while next < self.pending.len() {
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let at = Instant::now();
            while let Some(reply) = self
                .codec
                .decode(&mut self.rbuf)
                .map_err(io::Error::other)?
            {
                let Some(&tag) = self.pending.get(next) else {
                    return Err(io::Error::other("a reply nobody asked for"));
                };
                self.got.push((tag, reply, at));
                next += 1;
            }
        }
        self.pending.clear();
        Ok(())
    }
}

/// The cluster as a cluster-aware client sees it: read once, never refreshed, because the
/// benchmark does not move slots.
pub struct SlotMap {
    pub masters: Vec<SocketAddr>,
    /// `owner[slot]` indexes `masters`.
    owner: Box<[u8]>,
}

impl SlotMap {
    pub async fn fetch(seed: SocketAddr) -> Result<SlotMap, String> {
        let mut conn = Conn::connect(seed)
            .await
            .map_err(|e| format!("{seed}: {e}"))?;
        conn.push([b"CLUSTER".as_slice(), b"SLOTS"], 0);
        let exchange = async {
            conn.flush().await?;
            conn.drain().await
        };
        tokio::time::timeout(OP_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{seed}: CLUSTER SLOTS timed out"))?
            .map_err(|e| format!("{seed}: CLUSTER SLOTS: {e}"))?;
        let reply = &conn.got[0].1;
        SlotMap::parse(reply).map_err(|e| format!("{seed}: CLUSTER SLOTS: {e}"))
    }

    fn parse(reply: &Reply) -> Result<SlotMap, String> {
        let frame = reply.parse(&Limits::default()).map_err(|e| e.to_string())?;
        let Frame::Array(ranges) = frame else {
            return Err(format!("not an array: {frame:?}"));
        };
        let mut owner = vec![u8::MAX; SLOT_COUNT];
        let mut masters: Vec<SocketAddr> = Vec::new();
        for range in &ranges {
            let Frame::Array(fields) = range else {
                return Err(format!("range is not an array: {range:?}"));
            };
            let (Some(Frame::Integer(start)), Some(Frame::Integer(end)), Some(Frame::Array(node))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(format!("bad range: {range:?}"));
            };
            let (Some(Frame::Bulk(ip)), Some(Frame::Integer(port))) = (node.first(), node.get(1))
            else {
                return Err(format!("bad node: {node:?}"));
            };
            let addr: SocketAddr = format!("{}:{port}", String::from_utf8_lossy(ip))
                .parse()
                .map_err(|e| format!("bad node address: {e}"))?;
            // The bench must never load anything but the cluster it started itself.
            if !addr.ip().is_loopback() {
                return Err(format!("{addr} is not a loopback address"));
            }
            let index = match masters.iter().position(|m| *m == addr) {
                Some(i) => i,
                None => {
                    masters.push(addr);
                    masters.len() - 1
                }
            };
            let index = u8::try_from(index)
                .ok()
                .filter(|&i| i != u8::MAX)
                .ok_or("too many masters")?;
            let (start, end) = (usize::try_from(*start), usize::try_from(*end));
            match (start, end) {
                (Ok(s), Ok(e)) if s <= e && e < SLOT_COUNT => owner[s..=e].fill(index),
                _ => return Err(format!("bad slot range: {range:?}")),
            }
        }
        if owner.contains(&u8::MAX) {
            return Err("some slots have no master".into());
        }
        Ok(SlotMap {
            masters,
            owner: owner.into_boxed_slice(),
        })
    }

    pub fn master_index(&self, slot: Slot) -> usize {
        usize::from(self.owner[slot.index()])
    }
}

/// What a run sends its load to.
#[derive(Clone)]
pub enum Target {
    Direct(Arc<SlotMap>),
    Slotgate(SocketAddr),
    /// An older slotgate binary, to compare this one with in the same run (an A/B run).
    Baseline(SocketAddr),
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Direct(_) => "direct",
            Target::Slotgate(_) => "slotgate",
            Target::Baseline(_) => "baseline",
        }
    }
}

/// One application connection: a single socket to slotgate, or one socket per master.
pub struct Client {
    conns: Vec<Conn>,
    map: Option<Arc<SlotMap>>,
}

impl Client {
    pub async fn connect(target: &Target) -> io::Result<Client> {
        let (addrs, map) = match target {
            Target::Direct(map) => (map.masters.clone(), Some(map.clone())),
            Target::Slotgate(addr) | Target::Baseline(addr) => (vec![*addr], None),
        };
        let mut conns = Vec::with_capacity(addrs.len());
        for addr in addrs {
            conns.push(Conn::connect(addr).await?);
        }
        Ok(Client { conns, map })
    }

    /// Whether this client must split multi-key commands by slot itself.
    pub fn is_cluster_aware(&self) -> bool {
        self.map.is_some()
    }

    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    pub fn conn(&mut self, i: usize) -> &mut Conn {
        &mut self.conns[i]
    }

    pub fn conn_for_slot(&mut self, slot: Slot) -> &mut Conn {
        let i = self.map.as_ref().map_or(0, |m| m.master_index(slot));
        &mut self.conns[i]
    }

    /// Hashes only when there is a choice to make: a plain client pays no CRC16, as in real life.
    pub fn conn_for_key(&mut self, key: &[u8]) -> &mut Conn {
        if self.map.is_none() {
            return &mut self.conns[0];
        }
        self.conn_for_slot(Slot::for_key(key))
    }

    /// Sends everything pushed since the last exchange and waits for every reply. All sockets are
    /// written before any is read, and read concurrently, so one slow master does not delay the
    /// stamps of the others' replies.
    pub async fn exchange(&mut self) -> io::Result<()> {
        tokio::time::timeout(OP_TIMEOUT, self.exchange_untimed())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply within 10 s"))?
    }

    async fn exchange_untimed(&mut self) -> io::Result<()> {
        let mut busy = 0;
        for conn in &mut self.conns {
            conn.got.clear();
            if !conn.pending.is_empty() {
                conn.flush().await?;
                busy += 1;
            }
        }
        let pending = self.conns.iter_mut().filter(|c| !c.pending.is_empty());
        if busy == 1 {
            // The common case at pipeline 1; skips join_all's allocation.
            for conn in pending {
                conn.drain().await?;
            }
            return Ok(());
        }
        try_join_all(pending.map(Conn::drain)).await?;
        Ok(())
    }

    /// The last exchange's replies: `(tag, reply, arrival)`, in order per connection.
    pub fn replies(&self) -> impl Iterator<Item = &(u32, Reply, Instant)> {
        self.conns.iter().flat_map(|c| c.got.iter())
    }
}
