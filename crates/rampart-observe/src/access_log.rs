//! The access log: one JSON line per request, formatted by hand (no `tracing` on the hot
//! path) straight into a per-worker buffer. A worker hands its buffer to the writer thread
//! only when it is full (one wake-up per ~64 KiB of lines, not one per line); the writer
//! sweeps up partly filled buffers every [`SWEEP`], so a quiet gateway's lines still
//! appear promptly. A full queue drops the batch and counts its lines; the request path
//! never blocks on log I/O and allocates nothing per line.
//!
//! What is logged is chosen, not dumped: no header values and no query values but those
//! the operator lists (credential headers refused; values masked), no bodies, so
//! credentials (`Authorization`, cookies, API keys in query strings) never reach it;
//! personal data and secrets in the path (an e-mail, a card number, a token as an
//! identifier) are masked by the detectors of [`rampart_core::pii`].

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use rampart_core::pii::{self, PiiKind};
use rampart_core::{json_escape_into, Decision, ExchangeRecord, Identity};

/// A worker's buffer is handed to the writer once it holds this much.
const BATCH: usize = 64 * 1024;
/// Full batches waiting for the writer (16 MiB at most); beyond this a batch is dropped
/// and its lines counted.
const QUEUE: usize = 256;
/// Buffers (one per worker thread; other threads share the last one).
const SHARDS: usize = 16;
/// How often the writer collects partly filled buffers.
pub const SWEEP: Duration = Duration::from_millis(100);

thread_local! {
    /// This thread's buffer index; see [`set_worker`].
    static SHARD: Cell<usize> = const { Cell::new(SHARDS - 1) };
}

/// Tells the access log which buffer the calling thread writes to: each worker thread
/// calls it once with its own index, so workers never contend for a buffer.
pub fn set_worker(index: usize) {
    SHARD.with(|s| s.set(index % (SHARDS - 1)));
}

#[derive(Default)]
struct Shard {
    buf: String,
    lines: u64,
}

/// One buffer, on its own cache line so workers do not share lines.
#[repr(align(128))]
#[derive(Default)]
struct Padded(Mutex<Shard>);

struct Shared {
    shards: [Padded; SHARDS],
    dropped: AtomicU64,
}

impl Shared {
    /// Takes a partly filled buffer (the writer's sweep).
    fn take(&self, i: usize) -> Option<String> {
        let mut s = self.shards[i]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if s.buf.is_empty() {
            return None;
        }
        s.lines = 0;
        Some(std::mem::take(&mut s.buf))
    }
}

enum Msg {
    Batch(String),
    /// Collect every buffer now, write it out, then answer.
    Flush(SyncSender<()>),
}

/// Where access log lines go.
pub struct AccessLog {
    shared: Arc<Shared>,
    tx: SyncSender<Msg>,
    /// Set by [`AccessLog::reopen`]; the writer reopens its file before the next write.
    reopen: Arc<AtomicBool>,
    /// `access_log.query_values`.
    query_values: Box<[Box<str>]>,
    /// `access_log.headers`.
    headers: Box<[http::HeaderName]>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Starts the writer thread. `output` is `stdout` or a file path (appended to).
    pub fn start(
        output: &str,
        query_values: &[String],
        headers: &[String],
    ) -> std::io::Result<Arc<AccessLog>> {
        let sink = open_sink(output)?;
        let (tx, rx) = sync_channel(QUEUE);
        let reopen = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            shards: Default::default(),
            dropped: AtomicU64::new(0),
        });
        let writer = Writer {
            shared: shared.clone(),
            sink,
            path: output.to_string(),
            reopen: reopen.clone(),
        };
        std::thread::Builder::new()
            .name("rampart-access-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(Arc::new(AccessLog {
            shared,
            tx,
            reopen,
            query_values: query_values.iter().map(|q| q.as_str().into()).collect(),
            headers: headers
                .iter()
                .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
        }))
    }

    /// The request headers this log keeps, taken from `headers` when the request
    /// arrives (nothing is allocated when none are configured).
    pub fn capture(&self, headers: &http::HeaderMap) -> Vec<(http::HeaderName, HeaderValue)> {
        if self.headers.is_empty() {
            return Vec::new();
        }
        self.headers
            .iter()
            .filter_map(|n| headers.get(n).map(|v| (n.clone(), v.clone())))
            .collect()
    }

    /// Appends the line of one finished exchange to this thread's buffer; never blocks on
    /// I/O (a full queue drops the batch and counts its lines).
    pub fn log(&self, r: &ExchangeRecord<'_>) {
        let shard = &self.shared.shards[SHARD.with(Cell::get)];
        let mut s = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
        if s.buf.capacity() == 0 {
            s.buf.reserve(BATCH + 1024);
        }
        write_line_with(&mut s.buf, r, &self.query_values);
        s.lines += 1;
        if s.buf.len() < BATCH {
            return;
        }
        let buf = std::mem::replace(&mut s.buf, String::with_capacity(BATCH + 1024));
        let lines = std::mem::take(&mut s.lines);
        drop(s);
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Msg::Batch(buf)) {
            self.shared.dropped.fetch_add(lines, Ordering::Relaxed);
        }
    }

    /// Writes out every buffered line and waits (up to 2 s) until the writer has: at
    /// shutdown, so no line is lost.
    pub fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(2));
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Asks the writer to reopen its file (after log rotation moved it away).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

