//! Abuse prevention (DESIGN.md §1, the rate-limit phase): rate limits (GCRA) and quotas
//! (sliding window) per consumer, API key, client IP, route, header or claim, kept per
//! process or cluster-wide on Redis; plans; concurrency limits; RFC-draft `RateLimit`
//! headers; shadow mode.
//!
//! [`LimitsPlan::compile`] builds each route's filters once per load. State outlives
//! reloads: local limiters are found again by policy name and the Redis connection by
//! its settings, so a reload neither resets anyone's budget nor reconnects.
#![forbid(unsafe_code)]

pub mod concurrency;
pub mod local;
pub mod policy;
pub mod redis_store;
pub mod window;

pub use rampart_core::gcra;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rampart_config::{
    ConfigError, LimitKey, LimitSpec, LimitStore, PolicyMode, RateLimitSpec, Spec,
};
use rampart_core::{FeaturePlan, Filter, MetricsSource, MetricsText, Mode, StateStore};

use gcra::Gcra;
use local::{Limit, LocalStore};
use policy::{LimitInfo, LimitSet, PolicyMetrics, RateLimit, Store};
use redis_store::RedisStore;

/// Keys held per local policy before idle ones are evicted.
const MAX_KEYS: usize = 200_000;

/// A policy's name, counters and (local policies) state, for `/metrics`.
type PolicyEntry = (Arc<str>, Arc<PolicyMetrics>, Option<Arc<LocalStore>>);

/// Every route's limit filters, plus what `/metrics` shows about them.
pub struct LimitsPlan {
    /// `routes[i]`: the filters of the config's route `i`.
    pub routes: Vec<Vec<Arc<dyn Filter>>>,
    policies: Vec<PolicyEntry>,
    redis: Option<Arc<RedisStore>>,
    limiters: Vec<Arc<RateLimit>>,
    consumers: Vec<Arc<str>>,
    route_names: Vec<Arc<str>>,
}

/// The feature's entry point: every route's limit filters, tagged [`rampart_core::Phase::RateLimit`],
/// and the limits' `/metrics` series.
pub fn compile(
    spec: &Spec,
    base: &Path,
    state: &StateStore,
) -> Result<FeaturePlan, Vec<ConfigError>> {
    let limits = LimitsPlan::compile(spec, base, state)?;
    let metrics = limits.metrics();
    Ok(FeaturePlan {
        routes: limits.routes,
        metrics: vec![metrics],
        ..FeaturePlan::default()
    })
}

/// The state kept for policy `name` (the previous config's, when it had one by that name).
fn local_store(state: &StateStore, name: &str) -> Arc<LocalStore> {
    state.get_or_insert(name, || LocalStore::new(MAX_KEYS))
}

fn policy_metrics(state: &StateStore, name: &str) -> Arc<PolicyMetrics> {
    state.get_or_insert(name, PolicyMetrics::default)
}

/// Compiles a list of limits.
pub fn limit_set(name: &str, specs: &[LimitSpec]) -> LimitSet {
    let mut limits = Vec::new();
    let mut info = Vec::new();
    for s in specs {
        if let Some(r) = s.rate {
            let burst = s.burst.unwrap_or(r.count).max(1);
            limits.push(Limit::Rate(Gcra::new(
                r.count,
                r.period.as_nanos() as u64,
                burst,
            )));
            info.push(LimitInfo {
                quota: r.count,
                window_secs: r.period.as_secs().max(1),
            });
        } else if let Some(q) = s.quota {
            limits.push(Limit::Quota(window::Window {
                limit: q.count,
                window: q.period.as_nanos() as u64,
            }));
            info.push(LimitInfo {
                quota: q.count,
                window_secs: q.period.as_secs().max(1),
            });
        }
    }
    LimitSet {
        policy_header: policy::policy_header(name, &info),
        limits: limits.into(),
        info: info.into(),
    }
}

fn mode(m: PolicyMode) -> Mode {
    match m {
        PolicyMode::Enforce => Mode::Enforce,
        PolicyMode::Shadow => Mode::Shadow,
    }
}

