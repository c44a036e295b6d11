//! Config history and recovery: every config that goes live is kept in `state_dir`;
//! `rampart history` lists them, `POST /admin/rollback` and `rampart rollback` make one
//! live again (audited), and `rampart run --fallback-to-last-good` starts the last good
//! version when the file is broken.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::process::{run_gateway, run_gateway_with, signal, wait_exit};
use support::*;

const TOKEN: &str = "adm-5c1e9a7b3d2f4680-1b3d5f7a9c0e2468";

fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

/// A config with one route at `route`; `extra` is appended to the route's map.
fn config(up: &TestUpstream, route: &str, extra: &str) -> String {
    format!(
        "version: 1\naccess_log: {{ enabled: false }}\nstate_dir: state\n\
         listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         admin: {{ bind: \"127.0.0.1:0\", token: {{ file: admin-token }} }}\n\
         audit: {{ signing_key: {{ file: audit-key }} }}\n\
         {lists}\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\n\
         routes:\n  - {{ name: r, match: {{ path_prefix: {route} }}, upstream: up{extra} }}\n",
        up.addr,
        lists = if extra.is_empty() {
            ""
        } else {
            "ip_lists: { blocked: { files: [blocked.txt] } }\n"
        },
    )
}

fn setup(dir: &std::path::Path) {
    std::fs::write(dir.join("admin-token"), TOKEN).unwrap();
    std::fs::write(dir.join("blocked.txt"), "192.0.2.1\n").unwrap();
    support::process::audit_keygen(dir);
}

fn listener(gateway: &rampart::Gateway) -> std::net::SocketAddr {
    gateway.addr("public").unwrap()
}

