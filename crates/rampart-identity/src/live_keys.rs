//! API keys issued at run time (the consumer store, crate `rampart-consumers`): an index
//! that changes one key at a time, from the store's change feed, while requests read it
//! without a lock.
//!
//! The keys are spread over [`SHARDS`] maps, each behind an `ArcSwap`: a reader loads one
//! shard (no lock, no contended counter), a writer copies the one shard a change touches
//! and swaps it in. A change costs a copy of about `keys / SHARDS` pointers, so a million
//! keys are changed one at a time in microseconds, and a revocation is seen by the next
//! request that loads the shard.
//!
//! Memory is what bounds a million keys (docs/consumers.md reports it): a key is its hash,
//! its id, its validity and a pointer to its consumer; a consumer is its id and a pointer
//! to a profile (roles, scopes, plan, attributes) that consumers with the same ones share.
//! The identity a key stands for is built on its first use and kept with the key.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, ArcSwapOption};
use rampart_config::{ConsumerRecord, StoredKeyRecord};
use rampart_core::{Identity, Reason};
use subtle::ConstantTimeEq;

use crate::consumers::{HeaderNames, Resolved};

/// How many maps the keys are spread over (a power of two).
pub const SHARDS: usize = 1024;

/// The keys' hashes are HMAC outputs, uniformly spread: their first eight bytes are the
/// map key as they are, with no second hash.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Shard = HashMap<u64, Arc<LiveKey>, BuildHasherDefault<PrefixHasher>>;

/// What consumers with the same roles, scopes, plan and attributes share.
#[derive(PartialEq)]
struct Profile {
    roles: Vec<Arc<str>>,
    scopes: Vec<Arc<str>>,
    plan: Option<Arc<str>>,
    attributes: Arc<serde_json::Map<String, serde_json::Value>>,
}

/// A consumer from the store.
pub struct LiveConsumer {
    pub id: Box<str>,
    profile: Arc<Profile>,
}

/// The identity a key stood for when it was last used, with the identity headers of the
/// plan (by generation) that rendered them.
struct Cached {
    generation: u64,
    resolved: Resolved,
}

/// One key from the store.
pub struct LiveKey {
    hash: [u8; 32],
    pub id: Box<str>,
    pub consumer: Arc<LiveConsumer>,
    /// Unix seconds; 0: none.
    not_before: u64,
    expires: u64,
    cached: ArcSwapOption<Cached>,
}

impl std::fmt::Debug for LiveKey {
    // Never the hash: ids and dates only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKey")
            .field("id", &self.id)
            .field("consumer", &self.consumer.id)
            .field("not_before", &self.not_before)
            .field("expires", &self.expires)
            .finish()
    }
}

impl LiveKey {
    /// The identity this key stands for, with `names`' headers (`generation` tells one
    /// plan's header names from another's).
    pub fn resolved(&self, names: &HeaderNames, generation: u64) -> Resolved {
        if let Some(c) = &*self.cached.load() {
            if c.generation == generation {
                return c.resolved.clone();
            }
        }
        let p = &self.consumer.profile;
        let consumer: Arc<str> = Arc::from(&*self.consumer.id);
        let identity = Identity {
            consumer: Some(consumer.clone()),
            subject: consumer,
            method: "api_key",
            credential: Some(Arc::from(&*self.id)),
            roles: p.roles.clone(),
            scopes: p.scopes.clone(),
            plan: p.plan.clone(),
            attributes: p.attributes.clone(),
        };
        let resolved = Resolved {
            headers: names.render(&identity),
            identity: Arc::new(identity),
        };
        self.cached.store(Some(Arc::new(Cached {
            generation,
            resolved: resolved.clone(),
        })));
        resolved
    }

