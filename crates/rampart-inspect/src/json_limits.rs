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
    /// The stable reason code, e.g. `json.depth`.
    pub fn code(self) -> &'static str {
        match self {
            JsonViolation::Depth => "json.depth",
            JsonViolation::ObjectMembers => "json.object_members",
            JsonViolation::ArrayItems => "json.array_items",
            JsonViolation::Entries => "json.entries",
            JsonViolation::StringLength => "json.string_length",
            JsonViolation::NameLength => "json.name_length",
            JsonViolation::NumberLength => "json.number_length",
            JsonViolation::DuplicateName => "json.duplicate_name",
            JsonViolation::InvalidUtf8 => "json.invalid_utf8",
            JsonViolation::LoneSurrogate => "json.lone_surrogate",
            JsonViolation::Syntax => "json.syntax",
            JsonViolation::TrailingData => "json.trailing_data",
            JsonViolation::Truncated => "json.truncated",
        }
    }

    /// Whether the body is refused for its size (413) rather than its form (400).
    pub fn is_size(self) -> bool {
        matches!(
            self,
            JsonViolation::Depth
                | JsonViolation::ObjectMembers
                | JsonViolation::ArrayItems
                | JsonViolation::Entries
                | JsonViolation::StringLength
                | JsonViolation::NameLength
                | JsonViolation::NumberLength
        )
    }
}

/// An open array or object.
#[derive(Debug)]
struct Container {
    object: bool,
    /// Members or items so far.
    count: u32,
    /// Hashes of the member names so far (objects only; empty for arrays, so an array
    /// costs no allocation).
    names: HashSet<u64>,
}

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

/// Inside a string: where in an escape or a UTF-8 sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After `\`.
    Backslash,
    /// In `\uXXXX`: digits still to read, and the value so far.
    Unicode {
        left: u8,
        value: u16,
    },
}

/// A token being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    None,
    String {
        name: bool,
        /// Decoded bytes so far.
        len: u32,
        escape: Escape,
        /// A high surrogate waiting for its low half (`\uD83D\uDE00`).
        high: Option<u16>,
        /// UTF-8 continuation bytes still expected, and the allowed range of the next
        /// one (RFC 3629 §4: no overlongs, no surrogates, nothing above U+10FFFF).
        utf8_left: u8,
        utf8_lo: u8,
        utf8_hi: u8,
    },
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

/// RFC 8259 §6 number grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberState {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl NumberState {
    /// Whether a number may end here.
    fn complete(self) -> bool {
        matches!(
            self,
            NumberState::Zero | NumberState::Int | NumberState::Frac | NumberState::Exp
        )
    }
}

