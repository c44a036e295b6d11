//! A translated schema document made into the plan's nodes.

use std::collections::HashMap;

use jsonschema::Validator;
use serde_json::{Map, Value};

use super::*;

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

pub(super) struct Compiler<'a, 'b> {
    defs: Option<&'a Map<String, Value>>,
    done: HashMap<&'a str, u32>,
    nodes: Vec<Node>,
    delegate: Delegate<'b>,
}

impl<'a, 'b> Compiler<'a, 'b> {
    /// The plan of `doc` (see [`Plan::compile`]).
    pub(super) fn plan(doc: &'a Value, delegate: Delegate<'b>) -> Option<Plan> {
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
                        let at = n.prop(name)?;
                        n.props[at].schema = child;
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
            if n.props[k].schema == u32::MAX {
                n.props[k].schema = match n.additional {
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
