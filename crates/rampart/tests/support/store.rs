//! A gateway with the embedded consumer store and its admin API, for the consumer store
//! tests: its config, a node started from it, and admin and key-carrying calls.

use std::sync::Arc;

use serde_json::{json, Value};

use super::client::*;
use super::upstream::TestUpstream;

pub const TOKEN: &str = "adm-5d1c0b8e2f7a4c39-9e06b1d4a7c2f583";
pub const PEPPER: &str = "pepper-0f4e8a2b6c1d9e73-5a8b2c4d6e0f1a3b";

pub struct Node {
    pub admin: rampart::admin::Admin,
    pub gateway: Arc<rampart::Gateway>,
    pub path: std::path::PathBuf,
    /// The node's directory, when the node owns it ([`node_owning`]).
    _dir: Option<tempfile::TempDir>,
}

pub fn config(up: &TestUpstream, extra: &str) -> String {
    format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         admin: {{ bind: \"127.0.0.1:0\", token: {{ file: admin-token }} }}\n\
         state_dir: state\nconsumer_store: {{ kind: embedded }}\n\
         identity: {{ api_keys: {{ pepper: {{ file: pepper }} }} }}\n\
         plans: {{ gold: {{ limits: [] }} }}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\n\
         routes:\n  - {{ name: open, match: {{ path_prefix: /v1 }}, upstream: up, authenticate: [api_key] }}\n  \
         - {{ name: gold, match: {{ path_prefix: /gold }}, upstream: up, authenticate: [api_key], authorize: {{ roles_any: [gold] }} }}\n{extra}",
        up.addr
    )
}

pub fn dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), TOKEN).unwrap();
    std::fs::write(dir.path().join("pepper"), PEPPER).unwrap();
    dir
}

pub fn node(dir: &tempfile::TempDir, yaml: &str) -> Node {
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, yaml).unwrap();
    let gateway = Arc::new(rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap());
    let admin = rampart::admin::start(gateway.clone(), Some(path.clone()))
        .unwrap()
        .expect("admin configured");
    Node {
        admin,
        gateway,
        path,
        _dir: None,
    }
}

/// A node on `yaml` in a directory of its own (made by [`dir`]), kept as long as it is.
pub fn node_owning(yaml: &str) -> Node {
    let d = dir();
    let mut n = node(&d, yaml);
    n._dir = Some(d);
    n
}

pub async fn call(n: &Node, method: &str, path: &str, body: Option<Value>) -> Reply {
    admin_json(n.admin.addr(), TOKEN, method, path, body.as_ref()).await
}

pub async fn with_key(n: &Node, path: &str, key: &str) -> Reply {
    get_with(
        n.gateway.addr("public").unwrap(),
        path,
        &[("x-api-key", key)],
    )
    .await
}

/// The gateway counted a denial on `route` for `reason` (the count is made in the log
/// phase, which may end just after the client has its answer).
pub async fn assert_denied(n: &Node, route: &str, reason: &str) {
    let want = format!(
        "rampart_access_decisions_total{{route=\"{route}\",reason=\"{reason}\",outcome=\"deny\"}} 1"
    );
    let started = std::time::Instant::now();
    loop {
        let m = call(n, "GET", "/metrics", None).await.text();
        if m.contains(&want) {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{want} not in\n{m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Creates `id` and issues it a key; returns the key and its id.
pub async fn consumer_with_key(n: &Node, id: &str, body: Value) -> (String, String) {
    let mut body = body;
    body["id"] = json!(id);
    let r = call(n, "POST", "/admin/consumers", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(n, "POST", &format!("/admin/consumers/{id}/keys"), None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}
