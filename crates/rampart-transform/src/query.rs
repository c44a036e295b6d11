//! Query rules on a route (`routes[].transform.query`): remove, set and add parameters of
//! the request sent upstream, in that order, with values from the header template
//! language.
//!
//! Parameters are matched by their decoded name, so `deb%75g=1` is the `debug` a rule
//! removes, and a `set` replaces every spelling of its parameter: a caller cannot slip a
//! second `tenant` past a rule that sets it. Values the gateway writes are
//! percent-encoded (everything but RFC 3986 unreserved characters), so a template value
//! cannot add a parameter. A `set` whose template has no value for the request removes
//! the parameter, like a header `set`.

use http::uri::{PathAndQuery, Uri};
use rampart_config::{ConfigError, QueryRulesSpec};
use rampart_core::{ExchangeCtx, PathParams};

use crate::headers::Template;

/// Compiled query rules.
#[derive(Debug, Default)]
pub(crate) struct QueryRules {
    remove: Vec<Box<str>>,
    set: Vec<(Box<str>, Template)>,
    add: Vec<(Box<str>, Template)>,
}

impl QueryRules {
    pub(crate) fn compile(
        spec: &QueryRulesSpec,
        params: &PathParams,
        at: &str,
        errors: &mut Vec<ConfigError>,
    ) -> QueryRules {
        let name_ok = |n: &str, at: String, errors: &mut Vec<ConfigError>| {
            if n.is_empty()
                || n.bytes()
                    .any(|b| !b.is_ascii_graphic() || b"&=#%+".contains(&b))
            {
                errors.push(ConfigError::new(
                    at,
                    format!("{n:?} is not a query parameter name (printable, no `& = # % +`)"),
                ));
                return false;
            }
            true
        };
        let mut rules = QueryRules::default();
        for (i, n) in spec.remove.iter().enumerate() {
            if name_ok(n, format!("{at}.remove[{i}]"), errors) {
                rules.remove.push(n.as_str().into());
            }
        }
        for (kind, list) in [("set", &spec.set), ("add", &spec.add)] {
            for (n, t) in list {
                let at = format!("{at}.{kind}.{n}");
                if !name_ok(n, at.clone(), errors) {
                    continue;
                }
                match Template::parse(t, params) {
                    Ok(t) if kind == "set" => rules.set.push((n.as_str().into(), t)),
                    Ok(t) => rules.add.push((n.as_str().into(), t)),
                    Err(e) => errors.push(ConfigError::new(at, e)),
                }
            }
        }
        rules
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Rewrites the query of `uri`; `path` is the normalised path the route matched.
    pub(crate) fn apply(&self, uri: &mut Uri, path: &str, cx: &ExchangeCtx) {
        let mut out = String::new();
        let mut decoded = String::new();
        for pair in uri.query().unwrap_or("").split('&') {
            if pair.is_empty() {
                continue;
            }
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            decode(name, &mut decoded);
            let drop = self.remove.iter().any(|r| **r == *decoded)
                || self.set.iter().any(|(n, _)| **n == *decoded);
            if !drop {
                push_sep(&mut out);
                out.push_str(pair);
            }
        }
        let mut value = String::new();
        for (n, t) in self.set.iter().chain(&self.add) {
            value.clear();
            if t.render_into(cx, path, &mut value).is_some() {
                push_sep(&mut out);
                encode(n, &mut out);
                out.push('=');
                encode(&value, &mut out);
            }
        }
        let target = match out.is_empty() {
            true => uri.path().to_owned(),
            false => format!("{}?{out}", uri.path()),
        };
        // Built from a parsed path and encoded pairs, so it parses; if it ever did not,
        // the request keeps its query rather than losing its target.
        let Ok(pq) = PathAndQuery::try_from(target) else {
            return;
        };
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(pq);
        if let Ok(u) = Uri::from_parts(parts) {
            *uri = u;
        }
    }
}

fn push_sep(out: &mut String) {
    if !out.is_empty() {
        out.push('&');
    }
}

/// Form decoding of a parameter name: `%XX` and `+` (a space), as a server reads it.
/// Invalid escapes stay as they are; bytes that are not UTF-8 become U+FFFD, which
/// matches no configured name.
fn decode(text: &str, out: &mut String) {
    out.clear();
    if !text.contains(['%', '+']) {
        out.push_str(text);
        return;
    }
    let plus_as_space = text.replace('+', " ");
    out.push_str(&percent_encoding::percent_decode_str(&plus_as_space).decode_utf8_lossy());
}

/// What a written query name or value keeps as it is: RFC 3986 unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str, out: &mut String) {
    out.extend(percent_encoding::utf8_percent_encode(text, UNRESERVED));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_names_the_way_a_form_parser_does() {
        let mut out = String::new();
        for (raw, want) in [
            ("debug", "debug"),
            ("deb%75g", "debug"),
            ("deb%75", "debu"),
            ("a+b", "a b"),
            ("x%2", "x%2"),
            ("%", "%"),
            ("%zz", "%zz"),
        ] {
            decode(raw, &mut out);
            assert_eq!(out, want, "{raw}");
        }
    }

    #[test]
    fn encodes_all_but_unreserved() {
        let mut out = String::new();
        encode("a b&c=d/é~", &mut out);
        assert_eq!(out, "a%20b%26c%3Dd%2F%C3%A9~");
    }
}
