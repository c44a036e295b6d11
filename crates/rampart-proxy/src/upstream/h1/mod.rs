//! Rampart's own HTTP/1.1 upstream client, for requests without a body (most API
//! traffic). The request head is written and the response read from the server
//! connection's own task, and the response body streams straight off the upstream socket
//! while the client's response is written: no second task per pooled connection, no
//! channel and oneshot between the two, and an idle pooled connection holds no buffer
//! (DESIGN.md §8). Requests with a body, upgrades and HTTP/2 upstreams go through hyper's
//! client, which reads a response while a body is still being sent.
//!
//! Parsing is strict where a lenient reading lets a response be read two ways (RFC 9112
//! §6.3): both `Transfer-Encoding` and `Content-Length`, conflicting or malformed lengths,
//! bare LF in chunk framing, oversized heads and chunk lines are all a bad gateway, and
//! the connection is never reused after anything unexpected.

use std::cell::RefCell;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use super::pool::UpstreamIo;

mod body;

use body::Chunk;
pub use body::{Decoder, H1Body};

/// Largest response head accepted (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Most response header fields accepted.
const MAX_HEADERS: usize = 128;
/// Read-buffer growth step (and the first read of an exchange).
pub(super) use crate::h1_framing::READ_CHUNK;

thread_local! {
    /// Where request heads are encoded: one buffer per worker, reused by every request.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Why an exchange on our client failed.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// The upstream closed the connection before sending a byte of a response (a pooled
    /// connection it had just timed out, typically).
    #[error("connection closed before a response")]
    ClosedBeforeResponse,
    /// The request head could not be written; the upstream cannot have acted on it.
    #[error("writing the request failed: {0}")]
    Write(io::Error),
    #[error("reading the response failed: {0}")]
    Read(io::Error),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

/// An upstream connection owned by a worker: in its pool while idle, by one exchange
/// (and then its response body) while in use.
pub struct Conn {
    io: UpstreamIo,
    /// Read buffer; empty and unallocated while the connection is idle.
    pub(super) buf: BytesMut,
}

impl Conn {
    pub fn new(io: UpstreamIo) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
        }
    }

    /// True when an idle connection has something to read: the upstream closed it (EOF,
    /// reset, TLS close_notify) or sent bytes nobody asked for. Neither can be used. Costs
    /// no system call while the socket is not readable.
    pub fn is_stale(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut rb = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut rb)
            .is_ready()
    }

    /// Reads what the socket has into `buf` (see [`crate::h1_framing::poll_fill`]); a
    /// connection's first read of an exchange may take a whole small answer.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        crate::h1_framing::poll_fill::<_, READ_CHUNK>(&mut self.io, &mut self.buf, cx)
    }

    /// Drops the read buffer before the connection goes idle.
    pub(super) fn release(&mut self) {
        self.buf = BytesMut::new();
    }
}

/// Where a connection goes back to once its response body has been read to the end.
pub struct PoolSlot {
    pub pool_key: Arc<str>,
    pub max_idle: usize,
    pub idle_timeout: Duration,
}

