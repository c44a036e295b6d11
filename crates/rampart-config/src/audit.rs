//! `audit`: the tamper-evident audit trail (kept by `rampart-observe`'s `audit_trail`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::units::Duration;
use crate::{ConfigError, SecretRef, Spec};

/// Where and how the audit trail is kept.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    /// The trail's file (default `<state_dir>/audit.jsonl`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The Ed25519 key that signs checkpoints: base64 PKCS#8, as `rampart audit keygen`
    /// writes it, by secret reference.
    pub signing_key: SecretRef,
    /// A checkpoint after this many entries.
    #[serde(default = "thousand")]
    pub checkpoint_every: u64,
    /// A checkpoint when entries have waited unsigned this long.
    #[serde(default = "five_minutes")]
    pub checkpoint_interval: Duration,
    /// When the file is flushed to disk: `always` (after every entry), `checkpoint`, or
    /// `never` (left to the operating system).
    #[serde(default)]
    pub fsync: AuditFsync,
    /// A second file that receives every checkpoint too (another disk, or one a log
    /// shipper sends off the machine), so a cut tail is detectable from outside.
    #[serde(default)]
    pub checkpoint_copy: Option<PathBuf>,
    /// Which denials go into the trail, with their request id (docs/evidence.md).
    #[serde(default)]
    pub security_events: SecurityEventsSpec,
    /// A copy of every entry sent to a syslog receiver (a SIEM), RFC 5424 over TLS or
    /// TCP.
    #[serde(default)]
    pub syslog: Option<crate::SyslogSpec>,
}

/// Security events in the audit trail: denials (and shadow-mode would-be denials) whose
/// reason is at `level` or above, at most `max_per_second` entries a second (the rest
/// counted in one `security_suppressed` entry).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecurityEventsSpec {
    #[serde(default)]
    pub level: EventLevel,
    #[serde(default = "hundred_u32")]
    pub max_per_second: u32,
}

impl Default for SecurityEventsSpec {
    fn default() -> Self {
        Self {
            level: EventLevel::default(),
            max_per_second: hundred_u32(),
        }
    }
}

/// The least severe denial recorded: `high` (attacks and bans: injection, bad
/// signatures, replays, brute-force lockouts, policy and IP denials), `medium` (also
/// failed credentials, missing roles or scopes, contract violations), `low` (every
/// denial, rate limits and missing credentials included), or `off`.
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Default, Hash,
)]
#[serde(rename_all = "snake_case")]
pub enum EventLevel {
    Off,
    #[default]
    High,
    Medium,
    Low,
}

fn hundred_u32() -> u32 {
    100
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AuditFsync {
    #[default]
    Always,
    Checkpoint,
    Never,
}

/// The config versions kept in `<state_dir>/history` (every config that went live).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigHistorySpec {
    /// How many distinct versions are kept; the oldest are dropped first.
    #[serde(default = "hundred")]
    pub keep: usize,
}

impl Default for ConfigHistorySpec {
    fn default() -> Self {
        Self { keep: hundred() }
    }
}

fn hundred() -> usize {
    100
}

fn thousand() -> u64 {
    1000
}

fn five_minutes() -> Duration {
    Duration(std::time::Duration::from_secs(300))
}

impl AuditSpec {
    /// The trail's file, relative paths taken from `base`.
    pub fn file(
        &self,
        state_dir: Option<&std::path::Path>,
        base: &std::path::Path,
    ) -> Option<PathBuf> {
        crate::consumer_store::state_file(self.path.as_ref(), "audit.jsonl", state_dir, base)
    }
}

impl Spec {
    /// `state_dir`, a relative one taken from `base` (the config's directory).
    pub fn state_dir_at(&self, base: &std::path::Path) -> Option<PathBuf> {
        let d = self.state_dir.as_ref()?;
        Some(if d.is_absolute() {
            d.clone()
        } else {
            base.join(d)
        })
    }
}

pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    if spec.config_history.keep == 0 {
        errs.push(ConfigError::new(
            "config_history.keep",
            "must be at least 1 (the live version is always kept)".to_string(),
        ));
    }
    let Some(a) = &spec.audit else {
        return;
    };
    if a.path.is_none() && spec.state_dir.is_none() {
        errs.push(ConfigError::new(
            "audit.path",
            "the audit trail needs a file: set `path`, or `state_dir`".to_string(),
        ));
    }
    if a.security_events.max_per_second == 0 {
        errs.push(ConfigError::new(
            "audit.security_events.max_per_second",
            "must be at least 1 (turn events off with `level: off`)".to_string(),
        ));
    }
    if a.checkpoint_every == 0 {
        errs.push(ConfigError::new(
            "audit.checkpoint_every",
            "must be at least 1".to_string(),
        ));
    }
    if a.checkpoint_interval.get() < std::time::Duration::from_secs(1) {
        errs.push(ConfigError::new(
            "audit.checkpoint_interval",
            "must be at least 1s".to_string(),
        ));
    }
    if a.checkpoint_copy.is_some() && a.checkpoint_copy == a.path {
        errs.push(ConfigError::new(
            "audit.checkpoint_copy",
            "must be another file than the trail".to_string(),
        ));
    }
}
