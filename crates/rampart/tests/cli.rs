//! The `rampart` binary: `validate` output for real mistakes, the shipped examples, and the
//! demo answering its own printed curl commands.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::certs::{write_ca, TestCa};

fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

fn validate(yaml: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = rampart()
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const MANY_MISTAKES: &str = r#"
version: 2
listeners:
  - { name: public, bind: "127.0.0.1:0" }
  - { name: public, bind: "127.0.0.1:0" }
limits: { max_headers: 0 }
upstreams:
  api:
    targets: [{ url: "ftp://10.0.0.1" }, { url: "http://10.0.0.2", weight: 0 }]
    balance: consistent_hash
    health_check: { path: healthz }
    retries: { on_status: [404] }
routes:
  - { name: a, match: { path_prefix: / }, upstream: billing }
  - { name: b, match: { path: /x, path_prefix: /x }, upstream: api }
  - { name: c, match: { path: /c, methods: [get], hosts: [API.example.com] }, upstream: api }
  - { name: c, match: { path: no-slash }, upstream: api }
"#;

#[test]
fn validate_lists_every_mistake_with_its_yaml_path() {
    let (ok, _, err) = validate(MANY_MISTAKES);
    assert!(!ok);
    let expected = [
        "version: unsupported version 2; this Rampart reads version 1",
        "listeners[1].name: duplicate listener name \"public\" (also listeners[0])",
        "limits.max_headers: must be between 1 and 1000, got 0",
        "upstreams.api.targets[0].url: \"ftp://10.0.0.1\" must start with http:// or https://",
        "upstreams.api.targets[1].weight: must be between 1 and 1000, got 0",
        "upstreams.api.hash_on: is required with balance: consistent_hash",
        "upstreams.api.health_check.path: must start with '/', got \"healthz\"",
        "upstreams.api.retries.on_status[0]: only 5xx statuses can be retried, got 404",
        "routes[0].upstream: unknown upstream \"billing\" (defined: api)",
        "routes[1].match: `path` and `path_prefix` are exclusive; use one",
        "routes[2].match.hosts[0]: \"API.example.com\" must be lowercase",
        "routes[2].match.methods[0]: unknown method \"get\"",
        "routes[3].name: duplicate route name \"c\" (also routes[2])",
        "routes[3].match.path: must start with '/', got \"no-slash\"",
    ];
    for e in expected {
        assert!(
            err.lines().any(|l| l.starts_with(e)),
            "missing {e:?} in:\n{err}"
        );
    }
    assert!(err.lines().count() > expected.len(), "{err}");
}

#[test]
fn validate_reports_unknown_keys_and_bad_values_with_paths() {
    let cases = [
        ("version: 1\nlisteners: [{ name: a, bind: \"127.0.0.1:0\", tsl: {} }]\n", "listeners[0].tsl: unknown field `tsl`, expected one of name, bind, tls"),
        ("version: 1\nlisteners: [{ name: a, bind: \"nowhere\" }]\n", "listeners[0].bind: "),
        ("version: 1\nlisteners: [{ name: a, bind: \"127.0.0.1:0\" }]\nlimits: { header_timeout: 10 }\n", "limits.header_timeout: "),
        ("version: 1\nlisteners: [{ name: a, bind: \"127.0.0.1:0\" }]\nlimits: { max_body_bytes: 1ZB }\n", "limits.max_body_bytes: "),
        ("version: 1\nlisteners: [{ name: a, bind: \"127.0.0.1:0\" }]\ntrusted_proxies: [10.0.0.0/33]\n", "trusted_proxies[0]: "),
        ("version: 1\nlisteners: [{ name: a, bind: \"127.0.0.1:0\" }]\nupstreams: { u: { targets: [{ url: \"http://x\" }], balance: random } }\n", "upstreams.u.balance: "),
    ];
    for (yaml, want) in cases {
        let (ok, _, err) = validate(yaml);
        assert!(!ok, "{yaml}");
        assert!(
            err.lines().any(|l| l.starts_with(want)),
            "want {want:?} in:\n{err}"
        );
    }
}

#[test]
fn validate_checks_files_the_config_references() {
    let (ok, _, err) = validate(
        "version: 1\nlisteners:\n  - name: tls\n    bind: \"127.0.0.1:0\"\n    tls: { certificates: [{ cert_file: nope.pem, key_file: nope.key }] }\n",
    );
    assert!(!ok);
    assert!(
        err.contains("listeners[0].tls.certificates[0].cert_file: cannot read certificates from"),
        "{err}"
    );
}

#[test]
fn validate_accepts_a_good_file() {
    let (ok, out, err) = validate(
        "version: 1\nlisteners: [{ name: a, bind: \"127.0.0.1:0\" }]\nupstreams: { u: { targets: [{ url: \"http://127.0.0.1:9\" }] } }\nroutes: [{ name: r, match: { path_prefix: / }, upstream: u }]\n",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("OK (1 listeners, 1 routes, 1 upstreams)"),
        "{out}"
    );
}

#[test]
fn shipped_examples_validate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let out = rampart()
        .args(["validate", "--config"])
        .arg(root.join("minimal.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The TLS example references certificates an operator provides; generate stand-ins
    // next to a copy of it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("tls.yaml"), dir.path().join("tls.yaml")).unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let ca = TestCa::new("Example CA");
    ca.leaf("api.example.com", &["api.example.com"])
        .write(&certs, "api");
    write_ca(&ca, &certs, "partners-ca");
    write_ca(&ca, &certs, "internal-ca");
    let out = rampart()
        .args(["validate", "--config"])
        .arg(dir.path().join("tls.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_answers_its_own_printed_curl_commands() {
    let mut child = rampart()
        .args(["demo", "--http-port", "0", "--https-port", "0"])
        .env("RAMPART_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut commands = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("curl ") {
            commands.push(line.clone());
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    assert_eq!(commands.len(), 7, "{commands:?}");
    let outputs: Vec<String> = commands
        .iter()
        .map(|c| {
            let out = Command::new("sh").arg("-c").arg(c).output().unwrap();
            assert!(
                out.status.success(),
                "{c} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    for (cmd, out) in commands.iter().zip(&outputs).take(4) {
        assert!(
            out.contains("\"service\":\"rampart-demo-echo\""),
            "{cmd}\n{out}"
        );
    }
    assert!(outputs[0].contains("\"path\":\"/hello\""), "{}", outputs[0]);
    assert!(outputs[1].contains("widget"), "{}", outputs[1]);
    assert!(
        outputs[4].contains("\"code\":\"route.not_found\""),
        "{}",
        outputs[4]
    );
    assert!(
        outputs[5].contains("\"code\":\"request.bad_path\""),
        "{}",
        outputs[5]
    );
    assert!(
        outputs[2].contains("\"x-consumer-id\":\"demo-partner\""),
        "{}",
        outputs[2]
    );
    assert!(
        outputs[6].contains("\"code\":\"auth.required\""),
        "{}",
        outputs[6]
    );
    // Ctrl-C stops it cleanly.
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "demo did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
