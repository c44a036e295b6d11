//! The upstream leg of a request: pick a target, send, retry within the budget, and turn
//! the upstream's answer (or failure) into the client's response.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::Body as _;
use rampart_config::UpstreamProtocol;
use rampart_core::Problem;
use tokio::time::Instant;

use crate::plan::RoutePlan;
use crate::request_body::RequestBody;
use crate::respond::Ctx;
use crate::response_body::{PoolReturn, ResponseBody, TargetLoad, UpstreamBody};
use crate::upstream::h1::{self, H1Error, PoolSlot};
use crate::upstream::pool::{self, Sender};
use crate::upstream::{SelectError, Upstream};

/// Everything the upstream leg needs, decided by routing.
pub(crate) struct ForwardJob<'a> {
    pub(crate) ctx: Ctx,
    pub(crate) route: &'a RoutePlan,
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) parts: http::request::Parts,
    pub(crate) body: RequestBody,
    pub(crate) path_and_query: http::uri::PathAndQuery,
    pub(crate) original_host: Option<HeaderValue>,
    pub(crate) replayable: bool,
    pub(crate) hash_key: u64,
    pub(crate) deadline: Instant,
    /// The client asked for an upgrade the route forwards: a `101` opens a tunnel.
    pub(crate) upgrade: bool,
}

/// Outcome of one attempt that did not produce a usable response.
enum AttemptError {
    /// Nothing reached the upstream; the request comes back intact and may go elsewhere.
    NotSent(Problem, Box<Request<RequestBody>>),
    /// The request was (at least partly) sent; only a body-less request can be replayed.
    Sent(Problem),
}

