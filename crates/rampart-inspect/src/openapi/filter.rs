//! The validation filter of a route with `validate`. Cheap checks first: the operation
//! (404/405), its parameters and the body's media type (415) run from the head, before a
//! body is read (in the body phase for requests that have one); the body is then read
//! whole, within the route's body limit, and validated against the operation's schema.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::header::{ALLOW, CONTENT_TYPE, COOKIE};
use http::HeaderValue;
use rampart_config::{ConfigError, PolicyMode, ResponseMode, Spec, UnknownOperations};
use rampart_core::metrics_text::MetricsText;
use rampart_core::{
    BodyInspector, BodyRewriter, Denial, ExchangeCtx, FeaturePlan, FieldError, Filter, Flow,
    MetricsSource, Outcome, Phase, Reason, RequestCtx, ResponseCtx,
};
use serde_json::{Map, Value};

use super::params::{In, Kind};
use super::responses::{self, Pending, ResponseCheck, ResponseCounts};
use super::tape::{Tape, TapeEntries};
use super::{Api, BodyCheck, JsonBody, Operation};
use crate::json_filter::RecordedTape;

/// At most this many violations are listed in one refusal.
const MAX_ERRORS: usize = 20;

/// Adds a validation filter to every route with `validate`. A document named by several
/// routes is read and compiled once.
pub(crate) fn compile(
    spec: &Spec,
    base: &Path,
    out: &mut FeaturePlan,
) -> Result<(), Vec<ConfigError>> {
    let mut loaded: HashMap<(PathBuf, bool), Arc<Api>> = HashMap::new();
    let mut counters = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in spec.routes.iter().enumerate() {
        let Some(v) = &r.validate else { continue };
        let path = base.join(&v.openapi);
        let responses = v.responses != ResponseMode::Off;
        let api = match loaded.get(&(path.clone(), responses)) {
            Some(a) => a.clone(),
            None => match Api::load(&path, responses) {
                Ok(a) => {
                    let a = Arc::new(a);
                    loaded.insert((path, responses), a.clone());
                    a
                }
                Err(e) => {
                    errors.push(ConfigError::new(format!("routes[{i}].validate.openapi"), e));
                    continue;
                }
            },
        };
        let base_path = v.base_path.clone().unwrap_or_else(|| api.base_path.clone());
        let responses = responses.then(|| {
            let counts = Arc::new(ResponseCounts {
                route: r.name.as_str().into(),
                valid: Default::default(),
                invalid: Default::default(),
                skipped: Default::default(),
            });
            counters.push(counts.clone());
            ResponseCheck {
                enforce: v.responses == ResponseMode::Enforce,
                max_bytes: v.response_max_bytes.map_or(1 << 20, |b| b.0 as usize),
                sample_percent: v.response_sample_percent,
                counts,
            }
        });
        out.routes[i].push(Arc::new(Validation {
            api,
            base_path: base_path.into(),
            shadow: v.mode == PolicyMode::Shadow,
            pass_unknown: v.unknown_operations == UnknownOperations::Pass,
            responses,
        }));
    }
    if !counters.is_empty() {
        out.metrics.push(Arc::new(ResponseMetrics(counters)));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Validates requests against one OpenAPI document outside a gateway (tests, fuzzing,
/// tooling): the same checks a route's `validate` runs, with `enforce` and `refuse`.
pub struct OpenApiValidator(Validation);

impl OpenApiValidator {
    /// Reads and compiles the document at `path`; requests are matched under
    /// `base_path`, or under the document's own (`servers`) when `None`.
    pub fn load(path: &Path, base_path: Option<&str>) -> Result<Self, String> {
        let api = Arc::new(Api::load(path, false)?);
        let base_path = base_path.map_or_else(|| api.base_path.clone(), str::to_owned);
        Ok(Self(Validation {
            api,
            base_path: base_path.into(),
            shadow: false,
            pass_unknown: false,
            responses: None,
        }))
    }

    /// Checks one request: operation, parameters, media type, then the body. `Err`
    /// carries the reason code (`validation.*`) and each violation.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: &http::HeaderMap,
        body: Option<&bytes::Bytes>,
    ) -> Result<(), (&'static str, Vec<FieldError>)> {
        let mut view = RequestView {
            method,
            path,
            query,
            headers,
            body,
            recorded: None,
        };
        let has_body = body.is_some_and(|b| !b.is_empty());
        self.0
            .check_head(&view, has_body)
            .and_then(|_| self.0.check_body(&mut view))
            .map_err(|v| (v.reason.code(), v.errors))
    }
}

/// Validates a route's requests against its OpenAPI document.
pub struct Validation {
    api: Arc<Api>,
    base_path: Box<str>,
    shadow: bool,
    pass_unknown: bool,
    /// Response validation, when the route has it.
    responses: Option<ResponseCheck>,
}

/// The parts of a request the checks read.
pub(crate) struct RequestView<'a> {
    pub(crate) method: &'a str,
    /// The normalised path.
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) body: Option<&'a bytes::Bytes>,
    /// The body's tape as the JSON limits recorded it while the body was read.
    pub(crate) recorded: Option<TapeEntries>,
}

