//! Authorization (DESIGN.md §1, the authorize phase): what an authenticated caller may do
//! on a route. Role, scope and consumer rules are compiled into sets once per load; Cedar
//! policies (in [`cedar`]) are parsed and validated against a schema generated from the
//! config, so a typo in an attribute name fails the load, not a request.
#![forbid(unsafe_code)]

pub mod cedar;
mod rules;

pub use cedar::{CedarPolicy, CedarSchema};
pub use rules::Authorize;

use std::path::Path;
use std::sync::Arc;

use rampart_config::{ConfigError, Spec};
use rampart_core::{FeaturePlan, StateStore};

/// The feature's entry point: each route's `authorize` block as filters tagged
/// [`rampart_core::Phase::Authorize`]: the role/scope/consumer rules first (cheap), then
/// the route's Cedar policies. A block with only policies gets no rules filter.
pub fn compile(
    spec: &Spec,
    base: &Path,
    _state: &StateStore,
) -> Result<FeaturePlan, Vec<ConfigError>> {
    let cedar = CedarSchema::generate(spec)?;
    let mut out = FeaturePlan::for_routes(spec.routes.len());
    let mut errors = Vec::new();
    for (i, r) in spec.routes.iter().enumerate() {
        let Some(a) = &r.authorize else { continue };
        let has_rules = !(a.roles_any.is_empty()
            && a.roles_all.is_empty()
            && a.scopes_any.is_empty()
            && a.scopes_all.is_empty()
            && a.consumers.is_empty());
        if has_rules || a.policies.is_empty() {
            out.routes[i].push(Arc::new(Authorize::new(a, r.auth_mode)));
        }
        if let (false, Some(schema)) = (a.policies.is_empty(), &cedar) {
            match CedarPolicy::load(schema, i, r, base) {
                Ok(p) => out.routes[i].push(Arc::new(p)),
                Err(e) => errors.extend(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
