//! W3C Trace Context (`traceparent`, `tracestate`): the trace an exchange belongs to,
//! read from the request and passed on to the upstream with the gateway's own span as
//! the parent. Kept inline in the exchange context (no allocation), with the times the
//! exchange reached each phase when the trace is sampled.
//!
//! `traceparent` is `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; an all-zero
//! id, a version `ff`, upper-case hex or a wrong length make the header invalid, and an
//! invalid header starts a new trace (W3C Trace Context §3.2, §4.3). A later version's
//! header is read by its first four fields.

use http::HeaderValue;

/// Points in an exchange whose time a sampled span records as events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A route matched.
    Routed = 0,
    /// The inbound chain passed; the request goes upstream.
    Upstream = 1,
    /// The upstream's response head arrived.
    UpstreamResponse = 2,
}

impl Mark {
    pub const ALL: [Mark; 3] = [Mark::Routed, Mark::Upstream, Mark::UpstreamResponse];

    pub fn name(self) -> &'static str {
        match self {
            Mark::Routed => "routed",
            Mark::Upstream => "upstream.request",
            Mark::UpstreamResponse => "upstream.response",
        }
    }
}

/// The trace context of one exchange.
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The gateway's span for this exchange (the upstream's parent).
    pub span_id: [u8; 8],
    /// The caller's span, when the request carried a valid `traceparent`.
    pub parent_id: Option<[u8; 8]>,
    pub sampled: bool,
    /// The caller's `tracestate`, passed on (from trusted proxies only).
    pub state: Option<HeaderValue>,
    /// Unix nanoseconds each [`Mark`] was reached (0: not reached, or not sampled).
    pub marks: [u64; 3],
}

/// The fields of a valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub sampled: bool,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn decode<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = hex_val(pair[0])? << 4 | hex_val(pair[1])?;
    }
    Some(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// Writes `bytes` as hex into `out`, which is twice as long.
fn encode_at(bytes: &[u8], out: &mut [u8]) {
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
}

/// Lower-case hex of an id (for logs).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

impl TraceParent {
    /// Reads a `traceparent` header; `None` when it is not valid.
    pub fn parse(v: &HeaderValue) -> Option<TraceParent> {
        let b = v.as_bytes();
        if b.len() < 55 {
            return None;
        }
        let version = decode::<1>(&b[0..2])?[0];
        if version == 0xff || (version == 0 && b.len() != 55) {
            return None;
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let trace_id = decode::<16>(&b[3..35])?;
        let parent_id = decode::<8>(&b[36..52])?;
        let flags = decode::<1>(&b[53..55])?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_id,
            sampled: flags & 1 == 1,
        })
    }
}

impl TraceContext {
    /// The `traceparent` to send upstream: this trace, the gateway's span as parent.
    pub fn traceparent(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.traceparent_bytes()).unwrap_or(HeaderValue::from_static("-"))
    }

    /// The bytes of [`TraceContext::traceparent`], for a caller that keeps header values
    /// in a buffer of its own.
    pub fn traceparent_bytes(&self) -> [u8; 55] {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        encode_at(&self.trace_id, &mut out[3..35]);
        encode_at(&self.span_id, &mut out[36..52]);
        if self.sampled {
            out[54] = b'1';
        }
        out
    }

    /// Notes that the exchange reached `m` now (sampled traces only: no clock read
    /// otherwise).
    pub fn mark(&mut self, m: Mark) {
        if self.sampled {
            self.marks[m as usize] = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<TraceParent> {
        TraceParent::parse(&HeaderValue::from_str(s).unwrap())
    }

    #[test]
    fn traceparent_is_read_as_the_spec_says() {
        let t = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex(&t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&t.parent_id), "00f067aa0ba902b7");
        assert!(t.sampled);
        let t = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!t.sampled);
        // A later version: its first fields, whatever follows.
        assert!(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra").is_some());
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_upstream_gets_the_trace_with_the_gateway_as_parent() {
        let t = TraceContext {
            trace_id: *b"\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36",
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent_id: None,
            sampled: true,
            state: None,
            marks: [0; 3],
        };
        assert_eq!(
            t.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01"
        );
    }
}
