//! The tamper-evident audit trail: an append-only JSON-lines file in which every entry
//! carries its sequence number, the previous entry's hash and its own, and in which a
//! checkpoint signed with an Ed25519 key is written every so many entries, after a quiet
//! interval and at shutdown. An edited, deleted, inserted or reordered entry breaks the
//! chain; a tail cut after the last checkpoint is caught by a copy of the checkpoints
//! kept elsewhere (`checkpoint_copy`); [`verify`] (`rampart audit verify`) says which.
//!
//! An entry is one line, `{"seq":…,"time":…,"kind":…,<fields>,"prev":"<hex>","hash":"<hex>"}`,
//! and its hash is SHA-256 of the line's own bytes up to `"prev":"<hex>"` and a closing
//! brace: the encoding is the bytes written, so there is nothing to canonicalise.
//!
//! Writes are rare (admin calls, config loads, process start and stop), made under one
//! lock, never from a request's path. A write that fails (a full disk) is kept and tried
//! again with the next one, counted, and makes [`AuditTrail::is_failing`] true, so the
//! admin API refuses changes it could not record (NIST 800-53 AU-5).

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use sha2::Digest;

/// The state-store key of the trail a config names (`None`: no trail). The setting as
/// written: a config reloaded from the same file names the same trail.
fn state_key(spec: &rampart_config::Spec) -> Option<String> {
    let a = spec.audit.as_ref()?;
    Some(format!("audit-trail\n{:?}\n{:?}", a.path, spec.state_dir))
}

/// The feature's compile step: opens the trail the config names the first time (and
/// keeps it, its chain and its file, while the setting stays); a config without one
/// has none. No filters.
pub fn compile(
    spec: &rampart_config::Spec,
    base: &Path,
    state: &rampart_core::StateStore,
) -> Result<rampart_core::FeaturePlan, Vec<rampart_config::ConfigError>> {
    let mut out = rampart_core::FeaturePlan::for_routes(spec.routes.len());
    let (Some(a), Some(key)) = (&spec.audit, state_key(spec)) else {
        return Ok(out);
    };
    let err = |path: &str, reason: String| vec![rampart_config::ConfigError::new(path, reason)];
    let secret = a
        .signing_key
        .resolve(base)
        .map_err(|e| err("audit.signing_key", e))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(secret.expose().trim())
        .map_err(|_| {
            err(
                "audit.signing_key",
                "must be base64 PKCS#8, as `rampart audit keygen` writes it".into(),
            )
        })?;
    let path = a
        .file(spec.state_dir.as_deref(), base)
        .ok_or_else(|| err("audit.path", "set `path`, or `state_dir`".into()))?;
    Ed25519KeyPair::from_pkcs8(&der).map_err(|e| {
        err(
            "audit.signing_key",
            format!("not an Ed25519 PKCS#8 key ({e})"),
        )
    })?;
    // `rampart validate` checks the setting only: it must not write to (or open) the
    // trail a running gateway is writing.
    if state.is_dry() {
        return Ok(out);
    }
    // The copy to syslog: started (or kept, with the same settings) now, switched to
    // when this config goes live.
    let copy = match &a.syslog {
        Some(s) => {
            let key = format!("audit-syslog\n{s:?}\n{}", base.display());
            let copy = state
                .get_or_try_insert(&key, || syslog::Syslog::start(s, base))
                .map_err(|e| err("audit.syslog", e))?;
            out.metrics.push(copy.clone());
            Some(copy)
        }
        None => None,
    };
    let settings = TrailSettings {
        path,
        signing_key: der,
        checkpoint_every: a.checkpoint_every,
        checkpoint_interval: a.checkpoint_interval.get(),
        fsync: match a.fsync {
            rampart_config::AuditFsync::Always => Fsync::Always,
            rampart_config::AuditFsync::Checkpoint => Fsync::Checkpoint,
            rampart_config::AuditFsync::Never => Fsync::Never,
        },
        max_events_per_second: a.security_events.max_per_second,
        syslog: copy.clone(),
        checkpoint_copy: a.checkpoint_copy.as_ref().map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        }),
    };
    let trail = state
        .get_or_try_insert(&key, || AuditTrail::open(settings).map(Handle))
        .map_err(|e| err("audit", e))?;
    let t = trail.0.clone();
    out.on_live.push(rampart_core::LiveHook(Arc::new(move || {
        *t.syslog.lock().unwrap_or_else(|p| p.into_inner()) = copy.clone();
    })));
    let level = a.security_events.level;
    if level != rampart_config::EventLevel::Off {
        out.observers.push(Arc::new(events::SecurityEvents::new(
            trail.0.clone(),
            level,
        )));
    }
    out.metrics.push(trail);
    Ok(out)
}

