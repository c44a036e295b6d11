//! The checks: what each looks at, why, and which controls it maps to. Every check is
//! documented in docs/evidence.md with the same words.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use rampart_config::{PolicyMode, Spec, TlsVersion};

use crate::certs::CertInfo;
use crate::{Finding, Status};

/// One check and the controls it maps to.
#[derive(Debug)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub owasp: &'static [&'static str],
    pub nist: &'static [&'static str],
    pub pci: &'static [&'static str],
}

macro_rules! checks {
    ($($name:ident = $id:literal, $title:literal, [$($o:literal),*], [$($n:literal),*], [$($p:literal),*];)*) => {
        $(pub const $name: &Check = &Check {
            id: $id, title: $title, owasp: &[$($o),*], nist: &[$($n),*], pci: &[$($p),*],
        };)*
        /// Every check, in report order.
        pub const CHECKS: &[&Check] = &[$($name),*];
    };
}

checks! {
    LISTENER_TLS = "listener.tls", "Listeners encrypt traffic", ["API8:2023"], ["SC-8", "SC-13"], ["4.2.1"];
    TLS_VERSION = "listener.tls_version", "Only current TLS versions", ["API8:2023"], ["SC-8", "SC-13"], ["4.2.1"];
    CERT_EXPIRY = "certificate.expiry", "Certificates are valid for 30 days more", ["API8:2023"], ["SC-17", "SC-8"], ["4.2.1"];
    ADMIN_EXPOSURE = "admin.exposure", "The admin API is not reachable without mTLS", ["API8:2023"], ["AC-17", "SC-7", "CM-7"], ["1.4.1", "2.2.4"];
    TRUSTED_PROXIES = "network.trusted_proxies", "Only real proxies may set the client address", ["API8:2023"], ["SC-7", "AU-3"], [];
    AUDIT_TRAIL = "audit.trail", "A tamper-evident audit trail is kept", [], ["AU-2", "AU-9", "AU-10", "AU-12", "AU-5"], ["10.2.1", "10.3.2", "10.3.4"];
    AUDIT_COPY = "audit.checkpoint_copy", "Audit checkpoints are copied off the trail's disk", [], ["AU-9"], ["10.3.4"];
    AUDIT_EVENTS = "audit.security_events", "Security events are audited", ["API8:2023"], ["AU-2", "SI-4"], ["10.2.1", "10.7.2"];
    ACCESS_LOG = "logging.access_log", "Every request is logged", ["API8:2023"], ["AU-2", "AU-3", "AU-12"], ["10.2.1"];
    ANOMALY = "monitoring.anomaly", "Traffic is watched for anomalies per caller", ["API1:2023", "API4:2023", "API6:2023"], ["SI-4"], [];
    CONFIG_HISTORY = "config.history", "Config versions are kept for rollback", [], ["CM-2", "CM-3", "CP-10"], [];
    AUTH_LOCKOUT = "auth.lockout", "Repeated authentication failures lock the client out", ["API2:2023"], ["AC-7"], ["8.3.4"];
    KEY_LIFETIME = "auth.key_lifetime", "API keys expire", ["API2:2023"], ["IA-5"], ["8.6.3"];
    UPSTREAM_TLS = "upstream.tls", "Traffic to upstreams is encrypted", ["API10:2023"], ["SC-8"], ["4.2.1"];
    ROUTE_AUTHN = "route.authentication", "Callers prove who they are", ["API2:2023"], ["IA-2", "AC-3"], ["8.2.1", "8.3.1"];
    ROUTE_AUTHZ = "route.authorization", "What a caller may call is decided", ["API5:2023", "API1:2023"], ["AC-3", "AC-6"], ["7.2.1"];
    ROUTE_RATE = "route.rate_limit", "Request rates are limited", ["API4:2023", "API6:2023"], ["SC-5"], [];
    ROUTE_INPUT = "route.input_validation", "Input is validated before the upstream sees it", ["API8:2023", "API9:2023"], ["SI-10"], ["6.4.2"];
    ROUTE_SHADOW = "route.shadow_policies", "Policies enforce (none left in shadow mode)", ["API8:2023"], ["CM-6"], [];
    ROUTE_OUTPUT = "route.data_exposure", "Responses are filtered for sensitive data", ["API3:2023"], ["SI-15", "SI-19"], ["3.4.1"];
    ROUTE_CREDENTIALS = "route.credential_forwarding", "Callers' credentials stay at the gateway", ["API8:2023"], ["IA-5", "AC-6"], [];
    ROUTE_CORS = "route.cors", "Cross-origin access is limited to named origins", ["API8:2023"], ["SC-7"], [];
}

