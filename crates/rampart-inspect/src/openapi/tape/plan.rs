//! A body schema compiled into plain checks over the tape, for the keywords most API
//! contracts are made of: `type`, `properties`, `required`, `additionalProperties`,
//! `items`, the size and length bounds, numeric bounds, `enum`/`const` over strings,
//! booleans and null, `uniqueItems`, `$ref`. A pattern goes to jsonschema's own sequence
//! matcher, and what it cannot decide (like a format) to a one-keyword `jsonschema`
//! validator for just that string: the same engine, so the same answer. A quick check
//! settles the common e-mail address by itself.
//!
//! The plan only ever says "valid" when `jsonschema` would: on anything it cannot settle
//! exactly (a number near a bound it cannot compare exactly, `1.0` against `integer`, a
//! document nested deeper than it follows) it says "not sure", and the full validator
//! decides and lists the violations. A schema with any keyword outside this set gets no
//! plan at all.

use jsonschema::json::{Array, Node as _};
use jsonschema::Validator;
use serde_json::Value;

use super::{Entry, Tape, TapeJson, TapeNode};

/// Nesting the plan follows; deeper documents go to the full validator.
const MAX_DEPTH: u32 = 64;

/// Numbers compared as `f64` only below this magnitude (integers are exact there).
const EXACT: f64 = 9.0e15;

const NULL: u8 = 1;
const BOOL: u8 = 2;
const INTEGER: u8 = 4;
const NUMBER: u8 = 8;
const STRING: u8 = 16;
const ARRAY: u8 = 32;
const OBJECT: u8 = 64;
const ANY: u8 = 127;

/// What a node checks beyond the type (`Node::flags`).
const ALSO: u8 = 1;
const ENUM: u8 = 2;
const STR: u8 = 4;
const NUM: u8 = 8;
const ARR: u8 = 16;
const OBJ: u8 = 32;
/// With `STR`: the only string check is `maxLength` (a string no longer in bytes passes).
const MAX_ONLY: u8 = 64;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Ge,
    Gt,
    Le,
    Lt,
}

#[derive(Debug, PartialEq)]
enum Lit {
    Str(Box<str>),
    Bool(bool),
    Null,
}

/// A `pattern`: jsonschema's sequence matcher when the pattern is one, the one-keyword
/// validator for the strings it cannot decide (and for other patterns).
struct Pattern {
    sequence: Option<jsonschema_regex::Sequence>,
    full: Validator<TapeJson>,
}

impl Pattern {
    fn matches(&self, s: &[u8], at: TapeNode<'_>) -> bool {
        match self.sequence.as_ref().and_then(|q| q.is_match(s)) {
            Some(m) => m,
            None => self.full.is_valid(at),
        }
    }
}

#[derive(Default)]
struct Node {
    /// A `$ref`: that node's checks apply too.
    also: Option<u32>,
    /// Allowed types (none: the schema `false`).
    types: u8,
    /// Which checks beyond the type the node has (set once compiled).
    flags: u8,
    enums: Option<Vec<Lit>>,
    min_len: usize,
    max_len: usize,
    /// `format: email`: the quick check first, then `checks`.
    email: bool,
    /// Patterns a string must match.
    patterns: Vec<Pattern>,
    /// One-keyword validators (formats) a string must pass.
    checks: Vec<Validator<TapeJson>>,
    email_check: Option<Validator<TapeJson>>,
    bounds: Vec<(Cmp, f64)>,
    items: Option<u32>,
    min_items: usize,
    max_items: usize,
    unique: bool,
    props: Vec<Prop>,
    /// Bit `i`: `props[i]` is required.
    required: u64,
    /// `additionalProperties` (None: any member is allowed).
    additional: Option<u32>,
    min_props: usize,
    max_props: usize,
}

/// A member of `properties`.
struct Prop {
    /// The name's first eight bytes (see [`head`]): with its length, a comparison that
    /// is mostly two integers.
    head: u64,
    name: Box<str>,
    /// Its schema's node (`u32::MAX` while compiling: not given yet).
    schema: u32,
}

/// A compiled body schema.
pub(crate) struct Plan {
    nodes: Vec<Node>,
}

/// Builds a one-keyword validator (`{"pattern": …}`, `{"format": …}`) with the options the
/// full validator has.
pub(crate) type Delegate<'a> = &'a mut dyn FnMut(&Value) -> Option<Validator<TapeJson>>;

impl Plan {
    /// The plan of a translated, self-contained schema document (`$defs` at its root),
    /// or `None` when it uses a keyword the plan does not settle.
    pub(crate) fn compile(doc: &Value, delegate: Delegate<'_>) -> Option<Plan> {
        Compiler::plan(doc, delegate)
    }

    /// Whether the body is certainly valid (`false`: not valid, or not sure).
    pub(crate) fn accepts(&self, tape: &Tape) -> bool {
        match tape.entries.first() {
            Some(&e) => self.check(&self.nodes[0], tape, 0, e, 0),
            None => false,
        }
    }

