//! The config's life: which version went live and how (`load`, `reload`, `rollback`,
//! `fallback`), kept in the config history (`rampart_observe::config_history`) and the
//! audit trail; a rollback to a kept version; and a start from the last good version
//! when the file is broken (`rampart run --fallback-to-last-good`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_observe::config_history::{FindError, History, Version};

use crate::{ConfigErrors, Gateway, Plan, StateStore};

/// The history the running config keeps, if it names a `state_dir`.
pub fn of(gateway: &Gateway) -> Option<History> {
    let plan = gateway.plan();
    History::of(&plan.spec, plan.origin.as_ref()?.base())
}

/// Records that the running plan went live by `action` (its text is `text`): kept in the
/// history when the config has a `state_dir`, and written to the audit trail.
pub fn went_live(gateway: &Gateway, text: &str, action: &str) {
    went_live_after(gateway, text, action, None);
}

/// Like [`went_live`], with the config that was live before (the audit entry then says
/// what changed).
pub fn went_live_after(
    gateway: &Gateway,
    text: &str,
    action: &str,
    previous: Option<&rampart_config::Spec>,
) {
    let plan = gateway.plan();
    if let (Some(history), Some(origin)) = (of(gateway), plan.origin.as_ref()) {
        if let Err(e) = history.record(text, &origin.source, action) {
            tracing::error!(error = %e, "config history: cannot keep this version");
        }
    }
    crate::record_config_change(gateway, action, Ok(()), previous);
}

/// Why a rollback did not happen.
#[derive(Debug)]
pub enum RollbackError {
    /// The running config keeps no history (no `state_dir`).
    NoHistory,
    /// The version is unknown, ambiguous or malformed.
    Find(FindError),
    /// The kept version cannot be read, or no longer compiles (a file it names is gone),
    /// or the gateway refused it: every problem.
    Refused(Vec<String>),
}

impl std::fmt::Display for RollbackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollbackError::NoHistory => {
                f.write_str("the running config keeps no history: set state_dir")
            }
            RollbackError::Find(e) => write!(f, "{e}"),
            RollbackError::Refused(errors) => write!(
                f,
                "the version was not made live ({} problem(s)); the running config stays",
                errors.len()
            ),
        }
    }
}

/// Makes the kept version starting with `version` live: compiled against the running
/// gateway's state (limits and counters carry over), read from its own source's
/// directory. Audited either way; the running config stays on any error.
pub fn rollback(gateway: &Gateway, version: &str) -> Result<Version, RollbackError> {
    let history = of(gateway).ok_or(RollbackError::NoHistory)?;
    let found = history.find(version).map_err(RollbackError::Find)?;
    let previous = gateway.plan().spec.clone();
    let outcome = history
        .text(&found.id)
        .map_err(|e| vec![e])
        .and_then(|text| {
            let plan = crate::compile_text(&text, &found.source, &gateway.state())
                .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            gateway.reload(plan)?;
            Ok(text)
        });
    match outcome {
        Ok(text) => {
            tracing::warn!(version = %found.id, source = %found.source.display(), "rolled back: the running config is no longer the file's; the file's next change reloads it");
            went_live_after(gateway, &text, "rollback", Some(&previous));
            Ok(found)
        }
        Err(errors) => {
            gateway.record_failed_reload(errors.clone());
            crate::record_config(gateway, "rollback", Err(errors.len()));
            Err(RollbackError::Refused(errors))
        }
    }
}

/// What `rampart run` starts with.
pub struct Start {
    pub plan: Plan,
    pub text: String,
    /// `load`, or `fallback` when the file was broken and the last good version started.
    pub action: &'static str,
}

/// Compiles the config file for a start. When it does not load and `fallback` is set,
/// the version that last went live from this file starts instead (loudly logged); its
/// history is found in `state_dir` (the flag, else the file's own `state_dir` if that
/// much of it reads). Without `fallback`, or without a good version, every problem of
/// the file is returned.
pub fn start(path: &Path, fallback: bool, state_dir: Option<&Path>) -> Result<Start, ConfigErrors> {
    let state = StateStore::new();
    let read = crate::read_config(path);
    let errors = match read
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|text| crate::compile_text(text, path, &state))
    {
        Ok(plan) => {
            return Ok(Start {
                plan,
                text: read.unwrap_or_default(),
                action: "load",
            })
        }
        Err(e) => e,
    };
    if !fallback {
        return Err(errors);
    }
    let base = crate::config_dir(path);
    let dir: Option<PathBuf> = state_dir.map(Path::to_path_buf).or_else(|| {
        let d = rampart_config::peek_state_dir(read.as_deref().ok()?)?;
        Some(if d.is_absolute() { d } else { base.join(d) })
    });
    let refuse = |why: String| {
        let mut all = errors.clone();
        all.0.push(rampart_config::ConfigError::new(
            "",
            format!("--fallback-to-last-good: {why}"),
        ));
        all
    };
    let Some(dir) = dir else {
        return Err(refuse(
            "no state_dir to find the last good version in: give --state-dir".into(),
        ));
    };
    // Its own keep setting is unknown (the file is broken): read-only use here.
    let history = History::new(&dir, usize::MAX);
    let good = history.last_good(path).map_err(&refuse)?.ok_or_else(|| {
        refuse(format!(
            "{} holds no version that went live from {}",
            history.dir().display(),
            path.display()
        ))
    })?;
    let text = history.text(&good.id).map_err(&refuse)?;
    let plan = crate::compile_text(&text, path, &state).map_err(|e| {
        refuse(format!(
            "the last good version {} no longer loads either: {}",
            short(&good.id),
            e
        ))
    })?;
    for e in &errors.0 {
        tracing::error!(problem = %e, "the config file does not load");
    }
    tracing::error!(
        version = %good.id,
        went_live_unix = good.time_unix,
        file = %path.display(),
        "STARTED FROM THE LAST GOOD CONFIG VERSION (--fallback-to-last-good): the config file does not load; fix it and reload"
    );
    Ok(Start {
        plan,
        text,
        action: "fallback",
    })
}

/// A version id as listed: its first 12 characters.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The history as `rampart history` prints it, newest first; `current` is marked.
pub fn render(versions: &[Version], current: Option<&str>) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("VERSION       WENT LIVE (UTC)       ACTION    BYTES  SOURCE\n");
    for v in versions.iter().rev() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(v.time_unix);
        let mark = if Some(v.id.as_str()) == current {
            "*"
        } else {
            " "
        };
        let _ = writeln!(
            out,
            "{}{mark}  {}  {:<8} {:>6}  {}",
            short(&v.id),
            humantime::format_rfc3339_seconds(at),
            v.action,
            v.bytes,
            v.source.display()
        );
    }
    if current.is_some() {
        out.push_str("(* the running version)\n");
    }
    out
}

/// The running version's id, if it came from a file.
pub fn current(gateway: &Arc<Gateway>) -> Option<String> {
    gateway.plan().origin.as_ref().map(|o| o.version.clone())
}
