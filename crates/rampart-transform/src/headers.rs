//! Header rules on a route (`routes[].transform.request_headers` / `response_headers`):
//! remove, rename, set and add, in that order, with values from a small template
//! language. A template is a string with `{{ variable }}` parts, parsed once at load into
//! literals and variables: no expressions, no loops, no code; rendering is one pass over
//! its parts. The variables:
//!
//! | variable | value |
//! |---|---|
//! | `consumer.id` | the configured consumer the caller proved to be |
//! | `consumer.plan` | its plan |
//! | `consumer.attributes.NAME`, `claims.NAME` | a consumer attribute, or a verified token's claim (strings, numbers, booleans) |
//! | `subject` | the proved subject (consumer id, token `sub`, certificate subject) |
//! | `auth.method` | how identity was proved: `api_key`, `jwt`, `mtls`, `signature` |
//! | `client_ip` | the client address (trusted-proxy aware) |
//! | `request_id` | the request id |
//! | `route` | the route's name |
//! | `params.NAME` | a path parameter of the route's `match.path` (`/v2/users/{id}`), as the normalised path holds it |
//!
//! A template whose variable has no value for a request (an anonymous caller, a missing
//! attribute), or whose value cannot be a header value (a line break), renders nothing:
//! `set` then removes the header, so a caller can never supply a value the gateway meant
//! to set (`X-Tenant` from a spoofed request), and `add` adds nothing.

use http::header::{HeaderMap, HeaderName};
use http::HeaderValue;
use rampart_config::{ConfigError, HeaderRulesSpec};
use rampart_core::{ExchangeCtx, Filter, Flow, PathParams, Phase, RequestCtx, ResponseCtx};

use crate::query::QueryRules;

/// Headers the gateway owns: framing and connection management.
const OWNED: &[&str] = &[
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
    "keep-alive",
    "proxy-connection",
    "trailer",
];

#[derive(Debug)]
enum Var {
    ConsumerId,
    ConsumerPlan,
    Attribute(Box<str>),
    Subject,
    AuthMethod,
    ClientIp,
    RequestId,
    Route,
    /// A path parameter, by its index in the route's [`PathParams`].
    Param(usize),
}

#[derive(Debug)]
enum Part {
    Literal(Box<str>),
    Var(Var),
}

/// A compiled template.
#[derive(Debug)]
pub(crate) struct Template {
    parts: Vec<Part>,
    /// The value, when the template has no variables.
    constant: Option<HeaderValue>,
    params: PathParams,
}

