//! The request handler: one call per request, the journey of DESIGN.md §1 for the
//! features that exist so far (limits → route → upstream → response), with every
//! gateway-made answer rendered as problem+json in exactly one place ([`problem`]).

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use rampart_core::{ExchangeCtx, Problem, RequestCtx, TlsPeer};
use rampart_observe::AccessLog;
use tokio::time::Instant;

use crate::exchange::{Exchange, ExchangeStart};
use crate::forward::{forward, ForwardJob};
use crate::headers::{self, PeerHeaders, X_REQUEST_ID};
use crate::plan::Plan;
pub use crate::request_body::ClientBody;
use crate::request_body::RequestBody;
use crate::request_id::new_request_id;
use crate::respond::Ctx;
use crate::response_body::ResponseBody;
use crate::upstream::Upstream;
use rampart_core::trace::Mark;

/// State shared by every connection of a gateway.
pub struct Shared {
    pub plan: ArcSwap<Plan>,
    pub access_log: Option<Arc<AccessLog>>,
    /// Set once when the gateway starts draining: listeners close and every connection
    /// finishes its in-flight request, then closes.
    pub drain: tokio::sync::watch::Sender<bool>,
}

/// Facts about one client connection.
pub struct ConnCtx {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub local_port: u16,
    pub listener: Arc<str>,
    pub tls: bool,
    /// The verified client certificate (mTLS), for identity work.
    pub tls_peer: Option<Arc<TlsPeer>>,
    /// The JA4 fingerprint of the TLS ClientHello.
    pub ja4: Option<Arc<str>>,
    /// Served by our HTTP/1 server (responses may carry `Connection`), not HTTP/2.
    pub http1: bool,
    /// Forwarding header values for this connection's peer.
    pub peer_headers: PeerHeaders,
}

/// The request host, lower-case and without port: `:authority` (HTTP/2, absolute-form)
/// or `Host`.
fn request_host<B>(req: &Request<B>) -> Cow<'_, str> {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("");
    let host = match raw.rfind(':') {
        Some(i) if !raw.ends_with(']') && raw[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            &raw[..i]
        }
        _ => raw,
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn is_idempotent(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::TRACE
    )
}

fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && headers::connection_has(req.headers(), "upgrade")
}

