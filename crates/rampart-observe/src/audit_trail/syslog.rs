//! A copy of the audit trail's entries to a syslog receiver (`audit.syslog`): RFC 5424
//! messages, octet-counted (RFC 6587 §3.4.1) over TCP, or over TLS (RFC 5425). One
//! message per entry: MSGID is the entry's kind, MSG the entry's JSON line as written
//! to the file (seq, hash and all, so a SIEM can check the chain too).
//!
//! The trail offers each entry to a bounded queue without waiting; a thread of its own
//! connects, writes and, when the receiver is away, reconnects with a growing pause.
//! While it is away the queue fills, then messages are dropped and counted (the trail's
//! file still has every entry).

use std::collections::VecDeque;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rampart_config::{SyslogSpec, SyslogTransport};

/// Counters of the copy.
#[derive(Default)]
pub struct SyslogCounters {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub connect_errors: AtomicU64,
}

/// The queue to the syslog thread.
pub struct Syslog {
    tx: SyncSender<(String, String)>,
    pub counters: Arc<SyslogCounters>,
}

/// What the thread needs to reach the receiver and format messages.
struct Target {
    address: String,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls_pki_types::ServerName<'static>,
    )>,
    facility: u8,
    hostname: String,
    app_name: String,
}

impl Syslog {
    /// Checks the settings and starts the thread (which connects on its first message).
    pub fn start(spec: &SyslogSpec, base: &std::path::Path) -> Result<Syslog, String> {
        let tls = match spec.transport {
            SyslogTransport::Tcp => None,
            SyslogTransport::Tls => {
                let host = spec
                    .address
                    .rsplit_once(':')
                    .map_or(spec.address.as_str(), |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                let name = rustls_pki_types::ServerName::try_from(host)
                    .map_err(|_| "the host is not a valid TLS server name".to_string())?;
                let ca = spec.ca_file.as_ref().map(|f| base.join(f));
                Some((rampart_fetch::client_config(ca.as_deref(), &[])?, name))
            }
        };
        let target = Target {
            address: spec.address.clone(),
            tls,
            facility: spec.facility.code(),
            hostname: spec.hostname.clone().unwrap_or_else(hostname),
            app_name: spec.app_name.clone(),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(spec.max_queue);
        let counters = Arc::new(SyslogCounters::default());
        let c = counters.clone();
        let max = spec.max_queue;
        std::thread::Builder::new()
            .name("rampart-syslog".into())
            .spawn(move || run(&rx, &target, max, &c))
            .map_err(|e| format!("cannot start the syslog thread: {e}"))?;
        Ok(Syslog { tx, counters })
    }

    /// Queues an entry's copy without waiting; a full queue drops it (counted).
    pub(crate) fn offer(&self, kind: &str, line: &str) {
        if self
            .tx
            .try_send((kind.to_string(), line.trim_end().to_string()))
            .is_err()
        {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl rampart_core::MetricsSource for Syslog {
    fn render(&self, out: &mut rampart_core::MetricsText) {
        let c = &self.counters;
        out.family(
            "rampart_audit_syslog_messages_total",
            "counter",
            "Audit entries copied to syslog, by result (dropped: the queue was full while the receiver was slow or away).",
        );
        for (result, v) in [("sent", &c.sent), ("dropped", &c.dropped)] {
            out.sample(
                "rampart_audit_syslog_messages_total",
                &[("result", result)],
                v.load(Ordering::Relaxed),
            );
        }
        out.family(
            "rampart_audit_syslog_connect_errors_total",
            "counter",
            "Failed connections to the syslog receiver.",
        );
        out.sample(
            "rampart_audit_syslog_connect_errors_total",
            &[],
            c.connect_errors.load(Ordering::Relaxed),
        );
    }
}

/// This machine's host name, or `-` (RFC 5424's nil value).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| (33..=126).contains(&b)))
        .unwrap_or_else(|| "-".into())
}

/// The severity of an entry of this kind (RFC 5424 §6.2.1): warning for denials and
/// anomalies, notice for changes to the gateway, informational for the rest.
fn severity(kind: &str) -> u8 {
    match kind {
        "security" | "security_suppressed" | "anomaly" => 4,
        "admin" | "config" | "secret" | "rotate" => 5,
        _ => 6,
    }
}

/// One octet-counted RFC 5424 message: `LEN SP <PRI>1 TIMESTAMP HOST APP PROCID MSGID
/// - MSG`.
fn frame(t: &Target, kind: &str, line: &str, time: SystemTime) -> Vec<u8> {
    let pri = u16::from(t.facility) * 8 + u16::from(severity(kind));
    let mut ts = String::new();
    crate::access_log::write_rfc3339(&mut ts, time);
    let msgid: String = kind
        .bytes()
        .filter(|b| (33..=126).contains(b))
        .take(32)
        .map(char::from)
        .collect();
    let msgid = if msgid.is_empty() { "-".into() } else { msgid };
    let msg = format!(
        "<{pri}>1 {ts} {} {} {} {msgid} - {line}",
        t.hostname,
        t.app_name,
        std::process::id()
    );
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(b),
            Conn::Tls(s) => s.write_all(b).and_then(|()| s.flush()),
        }
    }
}

fn connect(t: &Target) -> std::io::Result<Conn> {
    let timeout = Duration::from_secs(5);
    let addr = t
        .address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_write_timeout(Some(timeout))?;
    tcp.set_read_timeout(Some(timeout))?;
    let _ = tcp.set_nodelay(true);
    match &t.tls {
        None => Ok(Conn::Tcp(tcp)),
        Some((cfg, name)) => {
            let conn = rustls::ClientConnection::new(cfg.clone(), name.clone())
                .map_err(std::io::Error::other)?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            // Complete the handshake now, so a bad certificate fails the connect.
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock)?;
            }
            Ok(Conn::Tls(Box::new(s)))
        }
    }
}

