//! The consumer store: consumers and their API keys kept as data, beside the ones in the
//! config file. Issued, rotated and revoked through the admin API; kept in an embedded
//! redb file (one node) or in Redis (every node), and mirrored into each node's key
//! index ([`rampart_identity::live_keys::LiveKeys`]), which requests read without
//! waiting on the store.
//!
//! This crate is the identity feature's storage layer, apart from `rampart-identity` so
//! that redb and the Redis client stay out of its build; it depends on identity for the
//! index it fills and the key format, and nothing but the binary and the admin API
//! depend on it.
#![forbid(unsafe_code)]

mod embedded;
mod feed;
mod redis_backend;
mod service;

use std::path::Path;
use std::sync::Arc;

use rampart_config::{ConfigError, Spec};
use rampart_core::{FeaturePlan, StateStore};

pub use service::{ConsumerStore, Issued, StoreStatus};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the consumer store is unavailable: {0}")]
    Unavailable(String),
    #[error("the consumer store holds a record it cannot read: {0}")]
    Corrupt(String),
}

/// Logs a whole-store read.
pub(crate) fn log_loaded(
    from: &str,
    counts: (usize, usize),
    skipped: usize,
    started: std::time::Instant,
) {
    tracing::info!(
        from,
        consumers = counts.0,
        keys = counts.1,
        skipped,
        ms = started.elapsed().as_millis() as u64,
        "consumer store loaded"
    );
}

/// The feature's compile step: opens the store named by `consumer_store` the first time
/// (loading it whole into the node's key index before the plan can go live) and keeps it
/// in `state` while the setting stays the same. No filters: the identity feature reads
/// the index.
pub fn compile(
    spec: &Spec,
    base: &Path,
    state: &StateStore,
) -> Result<FeaturePlan, Vec<ConfigError>> {
    let mut out = FeaturePlan::for_routes(spec.routes.len());
    let Some(key) = rampart_identity::live_keys_key(spec) else {
        return Ok(out);
    };
    // `rampart validate` checks the setting only: the store's file may be held by the
    // running gateway, and a check opens nothing.
    if state.is_dry() {
        return Ok(out);
    }
    let live = state.get_or_insert(&key, rampart_identity::live_keys::LiveKeys::new);
    let store = state
        .get_or_try_insert(&format!("{key}\nstore"), || {
            ConsumerStore::open(spec, base, live.clone())
        })
        .map_err(|e| vec![ConfigError::new("consumer_store", e)])?;
    store.configure(spec, base).map_err(|e| vec![e])?;
    out.metrics.push(store.clone());
    Ok(out)
}

/// The store a running gateway's config names, if any (for the admin API).
pub fn current(state: &StateStore, spec: &Spec) -> Option<Arc<ConsumerStore>> {
    let key = rampart_identity::live_keys_key(spec)?;
    state.get::<ConsumerStore>(&format!("{key}\nstore"))
}

/// Whether the embedded store at `path` can be copied whole now: `Err` (why) while a
/// gateway holds it open (redb locks its file), or when it does not open.
pub fn embedded_idle(path: &std::path::Path) -> Result<(), String> {
    redb::Database::builder()
        .set_cache_size(1 << 20)
        .open(path)
        .map(drop)
        .map_err(|e| e.to_string())
}
