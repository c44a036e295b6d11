//! Request and response transformation on a route (`routes[].transform`): header rules
//! whose values may come from a small template language (`{{ consumer.id }}`), checked
//! and compiled at load by `rampart-transform`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A route's transformations.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// Headers of the request sent upstream.
    #[serde(default)]
    pub request_headers: Option<HeaderRulesSpec>,
    /// Headers of the upstream's response sent to the client.
    #[serde(default)]
    pub response_headers: Option<HeaderRulesSpec>,
    /// Query parameters of the request sent upstream.
    #[serde(default)]
    pub query: Option<QueryRulesSpec>,
}

/// Query rules, applied in this order: `remove`, `set`, `add`. Names are matched decoded.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct QueryRulesSpec {
    #[serde(default)]
    pub remove: Vec<String>,
    /// Replaces every value of the parameter; a template.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Appends a parameter; a template.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

/// Header rules, applied in this order: `remove`, `rename`, `set`, `add`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct HeaderRulesSpec {
    #[serde(default)]
    pub remove: Vec<String>,
    /// `{ X-Old: X-New }`: every value of the first moves to the second.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Replaces any value; a template (`"{{ consumer.attributes.tenant }}"`).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Appends a value; a template.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}
