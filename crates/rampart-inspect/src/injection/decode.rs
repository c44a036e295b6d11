//! The decodings attackers use to slip a payload past a matcher, undone before the
//! detectors look: a second round of URL decoding (`%2527`, IIS `%u0027`, overlong UTF-8
//! `%c0%ae`) and HTML character references (`&#x3c;`, `&lt`, `&colon;`). Each decoder is
//! one linear pass and allocates only when the value holds something to decode.

use std::borrow::Cow;

/// `value` URL-decoded once more: `%XX`, `%uXXXX`, and the overlong UTF-8 encodings of
/// `.`, `/` and `\` that old decoders accepted. Invalid sequences stay as written;
/// invalid UTF-8 becomes U+FFFD.
pub(crate) fn url(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some((decoded, used)) = escape(&b[i..]) {
                out.extend_from_slice(decoded.as_bytes());
                i += used;
                continue;
            }
            if let (Some(hi), Some(lo)) = (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// An escape that decodes to more than its plain byte: `%uXXXX` and overlong forms.
fn escape(b: &[u8]) -> Option<(String, usize)> {
    if matches!(b.get(1), Some(b'u' | b'U')) {
        let mut v = 0u32;
        for k in 2..6 {
            v = v << 4 | u32::from(hex(b.get(k))?);
        }
        return Some((char::from_u32(v).unwrap_or('\u{fffd}').to_string(), 6));
    }
    let byte = |k: usize| -> Option<u8> {
        (b.get(k * 3) == Some(&b'%'))
            .then(|| Some(hex(b.get(k * 3 + 1))? << 4 | hex(b.get(k * 3 + 2))?))
            .flatten()
    };
    let (first, second) = (byte(0)?, byte(1)?);
    // Two-byte overlong: 110_0000x 10xxxxxx encodes an ASCII byte.
    if first & 0xfe == 0xc0 && second & 0xc0 == 0x80 {
        let c = (first & 1) << 6 | (second & 0x3f);
        return Some((char::from(c).to_string(), 6));
    }
    // Three-byte overlong: 1110_0000 100xxxxx 10xxxxxx.
    if first == 0xe0 && second & 0xe0 == 0x80 {
        let third = byte(2)?;
        if third & 0xc0 == 0x80 {
            let c = (second & 0x1f) << 6 | (third & 0x3f);
            if c < 0x80 {
                return Some((char::from(c).to_string(), 9));
            }
        }
    }
    None
}

fn hex(b: Option<&u8>) -> Option<u8> {
    match b? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Named references browsers decode that matter to markup and script.
const NAMED: &[(&str, char)] = &[
    ("lt", '<'),
    ("gt", '>'),
    ("amp", '&'),
    ("quot", '"'),
    ("apos", '\''),
    ("colon", ':'),
    ("semi", ';'),
    ("lpar", '('),
    ("rpar", ')'),
    ("sol", '/'),
    ("bsol", '\\'),
    ("equals", '='),
    ("grave", '`'),
    ("tab", '\t'),
    ("newline", '\n'),
    ("nbsp", '\u{a0}'),
];

/// `value` with HTML character references decoded as a browser would, the closing `;`
/// optional (`&#60`, `&lt`), any number of leading zeros.
pub(crate) fn html(value: &str) -> Cow<'_, str> {
    replace_refs(value, '&', reference)
}

/// `value` with each reference introduced by `marker` that `decode` reads (the character,
/// and how many bytes after the marker it took) replaced by its character; anything else
/// stays as written.
fn replace_refs(
    value: &str,
    marker: char,
    decode: impl Fn(&str) -> Option<(char, usize)>,
) -> Cow<'_, str> {
    if !value.contains(marker) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at]);
        let tail = &rest[at + marker.len_utf8()..];
        match decode(tail) {
            Some((c, used)) => {
                out.push(c);
                rest = &tail[used..];
            }
            None => {
                out.push(marker);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The character a reference (after its `&`) stands for, and its length.
fn reference(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    let semi = |at: usize| usize::from(b.get(at) == Some(&b';'));
    if b.first() == Some(&b'#') {
        let (radix, start) = match b.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digit = |c: &u8| c.is_ascii_digit() || (radix == 16 && c.is_ascii_hexdigit());
        let run = b[start..].iter().take_while(|c| digit(c)).count();
        if run == 0 {
            return None;
        }
        let end = start + run;
        // Leading zeros are any number long; what is left of more than 8 digits, or zero,
        // is no character (the replacement character, as browsers read it).
        let significant = s[start..end].trim_start_matches('0');
        let c = (!significant.is_empty() && significant.len() <= 8)
            .then(|| u32::from_str_radix(significant, radix).ok())
            .flatten()
            .and_then(char::from_u32)
            .unwrap_or('\u{fffd}');
        return Some((c, end + semi(end)));
    }
    NAMED.iter().find_map(|(name, c)| {
        let head = b.get(..name.len())?;
        head.eq_ignore_ascii_case(name.as_bytes())
            .then(|| (*c, name.len() + semi(name.len())))
    })
}

/// `value` with JavaScript and C string escapes decoded: `\xHH`, `\uHHHH`, `\u{H…}`
/// (markup smuggled inside a script string, `\x3cscript\x3e`).
pub(crate) fn escapes(value: &str) -> Cow<'_, str> {
    replace_refs(value, '\\', script_escape)
}

/// The character a script escape (after its `\`) stands for, and its length.
fn script_escape(tail: &str) -> Option<(char, usize)> {
    let b = tail.as_bytes();
    let hex_run = |from: usize, n: usize| {
        b.get(from..from + n)
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .and_then(|_| u32::from_str_radix(&tail[from..from + n], 16).ok())
    };
    let (v, used) = match b.first() {
        Some(b'x') => hex_run(1, 2).map(|v| (v, 3)),
        Some(b'u') if b.get(1) == Some(&b'{') => tail[2..].find('}').and_then(|end| {
            (end > 0 && end <= 6)
                .then(|| hex_run(2, end))
                .flatten()
                .map(|v| (v, end + 3))
        }),
        Some(b'u') => hex_run(1, 4).map(|v| (v, 5)),
        _ => None,
    }?;
    Some((char::from_u32(v).unwrap_or('\u{fffd}'), used))
}

/// `value` with fullwidth forms (`＜script＞`, U+FF01–U+FF5E) read as the ASCII they
/// mirror, as Unicode normalisation (NFKC) in a backend would.
pub(crate) fn fold_width(value: &str) -> Cow<'_, str> {
    let wide = |c: char| ('\u{ff01}'..='\u{ff5e}').contains(&c);
    if !value.chars().any(wide) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .chars()
            .map(|c| {
                if wide(c) {
                    char::from_u32(c as u32 - 0xff01 + 0x21).unwrap_or(c)
                } else {
                    c
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_decodes_a_second_round_and_the_old_tricks() {
        assert_eq!(url("%2527"), "%27");
        assert_eq!(url(&url("%2527")), "'");
        assert_eq!(url("%u0027%U003c"), "'<");
        assert_eq!(url("%c0%ae%c0%ae%c0%af"), "../");
        assert_eq!(url("%e0%80%ae"), ".");
        assert_eq!(url("100%"), "100%");
        assert_eq!(url("%zz%4"), "%zz%4");
        assert_eq!(url("%ff"), "\u{fffd}");
        assert!(matches!(url("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn html_decodes_references_with_or_without_semicolons() {
        assert_eq!(html("&lt;script&gt;"), "<script>");
        assert_eq!(html("&#60&#x3C;&#X3c;"), "<<<");
        assert_eq!(
            html("javascript&colon;alert&lpar;1&rpar;"),
            "javascript:alert(1)"
        );
        assert_eq!(html("&#0000000000000060;"), "<");
        assert_eq!(
            html("Tom & Jerry &unknown; &#;"),
            "Tom & Jerry &unknown; &#;"
        );
        assert_eq!(html("&#99999999;"), "\u{fffd}");
        assert!(matches!(html("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn script_escapes_and_fullwidth_forms_are_read_as_backends_read_them() {
        assert_eq!(escapes(r"\x3cscript\x3E"), "<script>");
        assert_eq!(escapes(r"\u003c\u{3e}\n\x"), "<>\\n\\x");
        assert_eq!(escapes(r"\u{110000}"), "\u{fffd}");
        assert_eq!(fold_width("＜script＞"), "<script>");
        assert!(matches!(fold_width("日本語"), Cow::Borrowed(_)));
    }
}
