//! Config history: every config that went live, kept by content in
//! `<state_dir>/history` so `rampart history` can list them and a rollback (or a start
//! with `--fallback-to-last-good`) can make one live again.
//!
//! - `<id>.yaml`: a version's text as it was read, where `id` is the SHA-256 of the text
//!   in hex (identical text is one file however often it loads);
//! - `index.jsonl`: one line per time a version went live, oldest first:
//!   `{"id":…,"time_unix":…,"action":"load|reload|rollback|fallback","source":…,"bytes":…}`.
//!
//! `source` is the config file the text came from: relative paths inside it (certificates,
//! OpenAPI documents, secret files) are read from its directory when the version is made
//! live again, as they were. Secrets are held by reference in a config, so no secret
//! value is ever kept here. Files are readable by their owner only.
//!
//! Writes are rare (one per load), made under one process-wide lock; never on a request's
//! path. When more than `keep` distinct versions are kept, the oldest go first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::Digest;

/// One time a version went live.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Version {
    /// SHA-256 of the config text, hex.
    pub id: String,
    pub time_unix: u64,
    /// `load`, `reload`, `rollback` or `fallback`.
    pub action: String,
    /// The config file the text was read from.
    pub source: PathBuf,
    pub bytes: u64,
}

/// Why a version could not be found.
#[derive(Debug, PartialEq, Eq)]
pub enum FindError {
    /// No kept version starts with this.
    Unknown,
    /// More than one does: give more characters.
    Ambiguous,
    /// Not a version id: hex, at least 6 characters.
    Malformed,
}

impl std::fmt::Display for FindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FindError::Unknown => "no kept config version starts with this",
            FindError::Ambiguous => {
                "more than one kept version starts with this: give more of its id"
            }
            FindError::Malformed => "a version is the start of its id: at least 6 hex characters",
        })
    }
}

/// Serialises writers in this process (a reload and a rollback at once).
static WRITE: Mutex<()> = Mutex::new(());

/// The history kept in a state directory.
pub struct History {
    dir: PathBuf,
    keep: usize,
}

/// The id of a config text.
pub fn version_id(text: &str) -> String {
    crate::audit_trail::hex(&sha2::Sha256::digest(text.as_bytes()))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("cannot {what} {}: {}", path.display(), e.kind())
}

impl History {
    /// The history in `<state_dir>/history`, keeping `keep` versions (at least 1).
    pub fn new(state_dir: &Path, keep: usize) -> Self {
        Self {
            dir: state_dir.join("history"),
            keep: keep.max(1),
        }
    }

