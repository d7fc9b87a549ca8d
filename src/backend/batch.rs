//! Requests gathered for one write, sent as they are with one vectored write instead of being
//! copied into a buffer first: a request's bytes are a slice of its client's read buffer, so from
//! the client's socket to the node's the proxy never copies a payload.

use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Most slices one write takes: Linux refuses more than this many (IOV_MAX).
const MAX_SLICES: usize = 1024;

/// A bounded batch: full at `max_bytes` or at [`MAX_SLICES`] requests, whichever comes first.
pub(crate) struct Batch {
    chunks: Vec<Bytes>,
    bytes: usize,
    max_bytes: usize,
}

impl Batch {
    pub fn new(max_bytes: usize) -> Batch {
        Batch {
            chunks: Vec::new(),
            bytes: 0,
            max_bytes,
        }
    }

    pub fn push(&mut self, chunk: Bytes) {
        self.bytes += chunk.len();
        self.chunks.push(chunk);
    }

    /// Bytes waiting to be written.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.bytes >= self.max_bytes || self.chunks.len() >= MAX_SLICES
    }

    /// Writes everything, however the socket splits it, and leaves the batch empty. Errors
    /// leave it unspecified: the caller drops the connection.
    pub async fn write_to<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> io::Result<()> {
        let mut done = 0;
        loop {
            // An empty slice left alone would make the final write a zero-length one.
            while self.chunks.get(done).is_some_and(|c| c.is_empty()) {
                done += 1;
            }
            if done == self.chunks.len() {
                break;
            }
            let written = {
                let slices: Vec<IoSlice<'_>> = self.chunks[done..]
                    .iter()
                    .take(MAX_SLICES)
                    .map(|c| IoSlice::new(c))
                    .collect();
                w.write_vectored(&slices).await?
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let mut left = written;
            while left > 0 {
                let chunk = &mut self.chunks[done];
                if left >= chunk.len() {
                    left -= chunk.len();
                    done += 1;
                } else {
                    chunk.advance(left);
                    left = 0;
                }
            }
        }
        self.chunks.clear();
        self.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// A pipe that takes a few bytes at a time, and only from the first slice, makes every write
    /// partial, which is what a busy socket does to a large batch.
    #[tokio::test]
    async fn partial_writes_deliver_every_byte_in_order() {
        let (mut w, mut r) = tokio::io::duplex(7);
        let mut batch = Batch::new(usize::MAX);
        let mut want = Vec::new();
        for i in 0..300u32 {
            let chunk: Vec<u8> = (0..i % 23).map(|j| (i * 31 + j) as u8).collect();
            want.extend_from_slice(&chunk);
            batch.push(Bytes::from(chunk));
        }
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            got
        });
        batch.write_to(&mut w).await.unwrap();
        assert!(batch.is_empty());
        drop(w);
        assert_eq!(reader.await.unwrap(), want);
    }

    #[test]
    fn full_by_bytes_or_by_count() {
        let mut by_bytes = Batch::new(10);
        by_bytes.push(Bytes::from_static(b"12345"));
        assert!(!by_bytes.is_full());
        by_bytes.push(Bytes::from_static(b"67890"));
        assert!(by_bytes.is_full());

        let mut by_count = Batch::new(usize::MAX);
        for _ in 0..MAX_SLICES {
            assert!(!by_count.is_full());
            by_count.push(Bytes::from_static(b"x"));
        }
        assert!(by_count.is_full());
    }
}
