//! Personal and secret data in text: detectors that validate before they report, so a
//! number that merely looks like a card is left alone (issue "Data protection", §1 and
//! §3). Each finds its kind anywhere in a string (a JSON string value, a path segment,
//! a log field) and reports byte ranges; the masking filter and the log redactor decide
//! what to do with them. No detector allocates per character or backtracks: each is one
//! forward scan over the text with bounded look-around.
//!
//! | kind | what is reported |
//! |---|---|
//! | `card` | 13–19 digits (single spaces or dashes between groups) passing Luhn, starting 2–6 |
//! | `iban` | an IBAN (groups of four allowed) with its country's length and mod-97 check |
//! | `email` | `local@domain.tld`, a dot-separated domain with a letter TLD |
//! | `phone` | an E.164 number: `+`, 8–15 digits (single spaces or dashes between groups) |
//! | `ssn` | a US SSN `AAA-GG-SSSS` with a valid area, group and serial |
//! | `jwt` | three base64url segments whose header decodes to a JSON object with `alg` |
//! | `api_key` | a token with a known provider prefix and enough entropy after it |
//! | `ip` | an IPv4 (four octets) or IPv6 address |

use std::net::Ipv6Addr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// What a detector looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    Card,
    Iban,
    Email,
    Phone,
    Ssn,
    Jwt,
    ApiKey,
    Ip,
}

impl PiiKind {
    pub const ALL: [PiiKind; 8] = [
        PiiKind::Card,
        PiiKind::Iban,
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::Ssn,
        PiiKind::Jwt,
        PiiKind::ApiKey,
        PiiKind::Ip,
    ];

