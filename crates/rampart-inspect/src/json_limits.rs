//! JSON threat limits: one pass of a byte scanner over a body as its frames arrive,
//! refusing as soon as a limit trips (next-wave.md §1b). It never builds the document and
//! holds no more than one running counter per open container plus a hash of each member
//! name of the open objects (to refuse duplicate names), all bounded by the limits, so a
//! hostile body costs bounded memory and time whatever its size.
//!
//! It closes the differentials that let one parser see another document than the
//! upstream does: duplicate member names (serde_json keeps the last, many parsers the
//! first), invalid UTF-8, lone surrogates in `\u` escapes, and anything after the
//! top-level value (RFC 8259 §2). Names are compared after escapes are decoded, so
//! `"a"` and `"\u0061"` are the same name.

use std::collections::HashSet;

use rampart_core::Problem;

use crate::openapi::tape::Entry;

mod number;
mod record;
mod string;

use number::NumberState;
use record::Recording;
use string::{StringStep, StringToken};

/// Limits on one JSON document. The defaults are generous: no ordinary API payload
/// comes near them, while a body built to exhaust a parser (deep nesting, millions of
/// members, one huge string) trips one early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Open arrays and objects at once.
    pub max_depth: u32,
    /// Members of one object.
    pub max_object_members: u32,
    /// Items of one array.
    pub max_array_items: u32,
    /// Members and items in the whole document.
    pub max_entries: u64,
    /// Bytes of one string value, after escapes are decoded.
    pub max_string_bytes: u32,
    /// Bytes of one member name, after escapes are decoded.
    pub max_name_bytes: u32,
    /// Characters of one number.
    pub max_number_bytes: u32,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_object_members: 10_000,
            max_array_items: 100_000,
            max_entries: 1_000_000,
            max_string_bytes: 1024 * 1024,
            max_name_bytes: 1024,
            max_number_bytes: 256,
        }
    }
}

/// Why a body was refused. Each has a stable reason code for logs and metrics; none
/// carries the offending bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonViolation {
    #[error("nested deeper than the limit")]
    Depth,
    #[error("an object has more members than the limit")]
    ObjectMembers,
    #[error("an array has more items than the limit")]
    ArrayItems,
    #[error("more entries than the limit")]
    Entries,
    #[error("a string is longer than the limit")]
    StringLength,
    #[error("a member name is longer than the limit")]
    NameLength,
    #[error("a number is longer than the limit")]
    NumberLength,
    #[error("an object names a member twice")]
    DuplicateName,
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("a \\u escape is a lone surrogate")]
    LoneSurrogate,
    #[error("not valid JSON")]
    Syntax,
    #[error("bytes after the JSON value")]
    TrailingData,
    #[error("the body ends inside the JSON value")]
    Truncated,
}

impl JsonViolation {
    /// The gateway's answer: 413 for a body refused for its size, 400 for its form. The
    /// problem's code (`json.depth`, …) is the reason code in logs and metrics.
    pub fn problem(self) -> Problem {
        match self {
            JsonViolation::Depth => Problem::JSON_DEPTH,
            JsonViolation::ObjectMembers => Problem::JSON_OBJECT_MEMBERS,
            JsonViolation::ArrayItems => Problem::JSON_ARRAY_ITEMS,
            JsonViolation::Entries => Problem::JSON_ENTRIES,
            JsonViolation::StringLength => Problem::JSON_STRING_LENGTH,
            JsonViolation::NameLength => Problem::JSON_NAME_LENGTH,
            JsonViolation::NumberLength => Problem::JSON_NUMBER_LENGTH,
            JsonViolation::DuplicateName => Problem::JSON_DUPLICATE_NAME,
            JsonViolation::InvalidUtf8 => Problem::JSON_INVALID_UTF8,
            JsonViolation::LoneSurrogate => Problem::JSON_LONE_SURROGATE,
            JsonViolation::Syntax => Problem::JSON_SYNTAX,
            JsonViolation::TrailingData => Problem::JSON_TRAILING_DATA,
            JsonViolation::Truncated => Problem::JSON_TRUNCATED,
        }
    }
}

