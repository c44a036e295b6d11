//! Response validation (`validate.responses`): the upstream's status, media type and JSON
//! body against the operation's documented responses (`writeOnly` properties refused,
//! as `readOnly` ones are in requests).
//!
//! In `shadow` the body streams to the client unchanged while a copy (up to the size cap)
//! is validated at its end; a violation is logged (`warn`, with the request id, never a
//! value) and counted. In `enforce` an undocumented status or media type is answered
//! with a 502 problem instead, and a JSON body is held (up to the cap) until it has been
//! validated: a body that breaks its schema, or is too large to check, is cut off, so the
//! client never receives it whole. Upstream compression is turned off on enforcing routes
//! (`Accept-Encoding` removed) so bodies arrive readable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::Method;
use rampart_core::{BodyRewriter, Outcome, Problem, Reason, ReplaceBody, ResponseCtx};
use serde_json::Value;

use super::schema::SchemaCompiler;
use super::tape::Tape;
use super::{is_json, pick_media, Api, BodyCheck, Document, Media, Operation};

/// Which statuses a documented response covers.
enum Status {
    Exact(u16),
    /// `2XX`: the hundreds digit.
    Range(u16),
    Default,
}

/// One documented response.
pub(crate) struct Response {
    status: Status,
    /// Empty: no content described (any body passes).
    media: Vec<Media>,
}

/// Compiles an operation's `responses`, with `writeOnly` properties hidden.
pub(super) fn compile(
    doc: &Document,
    op: &Value,
    at: &str,
    schemas: &mut SchemaCompiler<'_>,
) -> Result<Vec<Response>, String> {
    let previous = std::mem::replace(&mut schemas.hidden, "writeOnly");
    let out = compile_all(doc, op, at, schemas);
    schemas.hidden = previous;
    out
}

fn compile_all(
    doc: &Document,
    op: &Value,
    at: &str,
    schemas: &mut SchemaCompiler<'_>,
) -> Result<Vec<Response>, String> {
    let mut out = Vec::new();
    for (code, r) in op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let at = format!("{at}.responses.{code}");
        let status = match code.as_str() {
            "default" => Status::Default,
            c if c.len() == 3 && c[1..].eq_ignore_ascii_case("XX") => match c.as_bytes()[0] {
                d @ b'1'..=b'5' => Status::Range(u16::from(d - b'0')),
                _ => return Err(format!("{at}: not a status code or range")),
            },
            c => match c.parse::<u16>() {
                Ok(n) if (100..=599).contains(&n) => Status::Exact(n),
                _ => return Err(format!("{at}: not a status code or range")),
            },
        };
        let r = doc.resolve(r)?;
        let mut media = Vec::new();
        for (range, m) in r
            .get("content")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let at = format!("{at}.content.{range}");
            let check = match m.get("schema") {
                Some(s) if is_json(range) => {
                    BodyCheck::Json(std::sync::Arc::new(schemas.compile_body(s, &at)?))
                }
                _ => BodyCheck::Opaque,
            };
            media.push(Media {
                range: range.to_ascii_lowercase(),
                check,
            });
        }
        out.push(Response { status, media });
    }
    Ok(out)
}

impl Operation {
    /// The documented response for `status`: exact code, then its range, then `default`.
    fn response(&self, status: u16) -> Option<&Response> {
        let find = |want: &dyn Fn(&Status) -> bool| self.responses.iter().find(|r| want(&r.status));
        find(&|s| matches!(s, Status::Exact(c) if *c == status))
            .or_else(|| find(&|s| matches!(s, Status::Range(d) if *d == status / 100)))
            .or_else(|| find(&|s| matches!(s, Status::Default)))
    }
}

/// A route's response validation settings and counters.
pub(crate) struct ResponseCheck {
    pub(crate) enforce: bool,
    pub(crate) max_bytes: usize,
    pub(crate) sample_percent: u8,
    pub(crate) counts: Arc<ResponseCounts>,
}

/// `rampart_openapi_responses_total{route,result}`.
pub(crate) struct ResponseCounts {
    pub(crate) route: Box<str>,
    pub(crate) valid: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) skipped: AtomicU64,
}

/// Left by the request phase: the operation the response answers.
pub(super) struct Pending {
    pub(super) method: Method,
    /// The path within the document (base path removed).
    pub(super) path: Box<str>,
}

/// Decided by the response-head phase, for the body phase.
enum Planned {
    /// Validate the JSON body against the operation's schema for this response.
    Body {
        method: Method,
        path: Box<str>,
        status: u16,
        content_type: Box<str>,
    },
    /// Answer this (a 502 problem) instead of the upstream's body.
    Replace(Bytes),
}

/// The operation of a method on a path.
fn operation<'a>(api: &'a Api, method: &Method, path: &'a str) -> Option<&'a Operation> {
    api.paths.find(path)?.item.operation(method.as_str())
}