/// How long before a certificate's expiry it is a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86400);

struct Out(Vec<Finding>);

impl Out {
    fn add(&mut self, check: &'static Check, scope: String, status: Status, reason: String) {
        self.0.push(Finding {
            check,
            scope,
            status,
            reason,
        });
    }
}

fn loopback(bind: &SocketAddr) -> bool {
    bind.ip().is_loopback()
}

/// Every finding for `spec`, given the certificates it names and the time.
pub(crate) fn run(spec: &Spec, certs: &[CertInfo], now: SystemTime) -> Vec<Finding> {
    let mut o = Out(Vec::new());
    listeners(spec, &mut o);
    for c in certs {
        certificate(c, now, &mut o);
    }
    admin(spec, &mut o);
    proxies(spec, &mut o);
    evidence(spec, &mut o);
    monitoring(spec, &mut o);
    identity(spec, now, &mut o);
    for (name, u) in &spec.upstreams {
        let plain: Vec<&str> = u
            .targets
            .iter()
            .filter(|t| t.url.starts_with("http://") && !loopback_url(&t.url))
            .map(|t| t.url.as_str())
            .collect();
        let scope = format!("upstream:{name}");
        if plain.is_empty() {
            o.add(
                UPSTREAM_TLS,
                scope,
                Status::Pass,
                "every target is HTTPS or on loopback".into(),
            );
        } else {
            o.add(
                UPSTREAM_TLS,
                scope,
                Status::Warn,
                format!(
                    "plain HTTP to {}: traffic and upstream credentials cross the network readable",
                    plain.join(", ")
                ),
            );
        }
    }
    for r in &spec.routes {
        route(spec, r, &mut o);
    }
    o.0
}

fn loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn listeners(spec: &Spec, o: &mut Out) {
    for l in &spec.listeners {
        let scope = format!("listener:{}", l.name);
        match &l.tls {
            Some(tls) => {
                o.add(LISTENER_TLS, scope.clone(), Status::Pass, format!("TLS on {}", l.bind));
                match tls.min_version {
                    TlsVersion::Tls13 => o.add(TLS_VERSION, scope, Status::Pass, "TLS 1.3 only".into()),
                    TlsVersion::Tls12 => o.add(TLS_VERSION, scope, Status::Warn, "TLS 1.2 is allowed (its cipher suites are limited to AEAD with forward secrecy); set min_version: \"1.3\" when every client supports it".into()),
                }
            }
            None if loopback(&l.bind) => o.add(LISTENER_TLS, scope, Status::Pass, format!("plain HTTP on loopback only ({})", l.bind)),
            None if !spec.trusted_proxies.is_empty() => o.add(LISTENER_TLS, scope, Status::Warn, format!("plain HTTP on {}: TLS must end at the trusted proxies in front of it", l.bind)),
            None => o.add(LISTENER_TLS, scope, Status::Fail, format!("plain HTTP on {} with no trusted proxy in front: credentials and data cross the network readable", l.bind)),
        }
    }
}

