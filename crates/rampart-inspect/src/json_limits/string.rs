//! A JSON string being read (RFC 8259 §7): escapes decoded, UTF-8 checked (RFC 3629 §4),
//! `\u` surrogates paired, decoded bytes counted against the limit, and a member name
//! hashed as it is decoded.

use super::{JsonLimits, JsonViolation};

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// FNV-1a's offset basis: the hash of an empty name.
pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Bytes that stand for themselves inside a string: printable ASCII but `"` and `\`.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x80 {
        t[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

/// Where in an escape the string is.
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

/// The state of one string (a value or a member name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StringToken {
    pub(super) name: bool,
    /// Decoded bytes so far.
    len: u32,
    escape: Escape,
    /// A high surrogate waiting for its low half (`\uD83D\uDE00`).
    high: Option<u16>,
    /// UTF-8 continuation bytes still expected, and the allowed range of the next one
    /// (no overlongs, no surrogates, nothing above U+10FFFF).
    utf8_left: u8,
    utf8_lo: u8,
    utf8_hi: u8,
    /// FNV-1a of the decoded bytes (names only).
    pub(super) hash: u64,
}

/// What one byte did to the string.
pub(super) enum StringStep {
    More,
    /// The closing quote.
    Closed,
}

impl StringToken {
    pub(super) fn new(name: bool) -> Self {
        Self {
            name,
            len: 0,
            escape: Escape::None,
            high: None,
            utf8_left: 0,
            utf8_lo: 0,
            utf8_hi: 0,
            hash: FNV_OFFSET,
        }
    }

    /// Takes the run of plain characters (printable ASCII other than `"` and `\`, and
    /// whole UTF-8 sequences) at the start of `bytes` in one step, when no escape or UTF-8
    /// sequence is open; returns how many bytes it took (the rest go through
    /// [`StringToken::byte`], which also reads a sequence split across pieces).
    pub(super) fn plain_run(
        &mut self,
        bytes: &[u8],
        limits: &JsonLimits,
    ) -> Result<usize, JsonViolation> {
        if self.utf8_left > 0 || self.escape != Escape::None || self.high.is_some() {
            return Ok(0);
        }
        let mut n = bytes
            .iter()
            .position(|&b| !PLAIN[usize::from(b)])
            .unwrap_or(bytes.len());
        if bytes.get(n).is_some_and(|&b| b >= 0x80) {
            n = utf8_run(bytes, n);
        }
        self.decoded(&bytes[..n], limits)?;
        Ok(n)
    }

    /// The next byte of the string, after its opening quote.
    pub(super) fn byte(&mut self, b: u8, limits: &JsonLimits) -> Result<StringStep, JsonViolation> {
        // Inside a multi-byte UTF-8 sequence.
        if self.utf8_left > 0 {
            if b < self.utf8_lo || b > self.utf8_hi {
                return Err(JsonViolation::InvalidUtf8);
            }
            self.expect_utf8(self.utf8_left - 1, 0x80, 0xBF);
            return self.decoded(&[b], limits).map(|()| StringStep::More);
        }
        match self.escape {
            Escape::Backslash => {
                let decoded = match b {
                    b'"' | b'\\' | b'/' => b,
                    b'b' => 0x08,
                    b'f' => 0x0C,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        self.escape = Escape::Unicode { left: 4, value: 0 };
                        return Ok(StringStep::More);
                    }
                    _ => return Err(JsonViolation::Syntax),
                };
                if self.high.is_some() {
                    return Err(JsonViolation::LoneSurrogate);
                }
                self.escape = Escape::None;
                return self.decoded(&[decoded], limits).map(|()| StringStep::More);
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
                    self.escape = Escape::Unicode {
                        left: left - 1,
                        value,
                    };
                    return Ok(StringStep::More);
                }
                self.escape = Escape::None;
                return self.code_unit(value, limits).map(|()| StringStep::More);
            }
            Escape::None => {}
        }
        // A high surrogate must be followed at once by `\u` and its low half.
        if self.high.is_some() && b != b'\\' {
            return Err(JsonViolation::LoneSurrogate);
        }
        // For a UTF-8 lead byte: the continuation bytes it needs, and the range of the
        // first of them (RFC 3629 §4).
        let lead = match b {
            b'"' => return Ok(StringStep::Closed),
            b'\\' => {
                self.escape = Escape::Backslash;
                return Ok(StringStep::More);
            }
            // RFC 8259 §7: control characters must be escaped.
            0x00..=0x1F => return Err(JsonViolation::Syntax),
            0x20..=0x7F => None,
            _ => Some(utf8_lead(b).ok_or(JsonViolation::InvalidUtf8)?),
        };
        if let Some((left, lo, hi)) = lead {
            self.expect_utf8(left, lo, hi);
        }
        self.decoded(&[b], limits).map(|()| StringStep::More)
    }

    fn expect_utf8(&mut self, left: u8, lo: u8, hi: u8) {
        self.utf8_left = left;
        self.utf8_lo = lo;
        self.utf8_hi = hi;
    }

    /// Decoded bytes: counted, and hashed when this is a name.
    fn decoded(&mut self, bytes: &[u8], limits: &JsonLimits) -> Result<(), JsonViolation> {
        // Saturating: a run of bytes is at most one frame, and the limit is below 2^30.
        self.len = self
            .len
            .saturating_add(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        if self.name {
            if self.len > limits.max_name_bytes {
                return Err(JsonViolation::NameLength);
            }
            for &b in bytes {
                self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
        } else if self.len > limits.max_string_bytes {
            return Err(JsonViolation::StringLength);
        }
        Ok(())
    }

    /// A `\uXXXX` code unit: paired surrogates become one code point.
    fn code_unit(&mut self, unit: u16, limits: &JsonLimits) -> Result<(), JsonViolation> {
        let code = match (self.high, unit) {
            (None, 0xD800..=0xDBFF) => {
                self.high = Some(unit);
                return Ok(());
            }
            (None, 0xDC00..=0xDFFF) => return Err(JsonViolation::LoneSurrogate),
            (None, u) => u32::from(u),
            (Some(h), 0xDC00..=0xDFFF) => {
                0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(unit) - 0xDC00)
            }
            (Some(_), _) => return Err(JsonViolation::LoneSurrogate),
        };
        self.high = None;
        let c = char::from_u32(code).ok_or(JsonViolation::LoneSurrogate)?;
        let mut buf = [0u8; 4];
        self.decoded(c.encode_utf8(&mut buf).as_bytes(), limits)
    }
}