    fn check_window(&self, now: SystemTime) -> Result<(), Reason> {
        let now = unix(now);
        if self.not_before != 0 && now < self.not_before {
            return Err(Reason::ApiKeyNotYetValid);
        }
        if self.expires != 0 && now >= self.expires {
            return Err(Reason::ApiKeyExpired);
        }
        Ok(())
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch as a time.
pub fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A consumer's entry on the writer's side: the consumer and its keys' prefixes.
struct ConsumerEntry {
    consumer: Arc<LiveConsumer>,
    keys: Vec<u64>,
}

/// What only writers touch, under one lock (never taken by a request).
#[derive(Default)]
struct Writer {
    consumers: HashMap<Box<str>, ConsumerEntry>,
    /// Key id → its hash's prefix (for revocation by id).
    keys: HashMap<Box<str>, u64>,
    /// Profiles by a digest of their content, shared while a consumer holds them.
    profiles: HashMap<u64, Vec<Weak<Profile>>>,
}

/// One change from the store.
#[derive(Debug, Clone)]
pub enum Change {
    PutConsumer(ConsumerRecord),
    DeleteConsumer(String),
    PutKey(StoredKeyRecord),
    DeleteKey(String),
}

/// The keys issued at run time, shared by every plan of a gateway (kept in its state
/// store), filled and changed by the consumer store's sync.
pub struct LiveKeys {
    shards: Box<[ArcSwap<Shard>]>,
    writer: Mutex<Writer>,
    len: AtomicUsize,
    /// The first full load has been applied.
    loaded: AtomicBool,
    /// Unix seconds of the last change or load that reached this index.
    pub synced_at: AtomicU64,
}

impl Default for LiveKeys {
    fn default() -> Self {
        Self::new()
    }
}

fn prefix(h: &[u8; 32]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&h[..8]);
    u64::from_le_bytes(head)
}

fn shard_of(p: u64) -> usize {
    (p >> 54) as usize & (SHARDS - 1)
}

impl LiveKeys {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| ArcSwap::from_pointee(Shard::default()))
                .collect(),
            writer: Mutex::new(Writer::default()),
            len: AtomicUsize::new(0),
            loaded: AtomicBool::new(false),
            synced_at: AtomicU64::new(0),
        }
    }

    /// How many keys are indexed.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the store's contents have been loaded once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The key whose peppered hash is `hash`, if it is valid at `now`.
    pub fn verify(&self, hash: &[u8], now: SystemTime) -> Result<Arc<LiveKey>, Reason> {
        if hash.len() != 32 {
            return Err(Reason::ApiKeyUnknown);
        }
        let mut head = [0u8; 8];
        head.copy_from_slice(&hash[..8]);
        let p = u64::from_le_bytes(head);
        let shard = self.shards[shard_of(p)].load();
        let key = shard
            .get(&p)
            .filter(|k| bool::from(k.hash.ct_eq(hash)))
            .ok_or(Reason::ApiKeyUnknown)?;
        key.check_window(now)?;
        Ok(key.clone())
    }

    /// Whether the store holds a consumer with this id.
    pub fn has_consumer(&self, id: &str) -> bool {
        self.lock().consumers.contains_key(id)
    }

    /// Every consumer id in the index (for the config's conflict check).
    pub fn consumer_ids(&self) -> Vec<String> {
        self.lock()
            .consumers
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces everything with the store's full contents (the first load, a resync).
    /// Returns how many keys were skipped (unknown consumer, bad hash, prefix taken).
    pub fn replace_all(&self, consumers: Vec<ConsumerRecord>, keys: Vec<StoredKeyRecord>) -> usize {
        let mut w = self.lock();
        let mut fresh = Writer {
            profiles: std::mem::take(&mut w.profiles),
            ..Writer::default()
        };
        for c in consumers {
            let consumer = fresh.consumer(c);
            fresh.consumers.insert(
                consumer.id.clone(),
                ConsumerEntry {
                    consumer,
                    keys: Vec::new(),
                },
            );
        }
        let mut shards: Vec<Shard> = (0..SHARDS).map(|_| Shard::default()).collect();
        let mut skipped = 0;
        let mut n = 0;
        for k in keys {
            let Some((p, key)) = fresh.key(&k) else {
                skipped += 1;
                continue;
            };
            let shard = &mut shards[shard_of(p)];
            if shard.contains_key(&p) {
                skipped += 1;
                continue;
            }
            fresh.keys.insert(k.id.as_str().into(), p);
            if let Some(e) = fresh.consumers.get_mut(k.consumer.as_str()) {
                e.keys.push(p);
            }
            shard.insert(p, key);
            n += 1;
        }
        for (slot, shard) in self.shards.iter().zip(shards) {
            slot.store(Arc::new(shard));
        }
        fresh.profiles.retain(|_, v| {
            v.retain(|w| w.strong_count() > 0);
            !v.is_empty()
        });
        *w = fresh;
        self.len.store(n, Ordering::Relaxed);
        self.loaded.store(true, Ordering::Release);
        self.touch();
        skipped
    }

    /// Marks the index as in step with the store now (a feed read that found nothing new
    /// is a sync too).
    pub fn touch(&self) {
        self.synced_at
            .store(unix(SystemTime::now()), Ordering::Relaxed);
    }

    /// Applies one change from the store's feed.
    pub fn apply(&self, change: Change) {
        let mut w = self.lock();
        match change {
            Change::PutConsumer(c) => {
                let consumer = w.consumer(c);
                let keys = match w.consumers.remove(&consumer.id) {
                    Some(old) => old.keys,
                    None => Vec::new(),
                };
                // Its keys now point at the new consumer (new roles take effect at once).
                for &p in &keys {
                    self.update_shard(p, |shard| {
                        if let Some(k) = shard.get(&p).cloned() {
                            shard.insert(p, Arc::new(k.with_consumer(consumer.clone())));
                        }
                    });
                }
                w.consumers
                    .insert(consumer.id.clone(), ConsumerEntry { consumer, keys });
            }
            Change::DeleteConsumer(id) => {
                if let Some(old) = w.consumers.remove(id.as_str()) {
                    for p in old.keys {
                        self.drop_key(&mut w, p);
                    }
                }
            }
            Change::PutKey(k) => {
                if let Some(&old) = w.keys.get(k.id.as_str()) {
                    self.drop_key(&mut w, old);
                }
                let Some((p, key)) = w.key(&k) else {
                    tracing::warn!(key = %k.id, consumer = %k.consumer, "consumer store: a key of an unknown consumer, or with a bad hash, is ignored");
                    return;
                };
                let mut taken = false;
                self.update_shard(p, |shard| match shard.entry(p) {
                    std::collections::hash_map::Entry::Occupied(_) => taken = true,
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(key);
                    }
                });
                if taken {
                    tracing::warn!(key = %k.id, "consumer store: a key whose hash starts like another's is ignored");
                    return;
                }
                self.len.fetch_add(1, Ordering::Relaxed);
                w.keys.insert(k.id.as_str().into(), p);
                if let Some(e) = w.consumers.get_mut(k.consumer.as_str()) {
                    e.keys.push(p);
                }
            }
            Change::DeleteKey(id) => {
                if let Some(&p) = w.keys.get(id.as_str()) {
                    self.drop_key(&mut w, p);
                }
            }
        }
        drop(w);
        self.touch();
    }

    /// Removes the key at prefix `p` from the index and from the writer's maps.
    fn drop_key(&self, w: &mut Writer, p: u64) {
        let mut removed = None;
        self.update_shard(p, |shard| removed = shard.remove(&p));
        let Some(key) = removed else {
            return;
        };
        self.len.fetch_sub(1, Ordering::Relaxed);
        w.keys.remove(&*key.id);
        if let Some(e) = w.consumers.get_mut(&*key.consumer.id) {
            e.keys.retain(|&x| x != p);
        }
    }

    /// Copies the shard `p` falls in, changes the copy and swaps it in (writers hold the
    /// writer lock, so no change is lost between the load and the store).
    fn update_shard(&self, p: u64, f: impl FnOnce(&mut Shard)) {
        let slot = &self.shards[shard_of(p)];
        let mut copy = Shard::clone(&slot.load());
        f(&mut copy);
        slot.store(Arc::new(copy));
    }
}

