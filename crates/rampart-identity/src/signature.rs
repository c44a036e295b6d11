//! HMAC-signed requests for machine clients.
//!
//! ```text
//! Authorization: Rampart-HMAC-SHA256 keyId="acme-1", timestamp="1767225600",
//!     nonce="3f9c0e4b7a1d", headers="host content-type", signature="<base64>"
//! ```
//!
//! The signature is `base64(HMAC-SHA256(secret, canonical))` where `canonical` is these
//! lines joined by `\n` (no trailing newline):
//!
//! ```text
//! Rampart-HMAC-SHA256
//! <METHOD>
//! <path exactly as sent>
//! <query exactly as sent, or empty>
//! <timestamp>
//! <nonce>
//! <name>:<value>        one line per entry of `headers`, in that order; lowercase name,
//!                        trimmed value, repeated fields joined with ","
//! <lowercase hex SHA-256 of the body>
//! ```
//!
//! `headers` must include `host`. A timestamp further than `max_skew` from the gateway's
//! clock is refused, and a nonce is accepted once per key within twice that window, so
//! a captured request cannot be replayed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use rampart_core::Reason;

pub const SCHEME: &str = "Rampart-HMAC-SHA256";

/// One consumer's signing key.
pub struct SigningKey {
    pub consumer: usize,
    pub key: hmac::Key,
    pub not_before: Option<SystemTime>,
    pub expires: Option<SystemTime>,
    /// The nonces this key has signed recently. One cache per key, so a client that
    /// floods valid nonces can only exhaust its own key's share, never lock out others.
    pub nonces: std::sync::Arc<NonceCache>,
}

/// The parameters of a signature header.
struct Params<'a> {
    key_id: &'a str,
    timestamp: u64,
    nonce: &'a str,
    headers: &'a str,
    signature: Vec<u8>,
}

fn parse(value: &str) -> Option<Params<'_>> {
    let rest = value.strip_prefix(SCHEME)?.strip_prefix(' ')?;
    let (mut key_id, mut ts, mut nonce, mut headers, mut sig) = (None, None, None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.strip_prefix('"')?.strip_suffix('"')?;
        let slot = match k {
            "keyId" => &mut key_id,
            "timestamp" => &mut ts,
            "nonce" => &mut nonce,
            "headers" => &mut headers,
            "signature" => &mut sig,
            _ => return None,
        };
        if slot.replace(v).is_some() {
            return None;
        }
    }
    let nonce = nonce?;
    if nonce.len() < 8
        || nonce.len() > 64
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let ts = ts?;
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Params {
        key_id: key_id?,
        timestamp: ts.parse().ok()?,
        nonce,
        headers: headers?,
        signature: base64::engine::general_purpose::STANDARD
            .decode(sig?)
            .ok()?,
    })
}

