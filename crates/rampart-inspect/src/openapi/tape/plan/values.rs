//! The plan's checks of single values: types, numbers against bounds, a quick e-mail
//! address check, distinct strings.

use super::{Cmp, Entry, Tape, EXACT};
use super::{ARRAY, BOOL, INTEGER, NULL, NUMBER, OBJECT, STRING};

/// Whether a value of `entry`'s type is allowed by `types`.
#[inline(always)]
pub(super) fn admits(types: u8, tape: &Tape, entry: Entry) -> bool {
    match entry {
        Entry::Null => types & NULL != 0,
        Entry::Bool(_) => types & BOOL != 0,
        // `integer` alone: a number with a fraction or an exponent is left to the full
        // validator (`1.0` is an integer to it).
        Entry::Number(s, e) => {
            types & NUMBER != 0
                || types & INTEGER != 0
                    && !tape
                        .bytes_at(s, e, false)
                        .iter()
                        .any(|b| matches!(b, b'.' | b'e' | b'E'))
        }
        Entry::Str { .. } => types & STRING != 0,
        Entry::Array { .. } => types & ARRAY != 0,
        Entry::Object { .. } => types & OBJECT != 0,
    }
}

/// Whether the elements `from..end` are distinct, when they are a few strings (`None`
/// otherwise: the full comparison decides).
pub(super) fn unique_strings(tape: &Tape, from: usize, end: usize) -> Option<bool> {
    let items = tape.entries.get(from..end)?;
    if items.len() > 16 {
        return None;
    }
    let text = |e: &Entry| match *e {
        Entry::Str {
            start,
            end,
            escaped,
        } => Some(tape.bytes_at(start, end, escaped)),
        _ => None,
    };
    for (k, a) in items.iter().enumerate().skip(1) {
        let a = text(a)?;
        for b in &items[..k] {
            // Lengths first, then the bytes without a call (tags are short).
            let b = text(b)?;
            if a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y) {
                return Some(false);
            }
        }
    }
    // Every item was read as a string above (the first as the others' `b`), or there
    // is at most one, which is distinct.
    Some(true)
}

/// Whether the number `text` meets every bound, compared exactly (`false` when it cannot
/// be: a magnitude where `f64` is no longer exact).
pub(super) fn number_in(text: &[u8], bounds: &[(Cmp, f64)]) -> bool {
    let (v, integer) = match fast_f64(text) {
        Some(read) => read,
        // With an exponent or over 15 digits: never taken as exact.
        None => match std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
        {
            Some(v) => (v, false),
            None => return false,
        },
    };
    if !v.is_finite() || v.abs() >= EXACT {
        return false;
    }
    bounds.iter().all(|&(cmp, b)| {
        // A decimal's text and its `f64` differ in the last places: one that lands on a
        // bound is left to the full validator.
        if !integer && (v - b).abs() <= 1e-9 * b.abs().max(1.0) {
            return false;
        }
        match cmp {
            Cmp::Ge => v >= b,
            Cmp::Gt => v > b,
            Cmp::Le => v <= b,
            Cmp::Lt => v < b,
        }
    })
}

/// The `f64` of a plain number of at most 15 digits (`-12`, `19.99`), and whether it is
/// an integer: its digits and the power of ten are both exact in `f64`, so one division
/// rounds as the full parser does. Anything else (exponents, more digits) is `None`.
pub(super) fn fast_f64(text: &[u8]) -> Option<(f64, bool)> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (neg, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let (mut m, mut n, mut scale, mut dot) = (0u64, 0usize, 0usize, false);
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                m = m * 10 + u64::from(c - b'0');
                n += 1;
                scale += usize::from(dot);
            }
            b'.' if !dot => dot = true,
            _ => return None,
        }
    }
    if n == 0 || n > 15 {
        return None;
    }
    let v = m as f64 / POW10[scale];
    Some((if neg { -v } else { v }, !dot))
}

/// A plain e-mail address (`local@domain.tld`, letters, digits and `._+-` before the
/// `@`, hostname labels after it): certainly valid under JSON Schema's `email`. Anything
/// else (quoted local parts, IP literals, IDNs, other symbols) is `false` and goes to the
/// full check.
pub(crate) fn quick_email(b: &[u8]) -> bool {
    if b.len() > 254 {
        return false;
    }
    let Some(at) = b.iter().position(|&c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&b[..at], &b[at + 1..]);
    // Local part: no leading, trailing or double dot.
    if local.is_empty() || local.len() > 64 || local[0] == b'.' || local[local.len() - 1] == b'.' {
        return false;
    }
    let mut prev = 0u8;
    for &c in local {
        let ok = match c {
            b'.' => prev != b'.',
            c => c.is_ascii_alphanumeric() || matches!(c, b'_' | b'+' | b'-'),
        };
        if !ok {
            return false;
        }
        prev = c;
    }
    // Domain: two labels or more, each 1 to 63 letters, digits and single inner hyphens;
    // the last one holds a letter (a top-level domain is never all digits).
    let (mut len, mut labels, mut alpha) = (0usize, 0, false);
    prev = b'.';
    for &c in domain {
        match c {
            b'.' => {
                if len == 0 || prev == b'-' {
                    return false;
                }
                labels += 1;
                len = 0;
                alpha = false;
            }
            b'-' if len > 0 && prev != b'-' => len += 1,
            c if c.is_ascii_alphanumeric() => {
                len += 1;
                alpha |= c.is_ascii_alphabetic();
            }
            _ => return false,
        }
        if len > 63 {
            return false;
        }
        prev = c;
    }
    labels >= 1 && len > 0 && prev != b'-' && alpha
}
