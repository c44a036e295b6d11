//! A route's path rewrite (`routes[].rewrite`), compiled once per load and applied to the
//! normalised path the route matched:
//! - `strip_prefix` / `replace_prefix` swap a leading prefix on a segment boundary;
//! - `template` builds a new target from the route's path parameters:
//!   `/v2/users/{id}` with `template: /legacy/getUser?uid={id}` sends
//!   `/v2/users/42?expand=1` upstream as `/legacy/getUser?uid=42&expand=1`.
//!
//! A parameter's value goes into the query with `&`, `=`, `+`, `;`, `?` and `#`
//! percent-encoded, so a caller cannot add a parameter through the path
//! (`/v2/users/42&admin=1` becomes `uid=42%26admin%3D1`). In the path it goes in as
//! the normalised path holds it: one segment without `/`, `.` or `..` (a catch-all may
//! hold `/`), so a template cannot be steered out of the prefix it names.

use std::borrow::Cow;

use rampart_config::RewriteSpec;
use rampart_core::PathParams;

/// A compiled rewrite.
#[derive(Debug)]
pub enum Rewrite {
    /// Replace `from` (no trailing `/`; empty for the root) by `to`.
    Prefix {
        from: Box<str>,
        to: Box<str>,
    },
    Template(PathTemplate),
}

/// A target built from literals and path parameters.
#[derive(Debug)]
pub struct PathTemplate {
    path: Vec<Part>,
    /// Empty when the template has no `?`.
    query: Vec<Part>,
    params: PathParams,
}

#[derive(Debug)]
enum Part {
    Literal(Box<str>),
    Param(usize),
}

impl Rewrite {
    /// Compiles a route's rewrite; `pattern` is the route's `match.path`, if any.
    pub fn compile(spec: &RewriteSpec, pattern: Option<&str>) -> Result<Rewrite, String> {
        Ok(match spec {
            RewriteSpec::StripPrefix(p) => Rewrite::Prefix {
                from: p.trim_end_matches('/').into(),
                to: "/".into(),
            },
            RewriteSpec::ReplacePrefix { from, to } => Rewrite::Prefix {
                from: from.trim_end_matches('/').into(),
                to: to.as_str().into(),
            },
            RewriteSpec::Template(t) => Rewrite::Template(PathTemplate::compile(t, pattern)?),
        })
    }

    /// The upstream path for a matched, normalised `path`, and the query the rewrite
    /// puts before the client's (template queries only).
    pub fn apply<'a>(&self, path: &'a str) -> (Cow<'a, str>, Option<String>) {
        match self {
            Rewrite::Prefix { from, to } => (replace_prefix(path, from, to), None),
            Rewrite::Template(t) => t.render(path),
        }
    }
}

fn replace_prefix<'a>(path: &'a str, from: &str, to: &str) -> Cow<'a, str> {
    match path.strip_prefix(from) {
        // Only on a segment boundary: `/api` strips from `/api/x`, not from `/apix`.
        Some(rest) if rest.is_empty() || rest.starts_with('/') || from.is_empty() => {
            let rest = rest.trim_start_matches('/');
            let mut out = String::with_capacity(to.len() + rest.len() + 1);
            out.push_str(to);
            if !rest.is_empty() {
                if !out.ends_with('/') {
                    out.push('/');
                }
                out.push_str(rest);
            } else if path.ends_with('/') && !out.ends_with('/') {
                out.push('/');
            }
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(path),
    }
}

impl PathTemplate {
    fn compile(text: &str, pattern: Option<&str>) -> Result<PathTemplate, String> {
        let params = PathParams::from_pattern(pattern.unwrap_or(""));
        let (path_text, query_text) = match text.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (text, None),
        };
        if !path_text.starts_with('/') {
            return Err(format!("must start with '/', got {text:?}"));
        }
        if text.contains('#') {
            return Err("a fragment (`#`) is never sent upstream".into());
        }
        let path = parts(path_text, &params)?;
        let query = parts(query_text.unwrap_or(""), &params)?;
        // The literals must already be what the gateway sends: a normalised path and a
        // query that parses. Checked with every parameter standing in as `x`.
        let sample = |parts: &[Part]| -> String {
            parts
                .iter()
                .map(|p| match p {
                    Part::Literal(l) => &**l,
                    Part::Param(_) => "x",
                })
                .collect()
        };
        let sample_path = sample(&path);
        match crate::path::normalize(&sample_path) {
            Ok(n) if n == sample_path => {}
            _ => {
                return Err(format!(
                    "the path part {path_text:?} is not a normalised path (no `//`, `.` or `..` \
                     segments, `\\` or raw spaces)"
                ))
            }
        }
        let target = format!("{sample_path}?{}", sample(&query));
        if http::uri::PathAndQuery::try_from(target).is_err() {
            return Err(format!("{text:?} holds characters a request target cannot"));
        }
        Ok(PathTemplate {
            path,
            query,
            params,
        })
    }

    fn render<'a>(&self, path: &str) -> (Cow<'a, str>, Option<String>) {
        let mut out = String::with_capacity(path.len() + 16);
        for p in &self.path {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Param(i) => out.push_str(self.params.value(path, *i).unwrap_or("")),
            }
        }
        if self.query.is_empty() {
            return (Cow::Owned(out), None);
        }
        let mut query = String::with_capacity(32);
        for p in &self.query {
            match p {
                Part::Literal(l) => query.push_str(l),
                Part::Param(i) => {
                    encode_query_value(self.params.value(path, *i).unwrap_or(""), &mut query)
                }
            }
        }
        (Cow::Owned(out), Some(query))
    }
}

