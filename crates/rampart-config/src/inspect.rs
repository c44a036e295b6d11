//! Injection detection on a route (`routes[].inspect`): SQL injection, XSS, path
//! traversal, command injection and SSRF in the request's decoded values, scored as OWASP
//! CRS scores them.

use serde::{Deserialize, Serialize};

use crate::{ConfigError, PolicyMode, Spec};

/// A route's injection detection.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InspectSpec {
    /// `shadow`: findings are logged and counted, and the request goes on. Start here,
    /// read the log, add exclusions, then enforce.
    #[serde(default)]
    pub mode: PolicyMode,
    /// 1 (default) to 4: each level adds rules that catch more and flag more benign
    /// input (level 1: libinjection, traversal, shell lines, cloud metadata URLs).
    #[serde(default = "one")]
    pub paranoia: u8,
    /// The points at which a request is refused (default 5: one critical finding).
    /// Findings add their severity: critical 5, error 4, warning 3, notice 2.
    #[serde(default = "five")]
    pub threshold: u32,
    /// The share of requests inspected, 1–100 (default 100), for a gradual rollout.
    #[serde(default = "hundred")]
    pub sample_percent: u8,
    /// Values never inspected, by field (`query.q`, `form.comment`, `json./bio`,
    /// `json./items/*/note`, `header.referer`, `cookie.prefs`, `path`, `body`), optionally
    /// for one detector only (`xss:json./html`). `*` matches within one name segment.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Request headers inspected (default `user-agent` and `referer`).
    #[serde(default = "default_headers")]
    pub headers: Vec<String>,
    /// Inspect cookie values (default true).
    #[serde(default = "crate::spec::yes")]
    pub cookies: bool,
    /// Inspect the body (default true): JSON string values and member names, form
    /// fields; other bodies as text from paranoia 2. The body is read whole, within the
    /// route's body limit, before the upstream sees it.
    #[serde(default = "crate::spec::yes")]
    pub body: bool,
}

fn one() -> u8 {
    1
}
fn five() -> u32 {
    5
}
fn hundred() -> u8 {
    100
}
fn default_headers() -> Vec<String> {
    vec!["user-agent".into(), "referer".into()]
}

/// The places a value comes from, as exclusions name them.
pub const INSPECT_LOCATIONS: &[&str] =
    &["path", "query", "form", "json", "header", "cookie", "body"];
/// The detectors an exclusion may name.
pub const INSPECT_DETECTORS: &[&str] = &["sqli", "xss", "traversal", "command", "ssrf"];

/// An exclusion split into its detector (if any), location and name pattern (if any).
pub fn parse_exclusion(s: &str) -> Result<(Option<&str>, &str, Option<&str>), String> {
    let (detector, field) = match s.split_once(':') {
        Some((d, f)) if INSPECT_DETECTORS.contains(&d) => (Some(d), f),
        Some((d, _)) => {
            return Err(format!(
                "unknown detector {d:?} (expected one of {})",
                INSPECT_DETECTORS.join(", ")
            ))
        }
        None => (None, s),
    };
    let (location, name) = match field.split_once('.') {
        Some((l, n)) => (l, Some(n)),
        None => (field, None),
    };
    if !INSPECT_LOCATIONS.contains(&location) {
        return Err(format!(
            "unknown field {location:?} (expected one of {}, e.g. query.q or json./bio)",
            INSPECT_LOCATIONS.join(", ")
        ));
    }
    match (location, name) {
        ("path" | "body", Some(_)) => Err(format!("{location} takes no name")),
        (_, Some("")) => Err("the name after '.' is empty".into()),
        ("json", Some(n)) if !n.starts_with('/') => Err(format!(
            "a JSON field is a JSON pointer starting with '/', got {n:?}"
        )),
        _ => Ok((detector, location, name)),
    }
}

pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    for (i, r) in spec.routes.iter().enumerate() {
        let Some(s) = &r.inspect else { continue };
        let at = |k: &str| format!("routes[{i}].inspect.{k}");
        if !(1..=4).contains(&s.paranoia) {
            errs.push(ConfigError::new(
                at("paranoia"),
                format!("must be 1 to 4, got {}", s.paranoia),
            ));
        }
        if s.threshold == 0 {
            errs.push(ConfigError::new(at("threshold"), "must be at least 1"));
        }
        if !(1..=100).contains(&s.sample_percent) {
            errs.push(ConfigError::new(
                at("sample_percent"),
                format!("must be 1 to 100, got {}", s.sample_percent),
            ));
        }
        for (j, e) in s.exclude.iter().enumerate() {
            if let Err(why) = parse_exclusion(e) {
                errs.push(ConfigError::new(at(&format!("exclude[{j}]")), why));
            }
        }
        for (j, h) in s.headers.iter().enumerate() {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                errs.push(ConfigError::new(
                    at(&format!("headers[{j}]")),
                    format!("{h:?} is not a header name"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusions_name_a_field_and_maybe_a_detector() {
        assert_eq!(parse_exclusion("query.q"), Ok((None, "query", Some("q"))));
        assert_eq!(
            parse_exclusion("xss:json./items/*/html"),
            Ok((Some("xss"), "json", Some("/items/*/html")))
        );
        assert_eq!(parse_exclusion("path"), Ok((None, "path", None)));
        assert!(parse_exclusion("rce:query.q")
            .unwrap_err()
            .contains("unknown detector"));
        assert!(parse_exclusion("args.q")
            .unwrap_err()
            .contains("unknown field"));
        assert!(parse_exclusion("json.bio")
            .unwrap_err()
            .contains("JSON pointer"));
        assert!(parse_exclusion("path.x")
            .unwrap_err()
            .contains("takes no name"));
    }
}
