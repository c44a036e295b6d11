//! The JSON threat-limit filter: compiles `json_limits` (top level, merged into each
//! route's block) and inspects every request body that is JSON, by label or by its first
//! byte, with one [`JsonScanner`] per body as its frames stream upstream unchanged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use rampart_config::{JsonLimitsSpec, PolicyMode, Spec};
use rampart_core::metrics_text::MetricsText;
use rampart_core::{
    BodyInspector, Denial, FeaturePlan, Filter, MetricsSource, Outcome, Phase, Problem, Reason,
    RequestCtx,
};

use crate::openapi::tape::TapeEntries;
use crate::{JsonLimits, JsonScanner, JsonViolation};

/// Every violation, in the order of the shadow counters.
const VIOLATIONS: [JsonViolation; 13] = [
    JsonViolation::Depth,
    JsonViolation::ObjectMembers,
    JsonViolation::ArrayItems,
    JsonViolation::Entries,
    JsonViolation::StringLength,
    JsonViolation::NameLength,
    JsonViolation::NumberLength,
    JsonViolation::DuplicateName,
    JsonViolation::InvalidUtf8,
    JsonViolation::LoneSurrogate,
    JsonViolation::Syntax,
    JsonViolation::TrailingData,
    JsonViolation::Truncated,
];

/// Adds one JSON-limits filter per route where they are enabled. Routes with the
/// top-level settings share one filter (the limits were validated with the config); a route in shadow mode has its own, which counts
/// what it would have refused.
pub(crate) fn compile(spec: &Spec, out: &mut FeaturePlan) {
    let shared = JsonLimitsFilter::new(&spec.json_limits, None);
    let mut shadows = Vec::new();
    for (i, r) in spec.routes.iter().enumerate() {
        let filter = match &r.json_limits {
            None => match &shared {
                Some(f) if f.shadow.is_none() => Some(f.clone()),
                _ => JsonLimitsFilter::new(&spec.json_limits, Some(&r.name)),
            },
            Some(route) => JsonLimitsFilter::new(&route.over(&spec.json_limits), Some(&r.name)),
        };
        if let Some(mut f) = filter {
            // A route that validates bodies against a schema gets the tape recorded as
            // the limits scan, so the body is parsed once.
            if r.validate.is_some() {
                f = Arc::new(JsonLimitsFilter {
                    record: true,
                    ..(*f).clone()
                });
            }
            shadows.extend(f.shadow.clone());
            out.routes[i].push(f);
        }
    }
    if !shadows.is_empty() {
        out.metrics.push(Arc::new(ShadowMetrics(shadows)));
    }
}

/// Refuses request bodies that break a route's JSON limits.
#[derive(Debug, Clone)]
pub struct JsonLimitsFilter {
    limits: JsonLimits,
    allow_encoded: bool,
    /// Record the tape of JSON-labelled bodies for the route's schema validation.
    record: bool,
    /// Set in shadow mode: where violations are counted instead of refused.
    shadow: Option<Arc<Shadow>>,
}

impl JsonLimitsFilter {
    /// The filter for `spec` (already merged), or `None` when the limits are off.
    /// `route` names the route a shadow-mode filter counts for.
    fn new(spec: &JsonLimitsSpec, route: Option<&str>) -> Option<Arc<JsonLimitsFilter>> {
        if spec.enabled == Some(false) {
            return None;
        }
        let d = JsonLimits::default();
        let narrow = |b: Option<rampart_config::ByteSize>, default: u32| {
            b.map_or(default, |b| u32::try_from(b.0).unwrap_or(u32::MAX))
        };
        let limits = JsonLimits {
            max_depth: spec.max_depth.unwrap_or(d.max_depth),
            max_object_members: spec.max_object_members.unwrap_or(d.max_object_members),
            max_array_items: spec.max_array_items.unwrap_or(d.max_array_items),
            max_entries: spec.max_entries.unwrap_or(d.max_entries),
            max_string_bytes: narrow(spec.max_string_bytes, d.max_string_bytes),
            max_name_bytes: narrow(spec.max_name_bytes, d.max_name_bytes),
            max_number_bytes: spec.max_number_bytes.unwrap_or(d.max_number_bytes),
        };
        let shadow = (spec.mode == Some(PolicyMode::Shadow)).then(|| {
            Arc::new(Shadow {
                route: route.unwrap_or_default().into(),
                counts: Default::default(),
            })
        });
        Some(Arc::new(JsonLimitsFilter {
            limits,
            allow_encoded: spec.allow_encoded_bodies.unwrap_or(false),
            record: false,
            shadow,
        }))
    }
}

/// Whether `Content-Type` labels the body JSON (`application/json`, `*/*+json`).
fn labelled_json(head: &http::request::Parts) -> bool {
    head.headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::openapi::is_json)
}

/// Whether the body carries a `Content-Encoding` other than `identity`.
/// Whether the request body carries a `Content-Encoding` other than `identity` (one the
/// gateway cannot read).
pub(crate) fn encoded(head: &http::request::Parts) -> bool {
    head.headers.get_all(CONTENT_ENCODING).iter().any(|v| {
        v.to_str().map_or(true, |s| {
            s.split(',')
                .map(str::trim)
                .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
        })
    })
}

impl Filter for JsonLimitsFilter {
    fn phase(&self) -> Phase {
        Phase::RequestLimits
    }