/// An open array or object.
#[derive(Debug)]
struct Container {
    object: bool,
    /// Members or items so far.
    count: u32,
    /// Where this object's member-name hashes start in [`JsonScanner::names`].
    names_from: usize,
    /// An object past [`LINEAR_NAMES`] members: its names, hashed, for O(1) duplicate
    /// checks (a keyed hash set, so crafted names cannot make it slow).
    big: Option<HashSet<u64>>,
    /// Its entry in the recorded tape, when recording.
    entry: u32,
}

/// Up to this many members, an object's names are compared by a scan of their hashes
/// (no allocation; most objects have a handful of members).
const LINEAR_NAMES: usize = 16;

/// Where the scanner is in the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (the document's, an item's or a member's).
    Value,
    /// A value or `]` (just after `[`).
    ValueOrClose,
    /// A member name or `}` (just after `{`).
    NameOrClose,
    /// A member name (after `,` in an object).
    Name,
    /// `:` after a member name.
    Colon,
    /// `,` or the container's closer, after a value inside a container.
    CommaOrClose,
    /// Nothing but whitespace: the top-level value is complete.
    End,
}

/// A token being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    None,
    String(StringToken),
    Number {
        len: u32,
        state: NumberState,
    },
    /// `true`, `false` or `null`: the literal and how much of it has been read.
    Literal {
        word: &'static [u8],
        at: u8,
    },
}

/// Scans one JSON document fed in pieces. Feed every frame with [`JsonScanner::feed`],
/// then call [`JsonScanner::finish`]; the first violation is final.
#[derive(Debug)]
pub struct JsonScanner {
    limits: JsonLimits,
    stack: Vec<Container>,
    /// The member-name hashes of every open object, innermost last (each object's run
    /// starts at its `names_from`); cut back when an object closes.
    names: Vec<u64>,
    expect: Expect,
    token: Token,
    entries: u64,
    failed: Option<JsonViolation>,
    /// Whether any byte other than whitespace was seen.
    started: bool,
    /// Set by [`JsonScanner::record`].
    recording: Option<Box<Recording>>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl JsonScanner {
    pub fn new(limits: JsonLimits) -> Self {
        Self {
            limits,
            stack: Vec::new(),
            names: Vec::new(),
            expect: Expect::Value,
            token: Token::None,
            entries: 0,
            failed: None,
            started: false,
            recording: None,
        }
    }

    /// Whether the body so far starts like JSON (its first non-space byte opens an object
    /// or an array), so limits apply whatever the `Content-Type` says; `None` while only
    /// whitespace has arrived.
    pub fn looks_like_json(first: &[u8]) -> Option<bool> {
        first
            .iter()
            .find(|b| !is_space(**b))
            .map(|b| matches!(b, b'{' | b'['))
    }

    /// Scans the next piece of the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), JsonViolation> {
        if let Some(v) = self.failed {
            return Err(v);
        }
        if let Err(v) = self.scan(bytes) {
            self.failed = Some(v);
            return Err(v);
        }
        Ok(())
    }

