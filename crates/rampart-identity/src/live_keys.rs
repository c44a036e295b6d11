//! API keys issued at run time (the consumer store, crate `rampart-consumers`): an index
//! that changes one key at a time, from the store's change feed, while requests read it
//! without a lock.
//!
//! The keys are spread over [`SHARDS`] shards by their hash's first bits, each behind an
//! `ArcSwap`: a reader loads one shard (no lock, no contended counter) and finds the key
//! where its hash prefix predicts in the shard's sorted prefixes; a writer copies the one shard
//! a change touches and swaps it in. At a million keys a shard holds about a thousand, so
//! a change copies some 80 KB and a revocation is seen by the next request.
//!
//! Memory is what bounds a million keys (BENCHMARKS.md reports it). A shard is two
//! arrays, no hash table slack: the 8-byte prefixes, and the keys held inline (the rest
//! of the hash, a short id, validity, last use, a pointer to the consumer). A consumer
//! is its id (inline up to 22 bytes) and a pointer to a profile (roles, scopes, plan,
//! attributes) that consumers with the same ones share. There is no second map by key
//! id: a change names the key by its hash. The identity a key stands for is built on its
//! first use and kept with the key.

mod records;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rampart_config::{ConsumerRecord, StoredKeyRecord};
use rampart_core::Reason;
use subtle::ConstantTimeEq;

use crate::consumers::{HeaderNames, Resolved};
pub use records::{certificate_fact, LiveConsumer, LiveKey};
use records::{secs32, Profile};

/// How many shards the keys are spread over (a power of two).
pub const SHARDS: usize = 1024;

/// One shard: hash prefixes in ascending order, and the key of each at the same place.
#[derive(Default, Clone)]
struct Shard {
    prefixes: Vec<u64>,
    keys: Vec<LiveKey>,
}

impl Shard {
    fn find(&self, p: u64) -> Option<&LiveKey> {
        self.position(p).ok().map(|i| &self.keys[i])
    }

    /// Where `p` is (`Ok`), or would go (`Err`). The prefixes are HMAC outputs, spread
    /// evenly: the place a prefix's value predicts is within a few entries of where it
    /// is, so a lookup reads one or two cache lines of a shard that is not in cache
    /// (a binary search would read ten). A short walk from the guess, then a binary
    /// search of what is left should the walk be long.
    fn position(&self, p: u64) -> Result<usize, usize> {
        const WALK: usize = 16;
        let ps = &self.prefixes;
        let n = ps.len();
        if n == 0 {
            return Err(0);
        }
        // The low 54 bits (the top 10 chose the shard), scaled to the shard's length.
        let low = u128::from(p & ((1u64 << 54) - 1));
        let mut i = ((low * n as u128) >> 54) as usize;
        if ps[i] < p {
            for _ in 0..WALK {
                i += 1;
                if i == n || ps[i] >= p {
                    return if i < n && ps[i] == p { Ok(i) } else { Err(i) };
                }
            }
            return ps[i..].binary_search(&p).map(|j| i + j).map_err(|j| i + j);
        }
        for _ in 0..WALK {
            if ps[i] == p {
                return Ok(i);
            }
            if i == 0 || ps[i - 1] < p {
                return Err(i);
            }
            i -= 1;
        }
        ps[..=i].binary_search(&p)
    }

    /// A copy with `f` applied to its pairs (a writer's copy-on-write).
    fn with(&self, f: impl FnOnce(&mut Vec<u64>, &mut Vec<LiveKey>)) -> Shard {
        let mut prefixes = Vec::with_capacity(self.prefixes.len() + 1);
        prefixes.extend_from_slice(&self.prefixes);
        let mut keys = Vec::with_capacity(self.keys.len() + 1);
        keys.extend(self.keys.iter().cloned());
        f(&mut prefixes, &mut keys);
        Shard { prefixes, keys }
    }
}

/// Certificate fact → consumer, spread like the keys.
type CertShard = HashMap<Box<str>, Arc<LiveConsumer>>;

/// How many maps certificate facts are spread over.
const CERT_SHARDS: usize = 64;

fn cert_shard_of(fact: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    fact.hash(&mut h);
    h.finish() as usize & (CERT_SHARDS - 1)
}

/// The writer's set of consumers, found by id without a second copy of it.
struct ConsumerRef(Arc<LiveConsumer>);

