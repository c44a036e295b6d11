//! Request metrics, recorded in the log phase with a handful of relaxed atomic adds (no
//! locks, no label lookups on the request path: every counter a request can touch is
//! created when the plan is compiled) and rendered in the Prometheus text format on
//! scrape. Labels are bounded by configuration: route names, a fixed method set, status
//! classes and the fixed set of reason codes; never paths, IPs or consumer ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::Method;
use rampart_core::{Decision, MetricsText, Outcome, Problem, Reason};

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Upper bounds (seconds) of the request duration histogram.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// Counters of one route (or of requests that matched no route).
///
/// The counters are allocated when the route sees its first request (and the decision
/// counters at its first decision), so a config with many routes costs a few bytes per
/// route until traffic arrives: 10,000 routes would otherwise hold 15 MB of zeros. The
/// request path pays one acquire load to find them.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    counters: OnceLock<Box<RouteCounters>>,
    /// Identity and access decisions, by reason and outcome.
    pub decisions: DecisionCounters,
}

#[derive(Debug, Default)]
struct RouteCounters {
    requests: [[AtomicU64; 5]; 8],
    buckets: [AtomicU64; BUCKETS.len()],
    duration_micros: AtomicU64,
    count: AtomicU64,
}

/// One counter per (reason, outcome), allocated at the first decision.
#[derive(Debug, Default)]
pub struct DecisionCounters(OnceLock<Box<[AtomicU64]>>);

impl DecisionCounters {
    pub fn record(&self, d: Decision) {
        let counts = self.0.get_or_init(|| {
            (0..Reason::ALL.len() * Outcome::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect()
        });
        counts[d.reason.index() * Outcome::ALL.len() + d.outcome.index()]
            .fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self, r: usize, o: usize) -> u64 {
        self.0
            .get()
            .map_or(0, |c| c[r * Outcome::ALL.len() + o].load(Ordering::Relaxed))
    }
}

impl RouteMetrics {
    /// Records one finished request.
    pub fn record(&self, method: &Method, status: u16, seconds: f64) {
        let m = self.counters.get_or_init(Box::default);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        m.requests[method_index(method)][class].fetch_add(1, Ordering::Relaxed);
        if let Some(b) = BUCKETS.iter().position(|&ub| seconds <= ub) {
            m.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        m.duration_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        m.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// A route's counters at one instant, summed over methods (for the dashboard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteTotals {
    /// Requests by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub by_class: [u64; 5],
    /// Requests by duration bucket ([`BUCKETS`]; slower ones are in none).
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub duration_micros: u64,
}

impl RouteTotals {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &RouteTotals) {
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a += b;
        }
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.duration_micros += other.duration_micros;
    }

    /// What was counted since `earlier` (saturating: counters only grow).
    pub fn since(&self, earlier: &RouteTotals) -> RouteTotals {
        let mut d = RouteTotals::default();
        for i in 0..5 {
            d.by_class[i] = self.by_class[i].saturating_sub(earlier.by_class[i]);
        }
        for i in 0..BUCKETS.len() {
            d.buckets[i] = self.buckets[i].saturating_sub(earlier.buckets[i]);
        }
        d.count = self.count.saturating_sub(earlier.count);
        d.duration_micros = self.duration_micros.saturating_sub(earlier.duration_micros);
        d
    }

    /// The upper bound (seconds) of the bucket holding quantile `q` of these requests;
    /// `None` without requests, or when it is slower than the last bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let want = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(BUCKETS[i]);
            }
        }
        None
    }
}

impl RouteMetrics {
    /// The counters now (all zero before the first request).
    pub fn totals(&self) -> RouteTotals {
        let Some(m) = self.counters.get() else {
            return RouteTotals::default();
        };
        let mut t = RouteTotals::default();
        for per_method in &m.requests {
            for (c, n) in per_method.iter().enumerate() {
                t.by_class[c] += n.load(Ordering::Relaxed);
            }
        }
        for (b, n) in m.buckets.iter().enumerate() {
            t.buckets[b] = n.load(Ordering::Relaxed);
        }
        t.count = m.count.load(Ordering::Relaxed);
        t.duration_micros = m.duration_micros.load(Ordering::Relaxed);
        t
    }

