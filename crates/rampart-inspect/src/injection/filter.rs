//! The `inspect` filter of a route: gathers the request's leaf values (path segments,
//! query and form fields, JSON strings and member names, chosen headers, cookies), skips
//! the excluded ones, scans each, adds the findings up and refuses at the threshold.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::header::{CONTENT_TYPE, COOKIE};
use http::HeaderName;
use rampart_config::{parse_exclusion, InspectSpec, PolicyMode, Spec};
use rampart_core::metrics_text::MetricsText;
use rampart_core::{
    Denial, FeaturePlan, Filter, Flow, MetricsSource, Outcome, Phase, Reason, RequestCtx,
};

use super::{Detector, Findings, InjectionDetector};
use crate::openapi::tape::Tape;

/// At most this many findings are named in the log line's detail.
const MAX_NAMED: usize = 8;

pub(crate) fn compile(spec: &Spec, out: &mut FeaturePlan) {
    let mut counters = Vec::new();
    for (i, r) in spec.routes.iter().enumerate() {
        let Some(s) = &r.inspect else { continue };
        let f = Arc::new(Inspect::new(s, &r.name));
        counters.push(f.counts.clone());
        out.routes[i].push(f);
    }
    if !counters.is_empty() {
        out.metrics.push(Arc::new(Metrics(counters)));
    }
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Path,
    Query,
    Form,
    Json,
    Header,
    Cookie,
    Body,
}

impl Loc {
    fn parse(s: &str) -> Loc {
        match s {
            "path" => Loc::Path,
            "query" => Loc::Query,
            "form" => Loc::Form,
            "json" => Loc::Json,
            "header" => Loc::Header,
            "cookie" => Loc::Cookie,
            _ => Loc::Body,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Loc::Path => "path",
            Loc::Query => "query",
            Loc::Form => "form",
            Loc::Json => "json",
            Loc::Header => "header",
            Loc::Cookie => "cookie",
            Loc::Body => "body",
        }
    }
}

/// One configured exclusion.
#[derive(Debug)]
struct Exclusion {
    detector: Option<Detector>,
    loc: Loc,
    /// `None`: the whole location.
    name: Option<Box<str>>,
}

impl Exclusion {
    fn covers(&self, loc: Loc, name: &str) -> bool {
        self.loc == loc && self.name.as_deref().is_none_or(|p| glob(p, name))
    }
}

/// `pattern` against `name`, `*` standing for any run of characters other than `/`.
fn glob(pattern: &str, name: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else {
        return pattern == name;
    };
    let Some(rest) = name.strip_prefix(head) else {
        return false;
    };
    // Try each end of the `*`'s run within the segment (short names: cheap).
    let seg = rest.find('/').unwrap_or(rest.len());
    (0..=seg).any(|k| rest.is_char_boundary(k) && glob(tail, &rest[k..]))
}

/// Counters per route for `/metrics`.
#[derive(Debug)]
struct Counts {
    route: Box<str>,
    findings: [AtomicU64; Detector::ALL.len()],
    skipped: AtomicU64,
}

/// Injection detection on one route.
pub(crate) struct Inspect {
    detector: InjectionDetector,
    shadow: bool,
    threshold: u32,
    sample_percent: u8,
    exclusions: Vec<Exclusion>,
    headers: Vec<HeaderName>,
    cookies: bool,
    body: bool,
    counts: Arc<Counts>,
}

/// The scan of one request: the score so far and the findings that made it.
struct Tally<'f> {
    filter: &'f Inspect,
    score: u32,
    /// (detector, rule, severity, location, field name) of each counted finding.
    found: Vec<(Detector, &'static str, u8, Loc, String)>,
}

impl Tally<'_> {
    /// Scans one value. `name` is the field (a parameter name, a JSON pointer); `is_name`
    /// says the value *is* the field's name (query keys, JSON member names).
    fn value(&mut self, loc: Loc, name: &str, value: &str, is_name: bool) {
        let f = self.filter;
        let mut excluded = [false; Detector::ALL.len()];
        for e in &f.exclusions {
            if e.covers(loc, name) {
                match e.detector {
                    None => return,
                    Some(d) => excluded[d as usize] = true,
                }
            }
        }
        // Headers repeat from request to request (a client's User-Agent): their findings
        // are remembered per thread.
        let findings: Findings = if loc == Loc::Header {
            cached_scan(&f.detector, value)
        } else {
            f.detector.scan(value)
        };
        for x in findings.iter() {
            if excluded[x.detector as usize] {
                continue;
            }
            f.counts.findings[x.detector as usize].fetch_add(1, Ordering::Relaxed);
            self.score += u32::from(x.severity);
            // Never the value; a field's name only when the finding is not in the name.
            let field = if is_name { String::new() } else { safe(name) };
            self.found
                .push((x.detector, x.rule, x.severity, loc, field));
        }
    }
}

