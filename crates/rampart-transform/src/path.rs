//! JSON paths (`$.card.number`, `$..ssn`, `$.items[*].email`, `$['odd key'][0]`) compiled
//! into one small automaton per rule set, so a streaming body is matched as it is read:
//! each open container holds the set of automaton states its members start from, and a
//! member name or array index moves that set one step. No path is interpreted per
//! request, and nothing is allocated per value.
//!
//! Supported: `$`, `.name`, `['name']` / `["name"]`, `[n]`, `.*` and `[*]` (any member or
//! element), and `..` before a name or `*` (at any depth below). Filter expressions,
//! slices and unions are refused at load, never silently ignored.

/// At most this many automaton states per rule set (shared prefixes count once).
pub(crate) const MAX_STATES: usize = 128;

/// A set of automaton states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct States(u128);

impl States {
    fn with(self, i: usize) -> States {
        States(self.0 | 1 << i)
    }

    fn or(self, other: States) -> States {
        States(self.0 | other.0)
    }

    fn and(self, other: States) -> States {
        States(self.0 & other.0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0 == 0
    }

    fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(i)
        })
    }
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(Box<[u8]>),
    Index(u32),
    Any,
}

/// Where a value sits in its parent: a member name or an array index.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    /// A member name, decoded (its UTF-8 bytes).
    Key(&'a [u8]),
    Index(u32),
}

