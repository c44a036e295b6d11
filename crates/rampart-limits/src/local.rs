//! Per-process limit state: a sharded map from (policy, client key, limit) to the limit's
//! state. Shards keep workers from meeting on one lock; each critical section is a map
//! lookup and a few integer operations. Memory is bounded: a shard over its share of
//! `max_keys` first drops idle keys (state that no longer limits anything), then, under a
//! flood of distinct active keys, arbitrary ones (which can only make a limit more
//! lenient for those keys, never lock anyone out).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::gcra::{Gcra, Verdict};
use crate::window::{Counts, Window, WindowVerdict};

const SHARDS: usize = 64;

/// The state of one limit for one key.
#[derive(Debug, Clone, Copy)]
enum State {
    Gcra(u64),
    Window(Counts),
}

/// One compiled limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Rate(Gcra),
    Quota(Window),
}

impl Limit {
    /// This limit divided among `nodes` instances (the per-node share when Redis is down).
    pub fn scaled(&self, nodes: u64) -> Limit {
        let n = nodes.max(1);
        match self {
            Limit::Rate(g) => {
                let burst = (g.burst / n).max(1);
                Limit::Rate(Gcra {
                    interval: g.interval.saturating_mul(n),
                    tolerance: g.interval.saturating_mul(n).saturating_mul(burst),
                    burst,
                })
            }
            Limit::Quota(w) => Limit::Quota(Window {
                limit: (w.limit / n).max(1),
                window: w.window,
            }),
        }
    }
}

/// The result of checking one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub allowed: bool,
    pub remaining: u64,
    /// Nanoseconds until a refused request could pass.
    pub retry_after: u64,
    /// Nanoseconds until the limit is fully reset.
    pub reset: u64,
}

impl From<Verdict> for Check {
    fn from(v: Verdict) -> Self {
        Check {
            allowed: v.allowed,
            remaining: v.remaining,
            retry_after: v.retry_after,
            reset: v.reset,
        }
    }
}

impl From<WindowVerdict> for Check {
    fn from(v: WindowVerdict) -> Self {
        Check {
            allowed: v.allowed,
            remaining: v.remaining,
            retry_after: if v.allowed { 0 } else { v.reset },
            reset: v.reset,
        }
    }
}

/// One limit's verdict on `state` (absent = a fresh key) and the state to keep if
/// admitted.
fn decide(l: &Limit, state: Option<State>, now: u64, cost: u64) -> (Check, State) {
    match l {
        Limit::Rate(g) => {
            let tat = match state {
                Some(State::Gcra(t)) => t,
                _ => 0,
            };
            let (v, t) = g.check(tat, now, cost);
            (Check::from(v), State::Gcra(t))
        }
        Limit::Quota(w) => {
            let c = match state {
                Some(State::Window(c)) => c,
                _ => Counts::default(),
            };
            let (v, c) = w.check(c, now, cost);
            (Check::from(v), State::Window(c))
        }
    }
}

/// Sharded per-process state.
pub struct LocalStore {
    shards: Vec<Mutex<HashMap<Box<[u8]>, State>>>,
    per_shard: usize,
    epoch: tokio::time::Instant,
    pub evictions: AtomicU64,
}