impl Template {
    /// Parses a template; `params` are the route's path parameters.
    pub(crate) fn parse(text: &str, params: &PathParams) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].into()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err("a `{{` is not closed by `}}`".into());
            };
            let name = after[..close].trim();
            let var =
                match name {
                    "consumer.id" => Var::ConsumerId,
                    "consumer.plan" => Var::ConsumerPlan,
                    "subject" => Var::Subject,
                    "auth.method" => Var::AuthMethod,
                    "client_ip" => Var::ClientIp,
                    "request_id" => Var::RequestId,
                    "route" => Var::Route,
                    n if n.starts_with("params.") => match params.index(&n["params.".len()..]) {
                        Some(i) => Var::Param(i),
                        None => {
                            let known: Vec<&str> = params.names().collect();
                            return Err(format!(
                            "`{n}` is not a path parameter of the route's match.path (it has: {})",
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ));
                        }
                    },
                    n => match n
                        .strip_prefix("consumer.attributes.")
                        .or_else(|| n.strip_prefix("claims."))
                    {
                        Some(a) if !a.is_empty() => Var::Attribute(a.into()),
                        _ => {
                            return Err(format!(
                                "unknown variable `{n}`: one of consumer.id, consumer.plan, \
                             consumer.attributes.NAME, claims.NAME, subject, auth.method, \
                             client_ip, request_id, route, params.NAME"
                            ))
                        }
                    },
                };
            parts.push(Part::Var(var));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.into()));
        }
        for p in &parts {
            if let Part::Literal(l) = p {
                if HeaderValue::from_str(l).is_err() {
                    return Err("holds characters a header value cannot carry".into());
                }
            }
        }
        let constant = match parts.as_slice() {
            [] => Some(HeaderValue::from_static("")),
            [Part::Literal(l)] => HeaderValue::from_str(l).ok(),
            _ => None,
        };
        let uses = parts.iter().any(|p| matches!(p, Part::Var(Var::Param(_))));
        Ok(Template {
            parts,
            constant,
            params: if uses {
                params.clone()
            } else {
                PathParams::default()
            },
        })
    }

    pub(crate) fn uses_params(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(Var::Param(_))))
    }

    /// The value for this exchange as a header value, or `None` when a variable has none
    /// or the value cannot be a header value. `path` is the normalised path matched.
    pub(crate) fn render(&self, cx: &ExchangeCtx, path: &str) -> Option<HeaderValue> {
        if let Some(c) = &self.constant {
            return Some(c.clone());
        }
        let mut out = String::new();
        self.render_into(cx, path, &mut out)?;
        HeaderValue::from_str(&out).ok()
    }

    /// Appends the value for this exchange to `out`; `None` when a variable has none
    /// (`out` then holds a partial value).
    pub(crate) fn render_into(&self, cx: &ExchangeCtx, path: &str, out: &mut String) -> Option<()> {
        let id = cx.identity.as_deref();
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Var(v) => match v {
                    Var::ConsumerId => out.push_str(id?.consumer.as_deref()?),
                    Var::ConsumerPlan => out.push_str(id?.plan.as_deref()?),
                    Var::Subject => out.push_str(&id?.subject),
                    Var::AuthMethod => out.push_str(id?.method),
                    Var::Attribute(a) => match id?.attributes.get(&**a)? {
                        serde_json::Value::String(s) => out.push_str(s),
                        serde_json::Value::Number(n) => out.push_str(&n.to_string()),
                        serde_json::Value::Bool(b) => {
                            out.push_str(if *b { "true" } else { "false" })
                        }
                        _ => return None,
                    },
                    Var::ClientIp => out.push_str(&cx.client_ip.to_string()),
                    Var::RequestId => out.push_str(cx.request_id.to_str().ok()?),
                    Var::Route => out.push_str(cx.route.as_deref()?),
                    Var::Param(i) => out.push_str(self.params.value(path, *i)?),
                },
            }
        }
        Some(())
    }
}

/// Compiled header rules.
#[derive(Debug, Default)]
pub(crate) struct HeaderRules {
    remove: Vec<HeaderName>,
    rename: Vec<(HeaderName, HeaderName)>,
    set: Vec<(HeaderName, Template)>,
    add: Vec<(HeaderName, Template)>,
}

impl HeaderRules {
    pub(crate) fn compile(
        spec: &HeaderRulesSpec,
        params: &PathParams,
        at: &str,
        errors: &mut Vec<ConfigError>,
    ) -> HeaderRules {
        let name = |n: &str, at: String, errors: &mut Vec<ConfigError>| match HeaderName::from_bytes(
            n.as_bytes(),
        ) {
            Ok(h) if OWNED.contains(&h.as_str()) => {
                errors.push(ConfigError::new(
                    at,
                    format!(
                        "`{h}` frames the message or manages the connection; the gateway sets it"
                    ),
                ));
                None
            }
            Ok(h) => Some(h),
            Err(_) => {
                errors.push(ConfigError::new(at, format!("`{n}` is not a header name")));
                None
            }
        };
        let mut rules = HeaderRules::default();
        for (i, n) in spec.remove.iter().enumerate() {
            rules
                .remove
                .extend(name(n, format!("{at}.remove[{i}]"), errors));
        }
        for (from, to) in &spec.rename {
            let a = name(from, format!("{at}.rename.{from}"), errors);
            let b = name(to, format!("{at}.rename.{from}"), errors);
            if let (Some(a), Some(b)) = (a, b) {
                rules.rename.push((a, b));
            }
        }
        for (list, out) in [(&spec.set, &mut rules.set), (&spec.add, &mut rules.add)] {
            let kind = if std::ptr::eq(list, &spec.set) {
                "set"
            } else {
                "add"
            };
            for (n, t) in list {
                let at = format!("{at}.{kind}.{n}");
                let h = name(n, at.clone(), errors);
                match Template::parse(t, params) {
                    Ok(t) => out.extend(h.map(|h| (h, t))),
                    Err(e) => errors.push(ConfigError::new(at, e)),
                }
            }
        }
        rules
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }

