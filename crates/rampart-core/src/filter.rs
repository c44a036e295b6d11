//! The seam between the data plane and the feature crates: one trait with one method per
//! phase of an exchange (DESIGN.md §1), each with a no-op default, so a filter implements
//! only the phases it acts in. A route carries its filters, compiled once per config load
//! and sorted by [`Phase`]; the proxy calls every phase of every filter in that order.
//!
//! The phases, in the order an exchange meets them:
//!
//! 1. [`Filter::on_connect`]: once per connection, at accept; on TLS listeners then
//!    [`Filter::on_client_hello`], before the handshake is answered.
//! 2. [`Filter::on_request`]: the inbound chain; a filter continues, denies or waits.
//! 3. [`Filter::on_upstream_request`]: the final head towards the upstream; the request
//!    body then streams through the inspectors of [`Filter::request_body`].
//! 4. [`Filter::on_response`]: the response head, from the upstream or the gateway.
//! 5. [`Filter::response_body`]: an optional rewriter of the response body's frames.
//! 6. [`Filter::on_log`]: always, even on a refusal, after the last byte.
//!
//! A filter answers synchronously on the hot path. Only when it truly has to wait (a cold
//! start with no signing keys yet, a Redis round trip) does it hand back a future, so the
//! common case allocates nothing for the call itself.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use crate::context::{ConnectInfo, ExchangeCtx, RequestCtx, ResponseCtx};
use crate::record::ExchangeRecord;
use crate::{Problem, Reason};

/// A future a filter needs awaited before it can decide.
pub type Wait = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where a filter sits in a route's chain. The chain is sorted by this once, when the
/// config is compiled; filters of the same phase keep the order their features were
/// listed in. The order is the one of DESIGN.md §1: cheap refusals first, identity before
/// the checks that use it, limits counted by the identity proved, transforms last; then
/// the response side, body rewriters before header policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Allow and deny lists of client addresses.
    IpRules,
    /// CORS: preflights answered, origins noted for the response (before identity:
    /// browsers send no credentials on a preflight, and a refusal must carry CORS headers
    /// for the page to read it).
    Cors,
    /// Size and shape limits on the request.
    RequestLimits,
    /// Schema validation and injection detection.
    Validation,
    /// Proving who the caller is (API key, JWT, mTLS, signature).
    Authenticate,
    /// Deciding what the proved caller may do (roles, scopes, Cedar).
    Authorize,
    /// Rate limits, quotas and concurrency, counted per proved identity.
    RateLimit,
    /// Rewriting the request towards the upstream.
    Transform,
    /// Rewriting the response body (masking, field allow-lists).
    ResponseBody,
    /// Response header policy (security headers, add/set/remove).
    ResponseHeaders,
}

/// What a filter tells the proxy to do next.
pub enum Flow {
    /// Go on to the next filter, then the upstream.
    Continue,
    /// Answer the request with this denial; nothing further of the inbound chain runs.
    Deny(Denial),
    /// Await this, then call the same filter again.
    Wait(Wait),
    /// Answer the request with this, without a body and without forwarding it (a CORS
    /// preflight); nothing further of the inbound chain runs. Not a refusal.
    Reply(Reply),
}

/// An answer the gateway gives itself that is not a refusal.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The access log's `code` (`cors.preflight`).
    pub code: &'static str,
}

/// A refusal: the precise reason, and any headers the answer must carry. The response
/// is rendered from the reason alone ([`Reason::problem`]), in one place, so a caller
/// cannot learn which check failed; the reason goes to the log, the audit trail and the
/// metrics.
#[derive(Debug, Clone)]
pub struct Denial {
    pub reason: Reason,
    /// Headers of the refusal (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// What was wrong, field by field, for refusals whose point is to tell the caller
    /// (request validation against the API's contract); rendered as the problem's
    /// `errors` member. Empty for every refusal that must not say which check failed.
    pub errors: Vec<FieldError>,
}