pub(crate) async fn forward(job: ForwardJob<'_>) -> Response<ResponseBody> {
    let ForwardJob {
        mut ctx,
        route,
        upstream,
        parts,
        body,
        path_and_query,
        original_host,
        replayable,
        hash_key,
        deadline,
        upgrade,
    } = job;
    let method = parts.method;
    let mut headers = parts.headers;
    let mut body = body;
    let mut tried: Vec<usize> = Vec::new();
    let mut retries_left = upstream.retries.max;
    // One timer serves the whole exchange: it fires at the response-header deadline while
    // an attempt waits for headers, then is moved into the response body and reset to the
    // whole-request deadline.
    let mut timer = Box::pin(tokio::time::sleep_until(deadline));
    // What the client hears if a retry finds no other target: the last attempt's failure.
    let mut last_problem = None;
    loop {
        let index = match (upstream.select(hash_key, &tried), last_problem) {
            (Ok(i), _) => i,
            (Err(_), Some(p)) => return ctx.problem(p),
            (Err(SelectError::Overloaded), None) => {
                return ctx.problem(Problem::UPSTREAM_OVERLOADED)
            }
            (Err(SelectError::NoneAvailable), None) => {
                return ctx.problem(Problem::NO_HEALTHY_UPSTREAM)
            }
        };
        let target = &upstream.targets[index];
        let load = TargetLoad::new(upstream.clone(), index);
        ctx.exchange.target.store(index, Ordering::Relaxed);

        let uri = match upstream.protocol {
            UpstreamProtocol::Http2 => {
                let mut p = http::uri::Parts::default();
                p.scheme = Some(if target.https {
                    http::uri::Scheme::HTTPS
                } else {
                    http::uri::Scheme::HTTP
                });
                p.authority = http::uri::Authority::try_from(target.authority.as_bytes()).ok();
                p.path_and_query = Some(path_and_query.clone());
                Uri::from_parts(p)
            }
            UpstreamProtocol::Http1 => Ok(Uri::from(path_and_query.clone())),
        };
        let Ok(uri) = uri else {
            return ctx.problem(Problem::BAD_REQUEST_TARGET);
        };
        // A status retry needs the head again after it was sent: keep a copy only then.
        let keep_copy = replayable && retries_left > 0 && !upstream.retries.on_status.is_empty();
        let mut request = Request::new(body);
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = if keep_copy {
            headers.clone()
        } else {
            std::mem::take(&mut headers)
        };
        match upstream.protocol {
            UpstreamProtocol::Http1 => {
                let host = match (&original_host, route.preserve_host) {
                    (Some(h), true) => h.clone(),
                    _ => target.authority.clone(),
                };
                request.headers_mut().insert(header::HOST, host);
            }
            // HTTP/2 carries the authority in the URI; a Host header would be redundant.
            UpstreamProtocol::Http2 => {
                request.headers_mut().remove(header::HOST);
            }
        }

        let attempt_started = Instant::now();
        let header_deadline = deadline.min(attempt_started + upstream.timeouts.response_header);
        timer.as_mut().reset(header_deadline);
        let outcome = tokio::select! {
            biased;
            r = send(&upstream, index, request, upgrade) => r,
            _ = timer.as_mut() => Err(AttemptError::Sent(Problem::UPSTREAM_TIMEOUT)),
        };
        let attempt_secs = attempt_started.elapsed().as_secs_f64();
        match &outcome {
            Ok((resp, _)) => target
                .metrics
                .record(attempt_secs, matches!(resp.status().as_u16(), 502..=504)),
            Err(_) if ctx.exchange.body_failure.get().is_some() => {}
            Err(_) => target.metrics.record(attempt_secs, true),
        }
        match outcome {
            Ok((resp, pool_return)) => {
                if let Some(t) = &mut ctx.cx().trace {
                    t.mark(rampart_core::trace::Mark::UpstreamResponse);
                }
                let status = resp.status().as_u16();
                if matches!(status, 502..=504) {
                    target.record_failure(&upstream.passive);
                } else {
                    target.record_success();
                }
                // Only give up this answer when another target can be tried: with none
                // left, the client gets the upstream's own response.
                if keep_copy
                    && upstream.retries.on_status.contains(&status)
                    && has_other_target(&upstream, &tried, index)
                    && upstream.retries.budget.try_withdraw()
                {
                    retries_left -= 1;
                    last_problem = Some(Problem::UPSTREAM_PROTOCOL);
                    tried.push(index);
                    body = RequestBody::empty(ctx.exchange.clone());
                    continue;
                }
                if !upgrade && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    // No upgrade was offered: a 101 is a protocol error, never a tunnel.
                    return ctx.problem(Problem::UPSTREAM_PROTOCOL);
                }
                if upgrade && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                    // The guard stopped checking framing after the upgrade head; a refused
                    // upgrade must not leave the connection open for unchecked requests.
                    ctx.close = true;
                }
                timer.as_mut().reset(deadline);
                let resp = ctx.upstream_response(resp, pool_return, timer, load, upgrade);
                if resp
                    .extensions()
                    .get::<crate::respond::HoldHead>()
                    .is_some()
                {
                    return crate::respond::held(resp).await;
                }
                return resp;
            }
            Err(AttemptError::NotSent(problem, request)) => {
                target.record_failure(&upstream.passive);
                tried.push(index);
                let (p, b) = request.into_parts();
                headers = p.headers;
                body = b;
                if retries_left > 0
                    && Instant::now() < deadline
                    && upstream.retries.budget.try_withdraw()
                {
                    retries_left -= 1;
                    last_problem = Some(problem);
                    continue;
                }
                return ctx.problem(problem);
            }
            Err(AttemptError::Sent(problem)) => {
                if let Some(p) = ctx.exchange.body_failure.get() {
                    // The client's body was the problem (too large, too slow, broken).
                    let p = *p;
                    ctx.close = true;
                    return ctx.problem(p);
                }
                target.record_failure(&upstream.passive);
                if keep_copy
                    && problem != Problem::UPSTREAM_TIMEOUT
                    && upstream.retries.budget.try_withdraw()
                {
                    retries_left -= 1;
                    last_problem = Some(problem);
                    tried.push(index);
                    body = RequestBody::empty(ctx.exchange.clone());
                    continue;
                }
                return ctx.problem(problem);
            }
        }
    }
}

/// Sends one request to target `index`: a pooled connection first, and once more on a
/// fresh connection if the pooled one turned out to be closed before anything was sent.
/// The caller bounds the whole attempt with its timer.
async fn send(
    upstream: &Upstream,
    index: usize,
    request: Request<RequestBody>,
    upgrade: bool,
) -> Result<(Response<UpstreamBody>, Option<PoolReturn>), AttemptError> {
    // Most API requests carry no body: those take our own client, driven from this task.
    if upstream.protocol == UpstreamProtocol::Http1
        && !upgrade
        && request.body().is_end_stream()
        && !request.headers().contains_key(header::TRANSFER_ENCODING)
    {
        return send_own(upstream, index, request)
            .await
            .map(|r| (r.map(UpstreamBody::Own), None));
    }
    send_hyper(upstream, index, request, upgrade)
        .await
        .map(|(r, p)| (r.map(UpstreamBody::Hyper), p))
}