impl Step {
    fn matches(&self, seg: Seg<'_>) -> bool {
        match (self, seg) {
            (Step::Any, _) => true,
            // Lengths first: most names differ in length from a rule's, and the byte
            // comparison then needs no call.
            (Step::Key(k), Seg::Key(s)) => {
                k.len() == s.len() && k.iter().zip(s).all(|(a, b)| a == b)
            }
            (Step::Index(i), Seg::Index(n)) => *i == n,
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    edges: Vec<(Step, u16)>,
    /// The node of a `..`: it stays active for any member or element below.
    looping: bool,
    /// The `..` node reached from this one without consuming anything.
    descend: Option<u16>,
    /// Rules that end here (indices into the rule set), first one first.
    accepts: Vec<u16>,
    /// This node and every node reached from it without consuming anything.
    closure: States,
}

/// A compiled rule set.
#[derive(Debug)]
pub(crate) struct Paths {
    nodes: Vec<Node>,
    accepting: States,
}

impl Paths {
    /// Compiles `paths`; an error names the path's index and what is wrong with it.
    pub(crate) fn compile(paths: &[&str]) -> Result<Paths, (usize, String)> {
        let mut p = Paths {
            nodes: vec![Node::default()],
            accepting: States::default(),
        };
        for (rule, path) in paths.iter().enumerate() {
            let steps = parse(path).map_err(|e| (rule, e))?;
            let mut at = 0usize;
            for (descend, step) in steps {
                if descend {
                    at = match p.nodes[at].descend {
                        Some(d) => d as usize,
                        None => {
                            let d = p.push().map_err(|e| (rule, e))?;
                            p.nodes[d].looping = true;
                            p.nodes[at].descend = Some(d as u16);
                            d
                        }
                    };
                }
                at = match p.nodes[at].edges.iter().find(|(s, _)| *s == step) {
                    Some((_, t)) => *t as usize,
                    None => {
                        let t = p.push().map_err(|e| (rule, e))?;
                        p.nodes[at].edges.push((step, t as u16));
                        t
                    }
                };
            }
            p.nodes[at].accepts.push(rule as u16);
            p.accepting = p.accepting.with(at);
        }
        for i in (0..p.nodes.len()).rev() {
            // A `..` node is always created after the node it hangs from, so walking
            // backwards finds its closure complete.
            let mut c = States::default().with(i);
            if let Some(d) = p.nodes[i].descend {
                c = c.or(p.nodes[d as usize].closure);
            }
            p.nodes[i].closure = c;
        }
        Ok(p)
    }

    fn push(&mut self) -> Result<usize, String> {
        if self.nodes.len() == MAX_STATES {
            return Err(format!(
                "the paths of this list need more than {MAX_STATES} states; split the list or \
                 share more prefixes"
            ));
        }
        self.nodes.push(Node::default());
        Ok(self.nodes.len() - 1)
    }

    /// The states of the document's root value.
    pub(crate) fn root(&self) -> States {
        self.nodes[0].closure
    }

    /// The states of a child `seg` of a container whose members start from `from`.
    pub(crate) fn step(&self, from: States, seg: Seg<'_>) -> States {
        let mut out = States::default();
        let mut bits = from.0;
        while bits != 0 {
            let n = &self.nodes[bits.trailing_zeros() as usize];
            bits &= bits - 1;
            if n.looping {
                out = out.or(n.closure);
            }
            for (step, t) in &n.edges {
                if step.matches(seg) {
                    out = out.or(self.nodes[*t as usize].closure);
                }
            }
        }
        out
    }

    /// The rules that end at a value with `states`, in no particular order.
    pub(crate) fn accepted(&self, states: States) -> impl Iterator<Item = usize> + '_ {
        states
            .and(self.accepting)
            .iter()
            .flat_map(|i| self.nodes[i].accepts.iter().map(|r| *r as usize))
    }

    /// Whether a value with `states` is the end of a rule.
    pub(crate) fn accepts(&self, states: States) -> bool {
        !states.and(self.accepting).is_empty()
    }
}

/// Parses a path into steps, each with whether it is preceded by `..`.
pub(crate) fn parse(path: &str) -> Result<Vec<(bool, Step)>, String> {
    let b = path.as_bytes();
    if b.first() != Some(&b'$') {
        return Err("a JSON path starts with `$`".into());
    }
    let mut i = 1;
    let mut out = Vec::new();
    while i < b.len() {
        let descend = b[i..].starts_with(b"..");
        match b[i] {
            b'.' => {
                i += if descend { 2 } else { 1 };
                if b.get(i) == Some(&b'[') {
                    if !descend {
                        return Err(format!("`.[` at byte {i}: write `[` without the dot"));
                    }
                    let (step, next) = bracket(path, i)?;
                    out.push((true, step));
                    i = next;
                    continue;
                }
                let end = b[i..]
                    .iter()
                    .position(|c| matches!(c, b'.' | b'['))
                    .map_or(b.len(), |p| i + p);
                let name = &path[i..end];
                if name.is_empty() {
                    return Err(format!("a member name is missing at byte {i}"));
                }
                if let Some(c) = name
                    .chars()
                    .find(|c| matches!(c, ']' | '\'' | '"' | '?' | '(' | ')' | ',' | ' '))
                {
                    return Err(format!(
                        "`{c}` in the member name `{name}`: quote odd names as ['name']"
                    ));
                }
                let step = if name == "*" {
                    Step::Any
                } else {
                    Step::Key(name.as_bytes().into())
                };
                out.push((descend, step));
                i = end;
            }
            b'[' => {
                let (step, next) = bracket(path, i)?;
                out.push((false, step));
                i = next;
            }
            c => return Err(format!("unexpected `{}` at byte {i}", c as char)),
        }
    }
    Ok(out)
}

/// Parses the `[...]` starting at `i`: the step and the index after the `]`.
fn bracket(path: &str, i: usize) -> Result<(Step, usize), String> {
    let b = path.as_bytes();
    let Some(len) = b[i..].iter().position(|&c| c == b']') else {
        return Err(format!("the `[` at byte {i} is not closed"));
    };
    let inner = &path[i + 1..i + len];
    let step = match inner.as_bytes() {
        [] => return Err(format!("empty `[]` at byte {i}")),
        b"*" => Step::Any,
        [q @ (b'\'' | b'"'), mid @ .., e] if q == e && !mid.contains(q) => {
            Step::Key(inner.as_bytes()[1..inner.len() - 1].into())
        }
        d if d.iter().all(u8::is_ascii_digit) => Step::Index(
            inner
                .parse()
                .map_err(|_| format!("the index `{inner}` is too large"))?,
        ),
        _ => {
            return Err(format!(
                "`[{inner}]` is not supported: use a name, an index or `*` (filter \
                 expressions, slices and unions are not)"
            ))
        }
    };
    Ok((step, i + len + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(p: &Paths, segs: &[Seg<'_>]) -> Vec<usize> {
        let mut s = p.root();
        for seg in segs {
            s = p.step(s, *seg);
        }
        let mut r: Vec<usize> = p.accepted(s).collect();
        r.sort_unstable();
        r
    }

    #[test]
    fn names_indices_wildcards_and_descent() {
        let p = Paths::compile(&[
            "$.card.number",
            "$..ssn",
            "$.items[*].email",
            "$['odd key'][1]",
            "$.a.*",
            "$",
        ])
        .unwrap();
        use Seg::*;
        assert_eq!(at(&p, &[]), vec![5]);
        assert_eq!(at(&p, &[Key(b"card"), Key(b"number")]), vec![0]);
        assert_eq!(at(&p, &[Key(b"card")]), Vec::<usize>::new());
        assert_eq!(
            at(&p, &[Key(b"x"), Key(b"card"), Key(b"number")]),
            Vec::<usize>::new()
        );
        assert_eq!(at(&p, &[Key(b"ssn")]), vec![1]);
        assert_eq!(at(&p, &[Key(b"a"), Index(3), Key(b"ssn")]), vec![1]);
        assert_eq!(at(&p, &[Key(b"a"), Key(b"ssn")]), vec![1, 4]);
        assert_eq!(at(&p, &[Key(b"items"), Index(7), Key(b"email")]), vec![2]);
        assert_eq!(at(&p, &[Key(b"items"), Key(b"k"), Key(b"email")]), vec![2]);
        assert_eq!(at(&p, &[Key(b"odd key"), Index(1)]), vec![3]);
        assert_eq!(at(&p, &[Key(b"odd key"), Index(0)]), Vec::<usize>::new());
        assert_eq!(at(&p, &[Key(b"a"), Key(b"b")]), vec![4]);
        assert_eq!(
            at(&p, &[Key(b"a"), Key(b"b"), Key(b"c")]),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn a_descent_does_not_leak_into_sibling_rules() {
        // `$.a` must not match `x.a` because `$..b` keeps the root's `..` node alive.
        let p = Paths::compile(&["$.a", "$..b"]).unwrap();
        use Seg::*;
        assert_eq!(at(&p, &[Key(b"x"), Key(b"a")]), Vec::<usize>::new());
        assert_eq!(at(&p, &[Key(b"x"), Key(b"b")]), vec![1]);
        assert_eq!(at(&p, &[Key(b"a")]), vec![0]);
        let p = Paths::compile(&["$..a..b", "$..*"]).unwrap();
        assert_eq!(
            at(&p, &[Key(b"q"), Key(b"a"), Index(2), Key(b"b")]),
            vec![0, 1]
        );
        assert!(!p.step(p.root(), Key(b"q")).is_empty());
    }

    #[test]
    fn unsupported_and_malformed_paths_are_refused_with_a_reason() {
        for (path, want) in [
            ("card.number", "starts with `$`"),
            ("$.items[?(@.x)]", "not supported"),
            ("$.items[0:2]", "not supported"),
            ("$.a[", "not closed"),
            ("$.", "missing"),
            ("$.a b", "quote odd names"),
            ("$[]", "empty"),
            ("$.a.[0]", "without the dot"),
        ] {
            let e = Paths::compile(&["$.ok", path]).unwrap_err();
            assert_eq!(e.0, 1, "{path}");
            assert!(e.1.contains(want), "{path}: {}", e.1);
        }
        let many: Vec<String> = (0..130).map(|i| format!("$.f{i}")).collect();
        let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert!(Paths::compile(&many).unwrap_err().1.contains("128"));
    }
}
