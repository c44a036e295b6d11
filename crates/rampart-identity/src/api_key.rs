//! API keys. A key is 256 random bits shown to its owner once; the config keeps only
//! `HMAC-SHA256(pepper, key)`, so a leaked config file (or `GET /config`) reveals no key,
//! and without the pepper the hashes cannot even be brute-forced offline.
//!
//! Key format: `rpk_<8-char public id>_<43-char base64url secret>`. The public id lets
//! an operator tell keys apart in logs without holding the secret part.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::hmac;
use base64::Engine;
use rampart_core::Reason;
use subtle::ConstantTimeEq;

use crate::consumers::{HeaderNames, Resolved};
use crate::live_keys::LiveKeys;

/// The prefix every Rampart key starts with (lets secret scanners find leaked keys).
pub const KEY_PREFIX: &str = "rpk_";

/// A freshly generated key: the secret for its owner and the hash for the config.
pub struct NewKey {
    pub key: String,
    pub public_id: String,
    pub hash: String,
}

/// Generates a key and its peppered hash.
pub fn generate(pepper: &[u8]) -> Result<NewKey, &'static str> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let rng = SystemRandom::new();
    let mut secret = [0u8; 32];
    let mut id = [0u8; 5];
    rng.fill(&mut secret).map_err(|_| "no system randomness")?;
    rng.fill(&mut id).map_err(|_| "no system randomness")?;
    let public_id = base32_lower(&id);
    let key = format!(
        "{KEY_PREFIX}{public_id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let hash = format!("hmac-sha256:{}", hex(&hash_key(pepper, key.as_bytes())));
    Ok(NewKey {
        key,
        public_id,
        hash,
    })
}

/// `HMAC-SHA256(pepper, key)`.
pub fn hash_key(pepper: &[u8], key: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, pepper);
    let tag = hmac::sign(&k, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// One configured key.
#[derive(Debug)]
pub struct StoredKey {
    pub hash: [u8; 32],
    pub id: Arc<str>,
    /// Index of this key's identity in the identity plan.
    pub identity: usize,
    pub not_before: Option<SystemTime>,
    pub expires: Option<SystemTime>,
}

/// Where a presented key was found.
pub enum Found<'a> {
    /// In the config file.
    Config(&'a StoredKey),
    /// In the consumer store: the identity it stands for.
    Store(Resolved),
}

/// Every configured key, found in O(1) by its hash.
pub struct ApiKeyIndex {
    pepper: hmac::Key,
    /// Keyed by the hash's first 8 bytes; the full 32 bytes are compared in constant time.
    by_prefix: HashMap<u64, Vec<StoredKey>>,
}

impl ApiKeyIndex {
    pub fn new(pepper: &[u8], keys: Vec<StoredKey>) -> Self {
        let mut by_prefix: HashMap<u64, Vec<StoredKey>> = HashMap::new();
        for k in keys {
            by_prefix.entry(prefix(&k.hash)).or_default().push(k);
        }
        Self {
            pepper: hmac::Key::new(hmac::HMAC_SHA256, pepper),
            by_prefix,
        }
    }

    /// Looks a presented key up and checks its validity window.
    pub fn verify(&self, presented: &[u8], now: SystemTime) -> Result<&StoredKey, Reason> {
        match self.verify_with(presented, now, None)? {
            Found::Config(k) => Ok(k),
            Found::Store(_) => Err(Reason::ApiKeyUnknown),
        }
    }

    /// Looks a presented key up among the config's keys, then among the store's
    /// (`live`, with the identity headers and plan generation its identities are
    /// rendered for), with one hash of the presented key.
    pub fn verify_with<'a>(
        &'a self,
        presented: &[u8],
        now: SystemTime,
        live: Option<(&LiveKeys, &HeaderNames, u64)>,
    ) -> Result<Found<'a>, Reason> {
        // Cheap shape check first: a request cannot make us hash a megabyte.
        if presented.len() > 256 || presented.is_empty() {
            return Err(Reason::ApiKeyMalformed);
        }
        let tag = hmac::sign(&self.pepper, presented);
        let hash: &[u8] = tag.as_ref();
        let mut head = [0u8; 8];
        head.copy_from_slice(&hash[..8]);
        let found = self
            .by_prefix
            .get(&u64::from_le_bytes(head))
            .and_then(|c| c.iter().find(|k| bool::from(k.hash.ct_eq(hash))));
        let Some(key) = found else {
            return match live {
                Some((live, names, generation)) if !live.is_empty() => {
                    live.verify(hash, now, names, generation).map(Found::Store)
                }
                _ => Err(Reason::ApiKeyUnknown),
            };
        };
        if key.not_before.is_some_and(|t| now < t) {
            return Err(Reason::ApiKeyNotYetValid);
        }
        if key.expires.is_some_and(|t| now >= t) {
            return Err(Reason::ApiKeyExpired);
        }
        Ok(Found::Config(key))
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }
}

fn prefix(h: &[u8; 32]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&h[..8]);
    u64::from_le_bytes(head)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn base32_lower(bytes: &[u8; 5]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut v: u64 = 0;
    for b in bytes {
        v = (v << 8) | u64::from(*b);
    }
    (0..8)
        .rev()
        .map(|i| ALPHABET[((v >> (i * 5)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn index_with(
        pepper: &[u8],
        key: &NewKey,
        nb: Option<SystemTime>,
        exp: Option<SystemTime>,
    ) -> ApiKeyIndex {
        ApiKeyIndex::new(
            pepper,
            vec![StoredKey {
                hash: rampart_config::parse_key_hash(&key.hash).unwrap(),
                id: "k1".into(),
                identity: 0,
                not_before: nb,
                expires: exp,
            }],
        )
    }

    #[test]
    fn generated_key_verifies_and_has_the_documented_shape() {
        let k = generate(b"pepper").unwrap();
        assert!(k.key.starts_with("rpk_"));
        assert_eq!(k.key.len(), 4 + 8 + 1 + 43);
        assert!(k.key.contains(&k.public_id));
        let idx = index_with(b"pepper", &k, None, None);
        assert_eq!(
            &*idx.verify(k.key.as_bytes(), SystemTime::now()).unwrap().id,
            "k1"
        );
    }

    #[test]
    fn another_pepper_or_a_changed_key_is_unknown() {
        let k = generate(b"pepper").unwrap();
        let idx = index_with(b"other", &k, None, None);
        assert_eq!(
            idx.verify(k.key.as_bytes(), SystemTime::now()).unwrap_err(),
            Reason::ApiKeyUnknown
        );
        let idx = index_with(b"pepper", &k, None, None);
        let mut wrong = k.key.clone().into_bytes();
        let last = wrong.len() - 1;
        wrong[last] ^= 1;
        assert_eq!(
            idx.verify(&wrong, SystemTime::now()).unwrap_err(),
            Reason::ApiKeyUnknown
        );
    }

    #[test]
    fn validity_window_is_enforced() {
        let k = generate(b"p").unwrap();
        let now = SystemTime::now();
        let idx = index_with(b"p", &k, Some(now + Duration::from_secs(60)), None);
        assert_eq!(
            idx.verify(k.key.as_bytes(), now).unwrap_err(),
            Reason::ApiKeyNotYetValid
        );
        let idx = index_with(b"p", &k, None, Some(now - Duration::from_secs(1)));
        assert_eq!(
            idx.verify(k.key.as_bytes(), now).unwrap_err(),
            Reason::ApiKeyExpired
        );
    }
}