    /// Entry `i` (which is `e`) against `node`: the type here, the rest out of line only
    /// when the node has more to check (most leaves have a type and nothing more).
    #[inline(always)]
    fn check(&self, node: &Node, tape: &Tape, i: usize, e: Entry, depth: u32) -> bool {
        if !admits(node.types, tape, e) {
            return false;
        }
        match e {
            _ if node.flags == 0 => true,
            // A string within `maxLength` in bytes is within it in characters.
            Entry::Str { start, end, .. }
                if node.flags == STR | MAX_ONLY
                    && end.saturating_sub(start) as usize <= node.max_len =>
            {
                true
            }
            _ => self.deep(node, tape, i, e, depth),
        }
    }

    /// The checks beyond the type.
    #[inline(never)]
    fn deep(&self, node: &Node, tape: &Tape, i: usize, entry: Entry, depth: u32) -> bool {
        if let Some(also) = node.also {
            let also = &self.nodes[also as usize];
            if depth > MAX_DEPTH || !self.check(also, tape, i, entry, depth + 1) {
                return false;
            }
        }
        if node.flags & ENUM != 0 && !node.in_enum(tape, entry) {
            return false;
        }
        match entry {
            Entry::Number(s, e) if node.flags & NUM != 0 => {
                number_in(tape.bytes_at(s, e, false), &node.bounds)
            }
            Entry::Str {
                start,
                end,
                escaped,
            } if node.flags & STR != 0 => self.string(node, tape, i, start, end, escaped),
            Entry::Array { len, end } if node.flags & ARR != 0 => {
                self.array(node, tape, Container::new(i, len, end, depth))
            }
            Entry::Object { len, end } if node.flags & OBJ != 0 => {
                self.object(node, tape, Container::new(i, len, end, depth))
            }
            _ => true,
        }
    }

    /// A string's length, patterns and formats.
    fn string(
        &self,
        node: &Node,
        tape: &Tape,
        i: usize,
        start: u32,
        end: u32,
        escaped: bool,
    ) -> bool {
        let s = tape.bytes_at(start, end, escaped);
        // Lengths in characters: the bytes that do not continue one.
        if (node.min_len > 0 || s.len() > node.max_len)
            && !(node.min_len..=node.max_len)
                .contains(&s.iter().filter(|&&b| (b as i8) >= -0x40).count())
        {
            return false;
        }
        let at = TapeNode { tape, i };
        if node.email && !quick_email(s) {
            if let Some(v) = &node.email_check {
                if !v.is_valid(at) {
                    return false;
                }
            }
        }
        node.patterns.iter().all(|p| p.matches(s, at)) && node.checks.iter().all(|v| v.is_valid(at))
    }

    fn array(&self, node: &Node, tape: &Tape, c: Container) -> bool {
        let Container { i, len, end, depth } = c;
        let Some(entries) = c.entries(tape, node.min_items, node.max_items) else {
            return false;
        };
        if let Some(items) = node.items {
            let items = &self.nodes[items as usize];
            let mut j = i + 1;
            while let Some(&e) = entries.get(j) {
                if !self.check(items, tape, j, e, depth + 1) {
                    return false;
                }
                j = after(j, e);
            }
        }
        if node.unique && len > 1 {
            return unique_strings(tape, i + 1, end).unwrap_or_else(|| {
                (TapeNode { tape, i })
                    .as_array()
                    .is_some_and(|a| a.is_unique())
            });
        }
        true
    }

    fn object(&self, node: &Node, tape: &Tape, c: Container) -> bool {
        let Container { i, end, depth, .. } = c;
        let Some(entries) = c.entries(tape, node.min_props, node.max_props) else {
            return false;
        };
        let mut seen = 0u64;
        // Members mostly come in the schema's order: the search starts after the last
        // one found.
        let mut from = 0;
        let mut j = i + 1;
        while let (Some(&name), Some(&e)) = (entries.get(j), entries.get(j + 1)) {
            let Entry::Str {
                start,
                end: name_end,
                escaped,
            } = name
            else {
                return false;
            };
            let source = tape.source(escaped);
            let (start, name_end) = (start as usize, name_end as usize);
            let name = source.get(start..name_end).unwrap_or_default();
            // The name's head read as one word when eight bytes follow its start (a
            // member name is followed by more of the document, mostly).
            let head = match source.get(start..start + 8).map(<[u8; 8]>::try_from) {
                Some(Ok(w)) => u64::from_le_bytes(w) & HEAD_MASK[name.len().min(8)],
                _ => head(name),
            };
            let schema = match node.find(name, head, from) {
                Some((k, schema)) => {
                    seen |= 1 << k;
                    from = k + 1;
                    Some(schema)
                }
                None => node.additional,
            };
            if let Some(s) = schema {
                if !self.check(&self.nodes[s as usize], tape, j + 1, e, depth + 1) {
                    return false;
                }
            }
            j = after(j + 1, e);
        }
        // Names are unique here (a body naming a member twice was refused).
        j == end && seen & node.required == node.required
    }
}

