//! A reader that notes when bytes came in and how many, so that a framed stream's owner can
//! take one timestamp per socket read instead of one per frame, and count bytes without a call
//! per frame.
//!
//! A `FramedRead` decodes every frame its buffer holds before it reads again, and reads only
//! when its decoder asks for more, so "a read happened since I last looked" means "this frame is
//! the first that read completed": its bytes arrived just now. The frames after it in the same
//! buffer arrived at the same time.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

pub struct Reads<R> {
    inner: R,
    fresh: bool,
    bytes: u64,
}

impl<R> Reads<R> {
    pub fn new(inner: R) -> Reads<R> {
        Reads {
            inner,
            fresh: false,
            bytes: 0,
        }
    }

    /// Whether a read brought bytes since the last call.
    pub fn take_fresh(&mut self) -> bool {
        std::mem::take(&mut self.fresh)
    }

    /// Bytes read since the last call.
    pub fn take_bytes(&mut self) -> u64 {
        std::mem::take(&mut self.bytes)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Reads<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.fresh = true;
            self.bytes += read as u64;
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::{FramedRead, LinesCodec};

    use super::*;

    #[tokio::test]
    async fn marks_the_first_frame_of_each_read() {
        let (mut w, r) = tokio::io::duplex(1024);
        let mut lines = FramedRead::new(Reads::new(r), LinesCodec::new());
        w.write_all(b"a\nb\n").await.unwrap();
        assert_eq!(lines.next().await.unwrap().unwrap(), "a");
        assert!(lines.get_mut().take_fresh());
        assert_eq!(lines.get_mut().take_bytes(), 4);
        assert_eq!(lines.next().await.unwrap().unwrap(), "b");
        assert!(!lines.get_mut().take_fresh(), "b came with a");
        w.write_all(b"c\n").await.unwrap();
        assert_eq!(lines.next().await.unwrap().unwrap(), "c");
        assert!(lines.get_mut().take_fresh());
    }
}
