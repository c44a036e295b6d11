//! A request body read for schema validation as a flat tape: one entry per value, in
//! document order, pointing into the body's own bytes. No allocation per value (a
//! `serde_json::Value` costs one per string, array and object, and a hash-map insert per
//! member), strings borrowed from the body unless they hold escapes. The validator walks
//! it through `jsonschema`'s representation traits.

use std::borrow::Cow;

use bytes::Bytes;
use jsonschema::json::{Array, Json, JsonNumber, Node, NodeIdentity, Object};
use jsonschema::types::JsonType;
use serde_json::Value;

/// Nesting deeper than this is refused (the JSON limits, when on, refuse far earlier).
const MAX_DEPTH: usize = 512;

#[derive(Debug, Clone, Copy)]
enum Entry {
    Null,
    Bool(bool),
    /// Byte range of the number's text in the body.
    Number(u32, u32),
    /// Byte range of the string in the body (`escaped`: in the tape's decoded strings).
    Str {
        start: u32,
        end: u32,
        escaped: bool,
    },
    /// `end`: the index just past the array's subtree.
    Array {
        len: u32,
        end: u32,
    },
    /// Members are a name entry (`Str`) then the value's subtree.
    Object {
        len: u32,
        end: u32,
    },
}

/// A parsed body.
#[derive(Debug)]
pub(crate) struct Tape {
    /// The body, checked as UTF-8 once (a copy: slicing a `str` then costs nothing).
    text: String,
    entries: Vec<Entry>,
    /// Strings with escapes, decoded.
    decoded: String,
}

/// The body is not JSON.
#[derive(Debug)]
pub(crate) struct NotJson;

impl Tape {
    pub(crate) fn parse(body: &Bytes) -> Result<Tape, NotJson> {
        let text = String::from_utf8(body.to_vec()).map_err(|_| NotJson)?;
        if text.len() > u32::MAX as usize {
            return Err(NotJson);
        }
        let mut p = Parser {
            b: text.as_bytes(),
            at: 0,
            entries: Vec::with_capacity(text.len() / 8 + 4),
            decoded: String::new(),
        };
        p.value(0)?;
        p.space();
        if p.at != p.b.len() {
            return Err(NotJson);
        }
        let (entries, decoded) = (p.entries, p.decoded);
        Ok(Tape {
            text,
            entries,
            decoded,
        })
    }

    pub(crate) fn root(&self) -> TapeNode<'_> {
        TapeNode { tape: self, i: 0 }
    }

    fn str_at(&self, start: u32, end: u32, escaped: bool) -> &str {
        let (s, e) = (start as usize, end as usize);
        // Ranges start and end at ASCII (quotes, digits), so always on char boundaries.
        let all = if escaped { &self.decoded } else { &self.text };
        all.get(s..e).unwrap_or("")
    }

    /// The index just past entry `i`'s subtree.
    fn after(&self, i: usize) -> usize {
        match self.entries[i] {
            Entry::Array { end, .. } | Entry::Object { end, .. } => end as usize,
            _ => i + 1,
        }
    }

    fn to_value(&self, i: usize) -> Value {
        match self.entries[i] {
            Entry::Null => Value::Null,
            Entry::Bool(b) => Value::Bool(b),
            Entry::Number(s, e) => self
                .str_at(s, e, false)
                .parse::<serde_json::Number>()
                .map_or(Value::Null, Value::Number),
            Entry::Str {
                start,
                end,
                escaped,
            } => Value::String(self.str_at(start, end, escaped).to_owned()),
            Entry::Array { end, .. } => {
                let mut out = Vec::new();
                let mut j = i + 1;
                while j < end as usize {
                    out.push(self.to_value(j));
                    j = self.after(j);
                }
                Value::Array(out)
            }
            Entry::Object { end, .. } => {
                let mut out = serde_json::Map::new();
                let mut j = i + 1;
                while j < end as usize {
                    let name = match self.entries[j] {
                        Entry::Str {
                            start,
                            end,
                            escaped,
                        } => self.str_at(start, end, escaped).to_owned(),
                        _ => String::new(),
                    };
                    out.insert(name, self.to_value(j + 1));
                    j = self.after(j + 1);
                }
                Value::Object(out)
            }
        }
    }
}

struct Parser<'b> {
    b: &'b [u8],
    at: usize,
    entries: Vec<Entry>,
    decoded: String,
}

