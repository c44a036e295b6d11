//! Runs a route's chain, phase by phase (the order and contracts are in
//! `rampart_core::Filter`). The chain was sorted by phase when the plan was compiled; here
//! each phase simply calls every filter in that order.

use rampart_core::{
    BodyInspector, BodyRewriter, Denial, ExchangeCtx, Filter, Flow, Outcome, Reason, Reply,
    RequestCtx, ResponseCtx,
};

/// How many times one filter may ask to wait before the request is refused.
const MAX_WAITS: usize = 2;

/// Why the inbound chain stopped before the upstream.
pub(crate) enum Stop {
    Deny(Denial),
    Reply(Reply),
}

/// The inbound phase: runs `filters` in order; returns what stopped the chain.
pub(crate) async fn request(
    filters: &[std::sync::Arc<dyn Filter>],
    cx: &mut RequestCtx<'_>,
) -> Option<Stop> {
    for f in filters {
        let mut waits = 0;
        loop {
            let flow = if f.is_async() {
                f.on_request_async(cx).await
            } else {
                f.on_request(cx)
            };
            match flow {
                Flow::Continue => break,
                Flow::Deny(d) => return Some(Stop::Deny(d)),
                Flow::Reply(r) => return Some(Stop::Reply(r)),
                Flow::Wait(w) if waits < MAX_WAITS => {
                    waits += 1;
                    w.await;
                }
                // Still waiting after its retries (no signing keys could be fetched):
                // refused, never let through.
                Flow::Wait(_) => {
                    cx.record(Reason::JwtNoKeys, Outcome::Deny);
                    return Some(Stop::Deny(Denial::new(Reason::JwtNoKeys)));
                }
            }
        }
    }
    None
}

/// The request-body inspectors the filters ask for, or the first denial.
pub(crate) fn request_body(
    filters: &[std::sync::Arc<dyn Filter>],
    cx: &mut RequestCtx<'_>,
) -> Result<Vec<Box<dyn BodyInspector>>, Denial> {
    let mut out = Vec::new();
    for f in filters {
        out.extend(f.request_body(cx)?);
    }
    Ok(out)
}

/// The upstream-request phase, over the head about to be sent.
pub(crate) fn upstream_request(
    filters: &[std::sync::Arc<dyn Filter>],
    head: &mut http::request::Parts,
    cx: &mut ExchangeCtx,
) {
    for f in filters {
        f.on_upstream_request(head, cx);
    }
}

/// The response phase: first the headers filters asked for during the request
/// (`RateLimit`, …), then every filter's `on_response`. Returns the body rewriters
/// filters asked for (upstream responses only; empty for the gateway's own answers).
pub(crate) fn response(
    filters: &[std::sync::Arc<dyn Filter>],
    head: &mut http::response::Parts,
    own: bool,
    cx: &mut ExchangeCtx,
) -> Vec<Box<dyn BodyRewriter>> {
    for (n, v) in std::mem::take(&mut cx.response_headers) {
        head.headers.append(n, v);
    }
    let mut rcx = ResponseCtx {
        head,
        own,
        exchange: cx,
    };
    for f in filters {
        f.on_response(&mut rcx);
    }
    if own {
        return Vec::new();
    }
    filters
        .iter()
        .filter_map(|f| f.response_body(&rcx))
        .collect()
}
