//! Header rules for the request going upstream and the response going back:
//! hop-by-hop removal (RFC 9110 §7.6.1), forwarding headers with trusted-proxy awareness,
//! and stripping of headers that reveal the upstream's software.

use std::net::IpAddr;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one hop and never travel further (RFC 9110 §7.6.1), plus the
/// non-standard ones clients and proxies still send.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    // RFC 9113 §3.1 / RFC 7540 §3.2.1: connection-specific, and the carrier of an h2c
    // upgrade; never forwarded.
    HeaderName::from_static("http2-settings"),
];

/// True when a `Connection` field of `headers` lists `token` (RFC 9110 §7.6.1; tokens
/// are case-insensitive).
pub fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");

/// Removes hop-by-hop headers and every header named in `Connection`. When `keep_upgrade`
/// is set (a WebSocket handshake being forwarded), `Connection: upgrade` and `Upgrade`
/// survive so the upstream sees the handshake.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Names listed in Connection are hop-by-hop too (RFC 9110 §7.6.1). Nearly every
    // Connection field says only `keep-alive`, `close` or `upgrade`, which need no name
    // made: `keep-alive` is removed below with the other hop-by-hop names, `close`
    // rarely names a header that is present, and `upgrade` is handled last.
    let names_more = |v: &HeaderValue| {
        v.to_str().map_or(true, |s| {
            s.split(',').map(str::trim).any(|t| {
                let needs_no_name = t.is_empty()
                    || t.eq_ignore_ascii_case("upgrade")
                    || (t.eq_ignore_ascii_case("close") && !headers.contains_key("close"))
                    || HOP_BY_HOP
                        .iter()
                        .any(|h| t.eq_ignore_ascii_case(h.as_str()));
                !needs_no_name
            })
        })
    };
    if headers.get_all(header::CONNECTION).iter().any(names_more) {
        let mut named: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::CONNECTION).iter() {
            if let Ok(s) = value.to_str() {
                for token in s.split(',') {
                    let token = token.trim();
                    if token.eq_ignore_ascii_case("upgrade") && keep_upgrade {
                        continue;
                    }
                    if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                        named.push(name);
                    }
                }
            }
        }
        for name in named {
            // Never let Connection remove the headers the gateway itself relies on upstream.
            if name != header::HOST && name != X_REQUEST_ID {
                headers.remove(&name);
            }
        }
    }
    // One pass over the (few) names present notes which hop-by-hop names occur; only
    // those are removed (a hash lookup each), and most messages carry only `Connection`.
    let mut present = 0u16;
    for k in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == k) {
            present |= 1 << i;
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if headers.contains_key(header::UPGRADE) {
        headers.remove(header::UPGRADE);
    }
}

/// Removes what upstream responses say about their software (`Server`, `X-Powered-By`).
pub fn strip_upstream_identity(headers: &mut HeaderMap) {
    if headers
        .keys()
        .any(|k| *k == header::SERVER || *k == X_POWERED_BY)
    {
        headers.remove(header::SERVER);
        headers.remove(&X_POWERED_BY);
    }
}

/// The client's address as the gateway will use it everywhere (logs, limits, hashing).
///
/// From an untrusted peer it is the peer address. From a trusted proxy it is the
/// right-most address in `X-Forwarded-For` that is not itself a trusted proxy: addresses
/// further left were written by parties we cannot vouch for.
pub fn client_ip(
    peer: IpAddr,
    peer_trusted: bool,
    headers: &HeaderMap,
    is_trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    if !peer_trusted {
        return peer;
    }
    let mut candidate = peer;
    let values: Vec<&HeaderValue> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
    for value in values.iter().rev() {
        let Ok(s) = value.to_str() else {
            return candidate;
        };
        for part in s.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    candidate = ip;
                    if !is_trusted(ip) {
                        return ip;
                    }
                }
                // A malformed entry ends the chain: nothing to its left can be trusted.
                Err(_) => return candidate,
            }
        }
    }
    candidate
}

/// Forwarding header values that depend only on the connection, computed once when it is
/// accepted so requests do not format addresses again and again.
#[derive(Debug, Clone)]
pub struct PeerHeaders {
    peer: IpAddr,
    proto: &'static str,
    xff: HeaderValue,
    port: HeaderValue,
    /// `for=<peer>;proto=<proto>` (RFC 7239 node syntax).
    forwarded: String,
}

impl PeerHeaders {
    pub fn new(peer: IpAddr, tls: bool, local_port: u16) -> Self {
        let proto = if tls { "https" } else { "http" };
        let node = match peer {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("\"[{ip}]\""),
        };
        Self {
            peer,
            proto,
            xff: HeaderValue::from_str(&peer.to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
            port: HeaderValue::from(local_port),
            forwarded: format!("for={node};proto={proto}"),
        }
    }

    pub fn proto(&self) -> &'static str {
        self.proto
    }
}

