//! Rampart as a library: load a config into a plan and run a gateway from it. The binary
//! (`main.rs`) is a thin CLI over this; integration tests use it directly.
#![forbid(unsafe_code)]

pub mod admin;
pub mod certs;
pub mod demo;
pub mod diff;
pub mod reload;

use std::path::Path;

pub use rampart_config::{ConfigError, ConfigErrors};
pub use rampart_proxy::{Gateway, Plan};

/// A short fingerprint of a secret value (first 16 hex digits of its SHA-256), so two
/// configurations can be compared for the same secret without revealing it.
pub fn secret_fingerprint(value: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(value.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses, validates and compiles YAML text. Relative file paths in it are read from
/// `base`.
pub fn compile_str(yaml: &str, base: &Path) -> Result<Plan, ConfigErrors> {
    let spec = rampart_config::parse(yaml)?;
    compile_spec(&spec, base)
}

/// Compiles a validated spec: the data-plane plan, then each route's inbound chain
/// (authenticate, then authorize) from the identity and authorization crates.
pub fn compile_spec(spec: &rampart_config::Spec, base: &Path) -> Result<Plan, ConfigErrors> {
    let plan = Plan::compile(spec, base);
    let identity = rampart_identity::IdentityPlan::compile(spec, base);
    let (mut plan, identity) = match (plan, identity) {
        (Ok(p), Ok(i)) => (p, i),
        (p, i) => {
            let mut all = p.err().map(|e| e.0).unwrap_or_default();
            all.extend(i.err().unwrap_or_default());
            return Err(ConfigErrors(all));
        }
    };
    let mut errors = Vec::new();
    let cedar = match rampart_authz::CedarSchema::generate(spec) {
        Ok(c) => c,
        Err(e) => return Err(ConfigErrors(e)),
    };
    for (i, r) in spec.routes.iter().enumerate() {
        let Some(route) = plan.routes.iter_mut().find(|p| *p.name == *r.name) else {
            continue;
        };
        match identity.route_filter(r) {
            Ok(f) => route.push_filter(std::sync::Arc::new(f)),
            Err(e) => errors.push(ConfigError::new(format!("routes[{i}].authenticate"), e)),
        }
        if let Some(a) = &r.authorize {
            let has_rules = !(a.roles_any.is_empty()
                && a.roles_all.is_empty()
                && a.scopes_any.is_empty()
                && a.scopes_all.is_empty()
                && a.consumers.is_empty());
            if has_rules || a.policies.is_empty() {
                route.push_filter(std::sync::Arc::new(rampart_authz::Authorize::new(
                    a,
                    r.auth_mode,
                )));
            }
            if let (false, Some(schema)) = (a.policies.is_empty(), &cedar) {
                match rampart_authz::CedarPolicy::load(schema, i, r, base) {
                    Ok(p) => route.push_filter(std::sync::Arc::new(p)),
                    Err(e) => errors.extend(e),
                }
            }
        }
    }
    // Limits run last: they count by the identity the filters above proved.
    match rampart_limits::LimitsPlan::compile(spec, base) {
        Ok(limits) => {
            for route in plan.routes.iter_mut() {
                if let Some(filters) = limits.routes.get(&*route.name) {
                    for f in filters {
                        route.push_filter(f.clone());
                    }
                }
            }
            plan.metric_sources.push(limits.metrics());
        }
        Err(e) => errors.extend(e),
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Parses, validates and compiles a config file (the `validate` and `run` path).
pub fn compile_file(path: &Path) -> Result<Plan, ConfigErrors> {
    let spec = rampart_config::load_file(path)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    compile_spec(&spec, base)
}

/// Compiles `yaml` and starts serving it.
pub fn start(yaml: &str, base: &Path) -> anyhow::Result<Gateway> {
    let plan = compile_str(yaml, base).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    Ok(Gateway::start(plan)?)
}
