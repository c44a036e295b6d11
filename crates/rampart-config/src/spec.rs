//! The config file's shape, key by key. Every optional key has a default that is safe at an
//! internet edge; `docs/config.md` documents each one. The engine never reads these types
//! on the request path: they are compiled into a runtime plan once per load.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

pub use crate::admin::{AdminSpec, UiRole, UiSpec};
pub use crate::edge::LimitsSpec;
pub use crate::identity::*;
pub use crate::listener::*;
pub use crate::ratelimit::*;
use crate::units::{ByteSize, Duration};

/// The whole config file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Format version of the file; only `1` exists.
    pub version: u32,
    /// Worker threads, each with its own runtime, accept socket and upstream pools.
    /// Default: one per available core.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Where the gateway accepts client traffic.
    pub listeners: Vec<ListenerSpec>,
    /// Connection and request limits applied on every listener.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Peers whose `X-Forwarded-*`, `Forwarded` and `X-Request-Id` headers are believed.
    /// Everyone else's are dropped.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// The per-request access log.
    #[serde(default)]
    pub access_log: AccessLogSpec,
    /// The admin API, on its own listener. Absent: no admin API.
    #[serde(default)]
    pub admin: Option<AdminSpec>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before the
    /// process exits anyway (default 30s).
    #[serde(default = "thirty_seconds")]
    pub drain_timeout: Duration,
    /// Named pools of upstream targets.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSpec>,
    /// Routes, matched by specificity (not by order); see docs/config.md.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// How callers prove who they are.
    #[serde(default)]
    pub identity: IdentitySpec,
    /// Known callers, their credentials, roles, plan and attributes.
    #[serde(default)]
    pub consumers: Vec<ConsumerSpec>,
    /// Consumers and API keys kept as data, managed through the admin API (see
    /// docs/consumers.md); merged with `consumers`.
    #[serde(default)]
    pub consumer_store: Option<crate::ConsumerStoreSpec>,
    /// Where the gateway keeps what outlives the process (the embedded consumer store,
    /// the audit trail).
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
    /// The tamper-evident audit trail (docs/evidence.md). Absent: audit events go to the
    /// process log only.
    #[serde(default)]
    pub audit: Option<crate::AuditSpec>,
    /// How many config versions `state_dir` keeps for `rampart history` and rollback.
    #[serde(default)]
    pub config_history: crate::ConfigHistorySpec,
    /// Named tiers of limits, referenced by `consumers[].plan`.
    #[serde(default)]
    pub plans: BTreeMap<String, PlanSpec>,
    /// Rate limits applied on every route (before the route's own).
    #[serde(default)]
    pub rate_limits: Vec<RateLimitSpec>,
    /// The Redis shared by every instance, for `store: redis` limits.
    #[serde(default)]
    pub redis: Option<RedisSpec>,
    /// Security headers and add/set/remove rules for every response.
    #[serde(default)]
    pub response_headers: crate::ResponseHeadersSpec,
    /// JSON threat limits on every JSON request body (on by default).
    #[serde(default)]
    pub json_limits: crate::JsonLimitsSpec,
    /// Named lists of client addresses, for `ip_rules` on listeners and routes.
    #[serde(default)]
    pub ip_lists: BTreeMap<String, crate::IpListSpec>,
    /// The GeoIP database for country rules in `ip_rules`; none by default.
    #[serde(default)]
    pub geoip: Option<crate::GeoIpSpec>,
    /// Named lists of bot rules, for `bots` on routes.
    #[serde(default)]
    pub bot_rules: BTreeMap<String, Vec<crate::BotRuleSpec>>,
    /// Anomaly detection on live traffic, per consumer and route (docs/monitoring.md).
    #[serde(default)]
    pub anomaly: Option<crate::AnomalySpec>,
    /// Trace context towards upstreams, and spans exported over OTLP/HTTP
    /// (docs/monitoring.md).
    #[serde(default)]
    pub tracing: Option<crate::TracingSpec>,
}

