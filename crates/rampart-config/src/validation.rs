//! Request validation against an OpenAPI document (`routes[].validate`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, PolicyMode, Spec};

/// A route's contract: the OpenAPI 3.0 or 3.1 document its requests must match.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ValidateSpec {
    /// The OpenAPI document (YAML or JSON), relative to the config file. Its `$ref`s must
    /// be local (`#/components/...`); a remote one is a config error.
    pub openapi: PathBuf,
    /// `shadow`: violations are logged and counted, and the request goes on.
    #[serde(default)]
    pub mode: PolicyMode,
    /// The request path prefix in front of the document's paths. Default: the path of
    /// the document's first `servers` URL (`/v1` for `https://api.example.com/v1`), or
    /// none.
    #[serde(default)]
    pub base_path: Option<String>,
    /// A request whose path or method the document does not have: `refuse` (404 or
    /// 405, the default) or `pass`.
    #[serde(default)]
    pub unknown_operations: UnknownOperations,
    /// Check the upstream's responses against the document: `off` (the default),
    /// `shadow` (violations logged and counted, the response goes on) or `enforce` (an
    /// undocumented status or media type becomes 502; a body that breaks its schema, or
    /// is larger than `response_max_bytes`, is cut off).
    #[serde(default)]
    pub responses: ResponseMode,
    /// The largest response body validated (default 1MiB).
    #[serde(default)]
    pub response_max_bytes: Option<crate::ByteSize>,
    /// In `shadow`, the share of responses validated, 1-100 (default 100).
    #[serde(default = "hundred")]
    pub response_sample_percent: u8,
}

fn hundred() -> u8 {
    100
}

/// Whether and how responses are validated.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    #[default]
    Off,
    Shadow,
    Enforce,
}

/// What to do with requests the document does not describe.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnknownOperations {
    #[default]
    Refuse,
    Pass,
}

pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    for (i, r) in spec.routes.iter().enumerate() {
        let Some(v) = &r.validate else { continue };
        if !(1..=100).contains(&v.response_sample_percent) {
            errs.push(ConfigError::new(
                format!("routes[{i}].validate.response_sample_percent"),
                format!("must be 1 to 100, got {}", v.response_sample_percent),
            ));
        }
        if v.response_max_bytes
            .is_some_and(|b| b.0 == 0 || b.0 > 1 << 30)
        {
            errs.push(ConfigError::new(
                format!("routes[{i}].validate.response_max_bytes"),
                "must be between 1 byte and 1GiB",
            ));
        }
        if let Some(b) = &v.base_path {
            if !b.starts_with('/') || (b.len() > 1 && b.ends_with('/')) {
                errs.push(ConfigError::new(
                    format!("routes[{i}].validate.base_path"),
                    format!("must start with '/' and not end with one, got {b:?}"),
                ));
            }
        }
    }
}