fn certificate(c: &CertInfo, now: SystemTime, o: &mut Out) {
    let scope = format!("certificate:{} ({})", c.usage, c.file.display());
    let Some(not_after) = c.not_after else {
        o.add(
            CERT_EXPIRY,
            scope,
            Status::Fail,
            c.error.clone().unwrap_or_else(|| "cannot be read".into()),
        );
        return;
    };
    let date = humantime::format_rfc3339_seconds(not_after);
    match not_after.duration_since(now) {
        Err(_) => o.add(
            CERT_EXPIRY,
            scope,
            Status::Fail,
            format!("{} expired on {date}", c.subject),
        ),
        Ok(left) if left < EXPIRY_WARNING => o.add(
            CERT_EXPIRY,
            scope,
            Status::Warn,
            format!(
                "{} expires in {} days ({date})",
                c.subject,
                left.as_secs() / 86400
            ),
        ),
        Ok(left) => o.add(
            CERT_EXPIRY,
            scope,
            Status::Pass,
            format!(
                "{} expires in {} days ({date})",
                c.subject,
                left.as_secs() / 86400
            ),
        ),
    }
}

fn admin(spec: &Spec, o: &mut Out) {
    let scope = "global".to_string();
    let Some(a) = &spec.admin else {
        o.add(ADMIN_EXPOSURE, scope, Status::Pass, "no admin API".into());
        return;
    };
    let mtls = a
        .tls
        .as_ref()
        .and_then(|t| t.client_auth.as_ref())
        .is_some_and(|c| c.required);
    if loopback(&a.bind) {
        o.add(
            ADMIN_EXPOSURE,
            scope,
            Status::Pass,
            format!("on loopback ({}), token required", a.bind),
        );
    } else if mtls {
        o.add(
            ADMIN_EXPOSURE,
            scope,
            Status::Pass,
            format!("on {} with mTLS and a token", a.bind),
        );
    } else {
        o.add(ADMIN_EXPOSURE, scope, Status::Fail, format!("on {} without mTLS: a stolen token is enough from anywhere that reaches it; bind it to loopback or require client certificates", a.bind));
    }
}

fn proxies(spec: &Spec, o: &mut Out) {
    let wide: Vec<String> = spec
        .trusted_proxies
        .iter()
        .filter(|c| match c.0 {
            ipnet::IpNet::V4(n) => n.prefix_len() < 8,
            ipnet::IpNet::V6(n) => n.prefix_len() < 16,
        })
        .map(|c| c.0.to_string())
        .collect();
    if wide.is_empty() {
        let n = spec.trusted_proxies.len();
        o.add(
            TRUSTED_PROXIES,
            "global".into(),
            Status::Pass,
            format!("{n} trusted proxy range(s), none wider than a /8"),
        );
    } else {
        o.add(TRUSTED_PROXIES, "global".into(), Status::Fail, format!("{} trusted: nearly anyone can set X-Forwarded-For, and so choose the client address that IP rules, limits and logs see", wide.join(", ")));
    }
}

fn evidence(spec: &Spec, o: &mut Out) {
    let g = || "global".to_string();
    match &spec.audit {
        None => o.add(
            AUDIT_TRAIL,
            g(),
            Status::Fail,
            "no audit trail: admin calls and config changes leave no tamper-evident record".into(),
        ),
        Some(a) => {
            o.add(
                AUDIT_TRAIL,
                g(),
                Status::Pass,
                format!(
                    "hash-chained, signed every {} entries or {}",
                    a.checkpoint_every,
                    humantime::format_duration(a.checkpoint_interval.get())
                ),
            );
            match &a.checkpoint_copy {
                Some(p) => o.add(AUDIT_COPY, g(), Status::Pass, format!("checkpoints copied to {}", p.display())),
                None => o.add(AUDIT_COPY, g(), Status::Warn, "no checkpoint_copy: a cut tail of the trail cannot be shown against a copy elsewhere".into()),
            }
            match a.security_events.level {
                rampart_config::EventLevel::Off => o.add(
                    AUDIT_EVENTS,
                    g(),
                    Status::Warn,
                    "security_events.level is off: denials are in the access log only".into(),
                ),
                l => o.add(
                    AUDIT_EVENTS,
                    g(),
                    Status::Pass,
                    format!("denials at level {l:?} and above, with their request id")
                        .to_lowercase(),
                ),
            }
        }
    }
    if spec.access_log.enabled {
        o.add(
            ACCESS_LOG,
            g(),
            Status::Pass,
            format!("to {}", spec.access_log.output),
        );
    } else {
        o.add(
            ACCESS_LOG,
            g(),
            Status::Warn,
            "the access log is off".into(),
        );
    }
    if spec.state_dir.is_some() {
        o.add(
            CONFIG_HISTORY,
            g(),
            Status::Pass,
            format!("{} versions kept in state_dir", spec.config_history.keep),
        );
    } else {
        o.add(
            CONFIG_HISTORY,
            g(),
            Status::Warn,
            "no state_dir: no config history, no rollback, no start from the last good version"
                .into(),
        );
    }
}

