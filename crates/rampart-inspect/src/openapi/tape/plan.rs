//! A body schema compiled into plain checks over the tape, for the keywords most API
//! contracts are made of: `type`, `properties`, `required`, `additionalProperties`,
//! `items`, the size and length bounds, numeric bounds, `enum`/`const` over strings,
//! booleans and null, `uniqueItems`, `$ref`. A pattern or a format is asked of a
//! one-keyword `jsonschema` validator for just that string (the same engine, so the same
//! answer), after a quick check that settles the common e-mail address by itself.
//!
//! The plan only ever says "valid" when `jsonschema` would: on anything it cannot settle
//! exactly (a number near a bound it cannot compare exactly, `1.0` against `integer`, a
//! document nested deeper than it follows) it says "not sure", and the full validator
//! decides and lists the violations. A schema with any keyword outside this set gets no
//! plan at all.

use std::collections::HashMap;

use jsonschema::json::{Array, Node as _};
use jsonschema::Validator;
use serde_json::{Map, Value};

use super::{Entry, Tape, TapeJson, TapeNode};

/// Keywords `jsonschema` takes as annotations only: they assert nothing.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "example",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "xml",
    "externalDocs",
    "discriminator",
    "nullable",
];

/// Formats only OpenAPI defines (their bounds and patterns are settled at load) and that
/// `jsonschema` ignores.
const OPENAPI_FORMATS: &[&str] = &["int32", "int64", "float", "double", "binary", "password"];

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
    props: Vec<(Box<str>, u32)>,
    /// Bit `i`: `props[i]` is required.
    required: u64,
    /// `additionalProperties` (None: any member is allowed).
    additional: Option<u32>,
    min_props: usize,
    max_props: usize,
}

/// A compiled body schema.
pub(crate) struct Plan {
    nodes: Vec<Node>,
}

/// Builds a one-keyword validator (`{"pattern": …}`, `{"format": …}`) with the options the
/// full validator has.
pub(crate) type Delegate<'a> = &'a mut dyn FnMut(&Value) -> Option<Validator<TapeJson>>;

struct Compiler<'a, 'b> {
    defs: Option<&'a Map<String, Value>>,
    done: HashMap<&'a str, u32>,
    nodes: Vec<Node>,
    delegate: Delegate<'b>,
}

impl Plan {
    /// The plan of a translated, self-contained schema document (`$defs` at its root),
    /// or `None` when it uses a keyword the plan does not settle.
    pub(crate) fn compile(doc: &Value, delegate: Delegate<'_>) -> Option<Plan> {
        let mut c = Compiler {
            defs: doc.get("$defs").and_then(Value::as_object),
            done: HashMap::new(),
            nodes: vec![Node::default()],
            delegate,
        };
        let root = c.node(doc, true)?;
        c.nodes[0] = root;
        Some(Plan { nodes: c.nodes })
    }

    /// Whether the body is certainly valid (`false`: not valid, or not sure).
    pub(crate) fn accepts(&self, tape: &Tape) -> bool {
        !tape.entries.is_empty() && self.check(0, tape, 0, 0)
    }

    fn check(&self, n: u32, tape: &Tape, i: usize, depth: u32) -> bool {
        let node = &self.nodes[n as usize];
        let entry = tape.entries[i];
        if !admits(node.types, tape, entry) {
            return false;
        }
        // Most leaves: a type and nothing more.
        node.flags == 0 || self.deep(node, n, tape, i, entry, depth)
    }