impl Parser<'_> {
    fn space(&mut self) {
        while matches!(self.b.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.space();
        if self.b.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), NotJson> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        self.space();
        match self.b.get(self.at).copied().ok_or(NotJson)? {
            b'{' => self.container(depth, true),
            b'[' => self.container(depth, false),
            b'"' => {
                let e = self.string()?;
                self.entries.push(e);
                Ok(())
            }
            b't' => self.literal(b"true", Entry::Bool(true)),
            b'f' => self.literal(b"false", Entry::Bool(false)),
            b'n' => self.literal(b"null", Entry::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(NotJson),
        }
    }

    fn container(&mut self, depth: usize, object: bool) -> Result<(), NotJson> {
        self.at += 1;
        let me = self.entries.len();
        self.entries.push(Entry::Null);
        let close = if object { b'}' } else { b']' };
        let mut len = 0u32;
        if !self.eat(close) {
            loop {
                if object {
                    self.space();
                    if self.b.get(self.at) != Some(&b'"') {
                        return Err(NotJson);
                    }
                    let name = self.string()?;
                    self.entries.push(name);
                    if !self.eat(b':') {
                        return Err(NotJson);
                    }
                }
                self.value(depth + 1)?;
                len += 1;
                if self.eat(b',') {
                    continue;
                }
                if self.eat(close) {
                    break;
                }
                return Err(NotJson);
            }
        }
        let end = self.entries.len() as u32;
        self.entries[me] = if object {
            Entry::Object { len, end }
        } else {
            Entry::Array { len, end }
        };
        Ok(())
    }

    fn literal(&mut self, word: &[u8], e: Entry) -> Result<(), NotJson> {
        if self.b[self.at..].starts_with(word) {
            self.at += word.len();
            self.entries.push(e);
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    fn number(&mut self) -> Result<(), NotJson> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while p.b.get(p.at).is_some_and(u8::is_ascii_digit) {
                p.at += 1;
            }
            p.at > from
        };
        if self.b[self.at] == b'-' {
            self.at += 1;
        }
        match self.b.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(NotJson),
        }
        if self.b.get(self.at) == Some(&b'.') {
            self.at += 1;
            if !digits(self) {
                return Err(NotJson);
            }
        }
        if matches!(self.b.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.b.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !digits(self) {
                return Err(NotJson);
            }
        }
        self.entries
            .push(Entry::Number(start as u32, self.at as u32));
        Ok(())
    }

    /// A string starting at the opening quote.
    fn string(&mut self) -> Result<Entry, NotJson> {
        self.at += 1;
        let start = self.at;
        loop {
            match self.b.get(self.at).copied().ok_or(NotJson)? {
                b'"' => {
                    let end = self.at;
                    self.at += 1;
                    return Ok(Entry::Str {
                        start: start as u32,
                        end: end as u32,
                        escaped: false,
                    });
                }
                b'\\' => break,
                0..=0x1f => return Err(NotJson),
                _ => self.at += 1,
            }
        }
        // Escapes: decode the whole string into the tape's side buffer.
        let from = self.decoded.len();
        let plain = std::str::from_utf8(&self.b[start..self.at]).map_err(|_| NotJson)?;
        self.decoded.push_str(plain);
        loop {
            let c = self.b.get(self.at).copied().ok_or(NotJson)?;
            self.at += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.b.get(self.at).copied().ok_or(NotJson)?;
                    self.at += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return Err(NotJson),
                    };
                    self.decoded.push(ch);
                }
                0..=0x1f => return Err(NotJson),
                _ => {
                    // Copy the run up to the next quote or backslash.
                    let run_start = self.at - 1;
                    while !matches!(self.b.get(self.at), Some(b'"' | b'\\') | None) {
                        self.at += 1;
                    }
                    let run = &self.b[run_start..self.at];
                    if run.iter().any(|b| *b < 0x20) {
                        return Err(NotJson);
                    }
                    self.decoded
                        .push_str(std::str::from_utf8(run).map_err(|_| NotJson)?);
                }
            }
        }
        Ok(Entry::Str {
            start: from as u32,
            end: self.decoded.len() as u32,
            escaped: true,
        })
    }

    fn hex4(&mut self) -> Result<u32, NotJson> {
        let h = self.b.get(self.at..self.at + 4).ok_or(NotJson)?;
        let s = std::str::from_utf8(h).map_err(|_| NotJson)?;
        let v = u32::from_str_radix(s, 16).map_err(|_| NotJson)?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return Err(NotJson);
        }
        self.at += 4;
        Ok(v)
    }

    /// After `\u`: one code point (a surrogate pair takes two escapes).
    fn unicode(&mut self) -> Result<char, NotJson> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if self.b.get(self.at..self.at + 2) != Some(b"\\u") {
                return Err(NotJson);
            }
            self.at += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(NotJson);
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or(NotJson)
    }
}

