//! Retry budget: retries may add at most a percentage of the request rate (plus a small
//! floor per second), so retries cannot multiply the load on an upstream that is already
//! failing. Lock-free: two atomics.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Token bucket filled by requests and drained by retries.
#[derive(Debug)]
pub struct RetryBudget {
    /// Hundredths of a retry token.
    tokens: AtomicI64,
    percent: i64,
    min_per_second: u64,
    /// Retries taken from the per-second floor: (second << 32) | count.
    floor: AtomicU64,
}

/// Cap on saved-up budget, so a long quiet period cannot fund a retry storm.
const MAX_TOKENS: i64 = 1000 * 100;

impl RetryBudget {
    pub fn new(percent: u32, min_per_second: u32) -> Self {
        Self {
            tokens: AtomicI64::new(0),
            percent: i64::from(percent),
            min_per_second: u64::from(min_per_second),
            floor: AtomicU64::new(0),
        }
    }

    /// Called once per request.
    pub fn deposit(&self) {
        if self.percent > 0 && self.tokens.load(Ordering::Relaxed) < MAX_TOKENS {
            self.tokens.fetch_add(self.percent, Ordering::Relaxed);
        }
    }

    /// Takes budget for one retry; false means the retry must not happen.
    pub fn try_withdraw(&self) -> bool {
        if self.tokens.fetch_sub(100, Ordering::Relaxed) >= 100 {
            return true;
        }
        self.tokens.fetch_add(100, Ordering::Relaxed);
        let second = super::now_ms() / 1000;
        let mut cur = self.floor.load(Ordering::Relaxed);
        loop {
            let (s, n) = (cur >> 32, cur & 0xffff_ffff);
            let next = if s == second {
                if n >= self.min_per_second {
                    return false;
                }
                (s << 32) | (n + 1)
            } else {
                if self.min_per_second == 0 {
                    return false;
                }
                (second << 32) | 1
            };
            match self
                .floor
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_percentage_of_requests_plus_floor() {
        let b = RetryBudget::new(20, 0);
        for _ in 0..10 {
            b.deposit();
        }
        assert!(b.try_withdraw());
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
        let floor = RetryBudget::new(0, 3);
        assert_eq!((0..5).filter(|_| floor.try_withdraw()).count(), 3);
    }
}