fn open_sink(output: &str) -> std::io::Result<Box<dyn Write + Send>> {
    Ok(if output == "stdout" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(output)?,
        )
    })
}

struct Writer {
    shared: Arc<Shared>,
    sink: Box<dyn Write + Send>,
    path: String,
    reopen: Arc<AtomicBool>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut last_sweep = std::time::Instant::now();
        loop {
            let msg = match rx.recv_timeout(SWEEP) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.sweep();
                    return;
                }
            };
            if self.reopen.swap(false, Ordering::Relaxed) && self.path != "stdout" {
                let _ = self.sink.flush();
                match open_sink(&self.path) {
                    Ok(sink) => self.sink = sink,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot reopen the access log; still writing to the old file")
                    }
                }
            }
            match msg {
                Some(Msg::Batch(buf)) => self.write(&buf),
                Some(Msg::Flush(done)) => {
                    while let Ok(Msg::Batch(buf)) = rx.try_recv() {
                        self.write(&buf);
                    }
                    self.sweep();
                    last_sweep = std::time::Instant::now();
                    let _ = done.send(());
                    continue;
                }
                None => {}
            }
            if last_sweep.elapsed() >= SWEEP {
                self.sweep();
                last_sweep = std::time::Instant::now();
            }
        }
    }

    fn sweep(&mut self) {
        for i in 0..SHARDS {
            if let Some(buf) = self.shared.take(i) {
                self.write(&buf);
            }
        }
    }

    fn write(&mut self, buf: &str) {
        // Batches are whole lines, so a write error loses whole lines, never half of one.
        let _ = self.sink.write_all(buf.as_bytes());
        let _ = self.sink.flush();
    }
}

/// The access log line of one finished exchange (JSON, newline-terminated).
pub fn line(r: &ExchangeRecord<'_>) -> String {
    let mut o = String::with_capacity(384);
    write_line(&mut o, r);
    o
}

/// Appends the access log line of one finished exchange to `o`.
pub fn write_line(o: &mut String, r: &ExchangeRecord<'_>) {
    write_line_with(o, r, &[]);
}

