//! HTTP/1.1 message-body framing (RFC 9112 §6–7), decoded from a read buffer: shared by
//! the upstream client (response bodies) and the client-facing server (request bodies),
//! so both sides read length and chunked bodies the same strict way.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// How much a read buffer grows by when a message does not fit what was read.
pub const READ_CHUNK: usize = 8 * 1024;

/// Reads what `io` has into `buf`, for either side of an HTTP/1 connection. An empty
/// buffer is filled through a stack buffer of `FIRST` bytes, so an idle connection holds
/// no allocation, and what was read is copied into the worker's shared buffer
/// ([`crate::headers::cut`]): a small head or answer costs no allocation of its own. A
/// buffer that holds part of a message grows by [`READ_CHUNK`].
pub fn poll_fill<R: AsyncRead + Unpin, const FIRST: usize>(
    io: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        let mut storage = [MaybeUninit::<u8>::uninit(); FIRST];
        let mut rb = ReadBuf::uninit(&mut storage);
        std::task::ready!(Pin::new(io).poll_read(cx, &mut rb))?;
        let got = rb.filled();
        if !got.is_empty() {
            *buf = crate::headers::cut(got);
        }
        return Poll::Ready(Ok(got.len()));
    }
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// Longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Largest trailer section accepted (trailers are read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// Where a body decoder is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoder {
    /// Bytes of a `Content-Length` body still to come.
    Length(u64),
    Chunked(Chunk),
    /// Read until the peer closes (responses only).
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

/// One decoding step over what is buffered.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Body bytes (never empty).
    Data(Bytes),
    /// The body is complete; the decoder is `Done`.
    End,
    /// More bytes must be read first.
    NeedMore,
}

impl Decoder {
    /// Decodes from `buf` until it has data, the end, or needs more bytes. The error is
    /// a reason fit for a log line; after one, the connection cannot be trusted.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match *self {
                Decoder::Done => return Ok(Step::End),
                Decoder::Length(0) => {
                    *self = Decoder::Done;
                    return Ok(Step::End);
                }
                Decoder::Length(rem) if !buf.is_empty() => {
                    let n = rem.min(buf.len() as u64);
                    *self = Decoder::Length(rem - n);
                    return Ok(Step::Data(buf.split_to(n as usize).freeze()));
                }
                Decoder::Close if !buf.is_empty() => {
                    return Ok(Step::Data(buf.split().freeze()));
                }
                Decoder::Chunked(Chunk::Size) => match line_end(buf)? {
                    None if buf.len() > MAX_CHUNK_LINE => return Err("chunk-size line too long"),
                    None => return Ok(Step::NeedMore),
                    Some(len) => {
                        let size = chunk_size(&buf[..len])?;
                        buf.advance(len + 2);
                        *self = Decoder::Chunked(if size == 0 {
                            Chunk::Trailers(0)
                        } else {
                            Chunk::Data(size)
                        });
                    }
                },
                Decoder::Chunked(Chunk::Data(rem)) if !buf.is_empty() => {
                    let n = rem.min(buf.len() as u64);
                    *self = Decoder::Chunked(if rem == n {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(rem - n)
                    });
                    return Ok(Step::Data(buf.split_to(n as usize).freeze()));
                }
                Decoder::Chunked(Chunk::DataEnd) if buf.len() >= 2 => {
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF");
                    }
                    buf.advance(2);
                    *self = Decoder::Chunked(Chunk::Size);
                }
                Decoder::Chunked(Chunk::Trailers(seen)) => match line_end(buf)? {
                    None if seen + buf.len() > MAX_TRAILERS => {
                        return Err("trailer section too large")
                    }
                    None => return Ok(Step::NeedMore),
                    Some(0) => {
                        buf.advance(2);
                        *self = Decoder::Done;
                        return Ok(Step::End);
                    }
                    Some(len) => {
                        buf.advance(len + 2);
                        *self = Decoder::Chunked(Chunk::Trailers(seen + len + 2));
                    }
                },
                _ => return Ok(Step::NeedMore),
            }
        }
    }

    /// True once nothing more belongs to the body.
    pub fn is_done(&self) -> bool {
        matches!(self, Decoder::Done | Decoder::Length(0))
    }
}

/// A line ending in CRLF at the start of `buf`: its length without the CRLF, or `None`
/// while incomplete. A bare LF or a CR elsewhere in the line is malformed.
fn line_end(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    match buf.iter().position(|&b| b == b'\n') {
        None => Ok(None),
        Some(0) => Err("bare LF in chunked framing"),
        Some(i) if buf[i - 1] != b'\r' || buf[..i - 1].contains(&b'\r') => {
            Err("bare LF or CR in chunked framing")
        }
        Some(i) => Ok(Some(i - 1)),
    }
}

/// The size from a chunk-size line: 1*HEXDIG, then optional whitespace and extensions
/// (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = line[digits..].trim_ascii_start();
    if digits == 0 || digits > 16 || !(rest.is_empty() || rest[0] == b';') {
        return Err("invalid chunk size");
    }
    let mut n = 0u64;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or(0);
        n = n
            .checked_mul(16)
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or("chunk size overflows")?;
    }
    Ok(n)
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

    #[test]
    fn chunked_body_decodes_across_split_reads() {
        let mut d = Decoder::Chunked(Chunk::Size);
        let mut buf = BytesMut::from(&b"5\r\nhel"[..]);
        assert_eq!(d.step(&mut buf), Ok(Step::Data(Bytes::from_static(b"hel"))));
        assert_eq!(d.step(&mut buf), Ok(Step::NeedMore));
        buf.extend_from_slice(b"lo\r\n0\r\nx-t: 1\r\n\r\nNEXT");
        assert_eq!(d.step(&mut buf), Ok(Step::Data(Bytes::from_static(b"lo"))));
        assert_eq!(d.step(&mut buf), Ok(Step::End));
        assert_eq!(&buf[..], b"NEXT");
    }

    #[test]
    fn length_body_stops_at_its_length() {
        let mut d = Decoder::Length(3);
        let mut buf = BytesMut::from(&b"abcGET"[..]);
        assert_eq!(d.step(&mut buf), Ok(Step::Data(Bytes::from_static(b"abc"))));
        assert_eq!(d.step(&mut buf), Ok(Step::End));
        assert_eq!(&buf[..], b"GET");
    }
}
