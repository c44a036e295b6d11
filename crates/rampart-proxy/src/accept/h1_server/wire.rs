//! The client socket of one HTTP/1 connection and the bytes read from it, shared by the
//! connection loop (heads, responses) and the request body in flight (which may be read
//! from hyper's upstream client task while the loop writes an early response).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::h1_framing::{Decoder, Step};
use crate::upstream::Stream;

/// A client connection's transport: plain TCP or TLS.
pub type ClientIo = Stream<tokio_rustls::server::TlsStream<TcpStream>>;

/// Stack buffer for the first read of a head: an idle connection holds no read buffer,
/// and a request's bytes are copied once, into the worker's shared buffer.
pub(super) const FIRST_READ: usize = 4 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The socket and its read state. Locked only for the length of one poll, never across
/// an await, so the loop and the body never wait on each other.
pub struct Wire {
    pub(super) io: ClientIo,
    /// Read from the socket and not yet consumed (the next head, body bytes).
    pub(super) buf: BytesMut,
    /// The current request body's framing; `Done` when it has none or was read whole.
    pub(super) body: Decoder,
    /// `100 Continue` owed before the body is read: how much of it is written.
    pub(super) continue_sent: Option<usize>,
    /// The loop has given up on the connection: the body reads nothing more.
    pub(super) abandoned: bool,
}

pub(super) type SharedWire = Arc<Mutex<Wire>>;

pub(super) fn lock(w: &Mutex<Wire>) -> MutexGuard<'_, Wire> {
    // A panic while locked leaves only buffers behind, never a broken invariant.
    w.lock().unwrap_or_else(|e| e.into_inner())
}

impl Wire {
    pub(super) fn new(io: ClientIo) -> Wire {
        Wire {
            io,
            buf: BytesMut::new(),
            body: Decoder::Done,
            continue_sent: None,
            abandoned: false,
        }
    }

    /// Reads what the socket has into `buf` (see [`crate::h1_framing::poll_fill`]).
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        crate::h1_framing::poll_fill::<_, FIRST_READ>(&mut self.io, &mut self.buf, cx)
    }

    /// The next piece of the current request body: decoded from what is buffered, reading
    /// more (after any owed `100 Continue`) when that is not enough.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        if self.abandoned {
            return Poll::Ready(Some(Err(BodyError::Closed)));
        }
        if let Err(e) = std::task::ready!(self.poll_continue(cx)) {
            return Poll::Ready(Some(Err(e.into())));
        }
        loop {
            match self.body.step(&mut self.buf) {
                Err(e) => return Poll::Ready(Some(Err(BodyError::Malformed(e)))),
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::NeedMore) => {}
            }
            match std::task::ready!(self.poll_fill(cx)) {
                Ok(0) => return Poll::Ready(Some(Err(BodyError::Closed))),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }

    /// Writes the owed `100 Continue` (RFC 9110 §10.1.1), if any.
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(at) = self.continue_sent {
            if at == CONTINUE.len() {
                self.continue_sent = None;
                return Pin::new(&mut self.io).poll_flush(cx);
            }
            match Pin::new(&mut self.io).poll_write(cx, &CONTINUE[at..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.continue_sent = Some(at + n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Why a client's request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("reading the request body failed: {0}")]
    Io(#[from] io::Error),
    #[error("malformed request body: {0}")]
    Malformed(&'static str),
    #[error("the client closed the connection inside the request body")]
    Closed,
}

/// A request body read off the client socket as it is forwarded.
pub struct RequestBody {
    wire: SharedWire,
    /// Exact length when known (`Content-Length`).
    length: Option<u64>,
    done: bool,
}

impl RequestBody {
    pub(super) fn new(wire: SharedWire, length: Option<u64>) -> RequestBody {
        RequestBody {
            wire,
            length,
            done: false,
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let mut w = lock(&this.wire);
        let polled = w.poll_body(cx);
        match &polled {
            Poll::Ready(Some(Ok(data))) => {
                if let Some(n) = &mut this.length {
                    *n -= data.len() as u64;
                }
                this.done = w.body.is_done();
            }
            Poll::Ready(None) => this.done = true,
            // Where the client's bytes stand is unknown now: nothing more is read.
            Poll::Ready(Some(Err(_))) => {
                w.abandoned = true;
                this.done = true;
            }
            Poll::Pending => {}
        }
        polled.map(|next| next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // After an upgrade: what the client sent behind the head goes first.
        if !self.buf.is_empty() {
            let n = self.buf.len().min(out.remaining());
            out.put_slice(&self.buf.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, out)
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
