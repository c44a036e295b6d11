//! One client connection, from accept to close: the connection caps, TLS (with the
//! handshake deadline), then HTTP/1 behind the strict guard or HTTP/2, each draining
//! gracefully when the gateway stops.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::conn_limit::{ConnLimiter, ConnPermit};
use crate::headers::PeerHeaders;
use crate::plan::Plan;
use crate::proxy::{self, ConnCtx, Shared};
use crate::server::wait_true;
use crate::upstream::Stream;

pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    name: Arc<str>,
    listener: tokio::net::TcpListener,
    limiter: Arc<ConnLimiter>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            // One canonical form from here on: an IPv4 client of a dual-stack listener is
            // `a.b.c.d`, never `::ffff:a.b.c.d`, in limits, logs, headers and policies.
            Ok((tcp, peer)) => (
                tcp,
                SocketAddr::new(rampart_core::canonical_ip(peer.ip()), peer.port()),
            ),
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let permit = match limiter.try_acquire(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                tracing::debug!(peer = %peer, reason = ?why, "connection refused by connection limits");
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(
            shared.clone(),
            name.clone(),
            tcp,
            peer,
            permit,
        ));
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    name: Arc<str>,
    tcp: TcpStream,
    peer: SocketAddr,
    _permit: ConnPermit,
) {
    let plan = shared.plan.load_full();
    // Looked up per connection in the plan current at accept time, so a reload's new
    // certificates apply to new handshakes while open connections keep their own.
    let Some(listener) = plan.listeners.iter().find(|l| l.name == name) else {
        return;
    };
    let _active = ActiveConnection::new(listener.metrics.clone());
    let local_port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
    // The connect phase, before any byte is read: a refused peer costs no TLS work.
    if !connect_allowed(&plan, listener, peer, local_port, None) {
        return;
    }
    match listener.tls.clone() {
        None => {
            let ctx = ConnCtx {
                shared: shared.clone(),
                peer,
                local_port,
                listener: name,
                tls: false,
                tls_peer: None,
                ja4: None,
                http1: true,
                peer_headers: PeerHeaders::new(peer.ip(), false, local_port),
            };
            let drain = shared.drain.subscribe();
            let io = Stream::<tokio_rustls::server::TlsStream<TcpStream>>::Plain(tcp);
            serve_h1(ctx, io, &plan, drain).await;
        }
        Some(config) => {
            // Its own boxed future: a plain connection's future keeps no room for a
            // handshake, and a TLS connection's frees it once the handshake is done.
            let Some((tls, ja4)) =
                Box::pin(handshake(&plan, listener, tcp, config, peer, local_port)).await
            else {
                return;
            };
            let (_, session) = tls.get_ref();
            let h2 = session.alpn_protocol() == Some(b"h2");
            let tls_peer = crate::tls::peer_identity(session).map(Arc::new);
            let ctx = ConnCtx {
                shared: shared.clone(),
                peer,
                local_port,
                listener: name,
                tls: true,
                tls_peer,
                ja4,
                http1: !h2,
                peer_headers: PeerHeaders::new(peer.ip(), true, local_port),
            };
            let io: Stream<tokio_rustls::server::TlsStream<TcpStream>> = Stream::Tls(tls);
            if h2 {
                serve_h2(ctx, io, &plan, shared.drain.subscribe()).await;
            } else {
                serve_h1(ctx, io, &plan, shared.drain.subscribe()).await;
            }
        }
    }
}

/// The TLS handshake of a new connection, within the header timeout. The ClientHello is
/// read here, its records kept (up to 16 KiB) for the JA4 fingerprint, then handed to
/// rustls; the connect phase sees the hello before any handshake work is done. `None`
/// when it failed, timed out or was refused (counted and logged here).
async fn handshake(
    plan: &Plan,
    listener: &crate::plan::ListenerPlan,
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    peer: SocketAddr,
    local_port: u16,
) -> Option<(
    Box<tokio_rustls::server::TlsStream<TcpStream>>,
    Option<Arc<str>>,
)> {
    let deadline = tokio::time::Instant::now() + plan.limits.head.header_timeout;
    let handshake = async {
        let (accepted, ja4) = read_client_hello(&mut tcp).await?;
        let start = tokio_rustls::StartHandshake::from_parts(accepted, tcp);
        if !plan.connect_filters.is_empty() {
            let hello = start.client_hello();
            let facts = rampart_core::ClientHello {
                server_name: hello.server_name().map(Into::into),
                alpn: hello
                    .alpn()
                    .map(|a| a.map(Into::into).collect())
                    .unwrap_or_default(),
                fingerprint: ja4.clone(),
            };
            if !connect_allowed(plan, listener, peer, local_port, Some(&facts)) {
                return Ok(None);
            }
        }
        start.into_stream(config).await.map(|tls| Some((tls, ja4)))
    };
    match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(Some((tls, ja4)))) => Some((Box::new(tls), ja4)),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            listener.metrics.tls_failures[tls_failure_reason(&e)]
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "TLS handshake timed out");
            listener.metrics.tls_failures[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        }
    }
}

