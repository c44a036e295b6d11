//! Declarative operations on a JSON body (`routes[].transform.request_body` /
//! `response_body`): remove, rename, move, set and add members, applied in order to the
//! parsed tree. Paths are those of masking without `..` (`$.a.b`, `$['odd key']`, `[n]`,
//! `[*]`); `$` alone is the whole body, so `move: { from: $, to: $.data }` wraps a legacy
//! answer and `move: { from: $.data, to: $ }` unwraps one.
//!
//! The tree keeps members in their order (a reader of the rewritten body sees the
//! service's order, not a sorted one) and borrows names and strings from the body where
//! they hold no escape, so parsing a body allocates little more than its containers.
//! Nothing is interpreted per request: paths and templates are compiled at load.

use std::borrow::Cow;
use std::fmt;

use rampart_config::BodyOpSpec;
use rampart_core::{ExchangeCtx, PathParams};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::headers::Template;
use crate::path::Step;

/// A JSON value that keeps its members' order; names and strings borrow from the body
/// they were read from where they can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Node<'a>>),
    Obj(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    fn member_mut(&mut self, key: &str) -> Option<&mut Node<'a>> {
        match self {
            Node::Obj(m) => m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The member `key`, created as `{}` when absent (an object only).
    fn member_or_insert(&mut self, key: &str) -> Option<&mut Node<'a>> {
        let Node::Obj(m) = self else {
            return None;
        };
        let i = match m.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                m.push((Cow::Owned(key.to_owned()), Node::Obj(Vec::new())));
                m.len() - 1
            }
        };
        Some(&mut m[i].1)
    }
}

