//! Request inspection (DESIGN.md §1: ip rules → request limits → validation). Heavy
//! dependencies of the inspection features (JSON Schema, detectors) stay behind this
//! crate, so the proxy and its tests build without them.
//!
//! Landed so far: JSON threat limits ([`json_limits`], the scanner; `json_filter`, the
//! route filter) and IP allow/deny lists ([`ip_set`], the set; `ip_lists`, the named
//! lists, their feed files and the listener and route rules), and request validation
//! against OpenAPI documents (`openapi`), and injection detection (`injection`: SQLi,
//! XSS, traversal, command injection, SSRF, CRS-style scoring), and bot rules (`bots`:
//! user agent, missing headers, JA4).
#![forbid(unsafe_code)]

mod bots;
mod geoip;
pub mod injection;
mod ip_lists;
pub mod ip_set;
mod json_filter;
pub mod json_limits;
mod openapi;

use std::path::Path;

use rampart_config::{ConfigError, Spec};
use rampart_core::{FeaturePlan, StateStore};

pub use injection::{Detector, Finding, Findings, InjectionDetector};
pub use ip_lists::IpList;
pub use ip_set::{IpRange, IpSet, IpSetBuilder};
pub use json_filter::JsonLimitsFilter;
pub use json_limits::{JsonLimits, JsonScanner, JsonViolation};
pub use openapi::{outline as openapi_outline, OpenApiOutline, OpenApiValidator};

/// The feature's entry point: the inspection filters of every route.
pub fn compile(
    spec: &Spec,
    base: &Path,
    state: &StateStore,
) -> Result<FeaturePlan, Vec<ConfigError>> {
    let mut out = FeaturePlan::for_routes(spec.routes.len());
    json_filter::compile(spec, &mut out);
    bots::compile(spec, state, &mut out);
    injection::compile(spec, &mut out);
    let mut errors = Vec::new();
    for r in [
        ip_lists::compile(spec, base, &mut out),
        openapi::compile(spec, base, &mut out),
    ] {
        errors.extend(r.err().into_iter().flatten());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(out)
}
