//! The security posture report: a config file's and a running gateway's, as text, JSON
//! and HTML, gating CI with `--fail-on`; certificate expiry as a metric.

mod support;

use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use support::certs::TestCa;
use support::*;

const TOKEN: &str = "adm-8d2f4a6c1e3b5d7f-9a0c2e4b6d8f1a3c";

fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

/// A config with a TLS listener whose certificate expires in 10 days, and `plain` as the
/// bind of a plain-HTTP listener; `extra` is appended at the top level.
fn setup(dir: &std::path::Path, up: &TestUpstream, plain: &str, extra: &str) -> std::path::PathBuf {
    let ca = TestCa::new("posture-ca");
    let leaf = ca.leaf_expiring("api.example.test", &["localhost"], 10);
    std::fs::write(dir.join("server.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &leaf.key_pem).unwrap();
    std::fs::write(dir.join("admin-token"), TOKEN).unwrap();
    std::fs::write(dir.join("pepper"), "pepper-1f3e5d7c9b0a2f4e6d8c").unwrap();
    let path = dir.join("rampart.yaml");
    std::fs::write(
        &path,
        format!(
            r#"version: 1
access_log: {{ enabled: false }}
listeners:
  - {{ name: public, bind: "127.0.0.1:0", tls: {{ certificates: [{{ cert_file: server.pem, key_file: server.key }}] }} }}
  - {{ name: plain, bind: "{plain}" }}
admin: {{ bind: "127.0.0.1:0", token: {{ file: admin-token }} }}
identity: {{ api_keys: {{ pepper: {{ file: pepper }} }} }}
ip_lists: {{ office: {{ cidrs: [192.0.2.0/24] }} }}
upstreams:
  up: {{ targets: [{{ url: "http://{}" }}] }}
routes:
  - {{ name: open, match: {{ path_prefix: /open }}, upstream: up }}
  - name: orders
    match: {{ path_prefix: /orders }}
    upstream: up
    authenticate: [api_key]
    authorize: {{ roles_any: [orders] }}
    rate_limit: {{ by: consumer, limits: [{{ rate: 100/s }}] }}
    inspect: {{}}
  - {{ name: watched, match: {{ path_prefix: /watched }}, upstream: up, ip_rules: {{ deny: [office], mode: shadow }} }}
{extra}"#,
            up.addr
        ),
    )
    .unwrap();
    path
}

fn finding<'a>(report: &'a Value, check: &str, scope: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check && f["scope"].as_str().unwrap().starts_with(scope))
        .unwrap_or_else(|| panic!("no {check} for {scope}: {report:#}"))
}

