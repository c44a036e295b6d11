//! Security events in the audit trail: denials at or above the configured level, with
//! the request id the client saw; a flood is capped and counted, never silently lost.

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

fn keygen(dir: &std::path::Path) -> String {
    support::process::audit_keygen(dir)
}

fn config(up: &TestUpstream, events: &str) -> String {
    format!(
        r#"version: 1
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
audit: {{ path: audit.jsonl, signing_key: {{ file: audit-key }}, security_events: {events} }}
identity:
  api_keys: {{ pepper: {{ file: pepper.txt }} }}
ip_lists: {{ me: {{ cidrs: [127.0.0.1/32] }} }}
upstreams:
  up: {{ targets: [{{ url: "http://{}" }}] }}
routes:
  - {{ name: walled, match: {{ path_prefix: /walled }}, upstream: up, ip_rules: {{ deny: [me] }} }}
  - {{ name: watched, match: {{ path_prefix: /watched }}, upstream: up, ip_rules: {{ deny: [me], mode: shadow }} }}
  - {{ name: keyed, match: {{ path_prefix: /keyed }}, upstream: up, authenticate: [api_key] }}
  - {{ name: open, match: {{ path_prefix: /open }}, upstream: up }}
"#,
        up.addr
    )
}

/// Runs a gateway from `config`, sends `requests`, shuts it down and returns the
/// trail's entries and `rampart audit verify`'s exit code.
async fn trail_after(
    events: &str,
    requests: impl AsyncFnOnce(std::net::SocketAddr) -> Vec<String>,
) -> (Vec<Value>, Vec<String>, i32) {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let public = keygen(dir.path());
    std::fs::write(dir.path().join("pepper.txt"), "pepper-9f8e7d6c5b4a39281706").unwrap();
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, config(&up, events)).unwrap();
    let gateway = rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap();
    let ids = requests(gateway.addr("public").unwrap()).await;
    gateway.shutdown();
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["audit", "verify"])
        .arg(dir.path().join("audit.jsonl"))
        .args(["--public-key", &public])
        .output()
        .unwrap();
    let entries = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (entries, ids, out.status.code().unwrap_or(-1))
}

fn of_kind<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["kind"] == kind).collect()
}

#[tokio::test]
async fn denials_at_the_level_are_recorded_with_their_request_id() {
    let (entries, ids, verified) = trail_after("{}", async |g| {
        let walled = get(g, "/walled").await;
        assert_eq!(walled.status, 403);
        let watched = get(g, "/watched").await;
        assert_eq!(watched.status, 200);
        // Below the default level (high): a missing key, and allowed traffic.
        assert_eq!(get(g, "/keyed").await.status, 401);
        assert_eq!(get(g, "/open").await.status, 200);
        [walled, watched]
            .iter()
            .map(|r| r.header("x-request-id").unwrap().to_string())
            .collect()
    })
    .await;
    assert_eq!(verified, 0);
    let events = of_kind(&entries, "security");
    assert_eq!(events.len(), 2, "{entries:#?}");
    assert_eq!(events[0]["code"], "ip.denied");
    assert_eq!(events[0]["outcome"], "deny");
    assert_eq!(events[0]["status"], 403);
    assert_eq!(events[0]["route"], "walled");
    assert_eq!(events[0]["client_ip"], "127.0.0.1");
    assert_eq!(events[0]["request_id"], ids[0].as_str());
    assert_eq!(events[1]["code"], "ip.denied");
    assert_eq!(events[1]["outcome"], "shadow_deny");
    assert_eq!(events[1]["status"], 200);
    assert_eq!(events[1]["request_id"], ids[1].as_str());
}

#[tokio::test]
async fn the_level_chooses_and_off_records_none() {
    let (entries, _, _) = trail_after("{ level: low }", async |g| {
        assert_eq!(get(g, "/keyed").await.status, 401);
        Vec::new()
    })
    .await;
    let events = of_kind(&entries, "security");
    assert_eq!(events.len(), 1, "{entries:#?}");
    assert_eq!(events[0]["code"], "auth.missing");
    let (entries, _, _) = trail_after("{ level: off }", async |g| {
        assert_eq!(get(g, "/walled").await.status, 403);
        Vec::new()
    })
    .await;
    assert!(of_kind(&entries, "security").is_empty(), "{entries:#?}");
}

#[tokio::test]
async fn a_flood_is_capped_and_counted() {
    let (entries, _, verified) = trail_after("{ max_per_second: 5 }", async |g| {
        for _ in 0..60 {
            assert_eq!(get(g, "/walled").await.status, 403);
        }
        Vec::new()
    })
    .await;
    assert_eq!(verified, 0);
    let written = of_kind(&entries, "security").len() as u64;
    let counted: u64 = of_kind(&entries, "security_suppressed")
        .iter()
        .map(|e| {
            assert_eq!(e["total"], e["counts"]["ip.denied"]);
            e["total"].as_u64().unwrap()
        })
        .sum();
    assert!(counted > 0, "{entries:#?}");
    assert_eq!(written + counted, 60, "{entries:#?}");
}