fn shard_of(key: &[u8]) -> usize {
    // FNV-1a: cheap, and shard choice need not resist collisions (the map does).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

impl LocalStore {
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(8),
            epoch: tokio::time::Instant::now(),
            evictions: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the store was made (tokio's clock, so tests can pause time).
    /// Starts at one hour so a fresh key never looks "ahead of now".
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 3_600_000_000_000
    }

    /// Checks every limit in `limits` for `key` at cost `cost`; commits only when all
    /// allow (the strictest wins, and a refused request uses none of the others).
    pub fn check(&self, key: &mut Vec<u8>, limits: &[Limit], cost: u64) -> Vec<Check> {
        let now = self.now();
        let base = key.len();
        // One limit (the common case): decide and commit under one lock, updating the
        // entry in place; a key is only copied when it is new.
        if let [l] = limits {
            key.push(0);
            let shard = &self.shards[shard_of(key)];
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            let (check, new) = decide(l, map.get(key.as_slice()).copied(), now, cost);
            if check.allowed {
                match map.get_mut(key.as_slice()) {
                    Some(state) => *state = new,
                    None => {
                        drop(map);
                        self.store(key.clone(), new, now);
                    }
                }
            }
            key.truncate(base);
            return vec![check];
        }
        let mut out = Vec::with_capacity(limits.len());
        let mut all = true;
        let mut pending = Vec::with_capacity(limits.len());
        for (i, l) in limits.iter().enumerate() {
            key.truncate(base);
            key.push(i as u8);
            let shard = &self.shards[shard_of(key)];
            let map = shard.lock().unwrap_or_else(|p| p.into_inner());
            let (check, new) = decide(l, map.get(key.as_slice()).copied(), now, cost);
            drop(map);
            all &= check.allowed;
            out.push(check);
            pending.push((key.clone(), new));
        }
        key.truncate(base);
        if all {
            for (k, state) in pending {
                let shard = &self.shards[shard_of(&k)];
                let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
                match map.get_mut(k.as_slice()) {
                    Some(s) => *s = state,
                    None => {
                        drop(map);
                        self.store(k, state, now);
                    }
                }
            }
        }
        out
    }

    fn store(&self, key: Vec<u8>, state: State, now: u64) {
        let shard = &self.shards[shard_of(&key)];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.per_shard && !map.contains_key(key.as_slice()) {
            let before = map.len();
            map.retain(|_, s| match s {
                State::Gcra(tat) => *tat > now,
                State::Window(c) => c.current > 0 || c.previous > 0,
            });
            if map.len() >= self.per_shard {
                let drop_n = map.len() - self.per_shard / 2;
                let victims: Vec<Box<[u8]>> = map.keys().take(drop_n).cloned().collect();
                for v in victims {
                    map.remove(&v);
                }
            }
            self.evictions
                .fetch_add((before - map.len()) as u64, Ordering::Relaxed);
        }
        map.insert(key.into_boxed_slice(), state);
    }

    /// Keys held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate_with_paused_time() {
        let s = LocalStore::new(1000);
        let limits = [Limit::Rate(Gcra::new(10, 1_000_000_000, 5))];
        let mut key = b"ip:1.2.3.4".to_vec();
        let admitted = (0..8)
            .filter(|_| s.check(&mut key, &limits, 1)[0].allowed)
            .count();
        assert_eq!(admitted, 5);
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        assert!(s.check(&mut key, &limits, 1)[0].allowed);
        assert!(!s.check(&mut key, &limits, 1)[0].allowed);
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let admitted = (0..8)
            .filter(|_| s.check(&mut key, &limits, 1)[0].allowed)
            .count();
        assert_eq!(admitted, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_strictest_limit_wins_and_a_refusal_consumes_nothing() {
        let s = LocalStore::new(1000);
        let limits = [
            Limit::Rate(Gcra::new(100, 1_000_000_000, 100)),
            Limit::Quota(Window {
                limit: 3,
                window: 3_600_000_000_000,
            }),
        ];
        let mut key = b"k".to_vec();
        for _ in 0..3 {
            assert!(s.check(&mut key, &limits, 1).iter().all(|c| c.allowed));
        }
        let c = s.check(&mut key, &limits, 1);
        assert!(c[0].allowed && !c[1].allowed);
        // The refused request did not use a rate token: 97 left, then 96 after one more
        // check refused by the quota.
        assert_eq!(c[0].remaining, 96);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded_under_key_churn() {
        let s = LocalStore::new(10_000);
        let limits = [Limit::Rate(Gcra::new(10, 1_000_000_000, 10))];
        for i in 0..200_000u32 {
            let mut key = format!("ip:{i}").into_bytes();
            s.check(&mut key, &limits, 1);
        }
        assert!(s.len() <= 10_000 + SHARDS * 8, "{} keys held", s.len());
        assert!(s.evictions.load(Ordering::Relaxed) > 0);
    }
}
