//! `consumer_store`: consumers and their API keys kept as data (issued, rotated and
//! revoked through the admin API) beside the ones written in the config file. The store
//! itself is `rampart-consumers`; this is its setting and the shape of its records.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::units::Duration;
use crate::{ConfigError, Spec};

/// Where consumers issued through the admin API are kept.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsumerStoreSpec {
    /// `embedded` (a file on this node; nothing else to run) or `redis` (the top-level
    /// `redis`, shared by every instance).
    pub kind: ConsumerStoreKind,
    /// The embedded store's file (default `<state_dir>/consumers.redb`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Prefix of the Redis key names (all in one hash slot, so a cluster works too).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How often a node reads the whole store again, as a backstop to the change feed
    /// (Redis only; default 5m).
    #[serde(default = "five_minutes")]
    pub resync: Duration,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerStoreKind {
    Embedded,
    Redis,
}

fn default_prefix() -> String {
    "rampart".into()
}

fn five_minutes() -> Duration {
    Duration(std::time::Duration::from_secs(300))
}

impl ConsumerStoreSpec {
    /// The embedded store's file, relative paths taken from `base` (the config's
    /// directory). `None` when neither `path` nor `state_dir` says where.
    pub fn file(
        &self,
        state_dir: Option<&std::path::Path>,
        base: &std::path::Path,
    ) -> Option<PathBuf> {
        state_file(self.path.as_ref(), "consumers.redb", state_dir, base)
    }
}

/// A consumer kept in the store: its plan, roles, scopes, attributes and certificate
/// mappings. Its API keys are [`StoredKeyRecord`]s; signing keys (secrets) and
/// per-consumer limit overrides (policy) stay in the config file, where they are
/// reviewed.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ConsumerRecord {
    pub id: String,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Client certificates that identify this consumer on mTLS listeners.
    #[serde(default)]
    pub certificates: Vec<crate::CertificateMatchSpec>,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub updated: u64,
}

/// An API key kept in the store: its peppered hash, never the key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoredKeyRecord {
    /// Public id (the key's `rpk_<id>_` part), shown in logs and identity headers.
    pub id: String,
    pub consumer: String,
    /// `hmac-sha256:<64 hex>`.
    pub hash: String,
    /// Unix seconds.
    pub created: u64,
    #[serde(default)]
    pub not_before: Option<u64>,
    #[serde(default)]
    pub expires: Option<u64>,
}

/// A file that lives in `state_dir` unless a path is given: `path`, else
/// `<state_dir>/<name>`, relative paths taken from `base` (the config's directory).
/// `None` when neither says where.
pub(crate) fn state_file(
    path: Option<&PathBuf>,
    name: &str,
    state_dir: Option<&std::path::Path>,
    base: &std::path::Path,
) -> Option<PathBuf> {
    let p = match (path, state_dir) {
        (Some(p), _) => p.clone(),
        (None, Some(d)) => d.join(name),
        (None, None) => return None,
    };
    Some(if p.is_absolute() { p } else { base.join(p) })
}

/// The characters a consumer id may hold: it becomes a header value, a log field and a
/// Redis key part.
pub fn check_consumer_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err("must be 1 to 128 characters".into());
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
    {
        return Err("may hold only letters, digits and - _ . @".into());
    }
    Ok(())
}

pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    let Some(s) = &spec.consumer_store else {
        return;
    };
    match s.kind {
        ConsumerStoreKind::Embedded => {
            if s.path.is_none() && spec.state_dir.is_none() {
                errs.push(ConfigError::new(
                    "consumer_store.path",
                    "the embedded store needs a file: set `path`, or `state_dir`".to_string(),
                ));
            }
        }
        ConsumerStoreKind::Redis => {
            if spec.redis.is_none() {
                errs.push(ConfigError::new(
                    "consumer_store.kind",
                    "`redis` needs the top-level `redis` setting".to_string(),
                ));
            }
            if s.path.is_some() {
                errs.push(ConfigError::new(
                    "consumer_store.path",
                    "only the embedded store has a file".to_string(),
                ));
            }
        }
    }
    if s.prefix.is_empty()
        || s.prefix
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'{' || b == b'}')
    {
        errs.push(ConfigError::new(
            "consumer_store.prefix",
            "must be non-empty, without spaces or braces".to_string(),
        ));
    }
    if s.resync.get() < std::time::Duration::from_secs(1) {
        errs.push(ConfigError::new(
            "consumer_store.resync",
            "must be at least 1s".to_string(),
        ));
    }
    if spec.identity.api_keys.pepper.is_none() {
        errs.push(ConfigError::new(
            "identity.api_keys.pepper",
            "the consumer store hashes the keys it issues with the pepper: set one".to_string(),
        ));
    }
}
