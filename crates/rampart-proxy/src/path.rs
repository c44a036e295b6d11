//! Request path normalisation. It happens exactly once, before routing, and the upstream
//! receives the path that was matched (after any rewrite), so the gateway and the upstream
//! can never disagree about which resource was asked for.
//!
//! Rules (RFC 3986 §6.2.2, tightened for a security boundary):
//! - percent-encoded unreserved characters (`%41` → `A`, `%2e` → `.`) are decoded;
//! - other percent-encodings are kept, with upper-case hex;
//! - an encoded `/` or `\` (`%2f`, `%5c`), an encoded NUL, a raw `\`, and invalid
//!   percent-encoding are rejected: they cannot be normalised without guessing what the
//!   upstream will make of them;
//! - empty segments (`//`) are merged and `.` segments removed;
//! - `..` removes the previous segment; a `..` that would climb above the root is rejected.

use std::borrow::Cow;

/// Why a path was refused. All of them answer 400 `request.bad_path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    BadPercentEncoding,
    EncodedSeparator,
    EncodedNul,
    Backslash,
    AboveRoot,
    /// A byte that is not printable ASCII (hyper's parser already refuses these; the check
    /// keeps this function correct for any input).
    InvalidCharacter,
}

/// Returns the normalised form of `path` (the path component only, without the query).
/// Borrows when the path is already normal, which is the common case.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_already_normal(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    // Decode into a byte buffer first, then resolve dot segments on the decoded form, so
    // `%2e%2e` is treated exactly like `..`.
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|c| hex(*c));
                let lo = bytes.get(i + 2).and_then(|c| hex(*c));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadPercentEncoding);
                };
                let v = hi << 4 | lo;
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::EncodedNul),
                    v if is_unreserved(v) => decoded.push(v as char),
                    v => {
                        decoded.push('%');
                        decoded.push(HEX[(v >> 4) as usize] as char);
                        decoded.push(HEX[(v & 15) as usize] as char);
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b if !(0x21..=0x7e).contains(&b) => return Err(PathError::InvalidCharacter),
            _ => {
                // hyper's URI parser only admits ASCII here, so byte-to-char is exact.
                decoded.push(b as char);
                i += 1;
            }
        }
    }
    let trailing_slash =
        decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// True when `normalize` would return the input unchanged: no `%`, no `\`, no empty,
/// `.` or `..` segment (except a final empty one, i.e. a trailing slash).
fn is_already_normal(bytes: &[u8]) -> bool {
    if bytes
        .iter()
        .any(|&b| b == b'%' || b == b'\\' || !(0x21..=0x7e).contains(&b))
    {
        return false;
    }
    let mut rest = &bytes[1..];
    loop {
        let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        let seg = &rest[..end];
        let last = end == rest.len();
        if (seg.is_empty() && !last) || seg == b"." || seg == b".." {
            return false;
        }
        if last {
            return true;
        }
        rest = &rest[end + 1..];
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> String {
        normalize(p).unwrap().into_owned()
    }

    #[test]
    fn keeps_normal_paths_borrowed() {
        for p in ["/", "/a", "/a/b/", "/v1/orders/42", "/a.b/c..d/.e"] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn merges_slashes_and_resolves_dot_segments() {
        assert_eq!(ok("//a///b"), "/a/b");
        assert_eq!(ok("/a/./b"), "/a/b");
        assert_eq!(ok("/a/b/../c"), "/a/c");
        assert_eq!(ok("/a/b/.."), "/a/");
        assert_eq!(ok("/a/."), "/a/");
        assert_eq!(ok("/.."[..2].to_string().as_str()), "/");
    }

    #[test]
    fn decodes_unreserved_and_encoded_dots() {
        assert_eq!(ok("/%61%62c"), "/abc");
        assert_eq!(ok("/a/%2e%2e/b"), "/b");
        assert_eq!(ok("/a/%2E/b"), "/a/b");
        assert_eq!(ok("/a%20b"), "/a%20b");
        assert_eq!(ok("/a%c3%a9"), "/a%C3%A9");
    }

    #[test]
    fn rejects_unsafe_paths() {
        assert_eq!(normalize("/.."), Err(PathError::AboveRoot));
        assert_eq!(normalize("/a/../../etc/passwd"), Err(PathError::AboveRoot));
        assert_eq!(normalize("/%2e%2e/x"), Err(PathError::AboveRoot));
        assert_eq!(normalize("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a%5Cb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a\\b"), Err(PathError::Backslash));
        assert_eq!(normalize("/a%00"), Err(PathError::EncodedNul));
        assert_eq!(normalize("/a%zz"), Err(PathError::BadPercentEncoding));
        assert_eq!(normalize("/a%4"), Err(PathError::BadPercentEncoding));
        assert_eq!(normalize("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(normalize("/caf\u{e9}"), Err(PathError::InvalidCharacter));
        assert_eq!(normalize("/a b"), Err(PathError::InvalidCharacter));
        assert_eq!(normalize("/a\nb"), Err(PathError::InvalidCharacter));
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["//a/./b/../c/", "/%41/%2e/x", "/a%20b/./"] {
            let once = ok(p);
            assert_eq!(ok(&once), once);
        }
    }
}
