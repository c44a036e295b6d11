//! `upstreams.<name>.credentials.oauth2`: the upstream gets the gateway's own OAuth2
//! client-credentials token as `Authorization: Bearer`, replacing whatever a caller sent.
//! The token is fetched, cached and renewed by `rampart_identity::client_credentials`;
//! this filter asks it for the token of each request, waits only when there is no valid
//! token at all, and answers 502 (`upstream.credential_unavailable`) when none can be had.
//!
//! The token source is kept in the state store under a digest of everything that shapes
//! a token request (endpoint, client, secret, scopes, audience): a reload that changes
//! none of them keeps the cached token; a rotated secret gets a new source, whose first
//! request fetches with the new secret while the old plan finishes its requests with the
//! old token.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest;
use http::header::AUTHORIZATION;
use http::HeaderValue;
use rampart_config::{ConfigError, OAuth2ClientAuth, OAuth2ClientSpec};
use rampart_core::{
    Denial, ExchangeCtx, Filter, Flow, MetricsSource, MetricsText, Phase, Reason, RequestCtx,
    ResponseCtx, StateStore,
};
use rampart_identity::client_credentials::{TokenNow, TokenRequest, TokenSource};

/// Sets an upstream's OAuth2 token.
#[derive(Debug)]
pub struct OAuth2Credential {
    source: Arc<TokenSource>,
    upstream: Arc<str>,
}

/// The token a request was given, for the upstream request and for revoking it on a 401.
struct SentToken(HeaderValue);

impl OAuth2Credential {
    pub(crate) fn compile(
        spec: &OAuth2ClientSpec,
        upstream: &str,
        base: &Path,
        state: &StateStore,
        at: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<OAuth2Credential> {
        let before = errors.len();
        if let Err(e) = rampart_config::fetchable_url(&spec.token_url) {
            errors.push(ConfigError::new(format!("{at}.token_url"), e));
        }
        if spec.client_id.is_empty() || spec.client_id.chars().any(char::is_control) {
            errors.push(ConfigError::new(
                format!("{at}.client_id"),
                "must be non-empty, without control characters",
            ));
        }
        for (i, s) in spec.scopes.iter().enumerate() {
            // RFC 6749 §3.3: scope tokens are printable ASCII without space, `"` or `\`.
            if s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                errors.push(ConfigError::new(
                    format!("{at}.scopes[{i}]"),
                    format!("{s:?} is not a scope token (RFC 6749 §3.3)"),
                ));
            }
        }
        let secret = match spec.client_secret.resolve(base) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(ConfigError::new(format!("{at}.client_secret"), e));
                None
            }
        };
        let ca = spec.ca_file.as_ref().map(|p| base.join(p));
        let tls = match rampart_identity::fetch::client_tls(ca.as_deref()) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(ConfigError::new(format!("{at}.ca_file"), e));
                None
            }
        };
        let (Some(secret), Some(tls)) = (secret, tls) else {
            return None;
        };
        if errors.len() > before {
            return None;
        }
        let key = state_key(spec, upstream, secret.expose());
        let source = state.get_or_insert(&key, || {
            TokenSource::new(
                upstream.into(),
                TokenRequest::new(
                    spec.token_url.clone(),
                    &spec.client_id,
                    secret.expose(),
                    spec.client_auth == OAuth2ClientAuth::Basic,
                    &spec.scopes,
                    spec.audience.as_deref(),
                    tls,
                    spec.timeout.get(),
                    spec.refresh_before.get(),
                ),
            )
        });
        Some(OAuth2Credential {
            source,
            upstream: upstream.into(),
        })
    }

    /// The upstream's name and its token source, for [`TokenMetrics`].
    pub(crate) fn source(&self) -> (Arc<str>, Arc<TokenSource>) {
        (self.upstream.clone(), self.source.clone())
    }
}

/// A state-store key naming one token request: a digest, so the secret is not kept in a
/// key anyone could list.
fn state_key(spec: &OAuth2ClientSpec, upstream: &str, secret: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let parts = [
        upstream,
        &spec.token_url,
        &spec.client_id,
        secret,
        &spec.scopes.join(" "),
        spec.audience.as_deref().unwrap_or(""),
        if spec.client_auth == OAuth2ClientAuth::Basic {
            "basic"
        } else {
            "body"
        },
        &format!("{:?}/{:?}", spec.timeout, spec.refresh_before),
        &format!("{:?}", spec.ca_file),
    ];
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p.as_bytes());
    }
    let d = ctx.finish();
    let hex: String = d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("oauth2_token/{hex}")
}

impl Filter for OAuth2Credential {
    fn phase(&self) -> Phase {
        Phase::Transform
    }

    fn name(&self) -> &'static str {
        "upstream_credentials"
    }

    fn is_async(&self) -> bool {
        true
    }

    fn on_request_async<'a>(
        &'a self,
        cx: &'a mut RequestCtx<'_>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Flow> + Send + 'a>> {
        Box::pin(async move {
            // At most two waits: the fetch this request joined, and one more if another
            // request's fetch replaced it; then the request is refused.
            for _ in 0..3 {
                match self.source.token() {
                    TokenNow::Ready(h) => {
                        cx.exchange.extensions.insert(SentToken(h));
                        return Flow::Continue;
                    }
                    TokenNow::Wait(w) => w.await,
                    TokenNow::Unavailable => break,
                }
            }
            Flow::Deny(Denial::new(Reason::UpstreamCredential))
        })
    }

    fn on_upstream_request(&self, head: &mut http::request::Parts, cx: &mut ExchangeCtx) {
        match cx.extensions.get::<SentToken>() {
            Some(t) => {
                head.headers.insert(AUTHORIZATION, t.0.clone());
            }
            // Unreachable after `on_request_async`; never forward a caller's credential.
            None => {
                head.headers.remove(AUTHORIZATION);
            }
        }
    }

    /// A 401 from the upstream means it no longer takes the token (revoked, or its keys
    /// rotated): the next request fetches a new one.
    fn on_response(&self, cx: &mut ResponseCtx<'_>) {
        if !cx.own && cx.head.status == http::StatusCode::UNAUTHORIZED {
            if let Some(t) = cx.exchange.extensions.get::<SentToken>() {
                self.source.revoke(&t.0);
            }
        }
    }
}

/// `rampart_upstream_token_fetches_total{upstream,result}` for every OAuth2 upstream.
pub(crate) struct TokenMetrics(pub(crate) Vec<(Arc<str>, Arc<TokenSource>)>);

impl MetricsSource for TokenMetrics {
    fn render(&self, out: &mut MetricsText) {
        const NAME: &str = "rampart_upstream_token_fetches_total";
        out.family(
            NAME,
            "counter",
            "OAuth2 client-credentials token requests the gateway made for an upstream, by result.",
        );
        for (upstream, source) in &self.0 {
            let (ok, failed) = source.counts();
            out.sample(NAME, &[("upstream", upstream), ("result", "ok")], ok);
            out.sample(NAME, &[("upstream", upstream), ("result", "error")], failed);
        }
    }
}
