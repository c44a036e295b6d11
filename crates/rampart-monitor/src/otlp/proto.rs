//! The OTLP trace protobuf (opentelemetry-proto `trace/v1`, `common/v1`,
//! `resource/v1`, `collector/trace/v1`), written by hand: the few messages a span export
//! needs, with their field numbers from the `.proto` files. Decoded in the tests by the
//! generated types of the `opentelemetry-proto` crate, so the numbers are checked
//! against the real schema.

use std::net::IpAddr;
use std::sync::Arc;

/// An attribute value, as the log phase hands it over: shared or static where it can
/// be, so building a span formats nothing (the telemetry thread does).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(String),
    Header(http::HeaderValue),
    Ip(IpAddr),
    Int(i64),
}

pub type Attributes = Vec<(&'static str, Value)>;

/// A span event: a time and a name, with at most one attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: u64,
    pub name: &'static str,
    pub attribute: Option<(&'static str, Value)>,
}

/// One finished span, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    pub trace_state: Option<http::HeaderValue>,
    /// The name is `{method} {route}`, or the method alone.
    pub method: http::Method,
    pub route: Option<Arc<str>>,
    /// Unix nanoseconds.
    pub start: u64,
    pub end: u64,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    /// `Some`: the span's status is `ERROR`, with this code (or `status N`) as message.
    pub error: Option<(Option<&'static str>, u16)>,
}

/// `SPAN_KIND_SERVER`.
const KIND_SERVER: u64 = 2;
/// `STATUS_CODE_ERROR`.
const STATUS_ERROR: u64 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 0);
    varint(out, v);
}

/// A nested message: written to a scratch buffer, then length-prefixed.
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes(out, field, &inner);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// `KeyValue { string key = 1; AnyValue value = 2; }`, `AnyValue { string_value = 1;
/// int_value = 3; }`: lengths computed, written straight into `out`.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    let mut ip = String::new();
    let text: Option<&[u8]> = match value {
        Value::Static(s) => Some(s.as_bytes()),
        Value::Shared(s) => Some(s.as_bytes()),
        Value::Owned(s) => Some(s.as_bytes()),
        Value::Header(h) => Some(h.as_bytes()),
        Value::Ip(a) => {
            use std::fmt::Write as _;
            let _ = write!(ip, "{a}");
            Some(ip.as_bytes())
        }
        Value::Int(_) => None,
    };
    let any_len = match (text, value) {
        (Some(t), _) => 1 + varint_len(t.len() as u64) + t.len(),
        (None, Value::Int(i)) => 1 + varint_len(*i as u64),
        (None, _) => 0,
    };
    let kv_len =
        1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(any_len as u64) + any_len;
    tag(out, field, 2);
    varint(out, kv_len as u64);
    bytes(out, 1, key.as_bytes());
    tag(out, 2, 2);
    varint(out, any_len as u64);
    match (text, value) {
        (Some(t), _) => bytes(out, 1, t),
        (None, Value::Int(i)) => uint(out, 3, *i as u64),
        (None, _) => {}
    }
}

/// `Span` (trace/v1): trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5,
/// kind 6, start 7, end 8, attributes 9, events 11, status 15.
fn span(out: &mut Vec<u8>, s: &Span) {
    message(out, 2, |m| {
        bytes(m, 1, &s.trace_id);
        bytes(m, 2, &s.span_id);
        if let Some(ts) = &s.trace_state {
            bytes(m, 3, ts.as_bytes());
        }
        if let Some(p) = &s.parent_id {
            bytes(m, 4, p);
        }
        match &s.route {
            Some(r) => bytes(m, 5, format!("{} {r}", s.method).as_bytes()),
            None => bytes(m, 5, s.method.as_str().as_bytes()),
        }
        uint(m, 6, KIND_SERVER);
        fixed64(m, 7, s.start);
        fixed64(m, 8, s.end);
        key_value(
            m,
            9,
            "http.request.method",
            &Value::Owned(s.method.to_string()),
        );
        for (k, v) in &s.attributes {
            key_value(m, 9, k, v);
        }
        // `Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue
        // attributes = 3; }`
        for e in &s.events {
            message(m, 11, |ev| {
                fixed64(ev, 1, e.time);
                bytes(ev, 2, e.name.as_bytes());
                if let Some((k, v)) = &e.attribute {
                    key_value(ev, 3, k, v);
                }
            });
        }
        // `Status { string message = 2; StatusCode code = 3; }`
        if let Some((code, status)) = &s.error {
            message(m, 15, |st| {
                match code {
                    Some(c) => bytes(st, 2, c.as_bytes()),
                    None => bytes(st, 2, format!("status {status}").as_bytes()),
                }
                uint(st, 3, STATUS_ERROR);
            });
        }
    });
}

/// An `ExportTraceServiceRequest` of `spans` from one resource (`resource_spans = 1`;
/// `ResourceSpans { resource = 1; scope_spans = 2; }`; `Resource { attributes = 1; }`;
/// `ScopeSpans { scope = 1; spans = 2; }`; `InstrumentationScope { name = 1;
/// version = 2; }`).
pub fn export_request(resource: &[(&str, Value)], spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * spans.len() + 128);
    message(&mut out, 1, |rs| {
        message(rs, 1, |r| {
            for (k, v) in resource {
                key_value(r, 1, k, v);
            }
        });
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes(scope, 1, b"rampart");
                bytes(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for s in spans {
                span(ss, s);
            }
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_computed_match_lengths_written() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(varint_len(v), out.len(), "{v}");
        }
        let long = "x".repeat(300);
        for value in [
            Value::Static("GET"),
            Value::Owned(long),
            Value::Ip("2001:db8::1".parse().unwrap()),
            Value::Int(-5),
            Value::Int(200),
        ] {
            // The same bytes as encoding the nested messages separately.
            let mut direct = Vec::new();
            key_value(&mut direct, 9, "some.key", &value);
            let mut nested = Vec::new();
            message(&mut nested, 9, |kv| {
                bytes(kv, 1, b"some.key");
                message(kv, 2, |any| match &value {
                    Value::Int(i) => uint(any, 3, *i as u64),
                    Value::Ip(a) => bytes(any, 1, a.to_string().as_bytes()),
                    Value::Static(s) => bytes(any, 1, s.as_bytes()),
                    Value::Owned(s) => bytes(any, 1, s.as_bytes()),
                    _ => unreachable!(),
                });
            });
            assert_eq!(direct, nested, "{value:?}");
        }
    }

    #[test]
    fn varints_are_little_endian_base_128() {
        for (v, want) in [
            (0u64, vec![0u8]),
            (1, vec![1]),
            (127, vec![127]),
            (128, vec![0x80, 1]),
            (300, vec![0xac, 2]),
            (
                u64::MAX,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1],
            ),
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out, want, "{v}");
        }
        // A negative int64 is ten bytes, two's complement (as protobuf writes it).
        let mut out = Vec::new();
        uint(&mut out, 3, -1i64 as u64);
        assert_eq!(out.len(), 11);
    }
}