    /// The name in config and logs (`card`, `api_key`, …).
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Card => "card",
            PiiKind::Iban => "iban",
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Ssn => "ssn",
            PiiKind::Jwt => "jwt",
            PiiKind::ApiKey => "api_key",
            PiiKind::Ip => "ip",
        }
    }

    pub fn from_name(name: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One finding: its kind and where it is (`start..end`, bytes, on char boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

mod shape;
pub use shape::Shape;

/// Every finding of `kinds` in `text`, in order and without overlaps (where two overlap,
/// the one that starts first wins, then the longer), appended to `out`.
pub fn find_all(text: &str, kinds: &[PiiKind], out: &mut Vec<Found>) {
    let from = out.len();
    let b = text.as_bytes();
    let shape = Shape::of(b);
    for &kind in kinds {
        if !shape.may_hold(kind) {
            continue;
        }
        match kind {
            PiiKind::Card => digit_runs(b, false, |s, e, digits| {
                (13..=19).contains(&digits.len())
                    && matches!(digits[0], b'2'..=b'6')
                    && luhn(digits)
                    && push(out, kind, s, e)
            }),
            PiiKind::Phone => digit_runs(b, true, |s, e, digits| {
                (8..=15).contains(&digits.len()) && digits[0] != b'0' && push(out, kind, s, e)
            }),
            PiiKind::Iban => iban(b, |s, e| push(out, kind, s, e)),
            PiiKind::Email => email(b, |s, e| push(out, kind, s, e)),
            PiiKind::Ssn => ssn(b, |s, e| push(out, kind, s, e)),
            PiiKind::Jwt => jwt(b, |s, e| push(out, kind, s, e)),
            PiiKind::ApiKey => api_key(b, |s, e| push(out, kind, s, e)),
            PiiKind::Ip => ip(text, |s, e| push(out, kind, s, e)),
        }
    }
    out[from..].sort_by_key(|f| (f.start, usize::MAX - f.end));
    let mut keep = from;
    let mut end = 0;
    for i in from..out.len() {
        if out[i].start >= end {
            end = out[i].end;
            out[keep] = out[i];
            keep += 1;
        }
    }
    out.truncate(keep);
}

/// Whether the whole of `value` is one `kind` (a field that holds exactly a card number).
pub fn is(kind: PiiKind, value: &str) -> bool {
    let mut found = Vec::new();
    find_all(value, &[kind], &mut found);
    matches!(found.as_slice(), [f] if f.start == 0 && f.end == value.len())
}

/// Whether `text` could hold any finding at all: an `@`, a `:`, four digits, `eyJ` (a
/// JWT), or a token of 20 letters, digits, `_` and `-` (a key). Most paths hold none,
/// and are then not scanned.
pub fn might_hold(text: &str) -> bool {
    let b = text.as_bytes();
    let mut digits = 0;
    let mut token = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'@' | b':' => return true,
            b'J' if i >= 2 && &b[i - 2..i] == b"ey" => return true,
            b'0'..=b'9' => {
                digits += 1;
                token += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'-' => token += 1,
            _ => token = 0,
        }
        if digits >= 4 || token >= 20 {
            return true;
        }
    }
    false
}

/// Appends `text` to `o`, JSON-escaped, with each finding of `kinds` replaced by its
/// kind in brackets (`[email]`, `[card]`); true when something was masked.
pub fn write_masked(o: &mut String, text: &str, kinds: &[PiiKind]) -> bool {
    if !might_hold(text) {
        crate::json_escape_into(o, text);
        return false;
    }
    let mut found = Vec::new();
    find_all(text, kinds, &mut found);
    let mut at = 0;
    for f in &found {
        crate::json_escape_into(o, &text[at..f.start]);
        o.push('[');
        o.push_str(f.kind.name());
        o.push(']');
        at = f.end;
    }
    crate::json_escape_into(o, &text[at..]);
    !found.is_empty()
}

fn push(out: &mut Vec<Found>, kind: PiiKind, start: usize, end: usize) -> bool {
    out.push(Found { kind, start, end });
    true
}

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `text[i]` starts a token: nothing word-like right before it.
fn starts(b: &[u8], i: usize) -> bool {
    i == 0 || !word(b[i - 1])
}

/// A token ends before `text[i]`: nothing word-like right after it.
fn ends(b: &[u8], i: usize) -> bool {
    i >= b.len() || !word(b[i])
}

/// Luhn's checksum over ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Runs of digits with single spaces or dashes between groups (`4111 1111 1111 1111`),
/// standing alone (no digit, letter or `.` digit right around them); with `plus`, only
/// runs right after a `+` (which the range includes). `f(start, end, digits)`.
fn digit_runs(b: &[u8], plus: bool, mut f: impl FnMut(usize, usize, &[u8]) -> bool) {
    let mut buf = [0u8; 20];
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let first = if plus {
            if b[i] != b'+' || !starts(b, i) || !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i += 1;
                continue;
            }
            i + 1
        } else {
            if !b[i].is_ascii_digit() || !starts(b, i) || (i > 0 && b[i - 1] == b'.') {
                i += 1;
                continue;
            }
            i
        };
        let mut n = 0;
        let mut j = first;
        let mut end = first;
        while j < b.len() && n <= 19 {
            if b[j].is_ascii_digit() {
                buf[n] = b[j];
                n += 1;
                j += 1;
                end = j;
            } else if matches!(b[j], b' ' | b'-') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
                j += 1;
            } else {
                break;
            }
        }
        let alone = ends(b, end)
            && !(b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit));
        // Reported or not, the run is done with: a part of a longer number is not a
        // number of its own.
        if alone {
            f(start, end, &buf[..n]);
        }
        i = end.max(first + 1);
    }
}

/// IBANs: two capital letters, two check digits, then letters and digits, compact or in
/// groups of four separated by single spaces.
fn iban(b: &[u8], mut f: impl FnMut(usize, usize) -> bool) {
    let mut compact = [0u8; 34];
    let mut i = 0;
    while i + 4 <= b.len() {
        if !(b[i].is_ascii_uppercase()
            && b[i + 1].is_ascii_uppercase()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && starts(b, i))
        {
            i += 1;
            continue;
        }
        let mut n = 0;
        let mut j = i;
        let mut end = i;
        let mut group = 0;
        while j < b.len() && n < 34 {
            let c = b[j];
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                compact[n] = c;
                n += 1;
                group += 1;
                j += 1;
                end = j;
            } else if c == b' '
                && group == 4
                && b.get(j + 1).is_some_and(|n| n.is_ascii_alphanumeric())
            {
                group = 0;
                j += 1;
            } else {
                break;
            }
        }
        let valid =
            std::str::from_utf8(&compact[..n]).is_ok_and(|c| c.parse::<iban::Iban>().is_ok());
        if ends(b, end) && valid && f(i, end) {
            i = end;
        } else {
            i += 1;
        }
    }
}

