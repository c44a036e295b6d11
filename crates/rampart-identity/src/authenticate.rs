//! The authentication filter of a route: removes identity headers a client tried to set,
//! tries the route's accepted methods in order (any one suffices), records the decision,
//! strips the credential and sets the identity headers the upstream may trust.

use std::sync::Arc;

use http::HeaderValue;
use rampart_config::ApiKeySource;
use rampart_core::{Denial, Filter, Flow, Mode, Outcome, Phase, Reason, RequestCtx};

use crate::consumers::Resolved;
use crate::jwt::{Issuer, Verified};
use crate::signature::SignatureVerifier;
use crate::IdentityPlan;

/// One accepted proof of identity.
pub enum Method {
    ApiKey,
    Jwt(Arc<Issuer>),
    Mtls,
    Signature,
}

/// A route's authentication step.
pub struct Authenticate {
    pub(crate) plan: Arc<IdentityPlan>,
    pub(crate) methods: Vec<Method>,
    pub(crate) sources: Vec<ApiKeySource>,
    pub(crate) mode: Mode,
    pub(crate) forward_credentials: bool,
    /// `WWW-Authenticate` without and with `error="invalid_token"` (RFC 6750 §3).
    pub(crate) challenge: HeaderValue,
    pub(crate) challenge_invalid: HeaderValue,
}

enum Attempt {
    Absent,
    Ok(Resolved, Reason),
    Err(Reason),
    Wait(rampart_core::Wait),
}

impl Authenticate {
    fn strip_identity_headers(&self, cx: &mut RequestCtx<'_>) {
        let h = &mut cx.head.headers;
        // One pass over the names present first: nearly every request carries none of
        // these, and each removal is a hash lookup.
        let strip = &self.plan.headers.strip;
        if !h
            .keys()
            .any(|k| strip.contains(k) || k.as_str().starts_with("x-consumer-"))
        {
            return;
        }
        for name in strip {
            h.remove(name);
        }
        if h.keys().any(|k| k.as_str().starts_with("x-consumer-")) {
            let names: Vec<_> = h
                .keys()
                .filter(|k| k.as_str().starts_with("x-consumer-"))
                .cloned()
                .collect();
            for n in names {
                h.remove(n);
            }
        }
    }

    fn bearer(head: &http::request::Parts) -> Option<&[u8]> {
        head.headers.get(http::header::AUTHORIZATION).and_then(|v| {
            let b = v.as_bytes();
            (b.len() > 7 && b[..7].eq_ignore_ascii_case(b"bearer ")).then(|| &b[7..])
        })
    }

