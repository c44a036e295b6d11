//! What the index holds per key and per consumer, laid out small: at a million keys each
//! byte here is a megabyte of every node's memory.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use rampart_config::ConsumerRecord;
use rampart_core::{Identity, Reason};

use crate::consumers::{HeaderNames, Resolved};

/// How stale a key's "last used" may get (it is written at most this often per key, so
/// requests do not all write one cache line).
const LAST_USED_STEP: u32 = 60;

/// A short string held inline (up to `N` bytes), else behind one pointer.
#[derive(Clone)]
pub(crate) enum SmallStr<const N: usize> {
    Inline(u8, [u8; N]),
    Heap(Box<Box<str>>),
}

impl<const N: usize> SmallStr<N> {
    pub fn new(s: &str) -> Self {
        if s.len() <= N {
            let mut b = [0u8; N];
            b[..s.len()].copy_from_slice(s.as_bytes());
            SmallStr::Inline(s.len() as u8, b)
        } else {
            SmallStr::Heap(Box::new(s.into()))
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // The bytes were copied from a `&str`, whole: they are UTF-8.
            SmallStr::Inline(n, b) => std::str::from_utf8(&b[..usize::from(*n)]).unwrap_or(""),
            SmallStr::Heap(s) => s,
        }
    }
}

/// Seconds since the epoch in 32 bits (until 2106; later is "never").
pub(crate) fn secs32(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

/// What consumers with the same roles, scopes, plan and attributes share (a consumer
/// with certificate mappings has its own).
pub(crate) struct Profile {
    pub roles: Vec<Arc<str>>,
    pub scopes: Vec<Arc<str>>,
    pub plan: Option<Arc<str>>,
    pub attributes: Arc<serde_json::Map<String, serde_json::Value>>,
    /// Its certificate facts, as [`certificate_fact`] writes them.
    pub certificates: Box<[Box<str>]>,
    /// The identity its consumer has when proved by certificate (a profile with
    /// certificates belongs to one consumer), by plan generation.
    mtls: ArcSwapOption<(u64, Resolved)>,
}

impl PartialEq for Profile {
    fn eq(&self, o: &Self) -> bool {
        self.roles == o.roles
            && self.scopes == o.scopes
            && self.plan == o.plan
            && self.attributes == o.attributes
            && self.certificates == o.certificates
    }
}

impl Profile {
    pub fn of(c: &ConsumerRecord) -> Self {
        Self {
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
            mtls: ArcSwapOption::empty(),
        }
    }

    /// A digest of what [`PartialEq`] compares, to find an equal profile.
    pub fn digest(&self, c: &ConsumerRecord) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        c.roles.hash(&mut h);
        c.scopes.hash(&mut h);
        c.plan.hash(&mut h);
        serde_json::to_string(&c.attributes)
            .unwrap_or_default()
            .hash(&mut h);
        self.certificates.hash(&mut h);
        h.finish()
    }
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

/// A consumer from the store. Its profile changes in place, so its keys need not be
/// touched when its roles do.
pub struct LiveConsumer {
    id: SmallStr<22>,
    pub(crate) profile: ArcSwap<Profile>,
    /// Set when the consumer is deleted: its keys stop working even before their own
    /// removal reaches the index.
    pub(crate) deleted: AtomicBool,
}

impl LiveConsumer {
    pub(crate) fn new(id: &str, profile: Arc<Profile>) -> Self {
        Self {
            id: SmallStr::new(id),
            profile: ArcSwap::new(profile),
            deleted: AtomicBool::new(false),
        }
    }

    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    /// The identity this consumer has when proved by a client certificate.
    pub fn mtls_resolved(&self, names: &HeaderNames, generation: u64) -> Resolved {
        let profile = self.profile.load_full();
        if let Some(c) = &*profile.mtls.load() {
            if c.0 == generation {
                return c.1.clone();
            }
        }
        let resolved = resolve(names, self.id(), "mtls", self.id(), &profile);
        profile
            .mtls
            .store(Some(Arc::new((generation, resolved.clone()))));
        resolved
    }
}

/// The identity a key stood for when it was last used: built with the identity headers
/// of one plan (by generation) from one profile of its consumer.
struct Cached {
    generation: u64,
    profile: Arc<Profile>,
    resolved: Resolved,
}

/// One key from the store, held inline in its shard (its hash's first 8 bytes are the
/// shard's sort key).
pub struct LiveKey {
    /// The hash's last 24 bytes.
    pub(crate) rest: [u8; 24],
    id: SmallStr<14>,
    pub(crate) consumer: Arc<LiveConsumer>,
    /// Unix seconds; 0: none.
    not_before: u32,
    expires: u32,
    /// Unix seconds of the last request it authenticated on this node (0: none).
    last_used: AtomicU32,
    cached: ArcSwapOption<Cached>,
}

impl Clone for LiveKey {
    fn clone(&self) -> Self {
        Self {
            rest: self.rest,
            id: self.id.clone(),
            consumer: self.consumer.clone(),
            not_before: self.not_before,
            expires: self.expires,
            last_used: AtomicU32::new(self.last_used.load(Ordering::Relaxed)),
            cached: ArcSwapOption::new(self.cached.load_full()),
        }
    }
}

impl std::fmt::Debug for LiveKey {
    // Never the hash: ids and dates only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKey")
            .field("id", &self.id())
            .field("consumer", &self.consumer.id())
            .field("not_before", &self.not_before)
            .field("expires", &self.expires)
            .finish()
    }
}

