//! Semantic checks that need nothing but the spec itself. All problems are collected, so
//! one run of `rampart validate` lists every mistake in the file.

use std::collections::{HashMap, HashSet};

use crate::{Balance, ConfigError, HashOn, RewriteSpec, Spec, UpstreamSpec};

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];

/// Returns every semantic problem in `spec`, each with its YAML path. Empty means valid.
pub fn validate(spec: &Spec) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    let mut err = |path: String, reason: String| errs.push(ConfigError { path, reason });

    if spec.version != 1 {
        err(
            "version".into(),
            format!(
                "unsupported version {}; this Rampart reads version 1",
                spec.version
            ),
        );
    }
    if let Some(q) = spec.identity.api_keys.query_param.as_deref() {
        if let Some(i) = spec.access_log.query_values.iter().position(|v| v == q) {
            err(
                format!("access_log.query_values[{i}]"),
                format!("`{q}` carries API keys (identity.api_keys.query_param): its value is never logged"),
            );
        }
    }
    for (i, h) in spec.access_log.headers.iter().enumerate() {
        let at = format!("access_log.headers[{i}]");
        match http::HeaderName::from_bytes(h.as_bytes()) {
            Err(_) => err(at, format!("`{h}` is not a header name")),
            Ok(n)
                if [
                    "authorization",
                    "proxy-authorization",
                    "cookie",
                    "set-cookie",
                ]
                .contains(&n.as_str())
                    || n.as_str()
                        .eq_ignore_ascii_case(&spec.identity.api_keys.header) =>
            {
                err(
                    at,
                    format!("`{n}` carries credentials: its value is never logged"),
                )
            }
            Ok(_) => {}
        }
    }
    if let Some(w) = spec.workers {
        if w == 0 || w > 1024 {
            err(
                "workers".into(),
                format!("must be between 1 and 1024, got {w}"),
            );
        }
    }
    if spec.listeners.is_empty() {
        err(
            "listeners".into(),
            "at least one listener is required".into(),
        );
    }
    let mut names = HashMap::new();
    let mut binds = HashMap::new();
    for (i, l) in spec.listeners.iter().enumerate() {
        let p = format!("listeners[{i}]");
        if l.name.is_empty() {
            err(format!("{p}.name"), "must not be empty".into());
        } else if let Some(j) = names.insert(l.name.as_str(), i) {
            err(
                format!("{p}.name"),
                format!("duplicate listener name {:?} (also listeners[{j}])", l.name),
            );
        }
        if let Some(j) = binds.insert(l.bind, i) {
            if l.bind.port() != 0 {
                err(
                    format!("{p}.bind"),
                    format!("address {} is already used by listeners[{j}]", l.bind),
                );
            }
        }
        if let Some(tls) = &l.tls {
            if tls.certificates.is_empty() {
                err(
                    format!("{p}.tls.certificates"),
                    "at least one certificate is required".into(),
                );
            }
            for (k, c) in tls.certificates.iter().enumerate() {
                for (n, name) in c.server_names.iter().flatten().enumerate() {
                    if let Err(r) = check_host_pattern(name) {
                        err(format!("{p}.tls.certificates[{k}].server_names[{n}]"), r);
                    }
                }
            }
        }
    }

    let l = &spec.limits;
    let mut range = |key: &str, v: u64, lo: u64, hi: u64, unit: &str| {
        if v < lo || v > hi {
            err(
                format!("limits.{key}"),
                format!("must be between {lo} and {hi}{unit}, got {v}{unit}"),
            );
        }
    };
    range(
        "max_header_bytes",
        l.max_header_bytes.0,
        1024,
        1 << 20,
        " bytes",
    );
    range("max_headers", l.max_headers as u64, 1, 1000, "");
    range("max_uri_bytes", l.max_uri_bytes.0, 256, 1 << 20, " bytes");
    range("max_body_bytes", l.max_body_bytes.0, 0, 1 << 40, " bytes");
    range(
        "max_connections",
        l.max_connections as u64,
        1,
        10_000_000,
        "",
    );
    range(
        "max_connections_per_ip",
        l.max_connections_per_ip as u64,
        1,
        10_000_000,
        "",
    );
    range(
        "h2_max_concurrent_streams",
        l.h2_max_concurrent_streams as u64,
        1,
        10_000,
        "",
    );
    range(
        "h2_max_pending_resets",
        l.h2_max_pending_resets as u64,
        1,
        10_000,
        "",
    );
    for (key, d) in [
        ("header_timeout", l.header_timeout),
        ("body_timeout", l.body_timeout),
        ("idle_timeout", l.idle_timeout),
    ] {
        if d.get().is_zero() {
            err(format!("limits.{key}"), "must be greater than zero".into());
        }
    }

    if let Some(admin) = &spec.admin {
        if admin.token.is_none() && !admin.bind.ip().is_loopback() {
            err(
                "admin.token".into(),
                format!(
                    "is required when admin.bind ({}) is not a loopback address",
                    admin.bind
                ),
            );
        }
        if admin.read_token.is_some() && admin.token.is_none() {
            err(
                "admin.read_token".into(),
                "needs admin.token: a read-only token cannot be the only one".into(),
            );
        }
        if admin.read_token.is_some() && admin.read_token == admin.token {
            err(
                "admin.read_token".into(),
                "must differ from admin.token".into(),
            );
        }
        if !admin.ui.certificates.is_empty()
            && admin.tls.as_ref().is_none_or(|t| t.client_auth.is_none())
        {
            err(
                "admin.ui.certificates".into(),
                "needs admin.tls with client_auth: only a certificate the admin listener verified can sign in".into(),
            );
        }
        if admin.ui.max_live == 0 {
            err("admin.ui.max_live".into(), "must be at least 1".into());
        }
        if admin.ui.session_idle.get().is_zero() || admin.ui.session_idle > admin.ui.session_max {
            err(
                "admin.ui.session_idle".into(),
                "must be more than zero and at most admin.ui.session_max".into(),
            );
        }
        if admin.max_connections == 0 {
            err("admin.max_connections".into(), "must be at least 1".into());
        }
        if admin.bind.port() != 0 && spec.listeners.iter().any(|l| l.bind == admin.bind) {
            err(
                "admin.bind".into(),
                format!(
                    "{} is also a public listener; the admin API needs its own",
                    admin.bind
                ),
            );
        }
    }
    if spec.access_log.output.is_empty() {
        err(
            "access_log.output".into(),
            "must be `stdout` or a file path".into(),
        );
    }

    for (name, u) in &spec.upstreams {
        validate_upstream(&format!("upstreams.{name}"), name, u, &mut errs);
    }

    let mut route_names = HashMap::new();
    for (i, r) in spec.routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        let mut err = |path: String, reason: String| errs.push(ConfigError { path, reason });
        if r.name.is_empty() {
            err(format!("{p}.name"), "must not be empty".into());
        } else if let Some(j) = route_names.insert(r.name.as_str(), i) {
            err(
                format!("{p}.name"),
                format!("duplicate route name {:?} (also routes[{j}])", r.name),
            );
        }
        if !spec.upstreams.contains_key(&r.upstream) {
            let known: Vec<&str> = spec.upstreams.keys().map(String::as_str).collect();
            err(
                format!("{p}.upstream"),
                format!(
                    "unknown upstream {:?} (defined: {})",
                    r.upstream,
                    list_or_none(&known)
                ),
            );
        }
        let m = &r.matcher;
        match (&m.path, &m.path_prefix) {
            (None, None) => err(format!("{p}.match"), "needs `path` or `path_prefix`".into()),
            (Some(_), Some(_)) => err(
                format!("{p}.match"),
                "`path` and `path_prefix` are exclusive; use one".into(),
            ),
            (Some(path), None) | (None, Some(path)) => {
                let key = if m.path.is_some() {
                    "path"
                } else {
                    "path_prefix"
                };
                if !path.starts_with('/') {
                    err(
                        format!("{p}.match.{key}"),
                        format!("must start with '/', got {path:?}"),
                    );
                }
            }
        }
        for (h, host) in m.hosts.iter().enumerate() {
            if let Err(reason) = check_host_pattern(host) {
                err(format!("{p}.match.hosts[{h}]"), reason);
            }
        }
        let mut seen = HashSet::new();
        for (k, method) in m.methods.iter().enumerate() {
            if !METHODS.contains(&method.as_str()) {
                err(
                    format!("{p}.match.methods[{k}]"),
                    format!(
                        "unknown method {method:?} (use uppercase: {})",
                        METHODS.join(", ")
                    ),
                );
            } else if !seen.insert(method) {
                err(
                    format!("{p}.match.methods[{k}]"),
                    format!("method {method} is listed twice"),
                );
            }
        }
        for (k, h) in m.headers.iter().enumerate() {
            if !is_token(&h.name) {
                err(
                    format!("{p}.match.headers[{k}].name"),
                    format!("{:?} is not a valid header name", h.name),
                );
            }
            if let Some(v) = &h.value {
                if v.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
                    err(
                        format!("{p}.match.headers[{k}].value"),
                        "contains control characters".into(),
                    );
                }
            }
        }
        match r.rewrite.as_deref() {
            Some(RewriteSpec::StripPrefix(prefix)) => {
                if !prefix.starts_with('/') {
                    err(
                        format!("{p}.rewrite.strip_prefix"),
                        format!("must start with '/', got {prefix:?}"),
                    );
                } else if let Some(path) = m.path_prefix.as_ref().or(m.path.as_ref()) {
                    if !path.starts_with(prefix.trim_end_matches('/')) {
                        err(
                            format!("{p}.rewrite.strip_prefix"),
                            format!("{prefix:?} is not a prefix of the matched path {path:?}, so it would never apply"),
                        );
                    }
                }
            }
            Some(RewriteSpec::ReplacePrefix { from, to }) => {
                for (key, v) in [("from", from), ("to", to)] {
                    if !v.starts_with('/') {
                        err(
                            format!("{p}.rewrite.replace_prefix.{key}"),
                            format!("must start with '/', got {v:?}"),
                        );
                    }
                }
            }
            // Checked against the route's pattern when the plan compiles it.
            Some(RewriteSpec::Template(_)) | None => {}
        }
    }
    crate::validate_identity::validate(spec, &mut errs);
    crate::consumer_store::validate(spec, &mut errs);
    crate::audit::validate(spec, &mut errs);
    crate::validate_limits::validate(spec, &mut errs);
    crate::json_limits::validate(spec, &mut errs);
    crate::ip_lists::validate(spec, &mut errs);
    crate::validation::validate(spec, &mut errs);
    crate::inspect::validate(spec, &mut errs);
    crate::bots::validate(spec, &mut errs);
    crate::anomaly::validate(spec, &mut errs);
    crate::tracing::validate(spec, &mut errs);
    crate::syslog::validate(spec, &mut errs);
    errs
}

