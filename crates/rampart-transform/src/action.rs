//! What a masking rule writes in place of a value: a placeholder, the last four letters or
//! digits, or a keyed hash; and the JSON string escaping and unescaping around them.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rampart_config::MaskAction;

/// The placeholder of a field rule's `redact`, and of any rule applied to an object or
/// an array.
pub(crate) const REDACTED: &str = "[redacted]";

/// Writes the masked form of `text` (a decoded value, UTF-8) under `action`,
/// JSON-escaped, without quotes. `kind` names a detector's finding (`[card]`); `None`
/// for a field.
pub(crate) fn write(
    out: &mut Vec<u8>,
    action: MaskAction,
    text: &[u8],
    kind: Option<&str>,
    key: Option<&hmac::Key>,
) {
    match action {
        MaskAction::Last4 => last4(out, text),
        MaskAction::Hash => match key {
            Some(key) => hash(out, key, text),
            // Unreachable: the compiler refuses `hash` without a key. Fail closed anyway.
            None => out.extend_from_slice(REDACTED.as_bytes()),
        },
        MaskAction::Redact | MaskAction::Remove => match kind {
            Some(k) => {
                out.push(b'[');
                out.extend_from_slice(k.as_bytes());
                out.push(b']');
            }
            None => out.extend_from_slice(REDACTED.as_bytes()),
        },
    }
}

/// Every letter or digit but the last four becomes `*`; separators stay, so the shape
/// remains readable (`************1111`, `****-****-****-1111`). A value with four or
/// fewer letters and digits is starred whole: its last four would be all of it.
fn last4(out: &mut Vec<u8>, text: &[u8]) {
    match text.is_ascii() {
        true => last4_ascii(out, text),
        // UTF-8 (the caller's word), so borrowed as it is.
        false => last4_chars(out, &String::from_utf8_lossy(text)),
    }
}

/// [`last4`] a character at a time.
fn last4_chars(out: &mut Vec<u8>, text: &str) {
    let total = text.chars().filter(|c| c.is_alphanumeric()).count();
    let keep_from = if total > 4 { total - 4 } else { usize::MAX };
    let mut seen = 0;
    let mut buf = [0u8; 4];
    for c in text.chars() {
        if c.is_alphanumeric() {
            if seen >= keep_from {
                escape(out, c.encode_utf8(&mut buf));
            } else {
                out.push(b'*');
            }
            seen += 1;
        } else {
            escape(out, c.encode_utf8(&mut buf));
        }
    }
}

/// Per byte: [`ALNUM`] for an ASCII letter or digit, [`PLAIN`] for printable ASCII that
/// JSON needs no escape for.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0x20;
    while c < 0x7f {
        if c != b'"' as usize && c != b'\\' as usize {
            t[c] |= PLAIN;
        }
        if (c as u8).is_ascii_alphanumeric() {
            t[c] |= ALNUM;
        }
        c += 1;
    }
    t
};
const ALNUM: u8 = 1;
const PLAIN: u8 = 2;

/// [`last4`] of ASCII text. Printable text without a quote or backslash (most values)
/// is copied once and starred in place from its end; anything else a byte at a time,
/// escaped.
fn last4_ascii(out: &mut Vec<u8>, b: &[u8]) {
    let alnum = |c: &u8| CLASS[usize::from(*c)] & ALNUM != 0;
    if b.iter().all(|&c| CLASS[usize::from(c)] & PLAIN != 0) {
        let start = out.len();
        out.extend_from_slice(b);
        let dst = &mut out[start..];
        let mut seen = 0;
        for c in dst.iter_mut().rev() {
            if alnum(c) {
                seen += 1;
                if seen > 4 {
                    *c = b'*';
                }
            }
        }
        if seen <= 4 {
            dst.iter_mut().filter(|c| alnum(c)).for_each(|c| *c = b'*');
        }
        return;
    }
    let total = b.iter().filter(|c| alnum(c)).count();
    let keep_from = if total > 4 { total - 4 } else { usize::MAX };
    let mut seen = 0;
    for (i, &c) in b.iter().enumerate() {
        if alnum(&c) {
            out.push(if seen >= keep_from { c } else { b'*' });
            seen += 1;
        } else {
            escape_bytes(out, &b[i..=i]);
        }
    }
}

/// `hash:` and the first 16 bytes of HMAC-SHA-256(key, value), base64url.
fn hash(out: &mut Vec<u8>, key: &hmac::Key, value: &[u8]) {
    let tag = hmac::sign(key, value);
    let mut b64 = [0u8; 22];
    // 16 bytes encode to exactly 22 characters without padding.
    let n = URL_SAFE_NO_PAD
        .encode_slice(&tag.as_ref()[..16], &mut b64)
        .unwrap_or(0);
    out.extend_from_slice(b"hash:");
    out.extend_from_slice(&b64[..n]);
}

/// Appends `s` JSON-escaped (without quotes).
pub(crate) fn escape(out: &mut Vec<u8>, s: &str) {
    escape_bytes(out, s.as_bytes());
}