/// The access log: one JSON line per request.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogSpec {
    /// Write access log lines (default true).
    pub enabled: bool,
    /// `stdout` (default) or a file path, opened for append.
    pub output: String,
    /// Query parameters whose values are logged (masked by the personal-data detectors);
    /// every other parameter is logged by its key only.
    pub query_values: Vec<String>,
    /// Request headers logged with their values (masked by the personal-data
    /// detectors); credentials (`Authorization`, `Cookie`, the API key header) are refused.
    pub headers: Vec<String>,
}

impl Default for AccessLogSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            output: "stdout".into(),
            query_values: Vec::new(),
            headers: Vec::new(),
        }
    }
}

/// A named pool of upstream targets.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// Servers that receive the traffic.
    pub targets: Vec<TargetSpec>,
    /// How a target is picked for each request.
    #[serde(default)]
    pub balance: Balance,
    /// The key for `consistent_hash`: `client_ip` or `{ header: NAME }`.
    #[serde(default)]
    pub hash_on: Option<HashOn>,
    /// Protocol spoken to the targets: `http1` (default) or `http2`.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// TLS settings for `https://` targets.
    #[serde(default)]
    pub tls: Option<UpstreamTlsSpec>,
    #[serde(default)]
    pub timeouts: UpstreamTimeouts,
    /// Active health checks; absent means none.
    #[serde(default)]
    pub health_check: Option<HealthCheckSpec>,
    #[serde(default)]
    pub passive_health: PassiveHealthSpec,
    #[serde(default)]
    pub retries: RetrySpec,
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerSpec,
    #[serde(default)]
    pub pool: PoolSpec,
    /// The gateway's own credential towards this upstream, set on every request to it
    /// (replacing whatever the caller sent in that header), so callers never hold it.
    #[serde(default)]
    pub credentials: Option<crate::UpstreamCredentialsSpec>,
}

/// One upstream server.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// `http://host:port` or `https://host:port`; no path, query or credentials.
    pub url: String,
    /// Relative share of traffic (1–1000, default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

/// Load-balancing algorithm.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Weighted round robin.
    #[default]
    RoundRobin,
    /// Power of two random choices, fewer in-flight requests (per weight) wins.
    LeastRequests,
    /// Consistent hashing of `hash_on`, so one key keeps reaching the same target.
    ConsistentHash,
}

/// What `consistent_hash` hashes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HashOn {
    /// The client IP (trusted-proxy aware).
    ClientIp,
    /// The value of a request header (requests without it hash the client IP).
    Header(String),
}

/// Protocol spoken to upstream targets.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2: ALPN `h2` over TLS, prior knowledge (h2c) over plain TCP.
    Http2,
}

/// TLS towards `https://` targets.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsSpec {
    /// PEM bundle of CAs trusted for the targets. Default: the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name to send in SNI and verify the certificate against. Default: the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Client certificate for upstream mTLS.
    #[serde(default)]
    pub client_cert: Option<ClientCertSpec>,
}

/// A client certificate presented to upstreams.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientCertSpec {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Upstream timeouts. Each firing gives the client a problem+json error (502/504).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTimeouts {
    /// TCP (and TLS) connection establishment.
    pub connect: Duration,
    /// From the request being sent to the response headers arriving.
    pub response_header: Duration,
    /// The whole exchange, retries included, from the request's arrival to the last byte
    /// of the response. Before the response headers: 504; after: the response is cut.
    pub request: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::secs(2),
            response_header: Duration::secs(30),
            request: Duration::secs(60),
        }
    }
}

/// Active health checking: a GET to `path` on every target every `interval`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// Path requested; a 2xx or 3xx answer is healthy.
    pub path: String,
    #[serde(default = "five_seconds")]
    pub interval: Duration,
    #[serde(default = "two_seconds")]
    pub timeout: Duration,
    /// Consecutive successes that bring an unhealthy target back.
    #[serde(default = "two")]
    pub healthy_threshold: u32,
    /// Consecutive failures that take a healthy target out.
    #[serde(default = "three")]
    pub unhealthy_threshold: u32,
}

/// Passive health (outlier ejection): a target that fails this many requests in a row
/// (connect errors, timeouts, 502/503/504) gets no traffic for `eject_for`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveHealthSpec {
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub eject_for: Duration,
}

