//! Route path parameters (`/v2/users/{id}`, `/files/{*rest}`) read back out of a matched
//! path. The router matches by segment position and records nothing per request; a
//! feature that needs a parameter's value (a path rewrite, a header template) compiles
//! the route's pattern into [`PathParams`] once per load and slices the value out of the
//! normalised path it is given, without allocating.
//!
//! Values are what the normalised path holds: still percent-encoded where the
//! normalisation kept an encoding (`%20`), never holding `/` (except a catch-all), never
//! `.` or `..` (removed by normalisation).

/// Where a named parameter sits in a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Param {
    name: Box<str>,
    /// Index of its segment (0 is the first segment after the leading `/`).
    segment: usize,
    /// A `{*catch_all}`: the rest of the path from `segment` on, `/`s included.
    rest: bool,
}

/// The parameters of one route pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams {
    params: Box<[Param]>,
}

impl PathParams {
    /// Reads the parameter names of a route pattern that the router has accepted (each
    /// `{name}` or `{*name}` is a whole segment). Any other text yields no parameters.
    pub fn from_pattern(pattern: &str) -> PathParams {
        let body = pattern.strip_prefix('/').unwrap_or(pattern);
        let params = body
            .split('/')
            .enumerate()
            .filter_map(|(segment, part)| {
                let inner = part.strip_prefix('{')?.strip_suffix('}')?;
                let (rest, name) = match inner.strip_prefix('*') {
                    Some(n) => (true, n),
                    None => (false, inner),
                };
                Some(Param {
                    name: name.into(),
                    segment,
                    rest,
                })
            })
            .collect();
        PathParams { params }
    }

    /// The index of a named parameter, for [`PathParams::value`].
    pub fn index(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| &*p.name == name)
    }

    /// The names, in pattern order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|p| &*p.name)
    }

    /// Whether the parameter at `index` is a catch-all (its value may hold `/`).
    pub fn is_rest(&self, index: usize) -> bool {
        self.params.get(index).is_some_and(|p| p.rest)
    }

    /// The value of parameter `index` in `path`, a normalised path the route matched. A
    /// catch-all that matched nothing is empty.
    pub fn value<'p>(&self, path: &'p str, index: usize) -> Option<&'p str> {
        let p = self.params.get(index)?;
        let body = path.strip_prefix('/').unwrap_or(path);
        if p.rest {
            return Some(body.splitn(p.segment + 1, '/').nth(p.segment).unwrap_or(""));
        }
        body.split('/').nth(p.segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_named_segments_and_the_rest() {
        let p = PathParams::from_pattern("/v2/users/{id}/files/{*rest}");
        assert_eq!(p.names().collect::<Vec<_>>(), ["id", "rest"]);
        let path = "/v2/users/42/files/a/b%20c.txt";
        assert_eq!(p.value(path, p.index("id").unwrap()), Some("42"));
        assert_eq!(p.value(path, p.index("rest").unwrap()), Some("a/b%20c.txt"));
        assert!(p.is_rest(1) && !p.is_rest(0));
    }

    #[test]
    fn an_empty_catch_all_is_empty() {
        let p = PathParams::from_pattern("/files/{*rest}");
        assert_eq!(p.value("/files", 0), Some(""));
        assert_eq!(p.value("/files/", 0), Some(""));
    }

    #[test]
    fn a_pattern_without_parameters_has_none() {
        let p = PathParams::from_pattern("/health");
        assert_eq!(p.index("id"), None);
        assert_eq!(p.value("/health", 0), None);
    }
}
