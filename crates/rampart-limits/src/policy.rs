//! A compiled rate-limit policy and the filter that applies it to a route.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderName, HeaderValue};
use rampart_config::{Consistency, LimitKey, OnStoreError};
use rampart_core::CallerRow;
use rampart_core::{Denial, Filter, Flow, Mode, Outcome, Phase, Reason, RequestCtx};

use crate::local::{Check, Limit, LocalStore};
use crate::redis_store::{grant_check, RedisStore};

/// Outcome labels of the decision metric.
pub const OUTCOMES: [&str; 4] = ["allowed", "limited", "shadow_limited", "store_error"];

/// Counters of one policy.
#[derive(Default)]
pub struct PolicyMetrics {
    pub decisions: [AtomicU64; 4],
    pub lease_refills: AtomicU64,
}

/// One limit as configured, for headers: `"name";q=…;w=…`.
#[derive(Debug, Clone)]
pub struct LimitInfo {
    pub quota: u64,
    pub window_secs: u64,
}

/// The limits that apply to a request, with their header names.
#[derive(Clone)]
pub struct LimitSet {
    pub limits: Arc<[Limit]>,
    pub info: Arc<[LimitInfo]>,
    /// The rendered `RateLimit-Policy` value.
    pub policy_header: HeaderValue,
}

/// Batched mode: a node's lease for one client key.
#[derive(Default)]
pub struct Lease {
    units: u64,
    /// Nanoseconds (the fallback store's clock) when unspent units lapse.
    until: u64,
    /// Set while one request refills from Redis; the others wait on it.
    refill: Option<Arc<tokio::sync::Notify>>,
    /// Redis refused the last refill: refuse locally until then.
    denied_until: u64,
}

/// Batched mode: leases per client key.
pub type Leases = Mutex<HashMap<Vec<u8>, Lease>>;

/// Where the state lives.
pub enum Store {
    Local(Arc<LocalStore>),
    Redis {
        redis: Arc<RedisStore>,
        consistency: Consistency,
        lease: u64,
        on_error: OnStoreError,
        /// Per-node fallback state (limits divided by `expected_nodes`).
        fallback: Arc<LocalStore>,
        expected_nodes: u64,
        /// Batched mode: units leased per client key and when the lease ends (ns on the
        /// fallback store's clock).
        leases: Arc<Leases>,
    },
}

/// A rate-limit policy on a route.
pub struct RateLimit {
    pub name: Arc<str>,
    pub by: Vec<LimitKey>,
    /// Fixed limits, or `None` for "the consumer's limits" (looked up in `by_consumer`).
    pub fixed: Option<LimitSet>,
    pub by_consumer: HashMap<Arc<str>, LimitSet>,
    pub store: Store,
    pub mode: Mode,
    pub cost: u64,
    pub headers: bool,
    pub metrics: Arc<PolicyMetrics>,
    /// IPv6 clients are keyed by this prefix.
    pub v6_prefix: u8,
}

static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

impl RateLimit {
    /// The client address a key counts by (IPv6 by `limits.ipv6_prefix`).
    fn client(&self, cx: &RequestCtx<'_>) -> std::net::IpAddr {
        rampart_core::client_bucket(cx.client_ip, self.v6_prefix)
    }

    /// How much of its limits each of `consumers` has used (policies kept in this
    /// process, counted by consumer alone or by consumer and route); consumers that used
    /// none are left out.
    pub fn usage(&self, consumers: &[Arc<str>], routes: &[Arc<str>]) -> Vec<CallerRow> {
        let Store::Local(store) = &self.store else {
            return Vec::new();
        };
        let by_route = self.by.contains(&LimitKey::Route);
        if !self.by.contains(&LimitKey::Consumer)
            || self
                .by
                .iter()
                .any(|b| !matches!(b, LimitKey::Consumer | LimitKey::Route))
        {
            return Vec::new();
        }
        let scopes: Vec<Option<&str>> = if by_route {
            routes.iter().map(|r| Some(&**r)).collect()
        } else {
            vec![None]
        };
        let mut rows = Vec::new();
        for c in consumers {
            let Some(set) = self.fixed.as_ref().or_else(|| self.by_consumer.get(c)) else {
                continue;
            };
            for route in &scopes {
                let mut key = self.name.as_bytes().to_vec();
                for part in &self.by {
                    key.push(0x1f);
                    match part {
                        LimitKey::Consumer => key.extend_from_slice(c.as_bytes()),
                        _ => key.extend_from_slice(route.unwrap_or("").as_bytes()),
                    }
                }
                let Some(checks) = store.peek(&key, &set.limits) else {
                    continue;
                };
                for (check, info) in checks.iter().zip(set.info.iter()) {
                    let used = info.quota.saturating_sub(check.remaining);
                    rows.push(CallerRow {
                        caller: format!("consumer:{c}"),
                        scope: match route {
                            Some(r) => format!("{} on {r}", self.name),
                            None => self.name.to_string(),
                        },
                        source: "rate limit",
                        detail: format!("{used} of {} per {} s used", info.quota, info.window_secs),
                        level: used as f64 / info.quota.max(1) as f64,
                    });
                }
            }
        }
        rows
    }

