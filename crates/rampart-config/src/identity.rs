//! The identity and access part of the config: how callers prove who they are
//! (`identity`), who they may be (`consumers`), and what each route demands
//! (`authenticate`, `authorize` on [`crate::RouteSpec`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::units::Duration;
use crate::SecretRef;

/// How credentials are read and checked, gateway-wide.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySpec {
    pub api_keys: ApiKeysSpec,
    /// JWT issuers by name; a route names one as `jwt:NAME`.
    pub jwt: BTreeMap<String, JwtIssuerSpec>,
    pub signatures: SignaturesSpec,
    pub headers: IdentityHeadersSpec,
    /// Brute-force protection: failed authentications allowed per client address.
    pub auth_failures: crate::AuthFailureSpec,
}

/// API keys: where they are read from and the pepper their stored hashes are keyed with.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeysSpec {
    /// The request header that carries a key.
    pub header: String,
    /// The query parameter for routes that list `query` in `api_key_sources`; unset means
    /// query-string keys are refused everywhere.
    pub query_param: Option<String>,
    /// The HMAC-SHA256 key of stored key hashes. Required once any consumer has a key.
    pub pepper: Option<SecretRef>,
}

impl Default for ApiKeysSpec {
    fn default() -> Self {
        Self {
            header: "X-API-Key".into(),
            query_param: None,
            pepper: None,
        }
    }
}

/// A JWT signing algorithm (RFC 7518 §3.1, RFC 8037). `none` does not exist here.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JwtAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl JwtAlgorithm {
    /// Whether this is an HMAC (shared secret) algorithm.
    pub fn is_symmetric(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
        )
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One token issuer the gateway trusts, as a resource server.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerSpec {
    /// The exact `iss` value (no normalisation: a trailing slash matters).
    pub issuer: String,
    /// `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// Accepted `alg` values. HS* only with `secret`, and never beside asymmetric ones.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Keys from this JWKS URL (https, or http on loopback only).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Find `jwks_uri` by OIDC discovery at `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery: bool,
    /// Keys from a local file: a JWKS document or PEM public keys.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The shared secret for HS* algorithms.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// CA bundle for the IdP's TLS certificate (default: the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    #[serde(default = "thirty_seconds")]
    pub leeway: Duration,
    /// Tokens whose `exp` lies further ahead than this are refused.
    #[serde(default = "one_day")]
    pub max_lifetime: Duration,
    /// Required `typ` header value (e.g. `at+jwt`, RFC 9068); unset = not checked.
    #[serde(default)]
    pub typ: Option<String>,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claim holding roles (an array or a space-separated string).
    #[serde(default = "roles_claim")]
    pub roles_claim: String,
    /// Claims holding scopes, tried in order (`scope` is space-separated, `scp` an array).
    #[serde(default = "scopes_claims")]
    pub scopes_claims: Vec<String>,
    /// A claim whose value is a consumer id: when it names a configured consumer, that
    /// consumer's roles, plan and attributes join the token's.
    #[serde(default)]
    pub consumer_claim: Option<String>,
    /// Background JWKS refresh bounds; `Cache-Control: max-age` is honoured within them.
    #[serde(default)]
    pub refresh: JwksRefreshSpec,
    /// Verified tokens cached per worker thread (a repeat costs no signature check).
    #[serde(default = "token_cache")]
    pub cache_entries: usize,
}

/// When keys are fetched again.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JwksRefreshSpec {
    pub min_interval: Duration,
    pub max_interval: Duration,
    /// After an unknown `kid`, at most one fetch per this long.
    pub unknown_kid_cooldown: Duration,
    /// Timeout of one fetch.
    pub timeout: Duration,
}

impl Default for JwksRefreshSpec {
    fn default() -> Self {
        Self {
            min_interval: Duration::secs(60),
            max_interval: Duration::secs(3600),
            unknown_kid_cooldown: Duration::secs(30),
            timeout: Duration::secs(5),
        }
    }
}

/// HMAC-signed requests (see docs/identity.md for the canonical string).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SignaturesSpec {
    /// Requests whose timestamp is further than this from the gateway's clock are refused;
    /// nonces are remembered for twice this long.
    pub max_skew: Duration,
    /// Nonces remembered at most per signing key (per gateway process). Each key has its
    /// own bound, so one client flooding nonces can only exhaust its own key's share.
    pub nonce_cache_entries: usize,
}

