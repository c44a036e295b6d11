//! The runtime plan: everything the data plane needs, compiled from a [`Spec`] once per
//! load. Requests only ever read a plan; a reload builds a new one and swaps it in.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use rampart_config::{ConfigError, ConfigErrors, RewriteSpec, Spec};

use crate::h1_guard::HeadLimits;
use crate::router::{PathSpec, RouteMatcher, Router};
use crate::upstream::{Balancer, RetryBudget, RetryPolicy, Target, Timeouts, Upstream};

/// A compiled listener.
#[derive(Debug)]
pub struct ListenerPlan {
    pub name: Arc<str>,
    pub bind: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connection and handshake counters (carried over by name across reloads).
    pub metrics: Arc<crate::metrics::ListenerMetrics>,
}

/// A compiled route.
#[derive(Debug)]
pub struct RoutePlan {
    pub name: Arc<str>,
    pub upstream: Arc<Upstream>,
    pub rewrite: Option<Box<crate::request::rewrite::Rewrite>>,
    pub max_body_bytes: u64,
    pub preserve_host: bool,
    /// Forward WebSocket upgrades.
    pub websocket: bool,
    /// Pass `;` path parameters through instead of refusing them.
    pub allow_path_parameters: bool,
    /// Accept `%25` in the path.
    pub allow_encoded_percent: bool,
    /// This route's counters (kept in the state store by route name, so they survive
    /// reloads).
    pub metrics: Arc<crate::metrics::RouteMetrics>,
    /// The route's chain, sorted by phase ([`Plan::attach`]); every phase of every filter
    /// runs in this order.
    pub filters: Chain,
    /// Whether a filter needs the whole body before it decides.
    pub needs_body: bool,
}

/// A compiled chain of filters, shared by the plan and the exchanges running it.
pub type Chain = Arc<[Arc<dyn rampart_core::Filter>]>;

/// Connection and request limits in runtime form.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub head: HeadLimits,
    pub max_body_bytes: u64,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// New connections per IP (GCRA), checked at accept.
    pub new_connections_per_ip: Option<rampart_core::gcra::Gcra>,
    pub h2_max_concurrent_streams: u32,
    pub h2_max_pending_resets: usize,
    /// IPv6 clients are counted by this prefix (bits).
    pub ipv6_prefix: u8,
}

/// The admin API's settings with its token resolved.
#[derive(Debug, Clone)]
pub struct AdminPlan {
    pub bind: SocketAddr,
    /// `None` only on loopback binds (validation enforces it).
    pub token: Option<rampart_config::Secret>,
    /// TLS (and optional mTLS) for the admin listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most admin connections open at once.
    pub max_connections: usize,
    /// The read-only token (`admin.read_token`).
    pub read_token: Option<rampart_config::Secret>,
    /// The dashboard, when served.
    pub ui: Option<UiPlan>,
}

/// The dashboard's settings (`admin.ui`).
#[derive(Debug, Clone)]
pub struct UiPlan {
    pub session_idle: std::time::Duration,
    pub session_max: std::time::Duration,
    pub max_live: usize,
    /// Certificate subjects that may sign in, and their roles.
    pub certificates: Arc<std::collections::BTreeMap<String, rampart_config::UiRole>>,
}