    /// The client key: the `by` parts joined, prefixed with the policy name.
    fn key(&self, cx: &RequestCtx<'_>) -> Vec<u8> {
        let mut k = Vec::with_capacity(64);
        k.extend_from_slice(self.name.as_bytes());
        for part in &self.by {
            k.push(0x1f);
            match part {
                LimitKey::Ip => {
                    let _ = write!(ByteWriter(&mut k), "{}", self.client(cx));
                }
                LimitKey::Route => k.extend_from_slice(cx.route.as_bytes()),
                LimitKey::Consumer => {
                    match cx.identity.as_ref().and_then(|i| i.consumer.as_deref()) {
                        Some(c) => k.extend_from_slice(c.as_bytes()),
                        // Anonymous callers share nothing: each counts by its address.
                        None => {
                            let _ = write!(ByteWriter(&mut k), "anon:{}", self.client(cx));
                        }
                    }
                }
                LimitKey::ApiKey => match cx.identity.as_ref() {
                    Some(i) if i.method == "api_key" => {
                        k.extend_from_slice(i.credential.as_deref().unwrap_or("").as_bytes())
                    }
                    _ => {
                        let _ = write!(ByteWriter(&mut k), "anon:{}", self.client(cx));
                    }
                },
                LimitKey::Header(h) => {
                    if let Some(v) = cx.head.headers.get(h.as_str()) {
                        k.extend_from_slice(v.as_bytes());
                    }
                }
                LimitKey::Claim(c) => {
                    if let Some(v) = cx.identity.as_ref().and_then(|i| i.attributes.get(c)) {
                        match v {
                            serde_json::Value::String(s) => k.extend_from_slice(s.as_bytes()),
                            other => {
                                let _ = write!(ByteWriter(&mut k), "{other}");
                            }
                        }
                    }
                }
            }
        }
        k
    }

    fn limits_for(&self, cx: &RequestCtx<'_>) -> Option<&LimitSet> {
        if let Some(f) = &self.fixed {
            return Some(f);
        }
        let c = cx.identity.as_ref()?.consumer.as_deref()?;
        self.by_consumer.get(c)
    }

    fn count(&self, outcome: usize) {
        self.metrics.decisions[outcome].fetch_add(1, Ordering::Relaxed);
    }

