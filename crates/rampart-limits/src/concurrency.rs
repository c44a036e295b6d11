//! Concurrency limits: at most `max` requests in flight per route or per consumer. The
//! slot is held by the exchange and released when the response has been sent (or the
//! client went away).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rampart_config::LimitKey;
use rampart_core::{Denial, Filter, Flow, Mode, Outcome, Phase, Reason, RequestCtx};

/// A held slot; dropping it frees the slot.
struct Slot(Arc<AtomicU64>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The in-flight counters of one route.
pub struct Concurrency {
    by: LimitKey,
    max: u64,
    per_consumer: HashMap<Arc<str>, u64>,
    route: Arc<AtomicU64>,
    consumers: Mutex<HashMap<Arc<str>, Arc<AtomicU64>>>,
    mode: Mode,
}

impl Concurrency {
    /// `max` for the route, or per consumer (`per_consumer` holds plan overrides).
    pub fn new(by: LimitKey, max: u64, per_consumer: HashMap<Arc<str>, u64>, mode: Mode) -> Self {
        Self {
            by,
            max,
            per_consumer,
            route: Arc::new(AtomicU64::new(0)),
            consumers: Mutex::new(HashMap::new()),
            mode,
        }
    }

    fn counter(&self, cx: &RequestCtx<'_>) -> (Arc<AtomicU64>, u64) {
        if self.by != LimitKey::Consumer {
            return (self.route.clone(), self.max);
        }
        let Some(c) = cx.identity.as_ref().and_then(|i| i.consumer.clone()) else {
            return (self.route.clone(), self.max);
        };
        let max = self.per_consumer.get(&c).copied().unwrap_or(self.max);
        let mut map = self.consumers.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, v| v.load(Ordering::Acquire) > 0);
        }
        (map.entry(c).or_default().clone(), max)
    }
}

impl Filter for Concurrency {
    fn phase(&self) -> Phase {
        Phase::RateLimit
    }

    fn name(&self) -> &'static str {
        "concurrency"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        let (counter, max) = self.counter(cx);
        let now = counter.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = Slot(counter);
        if now > max {
            drop(slot);
            if self.mode == Mode::Shadow {
                cx.record(Reason::ConcurrencyShadow, Outcome::ShadowDeny);
                return Flow::Continue;
            }
            cx.record(Reason::ConcurrencyLimited, Outcome::Deny);
            return Flow::Deny(Denial::new(Reason::ConcurrencyLimited).with_header(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            ));
        }
        cx.guards.push(Box::new(slot));
        Flow::Continue
    }
}
