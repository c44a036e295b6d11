//! Routes, consumers, upstreams and security: what the running config does, in words,
//! beside what the counters say it has been doing.

use std::collections::HashMap;

use maud::{html, Markup};
use rampart_config::{PolicyMode, RouteSpec};

use super::{clock, layout};
use crate::ui::session::Session;
use crate::State;

fn mode(m: PolicyMode) -> &'static str {
    match m {
        PolicyMode::Enforce => "",
        PolicyMode::Shadow => " (shadow: logged, not enforced)",
    }
}

/// A setting block in a few words: its scalar fields and list lengths, as `key value`.
fn words(v: &serde_json::Value) -> String {
    let Some(obj) = v.as_object() else {
        return v.to_string();
    };
    obj.iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(format!("{k} {s}")),
            serde_json::Value::Array(a) if a.is_empty() => None,
            serde_json::Value::Array(a) if a.iter().all(|x| x.is_string()) => Some(format!(
                "{k} {}",
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            serde_json::Value::Array(a) => Some(format!("{k}: {} entries", a.len())),
            serde_json::Value::Object(_) => Some(format!("{k}: {}", words(v))),
            other => Some(format!("{k} {other}")),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The policies a route applies, each in a sentence.
fn policies(r: &RouteSpec) -> Vec<String> {
    let mut out = Vec::new();
    if r.authenticate.is_empty() {
        out.push("Open: no authentication.".to_string());
    } else {
        out.push(format!(
            "Callers prove who they are with {}{}.",
            r.authenticate.join(" or "),
            mode(r.auth_mode)
        ));
    }
    if let Some(a) = &r.authorize {
        let mut need = Vec::new();
        for (what, list) in [
            ("a role of", &a.roles_any),
            ("every role of", &a.roles_all),
            ("a scope of", &a.scopes_any),
            ("every scope of", &a.scopes_all),
            ("being one of the consumers", &a.consumers),
        ] {
            if !list.is_empty() {
                need.push(format!("{what} {}", list.join(", ")));
            }
        }
        if !a.policies.is_empty() {
            need.push(format!("{} Cedar policy file(s)", a.policies.len()));
        }
        out.push(format!("Access needs {}.", need.join(" and ")));
    }
    let block =
        |label: &str, v: Option<serde_json::Value>| v.map(|v| format!("{label}: {}.", words(&v)));
    out.extend(block("Rate limit", r.rate_limit.as_deref().map(json)));
    out.extend(block("Concurrency", r.concurrency.as_deref().map(json)));
    out.extend(block("IP rules", r.ip_rules.as_deref().map(json)));
    out.extend(block("Bot rules", r.bots.as_deref().map(json)));
    out.extend(block("OpenAPI validation", r.validate.as_deref().map(json)));
    out.extend(block("JSON limits", r.json_limits.as_deref().map(json)));
    out.extend(block("Injection detection", r.inspect.as_deref().map(json)));
    out.extend(block("Response masking", r.mask.as_deref().map(json)));
    if r.websocket {
        out.push("WebSocket upgrades are forwarded.".into());
    }
    out
}

/// A setting block as JSON, for [`words`].
fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn matcher(r: &RouteSpec) -> String {
    let m = &r.matcher;
    let mut parts = Vec::new();
    if !m.methods.is_empty() {
        parts.push(m.methods.join(" "));
    }
    if !m.hosts.is_empty() {
        parts.push(m.hosts.join(", "));
    }
    if let Some(p) = &m.path {
        parts.push(p.clone());
    }
    if let Some(p) = &m.path_prefix {
        parts.push(format!("{p}…"));
    }
    if !m.headers.is_empty() {
        parts.push(format!("{} header rule(s)", m.headers.len()));
    }
    parts.join(" ")
}

pub(crate) fn routes(state: &State, session: &Session) -> Markup {
    let plan = state.gateway.plan();
    let traffic = state.gateway.traffic();
    let by: HashMap<&str, &rampart_proxy::status::RouteTraffic> =
        traffic.routes.iter().map(|r| (&*r.name, r)).collect();
    let body = html! {
        p.lead { "Each route in the order they are matched, with what it has answered since the gateway started and the policies it applies." }
        @for r in &plan.spec.routes {
            @let t = by.get(r.name.as_str()).map(|t| t.totals).unwrap_or_default();
            section.route aria-label=(r.name) {
                h2 { (r.name) }
                p.quiet { code { (matcher(r)) } " → upstream " code { (r.upstream) } }
                p { (t.count) " requests: " (t.by_class[1]) " 2xx, " (t.by_class[3]) " 4xx, " (t.by_class[4]) " 5xx"
                    @if let Some(p99) = t.quantile(0.99) { "; p99 ≤ " (p99 * 1000.0) " ms" } "." }
                ul { @for p in policies(r) { li { (p) } } }
                @if let Some(t) = by.get(r.name.as_str()) {
                    @if !t.decisions.is_empty() {
                        details {
                            summary { "Decisions" }
                            table {
                                thead { tr { th scope="col" { "Reason" } th scope="col" { "Outcome" } th scope="col" { "Count" } } }
                                tbody { @for (code, outcome, n) in &t.decisions {
                                    tr { td { code { (code) } } td { (outcome.as_str()) } td.num { (n) } }
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(session, "routes", "Routes", body)
}

pub(crate) fn consumers(state: &State, session: &Session) -> Markup {
    let plan = state.gateway.plan();
    let tap = state.gateway.decision_tap();
    let mut refused: HashMap<String, (u64, &'static str)> = HashMap::new();
    for e in tap.map(|t| t.since(0)).unwrap_or_default() {
        if let Some(c) = &e.consumer {
            let slot = refused.entry(c.to_string()).or_insert((0, e.code));
            slot.0 += 1;
            slot.1 = e.code;
        }
    }
    let mut top: Vec<(&String, &(u64, &str))> = refused.iter().collect();
    top.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    let watched = state.gateway.callers(50);
    let body = html! {
        section aria-labelledby="watch-h" {
            h2 id="watch-h" { "Closest to their limits, anomalies and sanctions" }
            @if watched.is_empty() {
                p.quiet { "No consumer has used any of a limit kept in this process, and no caller is scored or sanctioned." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Caller" } th scope="col" { "What" } th scope="col" { "Where" } th scope="col" { "Now" } th scope="col" { span.sr { "How close" } } } }
                    tbody { @for r in &watched {
                        tr {
                            td { (r.caller) }
                            td { @match r.source {
                                "ban" => { span.badge.bad { "banned" } }
                                "throttle" => { span.badge.warn { "throttled" } }
                                other => { (other) }
                            } }
                            td { (r.scope) }
                            td { (r.detail) }
                            td { svg.bar viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true" {
                                rect width=((r.level.clamp(0.0, 1.0) * 100.0).round()) height="8" {}
                            } }
                        }
                    } }
                }
            }
        }
        section aria-labelledby="top-h" {
            h2 id="top-h" { "Most refused, recently" }
            @if top.is_empty() {
                p.quiet { "No proved consumer has been refused in the recent decisions." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Consumer" } th scope="col" { "Refused" } th scope="col" { "Latest reason" } } }
                    tbody { @for (c, (n, code)) in top.iter().take(20) {
                        tr { td { (c) } td.num { (n) } td { code { (code) } } }
                    } }
                }
            }
        }
        section aria-labelledby="conf-h" {
            h2 id="conf-h" { "Consumers in the config" }
            table {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Plan" } th scope="col" { "Roles" } th scope="col" { "Scopes" } th scope="col" { "Credentials" } } }
                tbody { @for c in &plan.spec.consumers {
                    tr {
                        td { (c.id) }
                        td { (c.plan.as_deref().unwrap_or("–")) }
                        td { (c.roles.join(", ")) }
                        td { (c.scopes.join(", ")) }
                        td { (c.api_keys.len()) " API key(s), " (c.certificates.len()) " certificate(s), " (c.signing_keys.len()) " signing key(s)" }
                    }
                } }
            }
        }
    };
    layout(session, "consumers", "Consumers", body)
}

pub(crate) fn upstreams(state: &State, session: &Session) -> Markup {
    let status = state.gateway.status();
    let traffic = state.gateway.traffic();
    let body = html! {
        @for u in &status.upstreams {
            section aria-label=(u.name) {
                h2 { (u.name) " "
                    @if u.is_available() { span.badge.ok { "available" } } @else { span.badge.bad { "no usable target" } } }
                table {
                    thead { tr {
                        th scope="col" { "Target" } th scope="col" { "Health check" } th scope="col" { "Breaker" }
                        th scope="col" { "In flight" } th scope="col" { "Exchanges" } th scope="col" { "Failures" } th scope="col" { "Mean time to head" }
                    } }
                    tbody { @for t in &u.targets {
                        @let m = traffic.targets.iter().find(|x| x.0 == u.name && x.1 == t.url);
                        tr {
                            td { code { (t.url) } }
                            td { @if t.healthy { span.badge.ok { "healthy" } } @else { span.badge.bad { "unhealthy" } } }
                            td { @if t.ejected { span.badge.bad { "open (ejected)" } } @else { "closed" } }
                            td.num { (t.in_flight) }
                            td.num { (m.map_or(0, |m| m.2)) }
                            td.num { (m.map_or(0, |m| m.3)) }
                            td.num { @match m { Some(m) if m.2 > 0 => { (format!("{:.1} ms", m.4 as f64 / m.2 as f64 / 1000.0)) } _ => { "–" } } }
                        }
                    } }
                }
            }
        }
    };
    layout(session, "upstreams", "Upstreams", body)
}

pub(crate) fn security(state: &State, session: &Session) -> Markup {
    let plan = state.gateway.plan();
    let report = rampart_posture::evaluate(
        &plan.spec,
        &plan.base,
        "running gateway",
        std::time::SystemTime::now(),
    );
    let trail = rampart_observe::audit_trail::current(&plan.state, &plan.spec);
    let drift = plan.origin.as_ref().map(|o| {
        let on_disk = std::fs::read_to_string(&o.source)
            .map(|t| rampart_observe::config_history::version_id(&t));
        (o.source.display().to_string(), on_disk, o.version.clone())
    });
    let reload = state.gateway.last_reload();
    let changes = plan
        .origin
        .as_ref()
        .and_then(|o| rampart_observe::config_history::History::of(&plan.spec, o.base()))
        .and_then(|h| h.list().ok())
        .map(|mut v| {
            v.reverse();
            v.truncate(5);
            v
        })
        .unwrap_or_default();
    let body = html! {
        section aria-labelledby="posture-h" {
            h2 id="posture-h" { "Posture" }
            p { span.badge.ok { (report.summary.pass) " pass" } " "
                span.badge.warn { (report.summary.warn) " warn" } " "
                span.badge.bad { (report.summary.fail) " fail" }
                " — the running config checked against OWASP API Top 10 and NIST 800-53 controls." }
            table {
                thead { tr { th scope="col" { "Status" } th scope="col" { "Check" } th scope="col" { "Where" } th scope="col" { "Why" } th scope="col" { "Controls" } } }
                tbody { @for f in report.findings.iter().filter(|f| f.status != rampart_posture::Status::Pass) {
                    tr id={"finding-" (f.check.id)} {
                        td { span class={"badge " (f.status.as_str())} { (f.status.as_str()) } }
                        td { a href={"#finding-" (f.check.id)} { (f.check.title) } }
                        td { code { (f.scope) } }
                        td { (f.reason) }
                        td { (f.check.owasp.join(", ")) " " (f.check.nist.join(", ")) }
                    }
                } }
            }
        }
        section aria-labelledby="trail-h" {
            h2 id="trail-h" { "Audit trail" }
            @match &trail {
                None => { p.alert { "No audit trail is configured: admin actions and security events are only in the process log." } }
                Some(t) if t.is_failing() => { p.alert role="alert" { "The audit trail cannot be written: changes are refused until it can." } }
                Some(t) => {
                    p { span.badge.ok { "writing" } " Entries are hash-chained and checkpoints signed with key " code { (t.key_id()) } "." }
                    @match t.check_now() {
                        Ok(v) => { p { span.badge.ok { "verified now" } " " (v.entries) " entries and " (v.checkpoints) " signed checkpoints check out; "
                            (v.unsigned_tail) " entries since the last checkpoint." } }
                        Err(e) => { p.alert role="alert" { span.badge.bad { "does not verify" } " " (e) } }
                    }
                }
            }
        }
        section aria-labelledby="drift-h" {
            h2 id="drift-h" { "Drift" }
            @match &drift {
                None => { p.quiet { "The running config was not loaded from a file." } }
                Some((path, Ok(disk), running)) if disk == running => { p { span.badge.ok { "in step" } " " code { (path) } " on disk is the running config." } }
                Some((path, Ok(disk), running)) => { p.alert { span.badge.warn { "drift" } " " code { (path) } " on disk (" code { (&disk[..12]) } ") is not the running config (" code { (&running[..12]) } "). Reload to apply it, or look at the difference under Config." } }
                Some((path, Err(e), _)) => { p.alert { "Cannot read " code { (path) } ": " (e) } }
            }
            @if !changes.is_empty() {
                h2 { "Recent config changes" }
                table {
                    thead { tr { th scope="col" { "Version" } th scope="col" { "Made live (UTC)" } th scope="col" { "How" } } }
                    tbody { @for v in &changes {
                        tr { td { code { (&v.id[..v.id.len().min(12)]) } } td { (super::config::date(v.time_unix)) } td { (v.action) } }
                    } }
                }
                p { a href="/ui/config" { "Diffs and rollback under Config →" } }
            }
            @if let Some(r) = &reload {
                @let at = r.at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                p { "Last reload at " (clock(at)) " UTC: " @if r.ok { "applied." } @else { "refused (" (r.errors.len()) " problems); the config before it stays." } }
            }
        }
    };
    layout(session, "security", "Security", body)
}