    /// The history a config names, if it has a `state_dir`.
    pub fn of(spec: &rampart_config::Spec, base: &Path) -> Option<Self> {
        Some(Self::new(
            &spec.state_dir_at(base)?,
            spec.config_history.keep,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn index(&self) -> PathBuf {
        self.dir.join("index.jsonl")
    }

    fn content(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.yaml"))
    }

    /// Keeps `text`, read from `source`, as the version that went live by `action`. A
    /// reload of the version already live (a SIGHUP with nothing changed) adds nothing.
    pub fn record(&self, text: &str, source: &Path, action: &str) -> Result<Version, String> {
        let _w = WRITE.lock().unwrap_or_else(|p| p.into_inner());
        create_private_dir(&self.dir)?;
        let id = version_id(text);
        if action == "reload" {
            if let Some(last) = self.list()?.pop().filter(|v| v.id == id) {
                return Ok(last);
            }
        }
        let file = self.content(&id);
        if !file.exists() {
            // Written whole, then renamed: a crash leaves no half version under its id.
            let tmp = self.dir.join(format!(".{id}.tmp"));
            write_private(&tmp, text.as_bytes(), false)?;
            std::fs::rename(&tmp, &file).map_err(|e| io_err("write", &file, e))?;
        }
        let source = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
        let version = Version {
            id,
            time_unix: now_unix(),
            action: action.to_string(),
            source,
            bytes: text.len() as u64,
        };
        let mut line = serde_json::to_string(&version).map_err(|e| e.to_string())?;
        line.push('\n');
        write_private(&self.index(), line.as_bytes(), true)?;
        self.prune()?;
        Ok(version)
    }

    /// Every time a version went live, oldest first. Lines that do not parse (a torn
    /// last line) are skipped.
    pub fn list(&self) -> Result<Vec<Version>, String> {
        let text = match std::fs::read_to_string(self.index()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &self.index(), e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// The latest entry of the version whose id starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Result<Version, FindError> {
        let prefix = prefix.trim().to_ascii_lowercase();
        if prefix.len() < 6 || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FindError::Malformed);
        }
        let list = self.list().map_err(|_| FindError::Unknown)?;
        let mut found: Option<Version> = None;
        for v in list.into_iter().rev() {
            if !v.id.starts_with(&prefix) {
                continue;
            }
            match &found {
                None => found = Some(v),
                Some(f) if f.id != v.id => return Err(FindError::Ambiguous),
                Some(_) => {}
            }
        }
        found.ok_or(FindError::Unknown)
    }

    /// A kept version's text, checked against its id (a file edited in place is refused).
    pub fn text(&self, id: &str) -> Result<String, String> {
        let file = self.content(id);
        let text = std::fs::read_to_string(&file).map_err(|e| io_err("read", &file, e))?;
        if version_id(&text) != id {
            return Err(format!(
                "{} does not hash to its name: it was changed after it was kept",
                file.display()
            ));
        }
        Ok(text)
    }

    /// The version that last went live from `source` (an absolute path), if any.
    pub fn last_good(&self, source: &Path) -> Result<Option<Version>, String> {
        let source = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
        Ok(self
            .list()?
            .into_iter()
            .rev()
            .find(|v| v.source == source && self.content(&v.id).exists()))
    }

    /// Drops the oldest versions past `keep` (their files and index lines).
    fn prune(&self) -> Result<(), String> {
        let list = self.list()?;
        let mut newest_first: Vec<&str> = Vec::new();
        for v in list.iter().rev() {
            if !newest_first.contains(&v.id.as_str()) {
                newest_first.push(&v.id);
            }
        }
        if newest_first.len() <= self.keep {
            return Ok(());
        }
        let dropped: Vec<&str> = newest_first.split_off(self.keep);
        let mut kept = String::new();
        for v in &list {
            if !dropped.contains(&v.id.as_str()) {
                kept.push_str(&serde_json::to_string(v).map_err(|e| e.to_string())?);
                kept.push('\n');
            }
        }
        let tmp = self.dir.join(".index.tmp");
        write_private(&tmp, kept.as_bytes(), false)?;
        std::fs::rename(&tmp, self.index()).map_err(|e| io_err("write", &self.index(), e))?;
        for id in dropped {
            let _ = std::fs::remove_file(self.content(id));
        }
        Ok(())
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Creates `dir` (and its parents) readable by its owner only.
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err("create", dir, e))
}

/// Writes (or appends) `bytes` to a file readable by its owner only, flushed to disk.
pub fn write_private(path: &Path, bytes: &[u8], append: bool) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).mode(0o600);
    if append {
        opts.append(true);
    } else {
        opts.write(true).truncate(true);
    }
    let mut f = opts.open(path).map_err(|e| io_err("open", path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_data())
        .map_err(|e| io_err("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_versions_by_content_and_prunes_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path(), 2);
        let src = dir.path().join("rampart.yaml");
        let a = h.record("a: 1\n", &src, "load").unwrap();
        let b = h.record("b: 2\n", &src, "reload").unwrap();
        // Reloading what is live adds nothing.
        h.record("b: 2\n", &src, "reload").unwrap();
        h.record("a: 1\n", &src, "rollback").unwrap();
        assert_eq!(h.list().unwrap().len(), 3);
        assert_eq!(h.find(&a.id[..8]).unwrap().action, "rollback");
        assert_eq!(h.text(&b.id).unwrap(), "b: 2\n");
        // A third distinct version drops the oldest one (b: a went live since).
        h.record("c: 3\n", &src, "reload").unwrap();
        assert_eq!(h.find(&b.id[..8]), Err(FindError::Unknown));
        assert!(!h.content(&b.id).exists());
        assert_eq!(h.text(&a.id).unwrap(), "a: 1\n");
        assert_eq!(h.find("zz"), Err(FindError::Malformed));
        assert_eq!(h.last_good(&src).unwrap().unwrap().action, "reload");
    }

    #[test]
    fn an_edited_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path(), 5);
        let v = h
            .record("a: 1\n", &dir.path().join("c.yaml"), "load")
            .unwrap();
        std::fs::write(h.content(&v.id), "a: 2\n").unwrap();
        assert!(h
            .text(&v.id)
            .unwrap_err()
            .contains("changed after it was kept"));
    }
}
