//! Route matching: host, then path, then method and headers. Compiled once per config
//! load; a lookup walks a segment trie without allocating.
//!
//! Precedence (most specific wins, never config order):
//! 1. host: an exact host beats a `*.suffix` wildcard (longer suffix first), which beats
//!    routes without hosts. A host whose routes do not match falls through to the next.
//! 2. path: a longer run of matched segments wins; at the same depth, a static segment
//!    beats a `{param}`, which beats `{*catch_all}`, which beats a `path_prefix`. An exact
//!    `path` beats a `path_prefix` ending at the same place.
//! 3. among routes on the same host and path: more header conditions first, then routes
//!    that name methods before routes that take any method.
//!
//! Two routes that would tie (same host, same path shape, same header conditions,
//! overlapping methods) are a config error, not a surprise at run time.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use rampart_config::ConfigError;

/// Index of a route in the plan's route table.
pub type RouteId = usize;

/// A compiled router.
#[derive(Debug, Default)]
pub struct Router {
    exact_hosts: HashMap<Box<str>, Trie>,
    /// `(".example.com", trie)`, longest suffix first.
    wildcard_hosts: Vec<(Box<str>, Trie)>,
    any_host: Trie,
}

/// What a route asks of a request, as compiled for matching.
#[derive(Debug, Clone)]
pub struct RouteMatcher {
    pub hosts: Vec<String>,
    pub path: PathSpec,
    pub methods: Vec<Method>,
    pub headers: Vec<(HeaderName, Option<HeaderValue>)>,
}

/// The path condition of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSpec {
    /// `/v1/orders/{id}` style; exact when there are no parameters.
    Pattern(String),
    /// Segment-boundary prefix.
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Static(String),
    Param,
    CatchAll,
}

#[derive(Debug, Default)]
struct Trie {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    /// Static children, boxed: most nodes are leaves, and a leaf is itself an entry of
    /// its parent's map, where an unboxed empty map would cost 40 bytes per route.
    #[allow(clippy::box_collection)]
    statics: Option<Box<HashMap<Box<str>, Node>>>,
    param: Option<Box<Node>>,
    exact: Vec<Candidate>,
    catch_all: Vec<Candidate>,
    prefix: Vec<Candidate>,
}

#[derive(Debug, Clone)]
struct Candidate {
    route: RouteId,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
}

impl Candidate {
    fn accepts(&self, method: &Method, headers: &HeaderMap) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self.headers.iter().all(|(name, want)| match want {
                None => headers.contains_key(name),
                Some(v) => headers.get_all(name).iter().any(|h| h == v),
            })
    }

    /// True when no request could tell `self` and `other` apart.
    fn ties_with(&self, other: &Candidate) -> bool {
        let methods_overlap = self.methods.is_empty()
            || other.methods.is_empty()
            || self.methods.iter().any(|m| other.methods.contains(m));
        let mut a: Vec<_> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_ref().map(|v| v.as_bytes())))
            .collect();
        let mut b: Vec<_> = other
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_ref().map(|v| v.as_bytes())))
            .collect();
        a.sort();
        b.sort();
        methods_overlap && a == b
    }

    fn rank(&self) -> (usize, bool) {
        (usize::MAX - self.headers.len(), self.methods.is_empty())
    }
}

