//! The tamper-evident audit trail of a running gateway: admin calls, config loads and
//! reloads, process start and stop, chained and signed, checked by `rampart audit
//! verify`; a change the trail cannot record is refused.

mod support;

use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use support::*;

const TOKEN: &str = "adm-3b7d1f5a9c2e4608-7e1a3c5b9d0f2468";

fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

fn keygen(dir: &std::path::Path) -> String {
    support::process::audit_keygen(dir)
}

fn verify(dir: &std::path::Path, public: &str) -> (i32, String) {
    let out = rampart()
        .args(["audit", "verify"])
        .arg(dir.join("audit.jsonl"))
        .args(["--public-key", public, "--checkpoints"])
        .arg(dir.join("checkpoints.jsonl"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn config(up: &TestUpstream, route: &str) -> String {
    format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         admin: {{ bind: \"127.0.0.1:0\", token: {{ file: admin-token }} }}\n\
         audit: {{ path: audit.jsonl, signing_key: {{ file: audit-key }}, checkpoint_copy: checkpoints.jsonl, checkpoint_every: 4 }}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\n\
         routes:\n  - {{ name: r, match: {{ path_prefix: {route} }}, upstream: up }}\n",
        up.addr
    )
}

/// A directory with the admin token, a signing key and `config(up, "/one")` in
/// `rampart.yaml`: (the directory, the public key, the config's path).
fn setup(up: &TestUpstream) -> (tempfile::TempDir, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), TOKEN).unwrap();
    let public = keygen(dir.path());
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, config(up, "/one")).unwrap();
    (dir, public, path)
}

#[tokio::test]
async fn admin_calls_and_reloads_are_chained_signed_and_verified() {
    let up = TestUpstream::echo();
    let (dir, public, path) = setup(&up);
    let gateway = Arc::new(rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap());
    rampart::record_config(&gateway, "load", Ok(()));
    let admin = rampart::admin::start(gateway.clone(), Some(path.clone()))
        .unwrap()
        .unwrap();
    let a = admin.addr();
    assert_eq!(
        admin_json(a, TOKEN, "GET", "/config", None).await.status,
        200
    );
    assert_eq!(
        admin_json(a, "wrong", "GET", "/config", None).await.status,
        401
    );
    std::fs::write(&path, config(&up, "/two")).unwrap();
    assert_eq!(
        admin_json(a, TOKEN, "POST", "/admin/reload", None)
            .await
            .status,
        200
    );
    std::fs::write(
        &path,
        config(&up, "/three").replace("upstream: up", "upstream: nope"),
    )
    .unwrap();
    assert_eq!(
        admin_json(a, TOKEN, "POST", "/admin/reload", None)
            .await
            .status,
        422
    );
    let m = admin_json(a, TOKEN, "GET", "/metrics", None).await.text();
    assert!(m.contains("rampart_audit_failing 0"), "{m}");
    drop(admin);
    Arc::try_unwrap(gateway).ok().unwrap().shutdown();

    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["action"].as_str().or(e["path"].as_str()).unwrap_or(""),
            )
        })
        .collect();
    for want in [
        ("process", "start"),
        ("config", "load"),
        ("admin", "/config"),
        ("config", "reload"),
        ("admin", "/admin/reload"),
        ("process", "stop"),
    ] {
        assert!(kinds.contains(&want), "{want:?} missing in {kinds:?}");
    }
    let refused = entries.iter().find(|e| e["status"] == 401).unwrap();
    assert_eq!(refused["actor"], "unauthenticated");
    let failed = entries
        .iter()
        .find(|e| e["kind"] == "config" && e["result"] == "refused")
        .unwrap();
    assert_eq!(failed["problems"], 1);
    // A reload says what changed, by place, without values.
    let reload = entries
        .iter()
        .find(|e| e["kind"] == "config" && e["action"] == "reload" && e["result"] == "ok")
        .unwrap();
    assert_eq!(
        reload["changes"],
        serde_json::json!(["routes.r.match: changed"]),
        "{reload}"
    );
    assert!(!text.contains(TOKEN), "no credential in the trail");
    assert_eq!(entries.last().unwrap()["kind"], "checkpoint");

    let (code, out) = verify(dir.path(), &public);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("OK:") && out.contains("signatures checked"),
        "{out}"
    );

    // One edited entry: named by its line.
    let edited = text.replacen("\"status\":401", "\"status\":200", 1);
    std::fs::write(dir.path().join("audit.jsonl"), &edited).unwrap();
    let (code, out) = verify(dir.path(), &public);
    assert_eq!(code, 1);
    assert!(out.contains("BAD") && out.contains("edited"), "{out}");
    // A cut tail: the checkpoint copy shows it.
    let cut: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("audit.jsonl"), &cut).unwrap();
    let (code, out) = verify(dir.path(), &public);
    assert_eq!(code, 1);
    assert!(out.contains("cut"), "{out}");
}

