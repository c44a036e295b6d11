//! Throttles and bans imposed on flagged callers, until a time (Unix nanoseconds, so
//! instances agree on it). The request path pays one relaxed load while none is in
//! force; otherwise one shard lock for a lookup (and a GCRA step for a throttle).
//!
//! With `store: redis`, each sanction is also written to one sorted set in Redis
//! (member `ban|consumer:alice`, score the end in Unix milliseconds), and a thread of
//! the store reads the set every second, so a caller banned by one instance is refused
//! by every other within about a second. Redis being down leaves each instance with its
//! own sanctions; nothing waits on it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rampart_core::gcra::Gcra;

use crate::table::Subject;

const SHARDS: usize = 32;

/// The Redis sorted set holding every instance's sanctions.
pub const REDIS_KEY: &str = "rampart:anomaly:sanctions";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Throttle,
    Ban,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Throttle => "throttle",
            Kind::Ban => "ban",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sanction {
    kind: Kind,
    until: u64,
    /// The throttle's GCRA state.
    tat: u64,
}

/// What a sanctioned request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Refused; retry after this many seconds.
    Throttled(u64),
    Banned(u64),
}

type Shard = Mutex<HashMap<Subject, Sanction>>;

/// The sanctions in force on this instance.
pub struct Sanctions {
    shards: Box<[Shard]>,
    per_shard: usize,
    hasher: RandomState,
    active: AtomicUsize,
    /// Sanctions not kept: every slot of their shard held a live one.
    pub dropped: AtomicU64,
    pub redis_errors: AtomicU64,
    /// Where new sanctions are sent for Redis, once shared.
    outbox: OnceLock<tokio::sync::mpsc::Sender<(Kind, String, u64)>>,
}

impl Sanctions {
    pub fn new(max: usize) -> Sanctions {
        Sanctions {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            active: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            redis_errors: AtomicU64::new(0),
            outbox: OnceLock::new(),
        }
    }

    fn shard(&self, s: &Subject) -> &Shard {
        &self.shards[(self.hasher.hash_one(s) % SHARDS as u64) as usize]
    }

