//! Named IP lists and the rules that apply them: per listener at accept (the TCP peer,
//! before any byte is read or any TLS work is done) and per route (the client address
//! derived through `trusted_proxies`). A list's feed files are watched by a small thread
//! and re-read when they change, without a config reload: the new set is swapped in whole,
//! and a bad file keeps the previous set and is reported.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rampart_config::{ConfigError, IpListSpec, IpRulesSpec, PolicyMode, Spec};
use rampart_core::metrics_text::MetricsText;
use rampart_core::{
    ConnectInfo, Denial, FeaturePlan, Filter, Flow, MetricsSource, Outcome, Phase, Reason,
    RequestCtx,
};

use crate::geoip::GeoIp;
use crate::ip_set::{IpRange, IpSet, IpSetBuilder};

/// One named list: its current set, where it comes from, and its counters.
#[derive(Debug)]
pub struct IpList {
    name: Box<str>,
    set: ArcSwap<IpSet>,
    cidrs: Vec<ipnet::IpNet>,
    files: Vec<PathBuf>,
    /// Each file's modification time and length when last read.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
    reloads_ok: AtomicU64,
    reload_errors: AtomicU64,
    /// Clients refused because their address is on this list (deny rules).
    refusals: AtomicU64,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl IpList {
    /// Reads the list for the config (`p`: its YAML path for errors).
    fn load(name: &str, spec: &IpListSpec, base: &Path, p: &str) -> Result<IpList, ConfigError> {
        let files: Vec<PathBuf> = spec.files.iter().map(|f| base.join(f)).collect();
        let cidrs: Vec<ipnet::IpNet> = spec.cidrs.iter().map(|c| c.0).collect();
        let stamps = files.iter().map(|f| stamp(f)).collect();
        let set = read(&cidrs, &files)
            .map_err(|(i, reason)| ConfigError::new(format!("{p}.files[{i}]"), reason))?;
        Ok(IpList {
            name: name.into(),
            set: ArcSwap::from_pointee(set),
            cidrs,
            files,
            stamps: Mutex::new(stamps),
            reloads_ok: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
        })
    }

    /// The merged range of this list holding `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<IpRange> {
        self.set.load().lookup(ip)
    }