/// The trail as kept in the state store.
pub struct Handle(pub Arc<AuditTrail>);

/// The trail a running gateway's config names, if any.
pub fn current(
    state: &rampart_core::StateStore,
    spec: &rampart_config::Spec,
) -> Option<Arc<AuditTrail>> {
    state.get::<Handle>(&state_key(spec)?).map(|h| h.0.clone())
}

impl rampart_core::MetricsSource for Handle {
    fn render(&self, out: &mut rampart_core::MetricsText) {
        out.family(
            "rampart_audit_entries_total",
            "counter",
            "Entries written to the audit trail.",
        );
        out.sample(
            "rampart_audit_entries_total",
            &[],
            self.0.written.load(Ordering::Relaxed),
        );
        out.family(
            "rampart_audit_write_errors_total",
            "counter",
            "Failed writes to the audit trail (entries are kept and written again; admin changes are refused meanwhile).",
        );
        out.sample(
            "rampart_audit_write_errors_total",
            &[],
            self.0.write_errors.load(Ordering::Relaxed),
        );
        out.family(
            "rampart_audit_failing",
            "gauge",
            "1 while the audit trail cannot be written.",
        );
        out.sample("rampart_audit_failing", &[], u64::from(self.0.is_failing()));
        out.family(
            "rampart_audit_security_events_total",
            "counter",
            "Security events written to the audit trail.",
        );
        out.sample(
            "rampart_audit_security_events_total",
            &[],
            self.0.events.written.load(Ordering::Relaxed),
        );
        out.family(
            "rampart_audit_security_events_suppressed_total",
            "counter",
            "Security events counted in a security_suppressed entry instead of written one by one (over max_per_second, or the queue full).",
        );
        out.sample(
            "rampart_audit_security_events_suppressed_total",
            &[],
            self.0.events.suppressed_total.load(Ordering::Relaxed),
        );
    }
}

/// The signed statement of a checkpoint: the number of entries before it and the hash
/// of the last of them.
pub(crate) fn statement(size: u64, head: &str) -> String {
    format!("rampart-audit-checkpoint v1\n{size}\n{head}\n")
}

pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// When the file is flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every entry.
    Always,
    /// After checkpoints only.
    Checkpoint,
    /// Left to the operating system.
    Never,
}

/// How a trail is kept.
pub struct TrailSettings {
    pub path: PathBuf,
    /// The Ed25519 private key, PKCS#8 (`rampart audit keygen`).
    pub signing_key: Vec<u8>,
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
    pub fsync: Fsync,
    /// Security events written a second, at most (the rest are counted).
    pub max_events_per_second: u32,
    /// A second file that receives every checkpoint line too (on another disk, or one
    /// a log shipper sends away), so a cut tail is detectable from outside.
    pub checkpoint_copy: Option<PathBuf>,
    /// Where copies of the entries go from the first (`start`) on.
    pub syslog: Option<Arc<syslog::Syslog>>,
}

struct Writer {
    file: File,
    path: PathBuf,
    copy: Option<PathBuf>,
    seq: u64,
    prev: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Lines not yet written (a failed write), in order.
    pending: Vec<String>,
}

/// A running audit trail.
pub struct AuditTrail {
    writer: Mutex<Writer>,
    key: Ed25519KeyPair,
    key_id: String,
    every: u64,
    interval: Duration,
    fsync: Fsync,
    failing: AtomicBool,
    pub written: AtomicU64,
    pub write_errors: AtomicU64,
    stop: Arc<(Mutex<bool>, Condvar)>,
    events: events::Events,
    /// Each secret reference's fingerprint at the last config load, to see rotations.
    secrets: Mutex<Option<std::collections::BTreeMap<String, String>>>,
    /// Where copies of the entries go (`audit.syslog` of the live config).
    syslog: Mutex<Option<Arc<syslog::Syslog>>>,
}

pub(crate) fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// The id of a public key: the first 8 bytes of its SHA-256, hex.
pub fn key_id(public: &[u8]) -> String {
    hex(&sha2::Sha256::digest(public)[..8])
}

