//! Trace context per exchange (`tracing` in the config): the request's `traceparent`
//! continued, or a new trace; the gateway's own span id; the sampling decision. A
//! trusted proxy's sampled flag is kept; anyone else's is not (a client could otherwise
//! make every one of its requests exported), though its trace id is, so the client's
//! own trace still finds the gateway's span.

use http::{HeaderMap, HeaderName};
use rampart_core::trace::{TraceContext, TraceParent};

use crate::request_id::random_u64;

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The compiled `tracing` setting.
#[derive(Debug, Clone, Copy)]
pub struct TracePlan {
    /// A new trace is sampled when a random `u64` is below this.
    threshold: u64,
    always: bool,
}

impl TracePlan {
    pub fn new(sample: f64) -> TracePlan {
        let sample = sample.clamp(0.0, 1.0);
        TracePlan {
            threshold: (sample * u64::MAX as f64) as u64,
            always: sample >= 1.0,
        }
    }

    /// The context of a request with these headers, from a peer trusted or not.
    pub fn context(&self, headers: &HeaderMap, trusted: bool) -> TraceContext {
        let parent = headers.get(&TRACEPARENT).and_then(TraceParent::parse);
        let mut span_id = random_u64().to_be_bytes();
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        let ours = || self.always || random_u64() < self.threshold;
        let (trace_id, parent_id, sampled) = match parent {
            Some(p) if trusted => (p.trace_id, Some(p.parent_id), p.sampled),
            Some(p) => (p.trace_id, Some(p.parent_id), ours()),
            None => {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&random_u64().to_be_bytes());
                id[8..].copy_from_slice(&random_u64().to_be_bytes());
                if id == [0; 16] {
                    id[15] = 1;
                }
                (id, None, ours())
            }
        };
        TraceContext {
            trace_id,
            span_id,
            parent_id,
            sampled,
            state: if trusted && parent.is_some() {
                headers.get(&TRACESTATE).cloned()
            } else {
                None
            },
            marks: [0; 3],
        }
    }
}

/// Sets the upstream request's trace headers from the exchange's context: this trace,
/// the gateway's span as parent; a caller's `tracestate` only from a trusted proxy.
pub fn propagate(headers: &mut HeaderMap, t: &TraceContext) {
    // Cut from the worker's shared buffer: no allocation of its own.
    let value = crate::headers::shared_value(&t.traceparent_bytes());
    headers.insert(
        TRACEPARENT.clone(),
        value.unwrap_or_else(|| t.traceparent()),
    );
    match &t.state {
        Some(s) => {
            headers.insert(TRACESTATE.clone(), s.clone());
        }
        // Most requests have none: a scan of the names costs less than a hashed removal.
        None => {
            if headers.keys().any(|k| *k == TRACESTATE) {
                headers.remove(&TRACESTATE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(tp: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, tp.parse().unwrap());
        h.insert(&TRACESTATE, "vendor=abc".parse().unwrap());
        h
    }

    #[test]
    fn a_trusted_proxy_keeps_its_decision_and_a_client_does_not() {
        let never = TracePlan::new(0.0);
        let t = never.context(&headers(TP), true);
        assert!(t.sampled);
        assert_eq!(
            t.parent_id,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert_eq!(t.state.as_ref().unwrap(), "vendor=abc");
        let t = never.context(&headers(TP), false);
        assert!(!t.sampled, "a client cannot ask to be sampled");
        assert_eq!(
            rampart_core::trace::hex(&t.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(t.state.is_none());
        // Invalid: a new trace.
        let t = TracePlan::new(1.0).context(&headers("00-zz"), true);
        assert!(t.sampled && t.parent_id.is_none());
        assert_ne!(t.trace_id, [0; 16]);
    }

    #[test]
    fn the_sample_ratio_holds_roughly() {
        let p = TracePlan::new(0.25);
        let n = (0..20_000)
            .filter(|_| p.context(&HeaderMap::new(), false).sampled)
            .count();
        assert!((4_000..6_000).contains(&n), "{n}");
    }

    #[test]
    fn the_upstream_gets_our_span_and_only_trusted_state() {
        let mut up = headers(TP);
        let t = TracePlan::new(1.0).context(&headers(TP), false);
        propagate(&mut up, &t);
        let sent = up.get(&TRACEPARENT).unwrap().to_str().unwrap().to_string();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!sent.contains("00f067aa0ba902b7"), "our span is the parent");
        assert!(sent.ends_with("-01"));
        assert!(up.get(&TRACESTATE).is_none());
    }
}