fn local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// `local@domain.tld` around each `@`.
fn email(b: &[u8], mut f: impl FnMut(usize, usize) -> bool) {
    let mut after = 0;
    for at in 0..b.len() {
        if b[at] != b'@' || at < after {
            continue;
        }
        let mut s = at;
        while s > after && local_char(b[s - 1]) && at - s < 64 {
            s -= 1;
        }
        while s < at && matches!(b[s], b'.' | b'-' | b'+' | b'%') {
            s += 1;
        }
        let mut e = at + 1;
        while e < b.len() && domain_char(b[e]) && e - at <= 253 {
            e += 1;
        }
        while e > at + 1 && matches!(b[e - 1], b'.' | b'-') {
            e -= 1;
        }
        if s == at || b[at - 1] == b'.' {
            continue;
        }
        let domain = &b[at + 1..e];
        let labels_ok = domain
            .split(|c| *c == b'.')
            .all(|l| !l.is_empty() && l[0] != b'-' && l[l.len() - 1] != b'-');
        let tld = domain.rsplit(|c| *c == b'.').next().unwrap_or(&[]);
        let dotted = domain.contains(&b'.');
        if dotted
            && labels_ok
            && tld.len() >= 2
            && tld.iter().all(u8::is_ascii_alphabetic)
            && f(s, e)
        {
            after = e;
        }
    }
}

/// `AAA-GG-SSSS`: area 001–899 but 666, group 01–99, serial 0001–9999.
fn ssn(b: &[u8], mut f: impl FnMut(usize, usize) -> bool) {
    let mut i = 0;
    while i + 11 <= b.len() {
        let c = &b[i..i + 11];
        let digits = |r: std::ops::Range<usize>| c[r].iter().all(u8::is_ascii_digit);
        if c[3] == b'-'
            && c[6] == b'-'
            && digits(0..3)
            && digits(4..6)
            && digits(7..11)
            && starts(b, i)
            && (i == 0 || b[i - 1] != b'-')
            && ends(b, i + 11)
            && b.get(i + 11) != Some(&b'-')
        {
            let area = &c[0..3];
            let valid = area != b"000"
                && area != b"666"
                && area[0] != b'9'
                && &c[4..6] != b"00"
                && &c[7..11] != b"0000";
            if valid && f(i, i + 11) {
                i += 11;
                continue;
            }
        }
        i += 1;
    }
}

fn b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_')
}

/// JWTs (JWS compact form): `eyJ…` header, payload, signature.
fn jwt(b: &[u8], mut f: impl FnMut(usize, usize) -> bool) {
    let mut i = 0;
    while i + 3 <= b.len() {
        if &b[i..i + 3] != b"eyJ" || (i > 0 && b64url(b[i - 1])) {
            i += 1;
            continue;
        }
        let mut dots = Vec::with_capacity(2);
        let mut j = i;
        while j < b.len() && (b64url(b[j]) || b[j] == b'.') {
            if b[j] == b'.' {
                // A third dot ends the token (the end of a sentence, say).
                if dots.len() == 2 {
                    break;
                }
                dots.push(j);
            }
            j += 1;
        }
        let header_ok = dots.len() == 2
            && dots[1] > dots[0] + 1
            && URL_SAFE_NO_PAD.decode(&b[i..dots[0]]).is_ok_and(|h| {
                serde_json::from_slice::<serde_json::Value>(&h)
                    .ok()
                    .is_some_and(|v| v.get("alg").is_some_and(serde_json::Value::is_string))
            });
        if header_ok && f(i, j) {
            i = j;
        } else {
            i += 3;
        }
    }
}