/// Parses a route path pattern into segments, or explains what is wrong with it.
fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, String> {
    let body = pattern
        .strip_prefix('/')
        .ok_or_else(|| format!("must start with '/', got {pattern:?}"))?;
    let parts: Vec<&str> = body.split('/').collect();
    let mut segments = Vec::with_capacity(parts.len());
    let mut names = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let (catch_all, name) = match inner.strip_prefix('*') {
                Some(n) => (true, n),
                None => (false, inner),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "parameter {part:?} needs a name of letters, digits and '_'"
                ));
            }
            if names.contains(&name) {
                return Err(format!("parameter {name:?} appears twice"));
            }
            names.push(name);
            if catch_all {
                if i + 1 != parts.len() {
                    return Err(format!("catch-all {part:?} must be the last segment"));
                }
                segments.push(Segment::CatchAll);
            } else {
                segments.push(Segment::Param);
            }
        } else if part.contains(['{', '}']) {
            return Err(format!(
                "segment {part:?} mixes text and a parameter; a parameter must be a whole segment"
            ));
        } else {
            let with_slash = format!("/{part}");
            let normal = crate::path::normalize(&with_slash)
                .map_err(|_| format!("segment {part:?} is not a normalised path segment"))?;
            if normal.len() != with_slash.len() {
                return Err(format!("segment {part:?} is not a normalised path segment"));
            }
            segments.push(Segment::Static((*part).to_string()));
        }
    }
    if pattern.contains("//") {
        return Err(format!(
            "{pattern:?} has an empty segment; paths are matched after '//' is merged"
        ));
    }
    Ok(segments)
}

fn parse_prefix(prefix: &str) -> Result<Vec<Segment>, String> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let segs = parse_pattern(trimmed)?;
    if segs.iter().any(|s| !matches!(s, Segment::Static(_))) {
        return Err(format!(
            "{prefix:?}: a path_prefix cannot contain parameters; use path with {{*rest}}"
        ));
    }
    Ok(segs)
}

impl Router {
    /// Builds a router. `routes[i]` is route id `i`; `path_of(i)` names its YAML path for
    /// error messages. Returns every conflict and pattern error found.
    pub fn build(
        routes: &[RouteMatcher],
        yaml_path: impl Fn(usize) -> String,
    ) -> Result<Router, Vec<ConfigError>> {
        let mut router = Router::default();
        let mut errors = Vec::new();
        // (trie key, node kind, candidate) for tie reporting: route ids that share a slot.
        for (id, r) in routes.iter().enumerate() {
            let (segments, kind) = match &r.path {
                PathSpec::Pattern(p) => match parse_pattern(p) {
                    Ok(s) => {
                        let kind = if s.last() == Some(&Segment::CatchAll) {
                            Slot::CatchAll
                        } else {
                            Slot::Exact
                        };
                        (s, kind)
                    }
                    Err(reason) => {
                        errors.push(ConfigError::new(
                            format!("{}.match.path", yaml_path(id)),
                            reason,
                        ));
                        continue;
                    }
                },
                PathSpec::Prefix(p) => match parse_prefix(p) {
                    Ok(s) => (s, Slot::Prefix),
                    Err(reason) => {
                        errors.push(ConfigError::new(
                            format!("{}.match.path_prefix", yaml_path(id)),
                            reason,
                        ));
                        continue;
                    }
                },
            };
            let candidate = Candidate {
                route: id,
                methods: r.methods.clone(),
                headers: r.headers.clone(),
            };
            let mut tries: Vec<&mut Trie> = Vec::new();
            if r.hosts.is_empty() {
                tries.push(&mut router.any_host);
            }
            // Collect host tries without holding two mutable borrows of the maps at once.
            let mut exact = Vec::new();
            let mut wild = Vec::new();
            for h in &r.hosts {
                match h.strip_prefix('*') {
                    Some(suffix) => wild.push(suffix.to_string()),
                    None => exact.push(h.clone()),
                }
            }
            for h in exact {
                router.exact_hosts.entry(h.into_boxed_str()).or_default();
            }
            for s in &wild {
                if !router.wildcard_hosts.iter().any(|(k, _)| **k == **s) {
                    router
                        .wildcard_hosts
                        .push((s.clone().into_boxed_str(), Trie::default()));
                }
            }
            for (key, trie) in router.exact_hosts.iter_mut() {
                if r.hosts.iter().any(|h| **h == **key) {
                    tries.push(trie);
                }
            }
            for (suffix, trie) in router.wildcard_hosts.iter_mut() {
                if wild.iter().any(|w| **w == **suffix) {
                    tries.push(trie);
                }
            }
            for trie in tries {
                let slot = trie.root.slot(&segments, kind);
                if let Some(other) = slot.iter().find(|c| c.ties_with(&candidate)) {
                    errors.push(ConfigError::new(
                        format!("{}.match", yaml_path(id)),
                        format!(
                            "matches exactly the same requests as {} (same host, path, methods and headers); \
                             make one more specific or merge them",
                            yaml_path(other.route)
                        ),
                    ));
                    continue;
                }
                slot.push(candidate.clone());
                slot.sort_by_key(Candidate::rank);
            }
        }
        router
            .wildcard_hosts
            .sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        router.shrink();
        if errors.is_empty() {
            Ok(router)
        } else {
            Err(errors)
        }
    }

