//! The request's host, checked before routing (RFC 9112 §3.2, RFC 3986 §3.2.2): a Host
//! (or absolute-form / `:authority`) value must be `uri-host [ ":" port ]`. Spaces,
//! commas, userinfo and control characters are refused, because upstreams and logs that
//! split or re-parse such a value can each see a different host.

/// True for `reg-name`, IPv4 or `[IP-literal]`, with an optional numeric port.
pub fn is_valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &v[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            || std::str::from_utf8(literal)
                .ok()
                .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
                .is_none()
        {
            return false;
        }
        match &v[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&v[..0], port),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &v[..0]),
        }
    };
    let port_ok = port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && (port.is_empty()
            || std::str::from_utf8(port)
                .ok()
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| p <= 65535));
    if !port_ok {
        return false;
    }
    if v.first() == Some(&b'[') {
        return true;
    }
    // reg-name without pct-encoding or sub-delims: letters, digits, `-`, `.`, `_`, `~`.
    !host.is_empty()
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_addresses_and_ports() {
        for ok in [
            "example.com",
            "api.example.com:8443",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "localhost:",
            "under_score.internal",
        ] {
            assert!(is_valid_host(ok.as_bytes()), "{ok}");
        }
    }

    #[test]
    fn rejects_spaces_commas_userinfo_and_bad_ports() {
        for bad in [
            "a b",
            "a,b",
            "user@host",
            "host:99999",
            "host:80x",
            "[::1",
            "[zz::1]",
            "[::1]x",
            "",
            ":80",
            "a\tb",
            "a/b",
            "a%20b",
        ] {
            assert!(!is_valid_host(bad.as_bytes()), "{bad:?}");
        }
    }
}
