//! The sliding-window counter for quotas over long windows (hour, day, month): two
//! counters per key, the current fixed window and the previous one, and an estimate that
//! weights the previous window by how much of it still overlaps the sliding window.
//! Error: the estimate assumes the previous window's requests were spread evenly.

/// A quota of `limit` units per `window` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub window: u64,
}

/// Per-key state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Index of the current fixed window (`now / window`).
    pub index: u64,
    pub current: u64,
    pub previous: u64,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowVerdict {
    pub allowed: bool,
    pub remaining: u64,
    /// Nanoseconds until the current fixed window ends.
    pub reset: u64,
}

impl Window {
    /// Moves `c` forward to `now`'s window.
    pub fn roll(&self, c: Counts, now: u64) -> Counts {
        let index = now / self.window;
        if index == c.index {
            c
        } else if index == c.index + 1 {
            Counts {
                index,
                current: 0,
                previous: c.current,
            }
        } else {
            Counts {
                index,
                current: 0,
                previous: 0,
            }
        }
    }

    /// The estimated units used in the sliding window ending at `now`.
    pub fn estimate(&self, c: &Counts, now: u64) -> u64 {
        let elapsed = now % self.window;
        let weight = (self.window - elapsed) as u128;
        let prev = (c.previous as u128 * weight / self.window as u128) as u64;
        prev + c.current
    }

    /// Checks a request of `cost`; returns the verdict and the new counts.
    pub fn check(&self, c: Counts, now: u64, cost: u64) -> (WindowVerdict, Counts) {
        let mut c = self.roll(c, now);
        let used = self.estimate(&c, now);
        let reset = self.window - now % self.window;
        if used + cost <= self.limit {
            c.current += cost;
            (
                WindowVerdict {
                    allowed: true,
                    remaining: self.limit - used - cost,
                    reset,
                },
                c,
            )
        } else {
            (
                WindowVerdict {
                    allowed: false,
                    remaining: self.limit.saturating_sub(used),
                    reset,
                },
                c,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000_000_000;

    #[test]
    fn quota_is_enforced_and_rolls_over() {
        let w = Window {
            limit: 100,
            window: H,
        };
        let mut c = Counts::default();
        let t0 = 10 * H;
        for _ in 0..100 {
            let (v, n) = w.check(c, t0, 1);
            assert!(v.allowed);
            c = n;
        }
        assert!(!w.check(c, t0 + 10, 1).0.allowed);
        // Half-way through the next window half of the previous one still counts.
        let (v, _) = w.check(c, t0 + H + H / 2, 1);
        assert!(v.allowed);
        assert_eq!(v.remaining, 100 - 50 - 1);
        // Two windows later it is all gone.
        let (v, _) = w.check(c, t0 + 2 * H, 1);
        assert_eq!(v.remaining, 99);
    }
}
