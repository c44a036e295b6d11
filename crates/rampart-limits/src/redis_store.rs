//! Cluster-wide limits on Redis.
//!
//! One Lua script decides atomically for every limit of a policy, with Redis's own clock
//! (`TIME`), so instances with skewed clocks still agree. It takes up to `want` units if
//! at least `min` are available under every limit, and commits nothing otherwise:
//!
//! - `exact` asks for `want = min = cost`: one round trip per decision, and the cluster
//!   never admits more than the limit;
//! - `batched` asks for a lease (`want = lease`, `min = cost`) and spends it locally
//!   until it is used up or a second passes. Units are taken from Redis before they are
//!   spent, so Redis's count is never exceeded; but units leased near the end of a window
//!   may be spent in the next one, so in any window the cluster admits at most
//!   `limit + nodes × lease` (and, when leases expire unused, as few as
//!   `limit − nodes × lease`).
//!
//! All keys of one client of one policy share a hash tag (`{policy:client}`), so in a
//! Redis Cluster they live in one slot and the script may touch them all.
//!
//! A breaker stops calls after `breaker_failures` consecutive failures, for
//! `breaker_cooldown`; then one probe decides whether Redis is back. Transitions are
//! logged and counted.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::local::{Check, Limit};

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local want = tonumber(ARGV[1])
local min = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local avail = want
local retry = 0
local reset = 0
local st = {}
for i = 1, n do
  local kind = tonumber(ARGV[1 + 3 * i])
  local p1 = tonumber(ARGV[2 + 3 * i])
  local p2 = tonumber(ARGV[3 + 3 * i])
  if kind == 1 then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    local a = math.floor((p2 - (tat - now)) / p1)
    if a < avail then avail = a end
    if a < min then
      local r = tat + min * p1 - now - p2
      if r > retry then retry = r end
    end
    if tat - now > reset then reset = tat - now end
    st[i] = tat
  else
    local h = redis.call('HMGET', KEYS[i], 'i', 'c', 'p')
    local idx = math.floor(now / p2)
    local hi = tonumber(h[1] or '-1')
    local c = tonumber(h[2] or '0')
    local p = tonumber(h[3] or '0')
    if hi ~= idx then
      if hi == idx - 1 then p = c else p = 0 end
      c = 0
    end
    local left = p2 - (now % p2)
    local used = math.floor(p * left / p2) + c
    local a = p1 - used
    if a < avail then avail = a end
    if a < min and left > retry then retry = left end
    if left > reset then reset = left end
    st[i] = {idx, c, p}
  end
end
if avail < min then
  if avail < 0 then avail = 0 end
  return {0, avail, retry, reset}
end
for i = 1, n do
  local kind = tonumber(ARGV[1 + 3 * i])
  local p1 = tonumber(ARGV[2 + 3 * i])
  local p2 = tonumber(ARGV[3 + 3 * i])
  if kind == 1 then
    local tat = st[i] + avail * p1
    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  else
    redis.call('HSET', KEYS[i], 'i', st[i][1], 'c', st[i][2] + avail, 'p', st[i][3])
    redis.call('PEXPIRE', KEYS[i], math.floor(2 * p2 / 1000) + 1000)
  end
end
return {avail, 0, 0, reset}
"#;

/// What Redis answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Units taken (0 = refused).
    pub granted: u64,
    /// Units still available after the refusal (0 after a grant: it takes what it can).
    pub remaining: u64,
    /// Microseconds until `min` units could be taken.
    pub retry_after_us: u64,
    /// Microseconds until every limit is back to full.
    pub reset_us: u64,
}

use rampart_redis::Conn;

/// The connection, the script and the breaker, shared by every Redis-backed policy of a
/// config (and by the next config after a reload, when `redis` did not change).
pub struct RedisStore {
    conn: tokio::sync::OnceCell<Conn>,
    connect: Box<dyn Fn() -> ConnectFuture + Send + Sync>,
    script: redis::Script,
    timeout: Duration,
    breaker_failures: u32,
    breaker_cooldown: Duration,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker is open; 0 = closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    epoch: std::time::Instant,
    pub metrics: RedisMetrics,
}

type ConnectFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = redis::RedisResult<Conn>> + Send>>;

/// Redis call counters and a latency histogram.
#[derive(Default)]
pub struct RedisMetrics {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub breaker_opened: AtomicU64,
    pub short_circuited: AtomicU64,
    pub latency: [AtomicU64; LATENCY_BUCKETS.len()],
    pub latency_sum_us: AtomicU64,
}

/// Upper bounds (seconds) of the Redis latency histogram.
pub const LATENCY_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1];

