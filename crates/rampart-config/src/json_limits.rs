//! JSON threat limits (`json_limits`, top level and per route): bounds on the shape of
//! every JSON request body, checked in one pass as the body streams. On by default with
//! generous limits; a route's block overrides the top level's key by key.

use serde::{Deserialize, Serialize};

use crate::units::ByteSize;
use crate::{ConfigError, PolicyMode, Spec};

/// JSON threat limits. At the top level an absent key takes the built-in default; on a
/// route an absent key takes the top level's value.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct JsonLimitsSpec {
    /// Default true: every request body labelled JSON (`application/json`, `*/*+json`) or
    /// starting with `{` or `[` is checked, whatever its `Content-Type` says.
    pub enabled: Option<bool>,
    /// `shadow`: a violation is logged and counted, and the body goes on.
    pub mode: Option<PolicyMode>,
    /// Arrays and objects open at once (default 64).
    pub max_depth: Option<u32>,
    /// Members of one object (default 10,000).
    pub max_object_members: Option<u32>,
    /// Items of one array (default 100,000).
    pub max_array_items: Option<u32>,
    /// Members and items in the whole body (default 1,000,000).
    pub max_entries: Option<u64>,
    /// One string value, after escapes are decoded (default 1MiB).
    pub max_string_bytes: Option<ByteSize>,
    /// One member name, after escapes are decoded (default 1KiB).
    pub max_name_bytes: Option<ByteSize>,
    /// Characters of one number (default 256).
    pub max_number_bytes: Option<u32>,
    /// Accept request bodies with a `Content-Encoding` (gzip, br, …), which cannot be
    /// checked. Default false: they are refused with 415, because an upstream that
    /// decodes them would parse JSON the gateway never saw.
    pub allow_encoded_bodies: Option<bool>,
}

impl JsonLimitsSpec {
    /// This block over `base`: each key given here wins.
    pub fn over(&self, base: &JsonLimitsSpec) -> JsonLimitsSpec {
        JsonLimitsSpec {
            enabled: self.enabled.or(base.enabled),
            mode: self.mode.or(base.mode),
            max_depth: self.max_depth.or(base.max_depth),
            max_object_members: self.max_object_members.or(base.max_object_members),
            max_array_items: self.max_array_items.or(base.max_array_items),
            max_entries: self.max_entries.or(base.max_entries),
            max_string_bytes: self.max_string_bytes.or(base.max_string_bytes),
            max_name_bytes: self.max_name_bytes.or(base.max_name_bytes),
            max_number_bytes: self.max_number_bytes.or(base.max_number_bytes),
            allow_encoded_bodies: self.allow_encoded_bodies.or(base.allow_encoded_bodies),
        }
    }
}

/// Upper bounds on each limit: past them a limit no longer protects anything (a body
/// limit stops the request first) and the scanner's counters would overflow.
const MAX_DEPTH: u32 = 10_000;
const MAX_BYTES: u64 = 1 << 30;

pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    check(&spec.json_limits, "json_limits", errs);
    for (i, r) in spec.routes.iter().enumerate() {
        if let Some(j) = &r.json_limits {
            check(j, &format!("routes[{i}].json_limits"), errs);
        }
    }
}

fn check(j: &JsonLimitsSpec, p: &str, errs: &mut Vec<ConfigError>) {
    let mut range = |key: &str, v: Option<u64>, hi: u64| {
        if let Some(v) = v {
            if v == 0 || v > hi {
                errs.push(ConfigError::new(
                    format!("{p}.{key}"),
                    format!("must be between 1 and {hi}, got {v}"),
                ));
            }
        }
    };
    let wide = |v: Option<u32>| v.map(u64::from);
    range("max_depth", wide(j.max_depth), MAX_DEPTH.into());
    range(
        "max_object_members",
        wide(j.max_object_members),
        u32::MAX.into(),
    );
    range("max_array_items", wide(j.max_array_items), u32::MAX.into());
    range("max_entries", j.max_entries, u64::MAX);
    range(
        "max_string_bytes",
        j.max_string_bytes.map(|b| b.0),
        MAX_BYTES,
    );
    range("max_name_bytes", j.max_name_bytes.map(|b| b.0), MAX_BYTES);
    range(
        "max_number_bytes",
        wide(j.max_number_bytes),
        u32::MAX.into(),
    );
}
