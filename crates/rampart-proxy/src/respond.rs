//! Every response the proxy sends passes through here: the gateway's own answers
//! (problems and refusals, rendered by `rampart_core::respond`) and the upstream's
//! answers (cleaned of hop-by-hop and identity-revealing headers). Both run the response
//! phase, then hand the exchange context to the exchange for its log phase.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use rampart_core::{Denial, ExchangeCtx, Problem};

use crate::exchange::{Exchange, Finished};
use crate::headers::{self, X_REQUEST_ID};
use crate::plan::Chain;
use crate::response_body::{PoolReturn, ResponseBody, TargetLoad, UpstreamBody};

/// Everything known about a request once its exchange exists.
pub(crate) struct Ctx {
    pub(crate) exchange: Arc<Exchange>,
    /// An HTTP/1 exchange: the response may carry `Connection: close`.
    pub(crate) http1: bool,
    /// Close the client connection after this response.
    pub(crate) close: bool,
    /// The exchange context; handed to the exchange when the response is decided (or,
    /// on an abandoned request, when this is dropped), so the log phase always sees it.
    cx: Option<ExchangeCtx>,
    /// The chain whose response and log phases run: the route's once routed, the
    /// gateway-wide unrouted chain before.
    pub(crate) filters: Chain,
}

impl Ctx {
    pub(crate) fn new(
        exchange: Arc<Exchange>,
        http1: bool,
        close: bool,
        cx: ExchangeCtx,
        filters: Chain,
    ) -> Ctx {
        Ctx {
            exchange,
            http1,
            close,
            cx: Some(cx),
            filters,
        }
    }

    /// The exchange context. Present until the response is decided, which consumes `self`.
    pub(crate) fn cx(&mut self) -> &mut ExchangeCtx {
        self.cx
            .as_mut()
            .expect("the exchange context is present until the response is decided")
    }

    fn hand_over(&mut self) {
        if let Some(cx) = self.cx.take() {
            let _ = self.exchange.finished.set(Finished {
                cx,
                filters: self.filters.clone(),
            });
        }
    }

    /// Answers with problem `p`.
    pub(crate) fn problem(self, p: Problem) -> Response<ResponseBody> {
        let _ = self.exchange.code.set(p.code);
        let resp = rampart_core::respond::problem(p, &self.exchange.request_id);
        self.own(resp)
    }

    /// Answers a refusal: the generic problem of its reason (the precise reason goes to
    /// the log and metrics only) with the headers the denying filter attached.
    pub(crate) fn deny(self, d: Denial) -> Response<ResponseBody> {
        // The log's code is the precise reason, not the generic one the client sees.
        let _ = self.exchange.code.set(d.reason.code());
        let resp = rampart_core::respond::denial(d, &self.exchange.request_id);
        self.own(resp)
    }

    /// Answers with a filter's own reply (a CORS preflight): its status and headers, no
    /// body.
    pub(crate) fn reply(self, r: rampart_core::Reply) -> Response<ResponseBody> {
        let _ = self.exchange.code.set(r.code);
        let mut resp = Response::new(Bytes::new());
        *resp.status_mut() = r.status;
        for (n, v) in r.headers {
            resp.headers_mut().append(n, v);
        }
        self.own(resp)
    }

    fn own(mut self, resp: Response<Bytes>) -> Response<ResponseBody> {
        let (mut parts, body) = resp.into_parts();
        // A malformed or unfinished request leaves the connection in an unknown state:
        // close it rather than read what follows.
        if self.close
            || parts.status == StatusCode::BAD_REQUEST
            || parts.status == StatusCode::REQUEST_TIMEOUT
            || parts.status == StatusCode::PAYLOAD_TOO_LARGE
        {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let filters = self.filters.clone();
        crate::chain::response(&filters, &mut parts, true, self.cx());
        self.exchange
            .status
            .store(parts.status.as_u16(), Ordering::Relaxed);
        self.hand_over();
        let body = ResponseBody::full(body, Some(self.exchange.clone()));
        Response::from_parts(parts, body)
    }

    /// Passes the upstream's response on: tunnels an accepted upgrade, cleans the head,
    /// runs the response phase and streams the body (through any rewriters).
    pub(crate) fn upstream_response(
        mut self,
        mut resp: Response<UpstreamBody>,
        pool_return: Option<PoolReturn>,
        deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
        load: TargetLoad,
        upgrade: bool,
    ) -> Response<ResponseBody> {
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching && upgrade {
            // The server's connection loop joins this to the client once the 101 is out.
            let upstream_side = hyper::upgrade::on(&mut resp);
            resp.extensions_mut()
                .insert(crate::h1_server::UpstreamUpgrade::new(upstream_side));
        }
        let (mut parts, incoming) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, switching);
        headers::strip_upstream_identity(&mut parts.headers);
        parts
            .headers
            .insert(X_REQUEST_ID.clone(), self.exchange.request_id.clone());
        if self.http1 && !switching && self.close {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let filters = self.filters.clone();
        let rewriters = crate::chain::response(&filters, &mut parts, false, self.cx());
        self.exchange
            .status
            .store(parts.status.as_u16(), Ordering::Relaxed);
        self.hand_over();
        // A HEAD answer has no body to wait for (and its length describes a GET's).
        if rewriters.iter().any(|r| r.holds_whole_body())
            && self.exchange.method() != http::Method::HEAD
        {
            parts.extensions.insert(HoldHead);
        }
        let body = ResponseBody::upstream(
            incoming,
            pool_return,
            deadline,
            load,
            self.exchange.clone(),
            rewriters,
        );
        Response::from_parts(parts, body)
    }
}

/// Marks an answer whose body a rewriter needs whole: its head waits for the body.
#[derive(Clone, Copy)]
pub(crate) struct HoldHead;

/// Reads an answer marked [`HoldHead`] to its end through its rewriters, then sends it
/// with its length; when the body cannot be read or rewritten (the rewriter's code is in
/// the log), the client gets a 502 problem instead of a cut-off answer.
pub(crate) async fn held(resp: Response<ResponseBody>) -> Response<ResponseBody> {
    let (mut parts, body) = resp.into_parts();
    parts.extensions.remove::<HoldHead>();
    let exchange = body.exchange().cloned();
    match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            Response::from_parts(parts, ResponseBody::counted(bytes, exchange))
        }
        Err(_) => {
            let Some(x) = exchange else {
                return Response::from_parts(parts, ResponseBody::full(Bytes::new(), None));
            };
            // The upstream ran out of time while its body was read, or the body could not
            // be read or rewritten (the rewriter's code is in the log).
            let p = match x.code.get() {
                Some(&"upstream.timeout") => Problem::UPSTREAM_TIMEOUT,
                _ => Problem::UPSTREAM_PROTOCOL,
            };
            // What the rewriters had produced is not sent: only the problem counts.
            x.bytes_out.store(0, Ordering::Relaxed);
            x.status.store(p.status.as_u16(), Ordering::Relaxed);
            let own_body = rampart_core::respond::problem_in_place(&mut parts, p, &x.request_id);
            Response::from_parts(parts, ResponseBody::full(own_body, Some(x)))
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.hand_over();
    }
}