/// A new signing key: (PKCS#8 document, public key).
pub fn generate_key() -> Result<(Vec<u8>, Vec<u8>), String> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "no system randomness")?;
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|e| e.to_string())?;
    Ok((doc.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
}

/// An entry's fields, as JSON members after `kind` (`"actor":"…","status":200`).
pub struct Fields(String);

impl Fields {
    pub fn new() -> Self {
        Fields(String::new())
    }

    pub fn str(mut self, name: &str, value: &str) -> Self {
        let _ = write!(self.0, ",\"{name}\":");
        self.0.push('"');
        rampart_core::json_escape_into(&mut self.0, value);
        self.0.push('"');
        self
    }

    /// A string member whose value is already JSON-escaped (the access log's writers).
    pub(crate) fn escaped(mut self, name: &str, value: &str) -> Self {
        let _ = write!(self.0, ",\"{name}\":\"{value}\"");
        self
    }

    /// A list of strings.
    pub fn strs(mut self, name: &str, values: &[String]) -> Self {
        let _ = write!(self.0, ",\"{name}\":[");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.0.push('"');
            rampart_core::json_escape_into(&mut self.0, v);
            self.0.push('"');
        }
        self.0.push(']');
        self
    }

    /// A member whose value is JSON already (an object of counts).
    pub(crate) fn raw(mut self, name: &str, json: &str) -> Self {
        let _ = write!(self.0, ",\"{name}\":{json}");
        self
    }

    /// A member holding any JSON value (a list of objects).
    pub fn json(self, name: &str, value: &serde_json::Value) -> Self {
        self.raw(name, &value.to_string())
    }

    pub fn num(mut self, name: &str, value: u64) -> Self {
        let _ = write!(self.0, ",\"{name}\":{value}");
        self
    }
}

impl Default for Fields {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditTrail {
    /// Opens (or starts) the trail at `settings.path`, resuming its chain after checking
    /// its last entry, and writes a `process` `start` entry.
    pub fn open(settings: TrailSettings) -> Result<Arc<Self>, String> {
        let key = Ed25519KeyPair::from_pkcs8(&settings.signing_key)
            .map_err(|e| format!("signing_key: not an Ed25519 PKCS#8 key ({e})"))?;
        let (seq, prev) = rotate::resume(&settings.path)?;
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {}", dir.display(), e.kind()))?;
        }
        // Readable by the gateway's user only: entries name callers and addresses.
        let file = rotate::open_append(&settings.path)?;
        let key_id = key_id(key.public_key().as_ref());
        let trail = Arc::new(Self {
            writer: Mutex::new(Writer {
                file,
                path: settings.path,
                copy: settings.checkpoint_copy,
                seq,
                prev,
                since_checkpoint: 0,
                last_checkpoint: Instant::now(),
                pending: Vec::new(),
            }),
            key,
            key_id,
            every: settings.checkpoint_every.max(1),
            interval: settings.checkpoint_interval,
            fsync: settings.fsync,
            failing: AtomicBool::new(false),
            written: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            events: events::Events::new(settings.max_events_per_second),
            secrets: Mutex::new(None),
            syslog: Mutex::new(settings.syslog),
        });
        events::spawn_writer(&trail)?;
        trail.record(
            "process",
            Fields::new()
                .str("action", "start")
                .str("version", env!("CARGO_PKG_VERSION"))
                .num("pid", u64::from(std::process::id())),
        );
        // Entries written after the last checkpoint are signed after a quiet interval.
        let weak = Arc::downgrade(&trail);
        let stop = trail.stop.clone();
        let interval = trail.interval;
        std::thread::Builder::new()
            .name("rampart-audit".into())
            .spawn(move || loop {
                let (lock, cv) = &*stop;
                let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
                let (guard, _) = cv
                    .wait_timeout(guard, interval)
                    .unwrap_or_else(|p| p.into_inner());
                if *guard {
                    return;
                }
                drop(guard);
                match weak.upgrade() {
                    Some(t) => t.checkpoint_if_due(),
                    None => return,
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(trail)
    }

    /// Whether the last write failed (and entries wait to be written).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one entry of `kind`; a checkpoint follows when `checkpoint_every` entries
    /// have been written since the last.
    pub fn record(&self, kind: &str, fields: Fields) {
        self.record_all(std::iter::once((kind, fields)));
    }

    /// The secrets a config that just went live references (`env:NAME` or `file:PATH`,
    /// each with a fingerprint of its value): a reference whose value changed since the
    /// last load is a rotation, written as a `secret` entry (the reference and its new
    /// fingerprint; never the value). The first load after a start only remembers them.
    pub fn secrets_observed(&self, now: std::collections::BTreeMap<String, String>) {
        let mut last = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prev) = last.as_ref() {
            let rotated: Vec<(&String, &String)> = now
                .iter()
                .filter(|(r, fp)| prev.get(*r).is_some_and(|old| old != *fp))
                .collect();
            self.record_all(rotated.into_iter().map(|(r, fp)| {
                (
                    "secret",
                    Fields::new()
                        .str("action", "rotated")
                        .str("reference", r)
                        .str("fingerprint", fp),
                )
            }));
        }
        *last = Some(now);
    }

    /// Appends entries, in order, with one flush for all (a batch of security events).
    pub(crate) fn record_all<'a>(&self, entries: impl Iterator<Item = (&'a str, Fields)>) {
        let mut w = self.lock();
        let mut any = false;
        for (kind, fields) in entries {
            let _ = self.append(&mut w, kind, &fields.0);
            any = true;
            w.since_checkpoint += 1;
            if w.since_checkpoint >= self.every {
                self.checkpoint(&mut w);
            }
        }
        if any && self.fsync == Fsync::Always && w.since_checkpoint > 0 {
            self.flush(&mut w);
        }
    }

