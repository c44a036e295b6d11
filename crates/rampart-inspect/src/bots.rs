//! Bot rules on a route (`routes[].bots`, rules from `bot_rules`): the user agent
//! (a regular expression), headers a browser always sends but a script often does not,
//! and the TLS ClientHello's JA4 fingerprint. A match denies, adds to the request's bot
//! score (refused at the route's threshold, and added to its injection score), tags the
//! request towards the upstream (`X-Rampart-Bot`), or limits the client's matching
//! requests to a rate.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::header::{RETRY_AFTER, USER_AGENT};
use http::{HeaderName, HeaderValue};
use rampart_config::{BotAction, BotRuleSpec, PolicyMode, Spec};
use rampart_core::gcra::Gcra;
use rampart_core::metrics_text::MetricsText;
use rampart_core::{
    Denial, ExchangeCtx, FeaturePlan, Filter, Flow, MetricsSource, Outcome, Phase, Reason,
    RequestCtx, StateStore,
};
use regex::Regex;

/// The header that carries tags to the upstream; a client's own is always removed.
const TAG_HEADER: HeaderName = HeaderName::from_static("x-rampart-bot");
/// Slots of a `limit` rule's table: client addresses hash into them, so the table's
/// memory is fixed (32 KiB) however many clients there are; two addresses sharing a slot
/// share a budget, which only ever limits more.
const SLOTS: usize = 4096;

/// The bot score a request earned, for the injection filter to add to its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BotScore(pub(crate) u32);

/// The rule names to tag the upstream request with.
struct Tags(HeaderValue);