/// Sends a request without a body on `conn` and reads the response head. The body is
/// read as the caller polls the returned response's body.
pub async fn send(
    mut conn: Conn,
    method: &Method,
    path: &PathAndQuery,
    headers: &HeaderMap,
    slot: PoolSlot,
) -> Result<Response<H1Body>, H1Error> {
    let mut head = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    encode_head(&mut head, method, path, headers);
    let written = conn.io.write_all(&head).await;
    head.clear();
    SCRATCH.with(|s| *s.borrow_mut() = head);
    written.map_err(H1Error::Write)?;

    let (status, version, headers) = read_head(&mut conn).await?;
    let framing = framing(method, status, version, &headers)?;
    let keep_alive = !matches!(framing, Decoder::Close) && persistent(version, &headers);
    let mut resp = Response::new(H1Body::new(conn, framing, keep_alive, slot));
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// `METHOD path HTTP/1.1`, the headers as given, and the blank line. Methods that
/// normally carry a body get an explicit `Content-Length: 0` when they have none, as
/// some servers answer 411 without it.
fn encode_head(out: &mut Vec<u8>, method: &Method, path: &PathAndQuery, headers: &HeaderMap) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        && !headers.contains_key(header::CONTENT_LENGTH)
    {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Reads until a complete final (non-1xx) response head is parsed. Interim responses
/// (100 Continue, 103 Early Hints) are skipped; 101 is refused, as no upgrade was offered.
async fn read_head(conn: &mut Conn) -> Result<(StatusCode, Version, HeaderMap), H1Error> {
    let mut got_any = false;
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&mut conn.buf)? {
                Parsed::Partial => {}
                Parsed::Interim => continue,
                Parsed::Final(status, version, headers) => return Ok((status, version, headers)),
            }
            if conn.buf.len() >= MAX_HEAD {
                return Err(H1Error::Malformed("response head too large"));
            }
        }
        let n = std::future::poll_fn(|cx| conn.poll_fill(cx))
            .await
            .map_err(|e| {
                if got_any {
                    H1Error::Read(e)
                } else {
                    closed_or(e)
                }
            })?;
        if n == 0 {
            return Err(if got_any {
                H1Error::Malformed("connection closed inside the response head")
            } else {
                H1Error::ClosedBeforeResponse
            });
        }
        got_any = true;
    }
}

/// A reset before any response byte is the same stale-connection race as a clean close.
fn closed_or(e: io::Error) -> H1Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            H1Error::ClosedBeforeResponse
        }
        _ => H1Error::Read(e),
    }
}

enum Parsed {
    Partial,
    /// A 1xx head was consumed; parse again.
    Interim,
    Final(StatusCode, Version, HeaderMap),
}