/// Everything the data plane reads, compiled.
#[derive(Debug)]
pub struct Plan {
    pub workers: usize,
    pub listeners: Vec<ListenerPlan>,
    pub limits: Limits,
    trusted_proxies: Vec<ipnet::IpNet>,
    /// How client headers are cleaned before the filters run.
    pub header_rules: crate::client_headers::HeaderRules,
    pub router: Router,
    pub routes: Vec<RoutePlan>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub access_log: rampart_config::AccessLogSpec,
    pub admin: Option<AdminPlan>,
    /// How long a graceful drain may take.
    pub drain_timeout: Duration,
    /// The effective config this plan was compiled from (defaults filled in), for the
    /// admin API; secret fields hold references only.
    pub spec: Arc<Spec>,
    /// When this plan was compiled.
    pub loaded_at: std::time::SystemTime,
    /// The features' steps to run when this plan goes live.
    pub on_live: Vec<rampart_core::LiveHook>,
    /// Trace context per exchange (`tracing`); `None`: headers pass untouched.
    pub tracing: Option<crate::trace::TracePlan>,
    /// Counters of requests that matched no route.
    pub unrouted: Arc<crate::metrics::RouteMetrics>,
    /// Counters of gateway-generated answers by reason code.
    pub codes: Arc<crate::metrics::CodeMetrics>,
    /// The dashboard's live decisions (`None` when no dashboard is served).
    pub tap: Option<Arc<rampart_observe::tap::DecisionTap>>,
    /// Feature crates' own series for `/metrics` (rate limits, Redis).
    pub metric_sources: Vec<Arc<dyn rampart_core::MetricsSource>>,
    /// The response and log phases of exchanges that matched no route.
    pub unrouted_filters: Chain,
    /// Gateway-wide filters run on every new connection.
    pub connect_filters: Chain,
    /// The gateway's reload-surviving state this plan was compiled against.
    pub state: Arc<rampart_core::StateStore>,
    /// The config text this plan was compiled from and where it was read, when it came
    /// from a file (config history, rollback).
    pub origin: Option<ConfigOrigin>,
    /// The directory relative paths in the config were read from.
    pub base: std::path::PathBuf,
}

/// Which config text a plan was compiled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigOrigin {
    /// SHA-256 of the text, hex: its id in the config history.
    pub version: String,
    /// The file it was read from; relative paths in it are read from its directory.
    pub source: std::path::PathBuf,
}

impl ConfigOrigin {
    /// The directory relative paths in the config are read from.
    pub fn base(&self) -> &std::path::Path {
        dir_of(&self.source)
    }
}

/// The directory a file is in (`.` for a bare file name): where a config's relative
/// paths are read from.
pub fn dir_of(file: &std::path::Path) -> &std::path::Path {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
}

impl Plan {
    /// True when `ip` is a trusted proxy whose forwarding headers we believe.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = rampart_core::canonical_ip(ip);
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Adds the features' filters: each route's chain becomes its filters from every
    /// feature, sorted by phase (a stable sort: within a phase, features keep the order
    /// they are listed in). `features[k].routes[i]` belongs to the config's route `i`.
    pub fn attach(&mut self, features: Vec<rampart_core::FeaturePlan>) -> Result<(), ConfigErrors> {
        let mut routes: Vec<Vec<Arc<dyn rampart_core::Filter>>> =
            self.routes.iter().map(|r| r.filters.to_vec()).collect();
        let mut unrouted = self.unrouted_filters.to_vec();
        let mut connect = self.connect_filters.to_vec();
        let mut observers = Vec::new();
        for f in features {
            if f.routes.len() > routes.len() {
                return Err(ConfigErrors(vec![ConfigError::new(
                    "routes",
                    "a feature compiled more routes than the config has",
                )]));
            }
            for (i, chain) in f.routes.into_iter().enumerate() {
                routes[i].extend(chain);
            }
            unrouted.extend(f.unrouted);
            connect.extend(f.connect);
            observers.extend(f.observers);
            self.metric_sources.extend(f.metrics);
            self.on_live.extend(f.on_live);
        }
        for chain in routes.iter_mut().chain(std::iter::once(&mut unrouted)) {
            if !chain.is_empty() {
                chain.extend(observers.iter().cloned());
            }
        }
        // Routes whose chains hold the same filters share one chain: features share a
        // filter between routes with the same settings, so a config of 10,000 routes
        // has a handful of distinct chains.
        let mut distinct: std::collections::HashMap<Vec<*const ()>, Chain> =
            std::collections::HashMap::new();
        for (route, mut chain) in self.routes.iter_mut().zip(routes) {
            chain.sort_by_key(|f| f.phase());
            route.needs_body = chain.iter().any(|f| f.needs_body());
            let key = chain.iter().map(|f| Arc::as_ptr(f).cast::<()>()).collect();
            route.filters = distinct.entry(key).or_insert_with(|| chain.into()).clone();
        }
        unrouted.sort_by_key(|f| f.phase());
        self.unrouted_filters = unrouted.into();
        self.connect_filters = connect.into();
        Ok(())
    }

