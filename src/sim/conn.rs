//! Connections of the simulated tenant, with a handle that lets a request handler break its
//! own connection: close it without a response, or cut the response body off halfway.
//!
//! HTTP handlers cannot reach the socket of their request, so the listener wraps every
//! accepted `TcpStream` in [`SimIo`] and hands a shared [`Connection`] handle to the
//! handlers through axum's connect info. Once a handler switches the handle to a failure
//! mode, the wrapper fails hyper's writes (after letting through the permitted prefix), so
//! hyper gives up on the connection and closes the socket. Bytes already written stay
//! written: the client sees exactly what a dropped or truncated connection looks like.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Accepts TCP connections and wraps each in [`SimIo`].
#[derive(Debug)]
pub(crate) struct SimListener {
    inner: TcpListener,
}

impl SimListener {
    pub(crate) fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl axum::serve::Listener for SimListener {
    type Io = SimIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, remote)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "failed to set TCP_NODELAY");
                    }
                    return (
                        SimIo {
                            stream,
                            connection: Connection::default(),
                        },
                        remote,
                    );
                }
                Err(error) => {
                    // Errors such as EMFILE repeat until something changes, so wait a
                    // little instead of spinning.
                    tracing::warn!(%error, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Handle on one connection, shared by its [`SimIo`] and the handlers of its requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connection {
    mode: Arc<Mutex<WriteMode>>,
}

#[derive(Debug, Default)]
enum WriteMode {
    #[default]
    Normal,
    /// Every write fails, so nothing more reaches the client.
    Abort,
    /// Let the next response's header block through, then `body_bytes` bytes of its body,
    /// then fail every write.
    Cut {
        body_bytes: usize,
        /// How many bytes of the `\r\n\r\n` that ends the header block were seen last.
        matched: usize,
        headers_done: bool,
    },
}

const HEADER_END: &[u8; 4] = b"\r\n\r\n";

impl Connection {
    /// Closes the connection instead of sending the current response.
    pub(crate) fn abort(&self) {
        *self.lock() = WriteMode::Abort;
    }

    /// Sends the current response's headers and the first `body_bytes` bytes of its body,
    /// then closes the connection.
    pub(crate) fn cut_body_after(&self, body_bytes: usize) {
        *self.lock() = WriteMode::Cut {
            body_bytes,
            matched: 0,
            headers_done: false,
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriteMode> {
        self.mode.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl WriteMode {
    /// Returns how many leading bytes of `buf` may still be written.
    fn allowance(&self, buf: &[u8]) -> usize {
        match *self {
            Self::Normal => buf.len(),
            Self::Abort => 0,
            Self::Cut {
                body_bytes,
                mut matched,
                headers_done,
            } => {
                if headers_done {
                    return body_bytes.min(buf.len());
                }
                for (index, &byte) in buf.iter().enumerate() {
                    matched = advance_match(matched, byte);
                    if matched == HEADER_END.len() {
                        return index + 1 + body_bytes.min(buf.len() - index - 1);
                    }
                }
                buf.len()
            }
        }
    }

    /// Updates the state after `written` went out.
    fn consume(&mut self, written: &[u8]) {
        if let Self::Cut {
            body_bytes,
            matched,
            headers_done,
        } = self
        {
            for &byte in written {
                if *headers_done {
                    *body_bytes -= 1;
                } else {
                    *matched = advance_match(*matched, byte);
                    *headers_done = *matched == HEADER_END.len();
                }
            }
        }
    }
}

fn advance_match(matched: usize, byte: u8) -> usize {
    if byte == HEADER_END[matched] {
        matched + 1
    } else if byte == b'\r' {
        1
    } else {
        0
    }
}

fn dropped_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed by a simulated fault",
    )
}

/// A TCP stream whose writes obey its [`Connection`] handle.
#[derive(Debug)]
pub(crate) struct SimIo {
    stream: TcpStream,
    connection: Connection,
}

impl SimIo {
    fn poll_write_limited(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let allowed = self.connection.lock().allowance(buf);
        if allowed == 0 && !buf.is_empty() {
            self.connection.abort();
            return Poll::Ready(Err(dropped_error()));
        }
        let result = Pin::new(&mut self.stream).poll_write(cx, &buf[..allowed]);
        if let Poll::Ready(Ok(written)) = result {
            self.connection.lock().consume(&buf[..written]);
        }
        result
    }
}

impl AsyncRead for SimIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_limited(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if matches!(*self.connection.lock(), WriteMode::Normal) {
            return Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        }
        let first = bufs
            .iter()
            .find(|buf| !buf.is_empty())
            .map_or(&[][..], |buf| &buf[..]);
        self.poll_write_limited(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Connection details each request receives (axum connect info).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo {
    pub(crate) connection: Connection,
}

impl Connected<IncomingStream<'_, SimListener>> for ConnectionInfo {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        Self {
            connection: stream.io().connection.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_allows_headers_then_body_budget() {
        let mut mode = WriteMode::Cut {
            body_bytes: 3,
            matched: 0,
            headers_done: false,
        };
        let response = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n[1,2,3]";
        let allowed = mode.allowance(response);
        assert_eq!(&response[..allowed], b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n[1,");
        mode.consume(&response[..allowed]);
        assert_eq!(mode.allowance(b"2,3]"), 0);
    }

    #[test]
    fn cut_tracks_header_end_across_writes() {
        let mut mode = WriteMode::Cut {
            body_bytes: 2,
            matched: 0,
            headers_done: false,
        };
        for part in [&b"HTTP/1.1 200 OK\r\n\r"[..], b"\n"] {
            let allowed = mode.allowance(part);
            assert_eq!(allowed, part.len());
            mode.consume(part);
        }
        assert_eq!(mode.allowance(b"abcdef"), 2);
        mode.consume(b"a");
        assert_eq!(mode.allowance(b"bcdef"), 1);
    }

    #[test]
    fn abort_allows_nothing() {
        assert_eq!(WriteMode::Abort.allowance(b"HTTP/1.1"), 0);
        assert_eq!(WriteMode::Normal.allowance(b"HTTP/1.1"), 8);
    }
}
