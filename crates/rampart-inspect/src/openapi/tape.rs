//! A request body read for schema validation as a flat tape: one entry per value, in
//! document order, pointing into the body's own bytes. No allocation per value (a
//! `serde_json::Value` costs one per string, array and object, and a hash-map insert per
//! member), strings borrowed from the body unless they hold escapes. The validator walks
//! it through `jsonschema`'s representation traits.

mod nodes;
mod parse;
mod plan;
#[cfg(test)]
pub(crate) mod tests;

use bytes::Bytes;
use serde_json::Value;

pub(crate) use nodes::TapeJson;
use nodes::TapeNode;
use parse::Parser;
pub(crate) use plan::Plan;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Entry {
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

/// A tape as the JSON limits scanner recorded it: the entries, and the indexes of the
/// strings among them with escapes (still to decode, see [`Tape::recorded`]).
#[derive(Debug, Default)]
pub(crate) struct TapeEntries {
    pub(crate) entries: Vec<Entry>,
    pub(crate) escaped: Vec<u32>,
}

/// A parsed body.
#[derive(Debug)]
pub(crate) struct Tape {
    /// The body, valid UTF-8 (checked whole by [`Tape::parse`]; a recorded body was
    /// checked by the JSON limits as it arrived), shared, not copied.
    text: Bytes,
    entries: Vec<Entry>,
    /// Strings with escapes, decoded (valid UTF-8: decoded from a valid body).
    decoded: Vec<u8>,
}

/// The body is not JSON.
#[derive(Debug)]
pub(crate) struct NotJson;

impl Tape {
    pub(crate) fn parse(body: &Bytes) -> Result<Tape, NotJson> {
        std::str::from_utf8(body).map_err(|_| NotJson)?;
        let text = body.clone();
        if text.len() > u32::MAX as usize {
            return Err(NotJson);
        }
        let mut p = Parser {
            b: &text,
            at: 0,
            entries: Vec::with_capacity(text.len() / 8 + 4),
            decoded: Vec::new(),
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

    /// The tape of a body whose entries the JSON limits scanner recorded as the body
    /// arrived ([`crate::JsonScanner::record`]): no second parse, only the strings with
    /// escapes decoded.
    pub(crate) fn recorded(body: &Bytes, recorded: TapeEntries) -> Result<Tape, NotJson> {
        let TapeEntries {
            mut entries,
            escaped,
        } = recorded;
        // Its strings' UTF-8 was checked as they arrived, and nothing else but ASCII
        // passes the scanner: the body is not checked again here.
        let text = body.clone();
        if text.len() > u32::MAX as usize || entries.is_empty() {
            return Err(NotJson);
        }
        let mut p = Parser {
            b: &text,
            at: 0,
            entries: Vec::new(),
            decoded: Vec::new(),
        };
        for i in escaped {
            let e = entries.get_mut(i as usize).ok_or(NotJson)?;
            let Entry::Str { start, end, .. } = *e else {
                return Err(NotJson);
            };
            // Decoding never lengthens a string: one allocation, mostly.
            p.decoded.reserve(end.saturating_sub(start) as usize);
            // From the opening quote.
            p.at = (start as usize).checked_sub(1).ok_or(NotJson)?;
            *e = p.string()?;
        }
        let decoded = p.decoded;
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
        if escaped {
            return self
                .decoded
                .get(s..e)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("");
        }
        // Ranges start and end at ASCII (quotes, digits) of a valid UTF-8 body, so the
        // slice is valid UTF-8 too (checked again, as it costs little: no `unsafe`).
        self.text
            .get(s..e)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The bytes the strings' ranges point into: the body, or (`escaped`) the decoded
    /// strings.
    fn source(&self, escaped: bool) -> &[u8] {
        if escaped {
            &self.decoded
        } else {
            &self.text
        }
    }

    /// The bytes of a string (see [`Tape::str_at`]).
    fn bytes_at(&self, start: u32, end: u32, escaped: bool) -> &[u8] {
        self.source(escaped)
            .get(start as usize..end as usize)
            .unwrap_or(b"")
    }

    /// Whether an object of the document names a member twice (parsers disagree on
    /// which one counts, so a body that does is refused whenever the JSON limits, which
    /// refuse it as it arrives, are off).
    pub(crate) fn has_duplicate_names(&self) -> bool {
        let mut names: Vec<&str> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let Entry::Object { len, end } = *e else {
                continue;
            };
            names.clear();
            let mut j = i + 1;
            while j < end as usize {
                if let Entry::Str {
                    start,
                    end,
                    escaped,
                } = self.entries[j]
                {
                    names.push(self.str_at(start, end, escaped));
                }
                j = self.after(j + 1);
            }
            if len > 1 {
                names.sort_unstable();
                if names.windows(2).any(|w| w[0] == w[1]) {
                    return true;
                }
            }
        }
        false
    }

    /// Calls `f` with every string of the document, member names included, in document
    /// order: the JSON pointer of the value (of the member, for a name), the string, and
    /// whether it is a member name.
    pub(crate) fn strings(&self, mut f: impl FnMut(&str, &str, bool)) {
        let mut pointer = String::new();
        self.walk(0, &mut pointer, &mut f);
    }

    fn walk(&self, i: usize, pointer: &mut String, f: &mut impl FnMut(&str, &str, bool)) {
        match self.entries[i] {
            Entry::Str {
                start,
                end,
                escaped,
            } => f(pointer, self.str_at(start, end, escaped), false),
            Entry::Array { end, .. } => {
                let (mut j, mut n) = (i + 1, 0usize);
                while j < end as usize {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(itoa::Buffer::new().format(n));
                    self.walk(j, pointer, f);
                    pointer.truncate(len);
                    j = self.after(j);
                    n += 1;
                }
            }
            Entry::Object { end, .. } => {
                let mut j = i + 1;
                while j < end as usize {
                    let len = pointer.len();
                    pointer.push('/');
                    if let Entry::Str {
                        start,
                        end,
                        escaped,
                    } = self.entries[j]
                    {
                        let name = self.str_at(start, end, escaped);
                        for c in name.chars() {
                            match c {
                                '~' => pointer.push_str("~0"),
                                '/' => pointer.push_str("~1"),
                                c => pointer.push(c),
                            }
                        }
                        f(pointer, name, true);
                    }
                    self.walk(j + 1, pointer, f);
                    pointer.truncate(len);
                    j = self.after(j + 1);
                }
            }
            _ => {}
        }
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
