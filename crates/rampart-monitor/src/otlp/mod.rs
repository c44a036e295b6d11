//! OpenTelemetry spans over OTLP/HTTP (`tracing.otlp`): each sampled exchange becomes a
//! server span (attributes after the HTTP semantic conventions, an event per phase
//! reached and per decision), handed from the log phase to a bounded queue without
//! waiting, and exported in batches as protobuf by a telemetry thread of its own, with
//! Rampart's own HTTP client. A full queue drops the span and counts it; a failed export
//! drops its batch and counts its spans. No path, query or header value is exported:
//! the request id leads to the access log line.

pub mod proto;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::unix_ns;
use rampart_config::{ConfigError, OtlpSpec, Spec};
use rampart_core::trace::Mark;
use rampart_core::{ExchangeRecord, FeaturePlan, Filter, MetricsSource, MetricsText, Phase};

use proto::{Event, Span, Value};

/// Adds the span exporter to every route and to unrouted exchanges.
pub fn compile(
    spec: &Spec,
    base: &Path,
    state: &rampart_core::StateStore,
    out: &mut FeaturePlan,
) -> Result<(), Vec<ConfigError>> {
    let Some(t) = &spec.tracing else {
        return Ok(());
    };
    let Some(o) = &t.otlp else {
        return Ok(());
    };
    let err = |path: &str, e: String| vec![ConfigError::new(path, e)];
    let mut headers = Vec::new();
    for (name, r) in &o.headers {
        let at = format!("tracing.otlp.headers.{name}");
        let v = r.resolve(base).map_err(|e| err(&at, e))?;
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| err(&at, "not a header name".into()))?;
        let mut v = http::HeaderValue::from_str(v.expose())
            .map_err(|_| err(&at, "the value is not a valid header value".into()))?;
        v.set_sensitive(true);
        headers.push((n, v));
    }
    let ca = o.ca_file.as_ref().map(|f| base.join(f));
    let tls =
        rampart_fetch::client_tls(ca.as_deref()).map_err(|e| err("tracing.otlp.ca_file", e))?;
    if state.is_dry() {
        return Ok(());
    }
    // One exporter per settings (header values included, so a rotated key starts a
    // new one); a reload with the same settings keeps it and its queue.
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (n, v) in &headers {
            n.as_str().hash(&mut h);
            v.as_bytes().hash(&mut h);
        }
        format!("otlp\n{o:?}\n{}\n{:x}", t.service_name, h.finish())
    };
    let settings = Settings {
        endpoint: o.endpoint.clone(),
        headers,
        tls,
        timeout: o.timeout.get(),
        max_batch: o.max_batch,
        interval: o.interval.get(),
        resource: vec![
            ("service.name", Value::Owned(t.service_name.clone())),
            ("service.version", Value::Static(env!("CARGO_PKG_VERSION"))),
            ("telemetry.sdk.name", Value::Static("rampart")),
            ("telemetry.sdk.language", Value::Static("rust")),
        ],
    };
    let exporter = state
        .get_or_try_insert(&key, || Exporter::start(o, settings))
        .map_err(|e| err("tracing.otlp", e))?;
    let filter: Arc<dyn Filter> = Arc::new(Spans {
        exporter: exporter.clone(),
        denials: t.export_denials,
    });
    for chain in &mut out.routes {
        chain.push(filter.clone());
    }
    out.unrouted.push(filter);
    out.metrics.push(exporter);
    Ok(())
}

struct Settings {
    endpoint: String,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    max_batch: usize,
    interval: Duration,
    resource: Vec<(&'static str, Value)>,
}

/// What the telemetry thread counts.
#[derive(Default)]
struct Counters {
    queue_full: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    exports_ok: AtomicU64,
    exports_failed: AtomicU64,
}

/// The queue to the telemetry thread, and its counters.
pub struct Exporter {
    tx: SyncSender<Span>,
    counters: Arc<Counters>,
}

impl Exporter {
    /// Starts the telemetry thread. It ends once the exporter is dropped (the gateway
    /// stopped, or a reload changed the settings) and what was queued is sent.
    fn start(o: &OtlpSpec, settings: Settings) -> Result<Exporter, String> {
        let (tx, rx) = std::sync::mpsc::sync_channel(o.max_queue);
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        crate::own_runtime("rampart-otlp", move |rt| run(rt, &rx, &settings, &c))?;
        Ok(Exporter { tx, counters })
    }

