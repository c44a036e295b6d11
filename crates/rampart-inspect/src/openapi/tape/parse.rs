//! The tape's parser: one pass over the body, RFC 8259 grammar, escapes decoded into the
//! tape's side buffer, nesting bounded.

use super::{Entry, NotJson};

/// Nesting deeper than this is refused (the JSON limits, when on, refuse far earlier).
const MAX_DEPTH: usize = 512;

/// Bytes that end a run of plain string characters: `"`, `\\` and control characters.
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

pub(super) struct Parser<'b> {
    pub(super) b: &'b [u8],
    pub(super) at: usize,
    pub(super) entries: Vec<Entry>,
    pub(super) decoded: Vec<u8>,
}

impl Parser<'_> {
    pub(super) fn space(&mut self) {
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

    pub(super) fn value(&mut self, depth: usize) -> Result<(), NotJson> {
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
    pub(super) fn string(&mut self) -> Result<Entry, NotJson> {
        self.at += 1;
        let start = self.at;
        // The body is valid UTF-8 already: only quotes, backslashes and control
        // characters stop the run.
        let run = self.b[start..]
            .iter()
            .position(|&b| STOP[usize::from(b)])
            .ok_or(NotJson)?;
        self.at = start + run;
        match self.b[self.at] {
            b'"' => {
                let end = self.at;
                self.at += 1;
                return Ok(Entry::Str {
                    start: start as u32,
                    end: end as u32,
                    escaped: false,
                });
            }
            b'\\' => {}
            _ => return Err(NotJson),
        }
        // Escapes: decode the whole string into the tape's side buffer, a run of plain
        // characters at a time (the body is valid UTF-8, so the runs between ASCII
        // delimiters are too).
        let from = self.decoded.len();
        self.decoded.extend_from_slice(&self.b[start..self.at]);
        loop {
            match self.b.get(self.at).copied().ok_or(NotJson)? {
                b'"' => {
                    self.at += 1;
                    break;
                }
                b'\\' => {
                    let e = self.b.get(self.at + 1).copied().ok_or(NotJson)?;
                    self.at += 2;
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
                    let mut buf = [0u8; 4];
                    self.decoded
                        .extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(NotJson),
                _ => {
                    let run = self.b[self.at..]
                        .iter()
                        .position(|&b| STOP[usize::from(b)])
                        .ok_or(NotJson)?;
                    self.decoded
                        .extend_from_slice(&self.b[self.at..self.at + run]);
                    self.at += run;
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
