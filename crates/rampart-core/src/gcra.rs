//! GCRA, the generic cell rate algorithm: a token bucket kept as one timestamp per key
//! (the "theoretical arrival time", TAT). A limit of `rate` per `period` with `burst`
//! admits `burst` requests at once, then one every `period / rate`.
//!
//! Times are nanoseconds on a monotonic clock. With emission interval `T` and capacity
//! `B`, a request of cost `c` at `now` is admitted when `max(tat, now) + c·T − now ≤ B·T`.

/// A GCRA limit, precomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Nanoseconds per unit (`period / rate`).
    pub interval: u64,
    /// `burst × interval`: how far ahead of `now` the TAT may run.
    pub tolerance: u64,
    pub burst: u64,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Units left after this request (0 when refused).
    pub remaining: u64,
    /// Nanoseconds until the request could be admitted (0 when admitted).
    pub retry_after: u64,
    /// Nanoseconds until the bucket is full again.
    pub reset: u64,
}

impl Gcra {
    pub fn new(rate: u64, period_nanos: u64, burst: u64) -> Self {
        let interval = (period_nanos / rate.max(1)).max(1);
        let burst = burst.max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(burst),
            burst,
        }
    }

    /// Checks a request of `cost` against `tat`; returns the verdict and the new TAT
    /// (unchanged when refused).
    pub fn check(&self, tat: u64, now: u64, cost: u64) -> (Verdict, u64) {
        let base = tat.max(now);
        let new_tat = base.saturating_add(cost.saturating_mul(self.interval));
        let ahead = new_tat - now;
        if ahead <= self.tolerance {
            let remaining = (self.tolerance - ahead) / self.interval;
            (
                Verdict {
                    allowed: true,
                    remaining,
                    retry_after: 0,
                    reset: ahead,
                },
                new_tat,
            )
        } else {
            (
                Verdict {
                    allowed: false,
                    remaining: 0,
                    retry_after: ahead - self.tolerance,
                    reset: base - now,
                },
                tat,
            )
        }
    }

    /// How many units could be taken at once at `now` (for leases).
    pub fn available(&self, tat: u64, now: u64) -> u64 {
        let used = tat.max(now) - now;
        self.tolerance.saturating_sub(used) / self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_steady_rate() {
        let g = Gcra::new(10, S, 20);
        let mut tat = 0;
        let now = 1_000 * S;
        for i in 0..20 {
            let (v, t) = g.check(tat, now, 1);
            assert!(v.allowed, "request {i}");
            assert_eq!(v.remaining, 19 - i);
            tat = t;
        }
        let (v, _) = g.check(tat, now, 1);
        assert!(!v.allowed);
        assert_eq!(v.retry_after, S / 10);
        // One interval later exactly one more fits.
        let (v, t) = g.check(tat, now + S / 10, 1);
        assert!(v.allowed);
        let (v, _) = g.check(t, now + S / 10, 1);
        assert!(!v.allowed);
    }

    #[test]
    fn cost_counts_as_several_requests() {
        let g = Gcra::new(10, S, 10);
        let (v, tat) = g.check(0, 5 * S, 10);
        assert!(v.allowed);
        assert_eq!(v.remaining, 0);
        let (v, _) = g.check(tat, 5 * S, 1);
        assert!(!v.allowed);
        // A cost above the burst can never pass.
        assert!(!g.check(0, 5 * S, 11).0.allowed);
    }

    #[test]
    fn available_units_for_a_lease() {
        let g = Gcra::new(100, S, 50);
        assert_eq!(g.available(0, 10 * S), 50);
        let (_, tat) = g.check(0, 10 * S, 30);
        assert_eq!(g.available(tat, 10 * S), 20);
    }
}
