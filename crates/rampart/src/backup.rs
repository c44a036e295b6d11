//! `rampart backup` and `rampart restore`: the state directory (config history, the audit
//! trail with its chain head, the embedded consumer store) in one archive file, and back.
//!
//! The archive is one JSON line, the manifest, then each file's bytes in the manifest's
//! order:
//!
//! ```text
//! {"format":"rampart-backup","version":1,"created_unix":…,"files":[{"path":"history/index.jsonl","size":…,"sha256":"…"},…],"skipped":[…]}
//! <bytes of the first file><bytes of the second>…
//! ```
//!
//! The state directory holds no secret value (a config holds references; keys are kept
//! as peppered hashes), so neither does the archive. A restore checks everything before
//! it replaces anything: every path stays inside the directory, every file's size and
//! hash, every kept config version against its name, and the audit trail's chain. Only
//! then is the old directory moved aside and the restored one put in its place.

use std::io::{BufRead, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use sha2::Digest;

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    created_unix: u64,
    files: Vec<Entry>,
    /// Files left out, and why (a consumer store held by a running gateway).
    #[serde(default)]
    skipped: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    path: String,
    size: u64,
    sha256: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Append-only logs: only whole lines go in (the gateway may be writing the last one).
fn whole_lines(path: &Path, bytes: Vec<u8>) -> Vec<u8> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(".jsonl") || name.contains(".jsonl.") {
        let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        return bytes[..end].to_vec();
    }
    bytes
}

fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let t = e.file_type()?;
        if t.is_dir() {
            walk(dir, &r, out)?;
        } else if t.is_file() && !r.to_string_lossy().ends_with(".tmp") {
            out.push(r);
        }
    }
    Ok(())
}

/// Writes the archive of `state_dir` to `out`; returns (files, skipped).
pub fn backup(state_dir: &Path, out: &Path) -> anyhow::Result<(usize, Vec<String>)> {
    if !state_dir.is_dir() {
        bail!("{} is not a directory", state_dir.display());
    }
    let mut paths = Vec::new();
    walk(state_dir, Path::new(""), &mut paths)
        .with_context(|| format!("cannot read {}", state_dir.display()))?;
    let mut files = Vec::new();
    let mut blobs = Vec::new();
    let mut skipped = Vec::new();
    for rel in paths {
        let full = state_dir.join(&rel);
        if rel.extension().is_some_and(|e| e == "redb") {
            if let Err(why) = rampart_consumers::embedded_idle(&full) {
                skipped.push(format!(
                    "{}: held by a running gateway, or unreadable ({why}); stop the gateway to include the embedded consumer store",
                    rel.display()
                ));
                continue;
            }
        }
        let bytes = whole_lines(
            &rel,
            std::fs::read(&full).with_context(|| format!("cannot read {}", full.display()))?,
        );
        files.push(Entry {
            path: rel.to_string_lossy().into_owned(),
            size: bytes.len() as u64,
            sha256: hex(&sha2::Sha256::digest(&bytes)),
        });
        blobs.push(bytes);
    }
    let manifest = Manifest {
        format: "rampart-backup".into(),
        version: 1,
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        files,
        skipped: skipped.clone(),
    };
    let tmp = out.with_extension("partial");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?,
        );
        serde_json::to_writer(&mut f, &manifest)?;
        f.write_all(b"\n")?;
        for b in &blobs {
            f.write_all(b)?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok((manifest.files.len(), skipped))
}

/// A path from an archive, only if it stays inside the directory it is restored into.
fn safe(path: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("the archive names {path:?}: only paths inside the state directory may be restored");
    }
    Ok(p.to_path_buf())
}

/// Reads and checks an archive into `into` (a new directory); returns the manifest.
fn unpack(archive: &Path, into: &Path) -> anyhow::Result<Manifest> {
    let mut r = std::io::BufReader::new(
        std::fs::File::open(archive)
            .with_context(|| format!("cannot read {}", archive.display()))?,
    );
    let mut head = String::new();
    r.by_ref().take(16 << 20).read_line(&mut head)?;
    let m: Manifest = serde_json::from_str(head.trim_end())
        .map_err(|_| anyhow::anyhow!("{} is not a rampart backup", archive.display()))?;
    if m.format != "rampart-backup" || m.version != 1 {
        bail!(
            "{} is not a rampart backup of a version this build reads",
            archive.display()
        );
    }
    rampart_observe::config_history::create_private_dir(into).map_err(anyhow::Error::msg)?;
    for e in &m.files {
        let rel = safe(&e.path)?;
        let mut bytes = Vec::new();
        r.by_ref().take(e.size).read_to_end(&mut bytes)?;
        if bytes.len() as u64 != e.size {
            bail!(
                "{}: the archive ends inside it (a truncated archive)",
                e.path
            );
        }
        if hex(&sha2::Sha256::digest(&bytes)) != e.sha256 {
            bail!(
                "{}: its content does not match the manifest's hash (a damaged archive)",
                e.path
            );
        }
        let full = into.join(&rel);
        if let Some(d) = full.parent() {
            rampart_observe::config_history::create_private_dir(d).map_err(anyhow::Error::msg)?;
        }
        rampart_observe::config_history::write_private(&full, &bytes, false)
            .map_err(anyhow::Error::msg)?;
    }
    if r.read(&mut [0u8; 1])? != 0 {
        bail!("the archive holds more than its manifest names");
    }
    Ok(m)
}