#[tokio::test]
async fn a_trail_that_cannot_be_written_stops_admin_changes() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), TOKEN).unwrap();
    keygen(dir.path());
    let path = dir.path().join("rampart.yaml");
    let yaml = config(&up, "/one")
        .replace("path: audit.jsonl", "path: /dev/full")
        .replace(", checkpoint_copy: checkpoints.jsonl", "");
    std::fs::write(&path, &yaml).unwrap();
    let gateway = Arc::new(rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap());
    let admin = rampart::admin::start(gateway.clone(), Some(path.clone()))
        .unwrap()
        .unwrap();
    let a = admin.addr();
    let r = admin_json(a, TOKEN, "POST", "/admin/reload", None).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("audit trail"));
    // Reading goes on; the failure shows in the metrics.
    let m = admin_json(a, TOKEN, "GET", "/metrics", None).await;
    assert_eq!(m.status, 200);
    assert!(m.text().contains("rampart_audit_failing 1"), "{}", m.text());
}

#[test]
fn a_bad_audit_setting_is_a_precise_config_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("audit-key"), "not base64 at all!").unwrap();
    let yaml = "version: 1\nlisteners: [{ name: public, bind: \"127.0.0.1:0\" }]\n\
                audit: { path: audit.jsonl, signing_key: { file: audit-key } }\n";
    let e = rampart::compile_str(yaml, dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("audit.signing_key") && e.contains("base64"),
        "{e}"
    );
    let yaml = "version: 1\nlisteners: [{ name: public, bind: \"127.0.0.1:0\" }]\n\
                audit: { signing_key: { env: NOPE_NOT_SET }, checkpoint_every: 0 }\n";
    let e = rampart::compile_str(yaml, dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("audit.path") && e.contains("audit.checkpoint_every"),
        "{e}"
    );
}

#[tokio::test]
async fn validate_checks_the_settings_without_touching_a_running_gateways_files() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), TOKEN).unwrap();
    std::fs::write(
        dir.path().join("pepper"),
        "pepper-5e7a9c1b3d5f7a9c-1e3b5d7f9a1c3e5b",
    )
    .unwrap();
    keygen(dir.path());
    let path = dir.path().join("rampart.yaml");
    let yaml = config(&up, "/one")
        + "state_dir: state\nconsumer_store: { kind: embedded }\nidentity: { api_keys: { pepper: { file: pepper } } }\n";
    std::fs::write(&path, &yaml).unwrap();
    let gateway = rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap();
    let before = std::fs::read(dir.path().join("audit.jsonl")).unwrap();
    let out = rampart()
        .arg("validate")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("audit.jsonl")).unwrap(),
        before
    );
    // A bad key is still caught.
    std::fs::write(dir.path().join("audit-key"), "AAAA").unwrap();
    let out = rampart()
        .arg("validate")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit.signing_key"));
    gateway.shutdown();
}

#[tokio::test]
async fn logrotate_and_sigusr1_continue_the_chain_in_a_new_file() {
    use support::process::{run_gateway, signal, wait_exit};
    let up = TestUpstream::echo();
    let (dir, public, path) = setup(&up);
    let mut gw = run_gateway(&path);
    let (trail, old) = (
        dir.path().join("audit.jsonl"),
        dir.path().join("audit.jsonl.1"),
    );
    std::fs::rename(&trail, &old).unwrap();
    signal(&gw.child, "USR1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&trail).is_ok_and(|t| t.contains("\"kind\":\"rotate\"")) {
        assert!(std::time::Instant::now() < deadline, "no new trail file");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    signal(&gw.child, "TERM");
    assert!(wait_exit(&mut gw.child, std::time::Duration::from_secs(10)).success());
    let out = rampart()
        .args(["audit", "verify"])
        .arg(&old)
        .arg(&trail)
        .args(["--public-key", &public, "--checkpoints"])
        .arg(dir.path().join("checkpoints.jsonl"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    // The old file ended signed, the new one holds the stop.
    assert!(std::fs::read_to_string(&old)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .contains("checkpoint"));
    assert!(std::fs::read_to_string(&trail)
        .unwrap()
        .contains("\"action\":\"stop\""));
    // The new file alone is missing its beginning.
    let out = rampart()
        .args(["audit", "verify"])
        .arg(&trail)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--continues"));
}

#[tokio::test]
async fn a_secret_rotated_between_loads_is_audited_by_reference_and_fingerprint() {
    let up = TestUpstream::echo();
    let (dir, _, path) = setup(&up);
    let gateway = rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap();
    rampart::record_config(&gateway, "load", Ok(()));
    // Unchanged: a reload observes nothing.
    rampart::reload::reload_file(&gateway, &path).unwrap();
    let new = "adm-0f1e2d3c4b5a6978-8796a5b4c3d2e1f0";
    std::fs::write(dir.path().join("admin-token"), new).unwrap();
    rampart::reload::reload_file(&gateway, &path).unwrap();
    gateway.shutdown();
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let rotations: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "secret")
        .collect();
    assert_eq!(rotations.len(), 1, "{text}");
    assert_eq!(rotations[0]["action"], "rotated");
    assert_eq!(rotations[0]["reference"], "file:admin-token");
    assert_eq!(
        rotations[0]["fingerprint"],
        rampart::secret_fingerprint(new).as_str()
    );
    assert!(!text.contains(new) && !text.contains(TOKEN));
}
