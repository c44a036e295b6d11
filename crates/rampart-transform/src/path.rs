//! JSON paths (`$.card.number`, `$..ssn`, `$.items[*].email`, `$['odd key'][0]`) compiled
//! into one small automaton per rule set, so a streaming body is matched as it is read:
//! each open container holds the automaton state its members start from, and a member
//! name or array index moves it one step. The rules are compiled to a nondeterministic
//! automaton, then, at load, to a deterministic one over the names and indexes the rules
//! mention (any other name, or index, is one symbol): a step is a lookup of the name
//! among those and one table read. No path is interpreted per request, and nothing is
//! allocated per value.
//!
//! Supported: `$`, `.name`, `['name']` / `["name"]`, `[n]`, `.*` and `[*]` (any member or
//! element), and `..` before a name or `*` (at any depth below). Filter expressions,
//! slices and unions are refused at load, never silently ignored.

/// At most this many automaton states per rule set (shared prefixes count once).
pub(crate) const MAX_STATES: usize = 128;

/// A set of states of the nondeterministic automaton.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Set(u128);

impl Set {
    fn with(self, i: usize) -> Set {
        Set(self.0 | 1 << i)
    }

    fn or(self, other: Set) -> Set {
        Set(self.0 | other.0)
    }

    fn and(self, other: Set) -> Set {
        Set(self.0 & other.0)
    }

    fn is_empty(&self) -> bool {
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

/// A state of the deterministic automaton: where a value stands against every rule at
/// once. The default, 0, is the state from which no rule can match any more. The top
/// bit says whether the state ends a rule (so the reader's test per member needs no
/// table), the rest is the state's number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct States(u32);

/// The bit of a [`States`] that says it ends a rule.
const FINAL: u32 = 1 << 31;

impl States {
    /// No rule can match here or below.
    pub(crate) fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The state's number, for tables indexed by state.
    pub(crate) fn id(self) -> usize {
        (self.0 & !FINAL) as usize
    }
}

/// At most this many deterministic states per rule set (each is one set of the
/// nondeterministic automaton's states that some document can reach).
pub(crate) const MAX_DFA_STATES: usize = 4096;

/// A name length's bit in [`Paths::lengths`].
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
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
    closure: Set,
}

/// A compiled rule set.
#[derive(Debug)]
pub(crate) struct Paths {
    nodes: Vec<Node>,
    accepting: Set,
    /// The member names the rules mention (symbols `2..2 + names.len()`), then the
    /// indexes (the symbols after); symbol 0 is any other name, 1 any other index.
    names: Vec<Box<[u8]>>,
    indexes: Vec<u32>,
    /// Bit `n` is set when some name in `names` is `n` bytes long (`n` < 64; bit 63
    /// stands for every longer name): most member names are ruled out by their length.
    lengths: u64,
    /// Each deterministic state's set of nondeterministic states (0: the empty set).
    sets: Vec<Set>,
    /// `table[state * width + symbol]`: the state a step leads to (with its [`FINAL`]
    /// bit).
    table: Vec<u32>,
    width: usize,
    root: States,
}

impl Paths {
    /// Compiles `paths`; an error names the path's index and what is wrong with it.
    pub(crate) fn compile(paths: &[&str]) -> Result<Paths, (usize, String)> {
        let mut p = Paths {
            nodes: vec![Node::default()],
            accepting: Set::default(),
            names: Vec::new(),
            indexes: Vec::new(),
            lengths: 0,
            sets: Vec::new(),
            table: Vec::new(),
            width: 2,
            root: States::default(),
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
            let mut c = Set::default().with(i);
            if let Some(d) = p.nodes[i].descend {
                c = c.or(p.nodes[d as usize].closure);
            }
            p.nodes[i].closure = c;
        }
        p.determinize()
            .map_err(|e| (paths.len().saturating_sub(1), e))?;
        Ok(p)
    }