impl<'a> RequestView<'a> {
    fn of(cx: &'a RequestCtx<'_>) -> Self {
        RequestView {
            method: cx.head.method.as_str(),
            path: cx.path,
            query: cx.head.uri.query(),
            headers: &cx.head.headers,
            body: cx.body,
            recorded: None,
        }
    }
}

/// A request's operation and its raw path parameters.
type Matched<'a> = (&'a Operation, Vec<(&'a str, &'a str)>);

/// Left in the exchange by the body phase: the head checks passed already, and the
/// JSON body's schema when the body has one (so it is not looked up again).
struct HeadChecked(Option<Arc<JsonBody>>);

/// A refusal being built.
pub(crate) struct Violation {
    reason: Reason,
    errors: Vec<FieldError>,
    allow: Option<String>,
}

impl Violation {
    fn new(reason: Reason) -> Self {
        Self {
            reason,
            errors: Vec::new(),
            allow: None,
        }
    }

    fn field(mut self, location: &'static str, name: &str, reason: String) -> Self {
        self.errors.push(FieldError {
            location,
            name: name.chars().take(128).collect::<String>().into(),
            reason: reason.into(),
        });
        self
    }
}

impl Validation {
    /// The request path within the document (the base path removed), if it is under it.
    fn within<'p>(&self, path: &'p str) -> Option<&'p str> {
        match path.strip_prefix(&*self.base_path) {
            Some("") => Some("/"),
            Some(p) if p.starts_with('/') => Some(p),
            _ => None,
        }
    }

    /// Leaves the operation for the response phase, when responses are validated (and,
    /// in shadow, this one is sampled).
    fn plan_response(&self, cx: &mut RequestCtx<'_>) {
        let Some(check) = &self.responses else { return };
        if !check.enforce && !crate::injection::sampled(check.sample_percent) {
            return;
        }
        if let Some(path) = self.within(cx.path) {
            let pending = Pending {
                method: cx.head.method.clone(),
                path: path.into(),
            };
            cx.extensions.insert(pending);
        }
    }

    /// The operation for the request, or why there is none (`Ok(None)`: unknown, and the
    /// route lets unknown operations pass).
    fn operation<'a>(&'a self, cx: &RequestView<'a>) -> Result<Option<Matched<'a>>, Violation> {
        let unknown = |reason| {
            if self.pass_unknown {
                Ok(None)
            } else {
                Err(Violation::new(reason))
            }
        };
        let Some(path) = self.within(cx.path) else {
            return unknown(Reason::ValidationUnknownPath);
        };
        let Some(m) = self.api.paths.find(path) else {
            return unknown(Reason::ValidationUnknownPath);
        };
        let method = cx.method;
        match m.item.operation(method) {
            Some(op) => Ok(Some((op, m.params))),
            None if self.pass_unknown => Ok(None),
            None => {
                let mut v = Violation::new(Reason::ValidationMethod);
                v.allow = Some(m.item.allow.clone());
                Err(v)
            }
        }
    }

    /// Operation, parameters and (when there is a body) media type; the body's check,
    /// when it has one.
    pub(crate) fn check_head<'a>(
        &'a self,
        cx: &RequestView<'a>,
        has_body: bool,
    ) -> Result<Option<&'a BodyCheck>, Violation> {
        let Some((op, path_params)) = self.operation(cx)? else {
            return Ok(None);
        };
        let mut v = Violation::new(Reason::ValidationParameters);
        let query: Vec<(String, String)> = cx
            .query
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let cookies = cookies(cx);
        for p in &op.params {
            let decoded;
            let mut deep = Vec::new();
            let raw: Vec<&str> = match p.location {
                In::Path => {
                    let value = path_params
                        .iter()
                        .find(|(n, _)| **n == *p.name)
                        .map_or("", |(_, v)| v);
                    decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                    vec![&*decoded]
                }
                In::Query => {
                    let open = format!("{}[", p.name);
                    for (k, val) in &query {
                        if let Some(key) = k.strip_prefix(&open).and_then(|r| r.strip_suffix(']')) {
                            deep.push((key, val.as_str()));
                        }
                    }
                    query
                        .iter()
                        .filter(|(k, _)| *k == *p.name)
                        .map(|(_, v)| v.as_str())
                        .collect()
                }
                In::Header => cx
                    .headers
                    .get_all(&*p.name)
                    .iter()
                    .filter_map(|h| h.to_str().ok())
                    .collect(),
                In::Cookie => cookies
                    .iter()
                    .filter(|(k, _)| *k == &*p.name)
                    .map(|(_, v)| *v)
                    .collect(),
            };
            if let Err(why) = p.check(&raw, &deep) {
                v = v.field(p.location.as_str(), &p.name, why);
                if v.errors.len() >= MAX_ERRORS {
                    break;
                }
            }
        }
        if !v.errors.is_empty() {
            return Err(v);
        }
        match (&op.body, has_body) {
            (None, true) => Err(Violation::new(Reason::ValidationBody).field(
                "body",
                "",
                "the operation takes no request body".into(),
            )),
            (Some(_), true) => match media(op, cx) {
                Some(check) => Ok(Some(check)),
                None => Err(Violation::new(Reason::ValidationMediaType).field(
                    "header",
                    "content-type",
                    "is not a media type this operation accepts".into(),
                )),
            },
            (Some(_), false) if op.body_required => Err(Violation::new(Reason::ValidationBody)
                .field("body", "", "a request body is required".into())),
            _ => Ok(None),
        }
    }

    /// The body against the schema of its media type.
    pub(crate) fn check_body(&self, cx: &mut RequestView<'_>) -> Result<(), Violation> {
        let Some(body) = cx.body else { return Ok(()) };
        let Some((op, _)) = self.operation(cx).ok().flatten() else {
            return Ok(());
        };
        let Some(check) = media(op, cx) else {
            return Ok(());
        };
        let mut v = Violation::new(Reason::ValidationBody);
        match check {
            BodyCheck::Opaque => return Ok(()),
            BodyCheck::Json(json) => return check_json(json, body, cx.recorded.take()),
            BodyCheck::Form(props, validator) => {
                let value = form_object(body, props)?;
                if validator.is_valid(&value) {
                    return Ok(());
                }
                for e in validator.iter_errors(&value).take(MAX_ERRORS) {
                    let pointer = e.instance_path().to_string();
                    v = v.field("body", &pointer, super::schema::reason(e.kind()));
                }
            }
        }
        if v.errors.is_empty() {
            Ok(())
        } else {
            Err(v)
        }
    }

    /// Records a violation; in enforce mode, the refusal.
    fn decide(&self, cx: &mut RequestCtx<'_>, v: Violation) -> Option<Denial> {
        if self.shadow {
            cx.record(v.reason, Outcome::ShadowDeny);
            if let Some(e) = v.errors.first() {
                let text = format!("{} {} {}", e.location, e.name, e.reason);
                cx.details.push(("validation", text.into()));
            }
            return None;
        }
        cx.record(v.reason, Outcome::Deny);
        let mut d = Denial::new(v.reason);
        d.errors = v.errors;
        if let Some(allow) = v.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            d = d.with_header(ALLOW, allow);
        }
        Some(d)
    }
}