    fn name(&self) -> &'static str {
        "json_limits"
    }

    fn request_body(
        &self,
        cx: &mut RequestCtx<'_>,
    ) -> Result<Option<Box<dyn BodyInspector>>, Denial> {
        // An encoded body cannot be scanned: refused before anything is forwarded,
        // unless the route allows it (or is in shadow mode); then it goes unread.
        if encoded(cx.head) {
            if self.allow_encoded {
                return Ok(None);
            }
            if self.shadow.is_some() {
                cx.record(Reason::JsonEncodedBody, Outcome::ShadowDeny);
                return Ok(None);
            }
            cx.record(Reason::JsonEncodedBody, Outcome::Deny);
            return Err(Denial::new(Reason::JsonEncodedBody));
        }
        let labelled = labelled_json(cx.head);
        let recorded = (self.record && labelled).then(|| {
            let declared = cx
                .head
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0);
            let slot = RecordedTape(Arc::new(Recorded {
                declared,
                ..Recorded::default()
            }));
            cx.extensions.insert(slot.clone());
            slot
        });
        Ok(Some(Box::new(JsonInspector {
            state: State::Undecided { labelled },
            limits: self.limits,
            shadow: self.shadow.clone().map(|s| (s, cx.request_id.clone())),
            recorded,
            skipped: 0,
        })))
    }
}

/// Where one body's inspection is.
enum State {
    /// Only whitespace so far (or nothing); `labelled`: the `Content-Type` says JSON.
    Undecided {
        labelled: bool,
    },
    Scanning(Box<JsonScanner>),
    /// Not JSON, or already refused in shadow mode: the rest streams through unread.
    Passing,
}

/// One body's JSON inspection.
struct JsonInspector {
    state: State,
    limits: JsonLimits,
    /// In shadow mode: the counters and the request id for the log line.
    shadow: Option<(Arc<Shadow>, http::HeaderValue)>,
    /// Where the recorded tape goes, on a validated route.
    recorded: Option<RecordedTape>,
    /// Bytes of whitespace before the scan started (the tape's offsets count them).
    skipped: u64,
}

/// The tape the JSON limits record of a request body for the route's schema validation,
/// when the validation asks for it (its operation has a JSON body schema); set once the
/// whole body has passed the limits.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordedTape(Arc<Recorded>);

#[derive(Debug, Default)]
pub(crate) struct Recorded {
    wanted: AtomicBool,
    tape: Mutex<Option<TapeEntries>>,
    /// The body's declared length, to size the tape once.
    declared: usize,
}

impl RecordedTape {
    /// Asks for the tape (before the body is read).
    pub(crate) fn want(&self) {
        self.0.wanted.store(true, Ordering::Relaxed);
    }

    pub(crate) fn take(&self) -> Option<TapeEntries> {
        self.0.tape.lock().ok()?.take()
    }
}

impl JsonInspector {
    fn violation(&mut self, v: JsonViolation) -> Result<(), Problem> {
        let problem = v.problem();
        let Some((shadow, request_id)) = &self.shadow else {
            return Err(problem);
        };
        self.state = State::Passing;
        shadow.record(v);
        tracing::warn!(
            request_id = request_id.to_str().unwrap_or(""),
            route = &*shadow.route,
            code = problem.code,
            "JSON body would be refused (shadow mode)"
        );
        Ok(())
    }
}

impl BodyInspector for JsonInspector {
    fn on_data(&mut self, data: &[u8]) -> Result<(), Problem> {
        if let State::Undecided { labelled } = self.state {
            // A body is JSON when it says so, or when it starts like JSON whatever it
            // says: a mislabelled body is the classic way around a content-type check.
            match JsonScanner::looks_like_json(data) {
                None => {
                    self.skipped += data.len() as u64;
                    return Ok(());
                }
                Some(json) if json || labelled => {
                    let mut scanner = JsonScanner::new(self.limits);
                    if let Some(r) = self
                        .recorded
                        .as_ref()
                        .filter(|r| r.0.wanted.load(Ordering::Relaxed))
                    {
                        scanner = scanner.record(self.skipped, r.0.declared);
                    }
                    self.state = State::Scanning(Box::new(scanner));
                }
                Some(_) => self.state = State::Passing,
            }
        }
        match &mut self.state {
            State::Scanning(s) => match s.feed(data) {
                Ok(()) => Ok(()),
                Err(v) => self.violation(v),
            },
            _ => Ok(()),
        }
    }

    fn on_end(&mut self) -> Result<(), Problem> {
        // A body of nothing but whitespace is left alone: there is no document to check.
        match std::mem::replace(&mut self.state, State::Passing) {
            State::Scanning(mut s) => match s.finish() {
                Ok(()) => {
                    if let (Some(slot), Some(tape)) = (&self.recorded, s.into_tape()) {
                        if let Ok(mut t) = slot.0.tape.lock() {
                            *t = Some(tape);
                        }
                    }
                    Ok(())
                }
                Err(v) => self.violation(v),
            },
            _ => Ok(()),
        }
    }
}

/// What a shadow-mode route would have refused, by violation.
#[derive(Debug)]
struct Shadow {
    route: Box<str>,
    counts: [AtomicU64; VIOLATIONS.len()],
}

impl Shadow {
    fn record(&self, v: JsonViolation) {
        if let Some(i) = VIOLATIONS.iter().position(|x| *x == v) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `rampart_json_limits_shadow_total`: bodies a shadow-mode route let through that it
/// would have refused.
#[derive(Debug)]
struct ShadowMetrics(Vec<Arc<Shadow>>);

impl MetricsSource for ShadowMetrics {
    fn render(&self, out: &mut MetricsText) {
        out.family(
            "rampart_json_limits_shadow_total",
            "counter",
            "JSON bodies a shadow-mode route would have refused, by route and reason code.",
        );
        for s in &self.0 {
            for (v, n) in VIOLATIONS.iter().zip(&s.counts) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    out.sample(
                        "rampart_json_limits_shadow_total",
                        &[("route", &s.route), ("code", v.problem().code)],
                        n,
                    );
                }
            }
        }
    }
}