/// A member name, borrowed from the body when it holds no escape (serde's own
/// `Cow<str>` always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Node<'de>, E> {
                Ok(Node::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
                Ok(Node::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Node<'de>, E> {
                Ok(Node::Int(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Node<'de>, E> {
                Ok(Node::Uint(n))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Node<'de>, E> {
                Ok(Node::Float(n))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
                Ok(Node::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Node<'de>, E> {
                Ok(Node::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
                Ok(Node::Str(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node<'de>, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(4).min(1024));
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Node::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node<'de>, A::Error> {
                let mut m = Vec::with_capacity(8);
                while let Some((k, v)) = a.next_entry::<Key<'de>, Node<'de>>()? {
                    m.push((k.0, v));
                }
                Ok(Node::Obj(m))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Int(n) => s.serialize_i64(*n),
            Node::Uint(n) => s.serialize_u64(*n),
            Node::Float(n) => s.serialize_f64(*n),
            Node::Str(x) => s.serialize_str(x),
            Node::Arr(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Node::Obj(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl From<&serde_json::Value> for Node<'static> {
    fn from(v: &serde_json::Value) -> Node<'static> {
        use serde_json::Value as V;
        match v {
            V::Null => Node::Null,
            V::Bool(b) => Node::Bool(*b),
            V::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Node::Uint(u),
                (_, Some(i)) => Node::Int(i),
                _ => Node::Float(n.as_f64().unwrap_or(0.0)),
            },
            V::String(s) => Node::Str(Cow::Owned(s.clone())),
            V::Array(a) => Node::Arr(a.iter().map(Node::from).collect()),
            V::Object(o) => Node::Obj(
                o.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), v.into()))
                    .collect(),
            ),
        }
    }
}

/// A compiled path: steps below the root (`$` alone has none).
type Path = Vec<Step>;

/// A value to write: a constant, or a string from a template.
#[derive(Debug)]
enum Value {
    Const(Node<'static>),
    Template(Template),
}

/// One compiled operation.
#[derive(Debug)]
enum Op {
    Remove(Path),
    Rename(Path, String),
    Move(Path, Path),
    Set(Path, Value),
    Add(Path, Value),
}

/// A compiled list of operations.
#[derive(Debug, Default)]
pub(crate) struct BodyOps {
    ops: Vec<Op>,
}

impl BodyOps {
    pub(crate) fn compile(
        specs: &[BodyOpSpec],
        params: &PathParams,
        at: &str,
        errors: &mut Vec<rampart_config::ConfigError>,
    ) -> BodyOps {
        let mut ops = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("{at}[{i}]");
            match compile_op(spec, params) {
                Ok(op) => ops.push(op),
                Err((field, e)) => {
                    errors.push(rampart_config::ConfigError::new(format!("{at}.{field}"), e))
                }
            }
        }
        BodyOps { ops }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Whether a template of these operations reads a path parameter.
    pub(crate) fn uses_params(&self) -> bool {
        self.ops.iter().any(|op| {
            matches!(op, Op::Set(_, Value::Template(t)) | Op::Add(_, Value::Template(t)) if t.uses_params())
        })
    }

    /// The template values of this exchange, one per operation (`None` for an operation
    /// without a template, or a template without a value). Rendered when the exchange is
    /// known, so the body can be rewritten later without it. `path` is the normalised
    /// path the route matched.
    pub(crate) fn render(&self, cx: &ExchangeCtx, path: &str) -> Vec<Option<String>> {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Set(_, Value::Template(t)) | Op::Add(_, Value::Template(t)) => {
                    let mut out = String::new();
                    t.render_into(cx, path, &mut out).map(|()| out)
                }
                _ => None,
            })
            .collect()
    }

    /// Applies every operation in order, with the values [`BodyOps::render`] gave.
    pub(crate) fn apply<'a>(&self, root: &mut Node<'a>, rendered: &[Option<String>]) {
        for (i, op) in self.ops.iter().enumerate() {
            match op {
                Op::Remove(p) => {
                    let _ = take(root, p);
                }
                Op::Rename(p, to) => rename(root, p, to),
                Op::Move(from, to) => {
                    if let Some(v) = take(root, from) {
                        put(root, to, v, true);
                    }
                }
                Op::Set(p, v) | Op::Add(p, v) => {
                    let replace = matches!(op, Op::Set(..));
                    match v {
                        Value::Const(n) => put(root, p, n.clone(), replace),
                        Value::Template(_) => match rendered.get(i).cloned().flatten() {
                            Some(s) => put(root, p, Node::Str(Cow::Owned(s)), replace),
                            // No value: a `set` removes the member, so a caller's value
                            // never stands in for the gateway's.
                            None if replace => {
                                let _ = take(root, p);
                            }
                            None => {}
                        },
                    }
                }
            }
        }
    }
}

fn compile_op(spec: &BodyOpSpec, params: &PathParams) -> Result<Op, (&'static str, String)> {
    let path = |field: &'static str, text: &str, any_ok: bool| -> Result<Path, (&str, String)> {
        let steps = crate::path::parse(text).map_err(|e| (field, format!("{text:?}: {e}")))?;
        let mut out = Vec::with_capacity(steps.len());
        for (descend, step) in steps {
            if descend {
                return Err((
                    field,
                    format!("{text:?}: `..` is for masking; name the member's place"),
                ));
            }
            if step == Step::Any && !any_ok {
                return Err((
                    field,
                    format!("{text:?}: `*` cannot name one place to write to"),
                ));
            }
            out.push(step);
        }
        Ok(out)
    };
    let value = |v: &serde_json::Value| -> Result<Value, (&'static str, String)> {
        match v {
            serde_json::Value::String(s) if s.contains("{{") => Template::parse(s, params)
                .map(Value::Template)
                .map_err(|e| ("value", e)),
            v => Ok(Value::Const(Node::from(v))),
        }
    };
    Ok(match spec {
        BodyOpSpec::Remove(p) => {
            let p = path("remove", p, true)?;
            if p.is_empty() {
                return Err((
                    "remove",
                    "`$` is the whole body; it cannot be removed".into(),
                ));
            }
            Op::Remove(p)
        }
        BodyOpSpec::Rename { path: p, to } => {
            let p = path("rename.path", p, true)?;
            if !matches!(p.last(), Some(Step::Key(_))) {
                return Err(("rename.path", "must end in a member name".into()));
            }
            if to.is_empty() {
                return Err(("rename.to", "must be a member name".into()));
            }
            Op::Rename(p, to.clone())
        }
        BodyOpSpec::Move { from, to } => {
            let f = path("move.from", from, false)?;
            let t = path("move.to", to, false)?;
            if t.len() > f.len() && t[..f.len()] == f[..] && !f.is_empty() {
                return Err(("move.to", "is inside `from`".into()));
            }
            Op::Move(f, t)
        }
        BodyOpSpec::Set { path: p, value: v } => Op::Set(path("set.path", p, true)?, value(v)?),
        BodyOpSpec::Add { path: p, value: v } => Op::Add(path("add.path", p, true)?, value(v)?),
    })
}

/// The nodes a path's parent steps reach (every element for `*`), each with the last step.
fn visit<'n, 'a>(
    node: &'n mut Node<'a>,
    steps: &[Step],
    f: &mut dyn FnMut(&'n mut Node<'a>, &Step),
) {
    let Some((first, rest)) = steps.split_first() else {
        return;
    };
    if rest.is_empty() {
        return f(node, first);
    }
    match (first, node) {
        (Step::Key(k), n) => {
            if let Some(child) = std::str::from_utf8(k).ok().and_then(|k| n.member_mut(k)) {
                visit(child, rest, f);
            }
        }
        (Step::Index(i), Node::Arr(v)) => {
            if let Some(child) = v.get_mut(*i as usize) {
                visit(child, rest, f);
            }
        }
        (Step::Any, Node::Arr(v)) => v.iter_mut().for_each(|c| visit(c, rest, f)),
        (Step::Any, Node::Obj(m)) => m.iter_mut().for_each(|(_, c)| visit(c, rest, f)),
        _ => {}
    }
}

fn key(k: &[u8]) -> &str {
    // Paths are parsed from config text, so their names are UTF-8.
    std::str::from_utf8(k).unwrap_or("")
}

/// Removes what `path` names; returns it when it names one place (no `*`).
fn take<'a>(root: &mut Node<'a>, path: &[Step]) -> Option<Node<'a>> {
    if path.is_empty() {
        return Some(std::mem::replace(root, Node::Obj(Vec::new())));
    }
    let mut taken = None;
    visit(root, path, &mut |parent, last| match (last, parent) {
        (Step::Key(k), Node::Obj(m)) => {
            if let Some(i) = m.iter().position(|(n, _)| n == key(k)) {
                taken = Some(m.remove(i).1);
            }
        }
        (Step::Index(i), Node::Arr(v)) if (*i as usize) < v.len() => {
            taken = Some(v.remove(*i as usize));
        }
        (Step::Any, Node::Arr(v)) => v.clear(),
        (Step::Any, Node::Obj(m)) => m.clear(),
        _ => {}
    });
    taken
}

