//! Cross-origin resource sharing per route (`routes[].cors`): which browser origins may
//! call the route, answered by the gateway (preflights never reach the upstream).

use serde::{Deserialize, Serialize};

use crate::Duration;

/// A route's CORS policy.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    /// Allowed origins: exact (`https://app.example.com`), any subdomain
    /// (`https://*.example.com`), or `*` (any origin; not with `credentials`).
    pub origins: Vec<String>,
    /// Methods a cross-origin request may use (default `GET`, `HEAD`, `POST`).
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Request headers a cross-origin request may send, besides the CORS-safelisted ones.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Response headers the browser lets the page read, besides the safelisted ones.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Let the browser send cookies and credentials (`Access-Control-Allow-Credentials`).
    #[serde(default)]
    pub credentials: bool,
    /// How long a browser may cache a preflight's answer (default 10 minutes; browsers cap
    /// it at 2 hours or less).
    #[serde(default = "default_max_age")]
    pub max_age: Duration,
}

fn default_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into(), "POST".into()]
}

fn default_max_age() -> Duration {
    Duration::secs(600)
}