/// Where a run of plain characters that reached a byte of a multi-byte character at `n`
/// ends: whole, valid UTF-8 sequences and printable ASCII go on, anything else (a broken
/// or cut-off sequence, an escape, the closing quote) ends it and is read byte by byte,
/// which gives the same first fault and the same count.
#[inline(never)]
fn utf8_run(bytes: &[u8], mut n: usize) -> usize {
    while let Some(&b) = bytes.get(n) {
        if PLAIN[usize::from(b)] {
            n += 1;
            continue;
        }
        match utf8_char(bytes.get(n..).unwrap_or_default()) {
            Some(len) => n += len,
            None => break,
        }
    }
    n
}

/// The length of the valid UTF-8 sequence of two to four bytes that `bytes` starts with
/// (RFC 3629 §4: no overlongs, no surrogates, nothing above U+10FFFF), when it is whole.
#[inline]
fn utf8_char(bytes: &[u8]) -> Option<usize> {
    let (&lead, rest) = bytes.split_first()?;
    let (more, lo, hi) = utf8_lead(lead)?;
    let tail = rest.get(..usize::from(more))?;
    let ok = (lo..=hi).contains(&tail[0]) && tail[1..].iter().all(|&b| (0x80..=0xBF).contains(&b));
    ok.then_some(1 + usize::from(more))
}

/// For a UTF-8 lead byte (RFC 3629 §4): how many continuation bytes follow, and the range
/// the first of them must be in (the others are 0x80..=0xBF), which rules out overlongs,
/// surrogates and code points above U+10FFFF; `None` for a byte that cannot lead.
#[inline]
fn utf8_lead(b: u8) -> Option<(u8, u8, u8)> {
    Some(match b {
        0xC2..=0xDF => (1, 0x80, 0xBF),
        0xE0 => (2, 0xA0, 0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
        0xED => (2, 0x80, 0x9F),
        0xF0 => (3, 0x90, 0xBF),
        0xF1..=0xF3 => (3, 0x80, 0xBF),
        0xF4 => (3, 0x80, 0x8F),
        _ => return None,
    })
}
