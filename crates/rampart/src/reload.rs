//! Reloading a running gateway from its config file: the same parse → validate → compile
//! path as `rampart validate`, so a reload fails with exactly the errors `validate` would
//! print, and a failed reload changes nothing.
//!
//! Triggers: SIGHUP, a change in the config file's directory (so atomic renames and
//! Kubernetes ConfigMap symlink swaps are seen), debounced, with a metadata check every
//! [`POLL`] as a backstop to the watcher; and `POST /admin/reload`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::Gateway;

/// Why a reload was asked for (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    FileChange,
}

/// Builds a new plan from `path` and swaps it in. On any error the running plan stays,
/// and every problem is logged and recorded as the last reload's outcome.
pub fn reload_file(gateway: &Gateway, path: &Path) -> Result<(), Vec<String>> {
    let previous = gateway.plan().spec.clone();
    let compiled = crate::read_config(path).and_then(|text| {
        crate::compile_text(&text, path, &gateway.state()).map(|plan| (plan, text))
    });
    let outcome = match compiled {
        Ok((plan, text)) => gateway.reload(plan).map(|()| text),
        Err(errors) => {
            let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            gateway.record_failed_reload(errors.clone());
            Err(errors)
        }
    };
    match outcome {
        Ok(text) => {
            crate::history::went_live_after(gateway, &text, "reload", Some(&previous));
            Ok(())
        }
        Err(errors) => {
            crate::record_config(gateway, "reload", Err(errors.len()));
            Err(errors)
        }
    }
}

/// Quiet period after a file event before reloading: editors and `kubectl` write in
/// several steps, and one reload should see the final content.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// How often the config file's metadata is checked, should the watcher miss a change.
pub const POLL: Duration = Duration::from_secs(2);

/// What tells a changed file from an unchanged one without reading it: size, modification
/// time and inode (an atomic rename gives a new inode).
fn file_stamp(path: &Path) -> Option<(u64, std::time::SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?, m.ino()))
}

/// Watches the directory of `path` and sends a trigger on every change there.
/// The watcher stops when the returned value is dropped.
pub fn watch(
    path: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<Trigger>,
) -> notify::Result<notify::RecommendedWatcher> {
    let dir: PathBuf = crate::config_dir(path).to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event {
            if !matches!(e.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(Trigger::FileChange);
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Serves until SIGINT/SIGTERM, reloading `path` on SIGHUP and on file changes, then
/// drains gracefully.
///
/// `ready` runs once the signal handlers are installed: whatever announces that the
/// gateway is up belongs there, because a SIGHUP that arrives before the handler exists
/// takes the default action and kills the process.
pub fn run_until_stopped(gateway: &Gateway, path: &Path, ready: impl FnOnce()) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _watcher = match watch(path, tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP");
                None
            }
        };
        let (Ok(mut hup), Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::user_defined1()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        ready();
        let mut last_content = content_digest(path);
        // A backstop to the watcher: inotify can run out of instances or drop events
        // under load, and a network file system may send none. A change of the file's
        // size, time or inode is checked every POLL; its content decides, as for events.
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_meta = file_stamp(path);
        loop {
            let trigger = tokio::select! {
                _ = poll.tick() => {
                    let stamp = file_stamp(path);
                    if stamp == last_meta {
                        continue;
                    }
                    last_meta = stamp;
                    Trigger::FileChange
                }
                _ = hup.recv() => Trigger::Signal,
                _ = usr1.recv() => {
                    gateway.reopen_access_log();
                    crate::reopen_audit_trail(gateway);
                    continue;
                }
                Some(t) = rx.recv() => t,
                _ = term.recv() => break,
                _ = int.recv() => break,
            };
            if trigger == Trigger::FileChange {
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
                // Directory events also fire for unrelated files: reload only when the
                // config's content actually changed.
                let content = content_digest(path);
                if content == last_content {
                    continue;
                }
                last_content = content;
            } else {
                last_content = content_digest(path);
            }
            match reload_file(gateway, path) {
                Ok(()) => tracing::info!(trigger = ?trigger, "reloaded"),
                Err(errors) => tracing::error!(trigger = ?trigger, problems = errors.len(), "reload failed; still serving the previous configuration"),
            }
        }
        // Graceful drain: stop accepting, let in-flight requests finish within the drain
        // timeout; a second signal exits at once.
        let timeout = gateway.plan().drain_timeout;
        gateway.begin_drain();
        let deadline = tokio::time::Instant::now() + timeout;
        while gateway.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = term.recv() => second_signal(),
                _ = int.recv() => second_signal(),
            }
        }
        if gateway.open_connections() > 0 {
            tracing::warn!(open = gateway.open_connections(), "drain timeout reached; closing remaining connections");
        }
    });
}

fn second_signal() -> ! {
    tracing::warn!("second signal: exiting without waiting for in-flight requests");
    std::process::exit(130);
}

/// A digest of the config file's content (not the content: a large config would be held
/// twice), to tell a real change from an unrelated event in its directory.
fn content_digest(path: &Path) -> Option<[u8; 32]> {
    use sha2::Digest;
    std::fs::read(path)
        .ok()
        .map(|c| sha2::Sha256::digest(c).into())
}