/// [`write_line`], logging the values of the query parameters in `query_values`
/// (masked by the detectors) besides every key.
pub fn write_line_with(o: &mut String, r: &ExchangeRecord<'_>, query_values: &[Box<str>]) {
    o.push_str("{\"time\":\"");
    write_rfc3339(o, r.time);
    o.push_str("\",\"request_id\":\"");
    json_escape_into(o, r.request_id.to_str().unwrap_or(""));
    o.push_str("\",\"client_ip\":\"");
    write_ip(o, r.client_ip);
    o.push_str("\",\"listener\":\"");
    json_escape_into(o, r.listener);
    o.push_str("\",\"method\":\"");
    json_escape_into(o, r.method.as_str());
    o.push_str("\",\"protocol\":\"");
    o.push_str(match r.version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "unknown",
    });
    o.push_str("\",\"host\":\"");
    let host = r.host.and_then(|h| h.to_str().ok()).unwrap_or("");
    json_escape_into(o, host);
    o.push_str("\",\"path\":\"");
    if let Some(uri) = r.uri {
        write_path(o, uri.path());
        if let Some(q) = uri.query() {
            // Query keys are useful, values may be credentials: keep only the keys (and
            // mask what a key holds: `?jane@example.com` has no value, only a key), and
            // the values the operator chose to log, masked.
            o.push('?');
            for (i, pair) in q.split('&').enumerate() {
                if i > 0 {
                    o.push('&');
                }
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                write_masked_raw(o, key, true);
                if !value.is_empty() && query_values.iter().any(|v| **v == *key) {
                    o.push('=');
                    write_masked_raw(o, value, true);
                }
            }
        }
    }
    o.push('"');
    for (key, value) in [
        ("route", r.route),
        ("upstream", r.upstream),
        ("target", r.target),
    ] {
        if let Some(v) = value {
            o.push_str(",\"");
            o.push_str(key);
            o.push_str("\":\"");
            json_escape_into(o, v);
            o.push('"');
        }
    }
    let mut n = itoa::Buffer::new();
    o.push_str(",\"status\":");
    o.push_str(n.format(r.status));
    o.push_str(",\"bytes_in\":");
    o.push_str(n.format(r.bytes_in));
    o.push_str(",\"bytes_out\":");
    o.push_str(n.format(r.bytes_out));
    // Milliseconds with three decimals (microseconds, truncated).
    let micros = r.duration.as_micros();
    o.push_str(",\"duration_ms\":");
    o.push_str(n.format(micros / 1000));
    o.push('.');
    push_padded(o, (micros % 1000) as u32, 3);
    if let Some(code) = r.code {
        o.push_str(",\"code\":\"");
        o.push_str(code);
        o.push('"');
    }
    if let Some(x) = r.exchange {
        if let Some(ja4) = &x.ja4 {
            o.push_str(",\"ja4\":\"");
            json_escape_into(o, ja4);
            o.push('"');
        }
        write_access(o, x.identity.as_deref(), &x.decisions);
        if !x.details.is_empty() {
            o.push_str(",\"detail\":{");
            for (i, (k, v)) in x.details.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                o.push('"');
                o.push_str(k);
                o.push_str("\":\"");
                json_escape_into(o, v);
                o.push('"');
            }
            o.push('}');
        }
        for counts in &x.body_counts {
            write_counts(o, counts);
        }
    }
    if !r.headers.is_empty() {
        // Values the operator chose to log, masked by the detectors like the path.
        o.push_str(",\"headers\":{");
        for (i, (n, v)) in r.headers.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push('"');
            o.push_str(n.as_str());
            o.push_str("\":\"");
            pii::write_masked(o, &String::from_utf8_lossy(v.as_bytes()), &PiiKind::ALL);
            o.push('"');
        }
        o.push('}');
    }
    o.push_str("}\n");
}

/// `,"mask":{"$.card.number":2,"email":1}`: the rules a body rewriter applied, if any.
fn write_counts(o: &mut String, counts: &rampart_core::BodyCounts) {
    let mut n = itoa::Buffer::new();
    let mut first = true;
    for (_, name, count) in counts.nonzero() {
        o.push_str(if first { ",\"" } else { "," });
        if first {
            o.push_str(counts.label);
            o.push_str("\":{");
            first = false;
        }
        o.push('"');
        json_escape_into(o, name);
        o.push_str("\":");
        o.push_str(n.format(count));
    }
    if !first {
        o.push('}');
    }
}

/// The request path with the personal data and secrets in it masked (`/users/[email]`):
/// identifiers in paths are the one place requests carry them into the log. An encoded
/// path is also looked at decoded (`jane%40example.com` is an e-mail); when something is
/// found only there, the decoded path is logged, masked.
pub(crate) fn write_path(o: &mut String, path: &str) {
    write_masked_raw(o, path, false);
}

