//! CORS per route (`routes[].cors`): the gateway answers preflights itself (they never
//! reach the upstream, and need no credentials), and adds the CORS headers to every
//! response to an allowed origin, refusals included, so a page can read a 401 or a 429.
//! A disallowed origin gets no CORS headers at all; the upstream's own `Access-Control-*`
//! headers are removed, so the route's policy is the only one a browser sees.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use rampart_config::{ConfigError, CorsSpec};
use rampart_core::{Denial, Filter, Flow, Outcome, Phase, Reason, Reply, RequestCtx, ResponseCtx};

/// Request headers a page may always send (the Fetch standard's safelist).
const SAFELISTED: &[&str] = &[
    "accept",
    "accept-language",
    "content-language",
    "content-type",
];

/// A compiled CORS policy.
#[derive(Debug)]
pub struct Cors {
    any: bool,
    /// Exact origins, lowercase.
    exact: Vec<Box<str>>,
    /// `https://*.example.com`: the scheme part and the host suffix (`.example.com`).
    wildcard: Vec<(Box<str>, Box<str>)>,
    methods: Vec<Method>,
    headers: Vec<Box<str>>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

/// The allowed origin of this request, for the response phase.
struct Allowed(HeaderValue);

impl Cors {
    pub(crate) fn compile(
        spec: &CorsSpec,
        at: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Cors> {
        let before = errors.len();
        let mut cors = Cors {
            any: false,
            exact: Vec::new(),
            wildcard: Vec::new(),
            methods: Vec::new(),
            headers: Vec::new(),
            allow_methods: HeaderValue::from_static(""),
            allow_headers: None,
            expose: None,
            credentials: spec.credentials,
            max_age: HeaderValue::from(spec.max_age.0.as_secs()),
        };
        if spec.origins.is_empty() {
            errors.push(ConfigError::new(format!("{at}.origins"), "lists no origin"));
        }
        for (i, o) in spec.origins.iter().enumerate() {
            let at = format!("{at}.origins[{i}]");
            if o == "*" {
                if spec.credentials {
                    errors.push(ConfigError::new(
                        at,
                        "`*` cannot be used with `credentials: true` (browsers refuse it): list \
                         the origins",
                    ));
                }
                cors.any = true;
                continue;
            }
            let lower = o.to_ascii_lowercase();
            let Some((scheme, host)) = lower.split_once("://") else {
                errors.push(ConfigError::new(at, "an origin is scheme://host[:port]"));
                continue;
            };
            if !matches!(scheme, "http" | "https")
                || host.is_empty()
                || host.contains(['/', '?', '#', '@', ' '])
            {
                errors.push(ConfigError::new(
                    at,
                    "an origin is http(s)://host[:port], without a path, a query or user info",
                ));
                continue;
            }
            match host.strip_prefix('*') {
                Some(rest) if rest.starts_with('.') && !rest.contains('*') && rest.len() > 1 => {
                    cors.wildcard
                        .push((format!("{scheme}://").into(), rest.into()));
                }
                Some(_) => errors.push(ConfigError::new(
                    at,
                    "a wildcard origin is scheme://*.domain (any subdomain)",
                )),
                None if host.contains('*') => errors.push(ConfigError::new(
                    at,
                    "a wildcard origin is scheme://*.domain (any subdomain)",
                )),
                None => cors.exact.push(lower.into()),
            }
        }
        for (i, m) in spec.methods.iter().enumerate() {
            match Method::from_bytes(m.as_bytes()) {
                Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => {
                    cors.methods.push(method)
                }
                _ => errors.push(ConfigError::new(
                    format!("{at}.methods[{i}]"),
                    "not an upper-case HTTP method",
                )),
            }
        }
        for (i, h) in spec.headers.iter().enumerate() {
            match HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => cors.headers.push(n.as_str().into()),
                Err(_) => errors.push(ConfigError::new(
                    format!("{at}.headers[{i}]"),
                    "not a header name",
                )),
            }
        }
        for (i, h) in spec.expose_headers.iter().enumerate() {
            if HeaderName::from_bytes(h.as_bytes()).is_err() {
                errors.push(ConfigError::new(
                    format!("{at}.expose_headers[{i}]"),
                    "not a header name",
                ));
            }
        }
        if errors.len() > before {
            return None;
        }
        let join = |v: &[String]| HeaderValue::from_str(&v.join(", ")).ok();
        cors.allow_methods = join(&spec.methods)?;
        cors.allow_headers = (!spec.headers.is_empty())
            .then(|| join(&spec.headers))
            .flatten();
        cors.expose = (!spec.expose_headers.is_empty())
            .then(|| join(&spec.expose_headers))
            .flatten();
        Some(cors)
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        if self.any {
            return true;
        }
        let Ok(o) = origin.to_str() else {
            return false;
        };
        if self.exact.iter().any(|e| e.eq_ignore_ascii_case(o)) {
            return true;
        }
        let o = o.to_ascii_lowercase();
        self.wildcard.iter().any(|(scheme, suffix)| {
            o.strip_prefix(&**scheme).is_some_and(|host| {
                host.len() > suffix.len() && host.ends_with(&**suffix) && !host.contains(['/', '@'])
            })
        })
    }