/// `jsonschema`'s view of the tape.
pub(crate) struct TapeJson;

/// One value of a tape.
#[derive(Clone, Copy)]
pub(crate) struct TapeNode<'a> {
    tape: &'a Tape,
    i: usize,
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
            text: String::new(),
            entries: vec![Entry::Str {
                start: 0,
                end: string.len() as u32,
                escaped: true,
            }],
            decoded: string.to_owned(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(doc: &str) -> Value {
        let tape = Tape::parse(&Bytes::from(doc.to_owned())).expect(doc);
        tape.to_value(0)
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for doc in [
            r#"{"a":[1,-2.5e3,true,false,null,"x"],"b":{"c":{}},"d":[],"e":"caf\u00e9 \"q\" \n"}"#,
            r#"  [ {"k" : "\ud83d\ude00"} , 0 , "plain" ]  "#,
            "\"just a string\"",
            "12",
        ] {
            assert_eq!(
                round_trip(doc),
                serde_json::from_str::<Value>(doc).unwrap(),
                "{doc}"
            );
        }
    }

    #[test]
    fn agrees_with_serde_json_on_generated_documents() {
        // Pseudo-random documents, written compact and pretty: same value back.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        fn gen(next: &mut impl FnMut() -> u64, depth: u32) -> Value {
            match next() % if depth > 4 { 5 } else { 7 } {
                0 => Value::Null,
                1 => Value::Bool(next() % 2 == 0),
                2 => Value::from(next() as i64 >> (next() % 60)),
                3 => Value::from((next() % 100_000) as f64 / 7.0),
                4 => {
                    let s: String = (0..next() % 12)
                        .map(|_| {
                            ['a', 'é', '"', '\\', '\n', '😀', '\u{1}', ' '][(next() % 8) as usize]
                        })
                        .collect();
                    Value::String(s)
                }
                5 => Value::Array((0..next() % 5).map(|_| gen(next, depth + 1)).collect()),
                _ => Value::Object(
                    (0..next() % 5)
                        .map(|i| (format!("k{i}\u{e9}"), gen(next, depth + 1)))
                        .collect(),
                ),
            }
        }
        for _ in 0..2000 {
            let v = gen(&mut next, 0);
            for text in [v.to_string(), serde_json::to_string_pretty(&v).unwrap()] {
                assert_eq!(round_trip(&text), v, "{text}");
            }
        }
    }

    #[test]
    fn refuses_what_is_not_json() {
        for doc in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "\"\\x\"",
            "\"\u{1}\"",
            "[1] 2",
            "{a:1}",
            "\"\\ud800\"",
            "tru",
            "1e",
        ] {
            assert!(
                Tape::parse(&Bytes::from(doc.to_owned())).is_err(),
                "{doc:?}"
            );
        }
    }

    #[test]
    fn walks_objects_and_arrays() {
        let tape =
            Tape::parse(&Bytes::from_static(br#"{"a":{"x":[1,[2,3],{}]},"b":"y"}"#)).unwrap();
        let root = tape.root();
        let obj = root.as_object().unwrap();
        assert_eq!(obj.len(), 2);
        let names: Vec<&str> = obj.members().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b"]);
        let b = obj.get(&"b".to_string()).unwrap();
        assert_eq!(b.as_string().as_deref(), Some("y"));
        let x = obj
            .get(&"a".to_string())
            .unwrap()
            .as_object()
            .unwrap()
            .get(&"x".to_string())
            .unwrap();
        let items: Vec<JsonType> = x
            .as_array()
            .unwrap()
            .elements()
            .map(|n| n.json_type())
            .collect();
        assert_eq!(items, [JsonType::Number, JsonType::Array, JsonType::Object]);
    }
}