/// A provider's secret: its prefix, the characters of what follows, and that part's
/// shortest and longest length.
type KeyShape = (&'static str, fn(u8) -> bool, usize, usize);

/// Provider prefixes of secrets.
const KEY_PREFIXES: &[KeyShape] = &[
    ("AKIA", upper_alnum, 16, 16),
    ("ASIA", upper_alnum, 16, 16),
    ("ghp_", alnum, 36, 36),
    ("gho_", alnum, 36, 36),
    ("ghu_", alnum, 36, 36),
    ("ghs_", alnum, 36, 36),
    ("ghr_", alnum, 36, 36),
    ("github_pat_", key_char, 60, 90),
    ("glpat-", key_char, 20, 40),
    ("sk_live_", alnum, 24, 128),
    ("sk_test_", alnum, 24, 128),
    ("rk_live_", alnum, 24, 128),
    ("xoxb-", key_char, 20, 120),
    ("xoxp-", key_char, 20, 120),
    ("AIza", key_char, 35, 35),
    ("sk-", key_char, 32, 200),
];

fn upper_alnum(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

fn key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-')
}

/// Bits per character of `s` (Shannon), over its byte frequencies.
fn entropy(s: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in s {
        counts[usize::from(c)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Secrets with a known prefix whose body is random-looking (not `sk_live_xxxxxxxx…`).
fn api_key(b: &[u8], mut f: impl FnMut(usize, usize) -> bool) {
    let mut i = 0;
    'at: while i < b.len() {
        if i > 0 && key_char(b[i - 1]) {
            i += 1;
            continue;
        }
        for &(prefix, body_char, min, max) in KEY_PREFIXES {
            if !b[i..].starts_with(prefix.as_bytes()) {
                continue;
            }
            let from = i + prefix.len();
            let mut end = from;
            while end < b.len() && body_char(b[end]) && end - from < max {
                end += 1;
            }
            let body = &b[from..end];
            if body.len() >= min
                && !b.get(end).is_some_and(|c| key_char(*c))
                && entropy(body) >= 3.0
                && f(i, end)
            {
                i = end;
                continue 'at;
            }
        }
        i += 1;
    }
}

/// IPv4 dotted quads and IPv6 addresses standing alone.
fn ip(text: &str, mut f: impl FnMut(usize, usize) -> bool) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let lone = i == 0 || !(word(b[i - 1]) || b[i - 1] == b'.' || b[i - 1] == b':');
        if !lone || !(c.is_ascii_hexdigit() || c == b':') {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < b.len() && (b[end].is_ascii_hexdigit() || matches!(b[end], b'.' | b':')) {
            end += 1;
        }
        // A trailing dot or colon ends a sentence, not an address.
        while end > i && matches!(b[end - 1], b'.' | b':') && !text[i..end].ends_with("::") {
            end -= 1;
        }
        let token = &text[i..end];
        let alone = end >= b.len() || !word(b[end]);
        let colons = token.matches(':').count();
        let (found, end) = match token.split_once(':') {
            // An IPv4 address with a port (`10.0.0.1:8080`).
            Some((v4, port))
                if colons == 1 && ipv4(v4) && port.bytes().all(|c| c.is_ascii_digit()) =>
            {
                (alone, i + v4.len())
            }
            Some(_) => (
                alone && colons >= 2 && token.parse::<Ipv6Addr>().is_ok(),
                end,
            ),
            None => (alone && ipv4(token), end),
        };
        if found && f(i, end) {
            i = end;
        } else {
            i += 1;
            while i < b.len() && (b[i].is_ascii_hexdigit()) {
                i += 1;
            }
        }
    }
}

/// Four decimal octets, no leading zeros.
fn ipv4(s: &str) -> bool {
    let mut n = 0;
    for part in s.split('.') {
        n += 1;
        let ok = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|c| c.is_ascii_digit())
            && !(part.len() > 1 && part.starts_with('0'))
            && part.parse::<u16>().is_ok_and(|v| v <= 255);
        if !ok {
            return false;
        }
    }
    n == 4
}

#[cfg(test)]
mod tests;
