//! Where the chain goes on after a restart or a log rotation.
//!
//! The chain's head (the next sequence number and the last entry's hash) is written to
//! `<trail>.head` at every checkpoint. On start, the trail's own last entry is where the
//! chain goes on; the head file checks it (a trail that ends before the head file's
//! entry lost its tail), and is where the chain goes on when the trail file is new or
//! empty: after a rotation moved the old one away.
//!
//! A rotation while running (`logrotate` moving the file, then SIGUSR1): the old file is
//! ended with a checkpoint, the new one is created at the configured path, and its first
//! entry (`rotate`) follows the old file's last. `rampart audit verify OLD NEW` checks the
//! chain across both.

use std::fs::File;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::{check_line, AuditTrail, Fields, Writer, GENESIS};

/// Opens the trail for appending, readable by its owner only (entries name callers and
/// addresses).
pub(super) fn open_append(path: &Path) -> Result<File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot open {}: {}", path.display(), e.kind()))
}

fn head_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".head");
    PathBuf::from(p)
}

/// The head file's (next sequence number, last hash), if there is one.
fn read_head(path: &Path) -> Result<Option<(u64, String)>, String> {
    let hp = head_path(path);
    let text = match std::fs::read_to_string(&hp) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {}", hp.display(), e.kind())),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| format!("{} is not a chain head", hp.display()))?;
    match (
        v.get("next_seq").and_then(|n| n.as_u64()),
        v.get("head").and_then(|h| h.as_str()),
    ) {
        (Some(n), Some(h)) => Ok(Some((n, h.to_string()))),
        _ => Err(format!("{} is not a chain head", hp.display())),
    }
}

/// Writes the chain's head beside the trail (after a checkpoint, at a rotation).
pub(super) fn write_head(w: &Writer) -> bool {
    let hp = head_path(&w.path);
    let mut tmp = hp.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = format!("{{\"next_seq\":{},\"head\":\"{}\"}}\n", w.seq, w.prev);
    crate::config_history::write_private(&tmp, text.as_bytes(), false).is_ok()
        && std::fs::rename(&tmp, &hp).is_ok()
}

/// The sequence number a line starts with (`{"seq":N,`), without parsing the rest.
fn seq_of(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("{\"seq\":")?;
    let end = rest.find(',')?;
    rest[..end].parse().ok()
}

/// Where the chain goes on: (next sequence number, last hash).
pub(super) fn resume(path: &Path) -> Result<(u64, String), String> {
    let head = read_head(path)?;
    let file = match File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {}", path.display(), e.kind())),
    };
    // Not a regular file (a pipe, a device), or an empty one: nothing to read.
    let file = match file {
        Some(f) if f.metadata().is_ok_and(|m| m.is_file() && m.len() > 0) => f,
        _ => return Ok(head.unwrap_or((0, GENESIS.into()))),
    };
    let check = |r: String| {
        format!(
            "{}: {r}: check it with `rampart audit verify`, then move it aside",
            path.display()
        )
    };
    let mut last = None;
    let mut text = String::new();
    let mut reader = std::io::BufReader::new(file);
    loop {
        text.clear();
        if reader.read_line(&mut text).map_err(|e| e.to_string())? == 0 {
            break;
        }
        if !text.ends_with('\n') {
            return Err(check("it ends in an incomplete line".into()));
        }
        let line = text.trim_end();
        // The entry the head file names must be this trail's (unless it is in a file
        // rotated away before this one).
        if let Some((next, hash)) = &head {
            if *next > 0 && seq_of(line) == Some(next - 1) {
                let e = check_line(line)
                    .map_err(|r| check(format!("entry {} does not verify ({r})", next - 1)))?;
                if &e.hash != hash {
                    return Err(check(format!(
                        "entry {} is not the one its head file names (the trail was rewritten)",
                        next - 1
                    )));
                }
            }
        }
        last = Some(line.to_string());
    }
    let line = last.ok_or("empty trail")?;
    let e =
        check_line(&line).map_err(|r| check(format!("its last entry does not verify ({r})")))?;
    if let Some((next, _)) = &head {
        if e.seq + 1 < *next {
            return Err(check(format!(
                "it ends at entry {} but its head file names entry {}: its tail was cut or lost",
                e.seq,
                next - 1
            )));
        }
    }
    Ok((e.seq + 1, e.hash))
}

impl AuditTrail {
    /// After the trail's file was moved away (log rotation; `SIGUSR1`): ends the old
    /// file with a checkpoint and goes on in a new file at the configured path, whose
    /// first entry follows the old file's last. `Ok(false)` when the file was not moved.
    pub fn reopen(&self) -> Result<bool, String> {
        use std::os::unix::fs::MetadataExt;
        let mut w = self.lock();
        let moved = match (std::fs::metadata(&w.path), w.file.metadata()) {
            (Ok(now), Ok(open)) => now.ino() != open.ino() || now.dev() != open.dev(),
            (Err(_), _) => true,
            _ => false,
        };
        if !moved {
            return Ok(false);
        }
        if w.since_checkpoint > 0 {
            self.checkpoint(&mut w);
        }
        let file = open_append(&w.path).inspect_err(|_| {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
        })?;
        w.file = file;
        drop(w);
        self.record("rotate", Fields::new());
        if !write_head(&self.lock()) {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(true)
    }
}