    /// Queues a span without waiting; a full queue drops it (counted).
    fn offer(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The telemetry thread: a batch when `max_batch` spans are waiting or `interval` after
/// its first span, whichever comes first.
fn run(rt: &tokio::runtime::Runtime, rx: &Receiver<Span>, s: &Settings, c: &Counters) {
    let content_type = http::HeaderValue::from_static("application/x-protobuf");
    let mut batch = Vec::with_capacity(s.max_batch);
    let mut failing = false;
    loop {
        let Ok(first) = rx.recv() else { return };
        batch.push(first);
        let deadline = Instant::now() + s.interval;
        let mut open = true;
        while batch.len() < s.max_batch {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(span) => batch.push(span),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let body = proto::export_request(&s.resource, &batch);
        let n = batch.len() as u64;
        batch.clear();
        let answer = rt.block_on(rampart_fetch::post(
            &s.endpoint,
            &s.tls,
            s.timeout,
            &s.headers,
            content_type.clone(),
            body.into(),
        ));
        match answer {
            Ok(a) if a.status.is_success() => {
                c.exported.fetch_add(n, Ordering::Relaxed);
                c.exports_ok.fetch_add(1, Ordering::Relaxed);
                if failing {
                    failing = false;
                    tracing::info!("OTLP export succeeds again");
                }
            }
            other => {
                c.failed.fetch_add(n, Ordering::Relaxed);
                c.exports_failed.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    failing = true;
                    let why = match other {
                        Ok(a) => format!("status {}", a.status.as_u16()),
                        Err(e) => e,
                    };
                    tracing::warn!(reason = %why, spans = n, "OTLP export failed; spans dropped until it succeeds");
                }
            }
        }
        if !open {
            return;
        }
    }
}

/// The log-phase filter: a sampled exchange's span (or a refused one's, with
/// `export_denials`), queued.
struct Spans {
    exporter: Arc<Exporter>,
    denials: bool,
}

impl Filter for Spans {
    fn phase(&self) -> Phase {
        Phase::ResponseHeaders
    }

    fn name(&self) -> &'static str {
        "tracing.otlp"
    }

    fn on_log(&self, record: &ExchangeRecord<'_>) {
        let Some(x) = record.exchange else { return };
        let Some(t) = x.trace.as_ref().filter(|t| {
            t.sampled
                || (self.denials
                    && x.decisions
                        .iter()
                        .any(|d| d.outcome == rampart_core::Outcome::Deny))
        }) else {
            return;
        };
        let start = unix_ns(record.time);
        let end = start.saturating_add(record.duration.as_nanos() as u64);
        let mut attributes = Vec::with_capacity(13);
        attributes.extend([
            (
                "url.scheme",
                Value::Static(if x.tls { "https" } else { "http" }),
            ),
            (
                "network.protocol.version",
                Value::Static(match record.version {
                    http::Version::HTTP_2 => "2",
                    http::Version::HTTP_10 => "1.0",
                    _ => "1.1",
                }),
            ),
            ("client.address", Value::Ip(x.client_ip)),
            ("rampart.request_id", Value::Header(x.request_id.clone())),
            ("rampart.listener", Value::Shared(x.listener.clone())),
            ("http.request.body.size", Value::Int(record.bytes_in as i64)),
            (
                "http.response.body.size",
                Value::Int(record.bytes_out as i64),
            ),
        ]);
        if record.status != 0 {
            attributes.push((
                "http.response.status_code",
                Value::Int(i64::from(record.status)),
            ));
        }
        if let Some(r) = &x.route {
            attributes.push(("rampart.route", Value::Shared(r.clone())));
        }
        if let Some(u) = record.upstream {
            attributes.push(("rampart.upstream", Value::Owned(u.into())));
        }
        if let Some(c) = record.code {
            attributes.push(("rampart.code", Value::Static(c)));
        }
        if let Some(c) = x.identity.as_ref().and_then(|id| id.consumer.clone()) {
            attributes.push(("rampart.consumer", Value::Shared(c)));
        }
        let mut events = Vec::with_capacity(3 + x.decisions.len());
        events.extend(
            Mark::ALL
                .iter()
                .filter(|m| t.marks[**m as usize] != 0)
                .map(|m| Event {
                    time: t.marks[*m as usize],
                    name: m.name(),
                    attribute: None,
                }),
        );
        // Decisions are made between routing and forwarding.
        let decided = match t.marks[Mark::Upstream as usize] {
            0 => end,
            at => at,
        };
        events.extend(x.decisions.iter().map(|d| Event {
            time: decided,
            name: d.reason.code(),
            attribute: Some(("rampart.outcome", Value::Static(d.outcome.as_str()))),
        }));
        let error =
            (record.status == 0 || record.status >= 500).then_some((record.code, record.status));
        self.exporter.offer(Span {
            trace_id: t.trace_id,
            span_id: t.span_id,
            parent_id: t.parent_id,
            trace_state: t.state.clone(),
            method: record.method.clone(),
            route: x.route.clone(),
            start,
            end,
            attributes,
            events,
            error,
        });
    }
}

impl MetricsSource for Exporter {
    fn render(&self, out: &mut MetricsText) {
        let c = &self.counters;
        out.family(
            "rampart_tracing_spans_total",
            "counter",
            "Sampled spans by fate: exported, dropped with a failed export, or dropped with the queue full.",
        );
        for (result, v) in [
            ("exported", &c.exported),
            ("export_failed", &c.failed),
            ("queue_full", &c.queue_full),
        ] {
            out.sample(
                "rampart_tracing_spans_total",
                &[("result", result)],
                v.load(Ordering::Relaxed),
            );
        }
        out.family(
            "rampart_tracing_exports_total",
            "counter",
            "OTLP export requests, by result.",
        );
        for (result, v) in [("ok", &c.exports_ok), ("error", &c.exports_failed)] {
            out.sample(
                "rampart_tracing_exports_total",
                &[("result", result)],
                v.load(Ordering::Relaxed),
            );
        }
    }
}
