//! Live monitoring (docs/monitoring.md): anomaly detection on live traffic, per caller
//! (the proved consumer, or the client address of an unproved caller) and route.
//!
//! - [`detect`] scores each window's signals against the caller's own baseline.
//! - [`table`] holds the watched callers, sharded and bounded.
//! - [`sanctions`] holds the throttles and bans of flagged callers (shared through Redis
//!   with `store: redis`).
//!
//! Each watched route that authenticates gets two filters: a gate in the IP-rules phase
//! that refuses a throttled or banned client address before anything else runs (a
//! credential sprayer never proves an identity, so its ban must not wait for one), and a
//! watcher in the rate-limit phase that refuses a throttled or banned consumer, notes the
//! request's object id, and in the log phase counts the exchange into the caller's
//! window. A route without authentication has no consumer: one watcher, in the IP-rules
//! phase, does both. A window that closes flagged is logged, counted, written to the
//! audit trail, and acted on.
#![forbid(unsafe_code)]

pub mod detect;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod sanctions;
pub mod table;

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;
use rampart_config::{AnomalyAction, AnomalySpec, ConfigError, LimitStore, Signal, Spec};
use rampart_core::gcra::Gcra;
use rampart_core::{
    Denial, ExchangeRecord, FeaturePlan, Filter, Flow, MetricsSource, MetricsText, Outcome,
    PathParams, Phase, Reason, RequestCtx, StateStore,
};
use rampart_observe::audit_trail::{AuditTrail, Fields};

use detect::{Flag, Seen, Tuning, SIGNALS};
use sanctions::{Kind, Sanctions, Verdict};
use table::{Subject, SubjectRef, Table};

/// The feature's entry point: anomaly detection's filters and the span exporter, with
/// their `/metrics` series.
pub fn compile(
    spec: &Spec,
    base: &Path,
    state: &StateStore,
) -> Result<FeaturePlan, Vec<ConfigError>> {
    let mut out = FeaturePlan::for_routes(spec.routes.len());
    anomaly(spec, base, state, &mut out)?;
    #[cfg(feature = "otlp")]
    otlp::compile(spec, base, state, &mut out)?;
    #[cfg(not(feature = "otlp"))]
    if spec.tracing.as_ref().is_some_and(|t| t.otlp.is_some()) {
        return Err(vec![ConfigError::new(
            "tracing.otlp",
            "this build has no OTLP export (built without the cargo feature `otlp`)",
        )]);
    }
    Ok(out)
}

/// The gate and the watcher on every watched route.
fn anomaly(
    spec: &Spec,
    base: &Path,
    state: &StateStore,
    out: &mut FeaturePlan,
) -> Result<(), Vec<ConfigError>> {
    let Some(a) = &spec.anomaly else {
        return Ok(());
    };
    let detector = Arc::new(Detector::new(spec, a, base, state)?);
    let gate: Arc<dyn Filter> = Arc::new(Gate(detector.clone()));
    for (i, r) in spec.routes.iter().enumerate() {
        let ra = r.anomaly.as_deref();
        if ra.is_some_and(|ra| !ra.enabled) {
            continue;
        }
        let pattern = r.matcher.path.as_deref().unwrap_or("");
        let params = PathParams::from_pattern(pattern);
        let id_name = match ra.and_then(|ra| ra.id_param.as_deref()) {
            Some(p) => Some(p),
            None => rampart_config::path_params(pattern).last(),
        };
        let id = id_name.and_then(|n| params.index(n));
        // A route without authentication has no consumer to wait for: one filter, first
        // of all, gates the address and watches.
        let public = r.authenticate.is_empty();
        let watch: Arc<dyn Filter> = Arc::new(Watch {
            detector: detector.clone(),
            route: i as u32,
            name: r.name.as_str().into(),
            params,
            id,
            public,
        });
        out.routes[i] = if public {
            vec![watch]
        } else {
            vec![gate.clone(), watch]
        };
    }
    out.metrics.push(detector);
    Ok(())
}

/// Counters that outlive a reload.
#[derive(Default)]
struct Counters {
    flags: [AtomicU64; 4],
    /// By [`AnomalyAction`] taken, then `exempt`.
    actions: [AtomicU64; 5],
    throttled: AtomicU64,
    banned: AtomicU64,
}