/// Returns what is legal but risky (a public route, shadow mode), each with its YAML path.
pub fn warnings(spec: &Spec) -> Vec<ConfigError> {
    let mut out = crate::validate_identity::warnings(spec);
    out.extend(outbound_warnings(spec));
    out
}

/// Routes to an upstream that carries the gateway's own credential (a partner API): each
/// should be an outbound route limited to what the integration needs.
fn outbound_warnings(spec: &Spec) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (i, r) in spec.routes.iter().enumerate() {
        let Some(u) = spec.upstreams.get(&r.upstream) else {
            continue;
        };
        if u.credentials.is_none() {
            continue;
        }
        let mut open = Vec::new();
        if r.authenticate.is_empty() {
            open.push("to anyone (no authentication)");
        }
        if r.matcher.methods.is_empty() {
            open.push("on any method");
        }
        if r.matcher
            .path_prefix
            .as_deref()
            .is_some_and(|p| p.trim_end_matches('/').is_empty())
        {
            open.push("on any path");
        }
        if !open.is_empty() {
            out.push(ConfigError {
                path: format!("routes[{i}]"),
                reason: format!(
                    "route {:?} calls upstream {:?} with the gateway's own credential {}: \
                     limit it to the methods and paths the integration needs",
                    r.name,
                    r.upstream,
                    open.join(", ")
                ),
            });
        }
    }
    out
}

