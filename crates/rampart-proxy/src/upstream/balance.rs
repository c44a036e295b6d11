//! Load balancing. Each balancer is precomputed at config load; selection is a few
//! atomic loads, never a lock.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use rampart_config::Balance;

use super::{now_ms, Target};

/// Why no target could be picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectError {
    /// Every target is unhealthy, ejected or already tried: 503 `upstream.unavailable`.
    NoneAvailable,
    /// Healthy targets exist but all are at `circuit_breaker.max_requests`: 503
    /// `upstream.overloaded`.
    Overloaded,
}

#[derive(Debug)]
pub enum Balancer {
    /// Smooth weighted round robin: `schedule` interleaves targets by weight.
    RoundRobin {
        schedule: Vec<usize>,
        cursor: AtomicUsize,
    },
    /// Power of two choices: two distinct random targets, fewer in flight per weight wins.
    LeastRequests,
    /// A hash ring with virtual nodes, sorted by point.
    ConsistentHash { ring: Vec<(u64, usize)> },
}

/// Virtual nodes per unit of weight on the hash ring.
const VNODES_PER_WEIGHT: u32 = 40;

impl Balancer {
    pub fn new(kind: Balance, targets: &[Target]) -> Balancer {
        match kind {
            Balance::RoundRobin => Balancer::RoundRobin {
                schedule: smooth_schedule(targets),
                cursor: AtomicUsize::new(0),
            },
            Balance::LeastRequests => Balancer::LeastRequests,
            Balance::ConsistentHash => {
                let mut ring = Vec::new();
                for (i, t) in targets.iter().enumerate() {
                    for v in 0..t.weight * VNODES_PER_WEIGHT {
                        ring.push((hash_str(&format!("{}#{v}", t.url)), i));
                    }
                }
                ring.sort_unstable();
                Balancer::ConsistentHash { ring }
            }
        }
    }

    pub fn needs_hash(&self) -> bool {
        matches!(self, Balancer::ConsistentHash { .. })
    }

    pub fn select(
        &self,
        targets: &[Target],
        max_requests: u32,
        hash: u64,
        tried: &[usize],
    ) -> Result<usize, SelectError> {
        let now = now_ms();
        let mut saw_overloaded = false;
        let mut usable = |i: usize| -> bool {
            if tried.contains(&i) || !targets[i].is_available(now) {
                return false;
            }
            if targets[i].in_flight.load(Ordering::Relaxed) >= max_requests {
                saw_overloaded = true;
                return false;
            }
            true
        };
        let picked = match self {
            Balancer::RoundRobin { schedule, cursor } => {
                let start = cursor.fetch_add(1, Ordering::Relaxed);
                (0..schedule.len())
                    .map(|k| schedule[(start + k) % schedule.len()])
                    .find(|&i| usable(i))
            }
            Balancer::LeastRequests => {
                // Two distinct targets at random; the one with fewer requests in flight per
                // unit of weight wins (so weights still shape the split under load).
                let n = targets.len();
                let a = random() as usize % n;
                let b = if n > 1 {
                    (a + 1 + random() as usize % (n - 1)) % n
                } else {
                    a
                };
                let load = |i: usize| {
                    u64::from(targets[i].in_flight.load(Ordering::Relaxed)) * 1000
                        / u64::from(targets[i].weight)
                };
                let (first, second) = if load(a) <= load(b) { (a, b) } else { (b, a) };
                if usable(first) {
                    Some(first)
                } else if usable(second) {
                    Some(second)
                } else {
                    // Both picks unusable: fall back to the least loaded usable target.
                    (0..targets.len())
                        .filter(|&i| usable(i))
                        .min_by_key(|&i| load(i))
                }
            }
            Balancer::ConsistentHash { ring } => {
                let start = ring.partition_point(|(p, _)| *p < hash);
                (0..ring.len())
                    .map(|k| ring[(start + k) % ring.len()].1)
                    .find(|&i| usable(i))
            }
        };
        picked.ok_or(if saw_overloaded {
            SelectError::Overloaded
        } else {
            SelectError::NoneAvailable
        })
    }
}

/// Smooth weighted round robin (as in nginx): weights 5,1,1 give a,a,b,a,c,a,a rather
/// than a,a,a,a,a,b,c.
fn smooth_schedule(targets: &[Target]) -> Vec<usize> {
    let total: i64 = targets.iter().map(|t| i64::from(t.weight)).sum();
    let mut current = vec![0i64; targets.len()];
    let mut schedule = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, t) in current.iter_mut().zip(targets) {
            *c += i64::from(t.weight);
        }
        let Some((best, _)) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, -(*i as i64)))
        else {
            break;
        };
        current[best] -= total;
        schedule.push(best);
    }
    schedule
}

/// A stable 64-bit hash (SipHash with fixed keys) for ring points and hash keys.
pub fn hash_str(s: &str) -> u64 {
    hash_bytes(s.as_bytes())
}

pub fn hash_bytes(b: &[u8]) -> u64 {
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    h.write(b);
    h.finish()
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9);
        h.finish() | 1
    });
}

/// xorshift64*: fast per-thread randomness for load balancing (not for secrets).
fn random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_config::UpstreamProtocol;

    fn targets(weights: &[u32]) -> Vec<Target> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                Target::new(
                    &format!("http://127.0.0.1:{}", 1000 + i),
                    *w,
                    UpstreamProtocol::Http1,
                    "",
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn round_robin_follows_weights() {
        let t = targets(&[3, 1]);
        let b = Balancer::new(Balance::RoundRobin, &t);
        let picks: Vec<usize> = (0..8).map(|_| b.select(&t, 100, 0, &[]).unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 6);
    }

    #[test]
    fn consistent_hash_is_stable_and_skips_tried() {
        let t = targets(&[1, 1, 1]);
        let b = Balancer::new(Balance::ConsistentHash, &t);
        let k = hash_str("user-42");
        let first = b.select(&t, 100, k, &[]).unwrap();
        assert!((0..20).all(|_| b.select(&t, 100, k, &[]).unwrap() == first));
        assert_ne!(b.select(&t, 100, k, &[first]).unwrap(), first);
    }

    #[test]
    fn reports_overloaded_when_all_at_max_requests() {
        let t = targets(&[1]);
        t[0].in_flight.store(5, Ordering::Relaxed);
        let b = Balancer::new(Balance::LeastRequests, &t);
        assert_eq!(b.select(&t, 5, 0, &[]), Err(SelectError::Overloaded));
        assert_eq!(b.select(&t, 6, 0, &[0]), Err(SelectError::NoneAvailable));
    }
}