impl LiveKey {
    pub(crate) fn new(
        hash: &[u8; 32],
        id: &str,
        consumer: Arc<LiveConsumer>,
        not_before: Option<u64>,
        expires: Option<u64>,
    ) -> Self {
        let mut rest = [0u8; 24];
        rest.copy_from_slice(&hash[8..]);
        Self {
            rest,
            id: SmallStr::new(id),
            consumer,
            // 0 means "none": a time of 0 (the epoch) is kept as 1, long past.
            not_before: not_before.map_or(0, |t| secs32(t).max(1)),
            expires: expires.map_or(0, |t| secs32(t).max(1)),
            last_used: AtomicU32::new(0),
            cached: ArcSwapOption::empty(),
        }
    }

    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    pub(crate) fn last_used(&self) -> u32 {
        self.last_used.load(Ordering::Relaxed)
    }

    pub(crate) fn keep_last_used(&self, from: &LiveKey) {
        self.last_used.store(from.last_used(), Ordering::Relaxed);
    }

    /// The identity this key stands for, with `names`' headers (`generation` tells one
    /// plan's header names from another's).
    pub fn resolved(&self, names: &HeaderNames, generation: u64) -> Resolved {
        if let Some(c) = &*self.cached.load() {
            if c.generation == generation && Arc::ptr_eq(&c.profile, &self.consumer.profile.load())
            {
                return c.resolved.clone();
            }
        }
        let profile = self.consumer.profile.load_full();
        let resolved = resolve(names, self.consumer.id(), "api_key", self.id(), &profile);
        self.cached.store(Some(Arc::new(Cached {
            generation,
            profile,
            resolved: resolved.clone(),
        })));
        resolved
    }

    /// Whether the key may be used at `now` (unix seconds); notes the use.
    pub(crate) fn check(&self, now: u32) -> Result<(), Reason> {
        if self.consumer.deleted.load(Ordering::Relaxed) {
            return Err(Reason::ApiKeyUnknown);
        }
        if self.not_before != 0 && now < self.not_before {
            return Err(Reason::ApiKeyNotYetValid);
        }
        if self.expires != 0 && now >= self.expires {
            return Err(Reason::ApiKeyExpired);
        }
        if now.saturating_sub(self.last_used()) >= LAST_USED_STEP {
            self.last_used.store(now, Ordering::Relaxed);
        }
        Ok(())
    }
}
