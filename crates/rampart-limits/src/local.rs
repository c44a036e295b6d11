//! Per-process limit state: a sharded map from (policy, client key) to the state of each
//! of the policy's limits. All limits of one key live in one entry, so deciding and
//! committing a request is one critical section: two workers can never both read the
//! same state and both commit (which would admit more than a quota allows).
//!
//! Shards keep workers from meeting on one lock; shard choice uses a keyed hash, so a
//! client cannot aim its keys at one shard. Memory is bounded: a shard over its share of
//! `max_keys` drops idle entries (state that no longer limits anything); when every entry
//! is still live, a *new* key is refused (fail closed, counted) rather than an old one
//! forgotten, because forgetting would hand a limited client a fresh budget.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
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

/// Every limit's state for one client key, and when all of it has gone idle.
struct Entry {
    /// Nanoseconds (the store's clock) from which no limit here remembers anything.
    idle_at: u64,
    states: Box<[State]>,
}

/// The time from which `state` of limit `l` no longer limits anything.
fn idle_at(l: &Limit, state: &State) -> u64 {
    match (l, state) {
        (_, State::Gcra(tat)) => *tat,
        // The previous window's count weighs on the estimate until the window after the
        // current one begins.
        (Limit::Quota(w), State::Window(c)) => c.index.saturating_add(2).saturating_mul(w.window),
        (Limit::Rate(_), State::Window(_)) => 0,
    }
}

/// A new client key could not be stored: every entry in its shard is still live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFull;

/// Sharded per-process state.
pub struct LocalStore {
    shards: Vec<Mutex<HashMap<Box<[u8]>, Entry>>>,
    per_shard: usize,
    hasher: RandomState,
    epoch: tokio::time::Instant,
    /// Idle entries dropped to make room.
    pub evictions: AtomicU64,
    /// New keys refused because their shard was full of live state.
    pub refused: AtomicU64,
}

impl LocalStore {
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(8),
            hasher: RandomState::new(),
            epoch: tokio::time::Instant::now(),
            evictions: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the store was made (tokio's clock, so tests can pause time).
    /// Starts at one hour so a fresh key never looks "ahead of now".
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 3_600_000_000_000
    }

