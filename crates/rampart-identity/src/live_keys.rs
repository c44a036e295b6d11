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
//! Memory is what bounds a million keys (BENCHMARKS.md reports it): a key is its hash, a
//! short id held inline, its validity and a pointer to its consumer; a consumer is its id
//! and a pointer to a profile (roles, scopes, plan, attributes) that consumers with the
//! same ones share. There is no second map from key ids: a change names the key by its
//! hash. The identity a key stands for is built on its first use and kept with the key.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, ArcSwapOption};
use rampart_config::{ConsumerRecord, StoredKeyRecord};
use rampart_core::{Identity, Reason};
use subtle::ConstantTimeEq;

use crate::consumers::{HeaderNames, Resolved};

/// How many maps the keys are spread over (a power of two).
pub const SHARDS: usize = 1024;

/// How stale a key's "last used" may get (it is written at most this often per key, so
/// requests do not all write one cache line).
const LAST_USED_STEP: u32 = 60;

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

/// What consumers with the same roles, scopes, plan and attributes share (a consumer
/// with certificate mappings has its own).
#[derive(PartialEq)]
struct Profile {
    roles: Vec<Arc<str>>,
    scopes: Vec<Arc<str>>,
    plan: Option<Arc<str>>,
    attributes: Arc<serde_json::Map<String, serde_json::Value>>,
    /// Its certificate facts, as [`certificate_fact`] writes them.
    certificates: Box<[Box<str>]>,
}