    /// Appends an entry; returns its line.
    fn append(&self, w: &mut Writer, kind: &str, fields: &str) -> String {
        let mut line = String::with_capacity(160 + fields.len());
        let _ = write!(line, "{{\"seq\":{},\"time\":\"", w.seq);
        crate::access_log::write_rfc3339(&mut line, SystemTime::now());
        line.push_str("\",\"kind\":\"");
        rampart_core::json_escape_into(&mut line, kind);
        line.push('"');
        line.push_str(fields);
        let _ = write!(line, ",\"prev\":\"{}\"", w.prev);
        line.push('}');
        let hash = hex(&sha2::Sha256::digest(line.as_bytes()));
        line.pop();
        let _ = writeln!(line, ",\"hash\":\"{hash}\"}}");
        w.seq += 1;
        w.prev = hash;
        if let Some(s) = &*self.syslog.lock().unwrap_or_else(|p| p.into_inner()) {
            s.offer(kind, &line);
        }
        w.pending.push(line.clone());
        self.write_pending(w);
        line
    }

    fn write_pending(&self, w: &mut Writer) {
        while !w.pending.is_empty() {
            let line = &w.pending[0];
            if let Err(e) = w.file.write_all(line.as_bytes()) {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e.kind(), "audit trail: cannot write; admin changes are refused until it can");
                }
                return;
            }
            w.pending.remove(0);
            self.written.fetch_add(1, Ordering::Relaxed);
        }
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::warn!("audit trail: writing again");
        }
    }

    fn flush(&self, w: &mut Writer) {
        if w.file.sync_data().is_err() {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes a signed checkpoint over everything before it.
    fn checkpoint(&self, w: &mut Writer) {
        let size = w.seq;
        let sig = self.key.sign(statement(size, &w.prev).as_bytes());
        let fields = Fields::new()
            .num("size", size)
            .str("head", &w.prev.clone())
            .str("key_id", &self.key_id)
            .str(
                "signature",
                &base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
            );
        let line = self.append(w, "checkpoint", &fields.0);
        w.since_checkpoint = 0;
        w.last_checkpoint = Instant::now();
        if self.fsync != Fsync::Never {
            self.flush(w);
        }
        if !rotate::write_head(w) {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(copy) = &w.copy {
            let r = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(copy)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if r.is_err() {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A checkpoint when entries wait unsigned and the interval has passed.
    fn checkpoint_if_due(&self) {
        let mut w = self.lock();
        if w.since_checkpoint > 0 && w.last_checkpoint.elapsed() >= self.interval {
            self.checkpoint(&mut w);
        }
    }
}

impl Drop for AuditTrail {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.stop;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
        let mut w = self.lock();
        self.drain_events(&mut w);
        let _ = self.append(&mut w, "process", &Fields::new().str("action", "stop").0);
        self.checkpoint(&mut w);
    }
}

mod events;
mod rotate;
pub mod syslog;
#[cfg(test)]
mod tests;
mod verify;

pub use events::severity;
pub use verify::{check_line, verify, verify_files, Entry, Verified};