impl Default for PassiveHealthSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            eject_for: Duration::secs(10),
        }
    }
}

/// Retries of idempotent requests.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySpec {
    /// Extra attempts after the first (0 disables retries).
    pub max: u32,
    /// Upstream statuses that are retried (only for requests without a body).
    pub on_status: Vec<u16>,
    /// Retries may add at most this percentage of requests (a retry storm can't
    /// multiply load on a struggling upstream).
    pub budget_percent: u32,
    /// Retries always allowed per second, whatever the budget says.
    pub min_per_second: u32,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            max: 1,
            on_status: Vec::new(),
            budget_percent: 20,
            min_per_second: 10,
        }
    }
}

/// Per-target circuit breaker: most requests in flight to one target, per process.
/// Requests over it are answered 503 at once instead of queueing.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerSpec {
    pub max_requests: u32,
}

impl Default for CircuitBreakerSpec {
    fn default() -> Self {
        Self { max_requests: 1024 }
    }
}

/// Upstream connection pool (each worker thread keeps its own). It grows with demand up to
/// `max_idle_per_target` idle connections and shrinks as they sit idle for `idle_timeout`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSpec {
    /// Idle keep-alive connections kept per target per worker.
    pub max_idle_per_target: usize,
    /// An idle pooled connection is closed after this long.
    pub idle_timeout: Duration,
}

impl Default for PoolSpec {
    fn default() -> Self {
        Self {
            // Enough for an edge's concurrency (1,000 keep-alive clients on one worker);
            // idle ones close after `idle_timeout`, so a quiet pool costs nothing.
            max_idle_per_target: 1024,
            idle_timeout: Duration::secs(30),
        }
    }
}

/// One route: which requests it takes and where they go.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Unique name, used in logs and metrics.
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: MatchSpec,
    /// Name of the upstream in `upstreams`.
    pub upstream: String,
    /// Path rewrite applied after matching.
    #[serde(default)]
    pub rewrite: Option<Box<RewriteSpec>>,
    /// Body limit for this route, overriding `limits.max_body_bytes`.
    #[serde(default)]
    pub max_body_bytes: Option<ByteSize>,
    /// Send the client's `Host` upstream (default false: the target's host is sent, and
    /// the client's goes in `X-Forwarded-Host`).
    #[serde(default)]
    pub preserve_host: bool,
    /// Accepted proofs of identity, any one suffices: `api_key`, `jwt:NAME`, `mtls`,
    /// `signature`. Empty = the route is public (`rampart validate` warns).
    #[serde(default)]
    pub authenticate: Vec<String>,
    /// Where `api_key` is read from on this route.
    #[serde(default = "header_source")]
    pub api_key_sources: std::borrow::Cow<'static, [ApiKeySource]>,
    /// What the authenticated caller must have.
    #[serde(default)]
    pub authorize: Option<Box<AuthorizeSpec>>,
    /// `shadow`: authentication and authorization failures are logged and counted, and
    /// the request goes on.
    #[serde(default)]
    pub auth_mode: PolicyMode,
    /// Send the caller's credential (API key, `Authorization`, signature headers)
    /// upstream; by default it is removed.
    #[serde(default)]
    pub forward_credentials: bool,
    /// This route's rate limit policy (after any global `rate_limits`).
    #[serde(default)]
    pub rate_limit: Option<Box<RateLimitSpec>>,
    /// Max in-flight requests on this route (or per consumer on it).
    #[serde(default)]
    pub concurrency: Option<Box<ConcurrencySpec>>,
    /// Forward WebSocket upgrades (`Upgrade: websocket`) on this route. Off by default:
    /// an upgrade request is then sent as a plain request, without its upgrade headers.
    /// No other protocol (`h2c`, ...) is ever forwarded.
    #[serde(default)]
    pub websocket: bool,
    /// Pass `;` path parameters (`/a;v=1/b`) through verbatim. Off by default: a `;` in
    /// the path is refused with 400, because servlet containers resolve
    /// `/public/..;/admin` to `/admin` while the gateway routes it under `/public`.
    #[serde(default)]
    pub allow_path_parameters: bool,
    /// Accept `%25` (an encoded `%`) in the path. Off by default: `%252e%252e` is a
    /// double encoding that an upstream decoding twice reads as `..`.
    #[serde(default)]
    pub allow_encoded_percent: bool,
    /// This route's response header rules, on top of the gateway-wide ones.
    #[serde(default)]
    pub response_headers: Option<Box<crate::ResponseHeadersSpec>>,
    /// This route's JSON threat limits, over the top-level ones key by key.
    #[serde(default)]
    pub json_limits: Option<Box<crate::JsonLimitsSpec>>,
    /// Client address allow and deny lists for this route (the client address as derived
    /// through `trusted_proxies`).
    #[serde(default)]
    pub ip_rules: Option<Box<crate::IpRulesSpec>>,
    /// Validate requests against an OpenAPI document before the upstream sees them.
    #[serde(default)]
    pub validate: Option<Box<crate::ValidateSpec>>,
    /// Injection detection (SQLi, XSS, traversal, command injection, SSRF) on the
    /// request's decoded values.
    #[serde(default)]
    pub inspect: Option<Box<crate::InspectSpec>>,
    /// Bot rules (user agent, missing headers, JA4) applied to the route's requests.
    #[serde(default)]
    pub bots: Option<Box<crate::BotsSpec>>,
    /// Mask personal and secret data in JSON responses, by path and by detector.
    #[serde(default)]
    pub mask: Option<Box<crate::MaskSpec>>,
    /// Only the listed JSON paths of a response pass (`allow`), or the listed ones are
    /// removed (`deny`).
    #[serde(default)]
    pub response_fields: Option<Box<crate::ResponseFieldsSpec>>,
    /// Cross-origin requests from browsers: allowed origins, methods, headers; the
    /// gateway answers preflights itself.
    #[serde(default)]
    pub cors: Option<Box<crate::CorsSpec>>,
    /// Header rules on the request upstream and the response back, with templates.
    #[serde(default)]
    pub transform: Option<Box<crate::TransformSpec>>,
    /// This route's part in anomaly detection (the id parameter; opting out).
    #[serde(default)]
    pub anomaly: Option<Box<crate::RouteAnomalySpec>>,
}