/// Splits template text into literals and `{name}` parameters of the route's pattern.
fn parts(text: &str, params: &PathParams) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Part::Literal(rest[..open].into()));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("a `{{` in {text:?} is not closed by `}}`"));
        };
        let name = &rest[open + 1..open + close];
        let Some(i) = params.index(name) else {
            let known: Vec<&str> = params.names().collect();
            return Err(if known.is_empty() {
                format!(
                    "`{{{name}}}` names a path parameter, but the route's match.path has none \
                     (write e.g. `path: /v2/users/{{{name}}}`)"
                )
            } else {
                format!(
                    "`{{{name}}}` is not a parameter of the route's match.path (it has: {})",
                    known.join(", ")
                )
            });
        };
        out.push(Part::Param(i));
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("a `}}` in {text:?} has no `{{`"));
    }
    if !rest.is_empty() {
        out.push(Part::Literal(rest.into()));
    }
    Ok(out)
}

/// Appends a path parameter's value as a query value: the bytes that would end or add a
/// parameter are percent-encoded; existing `%XX` encodings pass as they are.
fn encode_query_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("%26"),
            '=' => out.push_str("%3D"),
            '+' => out.push_str("%2B"),
            ';' => out.push_str("%3B"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(t: &str, pattern: &str) -> Rewrite {
        Rewrite::compile(&RewriteSpec::Template(t.into()), Some(pattern)).unwrap()
    }

    #[test]
    fn strip_and_replace_prefix_on_segment_boundary() {
        let strip = Rewrite::compile(&RewriteSpec::StripPrefix("/api".into()), None).unwrap();
        assert_eq!(strip.apply("/api/users/1").0, "/users/1");
        assert_eq!(strip.apply("/api").0, "/");
        assert_eq!(strip.apply("/apix").0, "/apix");
        let replace = Rewrite::compile(
            &RewriteSpec::ReplacePrefix {
                from: "/v1".into(),
                to: "/internal/v1".into(),
            },
            None,
        )
        .unwrap();
        assert_eq!(replace.apply("/v1/orders").0, "/internal/v1/orders");
        assert_eq!(replace.apply("/v1/").0, "/internal/v1/");
    }

    #[test]
    fn a_template_moves_parameters_into_path_and_query() {
        let t = template("/legacy/{org}/getUser?uid={id}&v=2", "/v2/{org}/users/{id}");
        let (path, query) = t.apply("/v2/acme/users/42");
        assert_eq!(path, "/legacy/acme/getUser");
        assert_eq!(query.as_deref(), Some("uid=42&v=2"));
    }

    #[test]
    fn a_parameter_cannot_add_query_parameters() {
        let t = template("/legacy/getUser?uid={id}", "/v2/users/{id}");
        let (_, query) = t.apply("/v2/users/42&admin=true;x+y?z");
        assert_eq!(query.as_deref(), Some("uid=42%26admin%3Dtrue%3Bx%2By%3Fz"));
    }

    #[test]
    fn a_catch_all_carries_its_slashes() {
        let t = template("/storage/{rest}", "/files/{*rest}");
        assert_eq!(t.apply("/files/a/b%20c.txt").0, "/storage/a/b%20c.txt");
        assert_eq!(t.apply("/files").0, "/storage/");
    }

    #[test]
    fn refuses_templates_that_name_unknown_parameters_or_bad_paths() {
        let bad = |t: &str, pattern: Option<&str>| {
            Rewrite::compile(&RewriteSpec::Template(t.into()), pattern).unwrap_err()
        };
        assert!(bad("/x/{id}", None).contains("has none"), "no pattern");
        assert!(bad("/x/{uid}", Some("/u/{id}")).contains("it has: id"));
        assert!(bad("x/{id}", Some("/u/{id}")).contains("start with '/'"));
        assert!(bad("/x/../{id}", Some("/u/{id}")).contains("normalised"));
        assert!(bad("/x//{id}", Some("/u/{id}")).contains("normalised"));
        assert!(bad("/x/{id", Some("/u/{id}")).contains("not closed"));
        assert!(bad("/x/id}", Some("/u/{id}")).contains("has no"));
        assert!(bad("/x?a=1#f", Some("/u/{id}")).contains("fragment"));
        assert!(bad("/x?a=b c", Some("/u/{id}")).contains("request target"));
    }
}
