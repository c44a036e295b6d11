//! The request-head checker: RFC 9112 without repairs.

use rampart_core::Problem;

use super::HeadLimits;

/// How a checked head's body is framed, and what may follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: the next head follows.
    Head,
    /// A `Content-Length` body of this many bytes.
    Length(u64),
    /// A chunked body.
    Chunked,
    /// An upgrade or CONNECT head without a body: what follows may not be HTTP/1 if (and
    /// only if) the answer is a `101`.
    Hold,
}

/// Checks a complete request head (through the blank line) with the default limits.
/// Exposed for fuzzing and tests; the guard itself calls the internal checker.
pub fn check_request_head(head: &[u8]) -> Result<(), Problem> {
    if !head.ends_with(b"\r\n\r\n") {
        return Err(Problem::MALFORMED);
    }
    check_head(head, &HeadLimits::DEFAULT).map(|_| ())
}

/// Looks for the end of the request head at the start of `buf`, resuming past the
/// `searched` bytes already known to hold none: a head trickled in byte by byte is
/// searched once, not once per read (which would be quadratic). `Ok(None)` while it is
/// incomplete; an error once no head within the limits can arrive any more.
pub fn locate_head(
    buf: &[u8],
    searched: &mut usize,
    limits: &HeadLimits,
) -> Result<Option<usize>, Problem> {
    let from = (*searched).saturating_sub(3);
    if let Some(end) = find_head_end(&buf[from..]) {
        *searched = 0;
        return Ok(Some(from + end));
    }
    *searched = buf.len();
    if buf.len() > limits.max_head_bytes {
        return Err(if first_line_longer_than(buf, limits.max_uri_bytes + 32) {
            Problem::URI_TOO_LONG
        } else {
            Problem::HEADERS_TOO_LARGE
        });
    }
    Ok(None)
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn first_line_longer_than(buf: &[u8], n: usize) -> bool {
    buf.iter()
        .position(|&b| b == b'\n')
        .map_or(buf.len() > n, |p| p > n)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks one complete request head (ending in CRLF CRLF) and returns the framing state
/// for what follows it.
pub fn check_head(head: &[u8], limits: &HeadLimits) -> Result<Framing, Problem> {
    if head.len() > limits.max_head_bytes {
        return Err(Problem::HEADERS_TOO_LARGE);
    }
    // RFC 9112 §2.2: a bare CR or a bare LF is not a line ending here; both are rejected.
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' if i == 0 || head[i - 1] != b'\r' => return Err(Problem::MALFORMED),
            b'\r' if head.get(i + 1) != Some(&b'\n') => return Err(Problem::BAD_HEADER),
            _ => {}
        }
    }
    let body = &head[..head.len() - 4];
    let mut lines = body
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().ok_or(Problem::MALFORMED)?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Problem::MALFORMED);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Problem::MALFORMED);
    }
    if target.is_empty() || target.iter().any(|&b| b <= 0x20 || b == 0x7f) {
        return Err(Problem::BAD_REQUEST_TARGET);
    }
    if target.len() > limits.max_uri_bytes {
        return Err(Problem::URI_TOO_LONG);
    }
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        _ => return Err(Problem::MALFORMED),
    };

    let mut count = 0usize;
    let mut content_length: Option<u64> = None;
    let mut cl_seen = 0;
    let mut te_codings: Vec<Vec<u8>> = Vec::new();
    let mut hosts = 0;
    let mut host_empty = false;
    let mut upgrade = false;
    let mut connection_upgrade = false;
    for line in lines {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(Problem::OBS_FOLD); // RFC 9112 §5.2
        }
        count += 1;
        if count > limits.max_headers {
            return Err(Problem::TOO_MANY_HEADERS);
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Problem::BAD_HEADER)?;
        let name = &line[..colon];
        if name.last().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(Problem::HEADER_NAME_WHITESPACE); // RFC 9112 §5.1
        }
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(Problem::BAD_HEADER);
        }
        let value = trim_ows(&line[colon + 1..]);
        // RFC 9110 §5.5: NUL, CR, LF and other controls (except HTAB) are invalid.
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Problem::BAD_HEADER);
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            cl_seen += 1;
            if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
                return Err(Problem::BAD_CONTENT_LENGTH);
            }
            content_length = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in value.split(|&b| b == b',') {
                let c = trim_ows(coding);
                if !c.is_empty() {
                    te_codings.push(c.to_ascii_lowercase());
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            host_empty = value.is_empty();
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection_upgrade |= value
                .split(|&b| b == b',')
                .any(|t| trim_ows(t).eq_ignore_ascii_case(b"upgrade"));
        }
    }
    if cl_seen > 1 {
        return Err(Problem::BAD_CONTENT_LENGTH);
    }
    if hosts > 1 {
        return Err(Problem::DUPLICATE_HOST);
    }
    if (hosts == 0 && !http10) || host_empty {
        return Err(Problem::MISSING_HOST);
    }
    // RFC 9112 §6.1: Transfer-Encoding with Content-Length is an attack signature; we
    // reject instead of letting one win, so no upstream can read the body differently.
    if !te_codings.is_empty() {
        if cl_seen > 0 {
            return Err(Problem::CL_TE_CONFLICT);
        }
        let chunked_last = te_codings.last().is_some_and(|c| c == b"chunked");
        let chunked_count = te_codings
            .iter()
            .filter(|c| c.as_slice() == b"chunked")
            .count();
        let known = te_codings.iter().all(|c| {
            matches!(
                c.as_slice(),
                b"chunked" | b"gzip" | b"x-gzip" | b"deflate" | b"compress"
            )
        });
        if http10 || !chunked_last || chunked_count != 1 || !known {
            return Err(Problem::BAD_TRANSFER_ENCODING);
        }
        return Ok(Framing::Chunked);
    }
    let has_body = content_length.is_some_and(|n| n > 0);
    if !has_body && (method == b"CONNECT" || (upgrade && connection_upgrade)) {
        // What follows may not be HTTP/1 if (and only if) the answer is a 101: hold it
        // until the response shows which. An upgrade with a body is an ordinary request
        // (the gateway never tunnels it), so its framing is followed as usual.
        return Ok(Framing::Hold);
    }
    Ok(match content_length {
        Some(n) if n > 0 => Framing::Length(n),
        _ => Framing::Head,
    })
}

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