    /// Whether every header a preflight asks for may be sent.
    fn headers_ok(&self, requested: Option<&HeaderValue>) -> bool {
        let Some(v) = requested else {
            return true;
        };
        let Ok(list) = v.to_str() else {
            return false;
        };
        list.split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .all(|h| {
                SAFELISTED.iter().any(|s| s.eq_ignore_ascii_case(h))
                    || self.headers.iter().any(|s| s.eq_ignore_ascii_case(h))
            })
    }

    /// `Access-Control-Allow-Origin`: the origin itself, or `*` for any origin without
    /// credentials (then the answer does not vary by origin).
    fn origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }
}

impl Filter for Cors {
    fn phase(&self) -> Phase {
        Phase::Cors
    }

    fn name(&self) -> &'static str {
        "cors"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        let Some(origin) = cx.head.headers.get(ORIGIN).cloned() else {
            return Flow::Continue;
        };
        let allowed = self.allows(&origin);
        let preflight = cx.head.method == Method::OPTIONS;
        let Some(asked) = cx
            .head
            .headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .filter(|_| preflight)
        else {
            if allowed {
                cx.extensions.insert(Allowed(origin));
            }
            return Flow::Continue;
        };
        let method_ok = self
            .methods
            .iter()
            .any(|m| m.as_str().as_bytes() == asked.as_bytes());
        let headers = cx.head.headers.get(ACCESS_CONTROL_REQUEST_HEADERS);
        if !allowed || !method_ok || !self.headers_ok(headers) {
            let why = if !allowed {
                "origin"
            } else if !method_ok {
                "method"
            } else {
                "headers"
            };
            cx.details.push(("cors", why.into()));
            cx.record(Reason::CorsDenied, Outcome::Deny);
            return Flow::Deny(Denial::new(Reason::CorsDenied));
        }
        cx.record(Reason::CorsPreflight, Outcome::Allow);
        cx.extensions.insert(Allowed(origin));
        let mut reply = Reply {
            status: StatusCode::NO_CONTENT,
            headers: vec![
                (ACCESS_CONTROL_ALLOW_METHODS, self.allow_methods.clone()),
                (ACCESS_CONTROL_MAX_AGE, self.max_age.clone()),
                (
                    VARY,
                    HeaderValue::from_static(
                        "Access-Control-Request-Method, Access-Control-Request-Headers",
                    ),
                ),
            ],
            code: Reason::CorsPreflight.code(),
        };
        if let Some(h) = &self.allow_headers {
            reply
                .headers
                .push((ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
        }
        Flow::Reply(reply)
    }

    fn on_response(&self, cx: &mut ResponseCtx<'_>) {
        let h = &mut cx.head.headers;
        for name in [
            ACCESS_CONTROL_ALLOW_ORIGIN,
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            ACCESS_CONTROL_EXPOSE_HEADERS,
        ] {
            h.remove(name);
        }
        if !cx.own {
            for name in [
                ACCESS_CONTROL_ALLOW_METHODS,
                ACCESS_CONTROL_ALLOW_HEADERS,
                ACCESS_CONTROL_MAX_AGE,
            ] {
                cx.head.headers.remove(name);
            }
        }
        if !self.any || self.credentials {
            // The answer depends on the origin: caches must key on it.
            cx.head
                .headers
                .append(VARY, HeaderValue::from_static("Origin"));
        }
        let Some(Allowed(origin)) = cx.extensions.get::<Allowed>() else {
            return;
        };
        let value = self.origin_value(origin);
        let h = &mut cx.head.headers;
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if self.credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(e) = &self.expose {
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
    }
}