/// Writes `X-Forwarded-For/-Proto/-Host/-Port` and `Forwarded` (RFC 7239). From a trusted
/// proxy, the existing chains are extended; from anyone else they are replaced, so a
/// client cannot plant an address or scheme.
pub fn set_forwarding(
    headers: &mut HeaderMap,
    peer: &PeerHeaders,
    peer_trusted: bool,
    host: Option<&HeaderValue>,
) {
    if peer_trusted {
        match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.trim().is_empty() => {
                let chain = format!("{prev}, {}", peer.peer);
                set(headers, &X_FORWARDED_FOR, &chain);
            }
            _ => {
                headers.insert(X_FORWARDED_FOR.clone(), peer.xff.clone());
            }
        }
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(
                X_FORWARDED_PROTO.clone(),
                HeaderValue::from_static(peer.proto),
            );
        }
        if !headers.contains_key(&X_FORWARDED_HOST) {
            if let Some(h) = host {
                headers.insert(X_FORWARDED_HOST.clone(), h.clone());
            }
        }
        if !headers.contains_key(&X_FORWARDED_PORT) {
            headers.insert(X_FORWARDED_PORT.clone(), peer.port.clone());
        }
    } else {
        headers.insert(X_FORWARDED_FOR.clone(), peer.xff.clone());
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(peer.proto),
        );
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST.clone(), h.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
        headers.insert(X_FORWARDED_PORT.clone(), peer.port.clone());
    }
    // Built in a per-worker scratch string; the value itself is cut from the shared value
    // buffer (no allocation per request).
    thread_local! {
        static ELEMENT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    ELEMENT.with(|element| {
        let mut element = element.borrow_mut();
        element.clear();
        if peer_trusted {
            if let Some(prev) = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
                if !prev.trim().is_empty() {
                    element.push_str(prev);
                    element.push_str(", ");
                }
            }
        }
        element.push_str(&peer.forwarded);
        if let Some(h) = host.and_then(|h| h.to_str().ok()) {
            if h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            {
                element.push_str(";host=\"");
                element.push_str(h);
                element.push('"');
            }
        }
        set(headers, &header::FORWARDED, &element);
        // A client-sent chain may be long: do not keep its room for the worker's life.
        element.shrink_to(256);
    });
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Some(v) = shared_value(value.as_bytes()) {
        headers.insert(name.clone(), v);
    }
}

thread_local! {
    /// Header maps given back by finished exchanges, cleared, for the next ones.
    static MAPS: std::cell::RefCell<Vec<HeaderMap>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most maps a worker keeps for reuse (two per exchange in flight).
const POOLED_MAPS: usize = 64;
/// A map grown past this many entries is dropped rather than kept.
const POOLED_MAP_ROOM: usize = 64;

/// An empty header map with room for `room` headers: one a finished exchange gave back
/// when there is one (no allocation), else a new one.
pub fn new_map(room: usize) -> HeaderMap {
    match MAPS.try_with(|m| m.borrow_mut().pop()).ok().flatten() {
        Some(mut map) => {
            map.reserve(room);
            map
        }
        None => HeaderMap::with_capacity(room),
    }
}

/// Gives a map back for reuse once nothing reads it any more. It is emptied here, so no
/// header of one exchange can be seen by another.
pub fn recycle(mut map: HeaderMap) {
    if map.capacity() > POOLED_MAP_ROOM {
        return;
    }
    map.clear();
    let _ = MAPS.try_with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < POOLED_MAPS {
            m.push(map);
        }
    });
}

thread_local! {
    /// Where small per-exchange bytes are copied (request heads, the first read of an
    /// upstream answer, generated header values): one buffer shared by the pieces cut
    /// from it (each holds a reference), replaced when full. A piece costs no allocation
    /// of its own, and its clones and slices are reference counts.
    static PIECES: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// The shared buffer's size. A piece of an exchange that lives long (a streamed answer)
/// keeps at most this much alive.
const PIECES_BUFFER: usize = 4096;
/// Larger pieces get an allocation of their own.
const PIECE_LARGEST: usize = 1024;

/// `bytes`, copied into the worker's shared buffer (or, when large, into their own).
/// The result's capacity is its length: growing it allocates, never writes into the
/// shared buffer.
pub fn cut(bytes: &[u8]) -> BytesMut {
    if bytes.len() > PIECE_LARGEST {
        return BytesMut::from(bytes);
    }
    PIECES.with(|b| {
        let mut b = b.borrow_mut();
        if b.capacity() - b.len() < bytes.len() {
            *b = BytesMut::with_capacity(PIECES_BUFFER);
        }
        b.extend_from_slice(bytes);
        b.split()
    })
}

/// A header value made from `bytes` (visible ASCII, spaces and tabs) in the worker's
/// shared buffer; `None` when the bytes are not a valid value.
pub fn shared_value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(cut(bytes).freeze()).ok()
}

/// True for a request id a trusted proxy may hand us: 1–128 visible ASCII characters
/// without quotes or backslashes (it is echoed into JSON logs and bodies).
pub fn is_acceptable_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|&c| (0x21..0x7f).contains(&c) && c != b'"' && c != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_headers_named_in_connection() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(
            !h.contains_key("x-secret")
                && !h.contains_key("keep-alive")
                && !h.contains_key("connection")
        );
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn connection_tokens_that_name_no_other_header_still_strip_what_they_name() {
        // The common `keep-alive` answer: only hop-by-hop headers go.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-keep"]);
        // `close` naming a header that is present removes it, as any other token would.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        h.insert("close", HeaderValue::from_static("1"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn client_ip_walks_xff_from_the_right_skipping_trusted() {
        let trusted = |ip: IpAddr| ip.to_string().starts_with("10.");
        let mut h = HeaderMap::new();
        h.insert(
            &X_FORWARDED_FOR,
            HeaderValue::from_static("1.1.1.1, 2.2.2.2, 10.0.0.9"),
        );
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, true, &h, trusted),
            "2.2.2.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(peer, false, &h, trusted), peer);
    }
}