    /// Checks every limit in `limits` for `key` at cost `cost` and commits only when all
    /// allow (the strictest wins, and a refused request uses none of the others), all
    /// under the key's shard lock.
    pub fn check(&self, key: &[u8], limits: &[Limit], cost: u64) -> Result<Vec<Check>, StoreFull> {
        let now = self.now();
        let shard = &self.shards[(self.hasher.hash_one(key) % SHARDS as u64) as usize];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(limits.len());
        let entry = map.get_mut(key);
        let states = entry.as_ref().map(|e| &e.states[..]);
        let mut all = true;
        for (i, l) in limits.iter().enumerate() {
            let (check, _) = decide(l, states.and_then(|s| s.get(i)).copied(), now, cost);
            all &= check.allowed;
            out.push(check);
        }
        if !all {
            return Ok(out);
        }
        match entry {
            Some(e) => {
                if e.states.len() != limits.len() {
                    // The policy's limits changed (a plan change on reload): keep what
                    // still lines up, start the rest fresh.
                    let mut v: Vec<State> = e.states.to_vec();
                    v.resize(limits.len(), State::Gcra(0));
                    e.states = v.into_boxed_slice();
                }
                let mut idle = 0;
                for (l, s) in limits.iter().zip(e.states.iter_mut()) {
                    *s = decide(l, Some(*s), now, cost).1;
                    idle = idle.max(idle_at(l, s));
                }
                e.idle_at = idle;
            }
            None => {
                if map.len() >= self.per_shard {
                    let before = map.len();
                    map.retain(|_, e| e.idle_at > now);
                    self.evictions
                        .fetch_add((before - map.len()) as u64, Ordering::Relaxed);
                    if map.len() >= self.per_shard {
                        self.refused.fetch_add(1, Ordering::Relaxed);
                        return Err(StoreFull);
                    }
                }
                let mut idle = 0;
                let states: Box<[State]> = limits
                    .iter()
                    .map(|l| {
                        let s = decide(l, None, now, cost).1;
                        idle = idle.max(idle_at(l, &s));
                        s
                    })
                    .collect();
                map.insert(
                    key.into(),
                    Entry {
                        idle_at: idle,
                        states,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Where `key` stands against `limits` now, without counting anything; `None` when
    /// the key has no state (nothing used).
    pub fn peek(&self, key: &[u8], limits: &[Limit]) -> Option<Vec<Check>> {
        let now = self.now();
        let shard = &self.shards[(self.hasher.hash_one(key) % SHARDS as u64) as usize];
        let map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.get(key)?;
        Some(
            limits
                .iter()
                .enumerate()
                .map(|(i, l)| decide(l, e.states.get(i).copied(), now, 0).0)
                .collect(),
        )
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
        let key = b"ip:1.2.3.4".to_vec();
        let admitted = (0..8)
            .filter(|_| s.check(&key, &limits, 1).unwrap()[0].allowed)
            .count();
        assert_eq!(admitted, 5);
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        assert!(s.check(&key, &limits, 1).unwrap()[0].allowed);
        assert!(!s.check(&key, &limits, 1).unwrap()[0].allowed);
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let admitted = (0..8)
            .filter(|_| s.check(&key, &limits, 1).unwrap()[0].allowed)
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
        let key = b"k".to_vec();
        for _ in 0..3 {
            assert!(s.check(&key, &limits, 1).unwrap().iter().all(|c| c.allowed));
        }
        let c = s.check(&key, &limits, 1).unwrap();
        assert!(c[0].allowed && !c[1].allowed);
        // The refused request did not use a rate token: 97 left, then 96 after one more
        // check refused by the quota.
        assert_eq!(c[0].remaining, 96);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded_and_live_state_is_never_evicted() {
        let s = LocalStore::new(10_000);
        let limits = [Limit::Quota(Window {
            limit: 5,
            window: 86_400_000_000_000,
        })];
        // A client uses up its daily quota...
        let victim = b"ip:203.0.113.9".to_vec();
        for _ in 0..5 {
            assert!(s.check(&victim, &limits, 1).unwrap()[0].allowed);
        }
        // ...then floods distinct keys to push its own state out.
        let mut refused = 0;
        for i in 0..200_000u32 {
            let key = format!("ip:{i}").into_bytes();
            if s.check(&key, &limits, 1).is_err() {
                refused += 1;
            }
        }
        assert!(s.len() <= 10_000 + SHARDS * 8, "{} keys held", s.len());
        assert!(refused > 0 && s.refused.load(Ordering::Relaxed) == refused);
        // Its quota is still spent.
        assert!(!s.check(&victim, &limits, 1).unwrap()[0].allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_make_room_for_new_ones() {
        let s = LocalStore::new(8 * SHARDS);
        let limits = [Limit::Rate(Gcra::new(10, 1_000_000_000, 10))];
        // Fill until a shard is full of live keys and refuses a newcomer.
        let refused = (0u32..)
            .map(|i| format!("a{i}").into_bytes())
            .find(|k| s.check(k, &limits, 1).is_err())
            .unwrap();
        assert_eq!(s.evictions.load(Ordering::Relaxed), 0);
        // Once those keys have gone idle, the same newcomer finds room.
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        assert!(s.check(&refused, &limits, 1).is_ok());
        assert!(s.evictions.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn one_key_admits_exactly_its_quota_from_many_threads() {
        let s = std::sync::Arc::new(LocalStore::new(1000));
        let limits = std::sync::Arc::new([
            Limit::Rate(Gcra::new(1_000_000, 1_000_000_000, 1_000_000)),
            Limit::Quota(Window {
                limit: 2000,
                window: 3_600_000_000_000,
            }),
        ]);
        let admitted = std::sync::Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (s, l, a) = (s.clone(), limits.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if s.check(b"route", &l[..], 1)
                            .unwrap()
                            .iter()
                            .all(|c| c.allowed)
                        {
                            a.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 2000);
    }
}