/// One violation of an API contract: where (`in`: `path`, `query`, `header`, `cookie`,
/// `body`), which parameter or JSON pointer, and why, in words chosen by the gateway.
/// Never the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub location: &'static str,
    /// A parameter name, or a JSON pointer into the body (`/items/0/qty`).
    pub name: Box<str>,
    pub reason: Box<str>,
}

impl Denial {
    pub fn new(reason: Reason) -> Denial {
        Denial {
            reason,
            headers: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Adds a header to the refusal.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Denial {
        self.headers.push((name, value));
        self
    }
}

/// A rewriter of one response body, created per exchange by [`Filter::response_body`].
/// It sees the body's data frames in order and returns what goes to the client in their
/// place. It may hold data back (to see a whole JSON value, say) but must bound what it
/// holds: past its bound it answers `Err(code)`, and the proxy aborts the response (the
/// client sees an incomplete body, never a silently wrong one) and logs `code`.
pub trait BodyRewriter: Send {
    /// Called with each data frame, and once more with `end` set (and `data` empty) when
    /// the upstream body has ended. Returns the bytes to send now (possibly none).
    fn on_data(&mut self, data: Bytes, end: bool) -> Result<Bytes, &'static str>;

    /// True for a rewriter that answers nothing until the body has ended (it needs the
    /// whole body: a tree of JSON, an XML document). The proxy then reads the whole
    /// answer before it sends the head, so a body that cannot be rewritten gets a 502
    /// problem rather than a cut-off response. Default: streams.
    fn holds_whole_body(&self) -> bool {
        false
    }
}

/// An inspector of one request body, created per exchange by [`Filter::request_body`].
/// It sees the body's data frames in order, as they stream upstream unchanged, and holds
/// only bounded state of its own (never the body). An `Err` fails the body at once:
/// nothing more is forwarded, the upstream request is aborted so the upstream never
/// receives a complete body, and the client gets the problem.
pub trait BodyInspector: Send {
    /// Each data frame, before it is forwarded.
    fn on_data(&mut self, data: &[u8]) -> Result<(), Problem>;
    /// The body has ended; every frame was seen.
    fn on_end(&mut self) -> Result<(), Problem>;
}

/// One filter of a route's chain. Every method but [`Filter::phase`] has a no-op default.
pub trait Filter: Send + Sync {
    /// Where the filter sits in the chain.
    fn phase(&self) -> Phase;

    /// A short, stable name for logs and docs (`authenticate`, `rate_limit`).
    fn name(&self) -> &'static str;

    /// Once per connection, at accept, before any byte is read (TLS included, so a refused
    /// peer costs no handshake work; [`ConnectInfo::client_hello`] is `None`). A
    /// `Err(reason)` closes the connection without a response; the refusal is counted.
    /// Runs for the gateway-wide connect filters only (no route is known yet). Default:
    /// accept.
    fn on_connect(&self, _cx: &ConnectInfo<'_>) -> Result<(), Reason> {
        Ok(())
    }

    /// On TLS listeners, once the ClientHello has been read and before the handshake is
    /// answered ([`ConnectInfo::client_hello`] is filled: SNI, ALPN, fingerprint). Same
    /// contract as [`Filter::on_connect`]. Default: accept.
    fn on_client_hello(&self, _cx: &ConnectInfo<'_>) -> Result<(), Reason> {
        Ok(())
    }

    /// The inbound chain, on every request of the route, in phase order. Must not block;
    /// see [`Flow::Wait`]. Default: continue.
    fn on_request(&self, _cx: &mut RequestCtx<'_>) -> Flow {
        Flow::Continue
    }

    /// Whether this filter must await I/O (a Redis round trip) to decide; the proxy then
    /// calls [`Filter::on_request_async`] instead of [`Filter::on_request`].
    fn is_async(&self) -> bool {
        false
    }

    /// The asynchronous form of [`Filter::on_request`], for filters whose
    /// [`Filter::is_async`] is true.
    fn on_request_async<'a>(
        &'a self,
        cx: &'a mut RequestCtx<'_>,
    ) -> Pin<Box<dyn Future<Output = Flow> + Send + 'a>> {
        let flow = self.on_request(cx);
        Box::pin(std::future::ready(flow))
    }

