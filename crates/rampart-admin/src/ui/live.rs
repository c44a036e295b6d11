//! The dashboard's live data. One sampler task reads the gateway's counters once a second
//! (the same relaxed atomics `/metrics` reads) and publishes one frame, already written
//! as JSON, that every open overview stream sends as is: the cost does not grow with the
//! number of viewers, and nothing here touches the request path. Live decisions come from
//! the gateway's [`DecisionTap`] ring, read by each decisions stream once a second.
//!
//! Streams are Server-Sent Events, at most `admin.ui.max_live` at once.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::channel::{Channel, Sender};
use rampart_observe::metrics::RouteTotals;
use rampart_observe::tap::Entry;
use rampart_proxy::Gateway;
use serde_json::json;

/// Seconds of history the charts show.
pub const HISTORY: usize = 120;
/// Seconds over which denials are counted by reason.
const DENIAL_WINDOW: usize = 60;

/// One second of traffic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Point {
    pub rps: f64,
    /// Share of answers that were 5xx, 0..1.
    pub errors: f64,
    /// Share refused with a 4xx, 0..1.
    pub refused: f64,
    /// Milliseconds (upper bound of the histogram bucket), when there were requests.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// What the overview shows now.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub at: u64,
    pub history: VecDeque<Point>,
    /// Gateway answers in the last minute, by reason code, most first.
    pub denials: Vec<(&'static str, u64)>,
    pub total: u64,
}

impl Overview {
    pub fn latest(&self) -> Point {
        self.history.back().copied().unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        let series = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<serde_json::Value> {
            self.history.iter().map(|p| json!(f(p))).collect()
        };
        json!({
            "at": self.at,
            "total": self.total,
            "rps": series(&|p| Some(p.rps)),
            "errors": series(&|p| Some(p.errors)),
            "refused": series(&|p| Some(p.refused)),
            "p50": series(&|p| p.p50),
            "p99": series(&|p| p.p99),
            "denials": self.denials,
        })
        .to_string()
    }
}

/// The live state the admin listener shares between its connections.
pub struct Live {
    overview: tokio::sync::watch::Sender<Arc<(Overview, Bytes)>>,
    streams: AtomicUsize,
}

impl Live {
    pub fn new() -> Arc<Live> {
        let (overview, _) =
            tokio::sync::watch::channel(Arc::new((Overview::default(), Bytes::new())));
        Arc::new(Live {
            overview,
            streams: AtomicUsize::new(0),
        })
    }

    pub fn overview(&self) -> Arc<(Overview, Bytes)> {
        self.overview.borrow().clone()
    }

    /// Samples the gateway once a second until `live` is the only holder left.
    pub async fn sample(live: Arc<Live>, gateway: Arc<Gateway>) {
        let mut s = Sampler::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if Arc::strong_count(&live) == 1 {
                return;
            }
            let o = s.step(&gateway);
            let frame = Bytes::from(format!("event: overview\ndata: {}\n\n", o.to_json()));
            live.overview.send_replace(Arc::new((o, frame)));
        }
    }

    /// A slot for one more stream, or `None` when `max` are open.
    pub fn stream_slot(self: &Arc<Self>, max: usize) -> Option<StreamSlot> {
        if self.streams.fetch_add(1, Ordering::AcqRel) >= max {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(StreamSlot(self.clone()))
    }

    /// Streams the overview frames to one viewer while `alive` says the session lasts.
    pub fn overview_stream(
        self: &Arc<Self>,
        slot: StreamSlot,
        alive: impl Fn() -> bool + Send + 'static,
    ) -> Channel<Bytes, Infallible> {
        let (mut tx, body) = Channel::new(2);
        let mut rx = self.overview.subscribe();
        tokio::spawn(async move {
            let _slot = slot;
            let first = rx.borrow_and_update().1.clone();
            if !first.is_empty() && tx.send_data(first).await.is_err() {
                return;
            }
            while rx.changed().await.is_ok() {
                let frame = rx.borrow_and_update().1.clone();
                if !alive() || tx.send_data(frame).await.is_err() {
                    return;
                }
            }
        });
        body
    }

    /// Streams new live decisions (after sequence `after`) to one viewer.
    pub fn decisions_stream(
        slot: StreamSlot,
        gateway: Arc<Gateway>,
        mut after: u64,
        alive: impl Fn() -> bool + Send + 'static,
    ) -> Channel<Bytes, Infallible> {
        let (mut tx, body) = Channel::new(2);
        tokio::spawn(async move {
            let _slot = slot;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut quiet = 0u32;
            loop {
                tick.tick().await;
                if !alive() {
                    return;
                }
                let entries = gateway
                    .decision_tap()
                    .map(|t| t.since(after))
                    .unwrap_or_default();
                let frame = if let Some(last) = entries.last() {
                    after = last.seq;
                    quiet = 0;
                    let rows: Vec<serde_json::Value> = entries.iter().map(entry_json).collect();
                    format!("event: decisions\ndata: {}\n\n", json!(rows))
                } else {
                    quiet += 1;
                    if quiet < 15 {
                        continue;
                    }
                    quiet = 0;
                    // A comment line: finds a viewer that has gone away.
                    ": still here\n\n".to_string()
                };
                if send(&mut tx, frame).await.is_err() {
                    return;
                }
            }
        });
        body
    }
}