    fn uses_params(&self) -> bool {
        self.set
            .iter()
            .chain(&self.add)
            .any(|(_, t)| t.uses_params())
    }

    pub(crate) fn apply(&self, headers: &mut HeaderMap, cx: &ExchangeCtx, path: &str) {
        for n in &self.remove {
            headers.remove(n);
        }
        for (from, to) in &self.rename {
            let values: Vec<HeaderValue> = headers.get_all(from).iter().cloned().collect();
            headers.remove(from);
            for v in values {
                headers.append(to.clone(), v);
            }
        }
        for (n, t) in &self.set {
            match t.render(cx, path) {
                Some(v) => {
                    headers.insert(n.clone(), v);
                }
                None => {
                    headers.remove(n);
                }
            }
        }
        for (n, t) in &self.add {
            if let Some(v) = t.render(cx, path) {
                headers.append(n.clone(), v);
            }
        }
    }
}

/// A route's header and query transformations.
#[derive(Debug)]
pub struct HeaderTransform {
    request: HeaderRules,
    response: HeaderRules,
    query: QueryRules,
    /// Some template reads a path parameter, so the request phase keeps the matched path
    /// for the later ones.
    keeps_path: bool,
}

/// The normalised path the route matched, kept for templates that read path parameters
/// after the request phase.
pub(crate) struct MatchedPath(Box<str>);

impl MatchedPath {
    /// Keeps the path `cx` matched for this exchange's later phases.
    pub(crate) fn keep(cx: &mut RequestCtx<'_>) {
        let path = cx.path.into();
        cx.exchange.extensions.insert(MatchedPath(path));
    }

    /// The kept path, or empty when no filter kept it.
    pub(crate) fn of(cx: &ExchangeCtx) -> &str {
        cx.extensions.get::<MatchedPath>().map_or("", |p| &p.0)
    }
}

impl HeaderTransform {
    pub(crate) fn new(
        request: HeaderRules,
        response: HeaderRules,
        query: QueryRules,
    ) -> Option<HeaderTransform> {
        let keeps_path = request.uses_params() || response.uses_params();
        (!request.is_empty() || !response.is_empty() || !query.is_empty()).then_some(
            HeaderTransform {
                request,
                response,
                query,
                keeps_path,
            },
        )
    }
}

impl Filter for HeaderTransform {
    fn phase(&self) -> Phase {
        Phase::Transform
    }

    fn name(&self) -> &'static str {
        "transform"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        if !self.query.is_empty() {
            self.query.apply(&mut cx.head.uri, cx.path, cx.exchange);
        }
        if self.keeps_path {
            MatchedPath::keep(cx);
        }
        Flow::Continue
    }

    fn on_upstream_request(&self, head: &mut http::request::Parts, cx: &mut ExchangeCtx) {
        self.request
            .apply(&mut head.headers, cx, MatchedPath::of(cx));
    }

    /// Upstream responses only: the gateway's own answers are not the upstream's to shape.
    fn on_response(&self, cx: &mut ResponseCtx<'_>) {
        if !cx.own && !self.response.is_empty() {
            let ResponseCtx { head, exchange, .. } = cx;
            self.response
                .apply(&mut head.headers, exchange, MatchedPath::of(exchange));
        }
    }
}
