//! Rampart's own HTTP/1.1 server connection for the data plane: one task per client
//! connection reads a head, checks it strictly (the same RFC 9112 rules as the guard in
//! front of the admin API, [`crate::h1_guard`]), hands the request to the handler,
//! writes the response, and goes on to the next head on the same connection.
//!
//! Compared with hyper's server behind the guard, a request's bytes are parsed once and
//! copied once (into a buffer of exactly their size that the header values then share),
//! an idle keep-alive connection holds no buffer at all, and a small response goes out
//! in one write. Rejected heads are answered through the handler like any request, so
//! they get a request id, a problem+json body and an access log line with their reason;
//! nothing after a rejected head is read.

use std::future::{poll_fn, Future};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::{Buf, Bytes};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};
use rampart_core::Problem;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::h1_framing::{Chunk, Decoder};
use crate::h1_guard::{self, HeadLimits};
use crate::headers::connection_has;
use crate::proxy::{self, ClientBody, ConnCtx};

mod response;
mod wire;

use response::{Answering, WriteError};
use wire::{lock, SharedWire, Wire};
pub use wire::{BodyError, ClientIo, RequestBody};

/// Header fields parsed on the stack; a configured limit above it parses on the heap.
const STACK_HEADERS: usize = 128;

/// The upstream's side of an accepted upgrade, carried in the extensions of a `101`
/// response for the connection loop to join to the client's side. (Extensions must be
/// `Clone`; the loop takes the one upgrade out.)
#[derive(Clone)]
pub struct UpstreamUpgrade(Arc<Mutex<Option<hyper::upgrade::OnUpgrade>>>);

impl UpstreamUpgrade {
    pub fn new(upstream_side: hyper::upgrade::OnUpgrade) -> Self {
        Self(Arc::new(Mutex::new(Some(upstream_side))))
    }

    fn take(&self) -> Option<hyper::upgrade::OnUpgrade> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Marks the request that carries a rejected head to the handler: it is answered with
/// this problem, and its (synthetic) target and `Host` are not the client's.
#[derive(Clone, Copy)]
pub struct Rejected(pub Problem);

/// Marks an upgrade-shaped head without a body: the server reads nothing after it unless
/// the answer is a `101`, so only such a request may open a tunnel.
#[derive(Clone, Copy)]
pub struct Held;

/// What waiting for the next head ended with.
enum Next {
    /// A complete head of this many bytes is at the front of the buffer.
    Head(usize),
    Reject(Problem),
    Close,
}

/// What the loop keeps of a request head once the request is handed over.
struct HeadFacts {
    framing: Framing,
    keep_alive: bool,
    head_method: bool,
    http10: bool,
}

/// The request of a complete head, with its body attached; `None` when the connection is
/// to close. (Not in `serve`: a request borrowed there would keep its room in every
/// connection's future after it was handed over.)
fn take_head(
    next: Next,
    wire: &SharedWire,
    limits: &HeadLimits,
) -> Result<Option<(Request<ClientBody>, HeadFacts)>, Problem> {
    let len = match next {
        Next::Close => return Ok(None),
        Next::Reject(p) => return Err(p),
        Next::Head(len) => len,
    };
    let head = lock(wire).buf.split_to(len).freeze();
    let (request, framing, keep_alive) = parse_request(head, limits)?;
    let facts = HeadFacts {
        framing,
        keep_alive,
        head_method: request.method() == Method::HEAD,
        http10: request.version() == Version::HTTP_10,
    };
    let request = attach_body(request, framing, wire);
    Ok(Some((request, facts)))
}

/// Serves one HTTP/1 client connection until it closes.
pub(crate) async fn serve(
    ctx: Arc<ConnCtx>,
    io: ClientIo,
    limits: HeadLimits,
    mut drain: watch::Receiver<bool>,
) {
    let wire: SharedWire = Arc::new(Mutex::new(Wire::new(io)));
    // One timer for the connection's idle and header deadlines, moved only when it would
    // fire too late (see `next_head`).
    let mut timer = Box::pin(tokio::time::sleep_until(
        Instant::now() + limits.idle_timeout,
    ));
    loop {
        let next = tokio::select! {
            biased;
            n = next_head(&wire, &limits, timer.as_mut()) => n,
            _ = crate::server::wait_true(&mut drain), if !has_buffered(&wire) => Next::Close,
        };
        let (request, facts) = match take_head(next, &wire, &limits) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(p) => {
                // Rare, and boxed: the connection's future keeps no room for it.
                let rejecting = Box::pin(reject(&ctx, &wire, p));
                rejecting.await;
                break;
            }
        };
        // A body's reader, or a held head, owns what follows the head; otherwise the
        // socket is watched while the handler runs, so a client that leaves cancels its
        // upstream exchange (and frees its slots) at once. One select for both cases: two
        // awaits of the handler's future would give this connection's future a slot for
        // each.
        let watch_client = facts.framing == Framing::None;
        let handler = proxy::handle(ctx.clone(), request);
        let resp = tokio::select! {
            biased;
            r = handler => match r {
                Ok(r) => r,
                Err(never) => match never {},
            },
            () = client_gone(&wire, &limits), if watch_client => {
                tracing::debug!(peer = %ctx.peer, "client closed the connection with its request in flight");
                break;
            }
        };
        // Anything but a 101 after a held head closes the connection, so no later request
        // is read without the checks.
        let holding = facts.framing == Framing::Hold;
        let mut answering = Answering {
            head_method: facts.head_method,
            http10: facts.http10,
            keep_alive: facts.keep_alive && !holding && !*drain.borrow(),
        };
        let mut head = match response::write(&wire, resp, &mut answering).await {
            Ok(h) => h,
            Err(WriteError::Io(e)) => {
                tracing::debug!(peer = %ctx.peer, error = %e, "writing the response failed");
                break;
            }
            Err(WriteError::Body) => {
                tracing::debug!(peer = %ctx.peer, "response body failed mid-way; closing");
                break;
            }
        };
        if holding && head.status == http::StatusCode::SWITCHING_PROTOCOLS {
            if let Some(up) = head.extensions.remove::<UpstreamUpgrade>() {
                tunnel(wire, up, &ctx).await;
            }
            return;
        }
        if !answering.keep_alive {
            break;
        }
        // A body the handler did not read to its end leaves the connection at an unknown
        // place in the client's bytes: close it rather than guess.
        let w = lock(&wire);
        if !w.body.is_done() || w.abandoned {
            break;
        }
    }
    close(&wire).await;
}