/// A field name fit for a log line: printable ASCII, at most 64 characters.
fn safe(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

thread_local! {
    static SAMPLER: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) };
    static HEADER_CACHE: std::cell::RefCell<Vec<Option<CachedScan>>> =
        std::cell::RefCell::new(vec![None; CACHE_SLOTS]);
}

/// Slots of the per-thread header cache (direct-mapped: a value has one slot).
const CACHE_SLOTS: usize = 256;
/// Longer values are scanned every time (they are rare, and the cache stays small).
const CACHE_MAX_BYTES: usize = 512;

/// A header value's findings at one paranoia level.
#[derive(Clone)]
struct CachedScan {
    paranoia: u8,
    value: Box<str>,
    findings: Findings,
}

/// `detector.scan(value)`, remembered per thread. The scan is a pure function of the
/// value and the level, so a hit is exactly what a scan would find; a client sending
/// ever-new values only ever costs the scan itself.
fn cached_scan(detector: &InjectionDetector, value: &str) -> Findings {
    if value.len() > CACHE_MAX_BYTES {
        return detector.scan(value);
    }
    let hasher =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    let slot = std::hash::BuildHasher::hash_one(&hasher, value) as usize % CACHE_SLOTS;
    let paranoia = detector.paranoia();
    let hit = HEADER_CACHE.with(|c| {
        c.borrow()[slot]
            .as_ref()
            .filter(|e| e.paranoia == paranoia && *e.value == *value)
            .map(|e| e.findings)
    });
    if let Some(f) = hit {
        return f;
    }
    let findings = detector.scan(value);
    HEADER_CACHE.with(|c| {
        c.borrow_mut()[slot] = Some(CachedScan {
            paranoia,
            value: value.into(),
            findings,
        });
    });
    findings
}

/// A percentage draw per request: a thread-local xorshift, no lock, no shared line.
pub(crate) fn sampled(percent: u8) -> bool {
    if percent >= 100 {
        return true;
    }
    SAMPLER.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x % 100 < u64::from(percent)
    })
}

impl Inspect {
    fn new(s: &InspectSpec, route: &str) -> Inspect {
        let exclusions = s
            .exclude
            .iter()
            .filter_map(|e| parse_exclusion(e).ok())
            .map(|(d, loc, name)| Exclusion {
                detector: d.and_then(|d| Detector::ALL.into_iter().find(|x| x.name() == d)),
                loc: Loc::parse(loc),
                name: name.map(Into::into),
            })
            .collect();
        Inspect {
            detector: InjectionDetector::new(s.paranoia),
            shadow: s.mode == PolicyMode::Shadow,
            threshold: s.threshold,
            sample_percent: s.sample_percent,
            exclusions,
            headers: s
                .headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            cookies: s.cookies,
            body: s.body,
            counts: Arc::new(Counts {
                route: route.into(),
                findings: Default::default(),
                skipped: AtomicU64::new(0),
            }),
        }
    }

    /// Every inspected value of the request, scanned.
    fn scan(&self, cx: &RequestCtx<'_>) -> Tally<'_> {
        let mut t = Tally {
            filter: self,
            score: 0,
            found: Vec::new(),
        };
        for seg in cx.path.split('/').filter(|s| !s.is_empty()) {
            let seg = percent_encoding::percent_decode_str(seg).decode_utf8_lossy();
            t.value(Loc::Path, "", &seg, false);
        }
        if let Some(q) = cx.head.uri.query() {
            fields(&mut t, Loc::Query, q.as_bytes());
        }
        for h in &self.headers {
            for v in cx.head.headers.get_all(h) {
                t.value(
                    Loc::Header,
                    h.as_str(),
                    &String::from_utf8_lossy(v.as_bytes()),
                    false,
                );
            }
        }
        if self.cookies {
            for h in cx.head.headers.get_all(COOKIE) {
                let h = String::from_utf8_lossy(h.as_bytes());
                for (k, v) in h.split(';').filter_map(|c| c.trim().split_once('=')) {
                    t.value(Loc::Cookie, k, k, true);
                    t.value(Loc::Cookie, k, v, false);
                }
            }
        }
        if self.body {
            if let Some(body) = cx.body.filter(|b| !b.is_empty()) {
                self.scan_body(&mut t, cx, body);
            }
        }
        t
    }

    fn scan_body(&self, t: &mut Tally<'_>, cx: &RequestCtx<'_>, body: &bytes::Bytes) {
        let ct = cx
            .head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = crate::openapi::essence(ct);
        let starts_json = body
            .iter()
            .find(|c| !c.is_ascii_whitespace())
            .is_some_and(|c| matches!(c, b'{' | b'['));
        if starts_json || crate::openapi::is_json(ct) {
            if let Ok(tape) = Tape::parse(body) {
                tape.strings(|pointer, s, is_name| t.value(Loc::Json, pointer, s, is_name));
                return;
            }
        } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            fields(t, Loc::Form, body);
            return;
        } else if self.detector.paranoia < 2 {
            return;
        }
        // Not JSON after all, or an other type at paranoia 2+: the body as text.
        t.value(Loc::Body, "", &String::from_utf8_lossy(body), false);
    }
}

