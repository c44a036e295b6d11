//! The response body of our HTTP/1.1 client: decoded (length, chunked, close-delimited)
//! straight off the upstream socket as the client's response is written, and the
//! connection pooled once it has been read to the end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Frame, SizeHint};
use tokio::time::Instant;

use super::{Conn, H1Error, PoolSlot, READ_CHUNK};

/// Longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Largest trailer section accepted (trailers are read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// Where the body decoder is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoder {
    /// Bytes of a `Content-Length` body still to come.
    Length(u64),
    Chunked(Chunk),
    /// Read until the upstream closes.
    Close,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Bytes of the current chunk still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// In the trailer section (bytes of it seen so far); it is read and dropped.
    Trailers(usize),
}

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

/// A line ending in CRLF at the start of `buf`: its length without the CRLF, or `None`
/// while incomplete. A bare LF or a CR elsewhere in the line is malformed.
fn line_end(buf: &[u8]) -> Result<Option<usize>, H1Error> {
    match buf.iter().position(|&b| b == b'\n') {
        None => Ok(None),
        Some(0) => Err(H1Error::Malformed("bare LF in chunked framing")),
        Some(i) if buf[i - 1] != b'\r' || buf[..i - 1].contains(&b'\r') => {
            Err(H1Error::Malformed("bare LF or CR in chunked framing"))
        }
        Some(i) => Ok(Some(i - 1)),
    }
}

/// The size from a chunk-size line: 1*HEXDIG, then optional whitespace and extensions
/// (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = line[digits..].trim_ascii_start();
    if digits == 0 || digits > 16 || !(rest.is_empty() || rest[0] == b';') {
        return Err(H1Error::Malformed("invalid chunk size"));
    }
    let mut n = 0u64;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or(0);
        n = n
            .checked_mul(16)
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or(H1Error::Malformed("chunk size overflows"))?;
    }
    Ok(n)
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
            let decoder = this.decoder;
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // Decode what is buffered; `None` means more bytes are needed.
            let step: Option<Option<Bytes>> = match decoder {
                Decoder::Done => return Poll::Ready(None),
                Decoder::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Decoder::Length(rem) if !conn.buf.is_empty() => {
                    let n = rem.min(conn.buf.len() as u64);
                    let data = conn.buf.split_to(n as usize).freeze();
                    if rem == n {
                        this.finish();
                    } else {
                        this.decoder = Decoder::Length(rem - n);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decoder::Close if !conn.buf.is_empty() => Some(Some(conn.buf.split().freeze())),
                Decoder::Chunked(Chunk::Size) => match line_end(&conn.buf) {
                    Err(e) => return this.fail(e),
                    Ok(None) if conn.buf.len() > MAX_CHUNK_LINE => {
                        return this.fail(H1Error::Malformed("chunk-size line too long"))
                    }
                    Ok(None) => None,
                    Ok(Some(len)) => {
                        let size = match chunk_size(&conn.buf[..len]) {
                            Ok(s) => s,
                            Err(e) => return this.fail(e),
                        };
                        conn.buf.advance(len + 2);
                        this.decoder = Decoder::Chunked(if size == 0 {
                            Chunk::Trailers(0)
                        } else {
                            Chunk::Data(size)
                        });
                        Some(None)
                    }
                },
                Decoder::Chunked(Chunk::Data(rem)) if !conn.buf.is_empty() => {
                    let n = rem.min(conn.buf.len() as u64);
                    let data = conn.buf.split_to(n as usize).freeze();
                    this.decoder = Decoder::Chunked(if rem == n {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(rem - n)
                    });
                    Some(Some(data))
                }
                Decoder::Chunked(Chunk::DataEnd) if conn.buf.len() >= 2 => {
                    if &conn.buf[..2] != b"\r\n" {
                        return this.fail(H1Error::Malformed("chunk data not followed by CRLF"));
                    }
                    conn.buf.advance(2);
                    this.decoder = Decoder::Chunked(Chunk::Size);
                    Some(None)
                }
                Decoder::Chunked(Chunk::Trailers(seen)) => match line_end(&conn.buf) {
                    Err(e) => return this.fail(e),
                    Ok(None) if seen + conn.buf.len() > MAX_TRAILERS => {
                        return this.fail(H1Error::Malformed("trailer section too large"))
                    }
                    Ok(None) => None,
                    Ok(Some(0)) => {
                        conn.buf.advance(2);
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Some(len)) => {
                        conn.buf.advance(len + 2);
                        this.decoder = Decoder::Chunked(Chunk::Trailers(seen + len + 2));
                        Some(None)
                    }
                },
                _ => None,
            };
            match step {
                Some(Some(data)) if !data.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Some(_) => continue,
                None => {}
            }
            // Need more bytes from the upstream.
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
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
        matches!(self.decoder, Decoder::Done | Decoder::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(n) => SizeHint::with_exact(n),
            Decoder::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"1A;ext=1").unwrap(), 26);
        assert_eq!(chunk_size(b"10 ;x").unwrap(), 16);
        for bad in [&b""[..], b"g", b"-1", b"1 x", b"11111111111111111"] {
            assert!(chunk_size(bad).is_err(), "{bad:?}");
        }
        assert!(line_end(b"5\n").is_err());
        assert!(line_end(b"5\r9\r\n").is_err());
        assert_eq!(line_end(b"5\r\nabc").unwrap(), Some(1));
        assert_eq!(line_end(b"5\r").unwrap(), None);
    }
}
