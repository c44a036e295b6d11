//! The document's path templates (`/items/{id}`, `/files/{name}.json`,
//! `/compare/{base}...{head}`), matched against a
//! request path. Concrete segments win over templated ones, position by position, as the
//! OpenAPI specification asks ("concrete paths are matched before their templated
//! counterparts"); templates are grouped by segment count so a request compares only
//! templates of its own length.

use super::Operation;

/// One segment of a template.
#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// Parameters with literal text around and between them: `{name}`, `{name}.json`,
    /// `{base}...{head}`. Parts alternate; no two parameters are adjacent.
    Template(Vec<Part>),
}

#[derive(Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Param(String),
}

impl Segment {
    /// Matches one request segment; pushes the parameter values (never empty).
    fn matches<'a>(&'a self, text: &'a str, out: &mut Vec<(&'a str, &'a str)>) -> bool {
        let parts = match self {
            Segment::Literal(l) => return l == text,
            Segment::Template(parts) => parts,
        };
        let mut rest = text;
        for (i, part) in parts.iter().enumerate() {
            match part {
                Part::Literal(l) => match rest.strip_prefix(l.as_str()) {
                    Some(r) => rest = r,
                    None => return false,
                },
                Part::Param(name) => {
                    // A value runs to the next literal's first occurrence, or to the end.
                    let end = match parts.get(i + 1) {
                        Some(Part::Literal(l)) => match rest.find(l.as_str()) {
                            Some(e) => e,
                            None => return false,
                        },
                        _ => rest.len(),
                    };
                    if end == 0 {
                        return false;
                    }
                    out.push((name.as_str(), &rest[..end]));
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty()
    }
}

/// One path template and its operations.
pub(crate) struct PathItem {
    segments: Vec<Segment>,
    /// Upper-case method → operation.
    pub(crate) operations: Vec<(String, Operation)>,
    /// The `Allow` header of a 405 on this path.
    pub(crate) allow: String,
}

impl PathItem {
    /// The operation of `method` (upper case); HEAD is GET without the body (RFC 9110
    /// §9.3.2) when the path has no HEAD of its own.
    pub(crate) fn operation(&self, method: &str) -> Option<&Operation> {
        let find = |name: &str| self.operations.iter().find(|(n, _)| n == name);
        find(method)
            .or_else(|| (method == "HEAD").then(|| find("GET")).flatten())
            .map(|(_, op)| op)
    }
}

/// All templates, by segment count, most specific first within each count.
#[derive(Default)]
pub(crate) struct PathMatcher {
    /// Path items by their number of segments.
    by_len: Vec<Vec<PathItem>>,
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
        if self.by_len.len() <= segments.len() {
            self.by_len.resize_with(segments.len() + 1, Vec::new);
        }
        self.by_len[segments.len()].push(PathItem {
            segments,
            operations,
            allow,
        });
        Ok(())
    }

    /// Orders each group: literal segments before templated ones, position by position.
    pub(crate) fn finish(&mut self) {
        for items in &mut self.by_len {
            items.sort_by_key(|i| {
                i.segments
                    .iter()
                    .map(|s| matches!(s, Segment::Template(_)))
                    .collect::<Vec<bool>>()
            });
        }
    }

    /// The most specific template matching `path` (which starts with '/').
    pub(crate) fn find<'a>(&'a self, path: &'a str) -> Option<PathMatch<'a>> {
        // Nothing allocated unless a template captures a parameter.
        let len = path.bytes().filter(|&b| b == b'/').count();
        let items = self.by_len.get(len)?;
        'items: for item in items {
            let mut params = Vec::new();
            for (seg, part) in item.segments.iter().zip(segments(path)) {
                if !seg.matches(part, &mut params) {
                    continue 'items;
                }
            }
            return Some(PathMatch { item, params });
        }
        None
    }
}

/// The segments of `path` after its first `/` (as `split('/').skip(1)` gives them), found
/// by a byte loop: request paths are short, and a search call per segment costs more.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let bytes = path.as_bytes();
    let mut next = bytes.iter().position(|&b| b == b'/').map(|p| p + 1);
    std::iter::from_fn(move || {
        let start = next?;
        let end = bytes
            .get(start..)?
            .iter()
            .position(|&b| b == b'/')
            .map(|p| start + p);
        next = end.map(|e| e + 1);
        path.get(start..end.unwrap_or(bytes.len()))
    })
}

fn parse_segment(s: &str) -> Result<Segment, String> {
    if !s.contains('{') {
        return Ok(Segment::Literal(s.to_string()));
    }
    let unsupported = || format!("segment {s:?} is not a supported template");
    let mut parts = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let close = rest.find('}').ok_or_else(unsupported)?;
                let name = &rest[1..close];
                if name.is_empty() || name.contains('{') {
                    return Err(unsupported());
                }
                // Two parameters side by side cannot be told apart.
                if matches!(parts.last(), Some(Part::Param(_))) {
                    return Err(unsupported());
                }
                parts.push(Part::Param(name.to_string()));
                rest = &rest[close + 1..];
            }
            Some(open) => {
                parts.push(Part::Literal(rest[..open].to_string()));
                rest = &rest[open..];
            }
            None => {
                if rest.contains('}') {
                    return Err(unsupported());
                }
                parts.push(Part::Literal(rest.to_string()));
                rest = "";
            }
        }
    }
    Ok(Segment::Template(parts))
}

#[cfg(test)]
mod tests {
    use super::segments;

    #[test]
    fn splits_a_path_as_split_does() {
        for path in [
            "/a/b",
            "/",
            "//x//",
            "/items/{id}",
            "no-slash",
            "",
            "/é/ü/",
            "x/y",
        ] {
            let want: Vec<&str> = path.split('/').skip(1).collect();
            assert_eq!(segments(path).collect::<Vec<_>>(), want, "{path}");
        }
    }
}