/// [`escape`] over bytes (UTF-8 sequences go through as they are).
fn escape_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let mut at = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[at..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 15)]);
        } else {
            out.extend_from_slice(esc);
        }
        at = i + 1;
    }
    out.extend_from_slice(&b[at..]);
}

/// Decodes a JSON string's content (between the quotes, escapes included). `None` when
/// an escape is malformed or the text is not UTF-8. A lone surrogate decodes to U+FFFD.
pub(crate) fn unescape(raw: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let Some(p) = memchr::memchr(b'\\', &raw[i..]) else {
            out.push_str(std::str::from_utf8(&raw[i..]).ok()?);
            break;
        };
        out.push_str(std::str::from_utf8(&raw[i..i + p]).ok()?);
        i += p + 1;
        let c = *raw.get(i)?;
        i += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(raw.get(i..i + 4)?)?;
                i += 4;
                if (0xD800..0xDC00).contains(&hi) && raw.get(i..i + 2) == Some(b"\\u") {
                    let lo = hex4(raw.get(i + 2..i + 6)?)?;
                    if (0xDC00..0xE000).contains(&lo) {
                        i += 6;
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        out.push(char::from_u32(c)?);
                        continue;
                    }
                }
                char::from_u32(hi).unwrap_or('\u{FFFD}')
            }
            _ => return None,
        };
        out.push(ch);
    }
    Some(out)
}

fn hex4(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b).ok()?;
    if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// A JSON number (RFC 8259 §6).
pub(crate) fn is_number(t: &[u8]) -> bool {
    number_end(t, 0) == Some(t.len())
}

/// Where the JSON number at `data[i]` ends (RFC 8259's grammar), `None` when none starts
/// there.
pub(crate) fn number_end(data: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: &mut usize| {
        let s = *i;
        while data.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - s
    };
    if data.get(i) == Some(&b'-') {
        i += 1;
    }
    match data.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => _ = digits(&mut i),
        _ => return None,
    }
    if data.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if matches!(data.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(data.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(action: MaskAction, text: &str, kind: Option<&str>) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        let mut o = Vec::new();
        write(&mut o, action, text.as_bytes(), kind, Some(&key));
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn last4_keeps_separators_and_hides_short_values_whole() {
        assert_eq!(
            masked(MaskAction::Last4, "4111111111111111", None),
            "************1111"
        );
        assert_eq!(
            masked(MaskAction::Last4, "4111-1111-1111-1111", None),
            "****-****-****-1111"
        );
        assert_eq!(masked(MaskAction::Last4, "DE89 3704", None), "**** 3704");
        assert_eq!(masked(MaskAction::Last4, "1234", None), "****");
        assert_eq!(masked(MaskAction::Last4, "a\"bcde", None), "*\\\"bcde");
        assert_eq!(masked(MaskAction::Last4, "ab\ncd\"e", None), "*b\\ncd\\\"e");
        // The ASCII paths write what the character path writes.
        let mut seed = 7u64;
        for _ in 0..5000 {
            let len = (seed % 24) as usize;
            let text: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    char::from(b"a1Z9 -/\"\\\n\t\x01~"[(seed % 13) as usize])
                })
                .collect();
            let (mut fast, mut chars) = (Vec::new(), Vec::new());
            last4_ascii(&mut fast, text.as_bytes());
            last4_chars(&mut chars, &text);
            assert_eq!(fast, chars, "{text:?}");
        }
    }

    #[test]
    fn hash_is_keyed_stable_and_short() {
        let a = masked(MaskAction::Hash, "alice@example.com", None);
        assert_eq!(a, masked(MaskAction::Hash, "alice@example.com", None));
        assert_ne!(a, masked(MaskAction::Hash, "bob@example.com", None));
        assert!(a.starts_with("hash:") && a.len() == 27, "{a}");
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"another key, 16+");
        let mut o = Vec::new();
        write(
            &mut o,
            MaskAction::Hash,
            b"alice@example.com",
            None,
            Some(&other),
        );
        assert_ne!(a.as_bytes(), &o[..]);
    }

    #[test]
    fn redact_names_the_kind_of_a_finding() {
        assert_eq!(masked(MaskAction::Redact, "x", None), "[redacted]");
        assert_eq!(masked(MaskAction::Redact, "x", Some("card")), "[card]");
    }

    #[test]
    fn unescape_decodes_what_json_allows_and_refuses_the_rest() {
        assert_eq!(
            unescape(br#"a\"b\\c\/\n\u00e9\ud83d\ude00"#).unwrap(),
            "a\"b\\c/\né😀"
        );
        assert_eq!(unescape(br"\ud800x").unwrap(), "\u{FFFD}x");
        assert!(unescape(br"\x").is_none());
        assert!(unescape(br"\u12").is_none());
        assert!(unescape(b"\xff").is_none());
        let mut o = Vec::new();
        escape(&mut o, "a\"\u{1}\té");
        assert_eq!(String::from_utf8(o).unwrap(), r#"a\"\u0001\té"#);
    }
}