/// The canonical string for a request (also used by tests and the docs' example).
pub fn canonical(
    head: &http::request::Parts,
    timestamp: u64,
    nonce: &str,
    headers: &str,
    body: &[u8],
) -> Option<String> {
    let mut out = String::with_capacity(256);
    out.push_str(SCHEME);
    out.push('\n');
    out.push_str(head.method.as_str());
    out.push('\n');
    out.push_str(head.uri.path());
    out.push('\n');
    out.push_str(head.uri.query().unwrap_or(""));
    out.push('\n');
    out.push_str(&timestamp.to_string());
    out.push('\n');
    out.push_str(nonce);
    out.push('\n');
    let mut has_host = false;
    for name in headers.split(' ').filter(|s| !s.is_empty()) {
        if name != name.to_ascii_lowercase() {
            return None;
        }
        has_host |= name == "host";
        let values: Vec<&str> = if name == "host" && head.uri.authority().is_some() {
            vec![head.uri.authority()?.as_str()]
        } else {
            head.headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().map(str::trim))
                .collect::<Result<_, _>>()
                .ok()?
        };
        if values.is_empty() {
            return None;
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    if !has_host {
        return None;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    out.push_str(&crate::api_key::hex(digest.as_ref()));
    Some(out)
}

/// Nonces one signing key has used recently, shared by every worker (a replay may land on
/// any of them). Sharded by a keyed hash so workers rarely meet on one lock and a client
/// cannot aim its nonces at one shard; bounded so a flood cannot grow it.
pub struct NonceCache {
    shards: Vec<Mutex<HashMap<String, u64>>>,
    per_shard: usize,
    hasher: std::hash::RandomState,
}

impl NonceCache {
    pub fn new(capacity: usize) -> Self {
        let n = 16;
        Self {
            shards: (0..n).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(n).max(16),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// Records `nonce` until `until` (unix seconds); false if it was already there or the
    /// cache is full of live entries (fail closed, for this key only).
    fn insert(&self, nonce: &str, now: u64, until: u64) -> bool {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(nonce);
        let shard = &self.shards[(h % self.shards.len() as u64) as usize];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(exp) = map.get(nonce) {
            if *exp > now {
                return false;
            }
        }
        if map.len() >= self.per_shard {
            map.retain(|_, exp| *exp > now);
            if map.len() >= self.per_shard {
                return false;
            }
        }
        map.insert(nonce.to_owned(), until);
        true
    }
}

/// Signing keys by id, the skew window and the replay cache.
pub struct SignatureVerifier {
    pub keys: HashMap<String, SigningKey>,
    pub max_skew: Duration,
}

impl SignatureVerifier {
    /// Whether the request carries a signature (it may still be invalid).
    pub fn present(head: &http::request::Parts) -> Option<&http::HeaderValue> {
        head.headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .find(|v| v.as_bytes().starts_with(SCHEME.as_bytes()))
    }

    /// Checks the signature; returns the consumer index and key id.
    pub fn verify<'a>(
        &'a self,
        value: &http::HeaderValue,
        head: &http::request::Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(usize, &'a str), Reason> {
        let text = value.to_str().map_err(|_| Reason::SignatureMalformed)?;
        let p = parse(text).ok_or(Reason::SignatureMalformed)?;
        let (id, key) = self
            .keys
            .get_key_value(p.key_id)
            .ok_or(Reason::SignatureUnknownKey)?;
        if key.not_before.is_some_and(|t| now < t) || key.expires.is_some_and(|t| now >= t) {
            return Err(Reason::SignatureUnknownKey);
        }
        let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now_s.abs_diff(p.timestamp) > self.max_skew.as_secs() {
            return Err(Reason::SignatureSkew);
        }
        let text = canonical(head, p.timestamp, p.nonce, p.headers, body)
            .ok_or(Reason::SignatureMalformed)?;
        hmac::verify(&key.key, text.as_bytes(), &p.signature)
            .map_err(|_| Reason::SignatureInvalid)?;
        // Only a valid signature may take a nonce slot, so junk cannot fill the cache.
        let until = p.timestamp + 2 * self.max_skew.as_secs() + 1;
        if !key.nonces.insert(p.nonce, now_s, until) {
            return Err(Reason::SignatureReplay);
        }
        Ok((key.consumer, id.as_str()))
    }
}

/// Signs a request the way a client does (for tests, examples and `rampart sign`).
pub fn sign(
    secret: &[u8],
    key_id: &str,
    head: &http::request::Parts,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
    headers: &str,
) -> Option<String> {
    let text = canonical(head, timestamp, nonce, headers, body)?;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), text.as_bytes());
    Some(format!(
        "{SCHEME} keyId=\"{key_id}\", timestamp=\"{timestamp}\", nonce=\"{nonce}\", headers=\"{headers}\", signature=\"{}\"",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> SignatureVerifier {
        let key = |consumer| SigningKey {
            consumer,
            key: hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef"),
            not_before: None,
            expires: None,
            nonces: std::sync::Arc::new(NonceCache::new(16)),
        };
        SignatureVerifier {
            keys: [("a".to_string(), key(0)), ("b".to_string(), key(1))].into(),
            max_skew: Duration::from_secs(300),
        }
    }

    fn signed(v: &SignatureVerifier, key_id: &str, nonce: &str) -> Result<usize, Reason> {
        let (mut head, _) = http::Request::get("/x")
            .header("host", "api.example")
            .body(())
            .unwrap()
            .into_parts();
        let now = SystemTime::now();
        let ts = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let value = sign(
            b"0123456789abcdef0123456789abcdef",
            key_id,
            &head,
            b"",
            ts,
            nonce,
            "host",
        )
        .unwrap();
        head.headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&value).unwrap(),
        );
        let h = SignatureVerifier::present(&head).unwrap().clone();
        v.verify(&h, &head, b"", now).map(|(c, _)| c)
    }

    #[test]
    fn refuses_a_replayed_nonce() {
        let v = verifier();
        assert_eq!(signed(&v, "a", "nonce-0001"), Ok(0));
        assert_eq!(signed(&v, "a", "nonce-0001"), Err(Reason::SignatureReplay));
        // The same nonce under another key is that key's own.
        assert_eq!(signed(&v, "b", "nonce-0001"), Ok(1));
    }

    #[test]
    fn one_key_flooding_nonces_cannot_lock_out_another() {
        let v = verifier();
        let refused = (0..2000)
            .filter(|i| signed(&v, "a", &format!("flood-{i}")).is_err())
            .count();
        assert!(refused > 0, "key a's cache never filled");
        assert_eq!(signed(&v, "b", "fresh-nonce"), Ok(1));
    }
}