/// Reads from `tcp` until rustls has a whole ClientHello, keeping the bytes read (up to
/// [`ja4::MAX_HELLO`]) to fingerprint it. What LazyConfigAcceptor does, with the bytes
/// seen on the way: everything read is handed to rustls, which keeps what follows the
/// hello for the handshake.
async fn read_client_hello(
    tcp: &mut TcpStream,
) -> io::Result<(rustls::server::Accepted, Option<Arc<str>>)> {
    use tokio::io::AsyncReadExt;
    let mut acceptor = rustls::server::Acceptor::default();
    let mut seen: Vec<u8> = Vec::with_capacity(2048);
    let mut ja4: Option<Option<String>> = None;
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let data = &buf[..n];
        if ja4.is_none() && seen.len() < super::ja4::MAX_HELLO {
            let room = super::ja4::MAX_HELLO - seen.len();
            seen.extend_from_slice(&data[..n.min(room)]);
            ja4 = super::ja4::fingerprint(&seen);
            if ja4.is_none() && seen.len() == super::ja4::MAX_HELLO {
                ja4 = Some(None);
            }
        }
        let mut rest = data;
        while !rest.is_empty() {
            if acceptor.read_tls(&mut rest)? == 0 {
                return Err(io::ErrorKind::InvalidData.into());
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Ok((accepted, ja4.flatten().map(Into::into))),
            Ok(None) => {}
            Err((e, _alert)) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

async fn serve_h1(
    ctx: ConnCtx,
    io: crate::h1_server::ClientIo,
    plan: &Plan,
    drain: watch::Receiver<bool>,
) {
    crate::h1_server::serve(Arc::new(ctx), io, plan.limits.head, drain).await;
}

async fn serve_h2<T>(ctx: ConnCtx, io: Stream<T>, plan: &Plan, mut drain: watch::Receiver<bool>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = plan.limits;
    let ctx = Arc::new(ctx);
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        proxy::handle(ctx.clone(), req.map(proxy::ClientBody::H2))
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.head.max_head_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
        .max_local_error_reset_streams(limits.h2_max_pending_resets)
        .keep_alive_interval(limits.head.idle_timeout / 2)
        .keep_alive_timeout(limits.head.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = wait_true(&mut drain) => {
            // GOAWAY: streams in flight finish, no new ones start.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
    }
}

/// The connect phase: every gateway-wide connect filter, in order: `on_connect` at accept
/// (`client_hello` is `None`), `on_client_hello` once a TLS ClientHello has been read. A
/// refusal closes the connection without a response and is counted on the listener.
fn connect_allowed(
    plan: &Plan,
    listener: &crate::plan::ListenerPlan,
    peer: SocketAddr,
    local_port: u16,
    client_hello: Option<&rampart_core::ClientHello>,
) -> bool {
    if plan.connect_filters.is_empty() {
        return true;
    }
    let info = rampart_core::ConnectInfo {
        peer,
        listener: &listener.name,
        local_port,
        client_hello,
    };
    for f in plan.connect_filters.iter() {
        let verdict = match client_hello {
            None => f.on_connect(&info),
            Some(_) => f.on_client_hello(&info),
        };
        if let Err(reason) = verdict {
            tracing::debug!(peer = %peer, filter = f.name(), code = reason.code(), "connection refused in the connect phase");
            listener
                .metrics
                .connect_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return false;
        }
    }
    true
}

/// Index into [`crate::metrics::TLS_FAILURE_REASONS`] for a failed handshake.
fn tls_failure_reason(e: &io::Error) -> usize {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertificate(_)) => 1,
        Some(
            rustls::Error::PeerIncompatible(_)
            | rustls::Error::PeerMisbehaved(_)
            | rustls::Error::InappropriateHandshakeMessage { .. },
        ) => 2,
        Some(rustls::Error::AlertReceived(_)) => 3,
        _ => 4,
    }
}

/// Counts a connection as open on its listener while it lives.
struct ActiveConnection(Arc<crate::metrics::ListenerMetrics>);

impl ActiveConnection {
    fn new(m: Arc<crate::metrics::ListenerMetrics>) -> Self {
        m.active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(m)
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