    /// The sanctions in force at `now` (Unix ns): subject, kind, until (Unix ns).
    pub fn in_force(&self, now: u64) -> Vec<(Subject, Kind, u64)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(
                map.iter()
                    .filter(|(_, s)| s.until > now)
                    .map(|(subject, s)| (subject.clone(), s.kind, s.until)),
            );
        }
        out
    }

    /// Sanctions held (some may have ended and not been looked at since).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Imposes `kind` on `subject` until `until` (Unix ns); a longer or harsher one in
    /// force stays. Sent on to Redis when shared and `publish`.
    pub fn impose(&self, subject: &Subject, kind: Kind, until: u64, now: u64, publish: bool) {
        let mut map = self
            .shard(subject)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match map.get_mut(subject) {
            Some(s) => {
                if s.until <= now {
                    *s = Sanction {
                        kind,
                        until,
                        tat: 0,
                    };
                } else {
                    if kind == Kind::Ban {
                        s.kind = Kind::Ban;
                    }
                    s.until = s.until.max(until);
                }
            }
            None => {
                if map.len() >= self.per_shard {
                    let before = map.len();
                    map.retain(|_, s| s.until > now);
                    self.active.fetch_sub(before - map.len(), Ordering::Relaxed);
                }
                if map.len() >= self.per_shard {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                map.insert(
                    subject.clone(),
                    Sanction {
                        kind,
                        until,
                        tat: 0,
                    },
                );
                self.active.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(map);
        if publish {
            if let Some(tx) = self.outbox.get() {
                if tx.try_send((kind, subject.label(), until)).is_err() {
                    self.redis_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// What a request of `subject` at `now` (Unix ns) gets; ended sanctions are removed.
    pub fn check(&self, subject: &Subject, now: u64, throttle: &Gcra) -> Verdict {
        let mut map = self
            .shard(subject)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(s) = map.get_mut(subject) else {
            return Verdict::Pass;
        };
        if s.until <= now {
            map.remove(subject);
            self.active.fetch_sub(1, Ordering::Relaxed);
            return Verdict::Pass;
        }
        let left = (s.until - now).div_ceil(1_000_000_000).max(1);
        match s.kind {
            Kind::Ban => Verdict::Banned(left),
            Kind::Throttle => {
                let (v, tat) = throttle.check(s.tat, now, 1);
                s.tat = tat;
                if v.allowed {
                    Verdict::Pass
                } else {
                    Verdict::Throttled(v.retry_after.div_ceil(1_000_000_000).clamp(1, left))
                }
            }
        }
    }

    /// Shares the sanctions through Redis: a thread that writes new ones and reads every
    /// instance's each second. It ends when the sanctions are dropped.
    pub fn share(self: &Arc<Self>, client: rampart_redis::RedisClient, timeout: Duration) {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        if self.outbox.set(tx).is_err() {
            return; // Shared already (a reload with the same settings).
        }
        let weak = Arc::downgrade(self);
        if let Err(e) = crate::own_runtime("rampart-anomaly-redis", move |rt| {
            rt.block_on(sync(weak, client, timeout, rx))
        }) {
            tracing::error!(error = %e, "anomaly sanctions cannot reach Redis");
        }
    }
}

fn unix_ns() -> u64 {
    crate::unix_ns(std::time::SystemTime::now())
}

/// The sharing loop: new sanctions out as they come, everyone's in every second.
async fn sync(
    weak: Weak<Sanctions>,
    client: rampart_redis::RedisClient,
    timeout: Duration,
    mut rx: tokio::sync::mpsc::Receiver<(Kind, String, u64)>,
) {
    let mut conn: Option<rampart_redis::Conn> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        let out = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => Some(m),
                None => return,
            },
            _ = tick.tick() => None,
        };
        let Some(sanctions) = weak.upgrade() else {
            return;
        };
        if conn.is_none() {
            conn =
                tokio::time::timeout(timeout.max(Duration::from_secs(1)), client.connect(timeout))
                    .await
                    .ok()
                    .and_then(Result::ok);
        }
        let Some(c) = conn.as_mut() else {
            sanctions.redis_errors.fetch_add(1, Ordering::Relaxed);
            if !warned {
                warned = true;
                tracing::warn!(
                    "anomaly sanctions: Redis unreachable; sanctions hold on this instance only"
                );
            }
            continue;
        };
        let now_ms = unix_ns() / 1_000_000;
        let result = match out {
            Some((kind, label, until)) => {
                let member = format!("{}|{label}", kind.as_str());
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(REDIS_KEY).arg(until / 1_000_000).arg(member);
                tokio::time::timeout(timeout, cmd.query_async::<i64>(c))
                    .await
                    .map(|r| r.map(|_| ()))
            }
            None => {
                let mut pipe = redis::pipe();
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(REDIS_KEY)
                    .arg("-inf")
                    .arg(now_ms)
                    .ignore()
                    .cmd("ZRANGEBYSCORE")
                    .arg(REDIS_KEY)
                    .arg(now_ms + 1)
                    .arg("+inf")
                    .arg("WITHSCORES");
                tokio::time::timeout(timeout, pipe.query_async::<(Vec<(String, f64)>,)>(c))
                    .await
                    .map(|r| {
                        r.map(|(all,)| {
                            let now = unix_ns();
                            for (member, until_ms) in all {
                                let Some((kind, label)) = member.split_once('|') else {
                                    continue;
                                };
                                let kind = match kind {
                                    "ban" => Kind::Ban,
                                    "throttle" => Kind::Throttle,
                                    _ => continue,
                                };
                                if let Some(s) = Subject::parse(label) {
                                    let until = (until_ms as u64).saturating_mul(1_000_000);
                                    sanctions.impose(&s, kind, until, now, false);
                                }
                            }
                        })
                    })
            }
        };
        match result {
            Ok(Ok(())) => {
                if warned {
                    warned = false;
                    tracing::info!("anomaly sanctions: Redis answering again");
                }
            }
            _ => {
                sanctions.redis_errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
                if !warned {
                    warned = true;
                    tracing::warn!("anomaly sanctions: Redis call failed; sanctions hold on this instance only");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_ban_refuses_until_it_ends_and_a_throttle_limits() {
        let g = Gcra::new(1, S, 2);
        let s = Sanctions::new(1000);
        let alice = Subject::Consumer("alice".into());
        let ip = Subject::Ip("192.0.2.1".parse().unwrap());
        s.impose(&alice, Kind::Ban, 100 * S, 10 * S, false);
        s.impose(&ip, Kind::Throttle, 100 * S, 10 * S, false);
        assert_eq!(s.active(), 2);
        assert_eq!(s.check(&alice, 40 * S, &g), Verdict::Banned(60));
        // Burst 2, then one a second.
        assert_eq!(s.check(&ip, 40 * S, &g), Verdict::Pass);
        assert_eq!(s.check(&ip, 40 * S, &g), Verdict::Pass);
        assert_eq!(s.check(&ip, 40 * S, &g), Verdict::Throttled(1));
        assert_eq!(s.check(&ip, 41 * S, &g), Verdict::Pass);
        // A throttle in force does not soften a ban; a ban hardens a throttle.
        s.impose(&alice, Kind::Throttle, 200 * S, 40 * S, false);
        assert_eq!(s.check(&alice, 150 * S, &g), Verdict::Banned(50));
        s.impose(&ip, Kind::Ban, 50 * S, 42 * S, false);
        assert_eq!(s.check(&ip, 42 * S, &g), Verdict::Banned(58));
        // Ended: passes, and is gone.
        assert_eq!(s.check(&alice, 200 * S, &g), Verdict::Pass);
        assert_eq!(s.check(&ip, 200 * S, &g), Verdict::Pass);
        assert_eq!(s.active(), 0);
    }

    #[test]
    fn a_full_table_drops_the_ended_first_and_counts_what_it_cannot_keep() {
        let s = Sanctions::new(SHARDS);
        for i in 0..(SHARDS * 8) {
            let who = Subject::Consumer(format!("c{i}").into());
            s.impose(&who, Kind::Ban, 20 * S, 0, false);
        }
        assert!(s.active() <= SHARDS);
        assert!(s.dropped.load(Ordering::Relaxed) >= (SHARDS * 7) as u64);
        // Once those have ended, new ones fit again.
        let late = Subject::Consumer("late".into());
        s.impose(&late, Kind::Ban, 100 * S, 30 * S, false);
        assert_eq!(
            s.check(&late, 31 * S, &Gcra::new(1, S, 1)),
            Verdict::Banned(69)
        );
    }
}