    /// Whether this filter needs the whole request body in [`RequestCtx::body`] (request
    /// signatures cover a body digest). The proxy then buffers the body, within the
    /// route's body limit, before the chain runs.
    fn needs_body(&self) -> bool {
        false
    }

    /// Asks to inspect the request body: an inspector for this exchange, or `None` (the
    /// default) to let the body stream through at no cost; or a denial when the body
    /// cannot be inspected as sent (it is then refused before anything is forwarded).
    /// Called just before the inbound chain (the head as the client sent it, cleaned; no
    /// body yet), only for requests that have a body, so a check of body headers here
    /// costs nothing on the others.
    /// The inspector sees the body as it streams upstream once the chain has passed, or,
    /// on routes whose body is buffered for a filter ([`Filter::needs_body`]), while it is
    /// buffered, before the chain runs.
    fn request_body(
        &self,
        _cx: &mut RequestCtx<'_>,
    ) -> Result<Option<Box<dyn BodyInspector>>, Denial> {
        Ok(None)
    }

    /// The request head as it will be sent upstream (forwarding headers, request id and
    /// rewritten target already set), once the whole inbound chain has passed. Not run for
    /// refused requests. Default: leave it.
    fn on_upstream_request(&self, _head: &mut http::request::Parts, _cx: &mut ExchangeCtx) {}

    /// The response head before it is sent: the upstream's answer, or the gateway's own
    /// (a refusal, a problem) when [`ResponseCtx::own`] is set. Runs for every response of
    /// the route, and for answers to requests that matched no route with the gateway-wide
    /// response filters. Default: leave it.
    fn on_response(&self, _cx: &mut ResponseCtx<'_>) {}

    /// Asks to see the response body: a rewriter for this exchange, or `None` (the
    /// default) to let the body stream through untouched at no cost. Called after
    /// [`Filter::on_response`], for upstream responses only; a filter that rewrites must
    /// remove `Content-Length` in `on_response`.
    fn response_body(&self, _cx: &ResponseCtx<'_>) -> Option<Box<dyn BodyRewriter>> {
        None
    }

    /// After the last byte of the response was sent (or the exchange was abandoned);
    /// always runs, refusals included. Must not block. Default: nothing.
    fn on_log(&self, _record: &ExchangeRecord<'_>) {}
}

impl std::fmt::Debug for dyn Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Filter({}, {:?})", self.name(), self.phase())
    }
}

/// Something that adds its own series to `/metrics` (Prometheus text format), and may
/// say what it knows about individual callers (the dashboard's consumers page, read on
/// demand, never on the request path).
pub trait MetricsSource: Send + Sync {
    fn render(&self, out: &mut crate::metrics_text::MetricsText);

    /// Callers worth an operator's look now, most notable first, at most `max`.
    fn callers(&self, _max: usize) -> Vec<CallerRow> {
        Vec::new()
    }
}

/// One thing a feature knows about one caller now.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerRow {
    /// `consumer:<id>` or `ip:<address>`.
    pub caller: String,
    /// The route or policy it concerns.
    pub scope: String,
    /// What says it: `rate limit`, `anomaly`, `ban`, `throttle`.
    pub source: &'static str,
    /// In words: "87 of 100 per 1m used", "requests 6.2 σ over baseline".
    pub detail: String,
    /// How close to being refused, 0 (far) to 1 (refused now), for ordering.
    pub level: f64,
}

impl std::fmt::Debug for dyn MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSource")
    }
}
