//! One route's response header rules, compiled.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rampart_config::{ConfigError, FrameOptions, HstsSpec, ResponseHeadersSpec};

/// Headers whose values frame the message or the connection: the proxy owns them, so an
/// operator rule may not touch them (a wrong `Content-Length` would corrupt responses).
const FRAMING: [HeaderName; 7] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    header::TRAILER,
    header::TE,
    HeaderName::from_static("keep-alive"),
];

/// The `Referrer-Policy` tokens of the W3C Referrer Policy spec §3.
const REFERRER_POLICIES: [&str; 8] = [
    "no-referrer",
    "no-referrer-when-downgrade",
    "same-origin",
    "origin",
    "strict-origin",
    "origin-when-cross-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

/// A route's response header rules, ready to apply.
#[derive(Debug, Default)]
pub struct HeaderPolicy {
    /// Sent only over TLS.
    hsts: Option<HeaderValue>,
    /// Security headers (nosniff, frame, referrer, CSP).
    security: Vec<(HeaderName, HeaderValue)>,
    /// Security headers replace the upstream's instead of filling gaps.
    override_upstream: bool,
    /// Operator rules, in the order applied: set, add, remove (gateway-wide first, then
    /// the route's).
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl HeaderPolicy {
    /// Compiles the gateway-wide rules, with a route's on top when given. Problems go to
    /// `errors` with their YAML path under `at`.
    pub fn compile(
        global: &ResponseHeadersSpec,
        route: Option<&ResponseHeadersSpec>,
        at: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Arc<HeaderPolicy> {
        let mut p = HeaderPolicy {
            override_upstream: route
                .and_then(|r| r.override_upstream)
                .or(global.override_upstream)
                .unwrap_or(false),
            ..HeaderPolicy::default()
        };
        let hsts = route
            .and_then(|r| r.hsts.clone())
            .or_else(|| global.hsts.clone())
            .unwrap_or_default();
        p.hsts = hsts_value(&hsts, &format!("{at}.hsts"), errors);
        if route
            .and_then(|r| r.content_type_options)
            .or(global.content_type_options)
            .unwrap_or(true)
        {
            p.security.push((
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ));
        }
        if let Some(f) = route.and_then(|r| r.frame_options).or(global.frame_options) {
            let v = match f {
                FrameOptions::Deny => "DENY",
                FrameOptions::Sameorigin => "SAMEORIGIN",
            };
            p.security
                .push((header::X_FRAME_OPTIONS, HeaderValue::from_static(v)));
        }
        let referrer = route
            .and_then(|r| r.referrer_policy.as_ref())
            .or(global.referrer_policy.as_ref());
        if let Some(r) = referrer {
            let known = r.split(',').all(|t| REFERRER_POLICIES.contains(&t.trim()));
            match HeaderValue::from_str(r) {
                Ok(v) if known => p.security.push((header::REFERRER_POLICY, v)),
                _ => errors.push(ConfigError::new(
                    format!("{at}.referrer_policy"),
                    format!("must be one of {}", REFERRER_POLICIES.join(", ")),
                )),
            }
        }
        let csp = route
            .and_then(|r| r.content_security_policy.as_ref())
            .or(global.content_security_policy.as_ref());
        if let Some(c) = csp {
            match HeaderValue::from_str(c) {
                Ok(v) if !c.trim().is_empty() => {
                    p.security.push((header::CONTENT_SECURITY_POLICY, v))
                }
                _ => errors.push(ConfigError::new(
                    format!("{at}.content_security_policy"),
                    "is not a valid header value",
                )),
            }
        }
        // The gateway-wide rules are checked once, at their own path.
        let levels: Vec<(&ResponseHeadersSpec, String)> = match route {
            Some(r) => vec![
                (global, "response_headers".to_string()),
                (r, at.to_string()),
            ],
            None => vec![(global, at.to_string())],
        };
        for (level, path) in levels {
            let mut sink = Vec::new();
            let errs = if path == at { &mut *errors } else { &mut sink };
            for (name, value) in &level.set {
                if let Some(h) = rule(name, Some(value), &format!("{path}.set.{name}"), errs) {
                    p.set
                        .push((h.0, h.1.unwrap_or(HeaderValue::from_static(""))));
                }
            }
            for (name, value) in &level.add {
                if let Some(h) = rule(name, Some(value), &format!("{path}.add.{name}"), errs) {
                    p.add
                        .push((h.0, h.1.unwrap_or(HeaderValue::from_static(""))));
                }
            }
            for (k, name) in level.remove.iter().enumerate() {
                if let Some(h) = rule(name, None, &format!("{path}.remove[{k}]"), errs) {
                    p.remove.push(h.0);
                }
            }
        }
        Arc::new(p)
    }

    /// True when applying this policy changes nothing.
    pub fn is_empty(&self) -> bool {
        self.hsts.is_none()
            && self.security.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
            && self.remove.is_empty()
    }

    /// Applies the policy to a response head. `own`: the gateway's own answer (its
    /// security headers are never replaced); `tls`: the client connection is TLS.
    pub fn apply(&self, headers: &mut HeaderMap, own: bool, tls: bool) {
        let replace = self.override_upstream && !own;
        let hsts = self
            .hsts
            .as_ref()
            .filter(|_| tls)
            .map(|v| (header::STRICT_TRANSPORT_SECURITY, v));
        for (name, value) in hsts
            .into_iter()
            .chain(self.security.iter().map(|(n, v)| (n.clone(), v)))
        {
            if replace || !headers.contains_key(&name) {
                headers.insert(name, value.clone());
            }
        }
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
        for n in &self.remove {
            headers.remove(n);
        }
    }
}

/// The `Strict-Transport-Security` value, or `None` when off. RFC 6797 §6.1.
fn hsts_value(h: &HstsSpec, at: &str, errors: &mut Vec<ConfigError>) -> Option<HeaderValue> {
    if !h.enabled {
        return None;
    }
    let secs = h.max_age.get().as_secs();
    // The browsers' preload list only takes one year or more, with subdomains: a
    // `preload` that cannot be accepted is a mistake, not a preference.
    if h.preload && (!h.include_subdomains || secs < 365 * 86_400) {
        errors.push(ConfigError::new(
            format!("{at}.preload"),
            "needs include_subdomains: true and max_age of at least 365d",
        ));
    }
    let mut v = format!("max-age={secs}");
    if h.include_subdomains {
        v.push_str("; includeSubDomains");
    }
    if h.preload {
        v.push_str("; preload");
    }
    HeaderValue::from_str(&v).ok()
}

/// A checked rule: a valid, non-framing header name and (for set/add) a valid value.
fn rule(
    name: &str,
    value: Option<&String>,
    at: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<(HeaderName, Option<HeaderValue>)> {
    let Ok(n) = HeaderName::from_bytes(name.as_bytes()) else {
        errors.push(ConfigError::new(at, "is not a valid header name"));
        return None;
    };
    if FRAMING.contains(&n) {
        errors.push(ConfigError::new(
            at,
            "is a framing header the gateway manages; it cannot be changed by a rule",
        ));
        return None;
    }
    let v = match value.map(|v| HeaderValue::from_str(v)) {
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            errors.push(ConfigError::new(at, "is not a valid header value"));
            return None;
        }
        None => None,
    };
    Some((n, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(global: &str, route: Option<&str>) -> (Arc<HeaderPolicy>, Vec<ConfigError>) {
        let parse = |y: &str| -> ResponseHeadersSpec { serde_json::from_str(y).unwrap() };
        let g = parse(global);
        let r = route.map(parse);
        let mut errors = Vec::new();
        let p = HeaderPolicy::compile(&g, r.as_ref(), "routes[0].response_headers", &mut errors);
        (p, errors)
    }

    #[test]
    fn defaults_send_nosniff_everywhere_and_hsts_only_over_tls() {
        let (p, errors) = compile("{}", None);
        assert!(errors.is_empty());
        let mut plain = HeaderMap::new();
        p.apply(&mut plain, false, false);
        assert_eq!(plain["x-content-type-options"], "nosniff");
        assert!(!plain.contains_key("strict-transport-security"));
        let mut tls = HeaderMap::new();
        p.apply(&mut tls, false, true);
        assert_eq!(tls["strict-transport-security"], "max-age=31536000");
    }

    #[test]
    fn keeps_the_upstreams_own_security_header_unless_told_to_override() {
        let (p, _) = compile(r#"{"frame_options":"deny"}"#, None);
        let mut h = HeaderMap::new();
        h.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
        p.apply(&mut h, false, false);
        assert_eq!(h[header::X_FRAME_OPTIONS], "SAMEORIGIN");
        let (p, _) = compile(r#"{"frame_options":"deny","override_upstream":true}"#, None);
        p.apply(&mut h, false, false);
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    }

    #[test]
    fn route_rules_apply_after_the_gateway_wide_ones() {
        let (p, errors) = compile(
            r#"{"set":{"x-a":"global"},"remove":["server"]}"#,
            Some(r#"{"set":{"x-a":"route"},"add":{"x-b":"1"},"hsts":{"enabled":false}}"#),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let mut h = HeaderMap::new();
        h.insert(header::SERVER, HeaderValue::from_static("upstream/1"));
        p.apply(&mut h, false, true);
        assert_eq!(h["x-a"], "route");
        assert_eq!(h["x-b"], "1");
        assert!(!h.contains_key(header::SERVER));
        assert!(!h.contains_key(header::STRICT_TRANSPORT_SECURITY));
    }

    #[test]
    fn rejects_rules_on_framing_headers_and_invalid_values() {
        let (_, errors) = compile(
            r#"{}"#,
            Some(
                r#"{"set":{"content-length":"1","bad name":"x","x-ok":"a\u0001"},"referrer_policy":"sometimes"}"#,
            ),
        );
        let paths: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            paths
                .iter()
                .any(|e| e.contains("set.content-length") && e.contains("framing")),
            "{paths:?}"
        );
        assert!(paths
            .iter()
            .any(|e| e.contains("set.bad name") && e.contains("header name")));
        assert!(paths
            .iter()
            .any(|e| e.contains("set.x-ok") && e.contains("header value")));
        assert!(paths.iter().any(|e| e.contains("referrer_policy")));
    }

    #[test]
    fn rejects_preload_the_preload_list_would_refuse() {
        let (_, errors) = compile(r#"{"hsts":{"preload":true}}"#, None);
        assert!(
            errors[0].to_string().contains("include_subdomains"),
            "{errors:?}"
        );
        let (p, errors) = compile(
            r#"{"hsts":{"preload":true,"include_subdomains":true,"max_age":"2y"}}"#,
            None,
        );
        assert!(errors.is_empty());
        assert!(p
            .hsts
            .as_ref()
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("; includeSubDomains; preload"));
    }
}
