//! Semantic checks of `identity`, `consumers` and each route's `authenticate` /
//! `authorize`: the rules that keep a config from opening a hole (HS* beside RSA keys,
//! an issuer without audiences, a route that names an issuer that does not exist).

use std::collections::HashMap;

use crate::{ApiKeySource, ConfigError, JwtIssuerSpec, Spec};

/// Pushes every identity problem in `spec` onto `errs`.
pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    let mut err = |path: String, reason: String| errs.push(ConfigError { path, reason });
    let id = &spec.identity;
    if id.api_keys.header.is_empty() || http_header_name(&id.api_keys.header).is_none() {
        err(
            "identity.api_keys.header".into(),
            format!("{:?} is not a valid header name", id.api_keys.header),
        );
    }
    if let Some(q) = &id.api_keys.query_param {
        if q.is_empty()
            || !q
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            err(
                "identity.api_keys.query_param".into(),
                "must be letters, digits, '-' or '_'".into(),
            );
        }
    }
    for (name, issuer) in &id.jwt {
        validate_issuer(&format!("identity.jwt.{name}"), issuer, &mut err);
    }
    let h = &id.headers;
    for (key, v) in [
        ("consumer", &h.consumer),
        ("subject", &h.subject),
        ("roles", &h.roles),
        ("scopes", &h.scopes),
        ("method", &h.method),
        ("credential", &h.credential),
    ] {
        if http_header_name(v).is_none() {
            err(
                format!("identity.headers.{key}"),
                format!("{v:?} is not a valid header name"),
            );
        }
    }
    for (i, v) in h.strip.iter().enumerate() {
        if http_header_name(v).is_none() {
            err(
                format!("identity.headers.strip[{i}]"),
                format!("{v:?} is not a valid header name"),
            );
        }
    }

    let mut consumer_ids = HashMap::new();
    let mut key_ids = HashMap::new();
    let mut key_hashes = HashMap::new();
    let mut signing_ids = HashMap::new();
    let mut any_key = false;
    for (i, c) in spec.consumers.iter().enumerate() {
        let p = format!("consumers[{i}]");
        if c.id.is_empty() || c.id.chars().any(|ch| ch.is_control() || ch == ',') {
            err(
                format!("{p}.id"),
                "must be non-empty, without commas or control characters".into(),
            );
        } else if let Some(j) = consumer_ids.insert(c.id.as_str(), i) {
            err(
                format!("{p}.id"),
                format!("duplicate consumer id {:?} (also consumers[{j}])", c.id),
            );
        }
        for (k, v) in &c.attributes {
            if !attribute_ok(v) {
                err(
                    format!("{p}.attributes.{k}"),
                    "must be a string, number, boolean, or a list of those".into(),
                );
            }
        }
        for (k, key) in c.api_keys.iter().enumerate() {
            any_key = true;
            let kp = format!("{p}.api_keys[{k}]");
            if let Some(prev) = key_ids.insert(key.id.as_str(), kp.clone()) {
                err(
                    format!("{kp}.id"),
                    format!("duplicate API key id {:?} (also {prev})", key.id),
                );
            }
            match parse_key_hash(&key.hash) {
                Some(h) => {
                    if let Some(prev) = key_hashes.insert(h, kp.clone()) {
                        err(
                            format!("{kp}.hash"),
                            format!("the same key hash is configured twice (also {prev})"),
                        );
                    }
                }
                None => err(
                    format!("{kp}.hash"),
                    "must be hmac-sha256:<64 hex digits>, as printed by `rampart keys new`".into(),
                ),
            }
            if let (Some(a), Some(b)) = (key.not_before, key.expires) {
                if a >= b {
                    err(format!("{kp}.expires"), "must be after not_before".into());
                }
            }
        }
        for (k, m) in c.certificates.iter().enumerate() {
            if let crate::CertificateMatchSpec::Fingerprint(f) = m {
                if normalize_fingerprint(f).is_none() {
                    err(
                        format!("{p}.certificates[{k}].fingerprint"),
                        "must be 64 hex digits (SHA-256), colons allowed".into(),
                    );
                }
            }
        }
        for (k, s) in c.signing_keys.iter().enumerate() {
            let sp = format!("{p}.signing_keys[{k}]");
            if s.id.is_empty()
                || !s
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b',')
            {
                err(
                    format!("{sp}.id"),
                    "must be printable ASCII without quotes or commas".into(),
                );
            } else if let Some(prev) = signing_ids.insert(s.id.as_str(), sp.clone()) {
                err(
                    format!("{sp}.id"),
                    format!("duplicate signing key id {:?} (also {prev})", s.id),
                );
            }
        }
    }
    if any_key && id.api_keys.pepper.is_none() {
        err(
            "identity.api_keys.pepper".into(),
            "consumers have API keys, so a pepper secret reference is required".into(),
        );
    }

    for (i, r) in spec.routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        let mut seen = Vec::new();
        for (k, m) in r.authenticate.iter().enumerate() {
            let mp = format!("{p}.authenticate[{k}]");
            if seen.contains(&m) {
                err(mp.clone(), format!("{m:?} is listed twice"));
            }
            seen.push(m);
            match m.as_str() {
                "api_key" => {
                    if id.api_keys.pepper.is_none() {
                        err(
                            mp,
                            "api_key needs identity.api_keys.pepper to be set".into(),
                        );
                    }
                }
                "mtls" | "signature" => {}
                other => match other.strip_prefix("jwt:") {
                    Some(name) if id.jwt.contains_key(name) => {}
                    Some(name) => err(
                        mp,
                        format!(
                            "unknown JWT issuer {name:?}; known: {}",
                            id.jwt.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ),
                    None => err(
                        mp,
                        format!(
                            "unknown method {other:?}; use api_key, jwt:NAME, mtls or signature"
                        ),
                    ),
                },
            }
        }
        if r.api_key_sources.is_empty() {
            err(
                format!("{p}.api_key_sources"),
                "must list at least one of header, bearer, query".into(),
            );
        }
        if r.api_key_sources.contains(&ApiKeySource::Query) && id.api_keys.query_param.is_none() {
            err(
                format!("{p}.api_key_sources"),
                "query needs identity.api_keys.query_param".into(),
            );
        }
        if let Some(a) = &r.authorize {
            if r.authenticate.is_empty() {
                err(
                    format!("{p}.authorize"),
                    "authorization needs an identity: list the accepted methods in authenticate"
                        .into(),
                );
            }
            for (k, c) in a.consumers.iter().enumerate() {
                if !consumer_ids.contains_key(c.as_str()) {
                    err(
                        format!("{p}.authorize.consumers[{k}]"),
                        format!("unknown consumer {c:?}"),
                    );
                }
            }
            for (k, h) in a.policy_headers.iter().enumerate() {
                if http_header_name(h).is_none() {
                    err(
                        format!("{p}.authorize.policy_headers[{k}]"),
                        format!("{h:?} is not a valid header name"),
                    );
                }
            }
            if let Some(action) = &a.action {
                if action.is_empty() || action.contains('"') || action.contains('\\') {
                    err(
                        format!("{p}.authorize.action"),
                        "must be non-empty, without quotes or backslashes".into(),
                    );
                }
            }
        }
    }
}