/// Resolves when the client closes its side (or the socket fails) while its request is
/// in flight. Bytes of pipelined requests that arrive meanwhile are kept for the loop, up
/// to one head's worth; past that nothing more is read until the answer is out.
async fn client_gone(wire: &Mutex<Wire>, limits: &HeadLimits) {
    poll_fn(|cx| loop {
        let mut w = lock(wire);
        if w.buf.len() > limits.max_head_bytes {
            return Poll::Pending;
        }
        match w.poll_fill(cx) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(_)) => continue,
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// True when bytes of a next (pipelined) request are waiting.
fn has_buffered(wire: &Mutex<Wire>) -> bool {
    !lock(wire).buf.is_empty()
}

/// Stops the body from reading more and closes the write side (TLS close_notify).
async fn close(wire: &SharedWire) {
    lock(wire).abandoned = true;
    let _ = poll_fn(|cx| {
        let mut w = lock(wire);
        tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut w.io), cx)
    })
    .await;
}

/// Waits for a complete head, enforcing the idle timeout (nothing read yet) and the
/// header deadline (a head started). The timer is moved earlier when it must be; when it
/// fires early, the deadline is checked and the timer set again: no timer work on the
/// common path where a head arrives in one read.
async fn next_head(wire: &Mutex<Wire>, limits: &HeadLimits, mut timer: Pin<&mut Sleep>) -> Next {
    let mut searched = 0usize;
    let mut waiting_since: Option<(Instant, bool)> = None;
    poll_fn(|cx| loop {
        let mut w = lock(wire);
        // RFC 9112 §2.2: empty lines before a request line are ignored.
        let skip = w
            .buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if skip > 0 {
            w.buf.advance(skip);
            searched = 0;
        }
        if !w.buf.is_empty() {
            match h1_guard::locate_head(&w.buf, &mut searched, limits) {
                Ok(Some(end)) => return Poll::Ready(Next::Head(end)),
                Ok(None) => {}
                Err(p) => return Poll::Ready(Next::Reject(p)),
            }
        }
        match w.poll_fill(cx) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Next::Close),
            Poll::Ready(Ok(_)) => continue,
            Poll::Pending => {}
        }
        let started = !w.buf.is_empty();
        drop(w);
        let now = Instant::now();
        let since = match waiting_since {
            Some((t, s)) if s == started => t,
            _ => {
                waiting_since = Some((now, started));
                now
            }
        };
        let deadline = since
            + if started {
                limits.header_timeout
            } else {
                limits.idle_timeout
            };
        if now >= deadline {
            return Poll::Ready(if started {
                Next::Reject(Problem::HEADER_TIMEOUT)
            } else {
                tracing::debug!("closing idle keep-alive connection");
                Next::Close
            });
        }
        if timer.deadline() > deadline || timer.is_elapsed() {
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
    })
    .await
}