/// A JSON body against its schema.
fn check_json(
    json: &JsonBody,
    body: &bytes::Bytes,
    recorded: Option<TapeEntries>,
) -> Result<(), Violation> {
    let mut v = Violation::new(Reason::ValidationBody);
    // Parsed once: the tape the JSON limits recorded, when they did (they refused
    // duplicate names as they read); else parsed here.
    let (tape, limits_ran) = match recorded {
        Some(entries) => (Tape::recorded(body, entries), true),
        None => (Tape::parse(body), false),
    };
    let Ok(tape) = tape else {
        return Err(v.field("body", "", "is not valid JSON".into()));
    };
    if !limits_ran && tape.has_duplicate_names() {
        let why = "has an object that names a member twice";
        return Err(v.field("body", "", why.into()));
    }
    // The common case, a valid body, is settled by the plan or one validator walk that
    // builds no errors; only an invalid one is walked again for its violations.
    if json.is_valid(&tape) {
        return Ok(());
    }
    for e in json.validator.iter_errors(tape.root()).take(MAX_ERRORS) {
        let pointer = e.instance_path().to_string();
        v = v.field("body", &pointer, super::schema::reason(e.kind()));
    }
    Err(v)
}

/// The operation's body check for the request's `Content-Type`: exact media type first,
/// then `type/*`, then `*/*`.
fn media<'a>(op: &'a Operation, cx: &RequestView<'_>) -> Option<&'a BodyCheck> {
    let body = op.body.as_ref()?;
    let ct = cx
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    super::pick_media(body, ct).map(|m| &m.check)
}

