//! Named IP lists (`ip_lists`) and the rules that use them (`listeners[].ip_rules`,
//! `routes[].ip_rules`): allow and deny lists of client addresses, from inline CIDRs and
//! from feed files that are re-read when they change.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::Cidr;
use crate::units::Duration;
use crate::{ConfigError, PolicyMode, Spec};

/// The GeoIP database country rules read (`geoip`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeoIpSpec {
    /// A MaxMind-format database with countries (GeoLite2-Country, GeoIP2-Country or
    /// -City), relative to the config file. Read at each config load.
    pub database: PathBuf,
}

/// One named list of addresses and networks.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpListSpec {
    /// Addresses and networks written in the config (`203.0.113.0/24`, `2001:db8::/32`,
    /// `192.0.2.7`).
    #[serde(default)]
    pub cidrs: Vec<Cidr>,
    /// Feed files: one address or CIDR per line; `#` and `;` start a comment (the
    /// formats of common public block lists). Relative to the config file.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// How often the files are checked for a change (default 5s). A changed file is
    /// re-read and swapped in whole; a bad one keeps the previous list and is reported.
    #[serde(default = "five_seconds")]
    pub refresh: Duration,
}

fn five_seconds() -> Duration {
    Duration::secs(5)
}

/// Which lists a listener or route applies. A client address in any `deny` list is
/// refused; when `allow` lists are given, an address in none of them is refused too.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct IpRulesSpec {
    /// Lists (names in `ip_lists`) whose addresses are let in; empty: everyone.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Lists whose addresses are refused; checked before `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Countries (ISO 3166-1 alpha-2: `DE`, `FR`) whose addresses are let in, by the
    /// `geoip` database; with `allow`, an address on an allowed list or in an allowed
    /// country passes.
    #[serde(default)]
    pub allow_countries: Vec<String>,
    /// Countries whose addresses are refused; checked before the allows.
    #[serde(default)]
    pub deny_countries: Vec<String>,
    /// `shadow`: refusals are logged and counted, and the client goes on.
    #[serde(default)]
    pub mode: PolicyMode,
}

pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    for (name, list) in &spec.ip_lists {
        let p = format!("ip_lists.{name}");
        if list.cidrs.is_empty() && list.files.is_empty() {
            errs.push(ConfigError::new(&p, "needs `cidrs` or `files`"));
        }
        if list.refresh.0 < std::time::Duration::from_millis(100) {
            errs.push(ConfigError::new(
                format!("{p}.refresh"),
                "must be at least 100ms",
            ));
        }
    }
    for (i, l) in spec.listeners.iter().enumerate() {
        if let Some(r) = &l.ip_rules {
            check_rules(r, &format!("listeners[{i}].ip_rules"), spec, errs);
        }
    }
    for (i, r) in spec.routes.iter().enumerate() {
        if let Some(r) = &r.ip_rules {
            check_rules(r, &format!("routes[{i}].ip_rules"), spec, errs);
        }
    }
}

fn check_rules(r: &IpRulesSpec, p: &str, spec: &Spec, errs: &mut Vec<ConfigError>) {
    let lists = &spec.ip_lists;
    let countries = [
        ("allow_countries", &r.allow_countries),
        ("deny_countries", &r.deny_countries),
    ];
    if r.allow.is_empty() && r.deny.is_empty() && countries.iter().all(|(_, c)| c.is_empty()) {
        errs.push(ConfigError::new(
            p,
            "needs `allow` or `deny` lists (or countries)",
        ));
    }
    for (key, codes) in countries {
        if !codes.is_empty() && spec.geoip.is_none() {
            errs.push(ConfigError::new(
                format!("{p}.{key}"),
                "country rules need a `geoip.database`",
            ));
        }
        for (k, c) in codes.iter().enumerate() {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                errs.push(ConfigError::new(
                    format!("{p}.{key}[{k}]"),
                    format!(
                        "{c:?} is not an ISO 3166-1 alpha-2 code (two capital letters: DE, FR)"
                    ),
                ));
            }
        }
    }
    for (key, names) in [("allow", &r.allow), ("deny", &r.deny)] {
        for (k, name) in names.iter().enumerate() {
            if !lists.contains_key(name) {
                errs.push(ConfigError::new(
                    format!("{p}.{key}[{k}]"),
                    format!("no list {name:?} in `ip_lists`"),
                ));
            }
        }
    }
}
