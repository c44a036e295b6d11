//! The plan run straight over a body's text, with no tape: for a body the JSON limits
//! scanned whole (so it is one valid JSON document, valid UTF-8, no member named twice),
//! the plan reads each value where it lies, checks it, and passes over the values it has
//! nothing to check in. No tape is recorded or read, no entry per value is written.
//!
//! As with the tape walk, only "valid" is ever the answer: anything the plan cannot settle
//! (a format or pattern it delegates is still asked, on a one-string tape) or that is not
//! what it expects gives `false`, and the body is then parsed and checked in full.

use bytes::Bytes;

use super::super::parse::Parser;
use super::{head, number_in, quick_email, HEAD_MASK};
use super::{Entry, Lit, Node, Plan, Tape, MAX_DEPTH};
use super::{ALSO, ARR, ENUM, NUM, OBJ, STR};
use super::{ARRAY, BOOL, INTEGER, NULL, NUMBER, OBJECT, STRING};

impl Plan {
    /// Whether `body`, which passed the JSON limits whole, is certainly valid (`false`:
    /// not valid, or not sure).
    pub(crate) fn accepts_text(&self, body: &Bytes) -> bool {
        let mut r = Reader { body, at: 0 };
        r.space();
        let Some(root) = self.nodes.first() else {
            return false;
        };
        r.value(self, root, 0) && {
            r.space();
            r.at == body.len()
        }
    }
}

/// A string value as read: in place, or decoded (it had escapes).
enum Text {
    Raw(usize, usize),
    Decoded(String),
}

struct Reader<'b> {
    body: &'b Bytes,
    at: usize,
}