/// `raw` (a path, or a query key when `form`: `+` is a space there) masked as it is, or
/// decoded and masked when only its decoded form holds something.
fn write_masked_raw(o: &mut String, raw: &str, form: bool) {
    let plus = form && raw.contains('+');
    if raw.contains('%') || plus {
        let spaced;
        let text = if plus {
            spaced = raw.replace('+', " ");
            &spaced
        } else {
            raw
        };
        let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
        if decoded != raw && pii::might_hold(&decoded) {
            let mut masked = String::new();
            if pii::write_masked(&mut masked, &decoded, &PiiKind::ALL) {
                o.push_str(&masked);
                return;
            }
        }
    }
    pii::write_masked(o, raw, &PiiKind::ALL);
}

fn write_ip(o: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    o.push('.');
                }
                o.push_str(n.format(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(o, "{v6}");
        }
    }
}

/// Appends `v` with leading zeros to `width` digits.
fn push_padded(o: &mut String, v: u32, width: usize) {
    let mut n = itoa::Buffer::new();
    let digits = n.format(v);
    for _ in digits.len()..width {
        o.push('0');
    }
    o.push_str(digits);
}

/// Appends `"consumer"`, `"auth_method"`, `"credential"`, `"subject"` and `"decisions"`
/// fields. The credential is its public id, never the secret.
fn write_access(o: &mut String, identity: Option<&Identity>, decisions: &[Decision]) {
    if let Some(id) = identity {
        if let Some(c) = &id.consumer {
            o.push_str(",\"consumer\":\"");
            json_escape_into(o, c);
            o.push('"');
        }
        o.push_str(",\"auth_method\":\"");
        o.push_str(id.method);
        o.push('"');
        if let Some(c) = &id.credential {
            o.push_str(",\"credential\":\"");
            json_escape_into(o, c);
            o.push('"');
        }
        if !id.subject.is_empty() {
            o.push_str(",\"subject\":\"");
            json_escape_into(o, &id.subject);
            o.push('"');
        }
    }
    if !decisions.is_empty() {
        o.push_str(",\"decisions\":[");
        for (i, d) in decisions.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push('"');
            o.push_str(d.reason.code());
            o.push(':');
            o.push_str(d.outcome.as_str());
            o.push('"');
        }
        o.push(']');
    }
}

/// Formats a UTC timestamp as RFC 3339 with milliseconds.
pub fn write_rfc3339(out: &mut String, t: SystemTime) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (H. Hinnant's algorithm), valid for all dates after 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    push_padded(out, year as u32, 4);
    out.push('-');
    push_padded(out, month as u32, 2);
    out.push('-');
    push_padded(out, day as u32, 2);
    out.push('T');
    push_padded(out, (rem / 3600) as u32, 2);
    out.push(':');
    push_padded(out, (rem % 3600 / 60) as u32, 2);
    out.push(':');
    push_padded(out, (rem % 60) as u32, 2);
    out.push('.');
    push_padded(out, d.subsec_millis(), 3);
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_logged_with_personal_data_masked() {
        for (path, logged) in [
            ("/api/items/123", "/api/items/123"),
            ("/users/jane@example.com/orders", "/users/[email]/orders"),
            ("/users/jane%40example.com", "/users/[email]"),
            (
                "/cards/4111%201111%201111%201111/limit",
                "/cards/[card]/limit",
            ),
            ("/files/report%202026.pdf", "/files/report%202026.pdf"),
            ("/people/078-05-1120", "/people/[ssn]"),
        ] {
            let mut o = String::new();
            write_path(&mut o, path);
            assert_eq!(o, logged, "{path}");
        }
    }

    #[test]
    fn formats_rfc3339() {
        let mut s = String::new();
        write_rfc3339(
            &mut s,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_737_600_123),
        );
        assert_eq!(s, "2026-11-27T00:00:00.123Z");
    }
}
