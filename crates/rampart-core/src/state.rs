//! State that outlives a config reload: rate-limit tables, the Redis connection, JWKS
//! caches, counters. A reload compiles a whole new plan; whatever must carry over is
//! looked up here by key during the compile, so a reload neither resets anyone's budget
//! nor reconnects nor makes a counter go backwards.
//!
//! One store per gateway (two gateways in one process share nothing). It is used at
//! compile time only, never on the request path, so its lock is not a hot-path lock.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Entries = HashMap<(TypeId, Box<str>), Arc<dyn Any + Send + Sync>>;

/// A gateway's reload-surviving state, by type and key.
#[derive(Default)]
pub struct StateStore {
    entries: Mutex<Entries>,
    /// A compile that serves nothing (`rampart validate`): features check their
    /// settings but open no files that a running gateway may hold (the consumer store,
    /// the audit trail) and write nothing.
    dry: bool,
}

impl StateStore {
    pub fn new() -> Arc<StateStore> {
        Arc::new(StateStore::default())
    }

    /// The state of a compile that only checks (`rampart validate`).
    pub fn dry() -> Arc<StateStore> {
        Arc::new(StateStore {
            dry: true,
            ..StateStore::default()
        })
    }

    pub fn is_dry(&self) -> bool {
        self.dry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value kept under `key`, made by `init` if there is none yet.
    pub fn get_or_insert<T: Any + Send + Sync>(
        &self,
        key: &str,
        init: impl FnOnce() -> T,
    ) -> Arc<T> {
        match self.get_or_try_insert::<T, std::convert::Infallible>(key, || Ok(init())) {
            Ok(v) => v,
            Err(e) => match e {},
        }
    }

    /// Like [`StateStore::get_or_insert`], for state whose making can fail (a Redis URL
    /// that does not parse); nothing is stored on failure.
    pub fn get_or_try_insert<T: Any + Send + Sync, E>(
        &self,
        key: &str,
        init: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let mut entries = self.lock();
        let k = (TypeId::of::<T>(), Box::<str>::from(key));
        if let Some(v) = entries.get(&k).and_then(|v| v.clone().downcast::<T>().ok()) {
            return Ok(v);
        }
        let v = Arc::new(init()?);
        entries.insert(k, v.clone());
        Ok(v)
    }

    /// The value kept under `key`, if there is one.
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        let k = (TypeId::of::<T>(), Box::<str>::from(key));
        self.lock()
            .get(&k)
            .and_then(|v| v.clone().downcast::<T>().ok())
    }

    /// Drops the state no plan holds any more (called after a new plan went live, so a
    /// removed policy's table is freed; a plan still finishing requests keeps its own).
    pub fn release_unused(&self) {
        self.lock().retain(|_, v| Arc::strong_count(v) > 1);
    }

    /// How many values are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateStore({} entries)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_and_type_give_the_same_value() {
        let s = StateStore::new();
        let a = s.get_or_insert("k", || std::sync::atomic::AtomicU64::new(7));
        let b = s.get_or_insert("k", || std::sync::atomic::AtomicU64::new(9));
        assert!(Arc::ptr_eq(&a, &b));
        // Another type under the same key is another value.
        let c = s.get_or_insert("k", || String::from("x"));
        assert_eq!(*c, "x");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn unused_values_are_released_and_held_ones_kept() {
        let s = StateStore::new();
        let held = s.get_or_insert("held", || 1u32);
        drop(s.get_or_insert("dropped", || 2u32));
        s.release_unused();
        assert_eq!(s.len(), 1);
        assert!(Arc::ptr_eq(&held, &s.get_or_insert("held", || 3u32)));
    }

    #[test]
    fn failed_init_stores_nothing() {
        let s = StateStore::new();
        let r: Result<Arc<u32>, &str> = s.get_or_try_insert("k", || Err("bad"));
        assert!(r.is_err());
        assert!(s.is_empty());
    }
}
