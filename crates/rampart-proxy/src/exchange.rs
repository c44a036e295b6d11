//! One request/response exchange while it is in flight, and its log phase. The handler,
//! the request body and the response body share it (`Arc`); the fields they update
//! concurrently are atomics or set-once cells. When the last holder drops it (the response
//! has been fully sent, or abandoned), the log phase runs: the metrics, the access log
//! line and every filter's [`rampart_core::Filter::on_log`], all from one
//! [`ExchangeRecord`].
//!
//! It keeps cheap handles (the request's `Uri` and `Host` value share the bytes hyper
//! parsed) and formats them only when a line is actually written.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use http::{HeaderValue, Method, Uri, Version};
use rampart_core::{ExchangeCtx, ExchangeRecord};
use rampart_observe::metrics::{CodeMetrics, RouteMetrics};
use rampart_observe::tap::DecisionTap;
use rampart_observe::AccessLog;

use crate::plan::Chain;
use crate::upstream::Upstream;

/// The exchange context and the chain whose log phase runs, handed over once the
/// response head has been decided (or the request was abandoned).
pub struct Finished {
    pub cx: ExchangeCtx,
    pub filters: Chain,
}

/// An exchange in flight.
pub struct Exchange {
    log: Option<Arc<AccessLog>>,
    started: tokio::time::Instant,
    time: SystemTime,
    pub request_id: HeaderValue,
    client_ip: IpAddr,
    method: Method,
    version: Version,
    /// `None` for synthetic rejections, whose target is not the client's.
    uri: Option<Uri>,
    host: Option<HeaderValue>,
    headers: Vec<(http::HeaderName, HeaderValue)>,
    listener: Arc<str>,
    pub route: OnceLock<Arc<str>>,
    pub upstream: OnceLock<Arc<Upstream>>,
    /// Index of the target that served the response (usize::MAX: none).
    pub target: AtomicUsize,
    pub status: AtomicU16,
    /// Reason code when the gateway answered itself.
    pub code: OnceLock<&'static str>,
    /// Why the client's body could not be forwarded (too large, too slow, broken), so the
    /// handler answers 413/408/400 rather than a gateway error.
    pub body_failure: OnceLock<rampart_core::Problem>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// The exchange context (identity, decisions, guards) once the response was decided.
    pub finished: OnceLock<Finished>,
    /// The matched route's counters (unset: the request matched no route).
    pub route_metrics: OnceLock<Arc<RouteMetrics>>,
    unrouted: Arc<RouteMetrics>,
    codes: Arc<CodeMetrics>,
    tap: Option<Arc<DecisionTap>>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// The request facts an exchange starts with.
pub struct ExchangeStart {
    pub request_id: HeaderValue,
    pub client_ip: IpAddr,
    pub method: Method,
    pub version: Version,
    pub uri: Option<Uri>,
    pub host: Option<HeaderValue>,
    /// The request headers `access_log.headers` keeps (empty when none are configured).
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    pub listener: Arc<str>,
    pub unrouted: Arc<RouteMetrics>,
    pub codes: Arc<CodeMetrics>,
    /// The dashboard's live decisions, when it is served.
    pub tap: Option<Arc<DecisionTap>>,
}

impl Exchange {
    /// The request's method.
    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    pub fn new(log: Option<Arc<AccessLog>>, s: ExchangeStart) -> Exchange {
        Exchange {
            log,
            started: tokio::time::Instant::now(),
            time: SystemTime::now(),
            request_id: s.request_id,
            client_ip: s.client_ip,
            method: s.method,
            version: s.version,
            uri: s.uri,
            host: s.host,
            headers: s.headers,
            listener: s.listener,
            route: OnceLock::new(),
            upstream: OnceLock::new(),
            target: AtomicUsize::new(usize::MAX),
            status: AtomicU16::new(0),
            code: OnceLock::new(),
            body_failure: OnceLock::new(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            finished: OnceLock::new(),
            route_metrics: OnceLock::new(),
            unrouted: s.unrouted,
            codes: s.codes,
            tap: s.tap,
        }
    }

    /// When the request head was read (the exchange context's `now` is the same instant).
    pub fn time(&self) -> SystemTime {
        self.time
    }

    fn record(&self) -> ExchangeRecord<'_> {
        let upstream = self.upstream.get();
        ExchangeRecord {
            time: self.time,
            duration: self.started.elapsed(),
            request_id: &self.request_id,
            client_ip: self.client_ip,
            listener: &self.listener,
            method: &self.method,
            version: self.version,
            uri: self.uri.as_ref(),
            host: self.host.as_ref(),
            headers: &self.headers,
            route: self.route.get().map(|r| &**r),
            upstream: upstream.map(|u| &*u.name),
            target: upstream
                .and_then(|u| u.targets.get(self.target.load(Ordering::Relaxed)))
                .map(|t| &*t.url),
            status: self.status.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            code: self.code.get().copied(),
            exchange: self.finished.get().map(|f| &f.cx),
        }
    }
}

impl Drop for Exchange {
    /// The log phase. Guards in the context (concurrency slots) are released after it,
    /// when the fields drop.
    fn drop(&mut self) {
        let record = self.record();
        let metrics = self.route_metrics.get().unwrap_or(&self.unrouted);
        metrics.record(record.method, record.status, record.duration.as_secs_f64());
        if let Some(code) = record.code {
            self.codes.record(code);
        }
        if let (Some(x), Some(m)) = (record.exchange, self.route_metrics.get()) {
            for d in &x.decisions {
                m.decisions.record(*d);
            }
        }
        if let Some(log) = &self.log {
            log.log(&record);
        }
        if let Some(tap) = &self.tap {
            tap.offer(&record, self.route.get());
        }
        if let Some(f) = self.finished.get() {
            for filter in f.filters.iter() {
                filter.on_log(&record);
            }
        }
    }
}
