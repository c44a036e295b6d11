//! The client's request head is cleaned once, right after routing and before any filter
//! runs, so nothing a client sends can undo what the gateway sets later:
//!
//! - hop-by-hop headers and every header named in `Connection` are removed here, on the
//!   client's own headers (RFC 9110 §7.6.1). Doing it after the filters would let
//!   `Connection: x-consumer-id` delete the identity headers the gateway just set;
//! - `Upgrade` survives only for a WebSocket handshake on a route that allows it; `h2c`
//!   and every other protocol are never offered to an upstream (h2c smuggling), and
//!   `HTTP2-Settings` is always removed;
//! - headers that frameworks route or authorise on (`X-Original-URL`, `X-Real-IP`,
//!   `X-HTTP-Method-Override`, ...) are removed unless the peer is a trusted proxy;
//! - a header whose name contains `_` is removed when, read with `-`, it names a header
//!   the gateway owns or strips (CGI-style stacks map `X_Consumer_Id` and `X-Consumer-Id`
//!   to the same `HTTP_X_CONSUMER_ID`); other `_` names follow
//!   `limits.headers_with_underscores`.

use http::header::{HeaderMap, HeaderName};
use rampart_config::UnderscoreHeaders;
use rampart_core::Problem;

use crate::headers::strip_hop_by_hop;

/// Compiled header rules of one config.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    pub underscores: UnderscoreHeaders,
    /// Lower-case names the configuration adds to the gateway-owned set: the identity
    /// headers, their `strip` list and the API-key header.
    pub owned: Vec<Box<str>>,
}

/// Headers a client could use to steer routing or authorisation in an upstream framework
/// (Symfony/Laravel's `X-Original-URL`, IIS's `X-Rewrite-URL`, Spring's
/// `X-Forwarded-Prefix`, address headers read by rate limiters and audit logs, method
/// overrides that turn an allowed GET into a DELETE). Only a trusted proxy may send them.
fn is_spoofable(name: &str) -> bool {
    matches!(
        name,
        "x-original-url"
            | "x-rewrite-url"
            | "x-original-uri"
            | "x-original-host"
            | "x-host"
            | "x-forwarded-prefix"
            | "x-forwarded-server"
            | "x-forwarded-scheme"
            | "x-forwarded-ssl"
            | "x-forwarded-uri"
            | "x-forwarded-path"
            | "x-real-ip"
            | "true-client-ip"
            | "x-client-ip"
            | "cf-connecting-ip"
            | "x-cluster-client-ip"
            | "fastly-client-ip"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
    )
}

/// True when `name` (lower-case, `-` separated) is one the gateway sets, strips or reads
/// as a credential: a client may not smuggle a twin of it.
fn is_owned(name: &str, rules: &HeaderRules) -> bool {
    name.starts_with("x-consumer-")
        || name.starts_with("x-forwarded-")
        || is_spoofable(name)
        || matches!(
            name,
            "forwarded"
                | "x-request-id"
                | "proxy-authorization"
                | "content-length"
                | "transfer-encoding"
                | "keep-alive"
                | "proxy-connection"
                | "http2-settings"
        )
        || rules.owned.iter().any(|o| **o == *name)
}

/// Cleans the client's headers in place; see the module docs. `keep_upgrade` is true only
/// for a WebSocket handshake on a route that forwards them. Fails only when
/// `headers_with_underscores: reject` meets such a name.
pub fn sanitize(
    headers: &mut HeaderMap,
    peer_trusted: bool,
    keep_upgrade: bool,
    rules: &HeaderRules,
) -> Result<(), Problem> {
    strip_hop_by_hop(headers, keep_upgrade);
    let mut remove: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let s = name.as_str();
        if s.contains('_') {
            let dashed = s.replace('_', "-");
            if is_owned(&dashed, rules) {
                remove.push(name.clone());
                continue;
            }
            match rules.underscores {
                UnderscoreHeaders::Drop => remove.push(name.clone()),
                UnderscoreHeaders::Reject => return Err(Problem::UNDERSCORE_HEADER),
                UnderscoreHeaders::Allow => {}
            }
        } else if !peer_trusted && is_spoofable(s) {
            remove.push(name.clone());
        }
    }
    for name in remove {
        headers.remove(name);
    }
    Ok(())
}

/// True when the request's `Upgrade` asks for exactly WebSocket (RFC 6455 §4.1).
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(http::header::UPGRADE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.as_bytes().eq_ignore_ascii_case(b"websocket"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn removes_twins_of_owned_names_even_when_underscores_are_allowed() {
        let rules = HeaderRules {
            underscores: UnderscoreHeaders::Allow,
            owned: vec!["x-user".into()],
        };
        let mut h = map(&[
            ("x_consumer_id", "victim"),
            ("x_forwarded_for", "1.2.3.4"),
            ("x_user", "admin"),
            ("x_custom", "kept"),
        ]);
        sanitize(&mut h, false, false, &rules).unwrap();
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x_custom"));
    }

    #[test]
    fn drops_or_rejects_other_underscore_names_by_policy() {
        let mut h = map(&[("x_custom", "1"), ("x-ok", "1")]);
        sanitize(&mut h, false, false, &HeaderRules::default()).unwrap();
        assert!(!h.contains_key("x_custom") && h.contains_key("x-ok"));
        let rules = HeaderRules {
            underscores: UnderscoreHeaders::Reject,
            owned: vec![],
        };
        let mut h = map(&[("x_custom", "1")]);
        assert_eq!(
            sanitize(&mut h, false, false, &rules),
            Err(Problem::UNDERSCORE_HEADER)
        );
    }

    #[test]
    fn spoofable_headers_survive_only_from_trusted_peers() {
        let pairs = [("x-original-url", "/admin"), ("true-client-ip", "1.1.1.1")];
        let mut h = map(&pairs);
        sanitize(&mut h, false, false, &HeaderRules::default()).unwrap();
        assert!(h.is_empty());
        let mut h = map(&pairs);
        sanitize(&mut h, true, false, &HeaderRules::default()).unwrap();
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn websocket_upgrade_must_be_exactly_websocket() {
        assert!(is_websocket_upgrade(&map(&[("upgrade", "WebSocket")])));
        assert!(!is_websocket_upgrade(&map(&[("upgrade", "h2c")])));
        assert!(!is_websocket_upgrade(&map(&[(
            "upgrade",
            "websocket, h2c"
        )])));
    }
}
