//! The core of anomaly detection on live traffic: per caller and route,
//! the signals of each window (requests, authentication and access failures, response
//! bytes, distinct object ids), each scored against an exponentially weighted baseline
//! of the consumer's own past windows.
//!
//! - A baseline learns for `warmup` windows before it scores anything.
//! - After that, a window is folded in winsorised, clamped to `mean ± clamp·sd`: one
//!   burst, or an attacker raising the baseline a little each window, moves it little.
//! - The spread is floored (at a tenth of the mean, and at the signal's `min_sd`), so a
//!   perfectly steady consumer is not flagged for a small change, nor a quiet one for a
//!   few more requests.
//! - Distinct ids per window are counted in a HyperLogLog of 256 one-byte registers:
//!   constant memory per consumer, about 6.5% standard error. Walking ids 1..10,000 is
//!   the enumeration signal of OWASP API1 (BOLA).
//!
//! Time is a parameter (`now`, seconds), so the detector is tested with synthetic time
//! and never reads a clock itself.

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
    /// The smallest spread scored against, by signal (in [`SIGNALS`] order).
    pub min_sd: [f64; 4],
    /// Seconds a window lasts.
    pub window: u64,
    /// A signal scoring this many standard deviations above its baseline is flagged.
    pub threshold: f64,
    /// The signals scored, in [`SIGNALS`] order (all are learnt).
    pub scored: [bool; 4],
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            warmup: 10,
            clamp: 3.0,
            min_sd: MIN_SD,
            window: 60,
            threshold: 6.0,
            scored: [true; 4],
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

    fn sd(&self, min_sd: f64) -> f64 {
        self.var.sqrt().max(self.mean.abs() * 0.1).max(min_sd)
    }

    /// How far above (or below, negative) the baseline `x` is, in standard deviations
    /// (at least `min_sd`); 0 while the baseline is warming up.
    pub fn score(&self, x: f64, min_sd: f64, t: &Tuning) -> f64 {
        if self.seen < t.warmup {
            return 0.0;
        }
        (x - self.mean) / self.sd(min_sd)
    }

    /// Folds a window's value in (clamped once warm).
    pub fn update(&mut self, x: f64, min_sd: f64, t: &Tuning) {
        let x = if self.seen < t.warmup {
            x
        } else {
            let sd = self.sd(min_sd);
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

/// The default spread floors: 5 requests, 3 failures, 16 KiB, 3 ids a window.
pub const MIN_SD: [f64; 4] = [5.0, 3.0, 16_384.0, 3.0];

/// What one exchange adds to a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The status sent.
    pub status: u16,
    /// Response bytes sent.
    pub bytes: u64,
    /// The hash of the object id named (a path parameter), if any.
    pub id: Option<u64>,
}

/// One caller's current window on one route, and its baselines (about 400 bytes).
#[derive(Clone)]
pub struct Consumer {
    window_start: u64,
    requests: f64,
    failures: f64,
    bytes: f64,
    ids: Distinct,
    baselines: [Baseline; 4],
    /// The last closed window's highest score: (signal index, score).
    last: (usize, f64),
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
            last: (0, 0.0),
        }
    }

    /// The last closed window's highest score among the scored signals: (index in
    /// [`SIGNALS`], score).
    pub fn last_score(&self) -> (usize, f64) {
        self.last
    }

    /// When the current window started (seconds): how recently the caller was seen.
    pub fn window_start(&self) -> u64 {
        self.window_start
    }

    /// Counts one exchange at `now` (seconds). When `now` is past the current window,
    /// that window is scored and folded into the baselines first (and empty windows in
    /// between count as quiet ones), returning a flag if any signal scored `t.threshold`
    /// or more.
    pub fn observe(&mut self, now: u64, seen: Seen, t: &Tuning) -> Option<Flag> {
        let flag = self.roll(now, t);
        self.requests += 1.0;
        if matches!(seen.status, 401 | 403 | 404) {
            self.failures += 1.0;
        }
        self.bytes += seen.bytes as f64;
        if let Some(h) = seen.id {
            self.ids.add(h);
        }
        flag
    }

    /// Closes every window that ended by `now`; the first one's flag, if any.
    pub fn roll(&mut self, now: u64, t: &Tuning) -> Option<Flag> {
        // A clock stepped back: the window goes on rather than scoring a negative span.
        let now = now.max(self.window_start);
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
        self.last = (0, 0.0);
        for (i, v) in values.iter().enumerate() {
            let s = self.baselines[i].score(*v, t.min_sd[i], t);
            if t.scored[i] && s > self.last.1 {
                self.last = (i, s);
            }
            if t.scored[i] && s >= t.threshold {
                flagged.push((SIGNALS[i], *v, self.baselines[i].mean(), s));
            }
            self.baselines[i].update(*v, t.min_sd[i], t);
        }
        let closed = self.window_start;
        // Quiet windows since (at most a warm-up's worth: older ones teach nothing new).
        let quiet = ((now - self.window_start) / window - 1).min(u64::from(t.warmup));
        for _ in 0..quiet {
            for (i, b) in self.baselines.iter_mut().enumerate() {
                b.update(0.0, t.min_sd[i], t);
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
            let seen = Seen {
                status: 200,
                bytes: 1_000,
                id: Some(hash(id(i))),
            };
            if let Some(f) = c.observe(now, seen, &t) {
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
            assert!(b.score(100.0, 1.0, &t) <= 3.0, "{i}");
            b.update(100.0 + (i % 3) as f64, 1.0, &t);
        }
        assert!(b.score(1_000.0, 1.0, &t) > 50.0);
        let before = b.mean();
        b.update(1_000.0, 1.0, &t);
        assert!(b.mean() - before < 2.0, "{} -> {}", before, b.mean());
        // Still learning: nothing is scored.
        let cold = Baseline::new();
        assert_eq!(cold.score(1e9, 1.0, &t), 0.0);
    }
}