    fn api_key<'a>(&self, cx: &'a RequestCtx<'_>) -> Option<&'a [u8]> {
        for s in &self.sources {
            let found = match s {
                ApiKeySource::Header => cx
                    .head
                    .headers
                    .get(&self.plan.api_key_header)
                    .map(|v| v.as_bytes()),
                // A JWT in the Authorization header belongs to the jwt method.
                ApiKeySource::Bearer => Self::bearer(cx.head).filter(|t| !looks_like_jwt(t)),
                ApiKeySource::Query => self
                    .plan
                    .api_key_query
                    .as_deref()
                    .and_then(|p| query_value(cx.head.uri.query()?, p)),
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn attempt(&self, m: &Method, cx: &RequestCtx<'_>) -> Attempt {
        let plan = &self.plan;
        match m {
            Method::ApiKey => {
                let Some(key) = self.api_key(cx) else {
                    return Attempt::Absent;
                };
                match plan.api_keys.verify_with(
                    key,
                    cx.now,
                    plan.live
                        .as_deref()
                        .map(|l| (l, &plan.headers, plan.generation)),
                ) {
                    Ok(crate::api_key::Found::Config(k)) => {
                        Attempt::Ok(plan.key_identities[k.identity].clone(), Reason::ApiKeyOk)
                    }
                    Ok(crate::api_key::Found::Store(r)) => Attempt::Ok(r, Reason::ApiKeyOk),
                    Err(r) => Attempt::Err(r),
                }
            }
            Method::Jwt(issuer) => {
                let Some(token) = Self::bearer(cx.head).filter(|t| looks_like_jwt(t)) else {
                    return Attempt::Absent;
                };
                match issuer.verify(token, cx.now, &plan.consumers, &plan.headers) {
                    Verified::Ok(r) => Attempt::Ok(r, Reason::JwtOk),
                    Verified::Err(r) => Attempt::Err(r),
                    Verified::Wait(w) => Attempt::Wait(w),
                }
            }
            Method::Mtls => {
                let Some(peer) = cx.tls_peer.as_deref() else {
                    return Attempt::Absent;
                };
                match plan.certificates.find(peer) {
                    Ok(i) => Attempt::Ok(plan.mtls_identities[i].clone(), Reason::MtlsOk),
                    Err(r) => match plan.live.as_ref().and_then(|l| l.find_certificate(peer)) {
                        Some(c) => Attempt::Ok(
                            c.mtls_resolved(&plan.headers, plan.generation),
                            Reason::MtlsOk,
                        ),
                        None => Attempt::Err(r),
                    },
                }
            }
            Method::Signature => {
                let Some(value) = SignatureVerifier::present(cx.head) else {
                    return Attempt::Absent;
                };
                let body = cx.body.map_or(&[][..], |b| &b[..]);
                match plan.signatures.verify(value, cx.head, body, cx.now) {
                    Ok((i, key_id)) => {
                        let id = plan.consumers.identity(i, "signature", key_id);
                        Attempt::Ok(
                            Resolved {
                                headers: plan.headers.render(&id),
                                identity: Arc::new(id),
                            },
                            Reason::SignatureOk,
                        )
                    }
                    Err(r) => Attempt::Err(r),
                }
            }
        }
    }

    fn strip_credentials(&self, cx: &mut RequestCtx<'_>) {
        for m in &self.methods {
            match m {
                Method::ApiKey => {
                    cx.head.headers.remove(&self.plan.api_key_header);
                    if self.sources.contains(&ApiKeySource::Bearer) {
                        cx.head.headers.remove(http::header::AUTHORIZATION);
                    }
                    if self.sources.contains(&ApiKeySource::Query) {
                        if let Some(p) = &self.plan.api_key_query {
                            strip_query_param(&mut cx.head.uri, p);
                        }
                    }
                }
                Method::Jwt(_) | Method::Signature => {
                    cx.head.headers.remove(http::header::AUTHORIZATION);
                }
                Method::Mtls => {}
            }
        }
    }
}

impl Authenticate {
    /// True when a credential this route reads is sent more than once (two
    /// `Authorization` headers, two API-key headers or query parameters): only one would
    /// be checked, and the other might be what the upstream reads.
    fn repeated_credential(&self, cx: &RequestCtx<'_>) -> bool {
        let h = &cx.head.headers;
        let twice = |name: &http::HeaderName| h.get_all(name).iter().nth(1).is_some();
        let api_key = self.methods.iter().any(|m| matches!(m, Method::ApiKey));
        let reads_authorization = self
            .methods
            .iter()
            .any(|m| matches!(m, Method::Jwt(_) | Method::Signature))
            || (api_key && self.sources.contains(&ApiKeySource::Bearer));
        if reads_authorization && twice(&http::header::AUTHORIZATION) {
            return true;
        }
        if api_key
            && self.sources.contains(&ApiKeySource::Header)
            && twice(&self.plan.api_key_header)
        {
            return true;
        }
        if api_key && self.sources.contains(&ApiKeySource::Query) {
            if let (Some(p), Some(q)) = (self.plan.api_key_query.as_deref(), cx.head.uri.query()) {
                let n = q
                    .split('&')
                    .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) == p)
                    .count();
                return n > 1;
            }
        }
        false
    }

    /// Refuses a client that is over its failed-authentication budget, before any
    /// credential is read.
    fn refuse_brute_force(&self, cx: &mut RequestCtx<'_>) -> Option<Flow> {
        let limiter = self.plan.failures.as_ref()?;
        if self.mode != Mode::Enforce || !limiter.is_blocked(cx.client_ip) {
            return None;
        }
        cx.record(Reason::AuthFailuresExceeded, Outcome::Deny);
        Some(Flow::Deny(
            Denial::new(Reason::AuthFailuresExceeded)
                .with_header(http::header::RETRY_AFTER, limiter.retry_after.clone()),
        ))
    }

    /// The answer to a failed authentication; a presented-but-bad credential counts
    /// against the client's failure budget.
    fn fail(&self, cx: &mut RequestCtx<'_>, reason: Reason) -> Flow {
        if reason != Reason::Missing {
            if let Some(l) = &self.plan.failures {
                l.record_failure(cx.client_ip);
            }
        }
        if self.mode == Mode::Shadow {
            cx.record(reason, Outcome::ShadowDeny);
            return Flow::Continue;
        }
        cx.record(reason, Outcome::Deny);
        let challenge = if reason == Reason::Missing {
            &self.challenge
        } else {
            &self.challenge_invalid
        };
        Flow::Deny(
            Denial::new(reason).with_header(http::header::WWW_AUTHENTICATE, challenge.clone()),
        )
    }
}

impl Filter for Authenticate {
    fn phase(&self) -> Phase {
        Phase::Authenticate
    }

    fn name(&self) -> &'static str {
        "authenticate"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        // Runs again after a wait; the strip is idempotent.
        self.strip_identity_headers(cx);
        if self.methods.is_empty() {
            return Flow::Continue;
        }
        if let Some(flow) = self.refuse_brute_force(cx) {
            return flow;
        }
        if self.repeated_credential(cx) {
            return self.fail(cx, Reason::CredentialRepeated);
        }
        let mut failure = None;
        for m in &self.methods {
            match self.attempt(m, cx) {
                Attempt::Absent => {}
                Attempt::Wait(w) => return Flow::Wait(w),
                Attempt::Err(r) => {
                    failure.get_or_insert(r);
                }
                Attempt::Ok(resolved, reason) => {
                    cx.record(reason, Outcome::Allow);
                    if !self.forward_credentials {
                        self.strip_credentials(cx);
                    }
                    for (n, v) in resolved.headers.iter() {
                        cx.head.headers.insert(n.clone(), v.clone());
                    }
                    cx.identity = Some(resolved.identity);
                    return Flow::Continue;
                }
            }
        }
        self.fail(cx, failure.unwrap_or(Reason::Missing))
    }

    fn needs_body(&self) -> bool {
        self.methods.iter().any(|m| matches!(m, Method::Signature))
    }
}

/// Three base64url segments: the shape of a compact JWS.
fn looks_like_jwt(t: &[u8]) -> bool {
    t.iter().filter(|b| **b == b'.').count() == 2
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a [u8]> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v.as_bytes())
    })
}

fn strip_query_param(uri: &mut http::Uri, name: &str) {
    let Some(q) = uri.query() else { return };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
        .collect();
    let pq = if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = http::uri::PathAndQuery::try_from(pq) {
        parts.path_and_query = Some(pq);
        if let Ok(u) = http::Uri::from_parts(parts) {
            *uri = u;
        }
    }
}
