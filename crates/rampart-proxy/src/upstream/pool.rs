//! Upstream connections. Each worker thread keeps its own pools (a thread-local map, so
//! checkout and checkin are lock-free and never contended): per target, a LIFO stack of
//! idle connections of our own HTTP/1.1 client ([`super::h1`], for requests without a
//! body), one of hyper HTTP/1.1 senders (requests with a body), or one shared HTTP/2
//! connection.
//!
//! A pool grows with demand up to `max_idle_per_target` idle connections and shrinks when
//! traffic falls: the cold end of each stack is closed once idle for `idle_timeout`, on
//! every check-in and by a per-worker sweep ([`reap`]) when there is no traffic at all.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_config::UpstreamProtocol;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::h1::{Conn, PoolSlot};
use super::{Stream, Target, Upstream};
use crate::request_body::RequestBody;

/// A TCP or TLS connection to a target.
pub type UpstreamIo = Stream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timed out")]
    Timeout,
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    #[error("HTTP handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
}

/// A ready-to-use sender to one target.
pub enum Sender {
    H1(http1::SendRequest<RequestBody>),
    H2(http2::SendRequest<RequestBody>),
}

struct Idle<C> {
    conn: C,
    since: Instant,
}

/// Idle connections of one kind to one target: the warm end at the back.
struct Stack<C> {
    idle: VecDeque<Idle<C>>,
    idle_timeout: Duration,
}

impl<C> Stack<C> {
    fn new(idle_timeout: Duration) -> Self {
        Stack {
            idle: VecDeque::new(),
            idle_timeout,
        }
    }

    /// Adds a connection at the warm end, closing the cold end's expired ones and the
    /// coldest beyond `max_idle`.
    fn push(&mut self, conn: C, now: Instant, max_idle: usize, idle_timeout: Duration) {
        self.idle_timeout = idle_timeout;
        self.expire(now);
        if self.idle.len() >= max_idle {
            self.idle.pop_front();
        }
        self.idle.push_back(Idle { conn, since: now });
    }

    fn expire(&mut self, now: Instant) {
        while self
            .idle
            .front()
            .is_some_and(|i| now.duration_since(i.since) >= self.idle_timeout)
        {
            self.idle.pop_front();
        }
    }
}

#[derive(Default)]
struct Pools {
    own: HashMap<Arc<str>, Stack<Conn>>,
    idle: HashMap<Arc<str>, Stack<http1::SendRequest<RequestBody>>>,
    h2: HashMap<Arc<str>, http2::SendRequest<RequestBody>>,
}

thread_local! {
    static POOLS: RefCell<Pools> = RefCell::new(Pools::default());
}