/// How the request's body is framed, as the strict check found it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// An upgrade or CONNECT head without a body: nothing after it is read unless the
    /// answer is a `101`.
    Hold,
}

/// Checks a complete head strictly, then parses it into a request whose header values
/// share the head's bytes. Returns the framing and whether the client asked for the
/// connection to stay open.
fn parse_request(
    head: Bytes,
    limits: &HeadLimits,
) -> Result<(Request<()>, Framing, bool), Problem> {
    let framing = match h1_guard::check_head(&head, limits)? {
        h1_guard::Framing::Head => Framing::None,
        h1_guard::Framing::Length(n) => Framing::Length(n),
        h1_guard::Framing::Chunked => Framing::Chunked,
        h1_guard::Framing::Hold => Framing::Hold,
    };
    // Uninitialised: zeroing 128 fields per request cost more than parsing them.
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let fields: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack
    } else {
        heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    if req.parse_with_uninit_headers(&head, fields).is_err() || req.method.is_none() {
        return Err(Problem::MALFORMED);
    }
    let method =
        Method::from_bytes(req.method.unwrap_or("").as_bytes()).map_err(|_| Problem::MALFORMED)?;
    let path = req.path.unwrap_or("");
    let base = head.as_ptr() as usize;
    let slice = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        head.slice(start..start + s.len())
    };
    let uri =
        Uri::from_maybe_shared(slice(path.as_bytes())).map_err(|_| Problem::BAD_REQUEST_TARGET)?;
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Room for what the gateway adds on the way upstream (forwarding headers, request
    // id, identity headers), so the map is not grown on the way.
    let mut headers = crate::headers::new_map(req.headers.len() + 12);
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Problem::BAD_HEADER)?;
        let value =
            HeaderValue::from_maybe_shared(slice(h.value)).map_err(|_| Problem::BAD_HEADER)?;
        headers.append(name, value);
    }
    let keep_alive = if version == Version::HTTP_10 {
        connection_has(&headers, "keep-alive")
    } else {
        !connection_has(&headers, "close")
    };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok((request, framing, keep_alive))
}

/// Gives the request its body: none, or one read off the wire as it is forwarded.
/// A held head (an upgrade) is marked [`Held`] for the handler.
fn attach_body(
    mut request: Request<()>,
    framing: Framing,
    wire: &SharedWire,
) -> Request<ClientBody> {
    if framing == Framing::Hold {
        request.extensions_mut().insert(Held);
    }
    let (decoder, length) = match framing {
        Framing::None | Framing::Hold => return request.map(|()| ClientBody::Empty),
        Framing::Length(n) => (Decoder::Length(n), Some(n)),
        Framing::Chunked => (Decoder::Chunked(Chunk::Size), None),
    };
    let expects_continue = request.version() == Version::HTTP_11
        && request
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    {
        let mut w = lock(wire);
        w.body = decoder;
        // RFC 9110 §10.1.1: the client waits for this before sending the body; it is sent
        // when the body is first read, so a request refused before then never gets it.
        w.continue_sent = expects_continue.then_some(0);
    }
    request.map(|()| ClientBody::H1(RequestBody::new(wire.clone(), length)))
}

/// Answers a rejected head through the handler (request id, problem body, access log
/// line), with `Connection: close`.
async fn reject(ctx: &Arc<ConnCtx>, wire: &SharedWire, p: Problem) {
    let mut request = Request::new(ClientBody::Empty);
    request.extensions_mut().insert(Rejected(p));
    let resp = match proxy::handle(ctx.clone(), request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let mut answering = Answering {
        head_method: false,
        http10: false,
        keep_alive: false,
    };
    if let Err(e) = response::write(wire, resp, &mut answering).await {
        tracing::debug!(peer = %ctx.peer, error = ?e, "writing a rejection failed");
    }
}

/// Joins the client's connection to the upstream's after a `101`: what the client sent
/// after its head goes first, then bytes are copied both ways until either side closes.
async fn tunnel(wire: SharedWire, up: UpstreamUpgrade, ctx: &ConnCtx) {
    let Ok(wire) = Arc::try_unwrap(wire) else {
        // Unreachable: an upgrade head has no body to hold the wire.
        return;
    };
    let mut client = wire.into_inner().unwrap_or_else(|e| e.into_inner());
    let Some(up) = up.take() else {
        return;
    };
    match up.await {
        Ok(upstream) => {
            let mut upstream = hyper_util::rt::TokioIo::new(upstream);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(peer = %ctx.peer, error = %e, "upgraded connection ended");
            }
        }
        Err(e) => tracing::debug!(peer = %ctx.peer, error = %e, "upgrade failed"),
    }
}

#[cfg(test)]
mod tests;