impl LimitsPlan {
    /// Compiles `spec`'s limits; secrets (the Redis password) resolve against `base`.
    pub fn compile(spec: &Spec, base: &Path, state: &StateStore) -> Result<Self, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let redis = match &spec.redis {
            Some(r) => {
                let password = match &r.password {
                    Some(p) => match p.resolve(base) {
                        Ok(s) => Some(s.expose().to_string()),
                        Err(e) => {
                            errs.push(ConfigError::new("redis.password", e));
                            None
                        }
                    },
                    None => None,
                };
                // The connection is kept across reloads while its settings (and the
                // password's value: a rotated password reconnects) stay the same.
                let key = {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    password.hash(&mut h);
                    format!("{r:?}\n{:x}", h.finish())
                };
                match state.get_or_try_insert(&key, || RedisStore::new(r, password, base)) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        errs.push(ConfigError::new("redis.url", e));
                        None
                    }
                }
            }
            None => None,
        };
        // The limits each consumer gets from `by: consumer` policies without own limits.
        let mut consumer_specs: HashMap<Arc<str>, Vec<LimitSpec>> = HashMap::new();
        let mut consumer_concurrency: HashMap<Arc<str>, u64> = HashMap::new();
        for c in &spec.consumers {
            let plan = c.plan.as_ref().and_then(|p| spec.plans.get(p));
            let limits = if !c.limits.is_empty() {
                c.limits.clone()
            } else {
                plan.map(|p| p.limits.clone()).unwrap_or_default()
            };
            if !limits.is_empty() {
                consumer_specs.insert(c.id.as_str().into(), limits);
            }
            if let Some(n) = c.concurrency.or_else(|| plan.and_then(|p| p.concurrency)) {
                consumer_concurrency.insert(c.id.as_str().into(), n);
            }
        }
        // State is found again by policy name: a reload keeps it.
        let mut policies = Vec::new();
        let mut limiters: Vec<Arc<RateLimit>> = Vec::new();
        let mut build = |name: String,
                         p: &RateLimitSpec,
                         errs: &mut Vec<ConfigError>,
                         at: String|
         -> Option<Arc<dyn Filter>> {
            let store = match p.store {
                LimitStore::Local => Store::Local(local_store(state, &name)),
                LimitStore::Redis => match &redis {
                    Some(r) => Store::Redis {
                        redis: r.clone(),
                        consistency: p.consistency,
                        lease: p.lease.max(1),
                        on_error: p.on_store_error,
                        fallback: local_store(state, &format!("{name}\nfallback")),
                        expected_nodes: p.expected_nodes.max(1),
                        leases: Default::default(),
                    },
                    None => {
                        errs.push(ConfigError::new(
                            at,
                            "store: redis needs the top-level redis settings",
                        ));
                        return None;
                    }
                },
            };
            let fixed = (!p.limits.is_empty()).then(|| limit_set(&name, &p.limits));
            let by_consumer = if fixed.is_none() {
                consumer_specs
                    .iter()
                    .map(|(c, l)| (c.clone(), limit_set(&name, l)))
                    .collect()
            } else {
                HashMap::new()
            };
            let metrics = policy_metrics(state, &name);
            let local = match &store {
                Store::Local(s) => Some(s.clone()),
                Store::Redis { .. } => None,
            };
            policies.push((Arc::<str>::from(name.as_str()), metrics.clone(), local));
            let limiter = Arc::new(RateLimit {
                name: name.into(),
                by: p.by.clone(),
                fixed,
                by_consumer,
                store,
                mode: mode(p.mode),
                cost: p.cost.max(1),
                headers: p.headers,
                metrics,
                v6_prefix: spec.limits.ipv6_prefix,
            });
            limiters.push(limiter.clone());
            Some(limiter)
        };
        let mut global = Vec::new();
        for (i, p) in spec.rate_limits.iter().enumerate() {
            let name = p.name.clone().unwrap_or_else(|| format!("global-{i}"));
            if let Some(f) = build(name, p, &mut errs, format!("rate_limits[{i}].store")) {
                global.push(f);
            }
        }
        let mut routes = Vec::with_capacity(spec.routes.len());
        for (i, r) in spec.routes.iter().enumerate() {
            let mut filters = global.clone();
            if let Some(p) = &r.rate_limit {
                let name = p.name.clone().unwrap_or_else(|| r.name.clone());
                if let Some(f) = build(name, p, &mut errs, format!("routes[{i}].rate_limit.store"))
                {
                    filters.push(f);
                }
            }
            if let Some(c) = &r.concurrency {
                let per = if c.by == LimitKey::Consumer {
                    consumer_concurrency.clone()
                } else {
                    HashMap::new()
                };
                filters.push(Arc::new(concurrency::Concurrency::new(
                    c.by.clone(),
                    c.max,
                    per,
                    mode(r.auth_mode),
                )));
            }
            routes.push(filters);
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            routes,
            policies,
            redis,
            limiters,
            consumers: spec
                .consumers
                .iter()
                .map(|c| c.id.as_str().into())
                .collect(),
            route_names: spec.routes.iter().map(|r| r.name.as_str().into()).collect(),
        })
    }

    /// The metrics source for `/metrics`.
    pub fn metrics(&self) -> Arc<dyn MetricsSource> {
        Arc::new(LimitsMetrics {
            policies: self.policies.clone(),
            redis: self.redis.clone(),
            limiters: self.limiters.clone(),
            consumers: self.consumers.clone(),
            route_names: self.route_names.clone(),
        })
    }
}