/// The default, borrowed: most routes keep it, and a config of 10,000 routes would
/// otherwise hold 10,000 copies.
fn header_source() -> std::borrow::Cow<'static, [ApiKeySource]> {
    std::borrow::Cow::Borrowed(&[ApiKeySource::Header])
}

/// Conditions a request must meet to take a route. Exactly one of `path` / `path_prefix`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Host names (exact, or `*.example.com` for any subdomain). Empty = any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Exact path or pattern: `/v1/orders/{id}`, `/files/{*rest}`.
    #[serde(default)]
    pub path: Option<String>,
    /// Path prefix on a segment boundary: `/api` matches `/api` and `/api/x`, not `/apix`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Methods (uppercase). Empty = any method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header conditions; all must hold.
    #[serde(default)]
    pub headers: Vec<HeaderMatchSpec>,
}

/// A header condition: present, or present with an exact value.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchSpec {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// Path rewrite applied to the normalised path after matching.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RewriteSpec {
    /// Remove this leading prefix (`/api` turns `/api/x` into `/x`).
    StripPrefix(String),
    /// Replace a leading prefix (`{from: /v1, to: /internal/v1}`).
    ReplacePrefix { from: String, to: String },
    /// A new target from the route's path parameters:
    /// `/legacy/getUser?uid={id}` on a route matching `/v2/users/{id}`.
    Template(String),
}

/// An IP network in CIDR notation; a bare address means a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| Cidr(ipnet::IpNet::from(ip)))
            .map_err(|_| {
                de::Error::custom(format!(
                    "invalid CIDR {s:?}: write e.g. 10.0.0.0/8 or 192.0.2.7"
                ))
            })
    }
}

pub(crate) fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
pub(crate) fn five_seconds() -> Duration {
    Duration::secs(5)
}
fn thirty_seconds() -> Duration {
    Duration::secs(30)
}
fn two_seconds() -> Duration {
    Duration::secs(2)
}