/// The response head: status and media type checked; the body's check planned.
pub(super) fn on_response(api: &Api, check: &ResponseCheck, cx: &mut ResponseCtx<'_>) {
    if cx.own {
        return;
    }
    let Some(p) = cx.extensions.get::<Pending>() else {
        return;
    };
    let (method, path) = (p.method.clone(), p.path.clone());
    let Some(op) = operation(api, &method, &path) else {
        return;
    };
    let status = cx.head.status.as_u16();
    let content_type = cx
        .head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bodiless = method == Method::HEAD || status == 204 || status == 304;
    let violation = match op.response(status) {
        None => Some(format!("status {status} is not documented")),
        Some(r) if r.media.is_empty() || bodiless => None,
        Some(r) => match pick_media(&r.media, &content_type) {
            None => Some(format!(
                "status {status}: this media type is not documented"
            )),
            Some(Media {
                check: BodyCheck::Json(_),
                ..
            }) if cx.head.headers.contains_key(CONTENT_ENCODING) => {
                if check.enforce {
                    Some("an encoded body cannot be validated".into())
                } else {
                    check.counts.skipped.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
            Some(Media {
                check: BodyCheck::Json(_),
                ..
            }) => {
                cx.extensions.insert(Planned::Body {
                    method,
                    path,
                    status,
                    content_type: content_type.into(),
                });
                None
            }
            Some(_) => None,
        },
    };
    let Some(why) = violation else {
        if cx.extensions.get::<Planned>().is_none() {
            check.counts.valid.fetch_add(1, Ordering::Relaxed);
        }
        return;
    };
    check.counts.invalid.fetch_add(1, Ordering::Relaxed);
    cx.details.push(("validation_response", why.into()));
    if !check.enforce {
        cx.record(Reason::ValidationResponse, Outcome::ShadowDeny);
        return;
    }
    cx.record(Reason::ValidationResponse, Outcome::Deny);
    let body = cx.replace_with_problem(Problem::UPSTREAM_PROTOCOL);
    cx.extensions.insert(Planned::Replace(body));
}

/// The body phase: a rewriter for the planned check, if any.
pub(super) fn response_body(
    api: &Arc<Api>,
    check: &ResponseCheck,
    cx: &ResponseCtx<'_>,
) -> Option<Box<dyn BodyRewriter>> {
    match cx.extensions.get::<Planned>()? {
        Planned::Replace(body) => Some(Box::new(ReplaceBody::new(body.clone()))),
        Planned::Body {
            method,
            path,
            status,
            content_type,
        } => Some(Box::new(Validate {
            api: api.clone(),
            method: method.clone(),
            path: path.clone(),
            status: *status,
            content_type: content_type.clone(),
            enforce: check.enforce,
            max: check.max_bytes,
            held: BytesMut::new(),
            over: false,
            counts: check.counts.clone(),
            request_id: cx.request_id.to_str().unwrap_or("").into(),
        })),
    }
}

/// Drops the upstream's body and sends the problem in its place.
/// Validates a JSON response body at its end.
struct Validate {
    api: Arc<Api>,
    method: Method,
    path: Box<str>,
    status: u16,
    content_type: Box<str>,
    enforce: bool,
    max: usize,
    /// The body so far (a copy in shadow, the held body in enforce).
    held: BytesMut,
    over: bool,
    counts: Arc<ResponseCounts>,
    request_id: Box<str>,
}

impl Validate {
    /// The violations of the whole body, as `pointer: reason` lines (at most 10).
    fn violations(&self, body: &Bytes) -> Vec<String> {
        let Some(op) = operation(&self.api, &self.method, &self.path) else {
            return Vec::new();
        };
        let Some(Media {
            check: BodyCheck::Json(v),
            ..
        }) = op
            .response(self.status)
            .and_then(|r| pick_media(&r.media, &self.content_type))
        else {
            return Vec::new();
        };
        let Ok(tape) = Tape::parse(body) else {
            return vec!["the body is not valid JSON".into()];
        };
        if v.is_valid(&tape) {
            return Vec::new();
        }
        v.validator
            .iter_errors(tape.root())
            .take(10)
            .map(|e| format!("{}: {}", e.instance_path(), super::schema::reason(e.kind())))
            .collect()
    }
}

impl BodyRewriter for Validate {
    /// In enforce mode nothing is sent before the body is validated, so a body that
    /// breaks the contract gets a 502 problem instead of a cut-off answer.
    fn holds_whole_body(&self) -> bool {
        self.enforce
    }

    fn on_data(&mut self, data: Bytes, end: bool) -> Result<Bytes, &'static str> {
        if !self.over {
            if self.held.len() + data.len() > self.max {
                self.over = true;
                self.held = BytesMut::new();
                if self.enforce {
                    self.counts.invalid.fetch_add(1, Ordering::Relaxed);
                    return Err("validation.response_too_large");
                }
                self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            } else {
                self.held.extend_from_slice(&data);
            }
        }
        if !end {
            return Ok(if self.enforce { Bytes::new() } else { data });
        }
        if self.over {
            return Ok(data);
        }
        let body = std::mem::take(&mut self.held).freeze();
        let violations = self.violations(&body);
        if violations.is_empty() {
            self.counts.valid.fetch_add(1, Ordering::Relaxed);
            return Ok(if self.enforce { body } else { data });
        }
        self.counts.invalid.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            request_id = %self.request_id,
            route = %self.counts.route,
            status = self.status,
            violations = ?violations,
            enforce = self.enforce,
            "a response body breaks the API's contract"
        );
        if self.enforce {
            Err("validation.response")
        } else {
            Ok(data)
        }
    }
}
