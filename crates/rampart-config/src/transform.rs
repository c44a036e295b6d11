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
    /// Operations on a JSON request body, in order.
    #[serde(default)]
    pub request_body: Vec<BodyOpSpec>,
    /// Operations on a JSON response body, in order.
    #[serde(default)]
    pub response_body: Vec<BodyOpSpec>,
    /// The largest response body `response_body` operations (or `xml.response`) hold
    /// (default 1 MiB).
    #[serde(default)]
    pub max_response_bytes: Option<crate::units::ByteSize>,
    /// XML ↔ JSON for a legacy XML or SOAP service.
    #[serde(default)]
    pub xml: Option<XmlSpec>,
}

/// `routes[].transform.xml`: which way bodies are converted, and how names are read.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct XmlSpec {
    /// A JSON request body is sent upstream as XML (after `request_body` operations).
    #[serde(default)]
    pub request: bool,
    /// An XML answer reaches the client as JSON (before `response_body` operations).
    #[serde(default)]
    pub response: bool,
    /// The `Content-Type` of the XML request (`text/xml; charset=utf-8` for SOAP 1.1).
    #[serde(default = "application_xml")]
    pub content_type: String,
    /// Drop namespace prefixes and `xmlns` attributes when reading XML.
    #[serde(default)]
    pub strip_namespaces: bool,
    /// Element names read as arrays even when they appear once.
    #[serde(default)]
    pub arrays: Vec<String>,
}

fn application_xml() -> String {
    "application/xml".into()
}

/// One operation on a JSON body. Paths as in masking, without `..`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BodyOpSpec {
    /// `{ remove: "$.internal" }`
    Remove(String),
    /// `{ rename: { path: "$.user_name", to: username } }`: same place, new name.
    Rename { path: String, to: String },
    /// `{ move: { from: "$.a", to: "$.b.c" } }`; `$` is the whole body.
    Move { from: String, to: String },
    /// `{ set: { path: "$.source", value: gateway } }`: any JSON value; a string with
    /// `{{ }}` is a template.
    Set {
        path: String,
        value: serde_json::Value,
    },
    /// Like `set`, only where the member is absent.
    Add {
        path: String,
        value: serde_json::Value,
    },
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