impl LiveKey {
    fn with_consumer(&self, consumer: Arc<LiveConsumer>) -> Self {
        Self {
            hash: self.hash,
            id: self.id.clone(),
            consumer,
            not_before: self.not_before,
            expires: self.expires,
            cached: ArcSwapOption::empty(),
        }
    }
}

impl Writer {
    /// The live consumer for a record, its profile shared with equal ones.
    fn consumer(&mut self, c: ConsumerRecord) -> Arc<LiveConsumer> {
        let profile = Profile {
            roles: c.roles.iter().map(|r| r.as_str().into()).collect(),
            scopes: c.scopes.iter().map(|r| r.as_str().into()).collect(),
            plan: c.plan.as_deref().map(Into::into),
            attributes: Arc::new(c.attributes.into_iter().collect()),
        };
        let digest = {
            use std::hash::Hash;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            c.roles.hash(&mut h);
            c.scopes.hash(&mut h);
            c.plan.hash(&mut h);
            serde_json::to_string(&*profile.attributes)
                .unwrap_or_default()
                .hash(&mut h);
            h.finish()
        };
        let same = self
            .profiles
            .get(&digest)
            .and_then(|v| v.iter().filter_map(Weak::upgrade).find(|p| **p == profile));
        let profile = match same {
            Some(p) => p,
            None => {
                let p = Arc::new(profile);
                let list = self.profiles.entry(digest).or_default();
                list.retain(|w| w.strong_count() > 0);
                list.push(Arc::downgrade(&p));
                p
            }
        };
        Arc::new(LiveConsumer {
            id: c.id.into_boxed_str(),
            profile,
        })
    }