    /// Re-reads the files when one changed; a bad read keeps the current set.
    fn refresh(&self) {
        let now: Vec<_> = self.files.iter().map(|f| stamp(f)).collect();
        {
            let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
            if *stamps == now {
                return;
            }
            *stamps = now;
        }
        match read(&self.cidrs, &self.files) {
            Ok(set) => {
                tracing::info!(
                    list = &*self.name,
                    ranges = set.ranges(),
                    "IP list re-read after its file changed"
                );
                self.set.store(Arc::new(set));
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((i, reason)) => {
                tracing::error!(
                    list = &*self.name,
                    file = %self.files[i].display(),
                    error = %reason,
                    "IP list file is bad; the previous list stays in force"
                );
                self.reload_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Reads inline CIDRs and files into one set; an error names the file's index.
fn read(cidrs: &[ipnet::IpNet], files: &[PathBuf]) -> Result<IpSet, (usize, String)> {
    let mut b = IpSetBuilder::new();
    for c in cidrs {
        b.add(*c);
    }
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f)
            .map_err(|e| (i, format!("cannot read {}: {e}", f.display())))?;
        b.add_text(&text)
            .map_err(|e| (i, format!("{}: {e}", f.display())))?;
    }
    Ok(b.build())
}

/// Watches `list`'s files every `every` until the list is dropped (its plan replaced).
fn watch(list: &Arc<IpList>, every: Duration) {
    if list.files.is_empty() {
        return;
    }
    let weak: Weak<IpList> = Arc::downgrade(list);
    let spawned = std::thread::Builder::new()
        .name("rampart-ip-list".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(list) = weak.upgrade() else { return };
            list.refresh();
        });
    if let Err(e) = spawned {
        tracing::error!(list = &*list.name, error = %e, "cannot watch IP list files");
    }
}

/// Compiled `ip_rules`: the lists and countries to check, deny first.
#[derive(Debug)]
struct IpRules {
    allow: Box<[Arc<IpList>]>,
    deny: Box<[Arc<IpList>]>,
    allow_countries: Box<[[u8; 2]]>,
    deny_countries: Box<[[u8; 2]]>,
    /// The GeoIP database, when country rules are given.
    geo: Option<Arc<GeoIp>>,
    shadow: bool,
}

/// Why an address is refused.
enum Refusal<'a> {
    Denied(&'a IpList, IpRange),
    CountryDenied([u8; 2]),
    /// On no allowed list and in no allowed country (`None`: the database knows none).
    NotAllowed(Option<[u8; 2]>),
}

impl IpRules {
    fn compile(
        spec: &IpRulesSpec,
        lists: &BTreeMap<String, Arc<IpList>>,
        geo: Option<&Arc<GeoIp>>,
    ) -> IpRules {
        // Names and codes were checked by config validation.
        let pick = |names: &[String]| -> Box<[Arc<IpList>]> {
            names.iter().filter_map(|n| lists.get(n).cloned()).collect()
        };
        let codes = |c: &[String]| -> Box<[[u8; 2]]> {
            c.iter()
                .filter_map(|c| <[u8; 2]>::try_from(c.as_bytes()).ok())
                .collect()
        };
        let countries = !spec.allow_countries.is_empty() || !spec.deny_countries.is_empty();
        IpRules {
            allow: pick(&spec.allow),
            deny: pick(&spec.deny),
            allow_countries: codes(&spec.allow_countries),
            deny_countries: codes(&spec.deny_countries),
            geo: geo.filter(|_| countries).cloned(),
            shadow: spec.mode == PolicyMode::Shadow,
        }
    }

    fn check(&self, ip: IpAddr) -> Option<Refusal<'_>> {
        for list in self.deny.iter() {
            if let Some(range) = list.lookup(ip) {
                list.refusals.fetch_add(1, Ordering::Relaxed);
                return Some(Refusal::Denied(list, range));
            }
        }
        let country = self.geo.as_ref().and_then(|g| g.country(ip));
        if let Some(c) = country.filter(|c| self.deny_countries.contains(c)) {
            return Some(Refusal::CountryDenied(c));
        }
        let restricted = !self.allow.is_empty() || !self.allow_countries.is_empty();
        let allowed = self.allow.iter().any(|l| l.lookup(ip).is_some())
            || country.is_some_and(|c| self.allow_countries.contains(&c));
        if restricted && !allowed {
            return Some(Refusal::NotAllowed(country));
        }
        None
    }
}

impl Refusal<'_> {
    fn reason(&self) -> Reason {
        match self {
            Refusal::Denied(..) | Refusal::CountryDenied(_) => Reason::IpDenied,
            Refusal::NotAllowed(_) => Reason::IpNotAllowed,
        }
    }
}