impl PartialEq for ConsumerRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}
impl Eq for ConsumerRef {}
impl Hash for ConsumerRef {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.id().hash(h);
    }
}
impl std::borrow::Borrow<str> for ConsumerRef {
    fn borrow(&self) -> &str {
        self.0.id()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch as a time.
pub fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// One change from the store.
#[derive(Debug, Clone)]
pub enum Change {
    PutConsumer(ConsumerRecord),
    /// The consumer goes; the store removes its keys with a [`Change::DeleteKey`] each.
    DeleteConsumer(String),
    PutKey(StoredKeyRecord),
    DeleteKey(StoredKeyRecord),
}

/// What only writers touch, under one lock (never taken by a request).
#[derive(Default)]
struct Writer {
    consumers: HashSet<ConsumerRef>,
    /// Profiles by a digest of their content, shared while a consumer holds them.
    profiles: HashMap<u64, Vec<Weak<Profile>>>,
}

/// The keys issued at run time, shared by every plan of a gateway (kept in its state
/// store), filled and changed by the consumer store's sync.
pub struct LiveKeys {
    shards: Box<[ArcSwap<Shard>]>,
    certificates: Box<[ArcSwap<CertShard>]>,
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

fn prefix(h: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&h[..8]);
    u64::from_le_bytes(head)
}

fn shard_of(p: u64) -> usize {
    (p >> 54) as usize & (SHARDS - 1)
}

/// A whole-store read in progress: built beside the live index, swapped in at
/// [`Loader::finish`], so requests see the old index until the new one is complete.
pub struct Loader<'a> {
    live: &'a LiveKeys,
    fresh: Writer,
    pending: Vec<Vec<(u64, LiveKey)>>,
    certificates: Vec<CertShard>,
    skipped: usize,
}

impl Loader<'_> {
    pub fn consumer(&mut self, c: ConsumerRecord) {
        let profile = self.fresh.profile(&c);
        let consumer = Arc::new(LiveConsumer::new(&c.id, profile.clone()));
        for fact in profile.certificates.iter() {
            // The first consumer to claim a fact keeps it (the admin API refuses a second).
            self.certificates[cert_shard_of(fact)]
                .entry(fact.clone())
                .or_insert_with(|| consumer.clone());
        }
        self.fresh.consumers.replace(ConsumerRef(consumer));
    }

    /// Adds a key (after its consumer); an unknown consumer or a bad hash skips it.
    pub fn key(&mut self, k: &StoredKeyRecord) {
        match self.fresh.key(k) {
            Some((p, key)) => self.pending[shard_of(p)].push((p, key)),
            None => self.skipped += 1,
        }
    }

    /// Swaps the read contents in; returns how many keys were skipped (a key whose hash
    /// starts like another's keeps the first).
    pub fn finish(mut self) -> usize {
        let mut shards = Vec::with_capacity(SHARDS);
        let mut n = 0;
        for mut pairs in std::mem::take(&mut self.pending) {
            pairs.sort_unstable_by_key(|(p, _)| *p);
            let before = pairs.len();
            pairs.dedup_by_key(|(p, _)| *p);
            self.skipped += before - pairs.len();
            n += pairs.len();
            let mut shard = Shard {
                prefixes: Vec::with_capacity(pairs.len()),
                keys: Vec::with_capacity(pairs.len()),
            };
            for (p, k) in pairs {
                shard.prefixes.push(p);
                shard.keys.push(k);
            }
            shards.push(shard);
        }
        let mut w = self.live.lock();
        for (slot, shard) in self.live.shards.iter().zip(shards) {
            slot.store(Arc::new(shard));
        }
        for (slot, shard) in self.live.certificates.iter().zip(self.certificates) {
            slot.store(Arc::new(shard));
        }
        let mut fresh = self.fresh;
        // Profiles of the old index that the new one shares stay shared.
        fresh.profiles.extend(std::mem::take(&mut w.profiles));
        fresh.profiles.retain(|_, v| {
            v.retain(|w| w.strong_count() > 0);
            !v.is_empty()
        });
        // A consumer of the old index that is gone from the new one: its keys (held by
        // an old shard a request may still read) stop working.
        for c in w.consumers.iter() {
            if !fresh.consumers.contains(c.0.id()) {
                c.0.deleted.store(true, Ordering::Relaxed);
            }
        }
        *w = fresh;
        self.live.len.store(n, Ordering::Relaxed);
        self.live.loaded.store(true, Ordering::Release);
        self.live.touch();
        self.skipped
    }
}