fn monitoring(spec: &Spec, o: &mut Out) {
    let (status, reason) = match &spec.anomaly {
        None => (
            Status::Warn,
            "no anomaly detection: a caller walking object ids or spraying credentials within its limits goes unnoticed".to_string(),
        ),
        Some(a) => {
            let off = spec
                .routes
                .iter()
                .filter(|r| r.anomaly.as_ref().is_some_and(|ra| !ra.enabled))
                .count();
            let mut reason = format!(
                "per caller and route, {}-second windows; flags {}",
                a.window.get().as_secs(),
                match a.action {
                    rampart_config::AnomalyAction::Shadow => "are recorded only (shadow)",
                    rampart_config::AnomalyAction::Alert => "alert",
                    rampart_config::AnomalyAction::Throttle => "throttle the caller",
                    rampart_config::AnomalyAction::Ban => "ban the caller",
                }
            );
            if off > 0 {
                reason.push_str(&format!("; {off} route(s) not watched"));
            }
            (Status::Pass, reason)
        }
    };
    o.add(ANOMALY, "global".into(), status, reason);
}

fn identity(spec: &Spec, now: SystemTime, o: &mut Out) {
    let g = || "global".to_string();
    if spec.routes.iter().any(|r| !r.authenticate.is_empty()) {
        let f = &spec.identity.auth_failures;
        if f.enabled {
            o.add(
                AUTH_LOCKOUT,
                g(),
                Status::Pass,
                format!(
                    "a client is locked out after {} failures in a burst",
                    f.burst
                ),
            );
        } else {
            o.add(
                AUTH_LOCKOUT,
                g(),
                Status::Fail,
                "identity.auth_failures is off: credentials can be guessed at full speed".into(),
            );
        }
    }
    let keys: Vec<_> = spec
        .consumers
        .iter()
        .flat_map(|c| c.api_keys.iter().map(move |k| (c, k)))
        .collect();
    if keys.is_empty() {
        return;
    }
    let forever = keys.iter().filter(|(_, k)| k.expires.is_none()).count();
    let expired: Vec<String> = keys
        .iter()
        .filter(|(_, k)| k.expires.as_ref().is_some_and(|e| e.0 <= now))
        .map(|(c, k)| format!("{}/{}", c.id, k.id))
        .collect();
    if !expired.is_empty() {
        o.add(
            KEY_LIFETIME,
            g(),
            Status::Warn,
            format!(
                "expired keys still listed (remove them): {}",
                expired.join(", ")
            ),
        );
    }
    if forever > 0 {
        o.add(
            KEY_LIFETIME,
            g(),
            Status::Warn,
            format!(
                "{forever} of {} API keys in the config never expire: set `expires` and rotate",
                keys.len()
            ),
        );
    } else if expired.is_empty() {
        o.add(
            KEY_LIFETIME,
            g(),
            Status::Pass,
            format!("all {} API keys in the config expire", keys.len()),
        );
    }
}

fn mode(m: PolicyMode) -> bool {
    m == PolicyMode::Shadow
}