    /// The byte loop, with fast paths for the runs that make up most of a document:
    /// plain string characters, digits and whitespace go by in bulk, everything else a
    /// byte at a time through the grammar.
    fn scan(&mut self, bytes: &[u8]) -> Result<(), JsonViolation> {
        // The offset in the whole body of this piece's first byte (the tape's offsets).
        let base = self.recording.as_ref().map_or(0, |r| r.base);
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            let run = match &mut self.token {
                Token::String(s) => s.plain_run(rest, &self.limits)?,
                Token::Number { len, state } if state.in_digits() => {
                    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                    if u64::from(*len) + n as u64 > u64::from(self.limits.max_number_bytes) {
                        return Err(JsonViolation::NumberLength);
                    }
                    *len += n as u32;
                    n
                }
                Token::None => rest.iter().take_while(|b| is_space(**b)).count(),
                _ => 0,
            };
            i += run;
            if let Some(&b) = bytes.get(i) {
                self.byte(b, base + i as u64)?;
                i += 1;
            }
        }
        if let Some(r) = &mut self.recording {
            r.base += bytes.len() as u64;
        }
        Ok(())
    }

    /// The body has ended: the document must be complete.
    pub fn finish(&mut self) -> Result<(), JsonViolation> {
        if let Some(v) = self.failed {
            return Err(v);
        }
        // A number is the only token that ends where the input ends.
        if let Token::Number { state, .. } = self.token {
            if !state.complete() {
                return Err(JsonViolation::Truncated);
            }
            self.token = Token::None;
            if let Some(r) = &self.recording {
                self.number_done(r.base);
            }
            self.value_done();
        }
        if self.token == Token::None && self.expect == Expect::End {
            Ok(())
        } else if !self.started {
            Err(JsonViolation::Syntax)
        } else {
            Err(JsonViolation::Truncated)
        }
    }

    /// One byte, at offset `at` of the body (for the tape).
    fn byte(&mut self, b: u8, at: u64) -> Result<(), JsonViolation> {
        match &mut self.token {
            Token::String(s) => {
                if b == b'\\' {
                    if let Some(r) = &mut self.recording {
                        r.escaped = true;
                    }
                }
                return match s.byte(b, &self.limits)? {
                    StringStep::More => Ok(()),
                    StringStep::Closed => {
                        let (name, hash) = (s.name, s.hash);
                        self.token = Token::None;
                        if self.recording.is_some() {
                            self.string_done(at);
                        }
                        if name {
                            self.name_done(hash)
                        } else {
                            self.value_done();
                            Ok(())
                        }
                    }
                };
            }
            &mut Token::Literal { word, at } => {
                if word[usize::from(at)] != b {
                    return Err(JsonViolation::Syntax);
                }
                let at = at + 1;
                if usize::from(at) == word.len() {
                    self.token = Token::None;
                    self.value_done();
                } else {
                    self.token = Token::Literal { word, at };
                }
                return Ok(());
            }
            &mut Token::Number { len, state } => {
                if let Some(next) = state.step(b) {
                    if len >= self.limits.max_number_bytes {
                        return Err(JsonViolation::NumberLength);
                    }
                    self.token = Token::Number {
                        len: len + 1,
                        state: next,
                    };
                    return Ok(());
                }
                if !state.complete() {
                    return Err(JsonViolation::Syntax);
                }
                // The byte ends the number; it is read as structure below.
                self.token = Token::None;
                if self.recording.is_some() {
                    self.number_done(at);
                }
                self.value_done();
            }
            Token::None => {}
        }
        if is_space(b) {
            return Ok(());
        }
        self.started = true;
        match self.expect {
            Expect::Value | Expect::ValueOrClose => {
                if b == b']' && self.expect == Expect::ValueOrClose {
                    return self.close(false);
                }
                self.value_start(b, at)
            }
            Expect::NameOrClose | Expect::Name => match b {
                b'"' => {
                    self.token = Token::String(StringToken::new(true));
                    self.token_start(at, 1);
                    Ok(())
                }
                b'}' if self.expect == Expect::NameOrClose => self.close(true),
                _ => Err(JsonViolation::Syntax),
            },
            Expect::Colon => {
                if b == b':' {
                    self.expect = Expect::Value;
                    Ok(())
                } else {
                    Err(JsonViolation::Syntax)
                }
            }
            Expect::CommaOrClose => {
                let object = self.stack.last().is_some_and(|c| c.object);
                match b {
                    b',' if object => {
                        self.expect = Expect::Name;
                        Ok(())
                    }
                    b',' => {
                        self.expect = Expect::Value;
                        self.count_item()
                    }
                    b'}' if object => self.close(true),
                    b']' if !object => self.close(false),
                    _ => Err(JsonViolation::Syntax),
                }
            }
            Expect::End => Err(JsonViolation::TrailingData),
        }
    }

    /// The first byte of a value.
    fn value_start(&mut self, b: u8, at: u64) -> Result<(), JsonViolation> {
        match b {
            b'{' | b'[' => {
                if self.stack.len() >= self.limits.max_depth as usize {
                    return Err(JsonViolation::Depth);
                }
                let object = b == b'{';
                let entry = self.container_entry();
                self.stack.push(Container {
                    object,
                    count: 0,
                    names_from: self.names.len(),
                    big: None,
                    entry,
                });
                if object {
                    self.expect = Expect::NameOrClose;
                    Ok(())
                } else {
                    self.expect = Expect::ValueOrClose;
                    // The first item is counted when the array opens (and uncounted by
                    // `close` if the array is empty); the others at their comma.
                    self.count_item()
                }
            }
            b'"' => {
                self.token = Token::String(StringToken::new(false));
                self.token_start(at, 1);
                Ok(())
            }
            b'-' | b'0'..=b'9' => {
                self.token = Token::Number {
                    len: 1,
                    state: NumberState::start(b),
                };
                self.token_start(at, 0);
                Ok(())
            }
            b't' | b'f' | b'n' => {
                let (word, entry): (&'static [u8], _) = match b {
                    b't' => (b"true", Entry::Bool(true)),
                    b'f' => (b"false", Entry::Bool(false)),
                    _ => (b"null", Entry::Null),
                };
                self.push(entry);
                self.token = Token::Literal { word, at: 1 };
                Ok(())
            }
            _ => Err(JsonViolation::Syntax),
        }
    }

    /// One more item in the innermost array.
    fn count_item(&mut self) -> Result<(), JsonViolation> {
        let limits = self.limits;
        let Some(c) = self.stack.last_mut() else {
            return Ok(());
        };
        c.count += 1;
        if c.count > limits.max_array_items {
            return Err(JsonViolation::ArrayItems);
        }
        self.entries += 1;
        if self.entries > limits.max_entries {
            return Err(JsonViolation::Entries);
        }
        Ok(())
    }

    /// Closes the innermost container (`}` when `object`).
    fn close(&mut self, object: bool) -> Result<(), JsonViolation> {
        let Some(c) = self.stack.pop() else {
            return Err(JsonViolation::Syntax);
        };
        if c.object != object {
            return Err(JsonViolation::Syntax);
        }
        self.names.truncate(c.names_from);
        let empty_array = !object && self.expect == Expect::ValueOrClose;
        if empty_array {
            // `[]`: the item counted when it opened was never there.
            self.entries -= 1;
        }
        self.container_done(c.entry, object, if empty_array { 0 } else { c.count });
        self.value_done();
        Ok(())
    }

    /// A value just ended: what may follow it.
    fn value_done(&mut self) {
        self.expect = if self.stack.is_empty() {
            Expect::End
        } else {
            Expect::CommaOrClose
        };
    }

    /// A member name (its hash) just ended: counted and checked against the object's
    /// others.
    fn name_done(&mut self, hash: u64) -> Result<(), JsonViolation> {
        let limits = self.limits;
        let Some(c) = self.stack.last_mut() else {
            return Err(JsonViolation::Syntax);
        };
        c.count += 1;
        if c.count > limits.max_object_members {
            return Err(JsonViolation::ObjectMembers);
        }
        self.entries += 1;
        if self.entries > limits.max_entries {
            return Err(JsonViolation::Entries);
        }
        let seen = &self.names[c.names_from..];
        let duplicate = match &mut c.big {
            Some(set) => !set.insert(hash),
            None if seen.len() < LINEAR_NAMES => seen.contains(&hash),
            None => {
                let mut set: HashSet<u64> = seen.iter().copied().collect();
                let duplicate = !set.insert(hash);
                c.big = Some(set);
                duplicate
            }
        };
        if duplicate {
            return Err(JsonViolation::DuplicateName);
        }
        if c.big.is_none() {
            self.names.push(hash);
        }
        self.expect = Expect::Colon;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