    /// The live key for a record, if its consumer is known and its hash parses.
    fn key(&mut self, k: &StoredKeyRecord) -> Option<(u64, Arc<LiveKey>)> {
        let hash = rampart_config::parse_key_hash(&k.hash)?;
        let e = self.consumers.get_mut(k.consumer.as_str())?;
        let p = prefix(&hash);
        let key = Arc::new(LiveKey {
            hash,
            id: k.id.as_str().into(),
            consumer: e.consumer.clone(),
            not_before: k.not_before.unwrap_or(0),
            expires: k.expires.unwrap_or(0),
            cached: ArcSwapOption::empty(),
        });
        Some((p, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_key::{generate, hash_key};

    const PEPPER: &[u8] = b"pepper";

    fn consumer(id: &str, roles: &[&str]) -> ConsumerRecord {
        ConsumerRecord {
            id: id.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..ConsumerRecord::default()
        }
    }

    /// A new key for `consumer`: its record and the key itself.
    fn key(consumer: &str, expires: Option<u64>) -> (StoredKeyRecord, String) {
        let k = generate(PEPPER).unwrap();
        (
            StoredKeyRecord {
                id: k.public_id,
                consumer: consumer.into(),
                hash: k.hash,
                created: 0,
                not_before: None,
                expires,
            },
            k.key,
        )
    }

    fn find(live: &LiveKeys, key: &str) -> Result<Arc<LiveKey>, Reason> {
        live.verify(&hash_key(PEPPER, key.as_bytes()), SystemTime::now())
    }

    fn names() -> HeaderNames {
        HeaderNames::new(&rampart_config::IdentityHeadersSpec::default()).unwrap()
    }

    #[test]
    fn a_full_load_then_single_changes_are_what_lookups_see() {
        let live = LiveKeys::new();
        let (a, ka) = key("a", None);
        let (orphan, ko) = key("nobody", None);
        let skipped = live.replace_all(vec![consumer("a", &["r"])], vec![a.clone(), orphan]);
        assert_eq!((skipped, live.len()), (1, 1));
        assert!(live.is_loaded() && live.has_consumer("a"));
        assert_eq!(&*find(&live, &ka).unwrap().consumer.id, "a");
        assert_eq!(find(&live, &ko).unwrap_err(), Reason::ApiKeyUnknown);

        live.apply(Change::PutConsumer(consumer("b", &[])));
        let (b, kb) = key("b", None);
        live.apply(Change::PutKey(b.clone()));
        assert_eq!(live.len(), 2);
        assert_eq!(&*find(&live, &kb).unwrap().id, b.id.as_str());

        live.apply(Change::DeleteKey(a.id.clone()));
        assert_eq!(find(&live, &ka).unwrap_err(), Reason::ApiKeyUnknown);
        live.apply(Change::DeleteConsumer("b".into()));
        assert_eq!(find(&live, &kb).unwrap_err(), Reason::ApiKeyUnknown);
        assert_eq!(live.len(), 0);
        assert!(!live.has_consumer("b"));
        // Applying a change twice (the feed after a full load) changes nothing more.
        live.apply(Change::DeleteConsumer("b".into()));
        live.apply(Change::PutConsumer(consumer("a", &["r"])));
        live.apply(Change::PutKey(a.clone()));
        live.apply(Change::PutKey(a));
        assert_eq!(live.len(), 1);
        assert!(find(&live, &ka).is_ok());
    }

    #[test]
    fn a_consumer_change_reaches_its_keys_and_their_cached_identity() {
        let live = LiveKeys::new();
        let (a, ka) = key("a", None);
        live.replace_all(vec![consumer("a", &["bronze"])], vec![a]);
        let n = names();
        let before = find(&live, &ka).unwrap().resolved(&n, 1);
        assert_eq!(&*before.identity.roles[0], "bronze");
        assert_eq!(
            before.identity.credential.as_deref(),
            Some(&*find(&live, &ka).unwrap().id)
        );
        live.apply(Change::PutConsumer(consumer("a", &["gold"])));
        let after = find(&live, &ka).unwrap().resolved(&n, 1);
        assert_eq!(&*after.identity.roles[0], "gold");
    }

    #[test]
    fn validity_windows_are_checked_and_an_expiry_change_replaces_the_key() {
        let live = LiveKeys::new();
        let now = unix(SystemTime::now());
        let (mut a, ka) = key("a", Some(now + 3600));
        live.replace_all(vec![consumer("a", &[])], vec![a.clone()]);
        assert!(find(&live, &ka).is_ok());
        a.expires = Some(now);
        live.apply(Change::PutKey(a.clone()));
        assert_eq!(find(&live, &ka).unwrap_err(), Reason::ApiKeyExpired);
        a.expires = None;
        a.not_before = Some(now + 60);
        live.apply(Change::PutKey(a));
        assert_eq!(find(&live, &ka).unwrap_err(), Reason::ApiKeyNotYetValid);
        assert_eq!(live.len(), 1);
    }

    #[test]
    fn consumers_with_the_same_roles_share_one_profile() {
        let live = LiveKeys::new();
        let (a, ka) = key("a", None);
        let (b, kb) = key("b", None);
        live.replace_all(
            vec![consumer("a", &["x"]), consumer("b", &["x"])],
            vec![a, b],
        );
        let (pa, pb) = (find(&live, &ka).unwrap(), find(&live, &kb).unwrap());
        assert!(Arc::ptr_eq(&pa.consumer.profile, &pb.consumer.profile));
    }
}