/// Scans one JSON document fed in pieces. Feed every frame with [`JsonScanner::feed`],
/// then call [`JsonScanner::finish`]; the first violation is final.
#[derive(Debug)]
pub struct JsonScanner {
    limits: JsonLimits,
    stack: Vec<Container>,
    expect: Expect,
    token: Token,
    entries: u64,
    /// FNV-1a of the member name being read (decoded bytes).
    name_hash: u64,
    failed: Option<JsonViolation>,
    /// Whether any byte other than whitespace was seen.
    started: bool,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl JsonScanner {
    pub fn new(limits: JsonLimits) -> Self {
        Self {
            limits,
            stack: Vec::new(),
            expect: Expect::Value,
            token: Token::None,
            entries: 0,
            name_hash: FNV_OFFSET,
            failed: None,
            started: false,
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
        for &b in bytes {
            if let Err(v) = self.byte(b) {
                self.failed = Some(v);
                return Err(v);
            }
        }
        Ok(())
    }

    /// The body has ended: the document must be complete.
    pub fn finish(mut self) -> Result<(), JsonViolation> {
        if let Some(v) = self.failed {
            return Err(v);
        }
        // A number is the only token that ends where the input ends.
        if let Token::Number { state, .. } = self.token {
            if !state.complete() {
                return Err(JsonViolation::Truncated);
            }
            self.token = Token::None;
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

    fn byte(&mut self, b: u8) -> Result<(), JsonViolation> {
        match self.token {
            Token::String { .. } => return self.string_byte(b),
            Token::Literal { word, at } => {
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
            Token::Number { len, state } => {
                if let Some(next) = number_step(state, b) {
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
                self.value_start(b)
            }
            Expect::NameOrClose | Expect::Name => match b {
                b'"' => {
                    self.name_hash = FNV_OFFSET;
                    self.token = Token::String {
                        name: true,
                        len: 0,
                        escape: Escape::None,
                        high: None,
                        utf8_left: 0,
                        utf8_lo: 0,
                        utf8_hi: 0,
                    };
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
    fn value_start(&mut self, b: u8) -> Result<(), JsonViolation> {
        match b {
            b'{' | b'[' => {
                if self.stack.len() >= self.limits.max_depth as usize {
                    return Err(JsonViolation::Depth);
                }
                let object = b == b'{';
                self.stack.push(Container {
                    object,
                    count: 0,
                    names: HashSet::new(),
                });
                if object {
                    self.expect = Expect::NameOrClose;
                    Ok(())
                } else {
                    self.expect = Expect::ValueOrClose;
                    // The first item is counted as it starts; the others at their comma.
                    self.peek_first_item()
                }
            }
            b'"' => {
                self.token = Token::String {
                    name: false,
                    len: 0,
                    escape: Escape::None,
                    high: None,
                    utf8_left: 0,
                    utf8_lo: 0,
                    utf8_hi: 0,
                };
                Ok(())
            }
            b'-' | b'0'..=b'9' => {
                self.token = Token::Number {
                    len: 1,
                    state: match b {
                        b'-' => NumberState::Minus,
                        b'0' => NumberState::Zero,
                        _ => NumberState::Int,
                    },
                };
                Ok(())
            }
            b't' | b'f' | b'n' => {
                let word: &'static [u8] = match b {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                self.token = Token::Literal { word, at: 1 };
                Ok(())
            }
            _ => Err(JsonViolation::Syntax),
        }
    }

    /// An array was just opened: its first item, if any, is counted when the array is
    /// known not to be empty, which is when a value starts in it. Counting happens here
    /// for simplicity: an empty array is uncounted by `close`.
    fn peek_first_item(&mut self) -> Result<(), JsonViolation> {
        self.count_item()
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
        if !object && self.expect == Expect::ValueOrClose {
            // `[]`: the item counted when it opened was never there.
            self.entries -= 1;
        }
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

    /// A member name just ended: counted and checked against the object's others.
    fn name_done(&mut self) -> Result<(), JsonViolation> {
        let limits = self.limits;
        let hash = self.name_hash;
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
        if !c.names.insert(hash) {
            return Err(JsonViolation::DuplicateName);
        }
        self.expect = Expect::Colon;
        Ok(())
    }

    /// One decoded byte of the string being read: counted, and hashed when it is a name.
    fn decoded(&mut self, bytes: &[u8]) -> Result<(), JsonViolation> {
        let Token::String { name, len, .. } = &mut self.token else {
            return Ok(());
        };
        *len += bytes.len() as u32;
        if *name {
            if *len > self.limits.max_name_bytes {
                return Err(JsonViolation::NameLength);
            }
            for &b in bytes {
                self.name_hash = (self.name_hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
        } else if *len > self.limits.max_string_bytes {
            return Err(JsonViolation::StringLength);
        }
        Ok(())
    }

    fn string_byte(&mut self, b: u8) -> Result<(), JsonViolation> {
        let Token::String {
            name,
            escape,
            high,
            utf8_left,
            utf8_lo,
            utf8_hi,
            ..
        } = self.token
        else {
            return Ok(());
        };
        // Inside a multi-byte UTF-8 sequence.
        if utf8_left > 0 {
            if b < utf8_lo || b > utf8_hi {
                return Err(JsonViolation::InvalidUtf8);
            }
            self.set_utf8(utf8_left - 1, 0x80, 0xBF);
            return self.decoded(&[b]);
        }
        match escape {
            Escape::Backslash => {
                let decoded = match b {
                    b'"' | b'\\' | b'/' => b,
                    b'b' => 0x08,
                    b'f' => 0x0C,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        self.set_escape(Escape::Unicode { left: 4, value: 0 });
                        return Ok(());
                    }
                    _ => return Err(JsonViolation::Syntax),
                };
                if high.is_some() {
                    return Err(JsonViolation::LoneSurrogate);
                }
                self.set_escape(Escape::None);
                return self.decoded(&[decoded]);
            }
            Escape::Unicode { left, value } => {
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    b'A'..=b'F' => b - b'A' + 10,
                    _ => return Err(JsonViolation::Syntax),
                };
                let value = (value << 4) | u16::from(digit);
                if left > 1 {
                    self.set_escape(Escape::Unicode {
                        left: left - 1,
                        value,
                    });
                    return Ok(());
                }
                self.set_escape(Escape::None);
                return self.code_unit(value);
            }
            Escape::None => {}
        }
        // A high surrogate must be followed at once by `\u` and its low half.
        if high.is_some() && b != b'\\' {
            return Err(JsonViolation::LoneSurrogate);
        }
        match b {
            b'"' => {
                self.token = Token::None;
                if name {
                    self.name_done()
                } else {
                    self.value_done();
                    Ok(())
                }
            }
            b'\\' => {
                self.set_escape(Escape::Backslash);
                Ok(())
            }
            // RFC 8259 §7: control characters must be escaped.
            0x00..=0x1F => Err(JsonViolation::Syntax),
            0x20..=0x7F => self.decoded(&[b]),
            // RFC 3629 §4 lead bytes, with the range of the byte after each.
            0xC2..=0xDF => self.lead(b, 1, 0x80, 0xBF),
            0xE0 => self.lead(b, 2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => self.lead(b, 2, 0x80, 0xBF),
            0xED => self.lead(b, 2, 0x80, 0x9F),
            0xF0 => self.lead(b, 3, 0x90, 0xBF),
            0xF1..=0xF3 => self.lead(b, 3, 0x80, 0xBF),
            0xF4 => self.lead(b, 3, 0x80, 0x8F),
            _ => Err(JsonViolation::InvalidUtf8),
        }
    }

    fn lead(&mut self, b: u8, left: u8, lo: u8, hi: u8) -> Result<(), JsonViolation> {
        self.set_utf8(left, lo, hi);
        self.decoded(&[b])
    }

    /// A `\uXXXX` code unit: paired surrogates become one code point.
    fn code_unit(&mut self, unit: u16) -> Result<(), JsonViolation> {
        let Token::String { high, .. } = self.token else {
            return Ok(());
        };
        let code = match (high, unit) {
            (None, 0xD800..=0xDBFF) => {
                self.set_high(Some(unit));
                return Ok(());
            }
            (None, 0xDC00..=0xDFFF) => return Err(JsonViolation::LoneSurrogate),
            (None, u) => u32::from(u),
            (Some(h), 0xDC00..=0xDFFF) => {
                0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(unit) - 0xDC00)
            }
            (Some(_), _) => return Err(JsonViolation::LoneSurrogate),
        };
        self.set_high(None);
        let c = char::from_u32(code).ok_or(JsonViolation::LoneSurrogate)?;
        let mut buf = [0u8; 4];
        self.decoded(c.encode_utf8(&mut buf).as_bytes())
    }

    fn set_escape(&mut self, e: Escape) {
        if let Token::String { escape, .. } = &mut self.token {
            *escape = e;
        }
    }

    fn set_high(&mut self, h: Option<u16>) {
        if let Token::String { high, .. } = &mut self.token {
            *high = h;
        }
    }

    fn set_utf8(&mut self, left: u8, lo: u8, hi: u8) {
        if let Token::String {
            utf8_left,
            utf8_lo,
            utf8_hi,
            ..
        } = &mut self.token
        {
            *utf8_left = left;
            *utf8_lo = lo;
            *utf8_hi = hi;
        }
    }
}

/// The number grammar's next state after `b`, or `None` when `b` cannot continue it.
fn number_step(state: NumberState, b: u8) -> Option<NumberState> {
    use NumberState::*;
    Some(match (state, b) {
        (Minus, b'0') => Zero,
        (Minus, b'1'..=b'9') => Int,
        (Int, b'0'..=b'9') => Int,
        (Zero | Int, b'.') => Dot,
        (Zero | Int | Frac, b'e' | b'E') => E,
        (Dot | Frac, b'0'..=b'9') => Frac,
        (E, b'+' | b'-') => ESign,
        (E | ESign | Exp, b'0'..=b'9') => Exp,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
