//! Edge limits: what every connection and request must respect before any route-level
//! policy runs (DESIGN.md §6), including the header-name and client-address rules that
//! keep a client from impersonating the gateway or multiplying its own identity.

use serde::{Deserialize, Serialize};

use crate::ratelimit::{ConnectionRateSpec, Rate};
use crate::units::{ByteSize, Duration};

/// Limits applied to every connection and request. Defaults follow DESIGN.md §6.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSpec {
    /// Largest request header block (request line + headers). Over it: 431.
    pub max_header_bytes: ByteSize,
    /// Most header fields in one request. Over it: 431.
    pub max_headers: usize,
    /// Longest request target (path + query). Over it: 414.
    pub max_uri_bytes: ByteSize,
    /// Largest request body, unless a route says otherwise. Over it: 413.
    pub max_body_bytes: ByteSize,
    /// The whole header block must arrive within this time of its first byte. Else: 408.
    pub header_timeout: Duration,
    /// The whole request body must arrive within this time (a total deadline, not a
    /// per-read one, so a body trickled a byte at a time is cut). Else: 408.
    pub body_timeout: Duration,
    /// A keep-alive connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// Most client connections open at once, per process. Further ones are closed at accept.
    pub max_connections: usize,
    /// Most client connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// New connections one IP address may open (GCRA: `rate` with `burst`), checked at
    /// accept, before any TLS work.
    pub new_connections_per_ip: Option<ConnectionRateSpec>,
    /// HTTP/2: most concurrent streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2: most streams a client may reset before the connection is closed
    /// (Rapid Reset, CVE-2023-44487).
    pub h2_max_pending_resets: usize,
    /// What to do with a request header whose name contains `_`: `drop` it (default, as
    /// nginx does), `reject` the request with 400, or `allow` it. Whatever the setting, a
    /// header whose name with `_` read as `-` is one the gateway owns or strips
    /// (`X_Consumer_Id`, `X_Forwarded_For`, ...) is always removed: CGI-style upstreams
    /// read both spellings as the same variable.
    pub headers_with_underscores: UnderscoreHeaders,
    /// IPv6 clients are counted by this prefix (bits) for `by: ip` limits, per-IP
    /// connection caps and authentication-failure limits: one host usually holds a whole
    /// /64, so counting /128s would give it 2^64 identities. 128 counts single addresses.
    pub ipv6_prefix: u8,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            max_header_bytes: ByteSize::kib(16),
            max_headers: 100,
            max_uri_bytes: ByteSize::kib(8),
            max_body_bytes: ByteSize::mib(1),
            header_timeout: Duration::secs(10),
            body_timeout: Duration::secs(30),
            idle_timeout: Duration::secs(60),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            new_connections_per_ip: None,
            h2_max_concurrent_streams: 100,
            h2_max_pending_resets: 20,
            headers_with_underscores: UnderscoreHeaders::Drop,
            ipv6_prefix: 64,
        }
    }
}

/// The treatment of request header names that contain `_`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnderscoreHeaders {
    #[default]
    Drop,
    Reject,
    Allow,
}

/// Brute-force protection: failed authentications per client address (IPv6 by
/// `limits.ipv6_prefix`). Once a client exceeds it, its requests on authenticated routes
/// get 429 before any credential is looked at or any signature verified.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthFailureSpec {
    /// On by default.
    pub enabled: bool,
    /// Sustained failures allowed (default `30/min`).
    pub rate: Rate,
    /// Failures allowed in a burst (default 30).
    pub burst: u64,
    /// Most client addresses tracked; beyond it new failing clients are refused (fail
    /// closed) rather than the oldest forgotten.
    pub max_clients: usize,
}

impl Default for AuthFailureSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            rate: Rate {
                count: 30,
                period: std::time::Duration::from_secs(60),
            },
            burst: 30,
            max_clients: 100_000,
        }
    }
}
