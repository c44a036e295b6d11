//! The document's path templates (`/items/{id}`, `/files/{name}.json`), matched against a
//! request path. Concrete segments win over templated ones, position by position, as the
//! OpenAPI specification asks ("concrete paths are matched before their templated
//! counterparts"); templates are grouped by segment count so a request compares only
//! templates of its own length.

use std::collections::HashMap;

use super::Operation;

/// One segment of a template.
#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}` with optional literal text around it in the same segment.
    Param {
        name: String,
        prefix: String,
        suffix: String,
    },
}

/// One path template and its operations.
pub(crate) struct PathItem {
    segments: Vec<Segment>,
    /// Upper-case method → operation.
    pub(crate) operations: Vec<(String, Operation)>,
    /// The `Allow` header of a 405 on this path.
    pub(crate) allow: String,
}

/// All templates, by segment count, most specific first within each count.
#[derive(Default)]
pub(crate) struct PathMatcher {
    by_len: HashMap<usize, Vec<PathItem>>,
}

/// A matched path: its item and the raw (still percent-encoded) parameter values.
pub(crate) struct PathMatch<'a> {
    pub(crate) item: &'a PathItem,
    pub(crate) params: Vec<(&'a str, &'a str)>,
}

impl PathMatcher {
    pub(crate) fn add(
        &mut self,
        template: &str,
        operations: Vec<(String, Operation)>,
    ) -> Result<(), String> {
        if !template.starts_with('/') {
            return Err("a path template must start with '/'".into());
        }
        let segments = template
            .split('/')
            .skip(1)
            .map(parse_segment)
            .collect::<Result<Vec<_>, _>>()?;
        let mut methods: Vec<&str> = operations.iter().map(|(m, _)| m.as_str()).collect();
        methods.sort_unstable();
        let allow = methods.join(", ");
        self.by_len
            .entry(segments.len())
            .or_default()
            .push(PathItem {
                segments,
                operations,
                allow,
            });
        Ok(())
    }

    /// Orders each group: literal segments before templated ones, position by position.
    pub(crate) fn finish(&mut self) {
        for items in self.by_len.values_mut() {
            items.sort_by_key(|i| {
                i.segments
                    .iter()
                    .map(|s| matches!(s, Segment::Param { .. }))
                    .collect::<Vec<bool>>()
            });
        }
    }

    /// The most specific template matching `path` (which starts with '/').
    pub(crate) fn find<'a>(&'a self, path: &'a str) -> Option<PathMatch<'a>> {
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        let items = self.by_len.get(&parts.len())?;
        'items: for item in items {
            let mut params = Vec::new();
            for (seg, part) in item.segments.iter().zip(&parts) {
                match seg {
                    Segment::Literal(l) => {
                        if l != part {
                            continue 'items;
                        }
                    }
                    Segment::Param {
                        name,
                        prefix,
                        suffix,
                    } => {
                        let Some(v) = part
                            .strip_prefix(prefix.as_str())
                            .and_then(|r| r.strip_suffix(suffix.as_str()))
                        else {
                            continue 'items;
                        };
                        params.push((name.as_str(), v));
                    }
                }
            }
            return Some(PathMatch { item, params });
        }
        None
    }
}

fn parse_segment(s: &str) -> Result<Segment, String> {
    let Some(open) = s.find('{') else {
        return Ok(Segment::Literal(s.to_string()));
    };
    let close = s[open..]
        .find('}')
        .map(|c| open + c)
        .ok_or_else(|| format!("unclosed '{{' in segment {s:?}"))?;
    let (prefix, name, suffix) = (&s[..open], &s[open + 1..close], &s[close + 1..]);
    if name.is_empty() || suffix.contains('{') || suffix.contains('}') || prefix.contains('}') {
        return Err(format!(
            "segment {s:?} is not supported (one {{param}} per segment, with literal text around it)"
        ));
    }
    Ok(Segment::Param {
        name: name.to_string(),
        prefix: prefix.to_string(),
        suffix: suffix.to_string(),
    })
}