    /// Decisions so far, by (reason code, outcome), those counted at least once.
    pub fn decision_counts(&self) -> Vec<(&'static str, Outcome, u64)> {
        let mut out = Vec::new();
        if self.decisions.0.get().is_none() {
            return out;
        }
        for (ri, r) in Reason::ALL.iter().enumerate() {
            for (oi, o) in Outcome::ALL.iter().enumerate() {
                let n = self.decisions.get(ri, oi);
                if n > 0 {
                    out.push((r.code(), *o, n));
                }
            }
        }
        out
    }
}

/// Counters of one upstream target: exchanges, failures and time to response head.
#[derive(Debug, Default)]
pub struct TargetMetrics {
    pub requests: AtomicU64,
    /// Connect failures, timeouts, broken exchanges and 502/503/504 answers.
    pub errors: AtomicU64,
    header_micros: AtomicU64,
}

impl TargetMetrics {
    /// Microseconds to response head, summed over this target's exchanges.
    pub fn header_micros(&self) -> u64 {
        self.header_micros.load(Ordering::Relaxed)
    }

    pub fn record(&self, seconds: f64, failed: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.header_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Reasons a TLS handshake can fail, as metric labels.
pub const TLS_FAILURE_REASONS: [&str; 5] = [
    "timeout",
    "client_certificate",
    "protocol",
    "alert",
    "other",
];

/// Counters of one listener.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    pub active: AtomicU64,
    pub tls_failures: [AtomicU64; 5],
    /// Connections a connect-phase filter refused.
    pub connect_refused: AtomicU64,
}

/// Counters of gateway-generated answers, by reason code.
#[derive(Debug)]
pub struct CodeMetrics {
    counts: Vec<AtomicU64>,
}

impl Default for CodeMetrics {
    fn default() -> Self {
        Self {
            counts: (0..Problem::ALL.len() + Reason::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

impl CodeMetrics {
    /// Every code counted at least once, with its count.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let names = Problem::ALL
            .iter()
            .map(|p| p.code)
            .chain(Reason::ALL.iter().map(|r| r.code()));
        names
            .zip(&self.counts)
            .map(|(name, n)| (name, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub fn record(&self, code: &str) {
        let i = Problem::ALL
            .iter()
            .position(|p| p.code == code)
            .or_else(|| {
                Reason::ALL
                    .iter()
                    .position(|r| r.code() == code)
                    .map(|i| i + Problem::ALL.len())
            });
        if let Some(i) = i {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Renders request metrics. `routes` pairs route names with their counters; the unrouted
/// counters are labelled `route=""`.
pub fn render_requests(
    out: &mut MetricsText,
    routes: &[(&str, &RouteMetrics)],
    codes: &CodeMetrics,
) {
    out.family(
        "rampart_requests_total",
        "counter",
        "Requests answered, by route, method and status class.",
    );
    // Routes that have not answered a request yet have no series.
    let counted = || {
        routes
            .iter()
            .filter_map(|(route, m)| Some((*route, m.counters.get()?)))
    };
    for (route, m) in counted() {
        for (mi, method) in METHODS.iter().enumerate() {
            for (ci, class) in CLASSES.iter().enumerate() {
                let n = m.requests[mi][ci].load(Ordering::Relaxed);
                if n > 0 {
                    out.sample(
                        "rampart_requests_total",
                        &[
                            ("route", route),
                            ("method", method),
                            ("status_class", class),
                        ],
                        n,
                    );
                }
            }
        }
    }
    out.family(
        "rampart_request_duration_seconds",
        "histogram",
        "Time from request to response head, by route.",
    );
    for (route, m) in counted() {
        let counts: Vec<u64> = m
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        out.histogram(
            "rampart_request_duration_seconds",
            &[("route", route)],
            &BUCKETS,
            &counts,
            m.count.load(Ordering::Relaxed),
            m.duration_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
    }
    out.family(
        "rampart_gateway_responses_total",
        "counter",
        "Answers the gateway gave itself, by reason code.",
    );
    let problems = Problem::ALL.iter().map(|p| (p.code, p.status.as_u16()));
    let reasons = Reason::ALL.iter().map(|r| (r.code(), r.status()));
    for (i, (code, status)) in problems.chain(reasons).enumerate() {
        let n = codes.counts[i].load(Ordering::Relaxed);
        if n > 0 {
            let status = status.to_string();
            out.sample(
                "rampart_gateway_responses_total",
                &[("code", code), ("status", &status)],
                n,
            );
        }
    }
    out.family(
        "rampart_access_decisions_total",
        "counter",
        "Identity and access decisions, by route, reason and outcome.",
    );
    for (route, m) in routes {
        for (ri, r) in Reason::ALL.iter().enumerate() {
            for (oi, o) in Outcome::ALL.iter().enumerate() {
                let n = m.decisions.get(ri, oi);
                if n > 0 {
                    out.sample(
                        "rampart_access_decisions_total",
                        &[
                            ("route", route),
                            ("reason", r.code()),
                            ("outcome", o.as_str()),
                        ],
                        n,
                    );
                }
            }
        }
    }
}

/// A per-target counter family: name, help text, and how to read it.
type TargetCounter = (&'static str, &'static str, fn(&TargetMetrics) -> f64);

/// Renders upstream and listener metrics.
pub fn render_upstreams_and_listeners(
    out: &mut MetricsText,
    targets: &[(&str, &str, &TargetMetrics)],
    listeners: &[(&str, &ListenerMetrics)],
) {
    // One family per counter, each labelled by upstream and target.
    let families: [TargetCounter; 3] = [
        (
            "rampart_upstream_requests_total",
            "Upstream exchanges by target.",
            |m| m.requests.load(Ordering::Relaxed) as f64,
        ),
        (
            "rampart_upstream_errors_total",
            "Failed upstream exchanges (connect errors, timeouts, 502/503/504).",
            |m| m.errors.load(Ordering::Relaxed) as f64,
        ),
        (
            "rampart_upstream_response_seconds_sum",
            "Total time to upstream response heads.",
            |m| m.header_micros.load(Ordering::Relaxed) as f64 / 1e6,
        ),
    ];
    for (name, help, value) in families {
        out.family(name, "counter", help);
        for (u, t, m) in targets {
            out.sample_f64(name, &[("upstream", u), ("target", t)], value(m));
        }
    }
    out.family(
        "rampart_listener_connections",
        "gauge",
        "Client connections open, by listener.",
    );
    for (l, m) in listeners {
        out.sample(
            "rampart_listener_connections",
            &[("listener", l)],
            m.active.load(Ordering::Relaxed),
        );
    }
    out.family(
        "rampart_connections_refused_total",
        "counter",
        "Connections refused by a connect-phase filter, by listener.",
    );
    for (l, m) in listeners {
        out.sample(
            "rampart_connections_refused_total",
            &[("listener", l)],
            m.connect_refused.load(Ordering::Relaxed),
        );
    }
    out.family(
        "rampart_tls_handshake_failures_total",
        "counter",
        "Failed TLS handshakes, by listener and reason.",
    );
    for (l, m) in listeners {
        for (i, reason) in TLS_FAILURE_REASONS.iter().enumerate() {
            let n = m.tls_failures[i].load(Ordering::Relaxed);
            if n > 0 {
                out.sample(
                    "rampart_tls_handshake_failures_total",
                    &[("listener", l), ("reason", reason)],
                    n,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = RouteMetrics::default();
        m.record(&Method::GET, 200, 0.002);
        m.record(&Method::GET, 503, 0.2);
        m.record(&Method::from_bytes(b"PROPFIND").unwrap(), 404, 20.0);
        let codes = CodeMetrics::default();
        codes.record("route.not_found");
        let mut out = MetricsText::new();
        let idle = RouteMetrics::default();
        render_requests(&mut out, &[("orders", &m), ("idle", &idle)], &codes);
        let out = out.finish();
        // A route that has answered nothing has no series (its counters do not exist yet).
        assert!(!out.contains("route=\"idle\""), "{out}");
        assert!(
            out.contains(
                "rampart_requests_total{route=\"orders\",method=\"GET\",status_class=\"2xx\"} 1\n"
            ),
            "{out}"
        );
        assert!(out.contains(
            "rampart_requests_total{route=\"orders\",method=\"other\",status_class=\"4xx\"} 1\n"
        ));
        assert!(out.contains(
            "rampart_request_duration_seconds_bucket{route=\"orders\",le=\"0.0025\"} 1\n"
        ));
        assert!(out
            .contains("rampart_request_duration_seconds_bucket{route=\"orders\",le=\"0.25\"} 2\n"));
        assert!(out
            .contains("rampart_request_duration_seconds_bucket{route=\"orders\",le=\"+Inf\"} 3\n"));
        assert!(out.contains(
            "rampart_gateway_responses_total{code=\"route.not_found\",status=\"404\"} 1\n"
        ));
    }
}