struct LimitsMetrics {
    policies: Vec<PolicyEntry>,
    redis: Option<Arc<RedisStore>>,
    limiters: Vec<Arc<RateLimit>>,
    consumers: Vec<Arc<str>>,
    route_names: Vec<Arc<str>>,
}

impl MetricsSource for LimitsMetrics {
    /// How much of each limit each consumer has used, closest to its limit first.
    fn callers(&self, max: usize) -> Vec<rampart_core::CallerRow> {
        let mut rows: Vec<rampart_core::CallerRow> = self
            .limiters
            .iter()
            .flat_map(|l| l.usage(&self.consumers, &self.route_names))
            .collect();
        rows.sort_by(|a, b| b.level.total_cmp(&a.level));
        rows.truncate(max);
        rows
    }

    fn render(&self, out: &mut MetricsText) {
        out.family(
            "rampart_rate_limit_decisions_total",
            "counter",
            "Rate-limit decisions, by policy and outcome.",
        );
        for (name, m, _) in &self.policies {
            for (i, o) in policy::OUTCOMES.iter().enumerate() {
                out.sample(
                    "rampart_rate_limit_decisions_total",
                    &[("policy", name), ("outcome", o)],
                    m.decisions[i].load(Ordering::Relaxed),
                );
            }
        }
        out.family(
            "rampart_rate_limit_lease_refills_total",
            "counter",
            "Batched mode: leases taken from Redis.",
        );
        for (name, m, _) in &self.policies {
            out.sample(
                "rampart_rate_limit_lease_refills_total",
                &[("policy", name)],
                m.lease_refills.load(Ordering::Relaxed),
            );
        }
        out.family(
            "rampart_rate_limit_keys",
            "gauge",
            "Client keys held by a local limiter.",
        );
        for (name, _, local) in &self.policies {
            if let Some(l) = local {
                out.sample(
                    "rampart_rate_limit_keys",
                    &[("policy", name)],
                    l.len() as u64,
                );
            }
        }
        if let Some(r) = &self.redis {
            let m = &r.metrics;
            let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            for (name, help, value) in [
                (
                    "rampart_redis_calls_total",
                    "Calls to Redis.",
                    load(&m.calls),
                ),
                (
                    "rampart_redis_errors_total",
                    "Failed or timed-out Redis calls.",
                    load(&m.errors),
                ),
                (
                    "rampart_redis_breaker_opened_total",
                    "Times the Redis breaker opened.",
                    load(&m.breaker_opened),
                ),
                (
                    "rampart_redis_short_circuited_total",
                    "Decisions made without calling Redis because the breaker was open.",
                    load(&m.short_circuited),
                ),
            ] {
                out.family(name, "counter", help);
                out.sample(name, &[], value);
            }
            out.family(
                "rampart_redis_latency_seconds",
                "histogram",
                "Redis call latency.",
            );
            let counts: Vec<u64> = m.latency.iter().map(load).collect();
            out.histogram(
                "rampart_redis_latency_seconds",
                &[],
                &redis_store::LATENCY_BUCKETS,
                &counts,
                load(&m.calls),
                load(&m.latency_sum_us) as f64 / 1e6,
            );
        }
    }
}