    /// Compiles a validated spec. `base` is the directory relative file paths are read
    /// from (the config file's directory); `state` is the gateway's reload-surviving
    /// state (counters are found there by name). Reports every error found.
    pub fn compile(
        spec: &Arc<Spec>,
        base: &Path,
        state: &Arc<rampart_core::StateStore>,
    ) -> Result<Plan, ConfigErrors> {
        let mut errors: Vec<ConfigError> = Vec::new();

        let mut listeners = Vec::new();
        for (i, l) in spec.listeners.iter().enumerate() {
            let tls = match &l.tls {
                Some(t) => match crate::tls::server_config(t, base, &format!("listeners[{i}]")) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        errors.extend(e);
                        None
                    }
                },
                None => None,
            };
            listeners.push(ListenerPlan {
                name: l.name.as_str().into(),
                bind: l.bind,
                tls,
                metrics: state.get_or_insert(&l.name, crate::metrics::ListenerMetrics::default),
            });
        }

        let mut upstreams = Vec::new();
        let mut upstream_index = std::collections::HashMap::new();
        for (name, u) in &spec.upstreams {
            let yaml = format!("upstreams.{name}");
            let any_https = u.targets.iter().any(|t| t.url.starts_with("https://"));
            let tls = if any_https {
                match crate::tls::client_config(u.tls.as_ref(), u.protocol, base, &yaml) {
                    Ok(c) => Some((c, u.tls.as_ref().and_then(|t| t.server_name.clone()))),
                    Err(e) => {
                        errors.extend(e);
                        None
                    }
                }
            } else {
                None
            };
            let tls_key = format!("{:?}", u.tls);
            let targets: Vec<Target> = u
                .targets
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    let target = Target::new(&t.url, t.weight, u.protocol, &tls_key);
                    if target.is_none() {
                        errors.push(ConfigError::new(
                            format!("{yaml}.targets[{i}].url"),
                            "is not a valid target URL",
                        ));
                    }
                    target
                })
                .collect();
            if targets.is_empty() {
                continue;
            }
            let upstream = Upstream {
                name: name.as_str().into(),
                balancer: Balancer::new(u.balance, &targets),
                targets,
                hash_on: u.hash_on.clone(),
                protocol: u.protocol,
                tls,
                timeouts: Timeouts {
                    connect: u.timeouts.connect.get(),
                    response_header: u.timeouts.response_header.get(),
                    request: u.timeouts.request.get(),
                },
                health_check: u.health_check.clone(),
                passive: u.passive_health.clone(),
                retries: RetryPolicy {
                    max: u.retries.max,
                    on_status: u.retries.on_status.clone(),
                    budget: RetryBudget::new(u.retries.budget_percent, u.retries.min_per_second),
                },
                max_requests: u.circuit_breaker.max_requests,
                max_idle_per_target: u.pool.max_idle_per_target,
                idle_timeout: u.pool.idle_timeout.get(),
            };
            upstream_index.insert(name.clone(), upstreams.len());
            upstreams.push(Arc::new(upstream));
        }

        let mut matchers = Vec::with_capacity(spec.routes.len());
        let mut routes = Vec::with_capacity(spec.routes.len());
        for (i, r) in spec.routes.iter().enumerate() {
            let m = &r.matcher;
            let path = match (&m.path, &m.path_prefix) {
                (Some(p), _) => PathSpec::Pattern(p.clone()),
                (None, Some(p)) => PathSpec::Prefix(p.clone()),
                // Validation guarantees one; a route is never skipped, so route `i` of the
                // plan is route `i` of the config (features attach by index).
                (None, None) => {
                    errors.push(ConfigError::new(
                        format!("routes[{i}].match"),
                        "needs path or path_prefix",
                    ));
                    continue;
                }
            };
            let mut headers = Vec::new();
            for (k, h) in m.headers.iter().enumerate() {
                let name = HeaderName::from_bytes(h.name.as_bytes());
                let value = h.value.as_deref().map(HeaderValue::from_str).transpose();
                match (name, value) {
                    (Ok(n), Ok(v)) => headers.push((n, v)),
                    _ => errors.push(ConfigError::new(
                        format!("routes[{i}].match.headers[{k}]"),
                        "invalid header name or value",
                    )),
                }
            }
            let methods = m
                .methods
                .iter()
                .filter_map(|s| s.parse::<Method>().ok())
                .collect();
            matchers.push(RouteMatcher {
                hosts: m.hosts.clone(),
                path,
                methods,
                headers,
            });
            let rewrite = match r
                .rewrite
                .as_deref()
                .map(|spec| crate::request::rewrite::Rewrite::compile(spec, m.path.as_deref()))
            {
                Some(Ok(rw)) => Some(Box::new(rw)),
                Some(Err(e)) => {
                    let key = match r.rewrite.as_deref() {
                        Some(RewriteSpec::Template(_)) => "template",
                        Some(RewriteSpec::StripPrefix(_)) => "strip_prefix",
                        _ => "replace_prefix",
                    };
                    errors.push(ConfigError::new(format!("routes[{i}].rewrite.{key}"), e));
                    None
                }
                None => None,
            };
            let Some(&ui) = upstream_index.get(&r.upstream) else {
                // An upstream whose targets are all invalid has its own errors already.
                if !spec.upstreams.contains_key(&r.upstream) {
                    errors.push(ConfigError::new(
                        format!("routes[{i}].upstream"),
                        "names no configured upstream",
                    ));
                }
                continue;
            };
            routes.push(RoutePlan {
                name: r.name.as_str().into(),
                upstream: upstreams[ui].clone(),
                rewrite,
                max_body_bytes: r.max_body_bytes.unwrap_or(spec.limits.max_body_bytes).0,
                preserve_host: r.preserve_host,
                websocket: r.websocket,
                allow_path_parameters: r.allow_path_parameters,
                allow_encoded_percent: r.allow_encoded_percent,
                filters: Arc::new([]),
                needs_body: false,
                metrics: state.get_or_insert(&r.name, crate::metrics::RouteMetrics::default),
            });
        }
        let router = match Router::build(&matchers, |i| format!("routes[{i}]")) {
            Ok(r) => r,
            Err(e) => {
                errors.extend(e);
                Router::default()
            }
        };
        let admin = spec.admin.as_ref().map(|a| AdminPlan {
            tls: a
                .tls
                .as_ref()
                .and_then(|t| match crate::tls::server_config(t, base, "admin") {
                    Ok(c) => Some(c),
                    Err(e) => {
                        errors.extend(e);
                        None
                    }
                }),
            bind: a.bind,
            token: a.token.as_ref().and_then(|t| match t.resolve(base) {
                // A guessable token guards reloads and the effective config.
                Ok(secret) if secret.expose().len() < 32 => {
                    errors.push(ConfigError::new(
                        "admin.token",
                        "must be at least 32 bytes (e.g. `openssl rand -hex 32`)",
                    ));
                    None
                }
                Ok(secret) => Some(secret),
                Err(reason) => {
                    errors.push(ConfigError::new("admin.token", reason));
                    None
                }
            }),
            max_connections: a.max_connections,
            read_token: a.read_token.as_ref().and_then(|t| match t.resolve(base) {
                Ok(secret) if secret.expose().len() < 32 => {
                    errors.push(ConfigError::new(
                        "admin.read_token",
                        "must be at least 32 bytes (e.g. `openssl rand -hex 32`)",
                    ));
                    None
                }
                Ok(secret) => Some(secret),
                Err(reason) => {
                    errors.push(ConfigError::new("admin.read_token", reason));
                    None
                }
            }),
            // The dashboard signs in with a token: none without one.
            ui: (a.ui.enabled && a.token.is_some()).then(|| UiPlan {
                session_idle: a.ui.session_idle.get(),
                session_max: a.ui.session_max.get(),
                max_live: a.ui.max_live,
                certificates: Arc::new(a.ui.certificates.clone()),
            }),
        });
        if let Some(a) = &admin {
            if let (Some(t), Some(r)) = (&a.token, &a.read_token) {
                if t.expose() == r.expose() {
                    errors.push(ConfigError::new(
                        "admin.read_token",
                        "has the same value as admin.token",
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }

        let tap = admin
            .as_ref()
            .filter(|a| a.ui.is_some())
            .map(|_| rampart_observe::tap::of(state));
        let l = &spec.limits;
        Ok(Plan {
            workers: spec
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            listeners,
            limits: Limits {
                head: HeadLimits {
                    max_head_bytes: l.max_header_bytes.as_usize(),
                    max_headers: l.max_headers,
                    max_uri_bytes: l.max_uri_bytes.as_usize(),
                    header_timeout: l.header_timeout.get(),
                    idle_timeout: l.idle_timeout.get(),
                },
                max_body_bytes: l.max_body_bytes.0,
                body_timeout: l.body_timeout.get(),
                max_connections: l.max_connections,
                max_connections_per_ip: l.max_connections_per_ip,
                new_connections_per_ip: l.new_connections_per_ip.as_ref().map(|c| {
                    rampart_core::gcra::Gcra::new(
                        c.rate.count,
                        c.rate.period.as_nanos() as u64,
                        c.burst.unwrap_or(c.rate.count),
                    )
                }),
                h2_max_concurrent_streams: l.h2_max_concurrent_streams,
                h2_max_pending_resets: l.h2_max_pending_resets,
                ipv6_prefix: l.ipv6_prefix,
            },
            header_rules: header_rules(spec),
            trusted_proxies: spec.trusted_proxies.iter().map(|c| c.0).collect(),
            router,
            routes,
            upstreams,
            access_log: spec.access_log.clone(),
            admin,
            drain_timeout: spec.drain_timeout.get(),
            spec: spec.clone(),
            loaded_at: std::time::SystemTime::now(),
            on_live: Vec::new(),
            tracing: spec
                .tracing
                .as_ref()
                .map(|t| crate::trace::TracePlan::new(t.sample)),
            unrouted: state.get_or_insert("\0unrouted", crate::metrics::RouteMetrics::default),
            codes: state.get_or_insert("\0codes", crate::metrics::CodeMetrics::default),
            tap,
            metric_sources: Vec::new(),
            unrouted_filters: Arc::new([]),
            connect_filters: Arc::new([]),
            state: state.clone(),
            origin: None,
            base: base.to_path_buf(),
        })
    }
}

/// The header names this config makes gateway-owned (identity headers, their strip list,
/// the API-key header), lower-case, for the underscore-twin rule.
fn header_rules(spec: &Spec) -> crate::client_headers::HeaderRules {
    let h = &spec.identity.headers;
    let mut owned: Vec<Box<str>> = [
        &h.consumer,
        &h.subject,
        &h.roles,
        &h.scopes,
        &h.method,
        &h.credential,
        &spec.identity.api_keys.header,
    ]
    .into_iter()
    .chain(h.strip.iter())
    .map(|n| n.to_ascii_lowercase().replace('_', "-").into_boxed_str())
    .collect();
    owned.sort();
    owned.dedup();
    crate::client_headers::HeaderRules {
        underscores: spec.limits.headers_with_underscores,
        owned,
    }
}