    /// Applies the checks: records the decision, sets headers, answers 429 when needed.
    fn conclude(&self, cx: &mut RequestCtx<'_>, set: &LimitSet, checks: &[Check]) -> Flow {
        // The strictest limit is the one with the least left (or, refused, the longest wait).
        let refused = checks
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.allowed)
            .max_by_key(|(_, c)| c.retry_after);
        let (idx, strictest) = match refused {
            Some(r) => r,
            None => match checks.iter().enumerate().min_by_key(|(_, c)| c.remaining) {
                Some(c) => c,
                None => return Flow::Continue,
            },
        };
        if refused.is_none() && !self.headers {
            self.count(0);
            return Flow::Continue;
        }
        let mut rl = String::with_capacity(48);
        let _ = write!(
            rl,
            "\"{}\";r={};t={}",
            sf_name(&self.name, idx),
            strictest.remaining,
            secs_ceil(strictest.reset)
        );
        let rl = HeaderValue::from_str(&rl).ok();
        if refused.is_none() {
            self.count(0);
            if self.headers {
                cx.response_headers
                    .push((RATELIMIT_POLICY.clone(), set.policy_header.clone()));
                if let Some(v) = rl {
                    cx.response_headers.push((RATELIMIT.clone(), v));
                }
            }
            return Flow::Continue;
        }
        let quota = matches!(set.limits[idx], Limit::Quota(_));
        if self.mode == Mode::Shadow {
            self.count(2);
            cx.record(Reason::RateShadow, Outcome::ShadowDeny);
            return Flow::Continue;
        }
        self.count(1);
        let reason = if quota {
            Reason::QuotaExceeded
        } else {
            Reason::RateLimited
        };
        cx.record(reason, Outcome::Deny);
        cx.response_headers
            .push((RATELIMIT_POLICY.clone(), set.policy_header.clone()));
        if let Some(v) = rl {
            cx.response_headers.push((RATELIMIT.clone(), v));
        }
        let retry = secs_ceil(strictest.retry_after).max(1);
        let mut denial = Denial::new(reason);
        if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
            denial = denial.with_header(http::header::RETRY_AFTER, v);
        }
        Flow::Deny(denial)
    }

    /// A new client key found no room in the local state: refused (fail closed; counted
    /// as a store error), since admitting it unlimited would be the bypass.
    fn state_full(&self, cx: &mut RequestCtx<'_>) -> Flow {
        self.count(3);
        if self.mode == Mode::Shadow {
            cx.record(Reason::LimitStateFull, Outcome::ShadowDeny);
            return Flow::Continue;
        }
        cx.record(Reason::LimitStateFull, Outcome::Deny);
        Flow::Deny(Denial::new(Reason::LimitStateFull))
    }

    fn store_failed(&self, cx: &mut RequestCtx<'_>, set: &LimitSet, key: &[u8], err: &str) -> Flow {
        let Store::Redis {
            on_error,
            fallback,
            expected_nodes,
            ..
        } = &self.store
        else {
            return Flow::Continue;
        };
        self.count(3);
        tracing::debug!(policy = %self.name, error = err, "rate limit store error");
        match on_error {
            OnStoreError::Allow => {
                cx.record(Reason::LimitStoreError, Outcome::Allow);
                Flow::Continue
            }
            OnStoreError::Deny => {
                cx.record(Reason::LimitStoreError, Outcome::Deny);
                Flow::Deny(Denial::new(Reason::LimitStoreError))
            }
            OnStoreError::Local => {
                let scaled: Vec<Limit> = set
                    .limits
                    .iter()
                    .map(|l| l.scaled(*expected_nodes))
                    .collect();
                match fallback.check(key, &scaled, self.cost) {
                    Ok(checks) => self.conclude(cx, set, &checks),
                    Err(_) => self.state_full(cx),
                }
            }
        }
    }
}

/// Ends a lease refill: clears the in-flight mark and wakes the requests waiting on it.
struct RefillGuard<'a> {
    leases: &'a Leases,
    key: &'a [u8],
}

impl Drop for RefillGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let refill = map.get_mut(self.key).and_then(|l| l.refill.take());
        drop(map);
        if let Some(n) = refill {
            n.notify_waiters();
        }
    }
}

/// Structured-field token for a policy: `<name>` or `<name>-<i>` for the i-th limit.
fn sf_name(name: &str, i: usize) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if i == 0 {
        clean
    } else {
        format!("{clean}-{i}")
    }
}

/// Renders `RateLimit-Policy` for a limit set of policy `name`.
pub fn policy_header(name: &str, info: &[LimitInfo]) -> HeaderValue {
    let v: Vec<String> = info
        .iter()
        .enumerate()
        .map(|(i, l)| format!("\"{}\";q={};w={}", sf_name(name, i), l.quota, l.window_secs))
        .collect();
    HeaderValue::from_str(&v.join(", ")).unwrap_or(HeaderValue::from_static(""))
}

fn secs_ceil(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000)
}

struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Redis keys for one client: one per limit, all with the same hash tag.
fn redis_keys(key: &[u8], n: usize) -> Vec<String> {
    let mut tag = String::with_capacity(key.len() + 8);
    for b in key {
        match *b {
            b'{' | b'}' | b'%' => {
                let _ = write!(tag, "%{b:02X}");
            }
            0x1f => tag.push('|'),
            b if b.is_ascii_graphic() => tag.push(b as char),
            b => {
                let _ = write!(tag, "%{b:02X}");
            }
        }
    }
    (0..n)
        .map(|i| format!("rampart:rl:{{{tag}}}:{i}"))
        .collect()
}

impl Filter for RateLimit {
    fn phase(&self) -> Phase {
        Phase::RateLimit
    }

