//! The access log: one JSON line per request, formatted by hand (no `tracing` on the hot
//! path) and handed to a writer thread in batches. A full queue drops the line and counts
//! it; the request path never blocks on log I/O.
//!
//! What is logged is chosen, not dumped: no header values, no query values, no bodies,
//! so credentials (`Authorization`, cookies, API keys in query strings) never reach it.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

use rampart_core::{json_escape_into, Decision, ExchangeRecord, Identity};

/// Lines waiting for the writer; beyond this they are dropped and counted.
const QUEUE: usize = 65_536;

/// Where access log lines go.
#[derive(Debug)]
pub struct AccessLog {
    tx: SyncSender<String>,
    /// Lines dropped because the writer could not keep up.
    pub dropped: AtomicU64,
    /// Set by [`AccessLog::reopen`]; the writer reopens its file before the next write.
    reopen: Arc<std::sync::atomic::AtomicBool>,
}

impl AccessLog {
    /// Starts the writer thread. `output` is `stdout` or a file path (appended to).
    pub fn start(output: &str) -> std::io::Result<Arc<AccessLog>> {
        let sink = open_sink(output)?;
        let (tx, rx) = sync_channel(QUEUE);
        let reopen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, path) = (reopen.clone(), output.to_string());
        std::thread::Builder::new()
            .name("rampart-access-log".into())
            .spawn(move || write_loop(rx, sink, &path, &flag))?;
        Ok(Arc::new(AccessLog {
            tx,
            dropped: AtomicU64::new(0),
            reopen,
        }))
    }

    /// Queues one line; never blocks (a full queue drops the line and counts it).
    pub fn push(&self, line: String) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
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

fn write_loop(
    rx: Receiver<String>,
    sink: Box<dyn Write + Send>,
    path: &str,
    reopen: &std::sync::atomic::AtomicBool,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, sink);
    loop {
        let first = match rx.recv_timeout(std::time::Duration::from_millis(500)) {
            Ok(line) => Some(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if reopen.swap(false, Ordering::Relaxed) && path != "stdout" {
            let _ = out.flush();
            match open_sink(path) {
                Ok(sink) => out = std::io::BufWriter::with_capacity(64 * 1024, sink),
                Err(e) => {
                    tracing::error!(error = %e, "cannot reopen the access log; still writing to the old file")
                }
            }
        }
        let Some(line) = first else { continue };
        let _ = out.write_all(line.as_bytes());
        // Drain whatever else is queued before paying for a flush (batching).
        while let Ok(line) = rx.try_recv() {
            let _ = out.write_all(line.as_bytes());
        }
        let _ = out.flush();
    }
}

/// The access log line of one finished exchange (JSON, newline-terminated).
pub fn line(r: &ExchangeRecord<'_>) -> String {
    let mut o = String::with_capacity(384);
    o.push_str("{\"time\":\"");
    write_rfc3339(&mut o, r.time);
    o.push_str("\",\"request_id\":\"");
    json_escape_into(&mut o, r.request_id.to_str().unwrap_or(""));
    let _ = write!(o, "\",\"client_ip\":\"{}\",\"listener\":\"", r.client_ip);
    json_escape_into(&mut o, r.listener);
    o.push_str("\",\"method\":\"");
    json_escape_into(&mut o, r.method.as_str());
    let _ = write!(o, "\",\"protocol\":\"{:?}\",\"host\":\"", r.version);
    let host = r.host.and_then(|h| h.to_str().ok()).unwrap_or("");
    json_escape_into(&mut o, host);
    o.push_str("\",\"path\":\"");
    if let Some(uri) = r.uri {
        json_escape_into(&mut o, uri.path());
        if let Some(q) = uri.query() {
            // Query keys are useful, values may be credentials: keep only the keys.
            o.push('?');
            for (i, pair) in q.split('&').enumerate() {
                if i > 0 {
                    o.push('&');
                }
                json_escape_into(&mut o, pair.split('=').next().unwrap_or(""));
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
            let _ = write!(o, ",\"{key}\":\"");
            json_escape_into(&mut o, v);
            o.push('"');
        }
    }
    let _ = write!(
        o,
        ",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"duration_ms\":{:.3}",
        r.status,
        r.bytes_in,
        r.bytes_out,
        r.duration.as_secs_f64() * 1000.0
    );
    if let Some(code) = r.code {
        let _ = write!(o, ",\"code\":\"{code}\"");
    }
    if let Some(x) = r.exchange {
        write_access(&mut o, x.identity.as_deref(), &x.decisions);
    }
    o.push_str("}\n");
    o
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
        let _ = write!(o, ",\"auth_method\":\"{}\"", id.method);
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
            let _ = write!(o, "\"{}:{}\"", d.reason.code(), d.outcome.as_str());
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
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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
