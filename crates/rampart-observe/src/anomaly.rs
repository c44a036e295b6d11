//! The core of anomaly detection on live traffic (issue "Live monitoring"): per consumer,
//! the signals of each window (requests, authentication and access failures, response
//! bytes, distinct object ids), each scored against an exponentially weighted baseline
//! of the consumer's own past windows.
//!
//! - A baseline learns for `warmup` windows before it scores anything.
//! - After that, a window is folded in winsorised, clamped to `mean ± clamp·sd`: one
//!   burst, or an attacker raising the baseline a little each window, moves it little.
//! - The spread is floored (at a tenth of the mean, and at `min_sd`), so a perfectly
//!   steady consumer is not flagged for a small change.
//! - Distinct ids per window are counted in a HyperLogLog of 256 one-byte registers:
//!   constant memory per consumer, about 6.5% standard error. Walking ids 1..10,000 is
//!   the enumeration signal of OWASP API1 (BOLA).
//!
//! Time is a parameter (`now`, seconds), so the detector is tested with synthetic time
//! and never reads a clock itself. Wiring it into the log phase, the actions (shadow,
//! alert, throttle, ban) and eviction of idle consumers come next.

/// An exponentially weighted mean and variance of one signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    mean: f64,
    var: f64,
    seen: u32,
}

/// How baselines learn and score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// The weight of the newest window (0.05: about the last 20 windows count).
    pub alpha: f64,
    /// Windows learnt before any score.
    pub warmup: u32,
    /// Updates are clamped to this many standard deviations from the mean.
    pub clamp: f64,
    /// The smallest spread scored against.
    pub min_sd: f64,
    /// Seconds a window lasts.
    pub window: u64,
    /// A signal scoring this many standard deviations above its baseline is flagged.
    pub threshold: f64,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            warmup: 10,
            clamp: 3.0,
            min_sd: 1.0,
            window: 60,
            threshold: 6.0,
        }
    }
}

impl Baseline {
    pub const fn new() -> Self {
        Self {
            mean: 0.0,
            var: 0.0,
            seen: 0,
        }
    }

    fn sd(&self, t: &Tuning) -> f64 {
        self.var.sqrt().max(self.mean.abs() * 0.1).max(t.min_sd)
    }

    /// How far above (or below, negative) the baseline `x` is, in standard deviations;
    /// 0 while the baseline is warming up.
    pub fn score(&self, x: f64, t: &Tuning) -> f64 {
        if self.seen < t.warmup {
            return 0.0;
        }
        (x - self.mean) / self.sd(t)
    }

    /// Folds a window's value in (clamped once warm).
    pub fn update(&mut self, x: f64, t: &Tuning) {
        let x = if self.seen < t.warmup {
            x
        } else {
            let sd = self.sd(t);
            x.clamp(self.mean - t.clamp * sd, self.mean + t.clamp * sd)
        };
        if self.seen == 0 {
            self.mean = x;
        } else {
            // West's exponentially weighted update of mean and variance.
            let d = x - self.mean;
            let incr = t.alpha * d;
            self.mean += incr;
            self.var = (1.0 - t.alpha) * (self.var + d * incr);
        }
        self.seen = self.seen.saturating_add(1);
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    pub fn is_warm(&self, t: &Tuning) -> bool {
        self.seen >= t.warmup
    }
}

impl Default for Baseline {
    fn default() -> Self {
        Self::new()
    }
}

/// A HyperLogLog of 256 registers: distinct 64-bit hashes, estimated.
#[derive(Clone)]
pub struct Distinct([u8; 256]);

impl Distinct {
    pub const fn new() -> Self {
        Self([0; 256])
    }

    /// Adds a value's 64-bit hash (well mixed: SipHash, a keyed hasher).
    pub fn add(&mut self, hash: u64) {
        let idx = (hash >> 56) as usize;
        let rank = ((hash << 8) | 0x80).leading_zeros() as u8 + 1;
        if rank > self.0[idx] {
            self.0[idx] = rank;
        }
    }

    /// The estimated number of distinct values added.
    pub fn estimate(&self) -> f64 {
        const M: f64 = 256.0;
        let alpha = 0.7213 / (1.0 + 1.079 / M);
        let sum: f64 = self.0.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
        let raw = alpha * M * M / sum;
        let zeros = self.0.iter().filter(|r| **r == 0).count();
        if raw <= 2.5 * M && zeros > 0 {
            // Small ranges: linear counting is the better estimate.
            M * (M / zeros as f64).ln()
        } else {
            raw
        }
    }

    pub fn clear(&mut self) {
        self.0 = [0; 256];
    }
}

impl Default for Distinct {
    fn default() -> Self {
        Self::new()
    }
}

/// The signals of one window.
pub const SIGNALS: [&str; 4] = [
    "requests",
    "auth_failures",
    "response_bytes",
    "distinct_ids",
];

/// One consumer's current window and its baselines.
#[derive(Clone)]
pub struct Consumer {
    window_start: u64,
    requests: f64,
    failures: f64,
    bytes: f64,
    ids: Distinct,
    baselines: [Baseline; 4],
}

/// A window whose signals scored at or above the threshold: which, and by how much.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub window_start: u64,
    /// (signal, the window's value, the baseline's mean, the score).
    pub signals: Vec<(&'static str, f64, f64, f64)>,
}

impl Consumer {
    pub fn new(now: u64) -> Self {
        Self {
            window_start: now,
            requests: 0.0,
            failures: 0.0,
            bytes: 0.0,
            ids: Distinct::new(),
            baselines: [Baseline::new(); 4],
        }
    }