pub(crate) fn compile(spec: &Spec, state: &StateStore, out: &mut FeaturePlan) {
    let mut lists = std::collections::HashMap::new();
    let mut counters = Vec::new();
    for (i, r) in spec.routes.iter().enumerate() {
        let Some(b) = &r.bots else { continue };
        let mut rules = Vec::new();
        for name in &b.rules {
            let list = lists.entry(name.clone()).or_insert_with(|| {
                spec.bot_rules
                    .get(name)
                    .map(|l| {
                        l.iter()
                            .filter_map(|s| Rule::new(s, name, state).map(Arc::new))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            });
            rules.extend(list.iter().cloned());
        }
        let counts = Arc::new(Counts {
            route: r.name.as_str().into(),
            rules: rules
                .iter()
                .map(|r| (r.name.clone(), AtomicU64::new(0)))
                .collect(),
        });
        counters.push(counts.clone());
        out.routes[i].push(Arc::new(Bots {
            rules,
            shadow: b.mode == PolicyMode::Shadow,
            threshold: b.threshold,
            counts,
        }));
    }
    if !counters.is_empty() {
        out.metrics.push(Arc::new(Metrics(counters)));
    }
}

/// One compiled rule.
struct Rule {
    name: Box<str>,
    user_agent: Option<Regex>,
    missing: Vec<HeaderName>,
    ja4: Vec<Box<str>>,
    action: Action,
}

enum Action {
    Deny,
    Score(u32),
    Tag,
    Limit(Arc<Limiter>),
}

impl Rule {
    fn new(s: &BotRuleSpec, list: &str, state: &StateStore) -> Option<Rule> {
        let action = match s.action {
            BotAction::Deny => Action::Deny,
            BotAction::Score => Action::Score(s.points.unwrap_or(5)),
            BotAction::Tag => Action::Tag,
            BotAction::Limit => {
                let rate = s.rate?;
                let period = u64::try_from(rate.period.as_nanos()).unwrap_or(u64::MAX);
                let gcra = Gcra::new(rate.count, period, rate.count);
                // Kept across reloads while the rule keeps its rate: no budget resets.
                let key = format!("bots:{list}:{}:{rate}", s.name);
                Action::Limit(state.get_or_insert(&key, || Limiter::new(gcra)))
            }
        };
        Some(Rule {
            name: s.name.as_str().into(),
            user_agent: s.user_agent.as_deref().and_then(|r| Regex::new(r).ok()),
            missing: s
                .missing
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            ja4: s.ja4.iter().map(|g| g.as_str().into()).collect(),
            action,
        })
    }

    fn matches(&self, head: &http::request::Parts, ua: &str, ja4: Option<&str>) -> bool {
        if let Some(re) = &self.user_agent {
            if !re.is_match(ua) {
                return false;
            }
        }
        let empty = |h: &HeaderName| {
            head.headers
                .get_all(h)
                .iter()
                .all(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace))
        };
        if !self.missing.iter().all(empty) {
            return false;
        }
        if !self.ja4.is_empty() {
            let Some(fp) = ja4 else { return false };
            if !self.ja4.iter().any(|g| glob(g, fp)) {
                return false;
            }
        }
        true
    }
}

/// `pattern` against `text`, `*` matching any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// A fixed table of GCRA cells, one per slot, updated lock-free.
pub(crate) struct Limiter {
    gcra: Gcra,
    epoch: Instant,
    hasher: std::hash::RandomState,
    slots: Box<[AtomicU64]>,
}

impl Limiter {
    fn new(gcra: Gcra) -> Limiter {
        Limiter {
            gcra,
            epoch: Instant::now(),
            hasher: std::hash::RandomState::new(),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Takes one request for `ip`: `Err(nanoseconds until it would pass)` when over.
    fn take(&self, ip: IpAddr) -> Result<(), u64> {
        let slot = &self.slots[self.hasher.hash_one(ip) as usize % SLOTS];
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut tat = slot.load(Ordering::Relaxed);
        loop {
            let (v, next) = self.gcra.check(tat, now, 1);
            if !v.allowed {
                return Err(v.retry_after);
            }
            match slot.compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }
}

struct Counts {
    route: Box<str>,
    rules: Vec<(Box<str>, AtomicU64)>,
}

/// A route's bot rules.
pub(crate) struct Bots {
    rules: Vec<Arc<Rule>>,
    shadow: bool,
    threshold: u32,
    counts: Arc<Counts>,
}

impl Bots {
    /// Records a refusal (or, in shadow mode, what would have been one).
    fn refuse(&self, cx: &mut RequestCtx<'_>, reason: Reason, denial: Denial) -> Option<Flow> {
        if self.shadow {
            cx.record(reason, Outcome::ShadowDeny);
            return None;
        }
        cx.record(reason, Outcome::Deny);
        Some(Flow::Deny(denial))
    }
}

impl Filter for Bots {
    fn phase(&self) -> Phase {
        Phase::IpRules
    }

    fn name(&self) -> &'static str {
        "bots"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        let ua = cx
            .head
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ja4 = cx.ja4.clone();
        let mut score = 0u32;
        let mut matched: Vec<&str> = Vec::new();
        let mut tags: Vec<&str> = Vec::new();
        let mut refusal = None;
        for (i, r) in self.rules.iter().enumerate() {
            if !r.matches(cx.head, ua, ja4.as_deref()) {
                continue;
            }
            self.counts.rules[i].1.fetch_add(1, Ordering::Relaxed);
            matched.push(&r.name);
            match &r.action {
                Action::Deny => {
                    refusal.get_or_insert((Reason::BotDenied, Denial::new(Reason::BotDenied)));
                }
                Action::Score(p) => score = score.saturating_add(*p),
                Action::Tag => tags.push(&r.name),
                Action::Limit(l) => {
                    if let Err(wait) = l.take(cx.client_ip) {
                        let secs = wait.div_ceil(1_000_000_000).max(1);
                        let d = Denial::new(Reason::BotLimited)
                            .with_header(RETRY_AFTER, HeaderValue::from(secs));
                        refusal.get_or_insert((Reason::BotLimited, d));
                    }
                }
            }
        }
        if matched.is_empty() {
            return Flow::Continue;
        }
        let detail = format!("{} score={score}", matched.join(","));
        cx.details.push(("bot", detail.into()));
        if !tags.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&tags.join(",")) {
                cx.extensions.insert(Tags(v));
            }
        }
        if score > 0 {
            cx.extensions.insert(BotScore(score));
        }
        if refusal.is_none() && score >= self.threshold {
            refusal = Some((Reason::BotScore, Denial::new(Reason::BotScore)));
        }
        match refusal {
            Some((reason, denial)) => self.refuse(cx, reason, denial).unwrap_or(Flow::Continue),
            None => Flow::Continue,
        }
    }

    fn on_upstream_request(&self, head: &mut http::request::Parts, cx: &mut ExchangeCtx) {
        head.headers.remove(TAG_HEADER);
        if let Some(Tags(v)) = cx.extensions.get::<Tags>() {
            head.headers.insert(TAG_HEADER, v.clone());
        }
    }
}

/// `rampart_bot_matches_total`.
struct Metrics(Vec<Arc<Counts>>);

impl MetricsSource for Metrics {
    fn render(&self, out: &mut MetricsText) {
        out.family(
            "rampart_bot_matches_total",
            "counter",
            "Requests a bot rule matched, by route and rule, whatever the rule's action.",
        );
        for c in &self.0 {
            for (rule, n) in &c.rules {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    out.sample(
                        "rampart_bot_matches_total",
                        &[("route", &c.route), ("rule", rule)],
                        n,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_fingerprints() {
        assert!(glob("t13d1516h2_*", "t13d1516h2_8daaf6152771_e5627efa2ab1"));
        assert!(glob(
            "*_e5627efa2ab1",
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        ));
        assert!(glob(
            "t13d*_8daaf6152771_*",
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        ));
        assert!(!glob("t12d*", "t13d1516h2_8daaf6152771_e5627efa2ab1"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
    }

    #[test]
    fn a_limit_rule_lets_its_rate_through_per_client() {
        let l = Limiter::new(Gcra::new(3, 60_000_000_000, 3));
        let (a, b): (IpAddr, IpAddr) = (
            "203.0.113.1".parse().unwrap(),
            "203.0.113.2".parse().unwrap(),
        );
        for _ in 0..3 {
            assert!(l.take(a).is_ok());
        }
        let wait = l.take(a).unwrap_err();
        assert!(wait > 0 && wait <= 20_000_000_000, "{wait}");
        // Another client has its own budget (unless it shares the slot: then stricter).
        let other_slot =
            l.hasher.hash_one(a) as usize % SLOTS != l.hasher.hash_one(b) as usize % SLOTS;
        assert_eq!(l.take(b).is_ok(), other_slot);
    }
}