impl Reader<'_> {
    fn space(&mut self) {
        while matches!(self.body.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.space();
        if self.body.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// The string whose opening quote is at `at`.
    fn string(&mut self) -> Option<Text> {
        let start = self.at + 1;
        let run = memchr::memchr2(b'"', b'\\', self.body.get(start..)?)?;
        if self.body[start + run] == b'"' {
            self.at = start + run + 1;
            return Some(Text::Raw(start, start + run));
        }
        // Escapes: decoded by the tape's own parser.
        let mut p = Parser {
            b: self.body,
            at: self.at,
            entries: Vec::new(),
            decoded: String::new(),
        };
        p.string().ok()?;
        self.at = p.at;
        Some(Text::Decoded(p.decoded))
    }

    fn bytes<'t>(&'t self, t: &'t Text) -> &'t [u8] {
        match t {
            Text::Raw(s, e) => self.body.get(*s..*e).unwrap_or_default(),
            Text::Decoded(d) => d.as_bytes(),
        }
    }

    /// A number or literal: its text (the grammar was checked by the JSON limits).
    fn scalar(&mut self) -> &[u8] {
        let start = self.at;
        while self
            .body
            .get(self.at)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
        {
            self.at += 1;
        }
        self.body.get(start..self.at).unwrap_or_default()
    }

    /// Passes over the value at `at`, nested containers and all.
    fn skip(&mut self) -> bool {
        let mut depth = 0usize;
        loop {
            self.space();
            match self.body.get(self.at) {
                Some(b'"') => {
                    if self.string().is_none() {
                        return false;
                    }
                }
                Some(b'{' | b'[') => {
                    depth += 1;
                    self.at += 1;
                }
                Some(b'}' | b']') => {
                    depth = depth.saturating_sub(1);
                    self.at += 1;
                }
                Some(b',' | b':') if depth > 0 => self.at += 1,
                Some(_) => {
                    if self.scalar().is_empty() {
                        return false;
                    }
                }
                None => return false,
            }
            if depth == 0 {
                return true;
            }
        }
    }

    /// The value at `at` (after whitespace) against `node`.
    fn value(&mut self, plan: &Plan, node: &Node, depth: u32) -> bool {
        self.space();
        let Some(&c) = self.body.get(self.at) else {
            return false;
        };
        if node.flags & ALSO != 0 {
            let Some(also) = node.also.and_then(|a| plan.nodes.get(a as usize)) else {
                return false;
            };
            let start = self.at;
            if depth > MAX_DEPTH || !self.value(plan, also, depth + 1) {
                return false;
            }
            self.at = start;
        }
        match c {
            b'{' => node.types & OBJECT != 0 && self.object(plan, node, depth),
            b'[' => node.types & ARRAY != 0 && self.array(plan, node, depth),
            b'"' => node.types & STRING != 0 && self.text(node),
            _ => {
                let s = self.scalar();
                let ok = match c {
                    b't' | b'f' => {
                        node.types & BOOL != 0 && node.in_enum_lit(&Lit::Bool(c == b't'))
                    }
                    b'n' => node.types & NULL != 0 && node.in_enum_lit(&Lit::Null),
                    _ => {
                        // `integer` alone: a fraction or an exponent is left to the full
                        // validator (`1.0` is an integer to it).
                        let typed = node.types & NUMBER != 0
                            || node.types & INTEGER != 0
                                && !s.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
                        typed
                            && node.flags & ENUM == 0
                            && (node.flags & NUM == 0 || number_in(s, &node.bounds))
                    }
                };
                ok && !s.is_empty()
            }
        }
    }

    fn text(&mut self, node: &Node) -> bool {
        let Some(t) = self.string() else {
            return false;
        };
        if node.flags & (ENUM | STR) == 0 {
            return true;
        }
        let s = self.bytes(&t);
        if node.flags & ENUM != 0
            && !node
                .enums
                .iter()
                .flatten()
                .any(|l| matches!(l, Lit::Str(e) if e.as_bytes() == s))
        {
            return false;
        }
        if node.flags & STR == 0 {
            return true;
        }
        if (node.min_len > 0 || s.len() > node.max_len)
            && !(node.min_len..=node.max_len)
                .contains(&s.iter().filter(|&&b| (b as i8) >= -0x40).count())
        {
            return false;
        }
        // What is delegated is asked on a tape of this one string.
        let one = || self.one(&t);
        if node.email && !quick_email(s) {
            if let Some(v) = &node.email_check {
                if !v.is_valid(one().root()) {
                    return false;
                }
            }
        }
        node.patterns
            .iter()
            .all(|p| match p.sequence.as_ref().and_then(|q| q.is_match(s)) {
                Some(m) => m,
                None => p.full.is_valid(one().root()),
            })
            && (node.checks.is_empty() || {
                let tape = one();
                node.checks.iter().all(|v| v.is_valid(tape.root()))
            })
    }

    /// A tape holding only the string `t`.
    fn one(&self, t: &Text) -> Tape {
        let (entry, decoded) = match t {
            Text::Raw(s, e) => (
                Entry::Str {
                    start: *s as u32,
                    end: *e as u32,
                    escaped: false,
                },
                String::new(),
            ),
            Text::Decoded(d) => (
                Entry::Str {
                    start: 0,
                    end: d.len() as u32,
                    escaped: true,
                },
                d.clone(),
            ),
        };
        Tape {
            text: self.body.clone(),
            entries: vec![entry],
            decoded,
        }
    }

    fn array(&mut self, plan: &Plan, node: &Node, depth: u32) -> bool {
        if node.flags & ENUM != 0 || depth > MAX_DEPTH {
            return false;
        }
        if node.flags & ARR == 0 {
            return self.skip();
        }
        self.at += 1;
        let items = node.items.and_then(|i| plan.nodes.get(i as usize));
        let mut len = 0usize;
        // A few strings, for `uniqueItems`.
        let mut seen: [(usize, usize); 16] = [(0, 0); 16];
        if !self.eat(b']') {
            loop {
                self.space();
                let start = self.at;
                let ok = match items {
                    Some(n) => self.value(plan, n, depth + 1),
                    None => self.skip(),
                };
                if !ok {
                    return false;
                }
                if node.unique {
                    // Only plain strings are compared here; anything else is left to the
                    // full validator.
                    let Some(Text::Raw(s, e)) = ({
                        let mut again = Reader {
                            body: self.body,
                            at: start,
                        };
                        (self.body.get(start) == Some(&b'"'))
                            .then(|| again.string())
                            .flatten()
                    }) else {
                        return false;
                    };
                    let this = self.body.get(s..e).unwrap_or_default();
                    if len >= seen.len()
                        || seen[..len]
                            .iter()
                            .any(|&(a, b)| self.body.get(a..b) == Some(this))
                    {
                        return false;
                    }
                    seen[len] = (s, e);
                }
                len += 1;
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b']') {
                    break;
                }
                return false;
            }
        }
        (node.min_items..=node.max_items).contains(&len)
    }

    fn object(&mut self, plan: &Plan, node: &Node, depth: u32) -> bool {
        if node.flags & ENUM != 0 || depth > MAX_DEPTH {
            return false;
        }
        if node.flags & OBJ == 0 {
            return self.skip();
        }
        self.at += 1;
        let (mut len, mut seen, mut from) = (0usize, 0u64, 0usize);
        if !self.eat(b'}') {
            loop {
                self.space();
                if self.body.get(self.at) != Some(&b'"') {
                    return false;
                }
                let Some(t) = self.string() else {
                    return false;
                };
                let name = self.bytes(&t);
                // The name's head read as one word when eight bytes follow its start.
                let word = match (&t, name.len()) {
                    (Text::Raw(s, _), n) => match self.body.get(*s..s + 8) {
                        Some(w) => {
                            let mut a = [0u8; 8];
                            a.copy_from_slice(w);
                            u64::from_le_bytes(a) & HEAD_MASK[n.min(8)]
                        }
                        None => head(name).1,
                    },
                    _ => head(name).1,
                };
                let schema = match node.find(name, word, from) {
                    Some(k) => {
                        seen |= 1 << k;
                        from = k + 1;
                        node.props.get(k).map(|p| p.1)
                    }
                    None => node.additional,
                };
                if !self.eat(b':') {
                    return false;
                }
                let ok = match schema.and_then(|s| plan.nodes.get(s as usize)) {
                    Some(n) => self.value(plan, n, depth + 1),
                    None if schema.is_some() => false,
                    None => self.skip(),
                };
                if !ok {
                    return false;
                }
                len += 1;
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b'}') {
                    break;
                }
                return false;
            }
        }
        (node.min_props..=node.max_props).contains(&len) && seen & node.required == node.required
    }
}