    /// Builds the deterministic automaton: every set of states some sequence of names
    /// and indexes reaches from the root, and its step on each symbol.
    fn determinize(&mut self) -> Result<(), String> {
        for n in &self.nodes {
            for (step, _) in &n.edges {
                match step {
                    Step::Key(k) if !self.names.contains(k) => self.names.push(k.clone()),
                    Step::Index(i) if !self.indexes.contains(i) => self.indexes.push(*i),
                    _ => {}
                }
            }
        }
        self.width = 2 + self.names.len() + self.indexes.len();
        self.lengths = self.names.iter().fold(0, |m, n| m | length_bit(n.len()));
        let mut ids: std::collections::HashMap<Set, u32> = std::collections::HashMap::new();
        let mut todo = Vec::new();
        // State 0, the empty set, steps to itself on every symbol.
        self.intern(Set::default(), &mut ids, &mut todo)?;
        self.root = States(self.intern(self.nodes[0].closure, &mut ids, &mut todo)?);
        while let Some(state) = todo.pop() {
            let set = self.sets[state as usize];
            for symbol in 0..self.width {
                let next = self.intern(self.nfa_step(set, symbol), &mut ids, &mut todo)?;
                self.table[state as usize * self.width + symbol] = next;
            }
        }
        // Each state carries whether it ends some rule.
        self.root = self.flagged(self.root.0);
        for i in 0..self.table.len() {
            self.table[i] = self.flagged(self.table[i]).0;
        }
        Ok(())
    }

    /// State number `id`, with its [`FINAL`] bit when it ends some rule.
    fn flagged(&self, id: u32) -> States {
        let ends = self
            .sets
            .get(id as usize)
            .is_some_and(|s| !s.and(self.accepting).is_empty());
        States(if ends { id | FINAL } else { id })
    }

    /// The deterministic state of `set`, added (to be stepped from) if new.
    fn intern(
        &mut self,
        set: Set,
        ids: &mut std::collections::HashMap<Set, u32>,
        todo: &mut Vec<u32>,
    ) -> Result<u32, String> {
        if let Some(&id) = ids.get(&set) {
            return Ok(id);
        }
        if self.sets.len() == MAX_DFA_STATES {
            return Err(format!(
                "the paths of this list together need more than {MAX_DFA_STATES} automaton \
                 states; split the list or use fewer `..`"
            ));
        }
        let id = self.sets.len() as u32;
        self.sets.push(set);
        self.table.extend(std::iter::repeat_n(0, self.width));
        ids.insert(set, id);
        if id > 0 {
            todo.push(id);
        }
        Ok(id)
    }

    /// The nondeterministic step from `set` on `symbol`.
    fn nfa_step(&self, set: Set, symbol: usize) -> Set {
        let names = self.names.len();
        let matches = |step: &Step| match step {
            Step::Any => true,
            Step::Key(k) => symbol >= 2 && self.names.get(symbol - 2) == Some(k),
            Step::Index(i) => {
                symbol >= 2 + names && self.indexes.get(symbol - 2 - names) == Some(i)
            }
        };
        let mut out = Set::default();
        for i in set.iter() {
            let n = &self.nodes[i];
            if n.looping {
                out = out.or(n.closure);
            }
            for (step, t) in &n.edges {
                if matches(step) {
                    out = out.or(self.nodes[*t as usize].closure);
                }
            }
        }
        out
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

    /// The state of the document's root value.
    pub(crate) fn root(&self) -> States {
        self.root
    }

    /// The state of a child `seg` of a container whose members start from `from`.
    pub(crate) fn step(&self, from: States, seg: Seg<'_>) -> States {
        if from.is_empty() {
            return from;
        }
        let symbol = match seg {
            // Lengths first: most names differ in length from every rule's, and the
            // byte comparison then needs no call.
            Seg::Key(k) if self.lengths & length_bit(k.len()) == 0 => 0,
            Seg::Key(k) => self
                .names
                .iter()
                .position(|n| n.len() == k.len() && n.iter().zip(k).all(|(a, b)| a == b))
                .map_or(0, |p| 2 + p),
            Seg::Index(i) => self
                .indexes
                .iter()
                .position(|&n| n == i)
                .map_or(1, |p| 2 + self.names.len() + p),
        };
        let at = from.id() * self.width + symbol;
        States(self.table.get(at).copied().unwrap_or(0))
    }

    fn set(&self, states: States) -> Set {
        self.sets.get(states.id()).copied().unwrap_or_default()
    }

    /// The rules that end at a value in state `states`, in no particular order.
    pub(crate) fn accepted(&self, states: States) -> impl Iterator<Item = usize> + '_ {
        self.set(states)
            .and(self.accepting)
            .iter()
            .flat_map(|i| self.nodes[i].accepts.iter().map(|r| *r as usize))
    }

    /// Every deterministic state, by number.
    pub(crate) fn states(&self) -> impl Iterator<Item = States> + '_ {
        (0..self.sets.len() as u32).map(|id| self.flagged(id))
    }

    /// Whether a value in state `states` is the end of a rule.
    pub(crate) fn accepts(&self, states: States) -> bool {
        states.0 & FINAL != 0
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
mod tests;
