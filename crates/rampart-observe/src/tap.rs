//! The live decisions tap: the most recent exchanges the gateway refused, limited,
//! let through in shadow mode or masked, for the dashboard's live view.
//!
//! A ring of [`SLOTS`] slots, each behind its own lock. The log phase of an exchange with
//! a decision worth showing takes the next sequence number (one relaxed atomic add) and
//! writes its slot only if no one else holds it (`try_lock`: never waits). A reader copies
//! the slots newer than what it last saw. So memory is fixed, there is no global lock,
//! and an exchange that was allowed without remark pays nothing here.
//!
//! At most [`SLOTS`] entries are written per second: the live view reads the ring once a
//! second, so more would be overwritten unseen. Under a flood of refusals the rest cost
//! two relaxed atomics each and are counted ([`DecisionTap::skipped`]); the overview's
//! counts by reason come from the metrics, which see every one.
//!
//! An entry holds what an operator needs to find the exchange (time, route, consumer,
//! client address, method, status, reason code, request id) and never a credential, a
//! path, a query or a header value.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::{HeaderValue, Method};
use rampart_core::{ExchangeRecord, Outcome, StateStore};

/// Entries kept.
pub const SLOTS: usize = 512;

/// What kind of decision an entry shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The gateway answered itself: refused (4xx) or failed (5xx).
    Denied,
    /// Refused by a limit (429).
    Limited,
    /// Would have been refused; shadow mode let it through.
    Shadow,
    /// The response was masked or a masking decision was recorded.
    Masked,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Denied => "denied",
            Kind::Limited => "limited",
            Kind::Shadow => "shadow",
            Kind::Masked => "masked",
        }
    }
}

/// One exchange worth showing.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Increases by one per entry offered (gaps: entries a busy slot dropped).
    pub seq: u64,
    pub time: SystemTime,
    pub kind: Kind,
    pub route: Option<Arc<str>>,
    pub consumer: Option<Arc<str>>,
    pub client_ip: IpAddr,
    pub method: Method,
    pub status: u16,
    pub code: &'static str,
    pub request_id: HeaderValue,
}

/// The ring. One per gateway, kept across reloads in its state store.
pub struct DecisionTap {
    next: AtomicU64,
    dropped: AtomicU64,
    /// The Unix second being counted, and entries written in it.
    second: AtomicU64,
    this_second: AtomicU64,
    skipped: AtomicU64,
    slots: Box<[Mutex<Option<Entry>>]>,
}

impl std::fmt::Debug for DecisionTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionTap")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Default for DecisionTap {
    fn default() -> Self {
        DecisionTap {
            next: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
            second: AtomicU64::new(0),
            this_second: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

const KEY: &str = "\0decision-tap";

/// The gateway's tap (made on first use).
pub fn of(state: &StateStore) -> Arc<DecisionTap> {
    state.get_or_insert(KEY, DecisionTap::default)
}

/// What an exchange shows in the live view, if anything: the first refusal, else the
/// first shadow refusal, else a masking decision.
fn classify(r: &ExchangeRecord<'_>) -> Option<(Kind, &'static str)> {
    if let Some(code) = r.code {
        let kind = if r.status == 429 {
            Kind::Limited
        } else {
            Kind::Denied
        };
        return Some((kind, code));
    }
    let x = r.exchange?;
    if let Some(d) = x
        .decisions
        .iter()
        .find(|d| d.outcome == Outcome::ShadowDeny)
    {
        return Some((Kind::Shadow, d.reason.code()));
    }
    x.decisions
        .iter()
        .find(|d| d.reason.code().starts_with("mask."))
        .map(|d| (Kind::Masked, d.reason.code()))
}

impl DecisionTap {
    /// Keeps `r` when it shows a decision. Called from every exchange's log phase: an
    /// exchange without one returns after a field check or two.
    pub fn offer(&self, r: &ExchangeRecord<'_>, route: Option<&Arc<str>>) {
        let Some((kind, code)) = classify(r) else {
            return;
        };
        // This second's allowance (racy at the turn of a second, by a few entries).
        let second = r
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.second.load(Ordering::Relaxed) != second {
            self.second.store(second, Ordering::Relaxed);
            self.this_second.store(0, Ordering::Relaxed);
        }
        if self.this_second.fetch_add(1, Ordering::Relaxed) >= SLOTS as u64 {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let Ok(mut slot) = self.slots[(seq % SLOTS as u64) as usize].try_lock() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let identity = r.exchange.and_then(|x| x.identity.as_deref());
        *slot = Some(Entry {
            seq,
            time: r.time,
            kind,
            route: route.cloned(),
            consumer: identity.and_then(|i| i.consumer.clone()),
            client_ip: r.client_ip,
            method: r.method.clone(),
            status: r.status,
            code,
            request_id: r.request_id.clone(),
        });
    }

    /// The entries after `after` (a sequence number; 0 for all kept), oldest first.
    pub fn since(&self, after: u64) -> Vec<Entry> {
        let mut out: Vec<Entry> = self
            .slots
            .iter()
            .filter_map(|s| {
                let s = s.lock().unwrap_or_else(|p| p.into_inner());
                s.as_ref().filter(|e| e.seq > after).cloned()
            })
            .collect();
        out.sort_by_key(|e| e.seq);
        out
    }

    /// The sequence number the next entry will have.
    pub fn next_seq(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Entries not kept because this second's allowance was spent.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Entries not kept because their slot was being read or written.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record<'a>(
        id: &'a HeaderValue,
        method: &'a Method,
        time: SystemTime,
        code: Option<&'static str>,
    ) -> ExchangeRecord<'a> {
        ExchangeRecord {
            time,
            duration: Duration::from_millis(1),
            request_id: id,
            client_ip: "192.0.2.7".parse().unwrap(),
            listener: "public",
            method,
            version: http::Version::HTTP_11,
            uri: None,
            host: None,
            headers: &[],
            route: Some("orders"),
            upstream: None,
            target: None,
            status: 403,
            bytes_in: 0,
            bytes_out: 0,
            code,
            exchange: None,
        }
    }

    #[test]
    fn refusals_are_kept_up_to_the_ring_a_second() {
        let tap = DecisionTap::default();
        let (id, m) = (HeaderValue::from_static("req-1"), Method::GET);
        let route: Arc<str> = "orders".into();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // Allowed without remark: nothing kept.
        tap.offer(&record(&id, &m, t0, None), Some(&route));
        assert!(tap.since(0).is_empty());
        for _ in 0..SLOTS + 100 {
            tap.offer(&record(&id, &m, t0, Some("ip.denied")), Some(&route));
        }
        let kept = tap.since(0);
        assert_eq!(kept.len(), SLOTS);
        assert_eq!(tap.skipped(), 100);
        assert_eq!(kept[0].code, "ip.denied");
        assert_eq!(kept[0].kind, Kind::Denied);
        assert_eq!(kept[0].route.as_deref(), Some("orders"));
        // The next second has its own allowance; readers see only what is new.
        let last = kept.last().unwrap().seq;
        tap.offer(
            &record(&id, &m, t0 + Duration::from_secs(1), Some("ip.denied")),
            Some(&route),
        );
        assert_eq!(tap.since(last).len(), 1);
    }
}