/// Why a Redis decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the Redis breaker is open")]
    BreakerOpen,
    #[error("Redis did not answer within the timeout")]
    Timeout,
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

impl RedisStore {
    /// Builds the store; connects lazily on first use (never at config load).
    pub fn new(
        spec: &rampart_config::RedisSpec,
        password: Option<String>,
        base: &std::path::Path,
    ) -> Result<Self, String> {
        let client = rampart_redis::RedisClient::new(spec, password, base)?;
        let timeout = spec.timeout.get();
        let connect: Box<dyn Fn() -> ConnectFuture + Send + Sync> = Box::new(move || {
            let client = client.clone();
            Box::pin(async move { client.connect(timeout).await })
        });
        Ok(Self {
            conn: tokio::sync::OnceCell::new(),
            connect,
            script: redis::Script::new(SCRIPT),
            timeout: spec.timeout.get(),
            breaker_failures: spec.breaker_failures.max(1),
            breaker_cooldown: spec.breaker_cooldown.get(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            epoch: std::time::Instant::now(),
            metrics: RedisMetrics::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether a call may go out now (breaker closed, or this is the one probe).
    fn admit(&self) -> Result<bool, StoreError> {
        let open = self.open_until.load(Ordering::Acquire);
        if open == 0 {
            return Ok(false);
        }
        if self.now_ms() < open
            || self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            self.metrics.short_circuited.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::BreakerOpen);
        }
        Ok(true)
    }

    fn record(&self, ok: bool, probe: bool) {
        if ok {
            self.failures.store(0, Ordering::Release);
            if self.open_until.swap(0, Ordering::AcqRel) != 0 {
                tracing::warn!("Redis is answering again; cluster-wide limits resume");
            }
        } else {
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
            let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
            if probe || n == self.breaker_failures {
                let until = self.now_ms() + self.breaker_cooldown.as_millis() as u64;
                if self.open_until.swap(until, Ordering::AcqRel) == 0 {
                    self.metrics.breaker_opened.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        failures = n,
                        "Redis breaker open: limits use on_store_error until Redis answers"
                    );
                }
            }
        }
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// Takes up to `want` units (at least `min`) under `limits` for `keys`.
    pub async fn take(
        self: &Arc<Self>,
        keys: &[String],
        limits: &[Limit],
        want: u64,
        min: u64,
    ) -> Result<Grant, StoreError> {
        let probe = self.admit()?;
        let started = std::time::Instant::now();
        self.metrics.calls.fetch_add(1, Ordering::Relaxed);
        let result = tokio::time::timeout(self.timeout, self.call(keys, limits, want, min)).await;
        let elapsed = started.elapsed();
        if let Some(b) = LATENCY_BUCKETS
            .iter()
            .position(|ub| elapsed.as_secs_f64() <= *ub)
        {
            self.metrics.latency[b].fetch_add(1, Ordering::Relaxed);
        }
        self.metrics
            .latency_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let out = match result {
            Err(_) => Err(StoreError::Timeout),
            Ok(r) => r,
        };
        self.record(out.is_ok(), probe);
        out
    }

    async fn call(
        &self,
        keys: &[String],
        limits: &[Limit],
        want: u64,
        min: u64,
    ) -> Result<Grant, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| (self.connect)())
            .await?
            .clone();
        let mut inv = self.script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        inv.arg(want).arg(min).arg(limits.len());
        for l in limits {
            match l {
                // Microseconds, fractional: a rate above one per microsecond still has a
                // non-zero interval.
                Limit::Rate(g) => {
                    inv.arg(1)
                        .arg(g.interval as f64 / 1000.0)
                        .arg(g.tolerance as f64 / 1000.0);
                }
                Limit::Quota(w) => {
                    inv.arg(2).arg(w.limit).arg(w.window / 1000);
                }
            }
        }
        let mut conn = conn;
        let v: Vec<i64> = inv.invoke_async(&mut conn).await?;
        let get = |i: usize| v.get(i).copied().unwrap_or(0).max(0) as u64;
        Ok(Grant {
            granted: get(0),
            remaining: get(1),
            retry_after_us: get(2),
            reset_us: get(3),
        })
    }
}

/// A grant as a per-policy check result (for headers and decisions).
pub fn grant_check(g: &Grant, cost: u64) -> Check {
    Check {
        allowed: g.granted >= cost && g.granted > 0,
        remaining: if g.granted > 0 {
            g.granted - cost
        } else {
            g.remaining
        },
        retry_after: g.retry_after_us * 1000,
        reset: g.reset_us * 1000,
    }
}
