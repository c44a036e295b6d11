//! The response body of our HTTP/1.1 client: decoded (length, chunked, close-delimited)
//! straight off the upstream socket as the client's response is written, and the
//! connection pooled once it has been read to the end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::Instant;

use super::{Conn, H1Error, PoolSlot, READ_CHUNK};
use crate::h1_framing::Step;
pub use crate::h1_framing::{Chunk, Decoder};

/// A response body read from the upstream socket as the client's response is written.
/// Read to the end on a persistent connection, it returns the connection to the worker's
/// pool; dropped early or failed, it closes it.
pub struct H1Body {
    conn: Option<Conn>,
    decoder: Decoder,
    keep_alive: bool,
    slot: PoolSlot,
}

impl H1Body {
    pub(super) fn new(conn: Conn, decoder: Decoder, keep_alive: bool, slot: PoolSlot) -> H1Body {
        let mut body = H1Body {
            conn: Some(conn),
            decoder,
            keep_alive,
            slot,
        };
        if decoder == Decoder::Length(0) {
            // Nobody polls a body that is already at its end: pool the connection now.
            body.finish();
        }
        body
    }

    /// The body ended: pool the connection when it can carry another request (nothing
    /// unread after the body, a persistent response).
    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        if let Some(mut conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                conn.release();
                super::super::pool::checkin_h1(conn, &self.slot, Instant::now());
            }
        }
    }

    /// Fails the body: the connection is closed, never reused.
    fn fail(&mut self, e: H1Error) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        self.decoder = Decoder::Done;
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl http_body::Body for H1Body {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.step(&mut conn.buf) {
                Err(e) => return this.fail(H1Error::Malformed(e)),
                Ok(Step::Data(data)) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
            }
            // Need more bytes from the upstream.
            if conn.buf.capacity() - conn.buf.len() < 1024 {
                let want = match this.decoder {
                    Decoder::Length(rem) => (rem as usize).clamp(1024, READ_CHUNK * 2),
                    _ => READ_CHUNK,
                };
                conn.buf.reserve(want);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return this.fail(H1Error::Read(e)),
                Poll::Ready(Ok(0)) if this.decoder == Decoder::Close => {
                    // A close-delimited body ends with the connection.
                    this.decoder = Decoder::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    return this.fail(H1Error::Malformed("connection closed inside the body"))
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(n) => SizeHint::with_exact(n),
            Decoder::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