    fn name(&self) -> &'static str {
        "rate_limit"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        let Some(set) = self.limits_for(cx) else {
            return Flow::Continue;
        };
        let key = self.key(cx);
        match &self.store {
            Store::Local(s) => match s.check(&key, &set.limits, self.cost) {
                Ok(checks) => self.conclude(cx, set, &checks),
                Err(_) => self.state_full(cx),
            },
            // Redis-backed policies take the async path.
            Store::Redis { .. } => Flow::Continue,
        }
    }

    fn is_async(&self) -> bool {
        matches!(self.store, Store::Redis { .. })
    }

    fn on_request_async<'a>(
        &'a self,
        cx: &'a mut RequestCtx<'_>,
    ) -> Pin<Box<dyn std::future::Future<Output = Flow> + Send + 'a>> {
        Box::pin(async move {
            let Some(set) = self.limits_for(cx) else {
                return Flow::Continue;
            };
            let key = self.key(cx);
            let Store::Redis {
                redis,
                consistency,
                lease,
                fallback,
                leases,
                ..
            } = &self.store
            else {
                // Only Redis-backed policies are async; a local one decides synchronously.
                return self.on_request(cx);
            };
            match consistency {
                Consistency::Exact => {
                    let keys = redis_keys(&key, set.limits.len());
                    match redis.take(&keys, &set.limits, self.cost, self.cost).await {
                        Ok(g) => self.conclude(cx, set, &[grant_check(&g, self.cost)]),
                        Err(e) => self.store_failed(cx, set, &key, &e.to_string()),
                    }
                }
                Consistency::Batched => {
                    // One refill per key per node at a time: the others wait for it and
                    // then spend its units, so a burst of requests costs one round trip
                    // and no leased unit is stranded.
                    let deadline = fallback.now() + 1_000_000_000;
                    loop {
                        let now = fallback.now();
                        if now > deadline {
                            break;
                        }
                        let notify = {
                            let mut map = leases.lock().unwrap_or_else(|p| p.into_inner());
                            if map.len() > 100_000 {
                                map.retain(|_, l| l.until > now || l.refill.is_some());
                            }
                            // The common case (a live lease) allocates nothing.
                            if !map.contains_key(key.as_slice()) {
                                map.insert(key.clone(), Lease::default());
                            }
                            let Some(l) = map.get_mut(key.as_slice()) else {
                                continue;
                            };
                            if l.until > now && l.units >= self.cost {
                                l.units -= self.cost;
                                let check = Check {
                                    allowed: true,
                                    remaining: l.units,
                                    retry_after: 0,
                                    reset: l.until - now,
                                };
                                drop(map);
                                return self.conclude(cx, set, &[check]);
                            }
                            if l.denied_until > now {
                                // The last refill was refused: so is this request, without
                                // asking Redis again.
                                let check = Check {
                                    allowed: false,
                                    remaining: 0,
                                    retry_after: l.denied_until - now,
                                    reset: l.denied_until - now,
                                };
                                drop(map);
                                return self.conclude(cx, set, &[check]);
                            }
                            match &l.refill {
                                Some(n) => Some(n.clone()),
                                None => {
                                    l.refill = Some(Arc::new(tokio::sync::Notify::new()));
                                    None
                                }
                            }
                        };
                        if let Some(n) = notify {
                            // A refill is in flight: wait for it (bounded), then look again.
                            let _ = tokio::time::timeout(
                                std::time::Duration::from_millis(200),
                                n.notified(),
                            )
                            .await;
                            continue;
                        }
                        // Whatever happens to this request from here (even its future
                        // being dropped because the client left), the guard ends the
                        // refill and wakes the waiters.
                        let guard = RefillGuard { leases, key: &key };
                        self.metrics.lease_refills.fetch_add(1, Ordering::Relaxed);
                        let want = (*lease).max(self.cost);
                        let keys = redis_keys(&key, set.limits.len());
                        let result = redis.take(&keys, &set.limits, want, self.cost).await;
                        {
                            let mut map = leases.lock().unwrap_or_else(|p| p.into_inner());
                            let l = map.entry(key.clone()).or_default();
                            if let Ok(g) = &result {
                                if g.granted < self.cost {
                                    let wait = (g.retry_after_us * 1000).clamp(1, 1_000_000_000);
                                    l.denied_until = fallback.now() + wait;
                                } else {
                                    let now = fallback.now();
                                    if l.until <= now {
                                        l.units = 0;
                                    }
                                    // A lease lives at most a second.
                                    l.units += g.granted - self.cost;
                                    l.until = now + 1_000_000_000;
                                }
                            }
                        }
                        drop(guard);
                        return match result {
                            Ok(g) => self.conclude(cx, set, &[grant_check(&g, self.cost)]),
                            Err(e) => self.store_failed(cx, set, &key, &e.to_string()),
                        };
                    }
                    // Waited a second without getting units: refuse.
                    let check = Check {
                        allowed: false,
                        remaining: 0,
                        retry_after: 1_000_000_000,
                        reset: 1_000_000_000,
                    };
                    self.conclude(cx, set, &[check])
                }
            }
        })
    }
}