    /// Counts one exchange at `now` (seconds): its status, response bytes, and the hash
    /// of the object id it named (a path parameter), if any. When `now` is past the
    /// current window, that window is scored and folded into the baselines first (and
    /// empty windows in between count as quiet ones), returning a flag if any signal
    /// scored `t.threshold` or more.
    pub fn observe(
        &mut self,
        now: u64,
        status: u16,
        bytes: u64,
        id: Option<u64>,
        t: &Tuning,
    ) -> Option<Flag> {
        let flag = self.roll(now, t);
        self.requests += 1.0;
        if matches!(status, 401 | 403 | 404) {
            self.failures += 1.0;
        }
        self.bytes += bytes as f64;
        if let Some(h) = id {
            self.ids.add(h);
        }
        flag
    }

    /// Closes every window that ended by `now`; the first one's flag, if any.
    pub fn roll(&mut self, now: u64, t: &Tuning) -> Option<Flag> {
        let window = t.window.max(1);
        if now < self.window_start + window {
            return None;
        }
        let values = [
            self.requests,
            self.failures,
            self.bytes,
            self.ids.estimate(),
        ];
        let mut flagged = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let s = self.baselines[i].score(*v, t);
            if s >= t.threshold {
                flagged.push((SIGNALS[i], *v, self.baselines[i].mean(), s));
            }
            self.baselines[i].update(*v, t);
        }
        let closed = self.window_start;
        // Quiet windows since (at most a warm-up's worth: older ones teach nothing new).
        let quiet = ((now - self.window_start) / window - 1).min(u64::from(t.warmup));
        for _ in 0..quiet {
            for b in &mut self.baselines {
                b.update(0.0, t);
            }
        }
        self.window_start = now - (now - self.window_start) % window;
        self.requests = 0.0;
        self.failures = 0.0;
        self.bytes = 0.0;
        self.ids.clear();
        (!flagged.is_empty()).then_some(Flag {
            window_start: closed,
            signals: flagged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash, Hasher};

    /// A fixed-key SipHash: the same id always hashes the same.
    fn hash(v: u64) -> u64 {
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn distinct_values_are_estimated_within_a_few_percent() {
        let s = std::collections::hash_map::RandomState::new();
        for n in [10u64, 100, 1_000, 10_000, 100_000] {
            let mut d = Distinct::new();
            for v in 0..n {
                d.add(s.hash_one(v));
                // Repeats do not count.
                d.add(s.hash_one(v));
            }
            let e = d.estimate();
            assert!((e - n as f64).abs() <= n as f64 * 0.2 + 2.0, "{n}: {e}");
        }
    }

    /// A consumer's traffic from `from` to `to`, one request every `every` seconds
    /// naming the id `id(i)`; returns every flag raised.
    fn traffic(
        c: &mut Consumer,
        from: u64,
        to: u64,
        every: u64,
        id: impl Fn(u64) -> u64,
    ) -> Vec<Flag> {
        let t = Tuning::default();
        let mut flags = Vec::new();
        let mut now = from;
        let mut i = 0;
        while now < to {
            if let Some(f) = c.observe(now, 200, 1_000, Some(hash(id(i))), &t) {
                flags.push(f);
            }
            now += every;
            i += 1;
        }
        flags
    }

    #[test]
    fn a_consumer_walking_ids_is_flagged_and_a_steady_one_is_not() {
        // A day of steady traffic: one request every 2 s over the same 5 orders.
        let mut steady = Consumer::new(0);
        let flags = traffic(&mut steady, 0, 86_400, 2, |i| i % 5);
        assert!(flags.is_empty(), "{flags:?}");

        // The same history, then ids 1..10,000 walked at the same request rate.
        let mut walker = Consumer::new(0);
        assert!(traffic(&mut walker, 0, 86_400, 2, |i| i % 5).is_empty());
        let flags = traffic(&mut walker, 86_400, 86_400 + 20_000, 2, |i| i);
        let first = flags.first().expect("enumeration flagged");
        assert_eq!(first.window_start, 86_400, "in its first window");
        let (signal, value, mean, _) = first.signals[0];
        assert_eq!(signal, "distinct_ids");
        assert!(value > 25.0 && mean < 6.0, "{first:?}");
        // Only the ids moved: the rate, failures and bytes did not.
        assert!(
            first.signals.iter().all(|s| s.0 == "distinct_ids"),
            "{first:?}"
        );
    }

    #[test]
    fn a_burst_after_warmup_is_scored_and_does_not_move_the_baseline_much() {
        let t = Tuning::default();
        let mut b = Baseline::new();
        for i in 0..50 {
            assert!(b.score(100.0, &t) <= 3.0, "{i}");
            b.update(100.0 + (i % 3) as f64, &t);
        }
        assert!(b.score(1_000.0, &t) > 50.0);
        let before = b.mean();
        b.update(1_000.0, &t);
        assert!(b.mean() - before < 2.0, "{} -> {}", before, b.mean());
        // Still learning: nothing is scored.
        let cold = Baseline::new();
        assert_eq!(cold.score(1e9, &t), 0.0);
    }
}