fn validate_upstream(p: &str, _name: &str, u: &UpstreamSpec, errs: &mut Vec<ConfigError>) {
    let mut err = |path: String, reason: String| errs.push(ConfigError { path, reason });
    if u.targets.is_empty() {
        err(
            format!("{p}.targets"),
            "at least one target is required".into(),
        );
    }
    let mut schemes = HashSet::new();
    for (i, t) in u.targets.iter().enumerate() {
        match check_target_url(&t.url) {
            Ok(scheme) => {
                schemes.insert(scheme);
            }
            Err(reason) => err(format!("{p}.targets[{i}].url"), reason),
        }
        if t.weight == 0 || t.weight > 1000 {
            err(
                format!("{p}.targets[{i}].weight"),
                format!("must be between 1 and 1000, got {}", t.weight),
            );
        }
    }
    if u.tls.is_some() && !schemes.contains("https") && !schemes.is_empty() {
        err(
            format!("{p}.tls"),
            "is set but no target uses https://".into(),
        );
    }
    match (u.balance, &u.hash_on) {
        (Balance::ConsistentHash, None) => err(
            format!("{p}.hash_on"),
            "is required with balance: consistent_hash (client_ip or {header: NAME})".into(),
        ),
        (Balance::ConsistentHash, Some(HashOn::Header(h))) if !is_token(h) => err(
            format!("{p}.hash_on.header"),
            format!("{h:?} is not a valid header name"),
        ),
        (b, Some(_)) if b != Balance::ConsistentHash => err(
            format!("{p}.hash_on"),
            "only applies with balance: consistent_hash".into(),
        ),
        _ => {}
    }
    let t = &u.timeouts;
    for (key, d) in [
        ("connect", t.connect),
        ("response_header", t.response_header),
        ("request", t.request),
    ] {
        if d.get().is_zero() {
            err(
                format!("{p}.timeouts.{key}"),
                "must be greater than zero".into(),
            );
        }
    }
    if let Some(hc) = &u.health_check {
        if !hc.path.starts_with('/') {
            err(
                format!("{p}.health_check.path"),
                format!("must start with '/', got {:?}", hc.path),
            );
        }
        if hc.interval.get() < std::time::Duration::from_millis(100) {
            err(
                format!("{p}.health_check.interval"),
                "must be at least 100ms".into(),
            );
        }
        if hc.timeout.get().is_zero() {
            err(
                format!("{p}.health_check.timeout"),
                "must be greater than zero".into(),
            );
        }
        if hc.healthy_threshold == 0 {
            err(
                format!("{p}.health_check.healthy_threshold"),
                "must be at least 1".into(),
            );
        }
        if hc.unhealthy_threshold == 0 {
            err(
                format!("{p}.health_check.unhealthy_threshold"),
                "must be at least 1".into(),
            );
        }
    }
    if u.passive_health.enabled && u.passive_health.consecutive_failures == 0 {
        err(
            format!("{p}.passive_health.consecutive_failures"),
            "must be at least 1".into(),
        );
    }
    if u.retries.max > 5 {
        err(
            format!("{p}.retries.max"),
            format!("must be at most 5, got {}", u.retries.max),
        );
    }
    if u.retries.budget_percent > 100 {
        err(
            format!("{p}.retries.budget_percent"),
            "must be between 0 and 100".into(),
        );
    }
    for (i, s) in u.retries.on_status.iter().enumerate() {
        if !(500..=599).contains(s) {
            err(
                format!("{p}.retries.on_status[{i}]"),
                format!("only 5xx statuses can be retried, got {s}"),
            );
        }
    }
    if u.circuit_breaker.max_requests == 0 {
        err(
            format!("{p}.circuit_breaker.max_requests"),
            "must be at least 1".into(),
        );
    }
}

/// Checks an upstream target URL; returns its scheme.
fn check_target_url(url: &str) -> Result<&'static str, String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        ("http", rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        ("https", rest)
    } else {
        return Err(format!("{url:?} must start with http:// or https://"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(format!(
            "{url:?} must not have a path, query or fragment (use a route rewrite)"
        ));
    }
    if authority.contains('@') {
        return Err(format!("{url:?} must not embed credentials"));
    }
    match authority.parse::<http::uri::Authority>() {
        Ok(a) if a.port_u16() == Some(0) => Err(format!("{url:?} has port 0")),
        Ok(_) => Ok(scheme),
        Err(_) => Err(format!("{url:?} is not a valid host[:port]")),
    }
}

/// Host patterns: a lowercase DNS name, or `*.` followed by one.
pub(crate) fn check_host_pattern(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Err(format!("{host:?} must be lowercase"))
    } else {
        Err(format!(
            "{host:?} is not a valid host name (exact, or *.example.com)"
        ))
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