    /// The checks beyond the type (out of line: the type test above stays small).
    #[inline(never)]
    fn deep(&self, node: &Node, n: u32, tape: &Tape, i: usize, entry: Entry, depth: u32) -> bool {
        if node.flags & ALSO != 0 {
            let also = node.also.unwrap_or(n);
            if depth > MAX_DEPTH || !self.check(also, tape, i, depth + 1) {
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
            } if node.flags & STR != 0 => {
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
                node.patterns.iter().all(|p| p.matches(s, at))
                    && node.checks.iter().all(|v| v.is_valid(at))
            }
            Entry::Array { len, end } if node.flags & ARR != 0 => {
                let len = len as usize;
                if !(node.min_items..=node.max_items).contains(&len) || depth > MAX_DEPTH {
                    return false;
                }
                if let Some(items) = node.items {
                    let mut j = i + 1;
                    while j < end as usize {
                        if !self.check(items, tape, j, depth + 1) {
                            return false;
                        }
                        j = tape.after(j);
                    }
                }
                if node.unique && len > 1 {
                    return unique_strings(tape, i + 1, end as usize).unwrap_or_else(|| {
                        (TapeNode { tape, i })
                            .as_array()
                            .is_some_and(|a| a.is_unique())
                    });
                }
                true
            }
            Entry::Object { len, end } if node.flags & OBJ != 0 => {
                if !(node.min_props..=node.max_props).contains(&(len as usize)) || depth > MAX_DEPTH
                {
                    return false;
                }
                let mut seen = 0u64;
                // Members mostly come in the schema's order: the search starts after
                // the last one found.
                let mut from = 0;
                let mut j = i + 1;
                while j < end as usize {
                    let Entry::Str {
                        start,
                        end: name_end,
                        escaped,
                    } = tape.entries[j]
                    else {
                        return false;
                    };
                    let name = tape.bytes_at(start, name_end, escaped);
                    let schema = match node.find(name, from) {
                        Some(k) => {
                            seen |= 1 << k;
                            from = k + 1;
                            Some(node.props[k].1)
                        }
                        None => node.additional,
                    };
                    if let Some(s) = schema {
                        if !self.check(s, tape, j + 1, depth + 1) {
                            return false;
                        }
                    }
                    j = tape.after(j + 1);
                }
                // Names are unique here (a body naming a member twice was refused).
                seen & node.required == node.required
            }
            _ => true,
        }
    }
}

/// Whether a value of `entry`'s type is allowed by `types`.
#[inline(always)]
fn admits(types: u8, tape: &Tape, entry: Entry) -> bool {
    match entry {
        Entry::Null => types & NULL != 0,
        Entry::Bool(_) => types & BOOL != 0,
        // `integer` alone: a number with a fraction or an exponent is left to the full
        // validator (`1.0` is an integer to it).
        Entry::Number(s, e) => {
            types & NUMBER != 0
                || types & INTEGER != 0
                    && !tape
                        .bytes_at(s, e, false)
                        .iter()
                        .any(|b| matches!(b, b'.' | b'e' | b'E'))
        }
        Entry::Str { .. } => types & STRING != 0,
        Entry::Array { .. } => types & ARRAY != 0,
        Entry::Object { .. } => types & OBJECT != 0,
    }
}

/// Whether the elements `from..end` are distinct, when they are a few strings (`None`
/// otherwise: the full comparison decides).
fn unique_strings(tape: &Tape, from: usize, end: usize) -> Option<bool> {
    let items = &tape.entries[from..end];
    if items.len() > 16 {
        return None;
    }
    for (k, a) in items.iter().enumerate() {
        let Entry::Str {
            start,
            end,
            escaped,
        } = *a
        else {
            return None;
        };
        let a = tape.bytes_at(start, end, escaped);
        for b in &items[k + 1..] {
            let Entry::Str {
                start,
                end,
                escaped,
            } = *b
            else {
                return None;
            };
            if tape.bytes_at(start, end, escaped) == a {
                return Some(false);
            }
        }
    }
    Some(true)
}

/// Whether the number `text` meets every bound, compared exactly (`false` when it cannot
/// be: a magnitude where `f64` is no longer exact).
fn number_in(text: &[u8], bounds: &[(Cmp, f64)]) -> bool {
    let (v, integer) = match fast_f64(text) {
        Some(read) => read,
        // With an exponent or over 15 digits: never taken as exact.
        None => match std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
        {
            Some(v) => (v, false),
            None => return false,
        },
    };
    if !v.is_finite() || v.abs() >= EXACT {
        return false;
    }
    bounds.iter().all(|&(cmp, b)| {
        // A decimal's text and its `f64` differ in the last places: one that lands on a
        // bound is left to the full validator.
        if !integer && (v - b).abs() <= 1e-9 * b.abs().max(1.0) {
            return false;
        }
        match cmp {
            Cmp::Ge => v >= b,
            Cmp::Gt => v > b,
            Cmp::Le => v <= b,
            Cmp::Lt => v < b,
        }
    })
}

/// The `f64` of a plain number of at most 15 digits (`-12`, `19.99`), and whether it is
/// an integer: its digits and the power of ten are both exact in `f64`, so one division
/// rounds as the full parser does. Anything else (exponents, more digits) is `None`.
fn fast_f64(text: &[u8]) -> Option<(f64, bool)> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (neg, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let (mut m, mut n, mut scale, mut dot) = (0u64, 0usize, 0usize, false);
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                m = m * 10 + u64::from(c - b'0');
                n += 1;
                scale += usize::from(dot);
            }
            b'.' if !dot => dot = true,
            _ => return None,
        }
    }
    if n == 0 || n > 15 {
        return None;
    }
    let v = m as f64 / POW10[scale];
    Some((if neg { -v } else { v }, !dot))
}

