//! The callers being watched: per (caller, route), the current window and its baselines
//! ([`Consumer`]). Sharded by a keyed hash (a caller cannot aim its keys at one shard),
//! each shard behind its own lock, held for one lookup and update. Bounded: a full shard
//! first forgets callers idle for `idle` seconds, then the longest idle one.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::detect::{Consumer, Flag, Seen, Tuning};

const SHARDS: usize = 64;

/// Who is watched: the proved caller, or the client address of an unproved one (IPv6 by
/// its /64, which one host usually holds whole).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Consumer(Arc<str>),
    Ip(IpAddr),
}

/// A [`Subject`] borrowed from an exchange, for a lookup that clones nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectRef<'a> {
    Consumer(&'a str),
    Ip(IpAddr),
}

impl SubjectRef<'_> {
    /// The subject of a client address.
    pub fn ip(ip: IpAddr) -> SubjectRef<'static> {
        match rampart_core::canonical_ip(ip) {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                SubjectRef::Ip(IpAddr::V6(std::net::Ipv6Addr::new(
                    s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                )))
            }
            v4 => SubjectRef::Ip(v4),
        }
    }

    pub fn to_subject(self) -> Subject {
        match self {
            SubjectRef::Consumer(c) => Subject::Consumer(c.into()),
            SubjectRef::Ip(ip) => Subject::Ip(ip),
        }
    }
}

impl Subject {
    /// The subject of a client address.
    pub fn ip(ip: IpAddr) -> Subject {
        SubjectRef::ip(ip).to_subject()
    }

    pub fn as_ref(&self) -> SubjectRef<'_> {
        match self {
            Subject::Consumer(c) => SubjectRef::Consumer(c),
            Subject::Ip(ip) => SubjectRef::Ip(*ip),
        }
    }

    /// `consumer:<id>` or `ip:<address>`: how it is written in logs, the audit trail and
    /// Redis.
    pub fn label(&self) -> String {
        match self {
            Subject::Consumer(c) => format!("consumer:{c}"),
            Subject::Ip(ip) => format!("ip:{ip}"),
        }
    }

    /// Reads a [`Subject::label`] back.
    pub fn parse(label: &str) -> Option<Subject> {
        if let Some(c) = label.strip_prefix("consumer:") {
            return (!c.is_empty()).then(|| Subject::Consumer(c.into()));
        }
        label.strip_prefix("ip:")?.parse().ok().map(Subject::Ip)
    }
}

/// A watched (caller, route) with its keyed hash, computed once: it picks the shard (from
/// bits the table does not use) and is the table's hash, so a lookup hashes the caller
/// once and clones nothing unless the caller is new.
struct Entry {
    hash: u64,
    subject: Subject,
    route: u32,
    c: Consumer,
}

type Map = HashTable<Entry>;
type Shard = Mutex<Map>;

/// Every watched (caller, route).
pub struct Table {
    shards: Box<[Shard]>,
    per_shard: usize,
    hasher: RandomState,
    pub tracked: AtomicUsize,
    pub evicted: AtomicU64,
}

