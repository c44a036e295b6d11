//! Request inspection (DESIGN.md §1: ip rules → request limits → validation). Heavy
//! dependencies of the inspection features (JSON Schema, detectors) stay behind this
//! crate, so the proxy and its tests build without them.
//!
//! Landed so far: JSON threat limits ([`json_limits`], the scanner; `json_filter`, the
//! route filter).
#![forbid(unsafe_code)]

mod json_filter;
pub mod json_limits;

use std::path::Path;

use rampart_config::{ConfigError, Spec};
use rampart_core::{FeaturePlan, StateStore};

pub use json_filter::JsonLimitsFilter;
pub use json_limits::{JsonLimits, JsonScanner, JsonViolation};

/// The feature's entry point: the inspection filters of every route.
pub fn compile(
    spec: &Spec,
    _base: &Path,
    _state: &StateStore,
) -> Result<FeaturePlan, Vec<ConfigError>> {
    let mut out = FeaturePlan::for_routes(spec.routes.len());
    json_filter::compile(spec, &mut out);
    Ok(out)
}