impl LiveKeys {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| ArcSwap::from_pointee(Shard::default()))
                .collect(),
            certificates: (0..CERT_SHARDS)
                .map(|_| ArcSwap::from_pointee(CertShard::default()))
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

    /// Runs `f` on the key whose peppered hash is `hash`, if there is one.
    fn with_key<T>(&self, hash: &[u8], f: impl FnOnce(&LiveKey) -> T) -> Option<T> {
        if hash.len() != 32 {
            return None;
        }
        let p = prefix(hash);
        let shard = self.shards[shard_of(p)].load();
        shard
            .find(p)
            .filter(|k| bool::from(k.rest.ct_eq(&hash[8..])))
            .map(f)
    }

    /// The identity of the key whose peppered hash is `hash`, if it is valid at `now`,
    /// with `names`' identity headers (`generation`: the plan that names them).
    pub fn verify(
        &self,
        hash: &[u8],
        now: SystemTime,
        names: &HeaderNames,
        generation: u64,
    ) -> Result<Resolved, Reason> {
        self.with_key(hash, |k| {
            k.check(secs32(unix(now)))?;
            Ok(k.resolved(names, generation))
        })
        .unwrap_or(Err(Reason::ApiKeyUnknown))
    }

    /// When the key with this stored hash last authenticated a request on this node.
    pub fn last_used(&self, hash: &str) -> Option<u64> {
        let h = rampart_config::parse_key_hash(hash)?;
        let t = self.with_key(&h, LiveKey::last_used)?;
        (t != 0).then_some(u64::from(t))
    }

    /// The store consumer a verified client certificate stands for, tried most specific
    /// first (fingerprint, SAN URI, SAN DNS name, subject CN), as for the config's.
    pub fn find_certificate(&self, peer: &rampart_core::TlsPeer) -> Option<Arc<LiveConsumer>> {
        let look = |fact: String| {
            let shard = self.certificates[cert_shard_of(&fact)].load();
            shard
                .get(fact.as_str())
                .filter(|c| !c.deleted.load(Ordering::Relaxed))
                .cloned()
        };
        look(format!("fingerprint:{}", peer.fingerprint_sha256))
            .or_else(|| {
                peer.san_uri
                    .iter()
                    .find_map(|u| look(format!("san_uri:{u}")))
            })
            .or_else(|| {
                peer.san_dns
                    .iter()
                    .find_map(|d| look(format!("san_dns:{}", d.to_ascii_lowercase())))
            })
            .or_else(|| {
                peer.common_name
                    .as_ref()
                    .and_then(|c| look(format!("subject_cn:{c}")))
            })
    }

    /// The store consumer a certificate fact maps to.
    pub fn certificate_owner(&self, fact: &str) -> Option<String> {
        let shard = self.certificates[cert_shard_of(fact)].load();
        shard.get(fact).map(|c| c.id().to_string())
    }

    /// Whether the store holds a consumer with this id.
    pub fn has_consumer(&self, id: &str) -> bool {
        self.lock().consumers.contains(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a whole-store read (the first load, a resync).
    pub fn loader(&self) -> Loader<'_> {
        Loader {
            live: self,
            fresh: Writer::default(),
            pending: (0..SHARDS).map(|_| Vec::new()).collect(),
            certificates: (0..CERT_SHARDS).map(|_| CertShard::default()).collect(),
            skipped: 0,
        }
    }

    /// Replaces everything with these contents; returns how many keys were skipped.
    pub fn replace_all(&self, consumers: Vec<ConsumerRecord>, keys: Vec<StoredKeyRecord>) -> usize {
        let mut l = self.loader();
        for c in consumers {
            l.consumer(c);
        }
        for k in &keys {
            l.key(k);
        }
        l.finish()
    }

    /// Marks the index as in step with the store now (a feed read that found nothing new
    /// is a sync too).
    pub fn touch(&self) {
        self.synced_at
            .store(unix(SystemTime::now()), Ordering::Relaxed);
    }

    /// Applies one change from the store's feed. Applying a change twice (the feed
    /// replayed after a whole-store read) changes nothing more.
    pub fn apply(&self, change: Change) {
        let mut w = self.lock();
        match change {
            Change::PutConsumer(c) => {
                let profile = w.profile(&c);
                let consumer = match w.consumers.get(c.id.as_str()) {
                    Some(existing) => {
                        let old = existing.0.profile.swap(profile.clone());
                        self.unmap_certificates(&existing.0, &old);
                        existing.0.clone()
                    }
                    None => {
                        let consumer = Arc::new(LiveConsumer::new(&c.id, profile.clone()));
                        w.consumers.insert(ConsumerRef(consumer.clone()));
                        consumer
                    }
                };
                self.map_certificates(&consumer, &profile);
                w.prune_profiles();
            }
            Change::DeleteConsumer(id) => {
                if let Some(c) = w.consumers.take(id.as_str()) {
                    c.0.deleted.store(true, Ordering::Relaxed);
                    self.unmap_certificates(&c.0, &c.0.profile.load());
                }
            }
            Change::PutKey(k) => self.put_key(&w, &k),
            Change::DeleteKey(k) => {
                let Some(hash) = rampart_config::parse_key_hash(&k.hash) else {
                    return;
                };
                let p = prefix(&hash);
                let slot = &self.shards[shard_of(p)];
                let current = slot.load();
                if let Ok(i) = current.position(p) {
                    if current.keys[i].rest == hash[8..] {
                        slot.store(Arc::new(current.with(|ps, ks| {
                            ps.remove(i);
                            ks.remove(i);
                        })));
                        self.len.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        }
        drop(w);
        self.touch();
    }

    /// Adds a key, or replaces it (an expiry changed: its last use is kept). Writers
    /// hold the writer lock, so no change is lost between the load and the store.
    fn put_key(&self, w: &Writer, k: &StoredKeyRecord) {
        let Some((p, key)) = w.key(k) else {
            tracing::warn!(key = %k.id, consumer = %k.consumer, "consumer store: a key of an unknown consumer, or with a bad hash, is ignored");
            return;
        };
        let slot = &self.shards[shard_of(p)];
        let current = slot.load();
        let next = match current.position(p) {
            Ok(i) if current.keys[i].rest == key.rest && current.keys[i].id() == key.id() => {
                key.keep_last_used(&current.keys[i]);
                current.with(|_, ks| ks[i] = key)
            }
            Ok(_) => {
                tracing::warn!(key = %k.id, "consumer store: a key whose hash starts like another's is ignored");
                return;
            }
            Err(i) => {
                self.len.fetch_add(1, Ordering::Relaxed);
                current.with(|ps, ks| {
                    ps.insert(i, p);
                    ks.insert(i, key);
                })
            }
        };
        slot.store(Arc::new(next));
    }

    fn map_certificates(&self, consumer: &Arc<LiveConsumer>, profile: &Profile) {
        for fact in profile.certificates.iter() {
            let slot = &self.certificates[cert_shard_of(fact)];
            let mut copy = CertShard::clone(&slot.load());
            if let Some(other) = copy.get(fact) {
                if other.id() != consumer.id() {
                    tracing::warn!(consumer = %consumer.id(), "consumer store: a certificate mapping another consumer holds is ignored");
                    continue;
                }
            }
            copy.insert(fact.clone(), consumer.clone());
            slot.store(Arc::new(copy));
        }
    }

    fn unmap_certificates(&self, consumer: &LiveConsumer, profile: &Profile) {
        for fact in profile.certificates.iter() {
            let slot = &self.certificates[cert_shard_of(fact)];
            if slot
                .load()
                .get(fact)
                .is_some_and(|c| c.id() == consumer.id())
            {
                let mut copy = CertShard::clone(&slot.load());
                copy.remove(fact);
                slot.store(Arc::new(copy));
            }
        }
    }
}

impl Writer {
    /// The profile for a record's roles, scopes, plan, attributes and certificates,
    /// shared with an equal one when there is one.
    fn profile(&mut self, c: &ConsumerRecord) -> Arc<Profile> {
        let profile = Profile::of(c);
        let digest = profile.digest(c);
        let same = self
            .profiles
            .get(&digest)
            .and_then(|v| v.iter().filter_map(Weak::upgrade).find(|p| **p == profile));
        match same {
            Some(p) => p,
            None => {
                let p = Arc::new(profile);
                let list = self.profiles.entry(digest).or_default();
                list.retain(|w| w.strong_count() > 0);
                list.push(Arc::downgrade(&p));
                p
            }
        }
    }

    fn prune_profiles(&mut self) {
        if self.profiles.len() > 64 && self.profiles.len() > 2 * self.consumers.len() {
            self.profiles.retain(|_, v| {
                v.retain(|w| w.strong_count() > 0);
                !v.is_empty()
            });
        }
    }

    /// The live key for a record, if its consumer is known and its hash parses.
    fn key(&self, k: &StoredKeyRecord) -> Option<(u64, LiveKey)> {
        let hash = rampart_config::parse_key_hash(&k.hash)?;
        let consumer = self.consumers.get(k.consumer.as_str())?.0.clone();
        Some((
            prefix(&hash),
            LiveKey::new(&hash, &k.id, consumer, k.not_before, k.expires),
        ))
    }
}
