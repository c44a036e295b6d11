//! What the gateway publishes about itself for operators: a status snapshot (readiness,
//! upstream and target state, the admin settings, the last reload), the effective config
//! with its fingerprint, and the `/metrics` page. The admin API reads only these, never
//! the plan's internals, so the data plane can change shape without breaking it.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use rampart_core::MetricsText;
use sha2::Digest;

use crate::metrics::{render_requests, render_upstreams_and_listeners};
use crate::plan::{AdminPlan, Plan};
use crate::server::{Gateway, ReloadStatus};

/// A point-in-time view of the gateway, cheap to take (no config serialisation).
#[derive(Debug, Clone)]
pub struct GatewayStatus {
    /// A graceful drain has begun: readiness fails.
    pub draining: bool,
    /// The admin API's settings in the running plan.
    pub admin: Option<AdminPlan>,
    /// Header limits and timeouts the admin listener applies too.
    pub head: crate::h1_guard::HeadLimits,
    pub upstreams: Vec<UpstreamStatus>,
    pub last_reload: Option<ReloadStatus>,
    pub loaded_at: SystemTime,
}

/// One upstream's targets as health checks and passive ejection see them.
#[derive(Debug, Clone)]
pub struct UpstreamStatus {
    pub name: String,
    pub targets: Vec<TargetStatus>,
}

#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub url: String,
    pub weight: u32,
    /// The active health check's verdict.
    pub healthy: bool,
    /// Passively ejected after failures.
    pub ejected: bool,
    pub in_flight: u64,
    /// May receive traffic now (healthy and not ejected).
    pub available: bool,
}

impl UpstreamStatus {
    /// True when at least one target may receive traffic.
    pub fn is_available(&self) -> bool {
        self.targets.iter().any(|t| t.available)
    }
}