/// An array or object of the tape: its entry, its size, the index past its subtree, and
/// its nesting.
#[derive(Clone, Copy)]
struct Container {
    i: usize,
    len: usize,
    end: usize,
    depth: u32,
}

impl Container {
    fn new(i: usize, len: u32, end: u32, depth: u32) -> Container {
        Container {
            i,
            len: len as usize,
            end: end as usize,
            depth,
        }
    }

    /// The tape up to the container's end, when its size is within `min..=max` and it
    /// is not nested too deep to follow.
    fn entries<'t>(&self, tape: &'t Tape, min: usize, max: usize) -> Option<&'t [Entry]> {
        if !(min..=max).contains(&self.len) || self.depth > MAX_DEPTH {
            return None;
        }
        Some(tape.entries.get(..self.end).unwrap_or_default())
    }
}

/// `HEAD_MASK[n]` keeps the first `n` bytes of a little-endian word.
const HEAD_MASK: [u64; 9] = {
    let mut m = [0u64; 9];
    let mut n = 1;
    while n < 8 {
        m[n] = (1u64 << (8 * n)) - 1;
        n += 1;
    }
    m[8] = u64::MAX;
    m
};

/// A member name's first eight bytes as a little-endian word (zeros past its end).
fn head(name: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(name) {
        *d = *s;
    }
    u64::from_le_bytes(w)
}

/// The index just past entry `j` (which is `e`) and its subtree.
#[inline(always)]
fn after(j: usize, e: Entry) -> usize {
    match e {
        Entry::Array { end, .. } | Entry::Object { end, .. } => end as usize,
        _ => j + 1,
    }
}

impl Node {
    fn any() -> Node {
        Node {
            types: ANY,
            max_len: usize::MAX,
            max_items: usize::MAX,
            max_props: usize::MAX,
            ..Node::default()
        }
    }

    /// Nothing but a `$ref`.
    fn is_alias(&self) -> bool {
        self.flags == ALSO && self.types == ANY
    }

    /// The checks beyond the type this node has.
    fn flags_of(&self) -> u8 {
        let mut f = 0;
        if self.also.is_some() {
            f |= ALSO;
        }
        if self.enums.is_some() {
            f |= ENUM;
        }
        if self.min_len > 0
            || self.max_len < usize::MAX
            || self.email
            || !self.patterns.is_empty()
            || !self.checks.is_empty()
        {
            f |= STR;
            if self.min_len == 0
                && !self.email
                && self.patterns.is_empty()
                && self.checks.is_empty()
            {
                f |= MAX_ONLY;
            }
        }
        if !self.bounds.is_empty() {
            f |= NUM;
        }
        if self.min_items > 0 || self.max_items < usize::MAX || self.items.is_some() || self.unique
        {
            f |= ARR;
        }
        if self.min_props > 0
            || self.max_props < usize::MAX
            || !self.props.is_empty()
            || self.additional.is_some()
        {
            f |= OBJ;
        }
        f
    }

    /// Whether a scalar is one of the `enum` (or the `const`).
    fn in_enum(&self, tape: &Tape, entry: Entry) -> bool {
        let Some(enums) = &self.enums else {
            return true;
        };
        match entry {
            Entry::Str {
                start,
                end,
                escaped,
            } => {
                let s = tape.bytes_at(start, end, escaped);
                enums
                    .iter()
                    .any(|l| matches!(l, Lit::Str(e) if e.as_bytes() == s))
            }
            Entry::Bool(b) => enums.contains(&Lit::Bool(b)),
            Entry::Null => enums.contains(&Lit::Null),
            _ => false,
        }
    }

    /// The index and schema of the property named `name`, searched from `from` on, then
    /// from the start.
    fn find(&self, name: &[u8], head: u64, from: usize) -> Option<(usize, u32)> {
        let (len, n) = (name.len(), self.props.len());
        let mut k = from;
        for _ in 0..n {
            if k >= n {
                k = 0;
            }
            let p = &self.props[k];
            if p.head == head
                && p.name.len() == len
                && (len <= 8 || p.name.as_bytes().get(8..) == name.get(8..))
            {
                return Some((k, p.schema));
            }
            k += 1;
        }
        None
    }

    /// The index of member `name` in `props`, added (with no schema yet) if new.
    fn prop(&mut self, name: &str) -> Option<usize> {
        if let Some(at) = self.props.iter().position(|p| *p.name == *name) {
            return Some(at);
        }
        if self.props.len() == 64 {
            return None;
        }
        self.props.push(Prop {
            head: head(name.as_bytes()),
            name: name.into(),
            schema: u32::MAX,
        });
        Some(self.props.len() - 1)
    }
}

mod compile;
mod values;

use compile::Compiler;
#[cfg(test)]
use values::fast_f64;
use values::{admits, number_in, quick_email, unique_strings};

#[cfg(test)]
mod tests;