fn route(spec: &Spec, r: &rampart_config::RouteSpec, o: &mut Out) {
    let scope = || format!("route:{}", r.name);
    if r.authenticate.is_empty() {
        o.add(
            ROUTE_AUTHN,
            scope(),
            Status::Warn,
            "no authentication: anyone who reaches it can call it".into(),
        );
    } else if mode(r.auth_mode) {
        o.add(
            ROUTE_AUTHN,
            scope(),
            Status::Warn,
            format!("{} in shadow mode: not enforced", r.authenticate.join(", ")),
        );
    } else {
        o.add(
            ROUTE_AUTHN,
            scope(),
            Status::Pass,
            r.authenticate.join(", "),
        );
        match &r.authorize {
            Some(_) => o.add(
                ROUTE_AUTHZ,
                scope(),
                Status::Pass,
                "roles, scopes or a policy decide".into(),
            ),
            None => o.add(
                ROUTE_AUTHZ,
                scope(),
                Status::Warn,
                "no authorize: every authenticated caller may call it".into(),
            ),
        }
    }
    let consumer_limits = spec
        .consumers
        .iter()
        .any(|c| !c.limits.is_empty() || c.plan.is_some());
    if r.rate_limit.is_some() || !spec.rate_limits.is_empty() {
        o.add(
            ROUTE_RATE,
            scope(),
            Status::Pass,
            if r.rate_limit.is_some() {
                "a route rate limit"
            } else {
                "the gateway-wide rate limits"
            }
            .into(),
        );
    } else if consumer_limits && !r.authenticate.is_empty() {
        o.add(
            ROUTE_RATE,
            scope(),
            Status::Pass,
            "consumers' plan limits (authenticated callers only)".into(),
        );
    } else {
        o.add(
            ROUTE_RATE,
            scope(),
            Status::Warn,
            "no rate limit: one client can use all of its capacity".into(),
        );
    }
    let mut input = Vec::new();
    if r.validate.is_some() {
        input.push("an OpenAPI contract");
    }
    if r.inspect.is_some() {
        input.push("injection detection");
    }
    if input.is_empty() {
        o.add(
            ROUTE_INPUT,
            scope(),
            Status::Warn,
            "no contract validation or injection detection (JSON limits only)".into(),
        );
    } else {
        o.add(ROUTE_INPUT, scope(), Status::Pass, input.join(" and "));
    }
    let mut shadow = Vec::new();
    if mode(r.auth_mode) && !r.authenticate.is_empty() {
        shadow.push("authentication");
    }
    if r.rate_limit.as_ref().is_some_and(|l| mode(l.mode)) {
        shadow.push("rate_limit");
    }
    if r.ip_rules.as_ref().is_some_and(|x| mode(x.mode)) {
        shadow.push("ip_rules");
    }
    if r.validate.as_ref().is_some_and(|x| mode(x.mode)) {
        shadow.push("validate");
    }
    if r.inspect.as_ref().is_some_and(|x| mode(x.mode)) {
        shadow.push("inspect");
    }
    if r.bots.as_ref().is_some_and(|x| mode(x.mode)) {
        shadow.push("bots");
    }
    if r.json_limits
        .as_ref()
        .and_then(|j| j.mode)
        .is_some_and(mode)
    {
        shadow.push("json_limits");
    }
    if shadow.is_empty() {
        o.add(
            ROUTE_SHADOW,
            scope(),
            Status::Pass,
            "every policy enforces".into(),
        );
    } else {
        o.add(
            ROUTE_SHADOW,
            scope(),
            Status::Warn,
            format!(
                "in shadow mode (decide, log, do not enforce): {}",
                shadow.join(", ")
            ),
        );
    }
    let mut output = Vec::new();
    if r.mask.is_some() {
        output.push("response masking");
    }
    if r.response_fields.is_some() {
        output.push("a response field list");
    }
    if !output.is_empty() {
        o.add(ROUTE_OUTPUT, scope(), Status::Pass, output.join(" and "));
    }
    if r.forward_credentials {
        o.add(
            ROUTE_CREDENTIALS,
            scope(),
            Status::Warn,
            "forward_credentials: the caller's key or token reaches the upstream (and its logs)"
                .into(),
        );
    }
    if let Some(c) = &r.cors {
        if c.origins.iter().any(|x| x == "*") {
            o.add(
                ROUTE_CORS,
                scope(),
                Status::Warn,
                "any origin may call it from a browser".into(),
            );
        } else {
            o.add(
                ROUTE_CORS,
                scope(),
                Status::Pass,
                format!("{} named origin(s)", c.origins.len()),
            );
        }
    }
}

#[cfg(test)]
mod tests;