impl Default for SignaturesSpec {
    fn default() -> Self {
        Self {
            max_skew: Duration::secs(300),
            nonce_cache_entries: 100_000,
        }
    }
}

/// The headers the gateway sets after authentication. Client-sent headers with these
/// names, and any header starting with `X-Consumer-`, are always removed first.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeadersSpec {
    pub consumer: String,
    pub subject: String,
    pub roles: String,
    pub scopes: String,
    pub method: String,
    pub credential: String,
    /// Further client headers to always strip (e.g. `X-User`, `X-Authenticated-User`).
    pub strip: Vec<String>,
}

impl Default for IdentityHeadersSpec {
    fn default() -> Self {
        Self {
            consumer: "X-Consumer-Id".into(),
            subject: "X-Consumer-Subject".into(),
            roles: "X-Consumer-Roles".into(),
            scopes: "X-Consumer-Scopes".into(),
            method: "X-Consumer-Auth-Method".into(),
            credential: "X-Consumer-Credential".into(),
            strip: Vec::new(),
        }
    }
}

/// A known caller.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    pub id: String,
    /// The plan (tier) whose limits apply.
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Free-form attributes for policies (strings, numbers, booleans, lists of those).
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub api_keys: Vec<ApiKeySpec>,
    /// Client certificates that identify this consumer on mTLS listeners.
    #[serde(default)]
    pub certificates: Vec<CertificateMatchSpec>,
    /// Shared secrets for signed requests.
    #[serde(default)]
    pub signing_keys: Vec<SigningKeySpec>,
    /// Limits for this consumer, replacing its plan's on `by: consumer` policies.
    #[serde(default)]
    pub limits: Vec<crate::LimitSpec>,
    /// Max in-flight requests, replacing its plan's.
    #[serde(default)]
    pub concurrency: Option<u64>,
}

/// A stored API key: only its peppered hash, as printed by `rampart keys new`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// Public id, shown in logs and identity headers.
    pub id: String,
    /// `hmac-sha256:<64 hex>`.
    pub hash: String,
    #[serde(default)]
    pub not_before: Option<Timestamp>,
    #[serde(default)]
    pub expires: Option<Timestamp>,
}

/// One way a verified client certificate maps to a consumer; exactly one field is set.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CertificateMatchSpec {
    SubjectCn(String),
    SanUri(String),
    SanDns(String),
    /// SHA-256 of the certificate's DER, hex (colons allowed).
    Fingerprint(String),
}

/// A shared secret for HMAC request signatures.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningKeySpec {
    /// Sent by the client as `keyId`.
    pub id: String,
    pub secret: SecretRef,
    #[serde(default)]
    pub not_before: Option<Timestamp>,
    #[serde(default)]
    pub expires: Option<Timestamp>,
}

/// Per route: which proofs of identity the route accepts and what they must permit.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeSpec {
    #[serde(default)]
    pub roles_any: Vec<String>,
    #[serde(default)]
    pub roles_all: Vec<String>,
    #[serde(default)]
    pub scopes_any: Vec<String>,
    #[serde(default)]
    pub scopes_all: Vec<String>,
    /// Only these consumer ids.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// Cedar policy files; when set, a request is denied unless a policy permits it.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
    /// The route-level action name policies see instead of the HTTP method
    /// (`Action::"orders.read"`); the method is still in `context.method`.
    #[serde(default)]
    pub action: Option<String>,
    /// Request headers policies may read, as `context.headers["x-tenant"]`.
    #[serde(default)]
    pub policy_headers: Vec<String>,
}

/// Where a route reads API keys from.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeySource {
    /// `identity.api_keys.header`.
    Header,
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `identity.api_keys.query_param` (never logged; avoid: URLs end up in browser
    /// history and proxies' logs).
    Query,
}

/// Enforce or shadow.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    #[default]
    Enforce,
    Shadow,
}

/// An RFC 3339 instant (`2027-01-31T00:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub SystemTime);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_seconds(self.0))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&s)
            .map(Timestamp)
            .map_err(|_| {
                de::Error::custom(format!(
                    "invalid timestamp {s:?}: write RFC 3339, e.g. 2027-01-31T00:00:00Z"
                ))
            })
    }
}

fn thirty_seconds() -> Duration {
    Duration::secs(30)
}
fn one_day() -> Duration {
    Duration::secs(86_400)
}
fn roles_claim() -> String {
    "roles".into()
}
fn scopes_claims() -> Vec<String> {
    vec!["scope".into(), "scp".into()]
}
fn token_cache() -> usize {
    10_000
}