async fn send(tx: &mut Sender<Bytes, Infallible>, frame: String) -> Result<(), ()> {
    tx.send_data(Bytes::from(frame)).await.map_err(|_| ())
}

/// An open stream, counted against `admin.ui.max_live`.
pub struct StreamSlot(Arc<Live>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A live decision as the page shows it.
pub fn entry_json(e: &Entry) -> serde_json::Value {
    json!({
        "seq": e.seq,
        "at": unix(e.time),
        "kind": e.kind.as_str(),
        "route": e.route.as_deref(),
        "consumer": e.consumer.as_deref(),
        "client_ip": e.client_ip.to_string(),
        "method": e.method.as_str(),
        "status": e.status,
        "code": e.code,
        "request_id": e.request_id.to_str().unwrap_or("-"),
    })
}

#[derive(Default)]
struct Sampler {
    started: bool,
    prev: RouteTotals,
    prev_codes: HashMap<&'static str, u64>,
    /// Per second of the last minute: answers by code.
    codes: VecDeque<Vec<(&'static str, u64)>>,
    overview: Overview,
}

impl Sampler {
    fn step(&mut self, gateway: &Gateway) -> Overview {
        let traffic = gateway.traffic();
        let mut now = RouteTotals::default();
        for r in &traffic.routes {
            now.add(&r.totals);
        }
        let d = now.since(&self.prev);
        let codes: Vec<(&'static str, u64)> = traffic
            .codes
            .iter()
            .map(|(c, n)| (*c, n.saturating_sub(*self.prev_codes.get(c).unwrap_or(&0))))
            .filter(|(_, n)| *n > 0)
            .collect();
        self.prev_codes = traffic.codes.iter().copied().collect();
        self.prev = now;
        let o = &mut self.overview;
        o.at = unix(SystemTime::now());
        o.total = now.count;
        // The first sample only sets the baseline: everything before it is not "now".
        if !self.started {
            self.started = true;
            return o.clone();
        }
        let answered = d.count.max(1) as f64;
        o.history.push_back(Point {
            rps: d.count as f64,
            errors: d.by_class[4] as f64 / answered,
            refused: d.by_class[3] as f64 / answered,
            p50: d.quantile(0.5).map(|s| s * 1000.0),
            p99: d.quantile(0.99).map(|s| s * 1000.0),
        });
        if o.history.len() > HISTORY {
            o.history.pop_front();
        }
        self.codes.push_back(codes);
        if self.codes.len() > DENIAL_WINDOW {
            self.codes.pop_front();
        }
        let mut by: HashMap<&'static str, u64> = HashMap::new();
        for (c, n) in self.codes.iter().flatten() {
            *by.entry(c).or_default() += n;
        }
        let mut denials: Vec<(&'static str, u64)> = by.into_iter().collect();
        denials.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        denials.truncate(10);
        o.denials = denials;
        o.clone()
    }
}
