//! Upstream connections. Each worker thread keeps its own pools (a thread-local map, so
//! checkout and checkin are lock-free and never contended): a LIFO stack of idle HTTP/1.1
//! connections per target, or one shared HTTP/2 connection per target.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_config::UpstreamProtocol;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;

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

struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

#[derive(Default)]
struct Pools {
    idle: HashMap<Arc<str>, Vec<Idle>>,
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
                while let Some(idle) = stack.pop() {
                    if idle.sender.is_closed()
                        || now.duration_since(idle.since) >= upstream.idle_timeout
                    {
                        continue;
                    }
                    return Some(Sender::H1(idle.sender));
                }
                None
            }
        }
    })
}

/// Returns an HTTP/1.1 connection whose exchange finished cleanly.
pub fn checkin(pool_key: &Arc<str>, sender: http1::SendRequest<RequestBody>, max_idle: usize) {
    if sender.is_closed() || max_idle == 0 {
        return;
    }
    POOLS.with(|p| {
        let mut pools = p.borrow_mut();
        let stack = pools.idle.entry(pool_key.clone()).or_default();
        if stack.len() >= max_idle {
            // Drop the oldest: LIFO keeps the warm end hot and lets the cold end expire.
            stack.remove(0);
        }
        stack.push(Idle {
            sender,
            since: Instant::now(),
        });
    });
}