/// A certificate mapping as one string: its kind, then the normalised value.
pub fn certificate_fact(m: &rampart_config::CertificateMatchSpec) -> Result<String, String> {
    use rampart_config::CertificateMatchSpec as M;
    Ok(match m {
        M::Fingerprint(f) => format!(
            "fingerprint:{}",
            rampart_config::normalize_fingerprint(f).ok_or("invalid fingerprint")?
        ),
        M::SanUri(u) => format!("san_uri:{u}"),
        M::SanDns(d) => format!("san_dns:{}", d.to_ascii_lowercase()),
        M::SubjectCn(c) => format!("subject_cn:{c}"),
    })
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

/// A consumer from the store. Its profile changes in place, so its keys need not be
/// touched when its roles do.
pub struct LiveConsumer {
    pub id: Box<str>,
    profile: ArcSwap<Profile>,
    /// Set when the consumer is deleted: its keys stop working even before their own
    /// removal reaches the index.
    deleted: AtomicBool,
    /// The identity it has when proved by a client certificate, built on first use.
    mtls: ArcSwapOption<Cached>,
}

impl LiveConsumer {
    fn new(id: String, profile: Arc<Profile>) -> Self {
        Self {
            id: id.into_boxed_str(),
            profile: ArcSwap::new(profile),
            deleted: AtomicBool::new(false),
            mtls: ArcSwapOption::empty(),
        }
    }

    /// The identity this consumer has when proved by a client certificate.
    pub fn mtls_resolved(&self, names: &HeaderNames, generation: u64) -> Resolved {
        let profile = self.profile.load_full();
        if let Some(c) = &*self.mtls.load() {
            if c.generation == generation && Arc::ptr_eq(&c.profile, &profile) {
                return c.resolved.clone();
            }
        }
        let resolved = resolve(names, &self.id, "mtls", &self.id, &profile);
        self.mtls.store(Some(Arc::new(Cached {
            generation,
            profile,
            resolved: resolved.clone(),
        })));
        resolved
    }
}

/// The identity `consumer` has when proved by `method` with credential `credential`.
fn resolve(
    names: &HeaderNames,
    consumer: &str,
    method: &'static str,
    credential: &str,
    profile: &Profile,
) -> Resolved {
    let consumer: Arc<str> = Arc::from(consumer);
    let identity = Identity {
        consumer: Some(consumer.clone()),
        subject: consumer,
        method,
        credential: Some(Arc::from(credential)),
        roles: profile.roles.clone(),
        scopes: profile.scopes.clone(),
        plan: profile.plan.clone(),
        attributes: profile.attributes.clone(),
    };
    Resolved {
        headers: names.render(&identity),
        identity: Arc::new(identity),
    }
}

/// The writer's set of consumers, found by id without a second copy of it.
struct ConsumerRef(Arc<LiveConsumer>);

impl PartialEq for ConsumerRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for ConsumerRef {}
impl Hash for ConsumerRef {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.id.hash(h);
    }
}
impl std::borrow::Borrow<str> for ConsumerRef {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

/// A key id: held inline up to 22 bytes (the store's own ids are 8).
#[derive(Clone)]
enum KeyId {
    Inline(u8, [u8; 22]),
    Heap(Box<str>),
}

impl KeyId {
    fn new(s: &str) -> Self {
        if s.len() <= 22 {
            let mut b = [0u8; 22];
            b[..s.len()].copy_from_slice(s.as_bytes());
            KeyId::Inline(s.len() as u8, b)
        } else {
            KeyId::Heap(s.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes were copied from a `&str`, whole: they are UTF-8.
            KeyId::Inline(n, b) => std::str::from_utf8(&b[..usize::from(*n)]).unwrap_or(""),
            KeyId::Heap(s) => s,
        }
    }
}

/// The identity a key stood for when it was last used: built with the identity headers
/// of one plan (by generation) from one profile of its consumer.
struct Cached {
    generation: u64,
    profile: Arc<Profile>,
    resolved: Resolved,
}

/// One key from the store.
pub struct LiveKey {
    hash: [u8; 32],
    id: KeyId,
    pub consumer: Arc<LiveConsumer>,
    /// Unix seconds; 0: none.
    not_before: u32,
    expires: u32,
    /// Unix seconds of the last request it authenticated on this node (0: none).
    last_used: AtomicU32,
    cached: ArcSwapOption<Cached>,
}

impl std::fmt::Debug for LiveKey {
    // Never the hash: ids and dates only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKey")
            .field("id", &self.id())
            .field("consumer", &self.consumer.id)
            .field("not_before", &self.not_before)
            .field("expires", &self.expires)
            .finish()
    }
}

fn secs32(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

impl LiveKey {
    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    /// The identity this key stands for, with `names`' headers (`generation` tells one
    /// plan's header names from another's).
    pub fn resolved(&self, names: &HeaderNames, generation: u64) -> Resolved {
        let profile = self.consumer.profile.load_full();
        if let Some(c) = &*self.cached.load() {
            if c.generation == generation && Arc::ptr_eq(&c.profile, &profile) {
                return c.resolved.clone();
            }
        }
        let resolved = resolve(names, &self.consumer.id, "api_key", self.id(), &profile);
        self.cached.store(Some(Arc::new(Cached {
            generation,
            profile,
            resolved: resolved.clone(),
        })));
        resolved
    }

    fn check(&self, now: u32) -> Result<(), Reason> {
        if self.consumer.deleted.load(Ordering::Relaxed) {
            return Err(Reason::ApiKeyUnknown);
        }
        if self.not_before != 0 && now < self.not_before {
            return Err(Reason::ApiKeyNotYetValid);
        }
        if self.expires != 0 && now >= self.expires {
            return Err(Reason::ApiKeyExpired);
        }
        if now.saturating_sub(self.last_used.load(Ordering::Relaxed)) >= LAST_USED_STEP {
            self.last_used.store(now, Ordering::Relaxed);
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
    shards: Vec<Shard>,
    certificates: Vec<CertShard>,
    keys: usize,
    skipped: usize,
}

impl Loader<'_> {
    pub fn consumer(&mut self, c: ConsumerRecord) {
        let profile = self.fresh.profile(&c);
        let consumer = Arc::new(LiveConsumer::new(c.id, profile.clone()));
        for fact in profile.certificates.iter() {
            // The first consumer to claim a fact keeps it (the admin API refuses a second).
            self.certificates[cert_shard_of(fact)]
                .entry(fact.clone())
                .or_insert_with(|| consumer.clone());
        }
        self.fresh.consumers.replace(ConsumerRef(consumer));
    }

    /// Adds a key (after its consumer); an unknown consumer, a bad hash or a taken hash
    /// prefix skips it.
    pub fn key(&mut self, k: &StoredKeyRecord) {
        let Some((p, key)) = self.fresh.key(k) else {
            self.skipped += 1;
            return;
        };
        let shard = &mut self.shards[shard_of(p)];
        match shard.entry(p) {
            std::collections::hash_map::Entry::Occupied(_) => self.skipped += 1,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(key);
                self.keys += 1;
            }
        }
    }

    /// Swaps the read contents in; returns how many keys were skipped.
    pub fn finish(self) -> usize {
        let mut w = self.live.lock();
        for (slot, shard) in self.live.shards.iter().zip(self.shards) {
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
        // A consumer of the old index that is gone from the new one: its keys (still
        // held by a request in flight) stop working.
        for c in w.consumers.iter() {
            if !fresh.consumers.contains(&*c.0.id) {
                c.0.deleted.store(true, Ordering::Relaxed);
            }
        }
        *w = fresh;
        self.live.len.store(self.keys, Ordering::Relaxed);
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

    fn find(&self, hash: &[u8]) -> Option<Arc<LiveKey>> {
        if hash.len() != 32 {
            return None;
        }
        let p = prefix(hash);
        let shard = self.shards[shard_of(p)].load();
        shard
            .get(&p)
            .filter(|k| bool::from(k.hash.ct_eq(hash)))
            .cloned()
    }

    /// The key whose peppered hash is `hash`, if it is valid at `now`.
    pub fn verify(&self, hash: &[u8], now: SystemTime) -> Result<Arc<LiveKey>, Reason> {
        let key = self.find(hash).ok_or(Reason::ApiKeyUnknown)?;
        key.check(secs32(unix(now)))?;
        Ok(key)
    }

    /// When the key with this stored hash last authenticated a request on this node.
    pub fn last_used(&self, hash: &str) -> Option<u64> {
        let h = rampart_config::parse_key_hash(hash)?;
        let t = self.find(&h)?.last_used.load(Ordering::Relaxed);
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
        shard.get(fact).map(|c| c.id.to_string())
    }

    fn map_certificates(&self, consumer: &Arc<LiveConsumer>, profile: &Profile) {
        for fact in profile.certificates.iter() {
            let slot = &self.certificates[cert_shard_of(fact)];
            let mut copy = CertShard::clone(&slot.load());
            match copy.get(fact) {
                Some(other) if other.id != consumer.id => {
                    tracing::warn!(consumer = %consumer.id, "consumer store: a certificate mapping another consumer holds is ignored");
                    continue;
                }
                _ => {
                    copy.insert(fact.clone(), consumer.clone());
                }
            }
            slot.store(Arc::new(copy));
        }
    }

    fn unmap_certificates(&self, consumer: &LiveConsumer, profile: &Profile) {
        for fact in profile.certificates.iter() {
            let slot = &self.certificates[cert_shard_of(fact)];
            if slot.load().get(fact).is_some_and(|c| c.id == consumer.id) {
                let mut copy = CertShard::clone(&slot.load());
                copy.remove(fact);
                slot.store(Arc::new(copy));
            }
        }
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
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            certificates: (0..CERT_SHARDS).map(|_| CertShard::default()).collect(),
            keys: 0,
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
                        let consumer = Arc::new(LiveConsumer::new(c.id, profile.clone()));
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
            Change::PutKey(k) => {
                let Some((p, key)) = w.key(&k) else {
                    tracing::warn!(key = %k.id, consumer = %k.consumer, "consumer store: a key of an unknown consumer, or with a bad hash, is ignored");
                    return;
                };
                let mut outcome = Ok(false);
                self.update_shard(p, |shard| match shard.get(&p) {
                    // The same key again (an expiry changed): replaced, its use kept.
                    Some(old) if old.hash == key.hash && old.id() == key.id() => {
                        key.last_used
                            .store(old.last_used.load(Ordering::Relaxed), Ordering::Relaxed);
                        shard.insert(p, key);
                        outcome = Ok(true);
                    }
                    Some(_) => outcome = Err(()),
                    None => {
                        shard.insert(p, key);
                    }
                });
                match outcome {
                    Ok(false) => {
                        self.len.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(true) => {}
                    Err(()) => {
                        tracing::warn!(key = %k.id, "consumer store: a key whose hash starts like another's is ignored")
                    }
                }
            }
            Change::DeleteKey(k) => {
                let Some(hash) = rampart_config::parse_key_hash(&k.hash) else {
                    return;
                };
                let p = prefix(&hash);
                let mut removed = false;
                self.update_shard(p, |shard| {
                    if shard.get(&p).is_some_and(|old| old.hash == hash) {
                        shard.remove(&p);
                        removed = true;
                    }
                });
                if removed {
                    self.len.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        drop(w);
        self.touch();
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

impl Writer {
    /// The profile for a record's roles, scopes, plan and attributes, shared with an
    /// equal one when there is one.
    fn profile(&mut self, c: &ConsumerRecord) -> Arc<Profile> {
        let profile = Profile {
            roles: c.roles.iter().map(|r| r.as_str().into()).collect(),
            scopes: c.scopes.iter().map(|r| r.as_str().into()).collect(),
            plan: c.plan.as_deref().map(Into::into),
            attributes: Arc::new(c.attributes.clone().into_iter().collect()),
            // Checked by the admin API; a fact that does not parse is left out here.
            certificates: c
                .certificates
                .iter()
                .filter_map(|m| certificate_fact(m).ok())
                .map(String::into_boxed_str)
                .collect(),
        };
        let digest = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            c.roles.hash(&mut h);
            c.scopes.hash(&mut h);
            c.plan.hash(&mut h);
            serde_json::to_string(&c.attributes)
                .unwrap_or_default()
                .hash(&mut h);
            profile.certificates.hash(&mut h);
            h.finish()
        };
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
    fn key(&self, k: &StoredKeyRecord) -> Option<(u64, Arc<LiveKey>)> {
        let hash = rampart_config::parse_key_hash(&k.hash)?;
        let consumer = self.consumers.get(k.consumer.as_str())?.0.clone();
        let key = Arc::new(LiveKey {
            hash,
            id: KeyId::new(&k.id),
            consumer,
            // 0 means "none": a time of 0 (the epoch) is kept as 1, long past.
            not_before: k.not_before.map_or(0, |t| secs32(t).max(1)),
            expires: k.expires.map_or(0, |t| secs32(t).max(1)),
            last_used: AtomicU32::new(0),
            cached: ArcSwapOption::empty(),
        });
        Some((prefix(&hash), key))
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
        assert_eq!(find(&live, &kb).unwrap().id(), b.id.as_str());

        live.apply(Change::DeleteKey(a.clone()));
        assert_eq!(find(&live, &ka).unwrap_err(), Reason::ApiKeyUnknown);
        // A deleted consumer's keys stop working even before their own removal arrives.
        live.apply(Change::DeleteConsumer("b".into()));
        assert_eq!(find(&live, &kb).unwrap_err(), Reason::ApiKeyUnknown);
        assert!(!live.has_consumer("b"));
        live.apply(Change::DeleteKey(b.clone()));
        assert_eq!(live.len(), 0);
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
            Some(find(&live, &ka).unwrap().id())
        );
        // Served from the key's cache while nothing changed.
        let again = find(&live, &ka).unwrap().resolved(&n, 1);
        assert!(Arc::ptr_eq(&before.identity, &again.identity));
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
    fn last_use_is_kept_per_key_and_survives_an_expiry_change() {
        let live = LiveKeys::new();
        let (mut a, ka) = key("a", None);
        live.replace_all(vec![consumer("a", &[])], vec![a.clone()]);
        assert_eq!(live.last_used(&a.hash), None);
        find(&live, &ka).unwrap();
        let used = live.last_used(&a.hash).unwrap();
        assert!(used + 5 >= unix(SystemTime::now()));
        a.expires = Some(unix(SystemTime::now()) + 3600);
        live.apply(Change::PutKey(a.clone()));
        assert_eq!(live.last_used(&a.hash), Some(used));
    }

    #[test]
    fn a_reload_without_a_consumer_ends_its_keys_even_in_requests_holding_them() {
        let live = LiveKeys::new();
        let (a, ka) = key("a", None);
        live.replace_all(vec![consumer("a", &[])], vec![a]);
        let held = find(&live, &ka).unwrap();
        live.replace_all(vec![], vec![]);
        assert_eq!(find(&live, &ka).unwrap_err(), Reason::ApiKeyUnknown);
        assert_eq!(
            held.check(secs32(unix(SystemTime::now()))).unwrap_err(),
            Reason::ApiKeyUnknown
        );
    }

    #[test]
    fn key_ids_of_any_length_are_kept_whole() {
        for id in [
            "",
            "k",
            "abcdefgh",
            "exactly-22-bytes-long!",
            "a much longer key id than fits inline",
            "ünïcödé-id",
        ] {
            assert_eq!(KeyId::new(id).as_str(), id);
        }
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
        assert!(Arc::ptr_eq(
            &pa.consumer.profile.load_full(),
            &pb.consumer.profile.load_full()
        ));
    }
}
