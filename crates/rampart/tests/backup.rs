//! `rampart backup` and `rampart restore`: the state directory in one archive, no secret
//! in it, checked whole before anything is replaced.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::process::{run_gateway, signal, wait_exit};
use support::*;

const TOKEN: &str = "adm-2e4c6a8b0d1f3e5c-7a9b1c3d5e7f9a0b";
const PEPPER: &str = "pepper-6b8d0f2a4c6e8a0c-2e4a6c8e0a2c4e6a";

fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

fn config(up: &TestUpstream, route: &str) -> String {
    format!(
        "version: 1\naccess_log: {{ enabled: false }}\nstate_dir: state\n\
         listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         admin: {{ bind: \"127.0.0.1:0\", token: {{ file: admin-token }} }}\n\
         audit: {{ signing_key: {{ file: audit-key }} }}\n\
         consumer_store: {{ kind: embedded }}\n\
         identity: {{ api_keys: {{ pepper: {{ file: pepper }} }} }}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\n\
         routes:\n  - {{ name: r, match: {{ path_prefix: {route} }}, upstream: up }}\n",
        up.addr
    )
}

fn run(args: &[&str], dir: &Path) -> (i32, String) {
    let out = rampart().args(args).current_dir(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        out.push(format!(
            "{} {}",
            e.display(),
            std::fs::metadata(&e).unwrap().len()
        ));
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_state_directory_is_archived_checked_and_restored() {
    let up = TestUpstream::echo();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("admin-token"), TOKEN).unwrap();
    std::fs::write(d.join("pepper"), PEPPER).unwrap();
    assert_eq!(run(&["audit", "keygen", "--out", "audit-key"], d).0, 0);
    let key = std::fs::read_to_string(d.join("audit-key")).unwrap();
    let path = d.join("rampart.yaml");
    std::fs::write(&path, config(&up, "/one")).unwrap();
    let mut gw = run_gateway(&path);
    std::fs::write(&path, config(&up, "/two")).unwrap();
    signal(&gw.child, "HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(gw.addr, "/two").await.status != 200 {
        assert!(std::time::Instant::now() < deadline, "no reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // While it runs: everything but the store it holds, and saying so.
    let (code, out) = run(
        &["backup", "--config", "rampart.yaml", "--out", "live.rbk"],
        d,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("not included: consumers.redb: held by a running gateway"),
        "{out}"
    );
    signal(&gw.child, "TERM");
    assert!(wait_exit(&mut gw.child, Duration::from_secs(10)).success());

    let (code, out) = run(
        &["backup", "--config", "rampart.yaml", "--out", "full.rbk"],
        d,
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("not included"), "{out}");
    let archive = std::fs::read(d.join("full.rbk")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("full.rbk"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // References only: no secret value is in it.
    for secret in [TOKEN, PEPPER, key.trim()] {
        assert!(!archive
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()));
    }
    let manifest =
        String::from_utf8_lossy(&archive[..archive.iter().position(|b| *b == b'\n').unwrap()])
            .into_owned();
    for f in [
        "history/index.jsonl",
        "audit.jsonl",
        "audit.jsonl.head",
        "consumers.redb",
    ] {
        assert!(
            manifest.contains(&format!("\"path\":\"{f}\"")),
            "{f}: {manifest}"
        );
    }

    // Damaged, truncated or escaping archives change nothing.
    let before = listing(&d.join("state"));
    let mut damaged = archive.clone();
    let last = damaged.len() - 10;
    damaged[last] ^= 0x55;
    std::fs::write(d.join("damaged.rbk"), &damaged).unwrap();
    std::fs::write(d.join("short.rbk"), &archive[..archive.len() - 100]).unwrap();
    let escaping = String::from_utf8_lossy(&archive).replacen(
        "\"path\":\"audit.jsonl\"",
        "\"path\":\"../x.jsonl\"",
        1,
    );
    std::fs::write(d.join("escaping.rbk"), escaping.as_bytes()).unwrap();
    for (file, why) in [
        ("damaged.rbk", "does not match the manifest's hash"),
        ("short.rbk", "truncated archive"),
        ("escaping.rbk", "only paths inside the state directory"),
    ] {
        let (code, out) = run(&["restore", file, "--config", "rampart.yaml"], d);
        assert_eq!(code, 1, "{file}: {out}");
        assert!(
            out.contains(why) && out.contains("nothing was replaced"),
            "{file}: {out}"
        );
        assert_eq!(listing(&d.join("state")), before, "{file}");
    }
    assert!(!d.join("x.jsonl").exists());

    // A lost state directory comes back whole: the old one is kept aside.
    std::fs::remove_dir_all(d.join("state/history")).unwrap();
    let (code, out) = run(&["restore", "full.rbk", "--config", "rampart.yaml"], d);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("state.before-restore-"), "{out}");
    assert_eq!(listing(&d.join("state")), before);
    let (code, out) = run(&["history", "--state-dir", "state"], d);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(" reload ") || l.contains(" load "))
            .count(),
        2,
        "{out}"
    );
    // And the gateway starts on it, its audit chain going on from the restored head.
    let mut gw = run_gateway(&path);
    assert_eq!(get(gw.addr, "/two").await.status, 200);
    signal(&gw.child, "TERM");
    assert!(wait_exit(&mut gw.child, Duration::from_secs(10)).success());
    let (code, out) = run(&["audit", "verify", "state/audit.jsonl"], d);
    assert_eq!(code, 0, "{out}");
}
