//! `jsonschema`'s representation traits over a tape: nodes are (tape, index) pairs,
//! objects and arrays walk their subtrees, numbers are parsed when read.

use std::borrow::Cow;

use bytes::Bytes;
use jsonschema::json::{Array, Json, JsonNumber, Node, NodeIdentity, Object};
use jsonschema::types::JsonType;
use serde_json::Value;

use super::{Entry, Tape};

/// `jsonschema`'s view of the tape.
pub(crate) struct TapeJson;

/// One value of a tape.
#[derive(Clone, Copy)]
pub(crate) struct TapeNode<'a> {
    pub(super) tape: &'a Tape,
    pub(super) i: usize,
}

impl Json for TapeJson {
    type Node<'a> = TapeNode<'a>;
    type PreparedKey = String;
    type StringBuffer = ();
    // Objects are scanned, not hashed: a members pass is as cheap as a few lookups.
    const KEYS_PER_LOOKUP: usize = 4;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(TapeNode<'_>) -> T) -> T {
        let tape = Tape {
            text: Bytes::new(),
            entries: vec![Entry::Str {
                start: 0,
                end: string.len() as u32,
                escaped: true,
            }],
            decoded: string.as_bytes().to_vec(),
        };
        f(tape.root())
    }
}

impl<'a> TapeNode<'a> {
    fn entry(&self) -> Entry {
        self.tape.entries[self.i]
    }
}

impl<'a> Node<'a, TapeJson> for TapeNode<'a> {
    type Object = TapeObject<'a>;
    type Array = TapeArray<'a>;
    type Number = TapeNumber<'a>;

    fn as_object(&self) -> Option<TapeObject<'a>> {
        match self.entry() {
            Entry::Object { len, end } => Some(TapeObject {
                node: *self,
                len: len as usize,
                end: end as usize,
            }),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<TapeArray<'a>> {
        match self.entry() {
            Entry::Array { len, end } => Some(TapeArray {
                node: *self,
                len: len as usize,
                end: end as usize,
            }),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.entry() {
            Entry::Str {
                start,
                end,
                escaped,
            } => Some(Cow::Borrowed(self.tape.str_at(start, end, escaped))),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<TapeNumber<'a>> {
        match self.entry() {
            Entry::Number(s, e) => Some(TapeNumber(self.tape.str_at(s, e, false))),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.entry() {
            Entry::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.entry(), Entry::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.entry() {
            Entry::Null => JsonType::Null,
            Entry::Bool(_) => JsonType::Boolean,
            Entry::Number(..) => JsonType::Number,
            Entry::Str { .. } => JsonType::String,
            Entry::Array { .. } => JsonType::Array,
            Entry::Object { .. } => JsonType::Object,
        }
    }

    fn equals_value(&self, expected: &Value) -> bool {
        // `enum` and `const` against a string, a boolean or null: compared in place (the
        // default builds the instance as a `Value` first).
        match (self.entry(), expected) {
            (
                Entry::Str {
                    start,
                    end,
                    escaped,
                },
                Value::String(e),
            ) => self.tape.str_at(start, end, escaped) == e,
            (Entry::Bool(b), Value::Bool(e)) => b == *e,
            (Entry::Null, Value::Null) => true,
            // A scalar against a value of another type.
            (Entry::Str { .. } | Entry::Bool(_) | Entry::Null, _) => false,
            _ => jsonschema::json::cmp::equal(&self.to_value(), expected),
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(self.tape.to_value(self.i))
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::tagged(
            std::ptr::from_ref(self.tape) as usize,
            self.i as u32,
        ))
    }
}

/// A number's text; parsed when read.
pub(crate) struct TapeNumber<'a>(&'a str);

impl JsonNumber for TapeNumber<'_> {
    fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    fn as_f64(&self) -> Option<f64> {
        self.0.parse().ok()
    }

    fn as_str(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.0)
    }

    fn to_number(&self) -> Cow<'_, serde_json::Number> {
        Cow::Owned(
            self.0
                .parse()
                .unwrap_or_else(|_| serde_json::Number::from(0)),
        )
    }
}

pub(crate) struct TapeObject<'a> {
    node: TapeNode<'a>,
    len: usize,
    end: usize,
}

pub(crate) struct Members<'a> {
    tape: &'a Tape,
    at: usize,
    end: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, TapeNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.end {
            return None;
        }
        let name = match self.tape.entries[self.at] {
            Entry::Str {
                start,
                end,
                escaped,
            } => self.tape.str_at(start, end, escaped),
            _ => "",
        };
        let value = TapeNode {
            tape: self.tape,
            i: self.at + 1,
        };
        self.at = self.tape.after(self.at + 1);
        Some((name, value))
    }
}

impl<'a> Object<'a, TapeJson> for TapeObject<'a> {
    type Node = TapeNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, key: &String) -> Option<TapeNode<'a>> {
        self.members().find(|(n, _)| *n == key).map(|(_, v)| v)
    }

    fn members(&self) -> Members<'a> {
        Members {
            tape: self.node.tape,
            at: self.node.i + 1,
            end: self.end,
        }
    }
}

pub(crate) struct TapeArray<'a> {
    node: TapeNode<'a>,
    len: usize,
    end: usize,
}

pub(crate) struct Elements<'a> {
    tape: &'a Tape,
    at: usize,
    end: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = TapeNode<'a>;

    fn next(&mut self) -> Option<TapeNode<'a>> {
        if self.at >= self.end {
            return None;
        }
        let node = TapeNode {
            tape: self.tape,
            i: self.at,
        };
        self.at = self.tape.after(self.at);
        Some(node)
    }
}

impl<'a> Array<'a, TapeJson> for TapeArray<'a> {
    type Node = TapeNode<'a>;
    type ElementsIter = Elements<'a>;

    fn len(&self) -> usize {
        self.len
    }

    fn elements(&self) -> Elements<'a> {
        Elements {
            tape: self.node.tape,
            at: self.node.i + 1,
            end: self.end,
        }
    }

    fn is_unique(&self) -> bool {
        // Strings, booleans and nulls (tags, ids, flags: most `uniqueItems` arrays) are
        // compared in place, pairwise while short; anything else (numbers compare by
        // value, containers deeply) takes the default.
        const PAIRWISE: usize = 32;
        let entries = &self.node.tape.entries[self.node.i + 1..self.end];
        if self.len > PAIRWISE
            || entries.len() != self.len
            || !entries
                .iter()
                .all(|e| matches!(e, Entry::Str { .. } | Entry::Bool(_) | Entry::Null))
        {
            let values: Vec<Cow<'a, Value>> = self.elements().map(|e| e.to_value()).collect();
            return jsonschema::json::unique::is_unique(&values);
        }
        let key = |e: &Entry| match *e {
            Entry::Str {
                start,
                end,
                escaped,
            } => (0u8, self.node.tape.str_at(start, end, escaped)),
            Entry::Bool(b) => (1 + u8::from(b), ""),
            _ => (3, ""),
        };
        entries
            .iter()
            .enumerate()
            .all(|(i, a)| entries[i + 1..].iter().all(|b| key(a) != key(b)))
    }
}
