//! Response header policy: the security headers an API edge should send, and the
//! operator's own add/set/remove rules, gateway-wide (`response_headers`) and per route
//! (`routes[].response_headers`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::units::Duration;

/// Response header rules. At the top level every field has a safe default; on a route,
/// a security field given replaces the gateway-wide one and the route's `add`, `set`
/// and `remove` apply after the gateway-wide ones.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseHeadersSpec {
    /// `Strict-Transport-Security` on responses sent over TLS listeners (never on plain
    /// HTTP, where browsers ignore it: RFC 6797 §7.2). Default: one year, no
    /// subdomains, no preload. `hsts: { enabled: false }` turns it off.
    pub hsts: Option<HstsSpec>,
    /// `X-Content-Type-Options: nosniff`. Default on.
    pub content_type_options: Option<bool>,
    /// `X-Frame-Options` (`deny` or `sameorigin`). Default: not sent.
    pub frame_options: Option<FrameOptions>,
    /// `Referrer-Policy`, e.g. `no-referrer`. Default: not sent.
    pub referrer_policy: Option<String>,
    /// `Content-Security-Policy` on upstream responses. Default: not sent (the gateway's
    /// own error bodies always carry `default-src 'none'; frame-ancestors 'none'`).
    pub content_security_policy: Option<String>,
    /// Security headers replace what the upstream sent instead of filling in only what
    /// it left out. Default false: an upstream that sets its own policy keeps it.
    pub override_upstream: Option<bool>,
    /// Headers appended to every response.
    pub add: BTreeMap<String, String>,
    /// Headers set on every response, replacing any value the upstream sent.
    pub set: BTreeMap<String, String>,
    /// Headers removed from every response (after `add` and `set` of the level above).
    pub remove: Vec<String>,
}

/// HSTS settings (RFC 6797 §6.1).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HstsSpec {
    pub enabled: bool,
    pub max_age: Duration,
    pub include_subdomains: bool,
    pub preload: bool,
}

impl Default for HstsSpec {
    fn default() -> Self {
        HstsSpec {
            enabled: true,
            max_age: Duration::secs(365 * 86_400),
            include_subdomains: false,
            preload: false,
        }
    }
}

/// `X-Frame-Options` values (RFC 7034 §2.1; `ALLOW-FROM` is obsolete).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FrameOptions {
    Deny,
    Sameorigin,
}