/// Adds the IP rule filters: one per route with `ip_rules`, and one connect filter for
/// the listeners with theirs.
pub(crate) fn compile(
    spec: &Spec,
    base: &Path,
    out: &mut FeaturePlan,
) -> Result<(), Vec<ConfigError>> {
    let mut lists = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, l) in &spec.ip_lists {
        match IpList::load(name, l, base, &format!("ip_lists.{name}")) {
            Ok(list) => {
                let list = Arc::new(list);
                watch(&list, l.refresh.0);
                lists.insert(name.clone(), list);
            }
            Err(e) => errors.push(e),
        }
    }
    let geo = match &spec.geoip {
        None => None,
        Some(g) => match GeoIp::open(&base.join(&g.database)) {
            Ok(db) => Some(Arc::new(db)),
            Err(e) => {
                errors.push(ConfigError::new("geoip.database", e));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let geo = geo.as_ref();
    for (i, r) in spec.routes.iter().enumerate() {
        if let Some(rules) = &r.ip_rules {
            out.routes[i].push(Arc::new(RouteIpRules(IpRules::compile(rules, &lists, geo))));
        }
    }
    let listeners: Vec<(Box<str>, IpRules)> = spec
        .listeners
        .iter()
        .filter_map(|l| {
            Some((
                l.name.as_str().into(),
                IpRules::compile(l.ip_rules.as_ref()?, &lists, geo),
            ))
        })
        .collect();
    if !listeners.is_empty() {
        out.connect.push(Arc::new(ListenerIpRules(listeners)));
    }
    if !lists.is_empty() {
        out.metrics
            .push(Arc::new(IpListMetrics(lists.into_values().collect())));
    }
    Ok(())
}

/// A route's `ip_rules`, on the client address (trusted-proxy aware).
#[derive(Debug)]
struct RouteIpRules(IpRules);

impl Filter for RouteIpRules {
    fn phase(&self) -> Phase {
        Phase::IpRules
    }

    fn name(&self) -> &'static str {
        "ip_rules"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        let Some(refusal) = self.0.check(cx.client_ip) else {
            return Flow::Continue;
        };
        let reason = refusal.reason();
        match &refusal {
            Refusal::Denied(list, range) => {
                cx.details.push(("ip_list", list.name.clone()));
                cx.details.push(("ip_range", range.to_string().into()));
            }
            Refusal::CountryDenied(c) | Refusal::NotAllowed(Some(c)) => {
                cx.details
                    .push(("country", String::from_utf8_lossy(c).into()));
            }
            Refusal::NotAllowed(None) => {}
        }
        if self.0.shadow {
            cx.record(reason, Outcome::ShadowDeny);
            return Flow::Continue;
        }
        cx.record(reason, Outcome::Deny);
        Flow::Deny(Denial::new(reason))
    }
}

/// The listeners' `ip_rules`, on the TCP peer at accept.
#[derive(Debug)]
struct ListenerIpRules(Vec<(Box<str>, IpRules)>);

impl Filter for ListenerIpRules {
    fn phase(&self) -> Phase {
        Phase::IpRules
    }

    fn name(&self) -> &'static str {
        "ip_rules"
    }

    fn on_connect(&self, cx: &ConnectInfo<'_>) -> Result<(), Reason> {
        let Some((_, rules)) = self.0.iter().find(|(name, _)| **name == *cx.listener) else {
            return Ok(());
        };
        let Some(refusal) = rules.check(cx.peer.ip()) else {
            return Ok(());
        };
        let (list, range) = match &refusal {
            Refusal::Denied(list, range) => (&*list.name, range.to_string()),
            Refusal::CountryDenied(c) | Refusal::NotAllowed(Some(c)) => {
                ("", String::from_utf8_lossy(c).into_owned())
            }
            Refusal::NotAllowed(None) => ("", String::new()),
        };
        let reason = refusal.reason();
        tracing::debug!(
            peer = %cx.peer,
            listener = cx.listener,
            code = reason.code(),
            list,
            range,
            shadow = rules.shadow,
            "connection matched the listener's IP rules"
        );
        if rules.shadow {
            return Ok(());
        }
        Err(reason)
    }
}

/// Each list's size, re-reads and refusals.
#[derive(Debug)]
struct IpListMetrics(Vec<Arc<IpList>>);

impl MetricsSource for IpListMetrics {
    fn render(&self, out: &mut MetricsText) {
        out.family(
            "rampart_ip_list_ranges",
            "gauge",
            "Merged address ranges held by each IP list.",
        );
        for l in &self.0 {
            out.sample(
                "rampart_ip_list_ranges",
                &[("list", &l.name)],
                l.set.load().ranges() as u64,
            );
        }
        out.family(
            "rampart_ip_list_reloads_total",
            "counter",
            "Re-reads of IP list files after a change, by result (an error keeps the previous list).",
        );
        for l in &self.0 {
            for (result, n) in [("ok", &l.reloads_ok), ("error", &l.reload_errors)] {
                out.sample(
                    "rampart_ip_list_reloads_total",
                    &[("list", &l.name), ("result", result)],
                    n.load(Ordering::Relaxed),
                );
            }
        }
        out.family(
            "rampart_ip_list_refusals_total",
            "counter",
            "Clients refused (or, in shadow mode, matched) because their address is on a deny list.",
        );
        for l in &self.0 {
            out.sample(
                "rampart_ip_list_refusals_total",
                &[("list", &l.name)],
                l.refusals.load(Ordering::Relaxed),
            );
        }
    }
}