#[tokio::test]
async fn versions_are_kept_and_a_rollback_makes_one_live_again() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, config(&up, "/one", "")).unwrap();
    let start = rampart::history::start(&path, false, None).unwrap();
    assert_eq!(start.action, "load");
    let gateway = Arc::new(rampart::Gateway::start(start.plan).unwrap());
    rampart::history::went_live(&gateway, &start.text, start.action);
    let admin = rampart::admin::start(gateway.clone(), Some(path.clone()))
        .unwrap()
        .unwrap();
    let (a, g) = (admin.addr(), listener(&gateway));

    // v2 and v3 go live by reload; v3's route denies a list read from a file.
    std::fs::write(&path, config(&up, "/two", "")).unwrap();
    let r = admin_json(a, TOKEN, "POST", "/admin/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    std::fs::write(
        &path,
        config(&up, "/three", ", ip_rules: { deny: [blocked] }"),
    )
    .unwrap();
    assert_eq!(
        admin_json(a, TOKEN, "POST", "/admin/reload", None)
            .await
            .status,
        200
    );
    // A broken file is refused and is not kept.
    std::fs::write(
        &path,
        config(&up, "/four", "").replace("upstream: up", "upstream: nope"),
    )
    .unwrap();
    assert_eq!(
        admin_json(a, TOKEN, "POST", "/admin/reload", None)
            .await
            .status,
        422
    );
    assert_eq!(get(g, "/three").await.status, 200);

    let h = admin_json(a, TOKEN, "GET", "/admin/history", None)
        .await
        .json();
    let versions = h["versions"].as_array().unwrap();
    let actions: Vec<&str> = versions
        .iter()
        .map(|v| v["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["reload", "reload", "load"]);
    let id = |i: usize| versions[i]["id"].as_str().unwrap().to_string();
    let (v1, v3) = (id(2), id(0));
    assert_eq!(h["current"], v3);
    assert_eq!(versions[2]["source"], path.to_str().unwrap());
    // Kept by content, readable by the gateway's user only.
    let kept = dir.path().join("state/history").join(format!("{v1}.yaml"));
    assert_eq!(
        std::fs::read_to_string(&kept).unwrap(),
        config(&up, "/one", "")
    );
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Roll back to v1 by a prefix of its id: its route is live again, the file untouched.
    let r = admin_json(
        a,
        TOKEN,
        "POST",
        "/admin/rollback",
        Some(&json!({"version": &v1[..8]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], v1);
    assert_eq!(get(g, "/one").await.status, 200);
    assert_eq!(get(g, "/three").await.status, 404);
    let c = admin_json(a, TOKEN, "GET", "/config", None).await.json();
    assert_eq!(c["version"], v1);

    // Refusals, each with the running config unchanged.
    for (body, status) in [
        (json!({"version": "zz"}), 400),
        (json!({"version": "abcdef0123"}), 404),
        (json!({"nothing": 1}), 422),
    ] {
        let r = admin_json(a, TOKEN, "POST", "/admin/rollback", Some(&body)).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
    }
    // v3 reads a file that is gone now: it no longer compiles, and says why.
    std::fs::remove_file(dir.path().join("blocked.txt")).unwrap();
    let r = admin_json(
        a,
        TOKEN,
        "POST",
        "/admin/rollback",
        Some(&json!({"version": v3})),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("blocked.txt"), "{}", r.text());
    assert_eq!(get(g, "/one").await.status, 200);

    // The command line: the history table marks the running version; a rollback by it.
    let out = rampart()
        .args(["history", "--admin", &format!("http://{a}")])
        .env("RAMPART_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{table}");
    let first = table.lines().nth(1).unwrap();
    assert!(first.starts_with(&format!("{}*", &v1[..12])), "{table}");
    assert!(first.contains("rollback"), "{table}");
    let v2 = id(1);
    let out = rampart()
        .args(["rollback", &v2[..10], "--admin", &format!("http://{a}")])
        .env("RAMPART_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(g, "/two").await.status, 200);
    let out = rampart()
        .args(["rollback", "ffffff", "--admin", &format!("http://{a}")])
        .env("RAMPART_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));

    drop(admin);
    Arc::try_unwrap(gateway).ok().unwrap().shutdown();
    // Every rollback is in the audit trail: the version made live, or why not.
    let trail = std::fs::read_to_string(dir.path().join("state/audit.jsonl")).unwrap();
    let rollbacks: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "config" && e["action"] == "rollback")
        .collect();
    assert_eq!(rollbacks.len(), 3, "{trail}");
    assert_eq!(rollbacks[0]["version"], v1);
    assert_eq!(rollbacks[1]["result"], "refused");
    assert_eq!(rollbacks[2]["version"], v2);
}

#[tokio::test]
async fn a_broken_file_starts_the_last_good_version_only_when_asked() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, config(&up, "/good", "")).unwrap();
    let mut gw = run_gateway(&path);
    assert_eq!(get(gw.addr, "/good").await.status, 200);
    signal(&gw.child, "TERM");
    assert!(wait_exit(&mut gw.child, Duration::from_secs(10)).success());

    // A broken file: refused without the flag, naming the problem.
    std::fs::write(
        &path,
        config(&up, "/bad", "").replace("upstream: up", "upstream: nope"),
    )
    .unwrap();
    let out = rampart()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));

    // With it, the last good version serves, and says so loudly.
    let mut gw = run_gateway_with(&path, &["--fallback-to-last-good"]);
    assert!(
        gw.early
            .iter()
            .any(|l| l.contains("STARTED FROM THE LAST GOOD CONFIG VERSION")),
        "{:?}",
        gw.early
    );
    assert!(
        gw.early.iter().any(|l| l.contains("nope")),
        "{:?}",
        gw.early
    );
    assert_eq!(get(gw.addr, "/good").await.status, 200);
    assert_eq!(get(gw.addr, "/bad").await.status, 404);
    signal(&gw.child, "TERM");
    assert!(wait_exit(&mut gw.child, Duration::from_secs(10)).success());

    // Not YAML at all: the flag needs to be told where the history is.
    std::fs::write(&path, "routes: [ {{{\n").unwrap();
    let out = rampart()
        .args(["run", "--fallback-to-last-good", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --state-dir"));
    let state = dir.path().join("state");
    let mut gw = run_gateway_with(
        &path,
        &[
            "--fallback-to-last-good",
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(get(gw.addr, "/good").await.status, 200);
    signal(&gw.child, "TERM");
    assert!(wait_exit(&mut gw.child, Duration::from_secs(10)).success());

    // The history, read offline: one version, gone live three times.
    let out = rampart()
        .args(["history", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{table}");
    let actions: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(actions, ["fallback", "fallback", "load"], "{table}");
}