fn parse_head(buf: &mut BytesMut) -> Result<Parsed, H1Error> {
    // Uninitialised: zeroing the fields per response cost more than parsing them.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(H1Error::Malformed("too many response headers"))
        }
        Err(_) => return Err(H1Error::Malformed("unparseable response head")),
    };
    let code = resp.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| H1Error::Malformed("invalid status code"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(H1Error::Malformed("101 without an upgrade request"));
    }
    if status.is_informational() {
        buf.advance(len);
        return Ok(Parsed::Interim);
    }
    let version = match resp.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    // Field positions, so the values can share the head's bytes once it is frozen.
    let base = buf.as_ptr() as usize;
    // u32 offsets: half the zeroing of usize ones (a head is far below 4 GiB).
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let count = resp.headers.len();
    for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
        let name = (h.name.as_ptr() as usize - base) as u32;
        let value = (h.value.as_ptr() as usize - base) as u32;
        *span = (
            name,
            name + h.name.len() as u32,
            value,
            value + h.value.len() as u32,
        );
    }
    let head = buf.split_to(len).freeze();
    // Room for what the gateway adds to the response (request id, security headers), so
    // the map is not grown (reallocated) on the way out.
    let mut headers = crate::headers::new_map(count + 8);
    for &(ns, ne, vs, ve) in &spans[..count] {
        let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
        let name = HeaderName::from_bytes(&head[ns..ne])
            .map_err(|_| H1Error::Malformed("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
            .map_err(|_| H1Error::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    Ok(Parsed::Final(status, version, headers))
}

/// How the response body is delimited (RFC 9112 §6.3).
fn framing(
    method: &Method,
    status: StatusCode,
    version: Version,
    headers: &HeaderMap,
) -> Result<Decoder, H1Error> {
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Decoder::Length(0));
    }
    let te = headers.contains_key(header::TRANSFER_ENCODING);
    let cl = headers.contains_key(header::CONTENT_LENGTH);
    if te {
        // RFC 9112 §6.3: TE + CL is rejected, not repaired (a smuggling vector).
        if cl {
            return Err(H1Error::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if version == Version::HTTP_10 {
            return Err(H1Error::Malformed(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        let mut last = None;
        for value in headers.get_all(header::TRANSFER_ENCODING) {
            let s = value
                .to_str()
                .map_err(|_| H1Error::Malformed("invalid Transfer-Encoding"))?;
            for coding in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                if last.is_some_and(|l: &str| l.eq_ignore_ascii_case("chunked")) {
                    return Err(H1Error::Malformed("chunked is not the last coding"));
                }
                last = Some(coding);
            }
        }
        // Only a final `chunked` delimits the body; anything else runs to the close.
        return Ok(match last {
            Some(l) if l.eq_ignore_ascii_case("chunked") => Decoder::Chunked(Chunk::Size),
            _ => Decoder::Close,
        });
    }
    if cl {
        let mut length = None;
        for value in headers.get_all(header::CONTENT_LENGTH) {
            for part in value.as_bytes().split(|&b| b == b',') {
                let n = parse_length(part.trim_ascii())
                    .ok_or(H1Error::Malformed("invalid Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(H1Error::Malformed("conflicting Content-Length values"));
                }
                length = Some(n);
            }
        }
        return Ok(Decoder::Length(length.unwrap_or(0)));
    }
    Ok(Decoder::Close)
}

/// 1*DIGIT, at most 19 digits (no sign, no spaces, no overflow).
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// Whether the connection may carry another request after this response.
fn persistent(version: Version, headers: &HeaderMap) -> bool {
    if version != Version::HTTP_11 {
        return false;
    }
    !crate::headers::connection_has(headers, "close")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn frame(pairs: &[(&str, &str)]) -> Result<Decoder, H1Error> {
        framing(
            &Method::GET,
            StatusCode::OK,
            Version::HTTP_11,
            &headers(pairs),
        )
    }

    #[test]
    fn te_and_cl_together_are_refused() {
        let r = frame(&[("transfer-encoding", "chunked"), ("content-length", "5")]);
        assert!(matches!(r, Err(H1Error::Malformed(_))));
    }

    #[test]
    fn conflicting_or_signed_lengths_are_refused() {
        for v in [
            "5, 6",
            "+5",
            "-1",
            "5 5",
            "",
            "0x10",
            "99999999999999999999",
        ] {
            assert!(frame(&[("content-length", v)]).is_err(), "{v:?}");
        }
        assert_eq!(
            frame(&[("content-length", "7, 7")]).unwrap(),
            Decoder::Length(7)
        );
    }

    #[test]
    fn chunked_must_be_the_last_coding() {
        assert!(frame(&[("transfer-encoding", "chunked, gzip")]).is_err());
        assert_eq!(
            frame(&[("transfer-encoding", "gzip, chunked")]).unwrap(),
            Decoder::Chunked(Chunk::Size)
        );
        assert_eq!(
            frame(&[("transfer-encoding", "gzip")]).unwrap(),
            Decoder::Close
        );
    }

    #[test]
    fn bodiless_statuses_and_head_have_no_body() {
        let h = headers(&[("content-length", "10")]);
        for (m, s) in [
            (Method::HEAD, StatusCode::OK),
            (Method::GET, StatusCode::NO_CONTENT),
            (Method::GET, StatusCode::NOT_MODIFIED),
        ] {
            assert_eq!(
                framing(&m, s, Version::HTTP_11, &h).unwrap(),
                Decoder::Length(0)
            );
        }
    }

    #[test]
    fn persistence_follows_version_and_connection_close() {
        assert!(persistent(Version::HTTP_11, &headers(&[])));
        assert!(!persistent(
            Version::HTTP_11,
            &headers(&[("connection", "x, Close")])
        ));
        assert!(!persistent(Version::HTTP_10, &headers(&[])));
    }
}
