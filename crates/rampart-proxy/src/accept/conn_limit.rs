//! Connection caps at accept time, before TLS: a process-wide maximum and a per-IP
//! maximum, so one source cannot exhaust file descriptors or handshake CPU. Shared by all
//! workers; the per-IP table is sharded so accepts on different cores rarely meet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rampart_core::gcra::Gcra;

const SHARDS: usize = 64;

/// Counts open client connections.
#[derive(Debug)]
pub struct ConnLimiter {
    total: AtomicUsize,
    pub max_total: AtomicUsize,
    pub max_per_ip: AtomicUsize,
    /// IPv6 clients are counted by this prefix (`limits.ipv6_prefix`).
    pub v6_prefix: AtomicU8,
    per_ip: Vec<Mutex<HashMap<IpAddr, usize>>>,
    /// New connections per IP (GCRA); replaced on reload.
    pub rate: arc_swap::ArcSwapOption<Gcra>,
    /// Per-IP theoretical arrival times, sharded like `per_ip`.
    tats: Vec<Mutex<HashMap<IpAddr, u64>>>,
    epoch: std::time::Instant,
}

/// Per-shard bound on remembered connection rates (idle entries are dropped first).
const MAX_RATE_ENTRIES: usize = 4096;

/// One admitted connection; dropping it gives the slot back.
#[derive(Debug)]
pub struct ConnPermit {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerIp,
    /// The IP opened new connections faster than `new_connections_per_ip`.
    Rate,
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            total: AtomicUsize::new(0),
            max_total: AtomicUsize::new(max_total),
            max_per_ip: AtomicUsize::new(max_per_ip),
            v6_prefix: AtomicU8::new(64),
            per_ip: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            rate: arc_swap::ArcSwapOption::empty(),
            tats: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            epoch: std::time::Instant::now(),
        })
    }

    fn shard_index(ip: &IpAddr) -> usize {
        let h = match ip {
            IpAddr::V4(v4) => u32::from(*v4) as usize,
            IpAddr::V6(v6) => (u128::from(*v6) ^ (u128::from(*v6) >> 64)) as usize,
        };
        h.wrapping_mul(0x9E37_79B9) % SHARDS
    }

    /// Whether `ip` may open one more connection now under the new-connection rate.
    fn rate_ok(&self, ip: IpAddr) -> bool {
        let guard = self.rate.load();
        let Some(g) = guard.as_deref() else {
            return true;
        };
        // Starts at one hour so a fresh address never looks ahead of now.
        let now = self.epoch.elapsed().as_nanos() as u64 + 3_600_000_000_000;
        let mut map = self.tats[Self::shard_index(&ip)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let tat = map.get(&ip).copied().unwrap_or(0);
        let (v, new_tat) = g.check(tat, now, 1);
        if v.allowed {
            if map.len() >= MAX_RATE_ENTRIES && !map.contains_key(&ip) {
                map.retain(|_, t| *t > now);
                if map.len() >= MAX_RATE_ENTRIES {
                    // Every remembered address is still being limited: forgetting one
                    // would reset its budget, so the newcomer is refused (fail closed).
                    return false;
                }
            }
            map.insert(ip, new_tat);
        }
        v.allowed
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        &self.per_ip[Self::shard_index(ip)]
    }

    /// Admits one connection from `ip` (counted by its IPv6 prefix) or says why not.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refused> {
        let ip = rampart_core::client_bucket(ip, self.v6_prefix.load(Ordering::Relaxed));
        if !self.rate_ok(ip) {
            return Err(Refused::Rate);
        }
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total.load(Ordering::Relaxed) {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Total);
        }
        let max_per_ip = self.max_per_ip.load(Ordering::Relaxed);
        let mut map = self.shard(&ip).lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            drop(map);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::PerIp);
        }
        *n += 1;
        Ok(ConnPermit {
            limiter: self.clone(),
            ip,
        })
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut map = self
            .limiter
            .shard(&self.ip)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        drop(map);
        self.limiter.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_ip_and_total_and_releases_on_drop() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = l.try_acquire(a).unwrap();
        let _p2 = l.try_acquire(a).unwrap();
        assert_eq!(l.try_acquire(a).unwrap_err(), Refused::PerIp);
        let _p3 = l.try_acquire(b).unwrap();
        assert_eq!(l.try_acquire(b).unwrap_err(), Refused::Total);
        drop(p1);
        assert!(l.try_acquire(a).is_ok());
    }

    #[test]
    fn counts_ipv6_clients_by_their_prefix() {
        let l = ConnLimiter::new(10, 2);
        let hosts: Vec<IpAddr> = ["2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:ffff::3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let _a = l.try_acquire(hosts[0]).unwrap();
        let _b = l.try_acquire(hosts[1]).unwrap();
        assert_eq!(l.try_acquire(hosts[2]).unwrap_err(), Refused::PerIp);
        let other: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        assert!(l.try_acquire(other).is_ok());
    }
}