/// A plain e-mail address (`local@domain.tld`, letters, digits and `._+-` before the
/// `@`, hostname labels after it): certainly valid under JSON Schema's `email`. Anything
/// else (quoted local parts, IP literals, IDNs, other symbols) is `false` and goes to the
/// full check.
pub(crate) fn quick_email(b: &[u8]) -> bool {
    if b.len() > 254 {
        return false;
    }
    let Some(at) = b.iter().position(|&c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&b[..at], &b[at + 1..]);
    // Local part: no leading, trailing or double dot.
    if local.is_empty() || local.len() > 64 || local[0] == b'.' || local[local.len() - 1] == b'.' {
        return false;
    }
    let mut prev = 0u8;
    for &c in local {
        let ok = match c {
            b'.' => prev != b'.',
            c => c.is_ascii_alphanumeric() || matches!(c, b'_' | b'+' | b'-'),
        };
        if !ok {
            return false;
        }
        prev = c;
    }
    // Domain: two labels or more, each 1 to 63 letters, digits and single inner hyphens;
    // the last one holds a letter (a top-level domain is never all digits).
    let (mut len, mut labels, mut alpha) = (0usize, 0, false);
    prev = b'.';
    for &c in domain {
        match c {
            b'.' => {
                if len == 0 || prev == b'-' {
                    return false;
                }
                labels += 1;
                len = 0;
                alpha = false;
            }
            b'-' if len > 0 && prev != b'-' => len += 1,
            c if c.is_ascii_alphanumeric() => {
                len += 1;
                alpha |= c.is_ascii_alphabetic();
            }
            _ => return false,
        }
        if len > 63 {
            return false;
        }
        prev = c;
    }
    labels >= 1 && len > 0 && prev != b'-' && alpha
}

