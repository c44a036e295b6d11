//! Upstream pools: targets with their health, load balancing, retry budget and the
//! per-worker connection pools.

mod balance;
mod budget;
pub mod h1;
pub mod health;
pub mod pool;
mod stream;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::HeaderValue;
use rampart_config::{HashOn, HealthCheckSpec, PassiveHealthSpec, UpstreamProtocol};

pub use balance::{hash_bytes, Balancer, SelectError};
pub use budget::RetryBudget;
pub use stream::Stream;

/// Milliseconds since the process's first use of the clock (tokio's clock, so tests can
/// pause time). Stored in atomics where an `Instant` cannot be.
pub fn now_ms() -> u64 {
    static BASE: OnceLock<tokio::time::Instant> = OnceLock::new();
    let base = *BASE.get_or_init(tokio::time::Instant::now);
    u64::try_from(
        tokio::time::Instant::now()
            .saturating_duration_since(base)
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// One server in an upstream pool, with the health state every worker shares.
#[derive(Debug)]
pub struct Target {
    /// The URL as configured (for logs and the admin API).
    pub url: Arc<str>,
    pub https: bool,
    /// Host to resolve and connect to (and the default TLS server name).
    pub host: String,
    pub port: u16,
    /// `Host` header value for requests to this target (host[:port] as in the URL).
    pub authority: HeaderValue,
    pub weight: u32,
    /// Key of this target's connection pool on each worker. Equal keys mean equal
    /// connection settings, so a reload that keeps a target keeps its warm connections.
    pub pool_key: Arc<str>,
    /// Requests in flight to this target from this process.
    pub in_flight: AtomicU32,
    /// Exchange counters. They start from zero with each plan (Prometheus' rate() and
    /// increase() treat that as a counter reset).
    pub metrics: Arc<crate::metrics::TargetMetrics>,
    /// Result of active health checks (true until a check says otherwise).
    pub active_healthy: AtomicBool,
    consecutive_failures: AtomicU32,
    /// Ejections in a row without a success in between (drives the back-off).
    ejections: AtomicU32,
    ejected_until_ms: AtomicU64,
}

impl Target {
    pub fn new(
        url: &str,
        weight: u32,
        protocol: UpstreamProtocol,
        tls_key: &str,
    ) -> Option<Target> {
        let https = url.starts_with("https://");
        let rest = url.split_once("://")?.1.trim_end_matches('/');
        let authority: http::uri::Authority = rest.parse().ok()?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Target {
            url: url.into(),
            https,
            host,
            port,
            authority: HeaderValue::from_str(authority.as_str()).ok()?,
            weight,
            pool_key: format!("{protocol:?}|{url}|{tls_key}").into(),
            in_flight: AtomicU32::new(0),
            metrics: Arc::default(),
            active_healthy: AtomicBool::new(true),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
        })
    }

    /// True when the target may receive traffic: healthy by active checks and not
    /// ejected by passive health.
    pub fn is_available(&self, now_ms: u64) -> bool {
        self.active_healthy.load(Ordering::Relaxed)
            && self.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    pub fn is_ejected(&self) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms()
    }

    /// A request to this target succeeded: the breaker closes fully.
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.ejections.load(Ordering::Relaxed) != 0 {
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// A request failed (connect error, timeout, 502/503/504).
    ///
    /// This is the target's circuit breaker: `consecutive_failures` failures in a row open
    /// it (the target is ejected) for `eject_for` times the number of ejections in a row
    /// (at most 8x). When it closes again it is half-open: the next failure re-opens it at
    /// once, while a success closes it fully.
    pub fn record_failure(&self, passive: &PassiveHealthSpec) {
        if !passive.enabled {
            return;
        }
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= passive.consecutive_failures {
            let ejections = (self.ejections.fetch_add(1, Ordering::Relaxed) + 1).min(8);
            // Half-open after the ejection: one more failure is enough to re-eject.
            self.consecutive_failures.store(
                passive.consecutive_failures.saturating_sub(1),
                Ordering::Relaxed,
            );
            let base = u64::try_from(passive.eject_for.get().as_millis()).unwrap_or(u64::MAX);
            let until = now_ms().saturating_add(base.saturating_mul(u64::from(ejections)));
            self.ejected_until_ms.store(until, Ordering::Relaxed);
            tracing::warn!(target_url = %self.url, failures = n, ejections, "target ejected after consecutive failures");
        }
    }
}

/// Timeouts for one upstream, as plain durations.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response_header: Duration,
    pub request: Duration,
}

/// Retry rules for one upstream.
#[derive(Debug)]
pub struct RetryPolicy {
    pub max: u32,
    pub on_status: Vec<u16>,
    pub budget: RetryBudget,
}

/// A compiled upstream pool.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub targets: Vec<Target>,
    pub balancer: Balancer,
    pub hash_on: Option<HashOn>,
    pub protocol: UpstreamProtocol,
    /// TLS client config and the server name to verify (when overridden).
    pub tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    pub timeouts: Timeouts,
    pub health_check: Option<HealthCheckSpec>,
    pub passive: PassiveHealthSpec,
    pub retries: RetryPolicy,
    /// Most requests in flight to one target (circuit breaker).
    pub max_requests: u32,
    pub max_idle_per_target: usize,
    pub idle_timeout: Duration,
}

impl Upstream {
    /// Picks a target for a request. `hash` is the consistent-hash key when the balancer
    /// needs one; `tried` lists targets that already failed this request.
    pub fn select(&self, hash: u64, tried: &[usize]) -> Result<usize, SelectError> {
        self.balancer
            .select(&self.targets, self.max_requests, hash, tried)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_config::Duration as CfgDuration;

    #[tokio::test(start_paused = true)]
    async fn breaker_opens_backs_off_and_half_opens() {
        let t = Target::new("http://127.0.0.1:1", 1, UpstreamProtocol::Http1, "").unwrap();
        let passive = PassiveHealthSpec {
            enabled: true,
            consecutive_failures: 3,
            eject_for: CfgDuration::secs(10),
        };
        t.record_failure(&passive);
        t.record_failure(&passive);
        assert!(t.is_available(now_ms()));
        t.record_failure(&passive);
        assert!(!t.is_available(now_ms()), "three failures open the breaker");
        tokio::time::advance(std::time::Duration::from_secs(11)).await;
        assert!(t.is_available(now_ms()), "closed again after eject_for");
        t.record_failure(&passive);
        assert!(!t.is_available(now_ms()), "half-open: one failure re-opens");
        tokio::time::advance(std::time::Duration::from_secs(11)).await;
        assert!(
            !t.is_available(now_ms()),
            "second ejection lasts twice as long"
        );
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        assert!(t.is_available(now_ms()));
        t.record_success();
        t.record_failure(&passive);
        assert!(
            t.is_available(now_ms()),
            "a success closes the breaker fully"
        );
    }
}
