//! The route filter of `transform.request_body` / `response_body` / `xml`: JSON bodies
//! rewritten by [`BodyOps`] on their way to the upstream and back, and converted to and
//! from XML for a legacy service (`xml.rs` has the mapping).
//!
//! - Requests: the body is buffered within the route's `max_body_bytes`; a JSON body
//!   (`application/json`, `+json`) is rewritten and sent with its new `Content-Length`;
//!   other media types pass as they are. A JSON body that does not parse is refused
//!   (400 `transform.unparseable`), a compressed one too (415 `transform.encoded_body`):
//!   an operation meant to remove or set a member must never be skipped silently.
//! - Responses: `Accept-Encoding` is removed upstream; a JSON answer is held up to
//!   `max_response_bytes`, rewritten and re-framed. An answer that is compressed anyway
//!   or declares a larger `Content-Length` gets a 502 (`transform.response_unusable`).
//!   The rewriter holds the whole body, so the proxy reads it before sending the head:
//!   one that grows past the limit or does not parse gets a 502 as well, and the access
//!   log names why (`transform.too_large`, `transform.unparseable`, or the
//!   XML refusal: `xml.doctype`, `xml.bad_reference`, `xml.too_deep`, …).
//! - XML: with `xml.request` a JSON request body goes upstream as XML (after the
//!   operations) with the configured `Content-Type`; with `xml.response` an XML answer
//!   (`application/xml`, `text/xml`, `+xml`) is read into JSON (before the operations)
//!   and sent as `application/json`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use rampart_core::{
    BodyRewriter, Denial, ExchangeCtx, Filter, Flow, Outcome, Phase, Problem, Reason, ReplaceBody,
    RequestCtx, ResponseCtx,
};

use crate::body_ops::{BodyOps, Node};
use crate::headers::MatchedPath;
use crate::media;
use crate::xml::XmlOptions;

/// JSON body operations and XML conversion on one route.
#[derive(Debug)]
pub struct JsonBodyTransform {
    request: BodyOps,
    response: Arc<BodyOps>,
    max_response: usize,
    xml: Option<Arc<XmlConversion>>,
}

/// `transform.xml`, compiled.
#[derive(Debug)]
pub(crate) struct XmlConversion {
    pub(crate) request: bool,
    pub(crate) response: bool,
    pub(crate) content_type: http::HeaderValue,
    pub(crate) options: XmlOptions,
}

/// Decided by the response head, for the body.
enum Planned {
    Rewrite {
        rendered: Vec<Option<String>>,
        from_xml: bool,
    },
    Replace(Bytes),
}

impl JsonBodyTransform {
    pub(crate) fn new(
        request: BodyOps,
        response: BodyOps,
        max_response: usize,
        xml: Option<XmlConversion>,
    ) -> Option<JsonBodyTransform> {
        (!request.is_empty() || !response.is_empty() || xml.is_some()).then(|| JsonBodyTransform {
            request,
            response: Arc::new(response),
            max_response,
            xml: xml.map(Arc::new),
        })
    }

    fn xml_request(&self) -> bool {
        self.xml.as_ref().is_some_and(|x| x.request)
    }

    fn xml_response(&self) -> bool {
        self.xml.as_ref().is_some_and(|x| x.response)
    }

    /// Whether answers may be rewritten at all.
    fn rewrites_responses(&self) -> bool {
        !self.response.is_empty() || self.xml_response()
    }
}

impl Filter for JsonBodyTransform {
    fn phase(&self) -> Phase {
        Phase::Transform
    }

