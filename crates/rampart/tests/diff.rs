//! `rampart diff` against a running gateway's admin API: no drift for an equivalent file
//! (reordered, defaults spelled out), and each change named otherwise.

mod support;

use std::process::Command;
use std::sync::Arc;

use support::*;

const TOKEN: &str = "diff-token-5be1c0-93ab07d1e4c2f6a8b5";

fn running_config(a: &TestUpstream, b: &TestUpstream) -> String {
    format!(
        r#"version: 1
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
admin: {{ bind: "127.0.0.1:0", token: {{ file: token }} }}
upstreams:
  up:
    targets: [{{ url: "http://{a}" }}, {{ url: "http://{b}", weight: 2 }}]
routes:
  - {{ name: r1, match: {{ hosts: [a.example.com, b.example.com], path_prefix: /one, methods: [GET, POST] }}, upstream: up }}
  - {{ name: r2, match: {{ path_prefix: /two }}, upstream: up }}
"#,
        a = a.addr,
        b = b.addr
    )
}

fn diff(file: &std::path::Path, admin: std::net::SocketAddr, token: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(["diff", "--config"])
        .arg(file)
        .args(["--admin", &format!("http://{admin}")]);
    cmd.env_remove("RAMPART_ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("RAMPART_ADMIN_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn reports_no_drift_for_an_equivalent_file_and_names_each_change() {
    let (a, b) = (TestUpstream::echo(), TestUpstream::echo());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, running_config(&a, &b)).unwrap();
    let gateway = Arc::new(rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap());
    let admin = rampart::admin::start(gateway.clone(), Some(path.clone()))
        .unwrap()
        .unwrap();

    // Same meaning: routes and targets reordered, sets reordered, defaults spelled out.
    let equivalent = format!(
        r#"version: 1
access_log: {{ enabled: false, output: stdout }}
limits: {{ max_header_bytes: 16KiB, body_timeout: 30s }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
admin: {{ bind: "127.0.0.1:0", token: {{ file: token }} }}
upstreams:
  up:
    balance: round_robin
    targets: [{{ url: "http://{b}", weight: 2 }}, {{ url: "http://{a}", weight: 1 }}]
routes:
  - {{ name: r2, match: {{ path_prefix: /two }}, upstream: up }}
  - {{ name: r1, match: {{ hosts: [b.example.com, a.example.com], path_prefix: /one, methods: [POST, GET] }}, upstream: up }}
"#,
        a = a.addr,
        b = b.addr
    );
    let same = dir.path().join("same.yaml");
    std::fs::write(&same, equivalent).unwrap();
    let (code, out) = diff(&same, admin.addr(), Some(TOKEN));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no drift"), "{out}");

    let changed = running_config(&a, &b)
        .replace("path_prefix: /two", "path_prefix: /deux")
        .replace("token: { file: token }", "token: { env: OTHER_TOKEN }")
        + "  - { name: r3, match: { path: /three }, upstream: extra }\n";
    let changed = changed.replace(
        "routes:",
        &format!(
            "  extra: {{ targets: [{{ url: \"http://{}\" }}] }}\nroutes:",
            a.addr
        ),
    );
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, changed).unwrap();
    let (code, out) = diff(&other, admin.addr(), Some(TOKEN));
    assert_eq!(code, 1, "{out}");
    for want in [
        "routes.r2.match.path_prefix: \"/two\" -> \"/deux\"",
        "routes.r3: added",
        "upstreams.extra: added",
        "admin.token.env: added",
        "admin.token.file: removed",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains(TOKEN), "secret value printed: {out}");

    // Same reference, different secret value where this file is read: a rotated secret
    // shows as a changed fingerprint, never as a value.
    let rotated_dir = dir.path().join("rotated");
    std::fs::create_dir(&rotated_dir).unwrap();
    std::fs::write(
        rotated_dir.join("token"),
        "a-rotated-secret-value-7d2f91c3e8b4a605",
    )
    .unwrap();
    let rotated = rotated_dir.join("rampart.yaml");
    std::fs::copy(&same, &rotated).unwrap();
    let (code, out) = diff(&rotated, admin.addr(), Some(TOKEN));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("admin.token.fingerprint: "), "{out}");
    assert!(
        !out.contains("a-rotated-secret-value-7d2f91c3e8b4a605") && !out.contains(TOKEN),
        "{out}"
    );

    let (code, out) = diff(&same, admin.addr(), None);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("401"), "{out}");
}