/// `name=value` fields (a query string, a form body): names and values both.
fn fields(t: &mut Tally<'_>, loc: Loc, raw: &[u8]) {
    for (k, v) in form_urlencoded::parse(raw) {
        t.value(loc, &k, &k, true);
        t.value(loc, &k, &v, false);
    }
}

impl Filter for Inspect {
    fn phase(&self) -> Phase {
        Phase::Validation
    }

    fn name(&self) -> &'static str {
        "inspect"
    }

    fn needs_body(&self) -> bool {
        self.body
    }

    fn request_body(
        &self,
        cx: &mut RequestCtx<'_>,
    ) -> Result<Option<Box<dyn rampart_core::BodyInspector>>, Denial> {
        // A body the gateway cannot read is one it cannot inspect.
        if self.body && crate::json_filter::encoded(cx.head) {
            if self.shadow {
                cx.record(Reason::WafEncodedBody, Outcome::ShadowDeny);
            } else {
                cx.record(Reason::WafEncodedBody, Outcome::Deny);
                return Err(Denial::new(Reason::WafEncodedBody));
            }
        }
        Ok(None)
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        if !sampled(self.sample_percent) {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return Flow::Continue;
        }
        let mut t = self.scan(cx);
        if t.found.is_empty() {
            return Flow::Continue;
        }
        // Points the route's bot rules gave the request count towards the same score.
        if let Some(b) = cx.extensions.get::<crate::bots::BotScore>() {
            t.score = t.score.saturating_add(b.0);
        }
        let mut detail = format!("score={}", t.score);
        for (d, rule, sev, loc, field) in t.found.iter().take(MAX_NAMED) {
            let sep = if field.is_empty() { "" } else { "." };
            detail.push_str(&format!(
                " {}@{}{sep}{field}:{rule}/{sev}",
                d.name(),
                loc.as_str()
            ));
        }
        cx.details.push(("waf", detail.into()));
        if t.score < self.threshold {
            return Flow::Continue;
        }
        // The most severe finding names the refusal (the first, among equals).
        let top = t
            .found
            .iter()
            .fold(
                None::<(Detector, u8)>,
                |best, (d, _, sev, _, _)| match best {
                    Some((_, s)) if s >= *sev => best,
                    _ => Some((*d, *sev)),
                },
            )
            .map_or(Detector::Error, |(d, _)| d);
        if self.shadow {
            cx.record(top.reason(), Outcome::ShadowDeny);
            return Flow::Continue;
        }
        cx.record(top.reason(), Outcome::Deny);
        Flow::Deny(Denial::new(top.reason()))
    }
}

/// `rampart_waf_findings_total` and `rampart_waf_unsampled_total`.
#[derive(Debug)]
struct Metrics(Vec<Arc<Counts>>);

impl MetricsSource for Metrics {
    fn render(&self, out: &mut MetricsText) {
        out.family(
            "rampart_waf_findings_total",
            "counter",
            "Injection detector findings in request values, by route and detector.",
        );
        for c in &self.0 {
            for (d, n) in Detector::ALL.iter().zip(&c.findings) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    out.sample(
                        "rampart_waf_findings_total",
                        &[("route", &c.route), ("detector", d.name())],
                        n,
                    );
                }
            }
        }
        out.family(
            "rampart_waf_unsampled_total",
            "counter",
            "Requests not inspected because of the route's inspect.sample_percent.",
        );
        for c in &self.0 {
            out.sample(
                "rampart_waf_unsampled_total",
                &[("route", &c.route)],
                c.skipped.load(Ordering::Relaxed),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{cached_scan, glob};
    use crate::InjectionDetector;

    #[test]
    fn a_cached_scan_finds_what_a_scan_finds_at_its_own_level() {
        let (one, two) = (InjectionDetector::new(1), InjectionDetector::new(2));
        let internal = "http://127.0.0.1/admin";
        for _ in 0..2 {
            assert_eq!(cached_scan(&one, internal), one.scan(internal));
            assert!(cached_scan(&one, internal).is_empty());
            assert!(!cached_scan(&two, internal).is_empty());
            let ua = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0";
            assert_eq!(cached_scan(&one, ua), one.scan(ua));
            let attack = "' or sleep(5)#";
            assert!(!cached_scan(&one, attack).is_empty());
        }
    }

    #[test]
    fn globs_match_within_one_segment() {
        assert!(glob("/items/*/note", "/items/12/note"));
        assert!(!glob("/items/*/note", "/items/1/2/note"));
        assert!(glob("utm_*", "utm_source"));
        assert!(glob("q", "q"));
        assert!(!glob("q", "qq"));
    }
}