/// Warnings: legal, but worth a second look.
pub(crate) fn warnings(spec: &Spec) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (i, r) in spec.routes.iter().enumerate() {
        if r.authenticate.is_empty() {
            out.push(ConfigError {
                path: format!("routes[{i}].authenticate"),
                reason: format!(
                    "route {:?} is public: no authentication method is listed",
                    r.name
                ),
            });
        }
        if r.auth_mode == crate::PolicyMode::Shadow {
            out.push(ConfigError {
                path: format!("routes[{i}].auth_mode"),
                reason: "shadow: failed checks are only logged; requests pass".into(),
            });
        }
        if r.api_key_sources.contains(&ApiKeySource::Query) {
            out.push(ConfigError {
                path: format!("routes[{i}].api_key_sources"),
                reason: "keys in URLs leak into browser history and other proxies' logs".into(),
            });
        }
    }
    out
}

fn validate_issuer(p: &str, s: &JwtIssuerSpec, err: &mut impl FnMut(String, String)) {
    if s.issuer.is_empty() {
        err(format!("{p}.issuer"), "must not be empty".into());
    }
    if s.audiences.is_empty() || s.audiences.iter().any(|a| a.is_empty()) {
        err(
            format!("{p}.audiences"),
            "at least one non-empty audience is required: a token minted for another API must not be accepted here".into(),
        );
    }
    if s.algorithms.is_empty() {
        err(
            format!("{p}.algorithms"),
            "at least one algorithm is required".into(),
        );
    }
    let symmetric = s.algorithms.iter().filter(|a| a.is_symmetric()).count();
    let sources = [s.jwks_url.is_some(), s.discovery, s.jwks_file.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if symmetric > 0 && symmetric < s.algorithms.len() {
        err(
            format!("{p}.algorithms"),
            "HS* algorithms cannot be mixed with asymmetric ones in one issuer (algorithm confusion)".into(),
        );
    } else if symmetric > 0 {
        if s.secret.is_none() {
            err(
                format!("{p}.secret"),
                "HS* algorithms need a secret reference".into(),
            );
        }
        if sources > 0 {
            err(
                format!("{p}.algorithms"),
                "an HS* issuer takes its key from secret, not from jwks_url, discovery or jwks_file".into(),
            );
        }
    } else if !s.algorithms.is_empty() {
        if s.secret.is_some() {
            err(
                format!("{p}.secret"),
                "a secret is only for HS* algorithms".into(),
            );
        }
        if sources != 1 {
            err(
                p.to_string(),
                "set exactly one key source: jwks_url, discovery: true, or jwks_file".into(),
            );
        }
    }
    let mut check_url = |field: &str, url: &str| {
        if let Err(e) = fetchable_url(url) {
            err(format!("{p}.{field}"), e);
        }
    };
    if let Some(u) = &s.jwks_url {
        check_url("jwks_url", u);
    }
    if s.discovery {
        check_url("issuer", &s.issuer);
    }
    if s.leeway.get() > std::time::Duration::from_secs(300) {
        err(format!("{p}.leeway"), "must be at most 5m".into());
    }
    if s.cache_entries > 10_000_000 {
        err(
            format!("{p}.cache_entries"),
            "must be at most 10000000".into(),
        );
    }
    let r = &s.refresh;
    if r.min_interval.get() < std::time::Duration::from_secs(1) || r.min_interval > r.max_interval {
        err(
            format!("{p}.refresh"),
            "need 1s <= min_interval <= max_interval".into(),
        );
    }
}

/// The URLs the gateway fetches keys from: https, or http to a loopback host (a local
/// sidecar or a test IdP). Anything else could be read or altered on the wire.
pub fn fetchable_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("{url:?} is not a valid URL"))?;
    let host = uri.host().unwrap_or("");
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err(format!(
            "{url:?}: the gateway fetches only over https (http only to a loopback address)"
        )),
        _ => Err(format!("{url:?} is not an https URL")),
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn http_header_name(s: &str) -> Option<http::HeaderName> {
    http::HeaderName::from_bytes(s.as_bytes()).ok()
}

fn attribute_ok(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(_) | Value::Bool(_) => true,
        Value::Number(n) => n.is_i64(),
        Value::Array(items) => items
            .iter()
            .all(|i| matches!(i, Value::String(_) | Value::Bool(_)) || i.is_i64()),
        _ => false,
    }
}

/// `hmac-sha256:<64 hex>` → the 32 hash bytes.
pub fn parse_key_hash(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("hmac-sha256:")?;
    decode_hex32(hex)
}

/// A SHA-256 fingerprint in hex, colons allowed → lowercase hex without colons.
pub fn normalize_fingerprint(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    decode_hex32(&hex).map(|_| hex.to_ascii_lowercase())
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}
