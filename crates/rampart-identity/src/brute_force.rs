//! Brute-force protection (`identity.auth_failures`): failed authentications are counted
//! per client address (IPv6 by its prefix), with a GCRA. A client over its budget gets 429
//! on every authenticated route *before* any credential is looked up or any signature is
//! verified, so a flood of forged tokens stops costing a verification each.
//!
//! Only failures are recorded, so ordinary traffic never touches the table: a request
//! from a client without failures costs one atomic load. The table is sharded by a keyed
//! hash and bounded; when a shard is full of clients still being limited, a new failing
//! client is refused too (fail closed) rather than an old one forgotten, because
//! forgetting would hand that client a fresh budget.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rampart_core::gcra::Gcra;

const SHARDS: usize = 32;

/// Failed-authentication budgets per client address.
pub struct FailureLimiter {
    gcra: Gcra,
    v6_prefix: u8,
    shards: Vec<Mutex<HashMap<IpAddr, u64>>>,
    per_shard: usize,
    hasher: RandomState,
    /// Entries held across all shards; zero means nobody has failed recently.
    tracked: AtomicUsize,
    epoch: std::time::Instant,
    /// Requests refused because their client was over budget.
    pub refused: AtomicUsize,
    /// `Retry-After` for a refused client: the time one failure's budget takes to refill.
    pub retry_after: http::HeaderValue,
}

impl FailureLimiter {
    pub fn new(spec: &rampart_config::AuthFailureSpec, v6_prefix: u8) -> Self {
        let gcra = Gcra::new(
            spec.rate.count,
            spec.rate.period.as_nanos() as u64,
            spec.burst,
        );
        Self {
            retry_after: http::HeaderValue::from(gcra.interval.div_ceil(1_000_000_000).max(1)),
            gcra,
            v6_prefix,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: spec.max_clients.div_ceil(SHARDS).max(8),
            hasher: RandomState::new(),
            tracked: AtomicUsize::new(0),
            epoch: std::time::Instant::now(),
            refused: AtomicUsize::new(0),
        }
    }

    /// Starts at one hour so a fresh client never looks ahead of now.
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 3_600_000_000_000
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, u64>> {
        &self.shards[(self.hasher.hash_one(ip) % SHARDS as u64) as usize]
    }

    /// Drops clients whose budget has refilled; true if `map` still has no room.
    fn full_after_expiry(&self, map: &mut HashMap<IpAddr, u64>, now: u64) -> bool {
        if map.len() < self.per_shard {
            return false;
        }
        let before = map.len();
        map.retain(|_, tat| *tat > now);
        self.tracked
            .fetch_sub(before - map.len(), Ordering::Relaxed);
        map.len() >= self.per_shard
    }

    /// True when `ip` has used up its failure budget: its request is refused unread. A
    /// client the table has no room for is refused as well (fail closed).
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let ip = rampart_core::client_bucket(ip, self.v6_prefix);
        let now = self.now();
        let mut map = self.shard(&ip).lock().unwrap_or_else(|p| p.into_inner());
        let blocked = match map.get(&ip) {
            Some(tat) => !self.gcra.check(*tat, now, 1).0.allowed,
            None => self.full_after_expiry(&mut map, now),
        };
        drop(map);
        if blocked {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        blocked
    }

    /// Counts one failed authentication by `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        let ip = rampart_core::client_bucket(ip, self.v6_prefix);
        let now = self.now();
        let mut map = self.shard(&ip).lock().unwrap_or_else(|p| p.into_inner());
        let tat = match map.get(&ip) {
            Some(t) => *t,
            None => {
                if self.full_after_expiry(&mut map, now) {
                    // No room: `is_blocked` refuses untracked clients of a full shard.
                    return;
                }
                self.tracked.fetch_add(1, Ordering::Relaxed);
                0
            }
        };
        let (_, new_tat) = self.gcra.check(tat, now, 1);
        map.insert(ip, new_tat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u64) -> FailureLimiter {
        FailureLimiter::new(
            &rampart_config::AuthFailureSpec {
                enabled: true,
                rate: rampart_config::Rate {
                    count: 1,
                    period: std::time::Duration::from_secs(3600),
                },
                burst,
                max_clients: 1000,
            },
            64,
        )
    }

    #[test]
    fn blocks_a_client_after_its_burst_of_failures_only() {
        let l = limiter(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(!l.is_blocked(a));
            l.record_failure(a);
        }
        assert!(l.is_blocked(a));
        assert!(!l.is_blocked(b));
    }

    #[test]
    fn refuses_new_clients_when_full_of_limited_ones() {
        let mut l = limiter(1);
        l.per_shard = 1;
        let mut blocked_new = 0;
        for i in 0..(SHARDS as u8 * 4) {
            let ip = IpAddr::from([198, 51, 100, i]);
            if l.is_blocked(ip) {
                blocked_new += 1;
                continue;
            }
            l.record_failure(ip);
            assert!(l.is_blocked(ip), "a recorded client is over its burst of 1");
        }
        assert!(blocked_new > 0, "a full table must refuse newcomers");
    }

    #[test]
    fn counts_an_ipv6_64_as_one_client() {
        let l = limiter(2);
        l.record_failure("2001:db8::1".parse().unwrap());
        l.record_failure("2001:db8::2:3".parse().unwrap());
        assert!(l.is_blocked("2001:db8::ffff".parse().unwrap()));
        assert!(!l.is_blocked("2001:db8:0:1::1".parse().unwrap()));
    }
}
