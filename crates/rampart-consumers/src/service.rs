//! What the admin API does with the store: consumers created, changed and deleted, keys
//! issued, listed, rotated and revoked. Each operation writes the store first, then
//! changes this node's key index, so the answer the operator gets is already true here.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rampart_config::{ConfigError, ConsumerRecord, ConsumerStoreKind, Spec, StoredKeyRecord};
use rampart_core::metrics_text::MetricsText;
use rampart_identity::live_keys::{Change, LiveKeys};

use crate::embedded::Embedded;
use crate::redis_backend::RedisBackend;
use crate::StoreError;

/// What the running config says about the store's records (set at every load).
#[derive(Default)]
struct Settings {
    pepper: Option<rampart_config::Secret>,
    plans: HashSet<String>,
    /// Consumers written in the config file: the store may not hold the same ids.
    config_consumers: HashSet<String>,
    /// Certificate facts the config file's consumers claim.
    config_certificates: HashSet<String>,
}

enum Backend {
    Embedded(Embedded),
    Redis {
        backend: Arc<RedisBackend>,
        /// Stops the feed's thread (on drop).
        stop: tokio::sync::watch::Sender<bool>,
        thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    },
}

/// Whether the store answered its last call, shared with the feed.
#[derive(Default)]
pub(crate) struct Health {
    down: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Health {
    pub fn set_up(&self) {
        self.down.store(false, Ordering::Relaxed);
    }

    pub fn set_down(&self, error: &str) {
        self.down.store(true, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
    }
}

/// A consumer store and the node's index it keeps filled.
pub struct ConsumerStore {
    backend: Backend,
    live: Arc<LiveKeys>,
    settings: Mutex<Arc<Settings>>,
    health: Arc<Health>,
}

impl Drop for ConsumerStore {
    fn drop(&mut self) {
        if let Backend::Redis { stop, thread, .. } = &self.backend {
            let _ = stop.send(true);
            if let Some(t) = thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = t.join();
            }
        }
    }
}

/// How long a gateway starting with a Redis store waits for its first load before it
/// serves anyway (not ready, store keys refused, until the load succeeds).
const FIRST_LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A key just issued: its record and the key itself, shown once.
pub struct Issued {
    pub record: StoredKeyRecord,
    pub key: String,
}

/// The store's state, for `/readyz` and the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreStatus {
    pub kind: &'static str,
    pub up: bool,
    pub loaded: bool,
    pub keys: usize,
    pub synced_at_unix: u64,
    pub last_error: Option<String>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ConsumerStore {
    /// Opens the store `spec` names and loads it whole into `live`.
    pub fn open(spec: &Spec, base: &Path, live: Arc<LiveKeys>) -> Result<Self, String> {
        let Some(s) = &spec.consumer_store else {
            return Err("no consumer_store".into());
        };
        let backend = match s.kind {
            ConsumerStoreKind::Embedded => {
                let path = s
                    .file(spec.state_dir.as_deref(), base)
                    .ok_or("the embedded store needs `path` or `state_dir`")?;
                Backend::Embedded(Embedded::open(&path)?)
            }
            ConsumerStoreKind::Redis => {
                let health = Arc::new(Health::default());
                let backend = Self::open_redis(spec, s, base, live.clone(), health.clone())?;
                return Ok(Self {
                    backend,
                    live,
                    settings: Mutex::new(Arc::default()),
                    health,
                });
            }
        };
        let store = Self {
            backend,
            live,
            settings: Mutex::new(Arc::default()),
            health: Arc::default(),
        };
        store.full_load().map_err(|e| e.to_string())?;
        Ok(store)
    }

    /// Starts following the Redis store on a thread of its own, and waits a little for
    /// the first load.
    fn open_redis(
        spec: &Spec,
        s: &rampart_config::ConsumerStoreSpec,
        base: &Path,
        live: Arc<LiveKeys>,
        health: Arc<Health>,
    ) -> Result<Backend, String> {
        let redis = spec.redis.as_ref().ok_or("`redis` is not set")?;
        let client = rampart_redis::RedisClient::from_spec(redis, base)?;
        // Calls answer operators and read whole stores: not the data path's budget.
        let timeout = redis.timeout.get().max(std::time::Duration::from_secs(10));
        let backend = Arc::new(RedisBackend::new(client, &s.prefix, timeout));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (b, l, h, resync) = (backend.clone(), live.clone(), health, s.resync.get());
        let thread = std::thread::Builder::new()
            .name("rampart-consumers".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(crate::feed::follow(b, l, h, resync, stop_rx));
            })
            .map_err(|e| format!("cannot start the consumer store's thread: {e}"))?;
        let deadline = std::time::Instant::now() + FIRST_LOAD_WAIT;
        while !live.is_loaded() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if !live.is_loaded() {
            tracing::error!("consumer store: Redis has not answered; serving without its keys (not ready) until it does");
        }
        Ok(Backend::Redis {
            backend,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Reads everything into the index (the first load; a resync).
    fn full_load(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut loader = self.live.loader();
        let (nc, nk) = match &self.backend {
            Backend::Embedded(e) => e.load_into(&mut loader)?,
            // Redis is read by its feed; an import asks the feed to read it again.
            Backend::Redis { .. } => return Ok(()),
        };
        let skipped = loader.finish();
        crate::log_loaded("embedded", (nc, nk), skipped, started);
        Ok(())
    }

    /// Takes the running config's pepper, plans and file consumers (every load).
    pub(crate) fn configure(&self, spec: &Spec, base: &Path) -> Result<(), ConfigError> {
        let pepper = match &spec.identity.api_keys.pepper {
            Some(r) => Some(
                r.resolve(base)
                    .map_err(|e| ConfigError::new("identity.api_keys.pepper", e))?,
            ),
            None => None,
        };
        let settings = Settings {
            pepper,
            plans: spec.plans.keys().cloned().collect(),
            config_consumers: spec.consumers.iter().map(|c| c.id.clone()).collect(),
            config_certificates: spec
                .consumers
                .iter()
                .flat_map(|c| &c.certificates)
                .filter_map(|m| rampart_identity::live_keys::certificate_fact(m).ok())
                .collect(),
        };
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(settings);
        Ok(())
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// When `key` last authenticated a request on this node.
    pub fn last_used(&self, key: &StoredKeyRecord) -> Option<u64> {
        self.live.last_used(&key.hash)
    }

    pub fn live(&self) -> &Arc<LiveKeys> {
        &self.live
    }

    pub fn status(&self) -> StoreStatus {
        StoreStatus {
            kind: match &self.backend {
                Backend::Embedded(_) => "embedded",
                Backend::Redis { .. } => "redis",
            },
            up: !self.health.down.load(Ordering::Relaxed),
            loaded: self.live.is_loaded(),
            keys: self.live.len(),
            synced_at_unix: self.live.synced_at.load(Ordering::Relaxed),
            last_error: self
                .health
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Records the outcome of a call to the store (its health for `/readyz`).
    fn seen<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Err(StoreError::Unavailable(e)) => self.health.set_down(e),
            _ => self.health.set_up(),
        }
        r
    }

    fn check_consumer(&self, c: &ConsumerRecord) -> Result<(), StoreError> {
        rampart_config::check_consumer_id(&c.id)
            .map_err(|e| StoreError::Invalid(format!("id: {e}")))?;
        let s = self.settings();
        if s.config_consumers.contains(&c.id) {
            return Err(StoreError::Exists(format!(
                "consumer {:?} (in the config file)",
                c.id
            )));
        }
        if let Some(p) = &c.plan {
            if !s.plans.contains(p) {
                return Err(StoreError::Invalid(format!(
                    "plan: {p:?} is not a plan in the config"
                )));
            }
        }
        for (i, m) in c.certificates.iter().enumerate() {
            let fact = rampart_identity::live_keys::certificate_fact(m)
                .map_err(|e| StoreError::Invalid(format!("certificates[{i}]: {e}")))?;
            if s.config_certificates.contains(&fact) {
                return Err(StoreError::Exists(format!(
                    "certificates[{i}]: a mapping of a consumer in the config file"
                )));
            }
            match self.live.certificate_owner(&fact) {
                Some(owner) if owner != c.id => {
                    return Err(StoreError::Exists(format!(
                        "certificates[{i}]: a mapping of consumer {owner:?}"
                    )))
                }
                _ => {}
            }
        }
        for (what, list) in [("roles", &c.roles), ("scopes", &c.scopes)] {
            if let Some(r) = list.iter().find(|r| {
                r.is_empty()
                    || r.len() > 128
                    || r.contains([',', ' '])
                    || r.chars().any(char::is_control)
            }) {
                return Err(StoreError::Invalid(format!(
                    "{what}: {r:?} must be 1 to 128 characters without commas, spaces or control characters"
                )));
            }
        }
        Ok(())
    }

    pub async fn create_consumer(
        &self,
        mut c: ConsumerRecord,
    ) -> Result<ConsumerRecord, StoreError> {
        self.check_consumer(&c)?;
        c.created = now_unix();
        c.updated = c.created;
        let r = match &self.backend {
            Backend::Embedded(e) => e.put_consumer(&c, true),
            Backend::Redis { backend, .. } => backend.put_consumer(&c, true).await,
        };
        self.seen(r)?;
        self.live.apply(Change::PutConsumer(c.clone()));
        Ok(c)
    }

    pub async fn update_consumer(
        &self,
        mut c: ConsumerRecord,
    ) -> Result<ConsumerRecord, StoreError> {
        self.check_consumer(&c)?;
        let old = self
            .get_consumer(&c.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("consumer {:?}", c.id)))?;
        c.created = old.created;
        c.updated = now_unix();
        let r = match &self.backend {
            Backend::Embedded(e) => e.put_consumer(&c, false),
            Backend::Redis { backend, .. } => backend.put_consumer(&c, false).await,
        };
        self.seen(r)?;
        self.live.apply(Change::PutConsumer(c.clone()));
        Ok(c)
    }

    /// Deletes a consumer and every key it has; returns the keys' ids.
    pub async fn delete_consumer(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let r = match &self.backend {
            Backend::Embedded(e) => e.delete_consumer(id),
            Backend::Redis { backend, .. } => backend.delete_consumer(id).await,
        };
        let keys = self.seen(r)?;
        let ids = keys.iter().map(|k| k.id.clone()).collect();
        for k in keys {
            self.live.apply(Change::DeleteKey(k));
        }
        self.live.apply(Change::DeleteConsumer(id.to_string()));
        Ok(ids)
    }

    pub async fn get_consumer(&self, id: &str) -> Result<Option<ConsumerRecord>, StoreError> {
        let r = match &self.backend {
            Backend::Embedded(e) => e.get_consumer(id),
            Backend::Redis { backend, .. } => backend.get_consumer(id).await,
        };
        self.seen(r)
    }

    pub async fn list_consumers(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConsumerRecord>, StoreError> {
        let r = match &self.backend {
            Backend::Embedded(e) => e.list_consumers(after, limit),
            Backend::Redis { backend, .. } => backend.list_consumers(after, limit).await,
        };
        self.seen(r)
    }

    pub async fn list_keys(&self, consumer: &str) -> Result<Vec<StoredKeyRecord>, StoreError> {
        if self.get_consumer(consumer).await?.is_none() {
            return Err(StoreError::NotFound(format!("consumer {consumer:?}")));
        }
        let r = match &self.backend {
            Backend::Embedded(e) => e.list_keys(consumer),
            Backend::Redis { backend, .. } => backend.list_keys(consumer).await,
        };
        self.seen(r)
    }

    /// Issues a key to `consumer`, valid until `expires` (unix seconds) if given. The key
    /// is in the answer only; the store keeps its peppered hash.
    pub async fn issue_key(
        &self,
        consumer: &str,
        expires: Option<u64>,
    ) -> Result<Issued, StoreError> {
        let settings = self.settings();
        let Some(pepper) = &settings.pepper else {
            return Err(StoreError::Invalid(
                "identity.api_keys.pepper is not set".into(),
            ));
        };
        if expires.is_some_and(|t| t <= now_unix()) {
            return Err(StoreError::Invalid("expires: must be in the future".into()));
        }
        // A public id is 40 random bits: a clash is rare, and answered by drawing again.
        for _ in 0..8 {
            let new = rampart_identity::api_key::generate(pepper.expose().as_bytes())
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            let record = StoredKeyRecord {
                id: new.public_id.clone(),
                consumer: consumer.to_string(),
                hash: new.hash.clone(),
                created: now_unix(),
                not_before: None,
                expires,
            };
            let r = match &self.backend {
                Backend::Embedded(e) => e.put_key(&record, true),
                Backend::Redis { backend, .. } => backend.put_key(&record, true).await,
            };
            match self.seen(r) {
                Ok(()) => {
                    self.live.apply(Change::PutKey(record.clone()));
                    return Ok(Issued {
                        record,
                        key: new.key,
                    });
                }
                Err(StoreError::Exists(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "could not draw an unused key id".into(),
        ))
    }

    /// Revokes a key: gone from the store and from this node's index at once.
    pub async fn revoke_key(&self, id: &str) -> Result<StoredKeyRecord, StoreError> {
        let r = match &self.backend {
            Backend::Embedded(e) => e.delete_key(id),
            Backend::Redis { backend, .. } => backend.delete_key(id).await,
        };
        let key = self.seen(r)?;
        self.live.apply(Change::DeleteKey(key.clone()));
        Ok(key)
    }

    /// Rotates a key: issues a new one to the same consumer (with the old one's expiry)
    /// and lets the old one work for `overlap` more seconds (never longer than it would
    /// have). Returns the new key and the old key's record as it now is.
    pub async fn rotate_key(
        &self,
        id: &str,
        overlap: u64,
    ) -> Result<(Issued, StoredKeyRecord), StoreError> {
        let r = match &self.backend {
            Backend::Embedded(e) => e.get_key(id),
            Backend::Redis { backend, .. } => backend.get_key(id).await,
        };
        let mut old = self
            .seen(r)?
            .ok_or_else(|| StoreError::NotFound(format!("key {id:?}")))?;
        let new = self
            .issue_key(&old.consumer, old.expires.filter(|&t| t > now_unix()))
            .await?;
        let until = now_unix() + overlap;
        old.expires = Some(old.expires.map_or(until, |t| t.min(until)));
        let r = match &self.backend {
            Backend::Embedded(e) => e.put_key(&old, false),
            Backend::Redis { backend, .. } => backend.put_key(&old, false).await,
        };
        self.seen(r)?;
        self.live.apply(Change::PutKey(old.clone()));
        Ok((new, old))
    }
}

impl ConsumerStore {
    /// Writes many consumers and keys at once (a migration from another gateway, a
    /// benchmark), then reloads the index from the store. Nothing is checked against
    /// the config: this is for operators' tooling, not the admin API.
    pub async fn import(
        &self,
        consumers: &[ConsumerRecord],
        keys: &[StoredKeyRecord],
    ) -> Result<(), StoreError> {
        let r = match &self.backend {
            Backend::Embedded(e) => e.import(consumers, keys),
            Backend::Redis { backend, .. } => backend.import(consumers, keys).await,
        };
        self.seen(r)?;
        self.full_load()
    }
}

impl rampart_core::MetricsSource for ConsumerStore {
    fn render(&self, out: &mut MetricsText) {
        let s = self.status();
        out.family(
            "rampart_consumer_store_up",
            "gauge",
            "1 while the consumer store answers; 0 after a failed call (the last index keeps serving).",
        );
        out.sample(
            "rampart_consumer_store_up",
            &[("kind", s.kind)],
            u64::from(s.up),
        );
        out.family(
            "rampart_consumer_store_keys",
            "gauge",
            "API keys from the consumer store in this node's index.",
        );
        out.sample(
            "rampart_consumer_store_keys",
            &[("kind", s.kind)],
            s.keys as u64,
        );
        out.family(
            "rampart_consumer_store_synced_at_seconds",
            "gauge",
            "Unix time of the last change from the consumer store applied on this node.",
        );
        out.sample(
            "rampart_consumer_store_synced_at_seconds",
            &[("kind", s.kind)],
            s.synced_at_unix,
        );
    }
}
