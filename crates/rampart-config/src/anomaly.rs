//! `anomaly`: anomaly detection on live traffic (kept by `rampart-monitor`), and
//! `routes[].anomaly`, a route's part in it.

use serde::{Deserialize, Serialize};

use crate::units::Duration;
use crate::{ConfigError, LimitStore, Rate, Spec};

/// Per consumer and route, the signals of each window scored against the consumer's own
/// baseline; what happens to a consumer whose window scores over the threshold.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnomalySpec {
    /// What a flag does: `shadow` (recorded: log line, metric, audit entry), `alert`
    /// (also at warning level and to the `export` sinks), `throttle` (also limits the
    /// caller to `throttle` for `duration`), `ban` (also refuses the caller for
    /// `duration`).
    #[serde(default)]
    pub action: AnomalyAction,
    /// How long a window lasts (default 1m).
    #[serde(default = "one_minute")]
    pub window: Duration,
    /// Windows a baseline learns before it scores (default 10).
    #[serde(default = "ten")]
    pub warmup: u32,
    /// A signal this many standard deviations over its baseline flags the window
    /// (default 6).
    #[serde(default = "six")]
    pub threshold: f64,
    /// The signals scored (default all): `requests`, `auth_failures` (401, 403 and 404
    /// answers), `response_bytes`, `distinct_ids` (distinct values of the route's id
    /// parameter).
    #[serde(default = "all_signals")]
    pub signals: Vec<Signal>,
    /// How long a throttle or ban lasts (default 15m).
    #[serde(default = "fifteen_minutes")]
    pub duration: Duration,
    /// A throttled caller's rate (default `1/s`).
    #[serde(default = "one_per_second")]
    pub throttle: Rate,
    /// Requests a throttled caller may send at once (default 5).
    #[serde(default = "five")]
    pub throttle_burst: u64,
    /// Consumers never throttled or banned (their flags are still recorded).
    #[serde(default)]
    pub exempt_consumers: Vec<String>,
    /// Callers (consumer, or client address when unidentified) and routes tracked at
    /// most; past it, the longest idle is forgotten (default 100,000; about 400 bytes
    /// each).
    #[serde(default = "hundred_thousand")]
    pub max_tracked: usize,
    /// `local` (default): throttles and bans hold on this instance. `redis`: also
    /// shared with every instance through `redis` (seen within a second).
    #[serde(default)]
    pub store: LimitStore,
}

/// What a flagged window does (ordered: each does what the ones before it do).
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Default, Hash,
)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyAction {
    #[default]
    Shadow,
    Alert,
    Throttle,
    Ban,
}

impl AnomalyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyAction::Shadow => "shadow",
            AnomalyAction::Alert => "alert",
            AnomalyAction::Throttle => "throttle",
            AnomalyAction::Ban => "ban",
        }
    }
}

/// One scored signal of a window.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Requests,
    AuthFailures,
    ResponseBytes,
    DistinctIds,
}

/// A route's part in anomaly detection.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteAnomalySpec {
    /// Watch this route (default true when `anomaly` is set).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The path parameter holding the object id whose distinct values are counted
    /// (default: the last `{name}` of `match.path`).
    #[serde(default)]
    pub id_param: Option<String>,
}

fn yes() -> bool {
    true
}
fn ten() -> u32 {
    10
}
fn five() -> u64 {
    5
}
fn six() -> f64 {
    6.0
}
fn hundred_thousand() -> usize {
    100_000
}
fn one_minute() -> Duration {
    Duration(std::time::Duration::from_secs(60))
}
fn fifteen_minutes() -> Duration {
    Duration(std::time::Duration::from_secs(900))
}
fn one_per_second() -> Rate {
    Rate {
        count: 1,
        period: std::time::Duration::from_secs(1),
    }
}
fn all_signals() -> Vec<Signal> {
    vec![
        Signal::Requests,
        Signal::AuthFailures,
        Signal::ResponseBytes,
        Signal::DistinctIds,
    ]
}

/// The `{name}` parameters of a route pattern, in order (catch-alls excluded).
pub fn path_params(pattern: &str) -> impl Iterator<Item = &str> {
    pattern
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .filter(|n| !n.starts_with('*'))
}

pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    let mut err = |path: &str, reason: String| errs.push(ConfigError::new(path, reason));
    if let Some(a) = &spec.anomaly {
        let w = a.window.get();
        if w < std::time::Duration::from_secs(1) || w > std::time::Duration::from_secs(86_400) {
            err(
                "anomaly.window",
                "must be between 1s and 24h (whole seconds)".into(),
            );
        }
        if !(2..=1000).contains(&a.warmup) {
            err(
                "anomaly.warmup",
                "must be between 2 and 1000 windows".into(),
            );
        }
        if !a.threshold.is_finite() || !(2.0..=1000.0).contains(&a.threshold) {
            err(
                "anomaly.threshold",
                "must be between 2 and 1000 standard deviations".into(),
            );
        }
        if a.signals.is_empty() {
            err("anomaly.signals", "name at least one signal".into());
        }
        if a.duration.get() < std::time::Duration::from_secs(1) {
            err("anomaly.duration", "must be at least 1s".into());
        }
        if a.throttle_burst == 0 {
            err("anomaly.throttle_burst", "must be at least 1".into());
        }
        if !(100..=10_000_000).contains(&a.max_tracked) {
            err(
                "anomaly.max_tracked",
                "must be between 100 and 10,000,000".into(),
            );
        }
        if a.store == LimitStore::Redis && spec.redis.is_none() {
            err(
                "anomaly.store",
                "`redis` needs the top-level `redis` setting".into(),
            );
        }
        for (i, c) in a.exempt_consumers.iter().enumerate() {
            if !spec.consumers.iter().any(|k| &k.id == c) && spec.consumer_store.is_none() {
                err(
                    &format!("anomaly.exempt_consumers[{i}]"),
                    format!("no consumer `{c}`"),
                );
            }
        }
    }
    for (i, r) in spec.routes.iter().enumerate() {
        let Some(ra) = &r.anomaly else { continue };
        if spec.anomaly.is_none() {
            err(
                &format!("routes[{i}].anomaly"),
                "needs the top-level `anomaly` setting".into(),
            );
            continue;
        }
        if let Some(p) = &ra.id_param {
            let pattern = r.matcher.path.as_deref().unwrap_or("");
            if !path_params(pattern).any(|n| n == p) {
                err(
                    &format!("routes[{i}].anomaly.id_param"),
                    format!("`{p}` is not a `{{name}}` parameter of match.path"),
                );
            }
        }
    }
}