impl Table {
    pub fn new(max: usize) -> Table {
        Table {
            shards: (0..SHARDS).map(|_| Mutex::new(Map::new())).collect(),
            per_shard: max.div_ceil(SHARDS).max(1),
            hasher: RandomState::default(),
            tracked: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// Counts one exchange of `subject` on `route` at `now` (seconds); the flag of the
    /// window it closed, if any.
    pub fn observe(
        &self,
        subject: SubjectRef<'_>,
        route: u32,
        now: u64,
        seen: Seen,
        t: &Tuning,
    ) -> Option<Flag> {
        let hash = self.hasher.hash_one((subject, route));
        // Bits 32.. pick the shard: the table uses the low bits (buckets) and the top 7.
        let shard = &self.shards[((hash >> 32) % SHARDS as u64) as usize];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let same = |e: &Entry| e.hash == hash && e.route == route && e.subject.as_ref() == subject;
        if let Some(e) = map.find_mut(hash, same) {
            return e.c.observe(now, seen, t);
        }
        if map.len() >= self.per_shard {
            self.make_room(&mut map, now, t);
        }
        let mut c = Consumer::new(now);
        let flag = c.observe(now, seen, t);
        let entry = Entry {
            hash,
            subject: subject.to_subject(),
            route,
            c,
        };
        map.insert_unique(hash, entry, |e| e.hash);
        self.tracked.fetch_add(1, Ordering::Relaxed);
        flag
    }

    /// The `max` (caller, route) pairs whose last closed window scored highest, with the
    /// signal and score; those scoring 0 left out.
    pub fn top_scores(&self, max: usize) -> Vec<(Subject, u32, &'static str, f64)> {
        let mut out: Vec<(Subject, u32, &'static str, f64)> = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.lock().unwrap_or_else(|p| p.into_inner());
            for e in map.iter() {
                let (signal, score) = e.c.last_score();
                if score > 0.0 {
                    out.push((
                        e.subject.clone(),
                        e.route,
                        crate::detect::SIGNALS[signal],
                        score,
                    ));
                }
            }
            // Keep the work bounded by `max`, not by the table's size.
            if out.len() > max * 4 {
                out.sort_by(|a, b| b.3.total_cmp(&a.3));
                out.truncate(max);
            }
        }
        out.sort_by(|a, b| b.3.total_cmp(&a.3));
        out.truncate(max);
        out
    }

    /// Forgets callers idle for a warm-up's worth of windows; if none were, the one idle
    /// longest.
    fn make_room(&self, map: &mut Map, now: u64, t: &Tuning) {
        let idle = t
            .window
            .max(1)
            .saturating_mul(u64::from(t.warmup).max(1) * 6);
        let before = map.len();
        map.retain(|e| e.c.window_start().saturating_add(idle) > now);
        if map.len() == before {
            if let Some((hash, start)) = map
                .iter()
                .map(|e| (e.hash, e.c.window_start()))
                .min_by_key(|&(_, start)| start)
            {
                if let Ok(e) = map.find_entry(hash, |e| e.c.window_start() == start) {
                    e.remove();
                }
            }
        }
        let gone = before - map.len();
        self.tracked.fetch_sub(gone, Ordering::Relaxed);
        self.evicted.fetch_add(gone as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_read_back_and_ipv6_is_kept_by_its_64() {
        for s in [
            Subject::Consumer("alice".into()),
            Subject::Ip("192.0.2.7".parse().unwrap()),
            Subject::ip("2001:db8:1:2:3:4:5:6".parse().unwrap()),
        ] {
            assert_eq!(Subject::parse(&s.label()), Some(s.clone()));
        }
        assert_eq!(
            Subject::ip("2001:db8:1:2:ffff::1".parse().unwrap()),
            Subject::ip("2001:db8:1:2::9".parse().unwrap())
        );
        assert_eq!(
            Subject::ip("::ffff:192.0.2.7".parse().unwrap()).label(),
            "ip:192.0.2.7"
        );
        assert_eq!(Subject::parse("consumer:"), None);
        assert_eq!(Subject::parse("host:x"), None);
    }

    #[test]
    fn the_highest_scores_of_closed_windows_come_first() {
        let t = Tuning {
            window: 10,
            warmup: 1,
            ..Tuning::default()
        };
        let table = Table::new(1024);
        let seen = Seen {
            status: 200,
            bytes: 10,
            id: None,
        };
        // Two callers learn the same quiet baseline; then one bursts.
        for w in 0..4u64 {
            for who in ["steady", "burst"] {
                let n = if who == "burst" && w == 3 { 400 } else { 5 };
                for _ in 0..n {
                    table.observe(SubjectRef::Consumer(who), 0, w * 10, seen, &t);
                }
            }
        }
        assert!(
            table.top_scores(10).is_empty(),
            "the burst's window is still open"
        );
        for who in ["steady", "burst"] {
            table.observe(SubjectRef::Consumer(who), 0, 40, seen, &t);
        }
        let top = table.top_scores(10);
        assert_eq!(top[0].0, Subject::Consumer("burst".into()), "{top:?}");
        assert_eq!(top[0].2, "requests");
        assert!(top[0].3 >= t.threshold, "{top:?}");
        assert!(top
            .iter()
            .all(|r| r.0 != Subject::Consumer("steady".into()) || r.3 < 1.0));
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_idle_first() {
        let t = Tuning {
            window: 10,
            ..Tuning::default()
        };
        let table = Table::new(SHARDS * 4);
        let seen = Seen {
            status: 200,
            bytes: 10,
            id: None,
        };
        // Callers seen long ago, then many new ones: memory stays within the bound.
        for i in 0..(SHARDS * 4) as u32 {
            table.observe(SubjectRef::Consumer("old"), i, 0, seen, &t);
        }
        for i in 0..(SHARDS * 40) as u32 {
            table.observe(SubjectRef::Consumer("new"), i, 100_000, seen, &t);
        }
        let held: usize = table.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= SHARDS * 4, "{held}");
        assert_eq!(table.tracked.load(Ordering::Relaxed), held);
        assert!(table.evicted.load(Ordering::Relaxed) >= (SHARDS * 40 - held) as u64);
    }
}
