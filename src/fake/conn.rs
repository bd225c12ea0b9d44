//! Connections that can be cut mid-response: how `Fault::Reset` is made.
//!
//! A handler cannot make hyper abort a response with the dependencies this
//! module may use (a failing body stream needs `http_body::Frame` or
//! `futures_core::Stream`, neither of which axum re-exports). So the cut is
//! made one layer down: every accepted socket is wrapped in an
//! [`AbortableConn`], the handler reaches it through an [`AbortSwitch`]
//! (axum's `ConnectInfo`), arms it with a number of body bytes, and the
//! socket lets the response headers and that many body bytes through, then
//! fails the next write. hyper drops the connection; the client has seen a
//! 200 and part of its body, then the end of the stream.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections carry an [`AbortSwitch`].
#[derive(Debug)]
pub(super) struct AbortableListener {
    inner: TcpListener,
}

impl AbortableListener {
    pub(super) fn new(inner: TcpListener) -> Self {
        AbortableListener { inner }
    }
}

impl Listener for AbortableListener {
    type Io = AbortableConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let conn = AbortableConn {
                        stream,
                        switch: AbortSwitch::default(),
                        cut: Cut::Off,
                    };
                    return (conn, addr);
                }
                // Usually too many open files: wait for some to close
                // rather than spin.
                Err(e) => {
                    tracing::debug!("fake service: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Not armed: the connection passes everything through.
const DISARMED: usize = usize::MAX;

/// A handle on one connection, given to handlers through `ConnectInfo`.
#[derive(Debug, Clone)]
pub(super) struct AbortSwitch(Arc<AtomicUsize>);

impl Default for AbortSwitch {
    fn default() -> Self {
        AbortSwitch(Arc::new(AtomicUsize::new(DISARMED)))
    }
}

impl AbortSwitch {
    /// Cut the next response on this connection after its headers and
    /// `body_bytes` bytes of its body.
    pub(super) fn arm(&self, body_bytes: usize) {
        self.0.store(body_bytes.min(DISARMED - 1), Ordering::SeqCst);
    }

    fn take(&self) -> Option<usize> {
        match self.0.swap(DISARMED, Ordering::SeqCst) {
            DISARMED => None,
            n => Some(n),
        }
    }
}

impl Connected<IncomingStream<'_, AbortableListener>> for AbortSwitch {
    fn connect_info(stream: IncomingStream<'_, AbortableListener>) -> Self {
        stream.io().switch.clone()
    }
}

/// Where an armed connection is in the response it must cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Pass everything through.
    Off,
    /// In the headers; `matched` bytes of the `\r\n\r\n` that ends them
    /// have just been written.
    Head { matched: usize, body_allowed: usize },
    /// In the body; `left` more bytes may pass.
    Body { left: usize },
    /// The allowance is spent; every write fails.
    Dead,
}

const HEAD_END: &[u8; 4] = b"\r\n\r\n";

impl Cut {
    /// How many bytes of `buf` may be written now.
    fn allowance(self, buf: &[u8]) -> usize {
        match self {
            Cut::Off => buf.len(),
            Cut::Head {
                matched,
                body_allowed,
            } => match head_end(matched, buf) {
                Ok(body_start) => body_start + body_allowed.min(buf.len() - body_start),
                Err(_) => buf.len(),
            },
            Cut::Body { left } => left.min(buf.len()),
            Cut::Dead => 0,
        }
    }

    /// The state after `written` bytes went out.
    fn advance(self, written: &[u8]) -> Cut {
        match self {
            Cut::Head {
                matched,
                body_allowed,
            } => match head_end(matched, written) {
                Ok(body_start) => Cut::Body {
                    left: body_allowed - (written.len() - body_start),
                },
                Err(matched) => Cut::Head {
                    matched,
                    body_allowed,
                },
            },
            Cut::Body { left } => Cut::Body {
                left: left - written.len(),
            },
            other => other,
        }
    }
}

/// Finds the end of the headers in `bytes`, given that `matched` bytes of
/// `\r\n\r\n` came just before: `Ok(offset just past it)`, or
/// `Err(bytes of it matched at the end of bytes)`.
fn head_end(mut matched: usize, bytes: &[u8]) -> Result<usize, usize> {
    for (offset, &byte) in bytes.iter().enumerate() {
        matched = if byte == HEAD_END[matched] {
            matched + 1
        } else {
            // Only a `\r` can start the terminator again.
            usize::from(byte == b'\r')
        };
        if matched == HEAD_END.len() {
            return Ok(offset + 1);
        }
    }
    Err(matched)
}

/// An accepted socket that obeys its [`AbortSwitch`].
#[derive(Debug)]
pub(super) struct AbortableConn {
    stream: TcpStream,
    switch: AbortSwitch,
    cut: Cut,
}

impl AsyncRead for AbortableConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AbortableConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.cut == Cut::Off
            && let Some(body_allowed) = this.switch.take()
        {
            this.cut = Cut::Head {
                matched: 0,
                body_allowed,
            };
        }
        let allowed = this.cut.allowance(buf);
        if allowed == 0 && !buf.is_empty() {
            this.cut = Cut::Dead;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "fake service: connection cut by a Reset fault",
            )));
        }
        let written = ready!(Pin::new(&mut this.stream).poll_write(cx, &buf[..allowed]))?;
        this.cut = this.cut.advance(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_across_writes() {
        assert_eq!(head_end(0, b"HTTP/1.1 200 OK\r\n\r\nbody"), Ok(19));
        assert_eq!(head_end(0, b"a\r\n\r"), Err(3));
        assert_eq!(head_end(3, b"\nbody"), Ok(1));
        assert_eq!(head_end(3, b"\r\n\r\n"), Ok(4));
        assert_eq!(head_end(2, b"x\r\n\r\n"), Ok(5));
    }

    #[test]
    fn cut_lets_headers_and_allowance_through() {
        let start = Cut::Head {
            matched: 0,
            body_allowed: 3,
        };
        let response = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n0123456789";
        let allowed = start.allowance(response);
        assert_eq!(&response[..allowed], b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n012");
        let after = start.advance(&response[..allowed]);
        assert_eq!(after, Cut::Body { left: 0 });
        assert_eq!(after.allowance(b"3456789"), 0);
    }
}