/// A short fingerprint of a secret value (first 16 hex digits of its SHA-256), so two
/// configurations can be compared for the same secret without revealing it.
pub fn secret_fingerprint(value: &str) -> String {
    sha2::Sha256::digest(value.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The plan's effective config as JSON (defaults filled in; secret fields show their
/// reference, and the admin token a fingerprint of its value) and the SHA-256 of it.
pub fn effective_config(plan: &Plan) -> (serde_json::Value, String) {
    let mut config = serde_json::to_value(&*plan.spec).unwrap_or(serde_json::Value::Null);
    // Secrets show a fingerprint of their value, so drift in a secret is visible (and
    // changes the config fingerprint) without the value ever leaving the process.
    if let (Some(token), Some(obj)) = (
        plan.admin.as_ref().and_then(|a| a.token.as_ref()),
        config
            .pointer_mut("/admin/token")
            .and_then(|t| t.as_object_mut()),
    ) {
        obj.insert(
            "fingerprint".into(),
            secret_fingerprint(token.expose()).into(),
        );
    }
    if let (Some(token), Some(obj)) = (
        plan.admin.as_ref().and_then(|a| a.read_token.as_ref()),
        config
            .pointer_mut("/admin/read_token")
            .and_then(|t| t.as_object_mut()),
    ) {
        obj.insert(
            "fingerprint".into(),
            secret_fingerprint(token.expose()).into(),
        );
    }
    let fingerprint = hex(&sha2::Sha256::digest(config.to_string().as_bytes()));
    (config, fingerprint)
}

/// The traffic counters now, for the dashboard (which samples them once a second).
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    /// Per route, in config order; then the requests that matched no route, named "".
    pub routes: Vec<RouteTraffic>,
    /// The gateway's own answers so far, by reason code.
    pub codes: Vec<(&'static str, u64)>,
    /// Per upstream target: (upstream, url, exchanges, failures, microseconds to head).
    pub targets: Vec<(String, String, u64, u64, u64)>,
}

#[derive(Debug, Clone)]
pub struct RouteTraffic {
    pub name: std::sync::Arc<str>,
    pub totals: rampart_observe::metrics::RouteTotals,
    /// Identity and access decisions: (reason code, outcome, count).
    pub decisions: Vec<(&'static str, rampart_core::Outcome, u64)>,
}

impl Gateway {
    /// The traffic counters now.
    pub fn traffic(&self) -> Traffic {
        let plan = self.plan();
        let mut routes: Vec<RouteTraffic> = plan
            .routes
            .iter()
            .map(|r| RouteTraffic {
                name: r.name.clone(),
                totals: r.metrics.totals(),
                decisions: r.metrics.decision_counts(),
            })
            .collect();
        routes.push(RouteTraffic {
            name: "".into(),
            totals: plan.unrouted.totals(),
            decisions: Vec::new(),
        });
        Traffic {
            routes,
            codes: plan.codes.counts(),
            targets: plan
                .upstreams
                .iter()
                .flat_map(|u| {
                    u.targets.iter().map(move |t| {
                        (
                            u.name.to_string(),
                            t.url.to_string(),
                            t.metrics.requests.load(Ordering::Relaxed),
                            t.metrics.errors.load(Ordering::Relaxed),
                            t.metrics.header_micros(),
                        )
                    })
                })
                .collect(),
        }
    }

    /// What the features know about individual callers now (limit usage, anomaly
    /// scores, sanctions), most notable first, at most `max`.
    pub fn callers(&self, max: usize) -> Vec<rampart_core::CallerRow> {
        let plan = self.plan();
        let mut rows: Vec<rampart_core::CallerRow> = plan
            .metric_sources
            .iter()
            .flat_map(|s| s.callers(max))
            .collect();
        rows.sort_by(|a, b| b.level.total_cmp(&a.level));
        rows.truncate(max);
        rows
    }

    /// The dashboard's live decisions, when the running config serves a dashboard.
    pub fn decision_tap(&self) -> Option<std::sync::Arc<rampart_observe::tap::DecisionTap>> {
        self.plan().tap.clone()
    }

    /// The status snapshot.
    pub fn status(&self) -> GatewayStatus {
        let plan = self.plan();
        let now = crate::upstream::now_ms();
        GatewayStatus {
            draining: self.is_draining(),
            admin: plan.admin.clone(),
            head: plan.limits.head,
            upstreams: plan
                .upstreams
                .iter()
                .map(|u| UpstreamStatus {
                    name: u.name.to_string(),
                    targets: u
                        .targets
                        .iter()
                        .map(|t| TargetStatus {
                            url: t.url.to_string(),
                            weight: t.weight,
                            healthy: t.active_healthy.load(Ordering::Relaxed),
                            ejected: t.is_ejected(),
                            in_flight: t.in_flight.load(Ordering::Relaxed) as u64,
                            available: t.is_available(now),
                        })
                        .collect(),
                })
                .collect(),
            last_reload: self.last_reload(),
            loaded_at: plan.loaded_at,
        }
    }

    /// The running plan's effective config and its fingerprint.
    pub fn effective_config(&self) -> (serde_json::Value, String) {
        effective_config(&self.plan())
    }

    /// The `/metrics` page (Prometheus text format): request counters and durations by
    /// route, gateway answers by reason code, decisions, connections, targets, the
    /// features' own series, reloads and the config fingerprint.
    pub fn metrics_text(&self) -> String {
        let gw = self;
        let plan = gw.plan();
        let mut routes: Vec<(&str, &crate::metrics::RouteMetrics)> = plan
            .routes
            .iter()
            .map(|r| (&*r.name, &*r.metrics))
            .collect();
        routes.push(("", &plan.unrouted));
        let mut out = MetricsText::new();
        render_requests(&mut out, &routes, &plan.codes);
        let targets: Vec<(&str, &str, &crate::metrics::TargetMetrics)> = plan
            .upstreams
            .iter()
            .flat_map(|u| {
                u.targets
                    .iter()
                    .map(move |t| (&*u.name, &*t.url, &*t.metrics))
            })
            .collect();
        let listeners: Vec<(&str, &crate::metrics::ListenerMetrics)> = plan
            .listeners
            .iter()
            .map(|l| (&*l.name, &*l.metrics))
            .collect();
        render_upstreams_and_listeners(&mut out, &targets, &listeners);
        for source in &plan.metric_sources {
            source.render(&mut out);
        }
        out.family(
            "rampart_connections_open",
            "gauge",
            "Client connections open.",
        );
        out.sample(
            "rampart_connections_open",
            &[],
            gw.open_connections() as u64,
        );
        out.family(
            "rampart_target_healthy",
            "gauge",
            "1 when a target may receive traffic (health checks and passive ejection).",
        );
        let now = crate::upstream::now_ms();
        for u in &plan.upstreams {
            for t in &u.targets {
                out.sample(
                    "rampart_target_healthy",
                    &[("upstream", &u.name), ("target", &t.url)],
                    u64::from(t.is_available(now)),
                );
            }
        }
        let (ok, failed) = gw.reload_counts();
        out.family(
            "rampart_reloads_total",
            "counter",
            "Configuration reloads by result.",
        );
        out.sample("rampart_reloads_total", &[("result", "success")], ok);
        out.sample("rampart_reloads_total", &[("result", "failure")], failed);
        let (_, fingerprint) = effective_config(&plan);
        out.family(
            "rampart_config_info",
            "gauge",
            "The running configuration's fingerprint.",
        );
        out.sample("rampart_config_info", &[("fingerprint", &fingerprint)], 1);
        out.family(
            "rampart_access_log_dropped_total",
            "counter",
            "Access log lines dropped because the writer fell behind.",
        );
        out.sample(
            "rampart_access_log_dropped_total",
            &[],
            gw.access_log_dropped(),
        );
        out.finish()
    }
}
