//! Writing a response to the client: the head, then the body framed by its known length,
//! chunked, or (for HTTP/1.0 clients) by closing the connection. A small body goes out
//! in the same write as the head.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::SystemTime;

use http::header;
use http::{Response, StatusCode};
use http_body::Body;
use tokio::io::AsyncWrite;

use super::wire::{lock, SharedWire};
use crate::response_body::ResponseBody;

/// Body bytes copied next to the head (or a chunk's framing) rather than written on
/// their own.
const COALESCE: usize = 16 * 1024;

thread_local! {
    /// Where response heads are encoded: one buffer per worker, reused by every response.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The `Date` value of the current second (RFC 9110 §6.6.1), formatted once a second.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// What the loop needs to know about the request being answered.
pub(super) struct Answering {
    /// A `HEAD` request: the head only, whatever the body says.
    pub head_method: bool,
    /// An HTTP/1.0 client: no chunked framing, keep-alive only when asked for.
    pub http10: bool,
    /// Whether the connection may carry another request after this response; the
    /// response may turn it off, never on.
    pub keep_alive: bool,
}

/// Why writing a response stopped.
#[derive(Debug)]
pub(super) enum WriteError {
    Io(io::Error),
    /// The body failed mid-way: the client sees the connection end, never a silently
    /// truncated response.
    Body,
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

fn write_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                d.1.copy_from_slice(text.as_bytes());
                d.0 = secs;
            }
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(&d.1);
        out.extend_from_slice(b"\r\n");
    });
}

/// How the body is delimited on the wire.
#[derive(Clone, Copy, PartialEq)]
enum Framing {
    None,
    Length,
    Chunked,
    Close,
}

/// Encodes the head and decides the framing; updates `a.keep_alive`. The framing
/// headers are written from the decision, never copied from the map (the upstream's
/// were hop-by-hop), and without touching the map.
fn encode_head(
    out: &mut Vec<u8>,
    head: &http::response::Parts,
    body: &ResponseBody,
    a: &mut Answering,
) -> Framing {
    let status = head.status;
    let bodiless = a.head_method
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let says_close = crate::headers::connection_has(&head.headers, "close");
    if says_close {
        a.keep_alive = false;
    }
    let length = body.size_hint().exact();
    let framing = match (bodiless, length) {
        (true, _) => Framing::None,
        (false, Some(_)) => Framing::Length,
        (false, None) if a.http10 => {
            a.keep_alive = false;
            Framing::Close
        }
        (false, None) => Framing::Chunked,
    };

    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    if !head.headers.contains_key(header::DATE) {
        write_date(out);
    }
    for (name, value) in &head.headers {
        // A bodiless answer (HEAD, 304) keeps the length the resource would have.
        if *name == header::TRANSFER_ENCODING
            || (*name == header::CONTENT_LENGTH && framing != Framing::None)
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match (framing, length) {
        (Framing::Length, Some(n)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        (Framing::Chunked, _) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        a.keep_alive = false;
    } else if !a.keep_alive && !says_close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if a.keep_alive && a.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// `SIZE CRLF` of a chunk, in hex, without allocating.
fn push_chunk_size(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// Writes all of `data` to the client.
async fn write_all(wire: &SharedWire, data: &[u8]) -> io::Result<()> {
    let mut at = 0;
    while at < data.len() {
        let n = poll_fn(|cx| {
            let mut w = lock(wire);
            Pin::new(&mut w.io).poll_write(cx, &data[at..])
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        at += n;
    }
    Ok(())
}

async fn flush(wire: &SharedWire) -> io::Result<()> {
    poll_fn(|cx| {
        let mut w = lock(wire);
        Pin::new(&mut w.io).poll_flush(cx)
    })
    .await
}

/// Writes `resp` to the client. Returns the response's head (its extensions carry an
/// upgrade) once everything was written.
pub(super) async fn write(
    wire: &SharedWire,
    resp: Response<ResponseBody>,
    a: &mut Answering,
) -> Result<http::response::Parts, WriteError> {
    let (mut head, mut body) = resp.into_parts();
    let mut out = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let framing = encode_head(&mut out, &head, &body, a);
    // The head is encoded: its map goes back for the next exchange.
    crate::headers::recycle(std::mem::take(&mut head.headers));
    let result = write_body(wire, &mut out, &mut body, framing).await;
    // Dropping the body ends the exchange (its log phase) once the last byte is out.
    drop(body);
    out.clear();
    if out.capacity() <= 64 * 1024 {
        SCRATCH.with(|s| *s.borrow_mut() = out);
    }
    result.map(|()| head)
}

async fn write_body(
    wire: &SharedWire,
    out: &mut Vec<u8>,
    body: &mut ResponseBody,
    framing: Framing,
) -> Result<(), WriteError> {
    if framing != Framing::None {
        loop {
            // Whatever is ready now joins the bytes already waiting; when nothing is
            // ready, what waits goes out first (a streamed head must not wait for data).
            let frame = poll_fn(|cx| match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending if !out.is_empty() => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
                Poll::Ready(f) => Poll::Ready(Some(f)),
            })
            .await;
            let frame = match frame {
                None => {
                    send(wire, out).await?;
                    flush(wire).await?;
                    continue;
                }
                Some(None) => break,
                Some(Some(Err(_))) => return Err(WriteError::Body),
                Some(Some(Ok(frame))) => frame,
            };
            // Trailers are not forwarded to HTTP/1 clients.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            if framing == Framing::Chunked {
                push_chunk_size(out, data.len());
            }
            if data.len() <= COALESCE {
                out.extend_from_slice(&data);
            } else {
                send(wire, out).await?;
                write_all(wire, &data).await?;
            }
            if framing == Framing::Chunked {
                out.extend_from_slice(b"\r\n");
            }
            if body.is_end_stream() {
                break;
            }
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    send(wire, out).await?;
    Ok(flush(wire).await?)
}

/// Writes what waits in `out` and empties it.
async fn send(wire: &SharedWire, out: &mut Vec<u8>) -> io::Result<()> {
    write_all(wire, out).await?;
    out.clear();
    Ok(())
}