    fn name(&self) -> &'static str {
        "transform_body"
    }

    fn needs_body(&self) -> bool {
        !self.request.is_empty() || self.xml_request()
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        // Response templates that read a path parameter run after the request phase.
        if self.response.uses_params() {
            MatchedPath::keep(cx);
        }
        if !self.needs_body() || !media::is_json(&media::essence(&cx.head.headers)) {
            return Flow::Continue;
        }
        let Some(body) = cx.body.filter(|b| !b.is_empty()) else {
            return Flow::Continue;
        };
        if media::is_encoded(&cx.head.headers) {
            return Flow::Deny(Denial::new(Reason::TransformEncoded));
        }
        let rendered = self.request.render(cx.exchange, cx.path);
        let Some(mut root) = read_json(body) else {
            return Flow::Deny(Denial::new(Reason::TransformUnparseable));
        };
        self.request.apply(&mut root, &rendered);
        let out = match &self.xml {
            Some(x) if x.request => match crate::xml::from_node(&root) {
                Ok(out) => {
                    cx.head.headers.insert(CONTENT_TYPE, x.content_type.clone());
                    out
                }
                Err(why) => {
                    // Which rule of the mapping the body broke (`xml.json_root`).
                    cx.exchange.details.push(("transform", why.into()));
                    return Flow::Deny(Denial::new(Reason::TransformUnparseable));
                }
            },
            _ => match to_json(&root, body.len()) {
                Some(out) => out,
                None => return Flow::Deny(Denial::new(Reason::TransformUnparseable)),
            },
        };
        cx.new_body = Some(Bytes::from(out));
        Flow::Continue
    }

    /// Only an uncompressed answer can be rewritten.
    fn on_upstream_request(&self, head: &mut http::request::Parts, _cx: &mut ExchangeCtx) {
        if self.rewrites_responses() {
            head.headers.remove(ACCEPT_ENCODING);
        }
    }

    fn on_response(&self, cx: &mut ResponseCtx<'_>) {
        if cx.own || !self.rewrites_responses() {
            return;
        }
        let essence = media::essence(&cx.head.headers);
        let from_xml = self.xml_response() && media::is_xml(&essence);
        if media::no_body(cx.head)
            || !(from_xml || (!self.response.is_empty() && media::is_json(&essence)))
        {
            return;
        }
        let headers = &cx.head.headers;
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let why = if media::is_encoded(headers) {
            Some("content_encoding")
        } else if declared.is_some_and(|n| n > self.max_response as u64) {
            Some("too_large")
        } else {
            None
        };
        if let Some(why) = why {
            cx.details.push(("transform", why.into()));
            cx.record(Reason::TransformResponse, Outcome::Deny);
            let body = cx.replace_with_problem(Problem::UPSTREAM_PROTOCOL);
            cx.extensions.insert(Planned::Replace(body));
            return;
        }
        cx.head.headers.remove(CONTENT_LENGTH);
        cx.head.headers.remove(ETAG);
        if from_xml {
            cx.head.headers.insert(
                CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
        }
        let rendered = self
            .response
            .render(cx.exchange, MatchedPath::of(cx.exchange));
        cx.extensions
            .insert(Planned::Rewrite { rendered, from_xml });
    }

    fn response_body(&self, cx: &ResponseCtx<'_>) -> Option<Box<dyn BodyRewriter>> {
        match cx.extensions.get::<Planned>()? {
            Planned::Replace(body) => Some(Box::new(ReplaceBody::new(body.clone()))),
            Planned::Rewrite { rendered, from_xml } => Some(Box::new(HeldBody {
                ops: self.response.clone(),
                rendered: rendered.clone(),
                xml: self.xml.clone().filter(|_| *from_xml),
                buf: Vec::new(),
                max: self.max_response,
            })),
        }
    }
}

/// Reads a JSON body into a tree. The UTF-8 check runs once over the whole body (read
/// from a `str`, the parser does not check each string again).
fn read_json(body: &[u8]) -> Option<Node<'_>> {
    serde_json::from_str(std::str::from_utf8(body).ok()?).ok()
}

/// Writes a tree as JSON, into a buffer sized for a body about as long as the one read.
fn to_json(root: &Node<'_>, len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len + len / 8 + 64);
    serde_json::to_writer(&mut out, root).ok()?;
    Some(out)
}

/// Holds a response body, then answers it rewritten.
struct HeldBody {
    ops: Arc<BodyOps>,
    rendered: Vec<Option<String>>,
    /// Read the body as XML.
    xml: Option<Arc<XmlConversion>>,
    buf: Vec<u8>,
    max: usize,
}

impl BodyRewriter for HeldBody {
    fn holds_whole_body(&self) -> bool {
        true
    }

    fn on_data(&mut self, data: Bytes, end: bool) -> Result<Bytes, &'static str> {
        if self.buf.len() + data.len() > self.max {
            return Err("transform.too_large");
        }
        // A body in one frame is read where it lies.
        let body = if end && self.buf.is_empty() {
            data
        } else {
            self.buf.extend_from_slice(&data);
            if !end {
                return Ok(Bytes::new());
            }
            Bytes::from(std::mem::take(&mut self.buf))
        };
        if body.is_empty() {
            return Ok(Bytes::new());
        }
        let mut root = match &self.xml {
            Some(x) => crate::xml::to_node(&body, &x.options)?,
            None => read_json(&body).ok_or("transform.unparseable")?,
        };
        self.ops.apply(&mut root, &self.rendered);
        to_json(&root, body.len())
            .map(Bytes::from)
            .ok_or("transform.unparseable")
    }
}