/// `name=value` pairs of the `Cookie` headers.
fn cookies<'a>(cx: &RequestView<'a>) -> Vec<(&'a str, &'a str)> {
    cx.headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .collect()
}

/// A form body as the object its schema describes.
fn form_object(body: &[u8], props: &[(String, Kind)]) -> Result<Value, Violation> {
    let mut m = Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        let kind = props
            .iter()
            .find(|(n, _)| *n == *k)
            .map_or(Kind::String, |(_, kind)| *kind);
        let value = super::params::coerce(&v, kind).map_err(|why| {
            Violation::new(Reason::ValidationBody).field("body", &format!("/{k}"), why)
        })?;
        match m.get_mut(&*k) {
            Some(Value::Array(a)) => a.push(value),
            Some(prev) => *prev = Value::Array(vec![prev.take(), value]),
            None => {
                m.insert(k.into_owned(), value);
            }
        }
    }
    Ok(Value::Object(m))
}

impl Filter for Validation {
    fn phase(&self) -> Phase {
        Phase::Validation
    }

    fn name(&self) -> &'static str {
        "validate"
    }

    fn needs_body(&self) -> bool {
        self.api.reads_bodies
    }

    fn request_body(
        &self,
        cx: &mut RequestCtx<'_>,
    ) -> Result<Option<Box<dyn BodyInspector>>, Denial> {
        // A request with a body: the head is checked now, before the body is read.
        let checked = self
            .check_head(&RequestView::of(cx), true)
            .map(|check| match check {
                Some(BodyCheck::Json(json)) => Some(json.clone()),
                _ => None,
            });
        let json = match checked {
            // A JSON body checked against a schema: the JSON limits record its tape as
            // they scan it, so it is parsed once.
            Ok(Some(json)) => {
                if let Some(slot) = cx.extensions.get::<RecordedTape>() {
                    slot.want();
                }
                Some(json)
            }
            Ok(None) => None,
            Err(v) => {
                if let Some(d) = self.decide(cx, v) {
                    return Err(d);
                }
                None
            }
        };
        cx.extensions.insert(HeadChecked(json));
        Ok(None)
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        let recorded = cx
            .extensions
            .get::<RecordedTape>()
            .and_then(RecordedTape::take);
        let result = match (cx.extensions.get::<HeadChecked>(), cx.body) {
            (Some(HeadChecked(Some(json))), Some(body)) => check_json(json, body, recorded),
            (Some(_), _) => {
                let mut view = RequestView::of(cx);
                view.recorded = recorded;
                self.check_body(&mut view)
            }
            (None, _) => self.check_head(&RequestView::of(cx), false).map(|_| ()),
        };
        let flow = match result {
            Ok(()) => Flow::Continue,
            Err(v) => match self.decide(cx, v) {
                Some(d) => Flow::Deny(d),
                None => Flow::Continue,
            },
        };
        if matches!(flow, Flow::Continue) {
            self.plan_response(cx);
        }
        flow
    }

    fn on_upstream_request(&self, head: &mut http::request::Parts, _cx: &mut ExchangeCtx) {
        // An enforcing route must read what it checks: no compressed responses.
        if self.responses.as_ref().is_some_and(|r| r.enforce) {
            head.headers.remove(http::header::ACCEPT_ENCODING);
        }
    }

    fn on_response(&self, cx: &mut ResponseCtx<'_>) {
        if let Some(check) = &self.responses {
            responses::on_response(&self.api, check, cx);
        }
    }

    fn response_body(&self, cx: &ResponseCtx<'_>) -> Option<Box<dyn BodyRewriter>> {
        responses::response_body(&self.api, self.responses.as_ref()?, cx)
    }
}

/// `rampart_openapi_responses_total`.
struct ResponseMetrics(Vec<Arc<ResponseCounts>>);

impl MetricsSource for ResponseMetrics {
    fn render(&self, out: &mut MetricsText) {
        use std::sync::atomic::Ordering::Relaxed;
        out.family(
            "rampart_openapi_responses_total",
            "counter",
            "Upstream responses checked against the route's OpenAPI document, by route and result (valid, invalid, skipped: too large or compressed in shadow).",
        );
        for c in &self.0 {
            for (result, n) in [
                ("valid", &c.valid),
                ("invalid", &c.invalid),
                ("skipped", &c.skipped),
            ] {
                out.sample(
                    "rampart_openapi_responses_total",
                    &[("route", &c.route), ("result", result)],
                    n.load(Relaxed),
                );
            }
        }
    }
}
