//! Request inspection (DESIGN.md §1: ip rules → request limits → validation). Heavy
//! dependencies of the inspection features (JSON Schema, detectors) stay behind this
//! crate, so the proxy and its tests build without them.
//!
//! Landed so far: the JSON threat-limit scanner ([`json_limits`]); it is not yet wired
//! to routes.
#![forbid(unsafe_code)]

pub mod json_limits;

pub use json_limits::{JsonLimits, JsonScanner, JsonViolation};
