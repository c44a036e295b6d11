//! Security events in the audit trail: denials, and shadow-mode would-be denials, whose
//! reason is severe enough (`audit.security_events.level`), each with its request id so
//! the access log line and the upstream's logs can be found from it.
//!
//! The request path counts the event against this second's budget (`max_per_second`)
//! and, within it, offers it to a bounded queue (`try_send`: no lock, no wait, no
//! allocation of its own); a thread of the trail's writes them in batches, one flush a
//! batch. What is over the budget, or finds the queue full, is not lost silently: it is
//! counted by reason and written as one `security_suppressed` entry a second (and in the
//! metrics). So a flood of denials costs the request path two relaxed atomics each.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::HeaderValue;
use rampart_config::EventLevel;
use rampart_core::{ExchangeRecord, Filter, Outcome, Phase, Reason};

use super::{AuditTrail, Fields};

/// Events waiting to be written, at most.
const QUEUE: usize = 4096;

/// How severe a denial for this reason is.
pub fn severity(reason: Reason) -> EventLevel {
    use Reason::*;
    match reason {
        // Attacks and bans.
        AuthFailuresExceeded | SignatureReplay | CredentialRepeated | JwtSignature
        | JwtAlgorithm | SignatureInvalid | PolicyDenied | IpDenied | BotDenied | BotScore
        | WafSqli | WafXss | WafTraversal | WafCommand | WafSsrf | WafDetectorError
        | AnomalyBanned => EventLevel::High,
        // A credential that did not prove anything; a caller outside its rights; a
        // request outside the API's contract.
        ApiKeyUnknown
        | ApiKeyMalformed
        | ApiKeyExpired
        | ApiKeyNotYetValid
        | JwtMalformed
        | JwtUnknownKey
        | JwtExpired
        | JwtNotYetValid
        | JwtIssuedInFuture
        | JwtLifetime
        | JwtIssuer
        | JwtAudience
        | JwtType
        | JwtMissingClaim
        | MtlsUnknown
        | SignatureMalformed
        | SignatureUnknownKey
        | SignatureSkew
        | RoleMissing
        | ScopeMissing
        | ConsumerNotAllowed
        | Unidentified
        | IpNotAllowed
        | BotLimited
        | AnomalyThrottled
        | CorsDenied
        | ValidationUnknownPath
        | ValidationMethod
        | ValidationParameters
        | ValidationMediaType
        | ValidationBody
        | WafEncodedBody
        | JsonEncodedBody => EventLevel::Medium,
        _ => EventLevel::Low,
    }
}

/// One event, as offered by the request path: values shared with the exchange (cheap
/// clones), formatted by the writer thread.
pub(crate) struct Event {
    reason: Reason,
    outcome: Outcome,
    status: u16,
    request_id: HeaderValue,
    client_ip: IpAddr,
    listener: Arc<str>,
    route: Option<Arc<str>>,
    method: http::Method,
    consumer: Option<Arc<str>>,
    credential: Option<Arc<str>>,
}

impl Event {
    fn fields(&self) -> Fields {
        let mut f = Fields::new()
            .str("code", self.reason.code())
            .str("outcome", self.outcome.as_str())
            .num("status", u64::from(self.status))
            .str("request_id", self.request_id.to_str().unwrap_or("-"))
            .str("client_ip", &self.client_ip.to_string())
            .str("listener", &self.listener)
            .str("method", self.method.as_str());
        if let Some(r) = &self.route {
            f = f.str("route", r);
        }
        if let Some(c) = &self.consumer {
            f = f.str("consumer", c);
        }
        if let Some(c) = &self.credential {
            f = f.str("credential", c);
        }
        f
    }
}

/// What waits in the queue: a security event, or an entry another feature offered
/// from the request path (an anomaly flag).
pub(crate) enum Queued {
    Security(Event),
    Entry(&'static str, Fields),
}

impl Queued {
    fn entry(self) -> (&'static str, Fields) {
        match self {
            Queued::Security(e) => ("security", e.fields()),
            Queued::Entry(kind, f) => (kind, f),
        }
    }
}

/// The events side of a trail: the queue, and what was counted instead of written.
pub(crate) struct Events {
    tx: SyncSender<Queued>,
    rx: Arc<Mutex<Receiver<Queued>>>,
    max_per_second: u32,
    /// The second (Unix time) the budget is counted for, and the events offered in it.
    window: AtomicU64,
    in_window: AtomicU64,
    /// By reason: offered while the queue was full, or over `max_per_second`; written
    /// as one entry, then reset.
    suppressed: Box<[AtomicU64]>,
    pub(crate) written: AtomicU64,
    pub(crate) suppressed_total: AtomicU64,
}

impl Events {
    pub(crate) fn new(max_per_second: u32) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        Self {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            max_per_second: max_per_second.max(1),
            window: AtomicU64::new(0),
            in_window: AtomicU64::new(0),
            suppressed: Reason::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            written: AtomicU64::new(0),
            suppressed_total: AtomicU64::new(0),
        }
    }

    /// Whether an event of the second `now` is within the budget (counted if so). Races
    /// at a second's turn may let a few more through; never fewer.
    fn admit(&self, now: u64) -> bool {
        if self.window.load(Ordering::Relaxed) != now
            && self.window.swap(now, Ordering::Relaxed) != now
        {
            self.in_window.store(0, Ordering::Relaxed);
        }
        self.in_window.fetch_add(1, Ordering::Relaxed) < u64::from(self.max_per_second)
    }