fn posture(args: &[&str]) -> (i32, String, String) {
    let out = rampart()
        .arg("posture")
        .args(args)
        .env("RAMPART_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_config_file_is_checked_and_mapped_to_controls() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path(), &up, "0.0.0.0:0", "");
    let cfg = path.to_str().unwrap();
    let (code, json, err) = posture(&["--config", cfg, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&json).unwrap();
    let f = finding(&r, "listener.tls", "listener:plain");
    assert_eq!(f["status"], "fail", "{f}");
    assert_eq!(f["nist"], serde_json::json!(["SC-8", "SC-13"]));
    assert_eq!(f["pci_dss"], serde_json::json!(["4.2.1"]));
    assert_eq!(
        finding(&r, "listener.tls_version", "listener:public")["status"],
        "warn"
    );
    let cert = finding(&r, "certificate.expiry", "certificate:listener:public");
    assert_eq!(cert["status"], "warn", "{cert}");
    assert!(
        cert["reason"]
            .as_str()
            .unwrap()
            .contains("CN=api.example.test"),
        "{cert}"
    );
    assert_eq!(finding(&r, "audit.trail", "global")["status"], "fail");
    assert_eq!(finding(&r, "config.history", "global")["status"], "warn");
    assert_eq!(finding(&r, "admin.exposure", "global")["status"], "pass");
    assert_eq!(
        finding(&r, "route.authentication", "route:open")["status"],
        "warn"
    );
    assert_eq!(
        finding(&r, "route.rate_limit", "route:open")["owasp"][0],
        "API4:2023"
    );
    assert_eq!(
        finding(&r, "route.authentication", "route:orders")["status"],
        "pass"
    );
    assert_eq!(
        finding(&r, "route.authorization", "route:orders")["status"],
        "pass"
    );
    assert_eq!(
        finding(&r, "route.rate_limit", "route:orders")["status"],
        "pass"
    );
    assert_eq!(
        finding(&r, "route.input_validation", "route:orders")["status"],
        "pass"
    );
    let shadow = finding(&r, "route.shadow_policies", "route:watched");
    assert_eq!(shadow["status"], "warn");
    assert!(shadow["reason"].as_str().unwrap().contains("ip_rules"));
    assert_eq!(finding(&r, "upstream.tls", "upstream:up")["status"], "pass");
    assert_eq!(r["summary"]["fail"], 2, "{r:#}");

    // The terminal's view: worst first, each with its mapping; CI's gate.
    let (code, text, _) = posture(&["--config", cfg, "--fail-on", "fail"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.lines().nth(3).unwrap().starts_with("FAIL"), "{text}");
    assert!(
        text.contains("NIST AU-2, AU-9, AU-10, AU-12, AU-5"),
        "{text}"
    );
    assert!(text.contains("passing checks not shown"), "{text}");

    // Fixed: the plain listener on loopback only, an audit trail with a copy.
    let out = rampart()
        .args(["audit", "keygen", "--out"])
        .arg(dir.path().join("k"))
        .output()
        .unwrap();
    assert!(out.status.success());
    setup(
        dir.path(),
        &up,
        "127.0.0.1:0",
        "state_dir: state\naudit: { signing_key: { file: k }, checkpoint_copy: copy.jsonl }\n",
    );
    assert_eq!(posture(&["--config", cfg, "--fail-on", "fail"]).0, 0);
    assert_eq!(posture(&["--config", cfg, "--fail-on", "warn"]).0, 1);

    // One self-contained page: no script, nothing fetched, values escaped.
    let html = dir.path().join("posture.html");
    let (code, _, err) = posture(&[
        "--config",
        cfg,
        "--format",
        "html",
        "--out",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
    assert!(
        page.contains("Unrestricted Resource Consumption"),
        "the controls table"
    );

    // A config that does not load has no posture.
    std::fs::write(&path, "version: 1\nroutes: [{ name: x }]\n").unwrap();
    let (code, _, err) = posture(&["--config", cfg]);
    assert_eq!(code, 2);
    assert!(err.contains("does not load"), "{err}");
}

#[tokio::test]
async fn a_running_gateway_reports_its_posture_and_certificate_expiry() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path(), &up, "127.0.0.1:0", "");
    let gateway = Arc::new(rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap());
    let admin = rampart::admin::start(gateway.clone(), Some(path.clone()))
        .unwrap()
        .unwrap();
    let a = admin.addr();
    let r = admin_json(a, TOKEN, "GET", "/admin/posture", None).await;
    assert_eq!(r.status, 200);
    let report = r.json();
    assert!(report["source"]
        .as_str()
        .unwrap()
        .starts_with("running gateway, version "));
    assert_eq!(
        finding(&report, "certificate.expiry", "certificate:listener:public")["status"],
        "warn"
    );
    assert_eq!(
        admin_json(a, "wrong", "GET", "/admin/posture", None)
            .await
            .status,
        401
    );

    let (code, text, err) =
        tokio::task::spawn_blocking(move || posture(&["--admin", &format!("http://{a}"), "--all"]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("PASS  route.authentication"), "{text}");

    let m = admin_json(a, TOKEN, "GET", "/metrics", None).await.text();
    let line = m
        .lines()
        .find(|l| l.starts_with("rampart_certificate_expiry_seconds{usage=\"listener:public\""))
        .unwrap_or_else(|| panic!("{m}"));
    let secs: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((8.0 * 86400.0..10.5 * 86400.0).contains(&secs), "{line}");
    assert!(line.contains("subject=\"CN=api.example.test\""), "{line}");
}
