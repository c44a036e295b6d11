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
//! - `..` removes the previous segment; a `..` that would climb above the root is rejected;
//! - percent-encoded bytes that are not valid UTF-8 (overlong `%C0%AE` for `.`, lone
//!   continuation bytes, ...) are rejected: lenient decoders read them as `.` or `/`.
//!
//! Two more shapes are refused after routing unless the route opts in
//! ([`opt_in_problem`]): `;` path parameters and `%25` double encodings.

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
    /// Percent-encoded bytes that do not form UTF-8 (RFC 3629 §3: overlong forms such as
    /// `%C0%AE` are invalid).
    InvalidUtf8,
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
    if bytes.contains(&b'%') && !escapes_are_utf8(bytes) {
        return Err(PathError::InvalidUtf8);
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

/// True when the bytes the percent-escapes of `path` stand for, read with the literal
/// characters around them, are valid UTF-8. Called only after every escape was checked
/// to be two hex digits.
fn escapes_are_utf8(path: &[u8]) -> bool {
    let mut raw = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            match (
                path.get(i + 1).and_then(|c| hex(*c)),
                path.get(i + 2).and_then(|c| hex(*c)),
            ) {
                (Some(hi), Some(lo)) => raw.push(hi << 4 | lo),
                _ => return false,
            }
            i += 3;
        } else {
            raw.push(path[i]);
            i += 1;
        }
    }
    std::str::from_utf8(&raw).is_ok()
}

/// The problem for a path shape the route has not opted in to: a `;` (path parameters)
/// or a `%25` (an encoded `%`, the mark of a double encoding). `raw` is the path as the
/// client sent it.
pub fn opt_in_problem(
    raw: &str,
    allow_parameters: bool,
    allow_encoded_percent: bool,
) -> Option<rampart_core::Problem> {
    let b = raw.as_bytes();
    if !allow_parameters && b.contains(&b';') {
        return Some(rampart_core::Problem::PATH_PARAMETERS);
    }
    if !allow_encoded_percent && b.windows(3).any(|w| w == b"%25") {
        return Some(rampart_core::Problem::DOUBLE_ENCODING);
    }
    None
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
    fn rejects_overlong_and_invalid_utf8_escapes() {
        for p in [
            "/%C0%AE%C0%AE/x",
            "/a%c0%afb",
            "/%E0%80%AE",
            "/%80",
            "/%FF",
            "/%C3",
        ] {
            assert_eq!(normalize(p), Err(PathError::InvalidUtf8), "{p}");
        }
        assert_eq!(ok("/caf%C3%A9"), "/caf%C3%A9");
    }

    #[test]
    fn path_parameters_and_encoded_percent_need_opt_in() {
        use rampart_core::Problem;
        assert_eq!(
            opt_in_problem("/x/..;/admin", false, false),
            Some(Problem::PATH_PARAMETERS)
        );
        assert_eq!(opt_in_problem("/x/..;/admin", true, false), None);
        assert_eq!(
            opt_in_problem("/%252e%252e/", false, false),
            Some(Problem::DOUBLE_ENCODING)
        );
        assert_eq!(opt_in_problem("/%252e", false, true), None);
        assert_eq!(opt_in_problem("/plain/path", false, false), None);
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["//a/./b/../c/", "/%41/%2e/x", "/a%20b/./"] {
            let once = ok(p);
            assert_eq!(ok(&once), once);
        }
    }
}