impl<'a> Compiler<'a, '_> {
    /// A node for `schema`; `root` allows the document's `$defs`.
    fn node(&mut self, schema: &'a Value, root: bool) -> Option<Node> {
        let obj = match schema {
            Value::Bool(true) => return Some(Node::any()),
            Value::Bool(false) => return Some(Node::default()),
            Value::Object(o) => o,
            _ => return None,
        };
        let mut n = Node::any();
        // `properties` first, so members are listed in the schema's order (the lookup
        // starts after the last member found).
        let props = obj.iter().filter(|(k, _)| *k == "properties");
        for (k, v) in props.chain(obj.iter().filter(|(k, _)| *k != "properties")) {
            match k.as_str() {
                "$defs" if root => {}
                // With siblings (3.1), both apply.
                "$ref" => n.also = Some(self.reference(v.as_str()?)?),
                "type" => {
                    n.types = match v {
                        Value::String(t) => type_bit(t)?,
                        Value::Array(ts) => ts
                            .iter()
                            .map(|t| t.as_str().and_then(type_bit))
                            .try_fold(0, |acc, b| b.map(|b| acc | b))?,
                        _ => return None,
                    }
                }
                "enum" => n.enums = Some(v.as_array()?.iter().map(lit).collect::<Option<_>>()?),
                "const" => n.enums = Some(vec![lit(v)?]),
                "minLength" => n.min_len = count(v)?,
                "maxLength" => n.max_len = count(v)?,
                "pattern" => n.patterns.push(Pattern {
                    // jsonschema's own fast path for anchored sequences of classes.
                    sequence: jsonschema_regex::to_rust_regex(v.as_str()?)
                        .ok()
                        .and_then(|t| jsonschema_regex::Sequence::compile(&t)),
                    full: self.one(k, v)?,
                }),
                "format" => match v.as_str()? {
                    f if OPENAPI_FORMATS.contains(&f) => {}
                    "email" => {
                        n.email = true;
                        n.email_check = Some(self.one(k, v)?);
                    }
                    _ => n.checks.push(self.one(k, v)?),
                },
                "minimum" => n.bounds.push((Cmp::Ge, v.as_f64()?)),
                "maximum" => n.bounds.push((Cmp::Le, v.as_f64()?)),
                "exclusiveMinimum" => n.bounds.push((Cmp::Gt, v.as_f64()?)),
                "exclusiveMaximum" => n.bounds.push((Cmp::Lt, v.as_f64()?)),
                "items" => n.items = Some(self.child(v)?),
                "minItems" => n.min_items = count(v)?,
                "maxItems" => n.max_items = count(v)?,
                "uniqueItems" => n.unique = v.as_bool()?,
                "minProperties" => n.min_props = count(v)?,
                "maxProperties" => n.max_props = count(v)?,
                "additionalProperties" => n.additional = Some(self.child(v)?),
                "properties" => {
                    for (name, s) in v.as_object()? {
                        let child = self.child(s)?;
                        n.prop(name)?;
                        let at = n.props.iter().position(|(p, _)| **p == **name)?;
                        n.props[at].1 = child;
                    }
                }
                "required" => {
                    for name in v.as_array()? {
                        let at = n.prop(name.as_str()?)?;
                        n.required |= 1 << at;
                    }
                }
                k if ANNOTATIONS.contains(&k) || k.starts_with("x-") => {}
                _ => return None,
            }
        }
        // A required name with no schema of its own: any value (or what
        // `additionalProperties` says, as `jsonschema` applies it).
        for k in 0..n.props.len() {
            if n.props[k].1 == u32::MAX {
                n.props[k].1 = match n.additional {
                    Some(a) => a,
                    None => self.any(),
                };
            }
        }
        n.flags = n.flags_of();
        Some(n)
    }

    /// A node for a subschema, by index (a `$ref` alone is its target's).
    fn child(&mut self, schema: &'a Value) -> Option<u32> {
        let n = self.node(schema, false)?;
        if let (Some(target), true) = (n.also, n.is_alias()) {
            return Some(target);
        }
        self.nodes.push(n);
        Some(self.nodes.len() as u32 - 1)
    }

    fn any(&mut self) -> u32 {
        self.nodes.push(Node::any());
        self.nodes.len() as u32 - 1
    }

    /// The node of `#/$defs/NAME`, compiled once (a recursive schema points back at it).
    fn reference(&mut self, r: &str) -> Option<u32> {
        let name = r.strip_prefix("#/$defs/")?;
        let (key, target) = self.defs?.get_key_value(name)?;
        if let Some(&at) = self.done.get(key.as_str()) {
            return Some(at);
        }
        let at = self.nodes.len() as u32;
        self.nodes.push(Node::any());
        self.done.insert(key.as_str(), at);
        let n = self.node(target, false)?;
        self.nodes[at as usize] = n;
        Some(at)
    }

    fn one(&mut self, keyword: &str, value: &Value) -> Option<Validator<TapeJson>> {
        let mut doc = Map::new();
        doc.insert(keyword.to_owned(), value.clone());
        (self.delegate)(&Value::Object(doc))
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

    /// The index of the property named `name`, searched from `from` on, then from the start.
    fn find(&self, name: &[u8], from: usize) -> Option<usize> {
        let at = |k: usize| {
            // Lengths first, then the bytes without a call (names are short).
            let p = self.props[k].0.as_bytes();
            p.len() == name.len() && p.iter().zip(name).all(|(a, b)| a == b)
        };
        (from..self.props.len())
            .find(|&k| at(k))
            .or_else(|| (0..from.min(self.props.len())).find(|&k| at(k)))
    }

    /// The index of member `name` in `props`, added (with no schema yet) if new.
    fn prop(&mut self, name: &str) -> Option<usize> {
        if let Some(at) = self.props.iter().position(|(p, _)| **p == *name) {
            return Some(at);
        }
        if self.props.len() == 64 {
            return None;
        }
        self.props.push((name.into(), u32::MAX));
        Some(self.props.len() - 1)
    }
}

fn type_bit(t: &str) -> Option<u8> {
    Some(match t {
        "null" => NULL,
        "boolean" => BOOL,
        "integer" => INTEGER,
        "number" => NUMBER,
        "string" => STRING,
        "array" => ARRAY,
        "object" => OBJECT,
        _ => return None,
    })
}

fn lit(v: &Value) -> Option<Lit> {
    Some(match v {
        Value::String(s) => Lit::Str(s.as_str().into()),
        Value::Bool(b) => Lit::Bool(*b),
        Value::Null => Lit::Null,
        _ => return None,
    })
}

fn count(v: &Value) -> Option<usize> {
    v.as_u64().and_then(|n| usize::try_from(n).ok())
}

#[cfg(test)]
mod tests;