    /// Gives back the room the build's growth left over (it is kept for the plan's life).
    fn shrink(&mut self) {
        self.exact_hosts.shrink_to_fit();
        self.wildcard_hosts.shrink_to_fit();
        let tries = self.exact_hosts.values_mut();
        for trie in tries.chain(self.wildcard_hosts.iter_mut().map(|(_, t)| t)) {
            trie.root.shrink();
        }
        self.any_host.root.shrink();
    }

    /// Finds the route for a request. `host` must be lower-case without a port; `path`
    /// must be normalised.
    pub fn find(
        &self,
        host: &str,
        path: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<RouteId> {
        if let Some(trie) = self.exact_hosts.get(host) {
            if let Some(id) = trie.find(path, method, headers) {
                return Some(id);
            }
        }
        for (suffix, trie) in &self.wildcard_hosts {
            if host.len() > suffix.len() && host.ends_with(&**suffix) {
                if let Some(id) = trie.find(path, method, headers) {
                    return Some(id);
                }
            }
        }
        self.any_host.find(path, method, headers)
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Exact,
    CatchAll,
    Prefix,
}

impl Node {
    fn shrink(&mut self) {
        if let Some(statics) = &mut self.statics {
            statics.shrink_to_fit();
            for n in statics.values_mut() {
                n.shrink();
            }
        }
        if let Some(p) = &mut self.param {
            p.shrink();
        }
        for c in [&mut self.exact, &mut self.catch_all, &mut self.prefix] {
            c.shrink_to_fit();
        }
    }

    fn slot(&mut self, segments: &[Segment], kind: Slot) -> &mut Vec<Candidate> {
        let mut node = self;
        let walk = match kind {
            Slot::CatchAll => &segments[..segments.len() - 1],
            _ => segments,
        };
        for seg in walk {
            node = match seg {
                Segment::Static(s) => node
                    .statics
                    .get_or_insert_default()
                    .entry(s.clone().into_boxed_str())
                    .or_default(),
                Segment::Param => node.param.get_or_insert_with(Default::default),
                Segment::CatchAll => unreachable!("catch-all is always last and not walked"),
            };
        }
        match kind {
            Slot::Exact => &mut node.exact,
            Slot::CatchAll => &mut node.catch_all,
            Slot::Prefix => &mut node.prefix,
        }
    }

    fn find(&self, rest: &str, method: &Method, headers: &HeaderMap) -> Option<RouteId> {
        let pick = |c: &Vec<Candidate>| {
            c.iter()
                .find(|c| c.accepts(method, headers))
                .map(|c| c.route)
        };
        if rest.is_empty() {
            return pick(&self.exact).or_else(|| pick(&self.prefix));
        }
        // `rest` starts with '/': the next segment runs to the following '/'.
        let body = &rest[1..];
        let end = body.find('/').unwrap_or(body.len());
        let (seg, tail) = (&body[..end], &body[end..]);
        if let Some(child) = self.statics.as_ref().and_then(|s| s.get(seg)) {
            if let Some(id) = child.find(tail, method, headers) {
                return Some(id);
            }
        }
        if let Some(child) = &self.param {
            if !seg.is_empty() {
                if let Some(id) = child.find(tail, method, headers) {
                    return Some(id);
                }
            }
        }
        pick(&self.catch_all).or_else(|| pick(&self.prefix))
    }
}

impl Trie {
    fn find(&self, path: &str, method: &Method, headers: &HeaderMap) -> Option<RouteId> {
        self.root.find(path, method, headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(hosts: &[&str], path: PathSpec, methods: &[&str]) -> RouteMatcher {
        RouteMatcher {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            path,
            methods: methods.iter().map(|s| s.parse().unwrap()).collect(),
            headers: vec![],
        }
    }
    fn pat(s: &str) -> PathSpec {
        PathSpec::Pattern(s.into())
    }
    fn pre(s: &str) -> PathSpec {
        PathSpec::Prefix(s.into())
    }
    fn find(r: &Router, host: &str, path: &str, method: &str) -> Option<RouteId> {
        r.find(host, path, &method.parse().unwrap(), &HeaderMap::new())
    }

    #[test]
    fn static_beats_param_beats_catch_all_beats_prefix() {
        let routes = [
            m(&[], pre("/v1"), &[]),
            m(&[], pat("/v1/orders/{*rest}"), &[]),
            m(&[], pat("/v1/orders/{id}"), &[]),
            m(&[], pat("/v1/orders/summary"), &[]),
        ];
        let r = Router::build(&routes, |i| format!("routes[{i}]")).unwrap();
        assert_eq!(find(&r, "a", "/v1/orders/summary", "GET"), Some(3));
        assert_eq!(find(&r, "a", "/v1/orders/42", "GET"), Some(2));
        assert_eq!(find(&r, "a", "/v1/orders/42/items", "GET"), Some(1));
        assert_eq!(find(&r, "a", "/v1/other", "GET"), Some(0));
        assert_eq!(find(&r, "a", "/v1", "GET"), Some(0));
        assert_eq!(find(&r, "a", "/v1x", "GET"), None);
        assert_eq!(find(&r, "a", "/", "GET"), None);
    }

    #[test]
    fn method_mismatch_falls_back_to_less_specific_route() {
        let routes = [m(&[], pat("/items/{id}"), &["GET"]), m(&[], pre("/"), &[])];
        let r = Router::build(&routes, |i| format!("routes[{i}]")).unwrap();
        assert_eq!(find(&r, "a", "/items/1", "GET"), Some(0));
        assert_eq!(find(&r, "a", "/items/1", "DELETE"), Some(1));
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any() {
        let routes = [
            m(&[], pre("/"), &[]),
            m(&["*.example.com"], pre("/"), &[]),
            m(&["api.example.com"], pre("/"), &[]),
        ];
        let r = Router::build(&routes, |i| format!("routes[{i}]")).unwrap();
        assert_eq!(find(&r, "api.example.com", "/x", "GET"), Some(2));
        assert_eq!(find(&r, "www.example.com", "/x", "GET"), Some(1));
        assert_eq!(find(&r, "a.b.example.com", "/x", "GET"), Some(1));
        assert_eq!(find(&r, "example.com", "/x", "GET"), Some(0));
    }

    #[test]
    fn rejects_ties_and_bad_patterns() {
        let routes = [
            m(&[], pat("/a/{id}"), &["GET"]),
            m(&[], pat("/a/{name}"), &["GET", "POST"]),
        ];
        let errs = Router::build(&routes, |i| format!("routes[{i}]")).unwrap_err();
        assert_eq!(errs[0].path, "routes[1].match");
        let routes = [
            m(&[], pat("/a/{*rest}/b"), &[]),
            m(&[], pat("/a/x{id}"), &[]),
            m(&[], pat("/a/{id}/{id}"), &[]),
        ];
        let errs = Router::build(&routes, |i| format!("routes[{i}]")).unwrap_err();
        assert_eq!(errs.len(), 3);
    }

    #[test]
    fn methods_that_do_not_overlap_do_not_tie() {
        let routes = [m(&[], pat("/a"), &["GET"]), m(&[], pat("/a"), &["POST"])];
        let r = Router::build(&routes, |i| format!("routes[{i}]")).unwrap();
        assert_eq!(find(&r, "h", "/a", "POST"), Some(1));
    }
}