/// One config's detector: its settings, and the state it shares with the next config.
pub struct Detector {
    tuning: Tuning,
    action: AnomalyAction,
    duration_ns: u64,
    throttle: Gcra,
    exempt: HashSet<Box<str>>,
    table: Arc<Table>,
    sanctions: Arc<Sanctions>,
    counters: Arc<Counters>,
    trail: Option<Arc<AuditTrail>>,
    /// Hashes object ids (keyed per process: a caller cannot choose ids that collide).
    ids: RandomState,
    /// Route names, by index in the config.
    routes: Vec<Arc<str>>,
}

impl Detector {
    fn new(
        spec: &Spec,
        a: &AnomalySpec,
        base: &Path,
        state: &StateStore,
    ) -> Result<Detector, Vec<ConfigError>> {
        let scored = [
            Signal::Requests,
            Signal::AuthFailures,
            Signal::ResponseBytes,
            Signal::DistinctIds,
        ]
        .map(|s| a.signals.contains(&s));
        let tuning = Tuning {
            warmup: a.warmup,
            window: a.window.get().as_secs().max(1),
            threshold: a.threshold,
            scored,
            ..Tuning::default()
        };
        // Baselines and sanctions carry over a reload (a new window length or bound
        // starts afresh).
        let table = state.get_or_insert(
            &format!("anomaly/{}/{}", tuning.window, a.max_tracked),
            || Table::new(a.max_tracked),
        );
        let sanctions = state.get_or_insert(&format!("anomaly/{}", a.max_tracked), || {
            Sanctions::new(a.max_tracked)
        });
        if a.store == LimitStore::Redis && !state.is_dry() {
            if let Some(r) = &spec.redis {
                let client = rampart_redis::RedisClient::from_spec(r, base)
                    .map_err(|e| vec![ConfigError::new("redis", e)])?;
                sanctions.share(client, r.timeout.get());
            }
        }
        Ok(Detector {
            tuning,
            action: a.action,
            duration_ns: a.duration.get().as_nanos() as u64,
            throttle: Gcra::new(
                a.throttle.count,
                a.throttle.period.as_nanos() as u64,
                a.throttle_burst,
            ),
            exempt: a
                .exempt_consumers
                .iter()
                .map(|c| c.as_str().into())
                .collect(),
            table,
            sanctions,
            counters: state.get_or_insert("anomaly", Counters::default),
            trail: rampart_observe::audit_trail::current(state, spec),
            ids: RandomState::new(),
            routes: spec.routes.iter().map(|r| r.name.as_str().into()).collect(),
        })
    }

    /// Refuses a sanctioned subject's request.
    fn gate(&self, subject: &Subject, cx: &mut RequestCtx<'_>) -> Flow {
        let now = unix_ns(cx.exchange.now);
        let (reason, secs) = match self.sanctions.check(subject, now, &self.throttle) {
            Verdict::Pass => return Flow::Continue,
            Verdict::Throttled(s) => {
                self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                (Reason::AnomalyThrottled, s)
            }
            Verdict::Banned(s) => {
                self.counters.banned.fetch_add(1, Ordering::Relaxed);
                (Reason::AnomalyBanned, s)
            }
        };
        cx.exchange.record(reason, Outcome::Deny);
        Flow::Deny(
            Denial::new(reason).with_header(http::header::RETRY_AFTER, HeaderValue::from(secs)),
        )
    }