fn rename(root: &mut Node<'_>, path: &[Step], to: &str) {
    visit(root, path, &mut |parent, last| {
        if let (Step::Key(k), Node::Obj(m)) = (last, parent) {
            if let Some(i) = m.iter().position(|(n, _)| n == key(k)) {
                // The new name replaces a member already called that, in place of the old.
                if let Some(j) = m.iter().position(|(n, _)| n == to).filter(|j| *j != i) {
                    m.remove(j);
                }
                if let Some(e) = m.iter_mut().find(|(n, _)| n == key(k)) {
                    e.0 = Cow::Owned(to.to_owned());
                }
            }
        }
    });
}

/// Writes `value` at `path`, creating objects on the way (not through arrays). With
/// `replace` false, an existing member is kept.
fn put<'a>(root: &mut Node<'a>, path: &[Step], value: Node<'a>, replace: bool) {
    let Some((last, parents)) = path.split_last() else {
        if replace {
            *root = value;
        }
        return;
    };
    let mut targets: Vec<&mut Node<'a>> = Vec::new();
    collect_or_create(root, parents, &mut targets);
    for t in targets {
        match (last, t) {
            (Step::Key(k), Node::Obj(m)) => match m.iter_mut().find(|(n, _)| n == key(k)) {
                Some(e) if replace => e.1 = value.clone(),
                Some(_) => {}
                None => m.push((Cow::Owned(key(k).to_owned()), value.clone())),
            },
            (Step::Index(i), Node::Arr(v)) if replace && (*i as usize) < v.len() => {
                v[*i as usize] = value.clone();
            }
            (Step::Any, Node::Arr(v)) if replace => v.iter_mut().for_each(|e| *e = value.clone()),
            (Step::Any, Node::Obj(m)) if replace => {
                m.iter_mut().for_each(|(_, e)| *e = value.clone())
            }
            _ => {}
        }
    }
}

fn collect_or_create<'n, 'a>(
    node: &'n mut Node<'a>,
    steps: &[Step],
    out: &mut Vec<&'n mut Node<'a>>,
) {
    let Some((first, rest)) = steps.split_first() else {
        out.push(node);
        return;
    };
    match (first, node) {
        (Step::Key(k), n) => {
            if let Some(child) = n.member_or_insert(key(k)) {
                collect_or_create(child, rest, out);
            }
        }
        (Step::Index(i), Node::Arr(v)) => {
            if let Some(child) = v.get_mut(*i as usize) {
                collect_or_create(child, rest, out);
            }
        }
        (Step::Any, Node::Arr(v)) => v.iter_mut().for_each(|c| collect_or_create(c, rest, out)),
        (Step::Any, Node::Obj(m)) => m
            .iter_mut()
            .for_each(|(_, c)| collect_or_create(c, rest, out)),
        _ => {}
    }
}

/// For the fuzz target (`fuzz/fuzz_targets/body_ops.rs`): runs a fixed list of every
/// operation, on wildcard and indexed paths, over `body` read as JSON; what comes out is
/// JSON again. Panics on a broken property.
#[doc(hidden)]
pub fn fuzz_body_ops(body: &[u8]) {
    let specs: Vec<BodyOpSpec> = serde_json::from_value(serde_json::json!([
        { "remove": "$.a[*].b" },
        { "remove": "$[0]" },
        { "rename": { "path": "$.*.c", "to": "d" } },
        { "rename": { "path": "$.x", "to": "y" } },
        { "move": { "from": "$.a[1]", "to": "$.m.n" } },
        { "move": { "from": "$.y", "to": "$" } },
        { "set": { "path": "$.s[*].t", "value": { "k": [1, "v"] } } },
        { "add": { "path": "$.p.q", "value": "w" } },
        { "move": { "from": "$", "to": "$.wrap" } },
        { "set": { "path": "$.wrap.id", "value": "{{ route }}" } },
    ]))
    .expect("the fuzz operations parse");
    let mut errors = Vec::new();
    let ops = BodyOps::compile(&specs, &PathParams::default(), "fuzz", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let Ok(mut root) = serde_json::from_slice::<Node<'_>>(body) else {
        return;
    };
    ops.apply(&mut root, &vec![None; ops.ops.len()]);
    let out = serde_json::to_vec(&root).expect("a tree writes as JSON");
    let back: serde_json::Value = serde_json::from_slice(&out).expect("what is written is JSON");
    assert!(
        back.get("wrap").is_some(),
        "the last move wraps the body: {back}"
    );
}

#[cfg(test)]
mod tests;
