use super::*;
use crate::api_key::{generate, hash_key};
use records::SmallStr;

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

fn names() -> HeaderNames {
    HeaderNames::new(&rampart_config::IdentityHeadersSpec::default()).unwrap()
}

/// What a request presenting `key` gets.
fn find(live: &LiveKeys, key: &str) -> Result<Resolved, Reason> {
    live.verify(
        &hash_key(PEPPER, key.as_bytes()),
        SystemTime::now(),
        &names(),
        1,
    )
}

fn consumer_of(r: &Resolved) -> &str {
    r.identity.consumer.as_deref().unwrap()
}

#[test]
fn a_full_load_then_single_changes_are_what_lookups_see() {
    let live = LiveKeys::new();
    let (a, ka) = key("a", None);
    let (orphan, ko) = key("nobody", None);
    let skipped = live.replace_all(vec![consumer("a", &["r"])], vec![a.clone(), orphan]);
    assert_eq!((skipped, live.len()), (1, 1));
    assert!(live.is_loaded() && live.has_consumer("a"));
    assert_eq!(consumer_of(&find(&live, &ka).unwrap()), "a");
    assert_eq!(find(&live, &ko).err(), Some(Reason::ApiKeyUnknown));

    live.apply(Change::PutConsumer(consumer("b", &[])));
    let (b, kb) = key("b", None);
    live.apply(Change::PutKey(b.clone()));
    assert_eq!(live.len(), 2);
    let got = find(&live, &kb).unwrap();
    assert_eq!(got.identity.credential.as_deref(), Some(b.id.as_str()));

    live.apply(Change::DeleteKey(a.clone()));
    assert_eq!(find(&live, &ka).err(), Some(Reason::ApiKeyUnknown));
    // A deleted consumer's keys stop working even before their own removal arrives.
    live.apply(Change::DeleteConsumer("b".into()));
    assert_eq!(find(&live, &kb).err(), Some(Reason::ApiKeyUnknown));
    assert!(!live.has_consumer("b"));
    live.apply(Change::DeleteKey(b.clone()));
    assert_eq!(live.len(), 0);
    // Applying a change twice (the feed after a full load) changes nothing more.
    live.apply(Change::DeleteConsumer("b".into()));
    live.apply(Change::DeleteKey(b));
    live.apply(Change::PutConsumer(consumer("a", &["r"])));
    live.apply(Change::PutKey(a.clone()));
    live.apply(Change::PutKey(a));
    assert_eq!(live.len(), 1);
    assert!(find(&live, &ka).is_ok());
}

#[test]
fn keys_stay_sorted_and_found_through_loads_and_changes() {
    let live = LiveKeys::new();
    live.apply(Change::PutConsumer(consumer("a", &[])));
    let keys: Vec<_> = (0..3000).map(|_| key("a", None)).collect();
    for (k, _) in &keys[..1500] {
        live.apply(Change::PutKey(k.clone()));
    }
    let mut l = live.loader();
    l.consumer(consumer("a", &[]));
    for (k, _) in &keys {
        l.key(k);
    }
    assert_eq!(l.finish(), 0);
    assert_eq!(live.len(), 3000);
    for (i, (k, _)) in keys.iter().enumerate() {
        if i % 3 == 0 {
            live.apply(Change::DeleteKey(k.clone()));
        }
    }
    for (i, (_, plain)) in keys.iter().enumerate() {
        assert_eq!(find(&live, plain).is_ok(), i % 3 != 0, "key {i}");
    }
    for shard in live.shards.iter() {
        let s = shard.load();
        assert!(s.prefixes.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.prefixes.len(), s.keys.len());
    }
}