/// A request without a body, on our HTTP/1.1 client ([`h1`]).
async fn send_own(
    upstream: &Upstream,
    index: usize,
    request: Request<RequestBody>,
) -> Result<Response<h1::H1Body>, AttemptError> {
    let target = &upstream.targets[index];
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let mut fresh = false;
    loop {
        let (conn, reused) = match pool::checkout_h1(upstream, target, fresh).await {
            Ok(c) => c,
            Err(e) => return Err(connect_failed(target, e, request)),
        };
        let slot = PoolSlot {
            pool_key: target.pool_key.clone(),
            max_idle: upstream.max_idle_per_target,
            idle_timeout: upstream.idle_timeout,
        };
        match h1::send(conn, request.method(), &path, request.headers(), slot).await {
            Ok(resp) => {
                // The head went out: its map serves the next exchange.
                let mut request = request;
                crate::headers::recycle(std::mem::take(request.headers_mut()));
                return Ok(resp);
            }
            // Nothing was written: the upstream cannot have acted on the request.
            Err(H1Error::Write(_)) if reused => fresh = true,
            Err(H1Error::Write(_)) => {
                return Err(AttemptError::NotSent(
                    Problem::UPSTREAM_CONNECT,
                    Box::new(request),
                ))
            }
            // A pooled connection closed under us before any answer: the usual keep-alive
            // race. Only a request that is safe to repeat is sent again.
            Err(H1Error::ClosedBeforeResponse) if reused && request.method().is_idempotent() => {
                fresh = true
            }
            Err(e) => {
                tracing::debug!(target_url = %target.url, error = %e, "upstream exchange failed");
                return Err(AttemptError::Sent(Problem::UPSTREAM_PROTOCOL));
            }
        }
    }
}

fn connect_failed(
    target: &crate::upstream::Target,
    e: pool::ConnectError,
    request: Request<RequestBody>,
) -> AttemptError {
    tracing::debug!(target_url = %target.url, error = %e, "upstream connect failed");
    let p = match e {
        pool::ConnectError::Timeout => Problem::UPSTREAM_TIMEOUT,
        _ => Problem::UPSTREAM_CONNECT,
    };
    AttemptError::NotSent(p, Box::new(request))
}

/// A request with a body (or an upgrade, or to an HTTP/2 upstream), on hyper's client.
async fn send_hyper(
    upstream: &Upstream,
    index: usize,
    mut request: Request<RequestBody>,
    upgrade: bool,
) -> Result<(Response<hyper::body::Incoming>, Option<PoolReturn>), AttemptError> {
    let target = &upstream.targets[index];
    let mut fresh = upgrade;
    loop {
        let (sender, reused) = match pool::checkout(upstream, target, fresh).await {
            Ok(s) => s,
            Err(e) => return Err(connect_failed(target, e, request)),
        };
        let sent = match sender {
            Sender::H1(mut s) => {
                if s.ready().await.is_err() {
                    if reused {
                        fresh = true;
                        continue;
                    }
                    return Err(AttemptError::NotSent(
                        Problem::UPSTREAM_CONNECT,
                        Box::new(request),
                    ));
                }
                s.try_send_request(request).await.map(|resp| {
                    let pool = (!upgrade).then(|| PoolReturn {
                        sender: s,
                        pool_key: target.pool_key.clone(),
                        max_idle: upstream.max_idle_per_target,
                        idle_timeout: upstream.idle_timeout,
                    });
                    (resp, pool)
                })
            }
            Sender::H2(mut s) => s.try_send_request(request).await.map(|resp| (resp, None)),
        };
        return match sent {
            Ok(r) => Ok(r),
            Err(mut e) => match e.take_message() {
                Some(req) if reused => {
                    request = req;
                    fresh = true;
                    continue;
                }
                Some(req) => Err(AttemptError::NotSent(
                    Problem::UPSTREAM_CONNECT,
                    Box::new(req),
                )),
                None => {
                    tracing::debug!(target_url = %target.url, error = %e.error(), "upstream exchange failed");
                    Err(AttemptError::Sent(Problem::UPSTREAM_PROTOCOL))
                }
            },
        };
    }
}

/// True when a target other than `index` and those already tried could take a retry.
fn has_other_target(upstream: &Upstream, tried: &[usize], index: usize) -> bool {
    let now = crate::upstream::now_ms();
    upstream
        .targets
        .iter()
        .enumerate()
        .any(|(i, t)| i != index && !tried.contains(&i) && t.is_available(now))
}
