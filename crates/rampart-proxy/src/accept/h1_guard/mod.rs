//! Strict HTTP/1.1 framing at the socket, before hyper sees a byte.
//!
//! hyper's parser is lenient in places where a gateway must not be: it repairs a request
//! with both `Content-Length` and `Transfer-Encoding`, accepts repeated identical
//! `Content-Length`, and accepts bare LF line endings. Any leniency that the upstream does
//! not share is a request-smuggling hole, so [`H1Guard`] holds each request head until it
//! is complete, checks it against RFC 9112 with no repairs, and only then releases it.
//! It also follows body framing (length or chunked) so it always knows where the next
//! head starts, and enforces the header deadline and the keep-alive idle timeout.
//!
//! A rejected head is replaced by a synthetic request to a per-connection secret path, so
//! the rejection travels through the normal service: it gets a request id, a
//! problem+json body, `Connection: close` and an access log line with its reason code.
//! Nothing after a rejected head is ever read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_core::Problem;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

mod chunked;
mod head;

use chunked::{scan_chunked, Chunk};
pub use head::check_request_head;
pub(crate) use head::{check_head, locate_head, Framing};

/// Bytes read from the socket per poll.
const READ_CHUNK: usize = 8192;

/// Limits the guard enforces on request heads.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl HeadLimits {
    /// The limits an edge listener has when the config sets none (DESIGN.md §6).
    pub const DEFAULT: HeadLimits = HeadLimits {
        max_head_bytes: 16 * 1024,
        max_headers: 100,
        max_uri_bytes: 8 * 1024,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    };
}

/// State shared between the guard (socket side) and the service (request side) of one
/// HTTP/1 connection.
#[derive(Debug)]
pub struct ConnShared {
    /// Requests on this connection whose responses have not finished. The idle timer
    /// only runs at zero, so a long response is never mistaken for an idle connection.
    pub in_flight: AtomicUsize,
    /// Set once, when the guard rejects a head.
    pub rejection: OnceLock<Problem>,
    /// Path of the synthetic request that carries a rejection to the service. Random per
    /// connection, so a client cannot forge one.
    pub reject_path: String,
    /// Set while the guard holds the connection after an upgrade-shaped head (see
    /// [`State::Hold`]): the service must answer with `101` or close the connection.
    pub holding: std::sync::atomic::AtomicBool,
}

