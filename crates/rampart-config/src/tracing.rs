//! `tracing`: W3C trace context towards upstreams and OpenTelemetry spans exported over
//! OTLP/HTTP (kept by `rampart-proxy` and `rampart-monitor`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::units::Duration;
use crate::{ConfigError, SecretRef, Spec};

/// Tracing: every request gets a trace context (continued from its `traceparent`, or
/// new), passed upstream; sampled exchanges are exported as spans.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracingSpec {
    /// The share of new traces sampled, 0 to 1 (default 0.01). A request from a trusted
    /// proxy keeps the sampling decision of its `traceparent`.
    #[serde(default = "one_percent")]
    pub sample: f64,
    /// Export the span of every refused request, sampled or not (default true): a
    /// denial is worth a trace; the queue bounds a flood of them.
    #[serde(default = "yes")]
    pub export_denials: bool,
    /// `service.name` of the exported spans (default `rampart`).
    #[serde(default = "rampart")]
    pub service_name: String,
    /// Where sampled spans go. Absent: trace context is passed on, nothing is exported.
    #[serde(default)]
    pub otlp: Option<OtlpSpec>,
}

/// An OTLP/HTTP receiver (an OpenTelemetry Collector, or a vendor's endpoint).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpSpec {
    /// The traces URL, `http://` or `https://` (`http://collector:4318/v1/traces`).
    pub endpoint: String,
    /// Headers sent with each export (a vendor's API key), values by secret reference.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretRef>,
    /// The CA bundle (PEM) that signs an `https` endpoint's certificate; default: the
    /// system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long one export may take (default 5s).
    #[serde(default = "five_seconds")]
    pub timeout: Duration,
    /// Spans waiting at most (default 4096); past it, spans are dropped and counted.
    #[serde(default = "queue")]
    pub max_queue: usize,
    /// Spans sent in one export at most (default 512).
    #[serde(default = "batch")]
    pub max_batch: usize,
    /// How long a span waits for its batch to fill (default 1s).
    #[serde(default = "one_second")]
    pub interval: Duration,
}

fn yes() -> bool {
    true
}
fn one_percent() -> f64 {
    0.01
}
fn rampart() -> String {
    "rampart".into()
}
fn five_seconds() -> Duration {
    Duration(std::time::Duration::from_secs(5))
}
fn one_second() -> Duration {
    Duration(std::time::Duration::from_secs(1))
}
fn queue() -> usize {
    4096
}
fn batch() -> usize {
    512
}

pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    let Some(t) = &spec.tracing else { return };
    let mut err = |path: &str, reason: &str| errs.push(ConfigError::new(path, reason));
    if !(0.0..=1.0).contains(&t.sample) {
        err("tracing.sample", "must be between 0 and 1");
    }
    if t.service_name.is_empty() || t.service_name.len() > 256 {
        err("tracing.service_name", "must be 1 to 256 characters");
    }
    let Some(o) = &t.otlp else { return };
    match o.endpoint.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
            if u.authority().is_some_and(|a| a.as_str().contains('@')) {
                err(
                    "tracing.otlp.endpoint",
                    "must not carry credentials; use `headers` with a secret reference",
                );
            }
        }
        _ => err(
            "tracing.otlp.endpoint",
            "must be an http:// or https:// URL with a host",
        ),
    }
    for name in o.headers.keys() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            err(&format!("tracing.otlp.headers.{name}"), "not a header name");
        }
    }
    if o.ca_file.is_some() && !o.endpoint.starts_with("https://") {
        err("tracing.otlp.ca_file", "only for an https:// endpoint");
    }
    if !(1..=1_000_000).contains(&o.max_queue) {
        err("tracing.otlp.max_queue", "must be between 1 and 1,000,000");
    }
    if !(1..=10_000).contains(&o.max_batch) {
        err("tracing.otlp.max_batch", "must be between 1 and 10,000");
    }
    if o.timeout.get() < std::time::Duration::from_millis(10) {
        err("tracing.otlp.timeout", "must be at least 10ms");
    }
    if o.interval.get() < std::time::Duration::from_millis(10) {
        err("tracing.otlp.interval", "must be at least 10ms");
    }
}
