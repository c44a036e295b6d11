//! Data protection on a route's responses: masking personal and secret data in JSON
//! bodies (`routes[].mask`) and response field allow- and deny-lists
//! (`routes[].response_fields`). Paths and kinds are checked when the route is compiled
//! (`rampart-transform`), which reports them with their YAML path.

use serde::{Deserialize, Serialize};

use crate::{ByteSize, SecretRef};

/// A route's response masking.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaskSpec {
    /// Values masked by where they are: a JSON path (`$.card.number`, `$..ssn`,
    /// `$.items[*].email`) and what to do with the value there.
    #[serde(default)]
    pub fields: Vec<MaskFieldSpec>,
    /// Values masked by what they are, wherever they appear in a string: `card`, `iban`,
    /// `email`, `phone`, `ssn`, `jwt`, `api_key`, `ip`.
    #[serde(default)]
    pub detect: Vec<MaskDetectSpec>,
    /// Callers who see the response unmasked (any one condition suffices).
    #[serde(default)]
    pub exempt: Option<ExemptSpec>,
    /// The key of the `hash` action (an HMAC-SHA-256 key, at least 16 bytes); required
    /// when any rule hashes.
    #[serde(default)]
    pub hash_key: Option<SecretRef>,
    /// Media types whose bodies are masked, besides `application/json` and any `+json`
    /// type (which always are).
    #[serde(default)]
    pub media_types: Vec<String>,
    /// What happens to a response that cannot be masked: a body of another media type,
    /// a body that is not valid JSON, or a string longer than `max_value_bytes`.
    /// `block` (default): the client gets a 502 (or, once the body has started, an
    /// incomplete response); `pass`: it goes on unmasked from that point.
    #[serde(default)]
    pub on_unparseable: Unparseable,
    /// The longest string value held to be masked or scanned (default 1 MiB). Everything
    /// else streams, so a masked response of any size is held in bounded memory.
    #[serde(default = "default_value_bytes")]
    pub max_value_bytes: ByteSize,
}

fn default_value_bytes() -> ByteSize {
    ByteSize(1 << 20)
}

/// One field rule.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaskFieldSpec {
    pub path: String,
    pub action: MaskAction,
}

/// One detector rule.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaskDetectSpec {
    pub kind: String,
    pub action: MaskAction,
}

/// What a rule does to a value.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum MaskAction {
    /// Keep the last four letters or digits; the others become `*`.
    Last4,
    /// A keyed hash (`hash:` and 22 base64url characters): the same value always gives
    /// the same token, which cannot be reversed without the key.
    Hash,
    /// A fixed placeholder (`[redacted]` for a field, `[card]` for a detected value).
    Redact,
    /// Drop the member (or array element) altogether. Fields only.
    Remove,
}

/// Who is exempt from a route's masking.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ExemptSpec {
    #[serde(default)]
    pub roles_any: Vec<String>,
    #[serde(default)]
    pub scopes_any: Vec<String>,
    #[serde(default)]
    pub consumers: Vec<String>,
}

/// `mask.on_unparseable`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Unparseable {
    #[default]
    Block,
    Pass,
}

/// A route's response field allow- or deny-list (data minimisation, OWASP API3).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ResponseFieldsSpec {
    /// Only these JSON paths reach the client (with everything below them).
    #[serde(default)]
    pub allow: Vec<String>,
    /// These JSON paths are removed.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Lists for callers with a role, instead of the route's: the first entry naming one
    /// of the caller's roles applies.
    #[serde(default)]
    pub per_role: Vec<RoleFieldsSpec>,
}

/// `response_fields.per_role[]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RoleFieldsSpec {
    pub roles_any: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}