/// The thread: connect when there is something to send, and send what waits in order.
/// While the receiver is away, messages wait here (at most `max_queue`, the oldest
/// dropped and counted past it) and connecting is retried after a pause of 0.5 s
/// doubling to 30 s. Ends when the trail is gone.
fn run(rx: &Receiver<(String, String)>, t: &Target, max: usize, c: &SyslogCounters) {
    let mut conn: Option<Conn> = None;
    let mut waiting: VecDeque<Vec<u8>> = VecDeque::new();
    let mut pause = Duration::from_millis(500);
    let mut warned = false;
    let keep = |waiting: &mut VecDeque<Vec<u8>>, (kind, line): (String, String)| {
        if waiting.len() >= max {
            waiting.pop_front();
            c.dropped.fetch_add(1, Ordering::Relaxed);
        }
        waiting.push_back(frame(t, &kind, &line, SystemTime::now()));
    };
    loop {
        if waiting.is_empty() {
            match rx.recv() {
                Ok(m) => keep(&mut waiting, m),
                Err(_) => return,
            }
        }
        if conn.is_none() {
            match connect(t) {
                Ok(cn) => conn = Some(cn),
                Err(e) => {
                    c.connect_errors.fetch_add(1, Ordering::Relaxed);
                    if !warned {
                        warned = true;
                        tracing::warn!(address = %t.address, error = %e, "syslog receiver unreachable; audit copies wait (the trail's file has every entry)");
                    }
                    // Wait, taking in what comes meanwhile; leave when the trail is gone.
                    let until = std::time::Instant::now() + pause;
                    loop {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        match rx.recv_timeout(left) {
                            Ok(m) => keep(&mut waiting, m),
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    pause = (pause * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
        }
        let Some(cn) = conn.as_mut() else { continue };
        while let Some(f) = waiting.front() {
            if cn.write_all(f).is_err() {
                conn = None;
                break;
            }
            waiting.pop_front();
            c.sent.fetch_add(1, Ordering::Relaxed);
        }
        if conn.is_some() {
            pause = Duration::from_millis(500);
            if warned {
                warned = false;
                tracing::info!(address = %t.address, "syslog receiver reachable again");
            }
        }
        // Take in what queued meanwhile without waiting.
        while waiting.len() < max {
            match rx.try_recv() {
                Ok(m) => keep(&mut waiting, m),
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_octet_counted_rfc_5424() {
        let t = Target {
            address: "x:1".into(),
            tls: None,
            facility: 10,
            hostname: "gw-1".into(),
            app_name: "rampart".into(),
        };
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_371_200_250);
        let f = String::from_utf8(frame(&t, "security", "{\"seq\":3}", time)).unwrap();
        let (len, msg) = f.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        // authpriv (10) × 8 + warning (4).
        let want = format!(
            "<84>1 2026-12-04T08:00:00.250Z gw-1 rampart {} security - {{\"seq\":3}}",
            std::process::id()
        );
        assert_eq!(msg, want);
        // Informational for the rest: 10 × 8 + 6.
        let f = String::from_utf8(frame(&t, "checkpoint", "{}", time)).unwrap();
        assert!(f.contains(" <86>1 "), "{f}");
        // A kind is at most 32 printable characters.
        let f = String::from_utf8(frame(&t, &"k ".repeat(40), "{}", time)).unwrap();
        assert!(f.contains(&format!(" {} - {{}}", "k".repeat(32))), "{f}");
    }
}
