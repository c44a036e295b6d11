//! The gateway's own credential towards an upstream (`upstreams.<name>.credentials`): a
//! static header or HTTP basic auth, read from a secret reference at every load, or an
//! OAuth2 client-credentials token the gateway fetches and renews (`oauth2.rs`); set on
//! every request to that upstream. Whatever a caller sent in that header is replaced, so
//! internal callers never hold the partner's key and cannot substitute their own. The
//! value is marked sensitive (never indexed by HTTP/2 header compression) and, like every
//! header value, never logged.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue};
use rampart_config::{ConfigError, UpstreamCredentialsSpec};
use rampart_core::{ExchangeCtx, Filter, Phase, StateStore};

use std::sync::Arc;

/// Sets one upstream's credential header.
pub struct UpstreamCredential {
    name: HeaderName,
    value: HeaderValue,
}

impl std::fmt::Debug for UpstreamCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpstreamCredential({}: <redacted>)", self.name)
    }
}

impl UpstreamCredential {
    /// Compiles `upstreams.<upstream>.credentials` into the filter that sets it.
    pub(crate) fn compile(
        spec: &UpstreamCredentialsSpec,
        upstream: &str,
        base: &Path,
        state: &StateStore,
        at: &str,
        tokens: &mut Vec<(
            Arc<str>,
            Arc<rampart_identity::client_credentials::TokenSource>,
        )>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Arc<dyn Filter>> {
        let (name, value) = match spec {
            UpstreamCredentialsSpec::Oauth2(o) => {
                let at = format!("{at}.oauth2");
                let f = crate::oauth2::OAuth2Credential::compile(
                    o, upstream, base, state, &at, errors,
                )?;
                tokens.push(f.source());
                return Some(Arc::new(f));
            }
            UpstreamCredentialsSpec::Header {
                name,
                value,
                prefix,
            } => {
                let at = format!("{at}.header");
                let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                    errors.push(ConfigError::new(format!("{at}.name"), "not a header name"));
                    return None;
                };
                let secret = match value.resolve(base) {
                    Ok(s) => s,
                    Err(e) => {
                        errors.push(ConfigError::new(format!("{at}.value"), e));
                        return None;
                    }
                };
                (name, format!("{prefix}{}", secret.expose()))
            }
            UpstreamCredentialsSpec::Basic { username, password } => {
                let at = format!("{at}.basic");
                if username.contains(':') || username.is_empty() {
                    errors.push(ConfigError::new(
                        format!("{at}.username"),
                        "must be non-empty and hold no `:` (RFC 7617)",
                    ));
                    return None;
                }
                let secret = match password.resolve(base) {
                    Ok(s) => s,
                    Err(e) => {
                        errors.push(ConfigError::new(format!("{at}.password"), e));
                        return None;
                    }
                };
                let pair = format!("{username}:{}", secret.expose());
                (AUTHORIZATION, format!("Basic {}", STANDARD.encode(pair)))
            }
        };
        match HeaderValue::from_str(&value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                Some(Arc::new(UpstreamCredential { name, value: v }))
            }
            Err(_) => {
                // Never the value: only that it cannot be sent.
                errors.push(ConfigError::new(
                    at,
                    "the credential holds characters a header value cannot carry (a line \
                     break, a control character)",
                ));
                None
            }
        }
    }
}

impl Filter for UpstreamCredential {
    fn phase(&self) -> Phase {
        Phase::Transform
    }

    fn name(&self) -> &'static str {
        "upstream_credentials"
    }

    fn on_upstream_request(&self, head: &mut http::request::Parts, _cx: &mut ExchangeCtx) {
        head.headers.insert(self.name.clone(), self.value.clone());
    }
}