/// Handles one request. Never fails: every error becomes a response.
pub async fn handle(
    conn: Arc<ConnCtx>,
    req: Request<ClientBody>,
) -> Result<Response<ResponseBody>, Infallible> {
    let plan = conn.shared.plan.load_full();
    let peer_ip = conn.peer.ip();
    let peer_trusted = plan.is_trusted(peer_ip);
    let request_id = match req.headers().get(&X_REQUEST_ID) {
        Some(v) if peer_trusted && headers::is_acceptable_request_id(v) => v.clone(),
        _ => new_request_id(),
    };
    let client_ip = rampart_core::canonical_ip(headers::client_ip(
        peer_ip,
        peer_trusted,
        req.headers(),
        |ip| plan.is_trusted(ip),
    ));
    let rejection = req
        .extensions()
        .get::<crate::h1_server::Rejected>()
        .map(|r| r.0);
    // RFC 9112 §3.2.2: an absolute-form target's authority replaces Host (HTTP/2's
    // `:authority` likewise); routing, forwarding and filters all see that one value.
    let host_value = match req.uri().authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => req.headers().get(header::HOST).cloned(),
    };
    let bad_host = host_value
        .as_ref()
        .is_some_and(|h| !crate::host::is_valid_host(h.as_bytes()));
    let exchange = Arc::new(Exchange::new(
        conn.shared.access_log.clone(),
        ExchangeStart {
            request_id,
            client_ip,
            method: req.method().clone(),
            version: req.version(),
            uri: rejection.is_none().then(|| req.uri().clone()),
            host: if rejection.is_none() {
                host_value.clone()
            } else {
                None
            },
            headers: match &conn.shared.access_log {
                Some(log) if rejection.is_none() => log.capture(req.headers()),
                _ => Vec::new(),
            },
            listener: conn.listener.clone(),
            unrouted: plan.unrouted.clone(),
            codes: plan.codes.clone(),
            tap: plan.tap.clone(),
        },
    ));
    let mut cx = ExchangeCtx::new(
        exchange.request_id.clone(),
        client_ip,
        conn.listener.clone(),
        conn.tls,
        conn.tls_peer.clone(),
        exchange.time(),
    );
    cx.ja4 = conn.ja4.clone();
    if let Some(t) = &plan.tracing {
        cx.trace = Some(t.context(req.headers(), peer_trusted));
    }
    let ctx = Ctx::new(
        exchange,
        conn.http1,
        rejection.is_some(),
        cx,
        plan.unrouted_filters.clone(),
    );
    if let Some(p) = rejection {
        tracing::debug!(code = p.code, peer = %conn.peer, "rejected malformed request");
        return Ok(ctx.problem(p));
    }
    if bad_host {
        tracing::debug!(peer = %conn.peer, "rejected invalid Host");
        return Ok(ctx.problem(Problem::INVALID_HOST));
    }
    // Boxed: the connection's task holds the handler's future for the connection's
    // lifetime, so keeping this outer future small keeps idle keep-alive connections small;
    // the large routing/forwarding state lives only while a request is in flight.
    // (Two statements: a temporary of the awaited expression would be kept in this
    // future's state across the await, unboxed, doubling what each connection holds.)
    let routing = Box::pin(route_and_forward(
        &conn,
        &plan,
        req,
        ctx,
        host_value,
        client_ip,
        peer_trusted,
    ));
    let resp = routing.await;
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
async fn route_and_forward(
    conn: &ConnCtx,
    plan: &Plan,
    req: Request<ClientBody>,
    ctx: Ctx,
    original_host: Option<HeaderValue>,
    client_ip: IpAddr,
    peer_trusted: bool,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let upgrade = is_upgrade(&req);
    // Limits that HTTP/2 requests meet here (HTTP/1 heads were checked by the guard).
    if req.uri().path_and_query().map_or(0, |pq| pq.as_str().len()) > plan.limits.head.max_uri_bytes
    {
        return ctx.problem(Problem::URI_TOO_LONG);
    }
    if req.headers().len() > plan.limits.head.max_headers {
        return ctx.problem(Problem::TOO_MANY_HEADERS);
    }
    let host = request_host(&req);
    if host.is_empty() {
        return ctx.problem(Problem::MISSING_HOST);
    }
    // A cheap clone (shared bytes): the normalised path may borrow from it while the
    // filters get the request head mutably.
    let target = req.uri().clone();
    let path = match crate::path::normalize(target.path()) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(reason = ?e, "unsafe request path");
            return ctx.problem(Problem::BAD_PATH);
        }
    };
    let Some(route_id) = plan.router.find(&host, &path, req.method(), req.headers()) else {
        return ctx.problem(Problem::ROUTE_NOT_FOUND);
    };
    drop(host);
    let route = &plan.routes[route_id];
    // Servlet containers read `;` as a path-parameter separator (`/public/..;/admin` is
    // `/admin` to Tomcat) and a double-decoding upstream reads `%252e` as `.`: both make
    // the upstream resolve another path than the one routed, so both are opt-in.
    if let Some(p) = crate::path::opt_in_problem(
        target.path(),
        route.allow_path_parameters,
        route.allow_encoded_percent,
    ) {
        tracing::debug!(code = p.code, route = %route.name, "path feature not allowed on route");
        return ctx.problem(p);
    }
    let mut ctx = ctx;
    ctx.filters = route.filters.clone();
    ctx.cx().route = Some(route.name.clone());
    if let Some(t) = &mut ctx.cx().trace {
        t.mark(Mark::Routed);
    }
    let _ = ctx.exchange.route.set(route.name.clone());
    let _ = ctx.exchange.route_metrics.set(route.metrics.clone());
    let _ = ctx.exchange.upstream.set(route.upstream.clone());
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) if n > route.max_body_bytes => return ctx.problem(Problem::BODY_TOO_LARGE),
            Some(_) => {}
            None => return ctx.problem(Problem::BAD_CONTENT_LENGTH),
        }
    }

    let (mut parts, incoming) = req.into_parts();
    // A tunnel only where the server holds the connection for this head's answer (an
    // upgrade without a body) and the route forwards WebSockets.
    let tunnel = upgrade
        && route.websocket
        && parts.extensions.get::<crate::h1_server::Held>().is_some()
        && crate::client_headers::is_websocket_upgrade(&parts.headers);
    // The client's head is cleaned before any filter sees it (see client_headers): what a
    // client names in `Connection` can never remove what the gateway sets afterwards.
    if let Err(p) = crate::client_headers::sanitize(
        &mut parts.headers,
        peer_trusted,
        tunnel,
        &plan.header_rules,
    ) {
        tracing::debug!(code = p.code, "rejected request header");
        return ctx.problem(p);
    }
    if let Some(a) = &original_host {
        if parts.uri.authority().is_some() {
            parts.headers.insert(header::HOST, a.clone());
        }
    }
    let hash_key = hash_key(&route.upstream, &parts, client_ip);
    // The inbound chain: identity and access filters see the cleaned client request, and
    // may strip credentials and set identity headers.
    let mut buffered = None;
    let mut incoming = Some(incoming);
    let mut inspectors = Vec::new();
    if !route.filters.is_empty() {
        if !incoming
            .as_ref()
            .is_some_and(http_body::Body::is_end_stream)
        {
            let mut rcx = RequestCtx {
                head: &mut parts,
                path: &path,
                route: &route.name,
                body: None,
                new_body: None,
                exchange: ctx.cx(),
            };
            match crate::chain::request_body(&route.filters, &mut rcx) {
                Ok(i) => inspectors = i,
                Err(d) => return ctx.deny(d),
            }
        }
        if route.needs_body {
            let mut body = RequestBody::new(
                incoming.take().expect("body present"),
                route.max_body_bytes,
                plan.limits.body_timeout,
                ctx.exchange.clone(),
            );
            body.inspect(std::mem::take(&mut inspectors));
            match http_body_util::BodyExt::collect(body).await {
                Ok(b) => buffered = Some(b.to_bytes()),
                Err(e) => return ctx.problem(e.problem()),
            }
        }
        let mut rcx = RequestCtx {
            head: &mut parts,
            path: &path,
            route: &route.name,
            body: buffered.as_ref(),
            new_body: None,
            exchange: ctx.cx(),
        };
        let stop = crate::chain::request(&route.filters, &mut rcx).await;
        let new_body = rcx.new_body.take();
        match stop {
            Some(crate::chain::Stop::Deny(d)) => return ctx.deny(d),
            Some(crate::chain::Stop::Reply(r)) => return ctx.reply(r),
            None => {}
        }
        if let Some(b) = new_body {
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, http::HeaderValue::from(b.len()));
            buffered = Some(b);
        }
    }

    let upstream = route.upstream.clone();
    upstream.retries.budget.deposit();

    // Upstream target: the normalised (and rewritten) path plus the original query. When
    // neither normalisation nor a rewrite changed anything, the parsed original is reused.
    let (new_path, rewrite_query) = match route.rewrite.as_deref() {
        Some(rw) => rw.apply(&path),
        None => (Cow::Borrowed(&*path), None),
    };
    let unchanged = rewrite_query.is_none()
        && matches!(new_path, Cow::Borrowed(p) if p.len() == parts.uri.path().len());
    let path_and_query = match (unchanged, parts.uri.path_and_query()) {
        (true, Some(pq)) => pq.clone(),
        _ => {
            let text = match (rewrite_query, parts.uri.query()) {
                (Some(mut q), Some(client)) if !client.is_empty() => {
                    q.push('&');
                    q.push_str(client);
                    format!("{new_path}?{q}")
                }
                (Some(q), _) => format!("{new_path}?{q}"),
                (None, Some(q)) => format!("{new_path}?{q}"),
                (None, None) => new_path.into_owned(),
            };
            match http::uri::PathAndQuery::try_from(text) {
                Ok(pq) => pq,
                Err(_) => return ctx.problem(Problem::BAD_REQUEST_TARGET),
            }
        }
    };
    headers::set_forwarding(
        &mut parts.headers,
        &conn.peer_headers,
        peer_trusted,
        original_host.as_ref(),
    );
    parts
        .headers
        .insert(X_REQUEST_ID.clone(), ctx.exchange.request_id.clone());
    if let Some(t) = &mut ctx.cx().trace {
        crate::trace::propagate(&mut parts.headers, t);
        t.mark(Mark::Upstream);
    }
    crate::chain::upstream_request(&route.filters, &mut parts, ctx.cx());

    let body = match (incoming, buffered) {
        (Some(incoming), _) => {
            let mut body = RequestBody::new(
                incoming,
                route.max_body_bytes,
                plan.limits.body_timeout,
                ctx.exchange.clone(),
            );
            body.inspect(inspectors);
            body
        }
        (None, b) => RequestBody::buffered(b.unwrap_or_default(), ctx.exchange.clone()),
    };
    let replayable = body.is_empty() && is_idempotent(&parts.method) && !tunnel;
    let deadline = started + upstream.timeouts.request;
    forward(ForwardJob {
        ctx,
        route,
        upstream,
        parts,
        body,
        path_and_query,
        original_host,
        replayable,
        hash_key,
        deadline,
        upgrade: tunnel,
    })
    .await
}

fn hash_key(upstream: &Upstream, req: &http::request::Parts, client_ip: IpAddr) -> u64 {
    use crate::upstream::hash_bytes as balance_hash;
    if !upstream.balancer.needs_hash() {
        return 0;
    }
    if let Some(rampart_config::HashOn::Header(name)) = &upstream.hash_on {
        if let Some(v) = req.headers.get(name.as_str()) {
            return balance_hash(v.as_bytes());
        }
    }
    match client_ip {
        IpAddr::V4(ip) => balance_hash(&ip.octets()),
        IpAddr::V6(ip) => balance_hash(&ip.octets()),
    }
}
