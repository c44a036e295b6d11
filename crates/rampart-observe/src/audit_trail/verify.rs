//! Checking a trail: each line's hash against its own bytes, the chain, the checkpoints'
//! signatures, and the trail against a copy of its checkpoints (`rampart audit verify`).

use aws_lc_rs::signature;
use base64::Engine;
use sha2::Digest;

use super::{hex, statement, GENESIS};

/// One line's parts, as [`check_line`] read them.
pub struct Entry {
    pub seq: u64,
    pub kind: String,
    pub prev: String,
    pub hash: String,
    pub value: serde_json::Value,
}

/// Checks that a line's hash is the hash of its own bytes; returns its parts.
pub fn check_line(line: &str) -> Result<Entry, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let get = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let hash = get("hash").ok_or("no hash")?;
    let suffix = format!(",\"hash\":\"{hash}\"}}");
    let body = line
        .strip_suffix(&suffix)
        .ok_or("the hash is not the last member")?;
    let computed = hex(&sha2::Sha256::digest(format!("{body}}}").as_bytes()));
    if computed != hash {
        return Err("its hash does not match its content (an edited entry)".into());
    }
    Ok(Entry {
        seq: value.get("seq").and_then(|v| v.as_u64()).ok_or("no seq")?,
        kind: get("kind").ok_or("no kind")?,
        prev: get("prev").ok_or("no prev")?,
        hash,
        value,
    })
}

/// What [`verify`] found in a good trail.
#[derive(Debug)]
pub struct Verified {
    pub entries: u64,
    pub checkpoints: u64,
    /// Entries after the last checkpoint (unsigned: a cut there shows only against a
    /// checkpoint copy).
    pub unsigned_tail: u64,
    /// The first entry's sequence number: above 0 when the first file given continues
    /// one rotated away before it (not checked).
    pub starts_at: u64,
}

/// Verifies a trail's text: the chain, every checkpoint's signature against `public`
/// (when given), and the trail against a copy of its checkpoints (when given). Returns
/// the first problem as `line N: reason`.
pub fn verify(text: &str, public: Option<&[u8]>, copy: Option<&str>) -> Result<Verified, String> {
    verify_files(&[("", text)], public, copy, false)
}

/// Like [`verify`], over a rotated trail's files in order (`audit.jsonl.1`,
/// `audit.jsonl`): each file must go on where the one before it ended. With
/// `continues`, the first may itself go on from a file not given (its first entry is
/// then taken as given); without, a trail must start at entry 0, so a cut head shows.
/// Problems are named `FILE: line N: reason`.
pub fn verify_files(
    files: &[(&str, &str)],
    public: Option<&[u8]>,
    copy: Option<&str>,
    continues: bool,
) -> Result<Verified, String> {
    let mut prev = GENESIS.to_string();
    let mut out = Verified {
        entries: 0,
        checkpoints: 0,
        unsigned_tail: 0,
        starts_at: 0,
    };
    let mut hashes = Vec::new();
    for (name, text) in files {
        let at_name = |at: usize| {
            if name.is_empty() {
                format!("line {at}")
            } else {
                format!("{name}: line {at}")
            }
        };
        for (i, line) in text.lines().enumerate() {
            let at = at_name(i + 1);
            let e = check_line(line).map_err(|r| format!("{at}: {r}"))?;
            if out.entries == 0 && e.seq > 0 {
                if !continues {
                    return Err(format!(
                        "{at}: the trail starts at entry {} instead of 0: the entries before it are missing (give the files rotated away before it first, or --continues to check from here)",
                        e.seq
                    ));
                }
                // The first file goes on from one rotated away: its first entry anchors.
                out.starts_at = e.seq;
                prev = e.prev.clone();
            }
            let want = out.starts_at + out.entries;
            if e.seq != want {
                return Err(format!(
                    "{at}: sequence number {} where {want} belongs (an entry deleted, inserted or moved before it)",
                    e.seq
                ));
            }
            if e.prev != prev {
                return Err(format!(
                    "{at}: it does not follow the entry before it (an entry deleted, inserted or reordered)"
                ));
            }
            if e.kind == "checkpoint" {
                let size = e
                    .value
                    .get("size")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(u64::MAX);
                let head = e.value.get("head").and_then(|v| v.as_str()).unwrap_or("");
                if size != e.seq || head != prev {
                    return Err(format!(
                        "{at}: the checkpoint does not name the entries before it"
                    ));
                }
                if let Some(pk) = public {
                    let sig = e
                        .value
                        .get("signature")
                        .and_then(|v| v.as_str())
                        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                        .unwrap_or_default();
                    signature::UnparsedPublicKey::new(&signature::ED25519, pk)
                        .verify(statement(size, head).as_bytes(), &sig)
                        .map_err(|_| {
                            format!(
                                "{at}: the checkpoint's signature does not verify with this key"
                            )
                        })?;
                }
                out.checkpoints += 1;
                out.unsigned_tail = 0;
            } else {
                out.unsigned_tail += 1;
            }
            hashes.push(e.hash.clone());
            prev = e.hash;
            out.entries += 1;
        }
    }
    if let Some(copy) = copy {
        for (i, line) in copy.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|_| format!("checkpoint copy line {}: not JSON", i + 1))?;
            let seq = v.get("seq").and_then(|s| s.as_u64()).unwrap_or(u64::MAX);
            let hash = v.get("hash").and_then(|s| s.as_str()).unwrap_or("");
            if seq < out.starts_at {
                // In a file rotated away before the first one given.
                continue;
            }
            match hashes.get((seq - out.starts_at) as usize) {
                None => {
                    return Err(format!(
                        "the trail ends at entry {} but a checkpoint copy names entry {seq}: its tail was cut",
                        out.starts_at + out.entries
                    ))
                }
                Some(h) if h != hash => {
                    return Err(format!(
                        "entry {seq} is not the one the checkpoint copy names (the trail was rewritten)"
                    ))
                }
                Some(_) => {}
            }
        }
    }
    Ok(out)
}

/// Largest trail file [`AuditTrail::check_now`] reads.
const CHECK_MAX_BYTES: u64 = 16 << 20;

impl super::AuditTrail {
    /// Verifies the trail's current file as it stands (its complete lines): the chain,
    /// every checkpoint against this trail's own public key, and the checkpoint copy when
    /// there is one. A file that goes on from one rotated away is taken from its first
    /// entry. For the dashboard; `rampart audit verify` checks a copy offline.
    pub fn check_now(&self) -> Result<Verified, String> {
        let (path, copy) = {
            let w = self.lock();
            (w.path.clone(), w.copy.clone())
        };
        let size = std::fs::metadata(&path)
            .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?
            .len();
        if size > CHECK_MAX_BYTES {
            return Err(format!(
                "{} is over 16 MiB: verify it with `rampart audit verify`",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let copy = copy.and_then(|c| std::fs::read_to_string(c).ok());
        use aws_lc_rs::signature::KeyPair as _;
        let public = self.key.public_key().as_ref().to_vec();
        verify_files(&[("", complete)], Some(&public), copy.as_deref(), true)
    }
}
