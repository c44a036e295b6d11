//! The gateway's own credentials towards an upstream (`upstreams.<name>.credentials`),
//! compiled into a filter by `rampart-transform`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::five_seconds;
use crate::units::Duration;

/// `upstreams.<name>.credentials`: a static header or HTTP basic auth from a secret
/// reference, or an OAuth2 client-credentials token.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum UpstreamCredentialsSpec {
    /// `{ header: { name: X-Api-Key, value: { env: PARTNER_KEY }, prefix: "Bearer " } }`
    Header {
        name: String,
        value: crate::SecretRef,
        /// Written before the secret (`Bearer `).
        #[serde(default)]
        prefix: String,
    },
    /// `{ basic: { username: gw, password: { env: PARTNER_PASSWORD } } }`
    Basic {
        username: String,
        password: crate::SecretRef,
    },
    /// An OAuth2 client-credentials token (RFC 6749 §4.4) the gateway fetches, caches
    /// until shortly before it expires and sends as `Authorization: Bearer`.
    Oauth2(OAuth2ClientSpec),
}

/// `upstreams.<name>.credentials.oauth2`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OAuth2ClientSpec {
    /// The token endpoint: https, or http to a loopback address.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: crate::SecretRef,
    /// Sent as the `scope` parameter, space-separated.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Sent as the `audience` parameter (Auth0, Okta and others ask for one).
    #[serde(default)]
    pub audience: Option<String>,
    /// How the client proves itself: HTTP basic auth (RFC 6749 §2.3.1, the default) or
    /// `client_id`/`client_secret` in the form body.
    #[serde(default)]
    pub client_auth: OAuth2ClientAuth,
    /// A token is renewed this long before it expires (at most half its lifetime).
    #[serde(default = "sixty_seconds")]
    pub refresh_before: Duration,
    /// Timeout of one token request.
    #[serde(default = "five_seconds")]
    pub timeout: Duration,
    /// CA bundle (PEM) trusted for the token endpoint; the system roots by default.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// How an OAuth2 client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OAuth2ClientAuth {
    #[default]
    Basic,
    Body,
}

fn sixty_seconds() -> Duration {
    Duration::secs(60)
}
