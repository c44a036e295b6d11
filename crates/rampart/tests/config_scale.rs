//! Configs at the scale of a real deployment: 10,000 routes and 10,000 inline consumers
//! (each with roles, a plan, attributes and an API key) load and serve; the parser's limits
//! stay bounded, name the flag that raises them, and the flags work.

mod support;

use std::fmt::Write as _;
use std::process::Command;

use rampart_identity::api_key::generate;
use support::*;

const PEPPER: &str = "scale-pepper-0123456789abcdef";

/// A config in block style, as people write them: `n` routes that each need an API key
/// and a role, `n` consumers. Consumer `live` holds `key_hash`.
fn big_config(n: usize, upstream: &str, key_hash: &str) -> String {
    let mut y = format!(
        "version: 1\nworkers: 1\naccess_log: {{ enabled: false }}\nlisteners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         identity:\n  api_keys:\n    pepper: {{ file: pepper.txt }}\nplans:\n  gold: {{}}\n\
         upstreams:\n  up:\n    targets:\n      - url: \"http://{upstream}\"\nroutes:\n"
    );
    for i in 0..n {
        let _ = write!(
            y,
            "  - name: svc-{i}\n    match:\n      path_prefix: /svc/{i}\n      methods: [GET, POST]\n    upstream: up\n    \
             authenticate: [api_key]\n    authorize:\n      roles_any: [reader-{}]\n",
            i % 50
        );
    }
    y.push_str("consumers:\n");
    for i in 0..n {
        let hash = if i == n - 1 {
            key_hash.to_string()
        } else {
            format!("hmac-sha256:{i:064x}")
        };
        let id = if i == n - 1 {
            "live".to_string()
        } else {
            format!("partner-{i}")
        };
        let _ = write!(
            y,
            "  - id: {id}\n    plan: gold\n    roles: [reader-{}, billing]\n    attributes:\n      tenant: t-{i}\n      tier: 2\n    \
             api_keys:\n      - id: key-{i}\n        hash: \"{hash}\"\n",
            (n - 1) % 50
        );
    }
    y
}

#[tokio::test]
async fn ten_thousand_routes_and_ten_thousand_consumers_load_and_serve() {
    let up = TestUpstream::echo();
    let key = generate(PEPPER.as_bytes()).unwrap();
    let yaml = big_config(10_000, &up.addr.to_string(), &key.hash);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let started = std::time::Instant::now();
    let gw = start_in(&yaml, dir);
    eprintln!(
        "{} bytes of YAML, loaded and started in {:?}",
        yaml.len(),
        started.elapsed()
    );
    assert_eq!(gw.gateway.plan().routes.len(), 10_000);
    let r = get_with(gw.http(), "/svc/9999/x", &[("x-api-key", &key.key)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.last().headers["x-consumer-id"], "live");
    assert_eq!(get(gw.http(), "/svc/9999/x").await.status, 401);
}

#[test]
fn the_parser_limits_name_their_flag_and_the_flag_raises_them() {
    let key = generate(PEPPER.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, big_config(200, "127.0.0.1:9", &key.hash)).unwrap();
    let validate = |flags: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(flags)
            .arg("validate")
            .arg("--config")
            .arg(&path)
            .env("RAMPART_LOG", "error")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = validate(&["--max-config-nodes", "1000"]);
    assert!(!ok);
    assert!(err.contains("--max-config-nodes"), "{err}");
    let (ok, err) = validate(&["--max-config-bytes", "16KiB"]);
    assert!(!ok);
    assert!(
        err.contains("the limit is 16384 (raise it with --max-config-bytes"),
        "{err}"
    );
    // The defaults take it, and so do raised limits.
    assert!(validate(&[]).0, "{}", validate(&[]).1);
    assert!(
        validate(&[
            "--max-config-bytes",
            "64MiB",
            "--max-config-nodes",
            "3000000"
        ])
        .0
    );
    let (ok, err) = validate(&["--max-config-bytes", "lots"]);
    assert!(!ok && err.contains("invalid size"), "{err}");
}