#[test]
fn a_consumer_change_reaches_its_keys_and_their_cached_identity() {
    let live = LiveKeys::new();
    let (a, ka) = key("a", None);
    live.replace_all(vec![consumer("a", &["bronze"])], vec![a.clone()]);
    let before = find(&live, &ka).unwrap();
    assert_eq!(&*before.identity.roles[0], "bronze");
    assert_eq!(before.identity.credential.as_deref(), Some(a.id.as_str()));
    // Served from the key's cache while nothing changed.
    let again = find(&live, &ka).unwrap();
    assert!(Arc::ptr_eq(&before.identity, &again.identity));
    live.apply(Change::PutConsumer(consumer("a", &["gold"])));
    let after = find(&live, &ka).unwrap();
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
    assert_eq!(find(&live, &ka).err(), Some(Reason::ApiKeyExpired));
    a.expires = None;
    a.not_before = Some(now + 60);
    live.apply(Change::PutKey(a.clone()));
    assert_eq!(find(&live, &ka).err(), Some(Reason::ApiKeyNotYetValid));
    a.not_before = Some(0);
    live.apply(Change::PutKey(a));
    assert!(
        find(&live, &ka).is_ok(),
        "a start at the epoch is long past"
    );
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
fn a_reload_without_a_consumer_ends_its_keys() {
    let live = LiveKeys::new();
    let (a, ka) = key("a", None);
    live.replace_all(vec![consumer("a", &[])], vec![a]);
    let old = live
        .shards
        .iter()
        .map(|s| s.load_full())
        .collect::<Vec<_>>();
    live.replace_all(vec![], vec![]);
    assert_eq!(find(&live, &ka).err(), Some(Reason::ApiKeyUnknown));
    // A request still reading an old shard finds the key but may not use it.
    let now = secs32(unix(SystemTime::now()));
    let held = old.iter().flat_map(|s| s.keys.iter()).next().unwrap();
    assert_eq!(held.check(now).unwrap_err(), Reason::ApiKeyUnknown);
}

#[test]
fn short_strings_of_any_length_are_kept_whole() {
    for id in [
        "",
        "k",
        "abcdefgh",
        "exactly-14-byte",
        "exactly-22-bytes-long!",
        "a much longer key id than fits inline",
        "ünïcödé-id",
    ] {
        assert_eq!(SmallStr::<14>::new(id).as_str(), id);
        assert_eq!(SmallStr::<22>::new(id).as_str(), id);
    }
    assert_eq!(std::mem::size_of::<SmallStr<14>>(), 16);
    assert_eq!(std::mem::size_of::<SmallStr<22>>(), 24);
}

#[test]
fn consumers_with_the_same_roles_share_one_profile() {
    let live = LiveKeys::new();
    let (a, _) = key("a", None);
    let (b, _) = key("b", None);
    live.replace_all(
        vec![consumer("a", &["x"]), consumer("b", &["x"])],
        vec![a, b],
    );
    let w = live.lock();
    let pa = w.consumers.get("a").unwrap().0.profile.load_full();
    let pb = w.consumers.get("b").unwrap().0.profile.load_full();
    assert!(Arc::ptr_eq(&pa, &pb));
}

#[test]
fn a_prefix_is_found_where_it_is_or_would_go_whatever_the_spread() {
    let shard_of_values = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.dedup();
        Shard {
            keys: Vec::new(),
            prefixes: v,
        }
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let top = 5u64 << 54;
    let spreads: Vec<Vec<u64>> = vec![
        vec![],
        vec![top | 7],
        (0..1000).map(|_| top | (next() >> 10)).collect(),
        // Bunched at one end: the guess is far off, the fallback still finds them.
        (0..1000).map(|i| top | i).collect(),
        (0..1000).map(|i| top | ((1 << 54) - 1 - i)).collect(),
    ];
    for values in spreads {
        let s = shard_of_values(values);
        for (i, &p) in s.prefixes.iter().enumerate() {
            assert_eq!(s.position(p), Ok(i));
        }
        for _ in 0..2000 {
            let p = top | (next() >> 10);
            assert_eq!(s.position(p), s.prefixes.binary_search(&p), "{p:#x}");
        }
        for p in [top, top | ((1 << 54) - 1), top | 1, top | 1000] {
            assert_eq!(s.position(p), s.prefixes.binary_search(&p), "{p:#x}");
        }
    }
}
