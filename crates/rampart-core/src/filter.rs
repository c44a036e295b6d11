//! The seam between the data plane and the feature crates (identity, authorization, and
//! later limits and inspection): a route carries a list of [`Filter`]s, compiled once per
//! config load, and the proxy runs them in order on every request that takes the route.
//!
//! A filter answers synchronously on the hot path. Only when it truly has to wait (a cold
//! start with no signing keys yet) does it hand back a future; the proxy awaits it and asks
//! again, so the common case allocates nothing for the call itself.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;

use crate::{Reason, TlsPeer};

/// A future a filter needs awaited before it can decide.
pub type Wait = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a filter tells the proxy to do next.
pub enum Flow {
    /// Go on to the next filter, then the upstream.
    Continue,
    /// Answer the request with this denial; nothing further runs.
    Deny(Denial),
    /// Await this, then call the same filter again.
    Wait(Wait),
}

/// A refusal: the status class and the precise reason. The response body only carries
/// the generic problem for the status (401 or 403), so a caller cannot learn which check
/// failed; the reason goes to the access log, the audit trail and the metrics.
#[derive(Debug, Clone)]
pub struct Denial {
    pub reason: Reason,
    /// `WWW-Authenticate` for 401s (RFC 6750 §3), or `None`.
    pub challenge: Option<HeaderValue>,
}

/// How a policy acts on its decision (DESIGN.md §1: every policy can be rolled out in
/// shadow mode first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    /// The decision is computed, logged and counted, and the request goes on.
    Shadow,
}

/// What happened to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Deny,
    /// Would have been denied; shadow mode let it through.
    ShadowDeny,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Allow, Outcome::Deny, Outcome::ShadowDeny];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::ShadowDeny => "shadow_deny",
        }
    }
}

/// One recorded decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub reason: Reason,
    pub outcome: Outcome,
}

/// Who the caller is, once a filter has proved it. Shared (`Arc`) because the proxy, the
/// later filters and the log phase all read it.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The configured consumer this caller resolved to, if any.
    pub consumer: Option<Arc<str>>,
    /// The subject: the consumer id, a JWT `sub`, or a certificate subject.
    pub subject: Arc<str>,
    /// How the identity was proved: `api_key`, `jwt`, `mtls` or `signature`.
    pub method: &'static str,
    /// The public id of the credential used (API key id, JWT issuer name, signing key
    /// id); never the credential itself.
    pub credential: Option<Arc<str>>,
    pub roles: Vec<Arc<str>>,
    pub scopes: Vec<Arc<str>>,
    /// The consumer's plan (tier), for limits.
    pub plan: Option<Arc<str>>,
    /// Free-form attributes for policies: the consumer's configured attributes, or the
    /// verified token's claims.
    pub attributes: Arc<serde_json::Map<String, serde_json::Value>>,
}

/// The facts a filter may read about a request, and the slots it may fill. The request
/// head is mutable so identity filters can strip credentials and set identity headers.
pub struct RequestCtx<'a> {
    pub head: &'a mut http::request::Parts,
    /// The normalised path the route matched.
    pub path: &'a str,
    pub route: &'a str,
    /// The client address, trusted-proxy aware.
    pub client_ip: IpAddr,
    /// The verified client certificate, on mTLS listeners.
    pub tls_peer: Option<&'a TlsPeer>,
    pub tls: bool,
    /// The whole request body, present only when a filter of the route asked for it.
    pub body: Option<&'a Bytes>,
    pub now: SystemTime,
    pub identity: Option<Arc<Identity>>,
    pub decisions: Vec<Decision>,
    /// Headers for the response, whatever it turns out to be (`RateLimit`, …).
    pub response_headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Held until the response has been sent (concurrency slots).
    pub guards: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl RequestCtx<'_> {
    /// Records `reason` as `outcome`.
    pub fn record(&mut self, reason: Reason, outcome: Outcome) {
        self.decisions.push(Decision { reason, outcome });
    }
}

/// One step of a route's inbound chain.
pub trait Filter: Send + Sync {
    /// Runs on every request of the route. Must not block; see [`Flow::Wait`].
    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow;

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
}

impl std::fmt::Debug for dyn Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filter")
    }
}

/// Something that adds its own series to `/metrics` (Prometheus text format).
pub trait MetricsSource: Send + Sync {
    fn render(&self, out: &mut String);
}

impl std::fmt::Debug for dyn MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSource")
    }
}