    fn offer(&self, e: Event) {
        match self.tx.try_send(Queued::Security(e)) {
            Ok(()) => {}
            Err(TrySendError::Full(q) | TrySendError::Disconnected(q)) => {
                if let Queued::Security(e) = q {
                    self.suppress(e.reason);
                }
            }
        }
    }

    fn suppress(&self, reason: Reason) {
        self.suppressed[reason.index()].fetch_add(1, Ordering::Relaxed);
        self.suppressed_total.fetch_add(1, Ordering::Relaxed);
    }

    /// The counted events as one entry's fields, the counts reset; `None` when none.
    fn take_suppressed(&self) -> Option<Fields> {
        let mut counts = String::new();
        let mut total = 0;
        for (r, n) in Reason::ALL.iter().zip(self.suppressed.iter()) {
            let n = n.swap(0, Ordering::Relaxed);
            if n > 0 {
                total += n;
                counts.push_str(if counts.is_empty() { "{" } else { "," });
                counts.push_str(&format!("\"{}\":{n}", r.code()));
            }
        }
        if total == 0 {
            return None;
        }
        counts.push('}');
        Some(Fields::new().num("total", total).raw("counts", &counts))
    }
}

/// The writer thread: batches from the queue into the trail, and the suppressed counts
/// once a second. It holds the trail weakly and ends with it.
pub(crate) fn spawn_writer(trail: &Arc<AuditTrail>) -> Result<(), String> {
    let weak: Weak<AuditTrail> = Arc::downgrade(trail);
    let rx = trail.events.rx.clone();
    std::thread::Builder::new()
        .name("rampart-audit-events".into())
        .spawn(move || {
            let mut batch = Vec::new();
            let mut last_summary = Instant::now();
            loop {
                // Waits without holding the trail: the trail's Drop (which drains the
                // queue under its lock) may run on this thread when `t` below is the
                // last reference, and then does, outside that lock.
                let alive = take(&rx, Duration::from_millis(100), &mut batch);
                let Some(t) = weak.upgrade() else { return };
                if last_summary.elapsed() >= Duration::from_secs(1) {
                    last_summary = Instant::now();
                    if let Some(f) = t.events.take_suppressed() {
                        t.record("security_suppressed", f);
                    }
                }
                t.events
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                t.record_all(batch.drain(..).map(Queued::entry));
                if !alive {
                    return;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl AuditTrail {
    /// Offers an entry from the request path: queued for the trail's thread without
    /// waiting (no lock, no file write here). `false` when the queue was full and the
    /// entry was dropped, counted in `rampart_audit_security_events_suppressed_total`.
    pub fn offer(&self, kind: &'static str, fields: Fields) -> bool {
        match self.events.tx.try_send(Queued::Entry(kind, fields)) {
            Ok(()) => true,
            Err(_) => {
                self.events.suppressed_total.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Writes what is still queued and what was counted (at shutdown).
    pub(super) fn drain_events(&self, w: &mut super::Writer) {
        let rx = self.events.rx.lock().unwrap_or_else(|p| p.into_inner());
        while let Ok(q) = rx.try_recv() {
            self.events.written.fetch_add(1, Ordering::Relaxed);
            let (kind, f) = q.entry();
            let _ = self.append(w, kind, &f.0);
        }
        drop(rx);
        if let Some(f) = self.events.take_suppressed() {
            let _ = self.append(w, "security_suppressed", &f.0);
        }
    }
}

/// Takes every event waiting now, waiting up to `wait` for the first; `false` once
/// the queue is closed (the trail is gone).
fn take(rx: &Mutex<Receiver<Queued>>, wait: Duration, out: &mut Vec<Queued>) -> bool {
    let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
    match rx.recv_timeout(wait) {
        Ok(e) => out.push(e),
        Err(RecvTimeoutError::Timeout) => return true,
        Err(RecvTimeoutError::Disconnected) => return false,
    }
    while out.len() < QUEUE {
        match rx.try_recv() {
            Ok(e) => out.push(e),
            Err(_) => break,
        }
    }
    true
}

/// The log-phase filter on every route (and on exchanges that matched none): offers
/// the exchange's denials at or above the level to the trail's queue.
pub(crate) struct SecurityEvents {
    trail: Arc<AuditTrail>,
    /// By reason index: recorded or not.
    wanted: Box<[bool]>,
}

impl SecurityEvents {
    pub(crate) fn new(trail: Arc<AuditTrail>, level: EventLevel) -> Self {
        let wanted = Reason::ALL
            .iter()
            .map(|r| level != EventLevel::Off && severity(*r) <= level)
            .collect();
        Self { trail, wanted }
    }
}

impl Filter for SecurityEvents {
    fn phase(&self) -> Phase {
        Phase::ResponseHeaders
    }

    fn name(&self) -> &'static str {
        "audit.security_events"
    }

    fn on_log(&self, record: &ExchangeRecord<'_>) {
        let Some(x) = record.exchange else {
            return;
        };
        for d in &x.decisions {
            if d.outcome == Outcome::Allow || !self.wanted[d.reason.index()] {
                continue;
            }
            let events = &self.trail.events;
            let second = record
                .time
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |t| t.as_secs());
            if !events.admit(second) {
                events.suppress(d.reason);
                continue;
            }
            let id = x.identity.as_deref();
            events.offer(Event {
                reason: d.reason,
                outcome: d.outcome,
                status: record.status,
                request_id: x.request_id.clone(),
                client_ip: x.client_ip,
                listener: x.listener.clone(),
                route: x.route.clone(),
                method: record.method.clone(),
                consumer: id.and_then(|i| i.consumer.clone()),
                credential: id.and_then(|i| i.credential.clone()),
            });
        }
    }
}