/// Checks what was unpacked: kept config versions hash to their names, and the audit
/// trail chains.
fn check(dir: &Path) -> anyhow::Result<()> {
    let history = dir.join("history");
    if history.is_dir() {
        for e in std::fs::read_dir(&history)? {
            let p = e?.path();
            if let Some(id) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".yaml"))
            {
                let text = std::fs::read_to_string(&p)?;
                if rampart_observe::config_history::version_id(&text) != id {
                    bail!("history/{id}.yaml does not hash to its name");
                }
            }
        }
    }
    // The trail and its rotated files, oldest first.
    let mut trail: Vec<(u64, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if name == "audit.jsonl" {
            trail.push((0, p));
        } else if let Some(n) = name
            .strip_prefix("audit.jsonl.")
            .and_then(|n| n.parse::<u64>().ok())
        {
            trail.push((n, p));
        }
    }
    trail.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    if !trail.is_empty() {
        let texts: Vec<(String, String)> = trail
            .iter()
            .map(|(_, p)| {
                Ok((
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    std::fs::read_to_string(p)?,
                ))
            })
            .collect::<std::io::Result<_>>()?;
        let named: Vec<(&str, &str)> = texts
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        rampart_observe::audit_trail::verify_files(&named, None, None, true)
            .map_err(|e| anyhow::anyhow!("the audit trail in the archive does not verify: {e}"))?;
    }
    Ok(())
}

/// Restores `archive` into `state_dir`: checked whole first; then the directory there
/// (if any) is moved aside to `<state_dir>.before-restore-<time>`. Returns the number of
/// files and where the old directory went.
pub fn restore(archive: &Path, state_dir: &Path) -> anyhow::Result<(usize, Option<PathBuf>)> {
    let store = state_dir.join("consumers.redb");
    if store.exists() {
        rampart_consumers::embedded_idle(&store).map_err(|e| {
            anyhow::anyhow!(
                "{} is held by a running gateway ({e}): stop it before restoring",
                store.display()
            )
        })?;
    }
    let parent = crate::config_dir(state_dir);
    std::fs::create_dir_all(parent)?;
    let name = state_dir
        .file_name()
        .context("--state-dir names no directory")?
        .to_string_lossy();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let staging = parent.join(format!(".{name}.restore-{stamp}"));
    let _ = std::fs::remove_dir_all(&staging);
    let checked = unpack(archive, &staging).and_then(|m| check(&staging).map(|()| m));
    let manifest = match checked {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.context("nothing was replaced"));
        }
    };
    let aside = if state_dir.exists() {
        let to = parent.join(format!("{name}.before-restore-{stamp}"));
        std::fs::rename(state_dir, &to)
            .with_context(|| format!("cannot move {} aside", state_dir.display()))?;
        Some(to)
    } else {
        None
    };
    std::fs::rename(&staging, state_dir).with_context(|| {
        format!(
            "cannot put the restored directory at {}",
            state_dir.display()
        )
    })?;
    Ok((manifest.files.len(), aside))
}

/// The state directory a command names: `--state-dir`, else the config's `state_dir`
/// (read leniently, relative to the config's directory).
pub fn state_dir(config: Option<&Path>, state_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    match (config, state_dir) {
        (_, Some(d)) => Ok(d.to_path_buf()),
        (Some(c), None) => {
            let text = std::fs::read_to_string(c)
                .with_context(|| format!("cannot read {}", c.display()))?;
            let d = rampart_config::peek_state_dir(&text)
                .with_context(|| format!("{} names no state_dir: give --state-dir", c.display()))?;
            let base = crate::config_dir(c);
            Ok(if d.is_absolute() { d } else { base.join(d) })
        }
        (None, None) => bail!("give --config FILE or --state-dir DIR"),
    }
}
