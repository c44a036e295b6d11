//! Request ids: UUIDv7 (time-ordered, so log lines sort by id), generated without a
//! system call per request. The random part comes from a per-thread generator seeded
//! once from the OS; ids must be unique and hard to guess, not secret.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;

thread_local! {
    static STATE: Cell<u64> = Cell::new({
        // RandomState is keyed from the OS's randomness once per thread.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x7261_6d70_6172_7400);
        h.finish()
    });
}

/// SplitMix64: a fast, well-distributed 64-bit generator (ids and sampling; not for
/// secrets).
pub fn random_u64() -> u64 {
    STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A new UUIDv7 as a header value (36 characters, lower-case hex).
pub fn new_request_id() -> HeaderValue {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (a, b) = (random_u64().to_le_bytes(), random_u64().to_le_bytes());
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&a);
    random[8..].copy_from_slice(&b[..2]);
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    crate::headers::shared_value(id.hyphenated().encode_lower(&mut buf).as_bytes())
        .unwrap_or(HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_and_distinct() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let s = a.to_str().unwrap().to_owned();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "7");
        // Ids share one buffer but never each other's bytes.
        let many: Vec<_> = (0..500).map(|_| new_request_id()).collect();
        let distinct: std::collections::HashSet<_> = many.iter().collect();
        assert_eq!(distinct.len(), 500);
        assert!(many.iter().all(|v| v.len() == 36));
        // Later ids written to the buffer never change an earlier one.
        assert_eq!(a.to_str().unwrap(), s);
    }
}