/// Opens a TCP (and TLS, for https targets) connection to `target` within the
/// upstream's connect timeout.
pub async fn connect_io(upstream: &Upstream, target: &Target) -> Result<UpstreamIo, ConnectError> {
    let fut = async {
        let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
        tcp.set_nodelay(true)?;
        if !target.https {
            return Ok(Stream::Plain(tcp));
        }
        let Some((config, name_override)) = &upstream.tls else {
            return Err(ConnectError::Io(io::Error::other(
                "https target without TLS config",
            )));
        };
        let name = name_override.as_deref().unwrap_or(&target.host);
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid TLS server name"))?;
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(server_name, tcp)
            .await?;
        Ok(Stream::Tls(Box::new(tls)))
    };
    tokio::time::timeout(upstream.timeouts.connect, fut)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

/// Takes an idle connection of our HTTP/1.1 client to `target`, or opens one. The flag is
/// true for a reused connection (the caller retries once on a fresh one if it turns out
/// to have been closed under it).
pub async fn checkout_h1(
    upstream: &Upstream,
    target: &Target,
    fresh: bool,
) -> Result<(Conn, bool), ConnectError> {
    if !fresh {
        let now = Instant::now();
        let pooled = POOLS.with(|p| {
            let mut pools = p.borrow_mut();
            let stack = pools.own.get_mut(&target.pool_key)?;
            while let Some(mut idle) = stack.idle.pop_back() {
                if now.duration_since(idle.since) < upstream.idle_timeout && !idle.conn.is_stale() {
                    return Some(idle.conn);
                }
            }
            None
        });
        if let Some(conn) = pooled {
            return Ok((conn, true));
        }
    }
    // Boxed: connecting is the rare path and its future is large.
    Box::pin(connect_io(upstream, target))
        .await
        .map(|io| (Conn::new(io), false))
}

/// Returns a connection of our HTTP/1.1 client whose response was read to the end.
pub fn checkin_h1(conn: Conn, slot: &PoolSlot, now: Instant) {
    if slot.max_idle == 0 {
        return;
    }
    POOLS.with(|p| {
        p.borrow_mut()
            .own
            .entry(slot.pool_key.clone())
            .or_insert_with(|| Stack::new(slot.idle_timeout))
            .push(conn, now, slot.max_idle, slot.idle_timeout);
    });
}

/// Closes this worker's idle connections that have been idle too long (or were closed by
/// their upstream), so a pool shrinks even when no request comes to trigger it.
pub fn reap() {
    let now = Instant::now();
    POOLS.with(|p| {
        let mut pools = p.borrow_mut();
        pools.own.retain(|_, s| {
            s.expire(now);
            s.idle.retain_mut(|i| !i.conn.is_stale());
            !s.idle.is_empty()
        });
        pools.idle.retain(|_, s| {
            s.expire(now);
            s.idle.retain(|i| !i.conn.is_closed());
            !s.idle.is_empty()
        });
        pools.h2.retain(|_, s| !s.is_closed());
    });
}

/// How often each worker runs [`reap`].
pub const REAP_EVERY: Duration = Duration::from_secs(2);

/// Takes a pooled connection to `target`, or opens one. The flag is true for a reused
/// connection (which may turn out stale; the caller retries those once on a fresh one).
pub async fn checkout(
    upstream: &Upstream,
    target: &Target,
    fresh: bool,
) -> Result<(Sender, bool), ConnectError> {
    if !fresh {
        if let Some(sender) = take_pooled(upstream, target) {
            return Ok((sender, true));
        }
    }
    // Boxed: connecting (TCP, TLS, HTTP handshake) is the rare path and its future is
    // large; keeping it out of line keeps every request's future small.
    Box::pin(open(upstream, target)).await.map(|s| (s, false))
}

/// Opens a new connection to `target` and registers HTTP/2 ones for sharing.
async fn open(upstream: &Upstream, target: &Target) -> Result<Sender, ConnectError> {
    let io = TokioIo::new(connect_io(upstream, target).await?);
    match upstream.protocol {
        UpstreamProtocol::Http1 => {
            let (sender, conn) = http1::Builder::new().writev(false).handshake(io).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
            });
            Ok(Sender::H1(sender))
        }
        UpstreamProtocol::Http2 => {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .handshake(io)
                .await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended with an error");
                }
            });
            POOLS.with(|p| {
                p.borrow_mut()
                    .h2
                    .insert(target.pool_key.clone(), sender.clone())
            });
            Ok(Sender::H2(sender))
        }
    }
}

fn take_pooled(upstream: &Upstream, target: &Target) -> Option<Sender> {
    POOLS.with(|p| {
        let mut pools = p.borrow_mut();
        match upstream.protocol {
            UpstreamProtocol::Http2 => match pools.h2.get(&target.pool_key) {
                Some(s) if !s.is_closed() => Some(Sender::H2(s.clone())),
                Some(_) => {
                    pools.h2.remove(&target.pool_key);
                    None
                }
                None => None,
            },
            UpstreamProtocol::Http1 => {
                let stack = pools.idle.get_mut(&target.pool_key)?;
                let now = Instant::now();
                while let Some(idle) = stack.idle.pop_back() {
                    if idle.conn.is_closed()
                        || now.duration_since(idle.since) >= upstream.idle_timeout
                    {
                        continue;
                    }
                    return Some(Sender::H1(idle.conn));
                }
                None
            }
        }
    })
}

/// Returns a hyper HTTP/1.1 connection whose exchange finished cleanly.
pub fn checkin(
    pool_key: &Arc<str>,
    sender: http1::SendRequest<RequestBody>,
    max_idle: usize,
    idle_timeout: Duration,
) {
    if sender.is_closed() || max_idle == 0 {
        return;
    }
    POOLS.with(|p| {
        p.borrow_mut()
            .idle
            .entry(pool_key.clone())
            .or_insert_with(|| Stack::new(idle_timeout))
            .push(sender, Instant::now(), max_idle, idle_timeout);
    });
}