impl ConnShared {
    pub fn new() -> Arc<Self> {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5a17_ed00);
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            rejection: OnceLock::new(),
            reject_path: format!("/.rampart-rejected-{:016x}", h.finish()),
            holding: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The rejection, when `path` is this connection's synthetic request.
    pub fn rejection_for(&self, path: &str) -> Option<Problem> {
        self.rejection
            .get()
            .copied()
            .filter(|_| path == self.reject_path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for (or assembling) the next request head.
    Head,
    /// Inside a body of known length: this many bytes remain.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// After an upgrade/CONNECT head, until its response is written: nothing after the
    /// head is read or released. A `101 Switching Protocols` actually written turns the
    /// connection into a tunnel ([`State::Passthrough`]); any other answer goes out with
    /// `Connection: close` (the service sees [`ConnShared::holding`]) and nothing more is
    /// read, so a refused upgrade can never switch the checks off for later requests.
    Hold,
    /// After a `101` was written: bytes pass unchecked (hyper hands them to the tunnel).
    Passthrough,
    /// After a rejection: the synthetic request has been handed over and nothing more is
    /// read. Reads stay pending (not EOF: hyper drops an in-flight request on EOF), and
    /// the `Connection: close` on the rejection's response ends the connection.
    Rejected,
    /// After the idle timeout: reads return EOF.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    None,
    Idle,
    Header,
}

/// An I/O wrapper that enforces strict HTTP/1.1 framing; see the module docs.
pub struct H1Guard<IO> {
    io: IO,
    limits: HeadLimits,
    shared: Arc<ConnShared>,
    state: State,
    /// Bytes read from the socket and not yet handed to hyper.
    buf: Vec<u8>,
    /// `buf[..ready]` has been checked and may be handed to hyper.
    ready: usize,
    /// `buf[..scanned]` has been processed by the state machine.
    scanned: usize,
    eof: bool,
    timer_kind: Timer,
    timer: Pin<Box<Sleep>>,
    /// `buf[..head_searched]` holds no head terminator: a head trickled in byte by byte is
    /// searched once, not once per read (which would be quadratic).
    head_searched: usize,
    /// While holding: the first bytes of the response written so far (its status line).
    status_probe: [u8; 12],
    probe_len: usize,
    /// The reader parked while holding, woken when the response decides the state.
    parked: Option<std::task::Waker>,
}

impl<IO> H1Guard<IO> {
    pub fn new(io: IO, limits: HeadLimits, shared: Arc<ConnShared>) -> Self {
        Self {
            io,
            limits,
            shared,
            state: State::Head,
            buf: Vec::new(),
            ready: 0,
            scanned: 0,
            eof: false,
            timer_kind: Timer::None,
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            head_searched: 0,
            status_probe: [0; 12],
            probe_len: 0,
            parked: None,
        }
    }

    /// While holding: looks at the response bytes `written`; once the status line is in,
    /// either opens the tunnel (a real `101`) or stops reading for good.
    fn probe_response(&mut self, written: &[u8]) {
        let take = written.len().min(self.status_probe.len() - self.probe_len);
        self.status_probe[self.probe_len..self.probe_len + take].copy_from_slice(&written[..take]);
        self.probe_len += take;
        if self.probe_len < self.status_probe.len() {
            return;
        }
        if &self.status_probe == b"HTTP/1.1 101" {
            self.state = State::Passthrough;
        } else {
            // Not switching: the response carries `Connection: close`; what the client
            // sent after the head is discarded unread.
            self.buf.clear();
            self.ready = 0;
            self.scanned = 0;
            self.state = State::Rejected;
        }
        self.shared
            .holding
            .store(false, std::sync::atomic::Ordering::Release);
        if let Some(w) = self.parked.take() {
            w.wake();
        }
    }

    fn reject(&mut self, problem: Problem) {
        let _ = self.shared.rejection.set(problem);
        let synthetic = format!(
            "GET {} HTTP/1.1\r\nhost: rejected.invalid\r\n\r\n",
            self.shared.reject_path
        );
        self.buf.clear();
        self.buf.extend_from_slice(synthetic.as_bytes());
        self.ready = self.buf.len();
        self.scanned = self.buf.len();
        self.state = State::Rejected;
    }

    /// Runs the framing state machine over unscanned bytes. Returns an error only for a
    /// malformed chunked body (mid-request, where no clean answer is possible).
    fn scan(&mut self) -> io::Result<()> {
        while self.scanned < self.buf.len() {
            match self.state {
                State::Head => {
                    // RFC 9112 §2.2: empty lines before a request line are ignored.
                    if self.scanned == 0 {
                        let skip = self
                            .buf
                            .iter()
                            .take_while(|&&b| b == b'\r' || b == b'\n')
                            .count();
                        if skip > 0 {
                            self.buf.drain(..skip);
                            self.head_searched = 0;
                            continue;
                        }
                    }
                    match locate_head(&self.buf, &mut self.head_searched, &self.limits) {
                        Ok(Some(end)) => match check_head(&self.buf[..end], &self.limits) {
                            Ok(framing) => {
                                let next = match framing {
                                    Framing::Head => State::Head,
                                    Framing::Length(n) => State::Length(n),
                                    Framing::Chunked => State::Chunked(Chunk::Size {
                                        value: 0,
                                        digits: 0,
                                    }),
                                    Framing::Hold => State::Hold,
                                };
                                self.ready = end;
                                self.scanned = end;
                                self.state = next;
                                self.timer_kind = Timer::None;
                                if next == State::Hold {
                                    self.shared
                                        .holding
                                        .store(true, std::sync::atomic::Ordering::Release);
                                    self.probe_len = 0;
                                    return Ok(());
                                }
                            }
                            Err(p) => {
                                self.reject(p);
                                return Ok(());
                            }
                        },
                        Ok(None) => return Ok(()),
                        Err(p) => {
                            self.reject(p);
                            return Ok(());
                        }
                    }
                }
                State::Length(n) => {
                    let take = (self.buf.len() - self.scanned)
                        .min(usize::try_from(n).unwrap_or(usize::MAX));
                    self.scanned += take;
                    self.ready = self.scanned;
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Length(left)
                    };
                }
                State::Chunked(c) => {
                    let (next, used) =
                        scan_chunked(c, &self.buf[self.scanned..], self.limits.max_head_bytes)?;
                    self.scanned += used;
                    self.ready = self.scanned;
                    self.state = next.map_or(State::Head, State::Chunked);
                }
                // Bytes after an upgrade head wait for its response.
                State::Hold => return Ok(()),
                State::Passthrough | State::Closed | State::Rejected => {
                    self.scanned = self.buf.len();
                    self.ready = self.scanned;
                }
            }
            if self.state == State::Head && self.ready > 0 {
                // A full request has been released; anything after it is the next head and
                // is scanned once hyper has taken what is ready.
                return Ok(());
            }
        }
        Ok(())
    }

    fn arm_timer(&mut self) {
        let want = match self.state {
            State::Head if !self.buf.is_empty() => Timer::Header,
            State::Head if self.shared.in_flight.load(Ordering::Acquire) == 0 => Timer::Idle,
            _ => Timer::None,
        };
        if want != self.timer_kind {
            self.timer_kind = want;
            let d = match want {
                Timer::Header => self.limits.header_timeout,
                _ => self.limits.idle_timeout,
            };
            self.timer.as_mut().reset(Instant::now() + d);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for H1Guard<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.drain(..n);
                this.ready -= n;
                this.scanned -= n;
                if this.buf.is_empty() && this.buf.capacity() > READ_CHUNK {
                    this.buf = Vec::new();
                }
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Rejected {
                return Poll::Pending;
            }
            if this.state == State::Hold {
                this.parked = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if this.state == State::Closed || (this.eof && this.buf.len() == this.scanned) {
                return Poll::Ready(Ok(()));
            }
            if this.scanned < this.buf.len() {
                let before = (this.ready, this.scanned, this.state);
                this.scan()?;
                if (this.ready, this.scanned, this.state) != before {
                    continue;
                }
            }
            if this.eof {
                // A partial head at EOF: hand nothing more; hyper sees an incomplete
                // message and closes.
                return Poll::Ready(Ok(()));
            }
            this.arm_timer();
            if this.timer_kind != Timer::None && this.timer.as_mut().poll(cx).is_ready() {
                match this.timer_kind {
                    Timer::Header => {
                        this.reject(Problem::HEADER_TIMEOUT);
                        continue;
                    }
                    _ => {
                        tracing::debug!("closing idle keep-alive connection");
                        this.state = State::Closed;
                        this.buf.clear();
                        this.ready = 0;
                        this.scanned = 0;
                        return Poll::Ready(Ok(()));
                    }
                }
            }
            // Read into an uninitialised stack buffer and keep only what arrived, so an idle
            // connection holds no read buffer of ours (hyper keeps its own).
            let mut storage = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut rb = ReadBuf::uninit(&mut storage);
            let res = Pin::new(&mut this.io).poll_read(cx, &mut rb);
            let got = rb.filled().len();
            this.buf.extend_from_slice(rb.filled());
            match res {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if got == 0 {
                        this.eof = true;
                    }
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for H1Guard<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write(cx, buf);
        if self.state == State::Hold {
            if let Poll::Ready(Ok(n)) = res {
                self.probe_response(&buf[..n]);
            }
        }
        res
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if self.state == State::Hold {
            if let Poll::Ready(Ok(mut n)) = res {
                for b in bufs {
                    if n == 0 || self.state != State::Hold {
                        break;
                    }
                    let take = n.min(b.len());
                    self.probe_response(&b[..take]);
                    n -= take;
                }
            }
        }
        res
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
