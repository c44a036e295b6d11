//! The `rampart` binary: `validate` output for real mistakes, the shipped examples, and the
//! demo answering its own printed curl commands.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{tls_connect, TlsClient};

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
fn validate_reports_unknown_keys_and_semantic_errors_in_one_run() {
    let yaml = "version: 1\nlisteners: [{ name: a, bind: \"127.0.0.1:0\" }]\nupstreams: { u: { targets: [{ url: \"http://127.0.0.1:9\" }] } }\nroutes:\n  - { name: one, match: { path_prefix: /a }, upstream: u }\n  - { name: two, match: { path_prefix: /b }, upstream: missing, retries: 3 }\n";
    let (ok, _, err) = validate(yaml);
    assert!(!ok);
    assert!(err.contains("2 problem(s)"), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("routes[1].retries: unknown field")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("routes[1].upstream") && l.contains("missing")),
        "{err}"
    );
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
fn every_shipped_example_validates_with_its_documented_setup() {
    // Each example is checked as a new user would: copied as shipped, with the setup
    // command its header documents (`rampart certs dev` for certificate paths) run first.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(path.file_name().unwrap());
        std::fs::write(&copy, &text).unwrap();
        if text.contains("certs/") {
            assert!(
                text.contains("rampart certs dev --out examples/certs"),
                "{} uses certificates but does not say how to make them",
                path.display()
            );
            let out = rampart()
                .args(["certs", "dev", "--host", "api.example.com", "--out"])
                .arg(dir.path().join("certs"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = rampart()
            .args(["validate", "--config"])
            .arg(&copy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} examples found");
}

#[test]
fn certs_dev_writes_a_ca_and_certificates_that_serve_tls() {
    let dir = tempfile::tempdir().unwrap();
    let out = rampart()
        .args(["certs", "dev", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "dev-ca.pem",
        "dev-ca.key",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("server.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
    // The server certificate chains to the CA (checked by a real TLS handshake).
    let yaml = "version: 1\nlisteners:\n  - name: tls\n    bind: \"127.0.0.1:0\"\n    tls: { certificates: [{ cert_file: server.pem, key_file: server.key }] }\nupstreams: { up: { targets: [{ url: \"http://127.0.0.1:9\" }] } }\n";
    let gw = rampart::start(yaml, dir.path()).unwrap();
    let ca = std::fs::read_to_string(dir.path().join("dev-ca.pem")).unwrap();
    let addr = gw.addr("tls").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = tls_connect(addr, "localhost", &TlsClient::trusting(&ca))
            .await
            .expect("handshake with the dev CA");
        assert!(conn.version().is_some());
    });
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
    assert_eq!(commands.len(), 26, "{commands:?}");
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
    let forged: serde_json::Value = serde_json::from_str(&outputs[7]).unwrap();
    let seen = forged["headers"].as_object().unwrap();
    assert_eq!(seen["x-consumer-id"], "demo-partner", "{}", outputs[7]);
    assert!(
        !seen.contains_key("x_consumer_id") && !seen.contains_key("x-original-url"),
        "{}",
        outputs[7]
    );
    assert!(
        outputs[8].contains("\"code\":\"request.path_parameters\""),
        "{}",
        outputs[8]
    );
    assert!(
        outputs[10].contains("\"code\":\"json.duplicate_name\""),
        "{}",
        outputs[10]
    );
    assert!(
        outputs[11].contains("\"service\":\"rampart-demo-echo\""),
        "{}",
        outputs[11]
    );
    let refused: serde_json::Value = serde_json::from_str(&outputs[12]).unwrap();
    assert_eq!(refused["code"], "request.invalid", "{}", outputs[12]);
    let errors = refused["errors"].as_array().unwrap();
    assert!(errors.len() >= 3, "{}", outputs[12]);
    assert!(!outputs[12].contains("w1"), "{}", outputs[12]);
    assert!(
        outputs[13].contains("\"service\":\"rampart-demo-echo\""),
        "{}",
        outputs[13]
    );
    // Masked: the echo sent the card number and e-mail back, the client sees neither.
    assert!(
        outputs[15].contains("**** **** **** 1111"),
        "{}",
        outputs[15]
    );
    assert!(outputs[15].contains("[email]"), "{}", outputs[15]);
    assert!(
        !outputs[15].contains("4111 1111") && !outputs[15].contains("jane@"),
        "{}",
        outputs[15]
    );
    // The legacy wrapper: what the echo received, and no header echoed back.
    let legacy = &outputs[17];
    assert!(legacy.contains("\"path\":\"/legacy/getUser\""), "{legacy}");
    assert!(legacy.contains("\"query\":\"uid=42\""), "{legacy}");
    assert!(
        legacy.contains("<GetUser><name>Ann</name><id>42</id></GetUser>"),
        "{legacy}"
    );
    assert!(!legacy.contains("\"headers\""), "{legacy}");
    // The consumer store: signed up, keyed and served at once; listed without the key;
    // deleted with its key.
    assert!(
        outputs[18].contains("\"x-consumer-id\":\"demo-signup\""),
        "{}",
        outputs[18]
    );
    assert!(
        outputs[19].contains("\"keys\"") && !outputs[19].contains("rpk_"),
        "{}",
        outputs[19]
    );
    assert!(outputs[20].contains("\"revoked_keys\""), "{}", outputs[20]);
    // The posture of the running config; the audit trail counting what happened.
    let posture: serde_json::Value = serde_json::from_str(&outputs[21]).unwrap();
    let certs: Vec<&serde_json::Value> = posture["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "certificate.expiry")
        .collect();
    assert!(
        !certs.is_empty() && certs.iter().all(|f| f["status"] == "pass"),
        "{posture:#}"
    );
    assert!(
        outputs[22].contains("rampart_audit_entries_total")
            && outputs[22].contains("rampart_audit_failing 0"),
        "{}",
        outputs[22]
    );
    // Tracing: the caller's trace goes on to the upstream, under the gateway's span.
    let traced: serde_json::Value = serde_json::from_str(&outputs[23]).unwrap();
    let tp = traced["headers"]["traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
            && !tp.contains("00f067aa0ba902b7")
            && tp.ends_with("-01"),
        "{}",
        outputs[23]
    );
    // Anomaly detection has been learning the callers above.
    let tracked = outputs[24]
        .lines()
        .find_map(|l| l.strip_prefix("rampart_anomaly_tracked "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(tracked >= 3, "{}", outputs[24]);
    // Signed in with the printed token, the dashboard's overview page.
    assert_eq!(
        outputs[25].trim(),
        "<title>Overview · Rampart",
        "{}",
        outputs[25]
    );
    let preflight = outputs[16].to_ascii_lowercase();
    assert!(preflight.starts_with("http/1.1 204"), "{}", outputs[16]);
    assert!(
        preflight.contains("access-control-allow-origin: https://app.example.com"),
        "{}",
        outputs[16]
    );
    assert!(
        outputs[14].contains("\"code\":\"authz.denied\""),
        "{}",
        outputs[14]
    );
    let head = outputs[9].to_ascii_lowercase();
    for h in [
        "strict-transport-security: max-age=31536000",
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "referrer-policy: no-referrer",
    ] {
        assert!(head.contains(h), "{h} missing in\n{}", outputs[9]);
    }
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

#[test]
fn openapi_import_prints_routes_that_load_and_validate() {
    // One route per path template, methods listed, each validating against the document;
    // pasted under listeners and upstreams, the config loads (no ambiguous routes), for
    // our own document and for GitHub's.
    let dir = tempfile::tempdir().unwrap();
    for (name, text, routes) in [
        ("items.yaml", include_str!("data/items-3.0.yaml"), 4),
        ("github.json", include_str!("data/github-subset.json"), 178),
    ] {
        let doc = dir.path().join(name);
        std::fs::write(&doc, text).unwrap();
        let out = rampart()
            .args(["openapi", "import", "--upstream", "up"])
            .arg(&doc)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = format!(
            "version: 1\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
             upstreams: {{ up: {{ targets: [{{ url: \"http://127.0.0.1:9\" }}] }} }}\n{stdout}"
        );
        let (ok, out, err) = validate(&yaml);
        assert!(ok, "{name}: {err}\n{stdout}");
        assert!(out.contains(&format!("{routes} routes")), "{out}");
    }
    let items = std::fs::read_to_string(dir.path().join("items.yaml")).unwrap();
    assert!(items.contains("/items/{id}"));
    // A document that would not load is refused by import too.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "openapi: '2.0'\n").unwrap();
    let out = rampart()
        .args(["openapi", "import"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not supported"));
}
