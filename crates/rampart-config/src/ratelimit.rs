//! The abuse-prevention part of the config: rate limits and quotas (`rate_limit` on a
//! route, `rate_limits` for every route), plans, concurrency limits, and the Redis store
//! for cluster-wide limits.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::units::Duration;
use crate::{PolicyMode, SecretRef};

/// `N/unit` or `N/<duration>`: `10/s`, `600/min`, `1000/hour`, `1000000/day`,
/// `5000000/month` (30 days), `100/10s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u64,
    pub period: std::time::Duration,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.period.as_secs();
        let unit = match s {
            1 => "s".to_string(),
            60 => "min".to_string(),
            3600 => "hour".to_string(),
            86_400 => "day".to_string(),
            2_592_000 => "month".to_string(),
            _ => humantime::format_duration(self.period).to_string(),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid rate {s:?}: write e.g. 10/s, 600/min, 1000/hour, 1000000/day or 100/10s"
            )
        };
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("invalid rate {s:?}: the count must be at least 1"));
        }
        let secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            "month" => 2_592_000,
            other => {
                let d = humantime::parse_duration(other).map_err(|_| bad())?;
                if d.is_zero() {
                    return Err(bad());
                }
                return Ok(Rate { count, period: d });
            }
        };
        Ok(Rate {
            count,
            period: std::time::Duration::from_secs(secs),
        })
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// One limit: a smooth rate with a burst (GCRA), or a quota over a window (sliding
/// window counter). Exactly one of `rate` / `quota`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    #[serde(default)]
    pub rate: Option<Rate>,
    /// Requests admitted at once (default: the rate's count, at least 1).
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub quota: Option<Rate>,
}

/// What a limit counts by. Several parts form one combined key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    Consumer,
    ApiKey,
    Ip,
    Route,
    Header(String),
    Claim(String),
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitKey::Consumer => f.write_str("consumer"),
            LimitKey::ApiKey => f.write_str("api_key"),
            LimitKey::Ip => f.write_str("ip"),
            LimitKey::Route => f.write_str("route"),
            LimitKey::Header(h) => write!(f, "header:{h}"),
            LimitKey::Claim(c) => write!(f, "claim:{c}"),
        }
    }
}

impl Serialize for LimitKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LimitKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "consumer" => LimitKey::Consumer,
            "api_key" => LimitKey::ApiKey,
            "ip" => LimitKey::Ip,
            "route" => LimitKey::Route,
            other => match other.split_once(':') {
                Some(("header", h)) if !h.is_empty() => LimitKey::Header(h.to_ascii_lowercase()),
                Some(("claim", c)) if !c.is_empty() => LimitKey::Claim(c.to_string()),
                _ => {
                    return Err(de::Error::custom(format!(
                        "unknown limit key {s:?}: use consumer, api_key, ip, route, header:NAME or claim:NAME"
                    )))
                }
            },
        })
    }
}

/// Keys may be written as one value (`by: ip`) or a list (`by: [consumer, route]`).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LimitKey>, D::Error> {
    struct V;
    impl<'de> de::Visitor<'de> for V {
        type Value = Vec<LimitKey>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a limit key (consumer, api_key, ip, route, header:NAME, claim:NAME) or a list of them")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            LimitKey::deserialize(de::value::StrDeserializer::<E>::new(v)).map(|k| vec![k])
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(k) = seq.next_element::<LimitKey>()? {
                out.push(k);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// Where limit state lives.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimitStore {
    /// Per gateway process.
    #[default]
    Local,
    /// Shared by every instance through `redis`.
    Redis,
}

/// How Redis-backed limits trade accuracy for round trips.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// One atomic script per decision: never over the limit.
    Exact,
    /// Each node leases `lease` units at a time and decides locally.
    #[default]
    Batched,
}

/// What a Redis-backed limit does when Redis cannot answer.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    Allow,
    Deny,
    /// Per-node limits at `limit / expected_nodes`.
    #[default]
    Local,
}

/// A rate-limit policy.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Name in metrics and logs (default: derived from the route and position).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(deserialize_with = "one_or_many")]
    pub by: Vec<LimitKey>,
    /// The limits; all apply, the strictest wins. Empty with `by: consumer` = the
    /// consumer's own limits or its plan's.
    #[serde(default)]
    pub limits: Vec<LimitSpec>,
    #[serde(default)]
    pub store: LimitStore,
    #[serde(default)]
    pub consistency: Consistency,
    /// Units a node leases at a time in `batched` mode.
    #[serde(default = "ten")]
    pub lease: u64,
    #[serde(default)]
    pub on_store_error: OnStoreError,
    /// Gateway instances sharing the limit (for `on_store_error: local`).
    #[serde(default = "one")]
    pub expected_nodes: u64,
    #[serde(default)]
    pub mode: PolicyMode,
    /// Units one request costs.
    #[serde(default = "one")]
    pub cost: u64,
    /// Send `RateLimit` / `RateLimit-Policy` on admitted responses too (429s always
    /// carry them).
    #[serde(default = "yes")]
    pub headers: bool,
}

/// Max in-flight requests.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySpec {
    pub max: u64,
    /// `route` (one counter for the route) or `consumer` (one per consumer).
    #[serde(default = "route_key")]
    pub by: LimitKey,
}

/// A named tier of limits.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    #[serde(default)]
    pub limits: Vec<LimitSpec>,
    /// Max in-flight requests per consumer on routes with `concurrency: { by: consumer }`.
    #[serde(default)]
    pub concurrency: Option<u64>,
}

/// The Redis deployment shared by every instance.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// `redis://host:port` or `rediss://` (TLS). For a cluster, any node.
    pub url: String,
    /// Treat `url` (and `nodes`) as a Redis Cluster.
    #[serde(default)]
    pub cluster: bool,
    /// More cluster seed nodes.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// The ACL user name (Redis 6+); the URL itself must not carry credentials.
    #[serde(default)]
    pub username: Option<String>,
    /// The password, as a secret reference (never in the URL).
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// CA bundle (PEM) that signs the Redis server certificate, for `rediss://` URLs;
    /// default: the system roots.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Timeout of one call.
    #[serde(default = "fifty_ms")]
    pub timeout: Duration,
    /// Consecutive failures that open the breaker (no calls while open).
    #[serde(default = "three")]
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe call.
    #[serde(default = "two_seconds")]
    pub breaker_cooldown: Duration,
}

/// The types of `limits` that concern connections, not requests.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRateSpec {
    pub rate: Rate,
    #[serde(default)]
    pub burst: Option<u64>,
}

/// Plans by name.
pub type Plans = BTreeMap<String, PlanSpec>;

fn ten() -> u64 {
    10
}
fn one() -> u64 {
    1
}
fn three() -> u32 {
    3
}
fn yes() -> bool {
    true
}
fn route_key() -> LimitKey {
    LimitKey::Route
}
fn fifty_ms() -> Duration {
    Duration::millis(50)
}
fn two_seconds() -> Duration {
    Duration::secs(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        let r: Rate = "10/s".parse().unwrap();
        assert_eq!((r.count, r.period.as_secs()), (10, 1));
        assert_eq!("1000/hour".parse::<Rate>().unwrap().period.as_secs(), 3600);
        assert_eq!("5/10s".parse::<Rate>().unwrap().period.as_secs(), 10);
        assert!("0/s".parse::<Rate>().is_err());
        assert!("ten/s".parse::<Rate>().is_err());
        assert!("10/fortnight".parse::<Rate>().is_err());
    }
}