    /// A window closed flagged: recorded, then acted on.
    fn flagged(&self, subject: &Subject, route: &str, flag: &Flag, time: SystemTime) {
        for s in &flag.signals {
            if let Some(i) = SIGNALS.iter().position(|n| *n == s.0) {
                self.counters.flags[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        let exempt = matches!(subject, Subject::Consumer(c) if self.exempt.contains(&**c));
        let action = if exempt && self.action >= AnomalyAction::Throttle {
            "exempt"
        } else {
            self.action.as_str()
        };
        let slot = if exempt { 4 } else { self.action as usize };
        self.counters.actions[slot].fetch_add(1, Ordering::Relaxed);
        let label = subject.label();
        let signals: Vec<serde_json::Value> = flag
            .signals
            .iter()
            .map(|(name, value, baseline, score)| {
                serde_json::json!({
                    "signal": name,
                    "value": round(*value),
                    "baseline": round(*baseline),
                    "score": round(*score),
                })
            })
            .collect();
        let signals = serde_json::Value::Array(signals);
        if self.action == AnomalyAction::Shadow {
            tracing::info!(target: "rampart::anomaly", subject = %label, route, action, signals = %signals, "anomalous traffic");
        } else {
            tracing::warn!(target: "rampart::anomaly", subject = %label, route, action, signals = %signals, "anomalous traffic");
        }
        if let Some(t) = &self.trail {
            t.offer(
                "anomaly",
                Fields::new()
                    .str("subject", &label)
                    .str("route", route)
                    .str("action", action)
                    .num("window_start", flag.window_start)
                    .num("window_seconds", self.tuning.window)
                    .json("signals", &signals),
            );
        }
        if exempt {
            return;
        }
        let kind = match self.action {
            AnomalyAction::Throttle => Kind::Throttle,
            AnomalyAction::Ban => Kind::Ban,
            AnomalyAction::Shadow | AnomalyAction::Alert => return,
        };
        let now = unix_ns(time);
        self.sanctions.impose(
            subject,
            kind,
            now.saturating_add(self.duration_ns),
            now,
            true,
        );
    }
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A time as Unix nanoseconds (0 before the epoch).
pub(crate) fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Runs `work` on a thread of its own (named `name`) with its own current-thread
/// runtime: the telemetry and sharing threads, which never touch a request's worker.
pub(crate) fn own_runtime(
    name: &str,
    work: impl FnOnce(&tokio::runtime::Runtime) + Send + 'static,
) -> Result<(), String> {
    let label = name.to_string();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => work(&rt),
                Err(e) => tracing::error!(thread = %label, error = %e, "cannot start a runtime"),
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the thread {name}: {e}"))
}

/// Refuses throttled and banned client addresses first of all.
struct Gate(Arc<Detector>);

impl Filter for Gate {
    fn phase(&self) -> Phase {
        Phase::IpRules
    }

    fn name(&self) -> &'static str {
        "anomaly.gate"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        if self.0.sanctions.active() == 0 {
            return Flow::Continue;
        }
        self.0.gate(&Subject::ip(cx.exchange.client_ip), cx)
    }
}

/// Watches one route: refuses sanctioned consumers, and counts every exchange.
struct Watch {
    detector: Arc<Detector>,
    route: u32,
    name: Arc<str>,
    params: PathParams,
    /// The index of the id parameter in `params`.
    id: Option<usize>,
    /// No authentication on the route: the watcher runs first and gates the address.
    public: bool,
}

fn caller(x: &rampart_core::ExchangeCtx) -> Option<Arc<str>> {
    let id = x.identity.as_deref()?;
    Some(id.consumer.clone().unwrap_or_else(|| id.subject.clone()))
}

impl Filter for Watch {
    fn phase(&self) -> Phase {
        if self.public {
            Phase::IpRules
        } else {
            Phase::RateLimit
        }
    }

    fn name(&self) -> &'static str {
        "anomaly"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        if let Some(v) = self.id.and_then(|i| self.params.value(cx.path, i)) {
            cx.exchange.object_id = Some(self.detector.ids.hash_one(v));
        }
        if self.detector.sanctions.active() == 0 {
            return Flow::Continue;
        }
        if self.public {
            return self.detector.gate(&Subject::ip(cx.exchange.client_ip), cx);
        }
        match caller(cx.exchange) {
            Some(c) => self.detector.gate(&Subject::Consumer(c), cx),
            None => Flow::Continue,
        }
    }

    fn on_log(&self, record: &ExchangeRecord<'_>) {
        // An exchange that ended before it had a context (a malformed request) was
        // refused before any route was taken.
        let Some(x) = record.exchange else {
            return;
        };
        let subject = match x.identity.as_deref() {
            Some(i) => SubjectRef::Consumer(i.consumer.as_deref().unwrap_or(&i.subject)),
            None => SubjectRef::ip(x.client_ip),
        };
        let id = x.object_id;
        let now = unix_ns(record.time) / 1_000_000_000;
        let d = &self.detector;
        if let Some(flag) = d.table.observe(
            subject,
            self.route,
            now,
            Seen {
                status: record.status,
                bytes: record.bytes_out,
                id,
            },
            &d.tuning,
        ) {
            d.flagged(&subject.to_subject(), &self.name, &flag, record.time);
        }
    }
}

impl MetricsSource for Detector {
    /// Sanctions in force, then the callers whose last closed window scored highest.
    fn callers(&self, max: usize) -> Vec<rampart_core::CallerRow> {
        let now = unix_ns(SystemTime::now());
        let mut out: Vec<rampart_core::CallerRow> = self
            .sanctions
            .in_force(now)
            .into_iter()
            .map(|(subject, kind, until)| rampart_core::CallerRow {
                caller: subject.label(),
                scope: "all routes".into(),
                source: kind.as_str(),
                detail: format!("for {} s more", until.saturating_sub(now) / 1_000_000_000),
                level: 1.0,
            })
            .collect();
        let threshold = self.tuning.threshold.max(f64::MIN_POSITIVE);
        for (subject, route, signal, score) in self.table.top_scores(max) {
            out.push(rampart_core::CallerRow {
                caller: subject.label(),
                scope: self
                    .routes
                    .get(route as usize)
                    .map_or_else(String::new, |r| r.to_string()),
                source: "anomaly",
                detail: format!("{signal} {score:.1} σ over its baseline (flagged at {threshold})"),
                level: (score / threshold).clamp(0.0, 0.99),
            });
        }
        out.truncate(max);
        out
    }

    fn render(&self, out: &mut MetricsText) {
        let c = &self.counters;
        out.family(
            "rampart_anomaly_tracked",
            "gauge",
            "Callers and routes whose traffic is being learnt.",
        );
        out.sample(
            "rampart_anomaly_tracked",
            &[],
            self.table.tracked.load(Ordering::Relaxed) as u64,
        );
        out.family(
            "rampart_anomaly_evicted_total",
            "counter",
            "Callers forgotten to make room (idle ones first).",
        );
        out.sample(
            "rampart_anomaly_evicted_total",
            &[],
            self.table.evicted.load(Ordering::Relaxed),
        );
        out.family(
            "rampart_anomaly_flags_total",
            "counter",
            "Windows flagged, by the signal that scored over the threshold.",
        );
        for (i, s) in SIGNALS.iter().enumerate() {
            out.sample(
                "rampart_anomaly_flags_total",
                &[("signal", s)],
                c.flags[i].load(Ordering::Relaxed),
            );
        }
        out.family(
            "rampart_anomaly_actions_total",
            "counter",
            "Flagged windows by the action taken (exempt: a consumer never throttled or banned).",
        );
        for (i, a) in ["shadow", "alert", "throttle", "ban", "exempt"]
            .iter()
            .enumerate()
        {
            out.sample(
                "rampart_anomaly_actions_total",
                &[("action", a)],
                c.actions[i].load(Ordering::Relaxed),
            );
        }
        out.family(
            "rampart_anomaly_sanctions",
            "gauge",
            "Throttles and bans held (some may have ended and not been looked at since).",
        );
        out.sample(
            "rampart_anomaly_sanctions",
            &[],
            self.sanctions.active() as u64,
        );
        out.family(
            "rampart_anomaly_refused_total",
            "counter",
            "Requests refused by a throttle or ban.",
        );
        out.sample(
            "rampart_anomaly_refused_total",
            &[("kind", "throttle")],
            c.throttled.load(Ordering::Relaxed),
        );
        out.sample(
            "rampart_anomaly_refused_total",
            &[("kind", "ban")],
            c.banned.load(Ordering::Relaxed),
        );
        out.family(
            "rampart_anomaly_sanctions_dropped_total",
            "counter",
            "Throttles or bans not kept: the table was full of live ones.",
        );
        out.sample(
            "rampart_anomaly_sanctions_dropped_total",
            &[],
            self.sanctions.dropped.load(Ordering::Relaxed),
        );
        out.family(
            "rampart_anomaly_redis_errors_total",
            "counter",
            "Failed Redis calls sharing throttles and bans.",
        );
        out.sample(
            "rampart_anomaly_redis_errors_total",
            &[],
            self.sanctions.redis_errors.load(Ordering::Relaxed),
        );
    }
}
