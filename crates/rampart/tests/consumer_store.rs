//! The embedded consumer store, driven through the admin API over real sockets: consumers
//! created, changed and deleted, keys issued, listed, rotated and revoked, each change
//! seen by the next request through the public listener, and all of it still there
//! after the gateway restarts.

mod support;

use std::sync::Arc;

use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};
use support::*;

const TOKEN: &str = "adm-5d1c0b8e2f7a4c39-9e06b1d4a7c2f583";
const PEPPER: &str = "pepper-0f4e8a2b6c1d9e73-5a8b2c4d6e0f1a3b";

struct Node {
    admin: rampart::admin::Admin,
    gateway: Arc<rampart::Gateway>,
    path: std::path::PathBuf,
}

fn config(up: &TestUpstream, extra: &str) -> String {
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

fn dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), TOKEN).unwrap();
    std::fs::write(dir.path().join("pepper"), PEPPER).unwrap();
    dir
}

fn node(dir: &tempfile::TempDir, yaml: &str) -> Node {
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
    }
}

async fn call(n: &Node, method: &str, path: &str, body: Option<Value>) -> Reply {
    admin_json(n.admin.addr(), TOKEN, method, path, body.as_ref()).await
}

async fn with_key(n: &Node, path: &str, key: &str) -> Reply {
    get_with(
        n.gateway.addr("public").unwrap(),
        path,
        &[("x-api-key", key)],
    )
    .await
}

/// The gateway counted a denial on `route` for `reason` (the count is made in the log
/// phase, which may end just after the client has its answer).
async fn assert_denied(n: &Node, route: &str, reason: &str) {
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

/// Creates `id` and issues it a key; returns the key.
async fn consumer_with_key(n: &Node, id: &str, body: Value) -> (String, String) {
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

#[tokio::test]
async fn an_issued_key_works_at_once_and_a_revoked_one_is_refused_at_once() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    let (key, id) = consumer_with_key(&n, "acme", json!({"plan": "gold"})).await;
    assert!(key.starts_with("rpk_") && key.contains(&id));

    let r = with_key(&n, "/v1/orders", &key).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert_eq!(seen.headers["x-consumer-id"], "acme");
    assert!(
        seen.headers.get("x-api-key").is_none(),
        "the credential is stripped"
    );

    let r = call(&n, "DELETE", &format!("/admin/keys/{id}"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = with_key(&n, "/v1/orders", &key).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.code(),
        "auth.required",
        "the answer says only that it was refused"
    );
    assert_denied(&n, "open", "auth.api_key.unknown").await;
    // Revoking twice: the key is gone.
    assert_eq!(
        call(&n, "DELETE", &format!("/admin/keys/{id}"), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn listed_keys_show_ids_and_dates_never_the_key_or_its_hash() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    let (key, id) = consumer_with_key(&n, "lister", json!({})).await;
    let r = call(
        &n,
        "POST",
        "/admin/consumers/lister/keys",
        Some(json!({"expires_in": "90d"})),
    )
    .await;
    assert_eq!(r.status, 201);
    let second = r.json();
    let exp = second["expires_unix"].as_u64().unwrap();
    let now = jwt::now() as u64;
    assert!((now + 90 * 86400 - 5..=now + 90 * 86400 + 5).contains(&exp));

    let r = call(&n, "GET", "/admin/consumers/lister/keys", None).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let secret = key.rsplit('_').next().unwrap();
    assert!(
        !text.contains(secret) && !text.contains("hmac-sha256"),
        "{text}"
    );
    let keys = r.json()["keys"].as_array().unwrap().clone();
    let ids: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&id.as_str()));
    // Last use, as this node saw it: the first key was never used, then it is.
    let first = keys.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert!(first["last_used_unix"].is_null());
    assert_eq!(with_key(&n, "/v1/x", &key).await.status, 200);
    let r = call(&n, "GET", "/admin/consumers/lister/keys", None).await;
    let keys = r.json()["keys"].as_array().unwrap().clone();
    let first = keys.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert!(first["last_used_unix"].as_u64().unwrap() + 5 >= now);
    assert!(keys
        .iter()
        .all(|k| k.get("key").is_none() && k.get("hash").is_none()));
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_the_overlap_only() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    let (old, id) = consumer_with_key(&n, "rotor", json!({})).await;

    let r = call(
        &n,
        "POST",
        &format!("/admin/keys/{id}/rotate"),
        Some(json!({"overlap": "1h"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let new = v["key"].as_str().unwrap().to_string();
    assert_eq!(v["replaces"]["id"], id.as_str());
    assert!(v["replaces"]["expires_unix"].as_u64().unwrap() > jwt::now() as u64 + 3500);
    assert_eq!(
        with_key(&n, "/v1/a", &old).await.status,
        200,
        "old key within the overlap"
    );
    assert_eq!(with_key(&n, "/v1/a", &new).await.status, 200);

    // A rotation with no overlap ends the old key now.
    let new_id = v["id"].as_str().unwrap().to_string();
    let r = call(
        &n,
        "POST",
        &format!("/admin/keys/{new_id}/rotate"),
        Some(json!({"overlap": "0s"})),
    )
    .await;
    assert_eq!(r.status, 201);
    let newest = r.json()["key"].as_str().unwrap().to_string();
    let r = with_key(&n, "/v1/a", &new).await;
    assert_eq!(r.status, 401);
    assert_denied(&n, "open", "auth.api_key.expired").await;
    assert_eq!(with_key(&n, "/v1/a", &newest).await.status, 200);
}

#[tokio::test]
async fn a_consumer_change_applies_to_its_keys_at_once_and_a_delete_revokes_them() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    let (key, _) = consumer_with_key(&n, "climber", json!({"roles": ["bronze"]})).await;
    assert_eq!(with_key(&n, "/gold/x", &key).await.status, 403);

    let r = call(
        &n,
        "PUT",
        "/admin/consumers/climber",
        Some(json!({"roles": ["gold"], "plan": "gold"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["roles"], json!(["gold"]));
    assert_eq!(with_key(&n, "/gold/x", &key).await.status, 200);
    assert_eq!(up.last().headers["x-consumer-roles"], "gold");

    let r = call(&n, "DELETE", "/admin/consumers/climber", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["revoked_keys"].as_array().unwrap().len(), 1);
    assert_eq!(with_key(&n, "/v1/x", &key).await.status, 401);
    assert_eq!(
        call(&n, "GET", "/admin/consumers/climber", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn consumers_and_keys_survive_a_restart() {
    let up = TestUpstream::echo();
    let d = dir();
    let yaml = config(&up, "");
    let (kept, gone) = {
        let n = node(&d, &yaml);
        let (kept, _) = consumer_with_key(&n, "stays", json!({})).await;
        let (gone, gone_id) = consumer_with_key(&n, "leaves", json!({})).await;
        assert_eq!(
            call(&n, "DELETE", &format!("/admin/keys/{gone_id}"), None)
                .await
                .status,
            200
        );
        drop(n.admin);
        Arc::try_unwrap(n.gateway)
            .ok()
            .expect("sole owner")
            .shutdown();
        (kept, gone)
    };
    let n = node(&d, &yaml);
    assert_eq!(with_key(&n, "/v1/x", &kept).await.status, 200);
    assert_eq!(with_key(&n, "/v1/x", &gone).await.status, 401);
    let r = call(&n, "GET", "/admin/consumers", None).await;
    let ids: Vec<String> = r.json()["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["leaves", "stays"]);
    let r = call(&n, "GET", "/readyz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["consumer_store"]["keys"], 1);
}

#[tokio::test]
async fn an_id_in_both_the_file_and_the_store_is_refused_either_way() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(
        &d,
        &config(&up, "consumers: [{ id: filed, roles: [gold] }]\n"),
    );
    let r = call(&n, "POST", "/admin/consumers", Some(json!({"id": "filed"}))).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("config file"));

    consumer_with_key(&n, "stored", json!({})).await;
    std::fs::write(&n.path, config(&up, "consumers: [{ id: stored }]\n")).unwrap();
    let r = call(&n, "POST", "/admin/reload", None).await;
    assert_eq!(r.status, 422);
    let text = r.text();
    assert!(
        text.contains("consumers[0].id") && text.contains("consumer store"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_requests_get_a_precise_error_and_change_nothing() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    for (body, want) in [
        (json!({"id": "has space"}), "id:"),
        (json!({"id": "ok", "plan": "platinum"}), "platinum"),
        (json!({"id": "ok", "roles": ["a,b"]}), "roles"),
        (json!({"id": "ok", "unknown": 1}), "unknown"),
        (json!({"id": "ok", "created": 5}), "created"),
    ] {
        let r = call(&n, "POST", "/admin/consumers", Some(body)).await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert!(r.text().contains(want), "{}", r.text());
    }
    let r = call(&n, "GET", "/admin/consumers", None).await;
    assert_eq!(r.json()["consumers"], json!([]));

    let req = Request::builder()
        .method("POST")
        .uri("/admin/consumers")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new("{not json".into()))
        .unwrap();
    assert_eq!(send(n.admin.addr(), req).await.status, 400);
    assert_eq!(
        call(&n, "POST", "/admin/consumers/nobody/keys", None)
            .await
            .status,
        404
    );
    let r = call(&n, "POST", "/admin/consumers", Some(json!({"id": "ok"}))).await;
    assert_eq!(r.status, 201);
    let r = call(
        &n,
        "POST",
        "/admin/consumers/ok/keys",
        Some(json!({"expires_in": "soon"})),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        call(&n, "GET", "/admin/consumers/ok/keys", None)
            .await
            .json()["keys"],
        json!([])
    );

    // No token, no store access.
    let req = Request::builder()
        .method("POST")
        .uri("/admin/consumers/ok/keys")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(n.admin.addr(), req).await.status, 401);
}

#[tokio::test]
async fn a_gateway_without_a_store_says_so() {
    let up = TestUpstream::echo();
    let d = dir();
    let yaml =
        config(&up, "").replace("state_dir: state\nconsumer_store: { kind: embedded }\n", "");
    let n = node(&d, &yaml);
    let r = call(&n, "GET", "/admin/consumers", None).await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no consumer_store"));
}

/// Runs `rampart consumers ARGS` against `n`'s admin API; returns (exit code, stdout,
/// stderr).
async fn cli(n: Option<&Node>, args: &[&str]) -> (i32, String, String) {
    cli_as(TOKEN, n, args).await
}

/// Like [`cli`], with another admin token.
async fn cli_as(token: &str, n: Option<&Node>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.arg("consumers")
        .args(args)
        .env("RAMPART_ADMIN_TOKEN", token);
    if let Some(n) = n {
        cmd.args(["--admin", &format!("http://{}", n.admin.addr())]);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_command_line_issues_lists_and_revokes_through_the_admin_api() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    let (code, _, err) = cli(
        Some(&n),
        &[
            "create",
            "cli-co",
            "--role",
            "gold",
            "--attr",
            "tier=2",
            "--attr",
            "region=eu",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(Some(&n), &["issue", "cli-co", "--expires-in", "30d"]).await;
    assert_eq!(code, 0, "{err}");
    let issued: Value = serde_json::from_str(&out).unwrap();
    let key = issued["key"].as_str().unwrap();
    assert_eq!(with_key(&n, "/gold/x", key).await.status, 200);
    let (_, out, _) = cli(Some(&n), &["show", "cli-co"]).await;
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["attributes"], json!({"tier": 2, "region": "eu"}));
    let (_, out, _) = cli(Some(&n), &["keys", "cli-co"]).await;
    assert!(out.contains(issued["id"].as_str().unwrap()) && !out.contains(key));

    let (code, _, _) = cli(Some(&n), &["revoke", issued["id"].as_str().unwrap()]).await;
    assert_eq!(code, 0);
    assert_eq!(with_key(&n, "/gold/x", key).await.status, 401);

    // Errors name the call and the reason; a wrong token is refused.
    let (code, _, err) = cli(Some(&n), &["issue", "nobody"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404") && err.contains("nobody"), "{err}");
    let (code, _, err) = cli_as("wrong", Some(&n), &["list"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");
}

#[tokio::test]
async fn an_import_brings_consumers_and_plain_keys_from_another_gateway() {
    let up = TestUpstream::echo();
    let d = dir();
    let yaml = config(&up, "");
    std::fs::write(d.path().join("rampart.yaml"), &yaml).unwrap();
    let legacy = "legacy-kong-key-0123456789abcdef";
    let lines = [
        json!({"consumer": {"id": "migrated", "roles": ["gold"]}}),
        json!({"key": {"id": "kong-1", "consumer": "migrated", "key": legacy}}),
    ];
    let file = d.path().join("export.jsonl");
    std::fs::write(
        &file,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let config_path = d.path().join("rampart.yaml");
    let (code, _, err) = cli(
        None,
        &[
            "import",
            "--config",
            config_path.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("imported 1 consumers and 1 keys"), "{err}");
    let stored = std::fs::read(d.path().join("state/consumers.redb")).unwrap();
    assert!(
        !stored.windows(legacy.len()).any(|w| w == legacy.as_bytes()),
        "the plain key is not in the store"
    );

    let n = node(&d, &yaml);
    assert_eq!(with_key(&n, "/gold/x", legacy).await.status, 200);
    assert_eq!(up.last().headers["x-consumer-credential"], "kong-1");

    // A bad line names its place and writes nothing.
    std::fs::write(&file, "{\"consumer\": {\"id\": \"bad id\"}}\n").unwrap();
    drop(n);
    let (code, _, err) = cli(
        None,
        &[
            "import",
            "--config",
            config_path.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("export.jsonl:1") && err.contains("id:"),
        "{err}"
    );
}

#[tokio::test]
async fn client_certificates_map_to_store_consumers_and_a_mapping_is_owned_once() {
    use bytes::Bytes;
    use support::certs::{write_ca, TestCa};
    let up = TestUpstream::echo();
    let d = dir();
    let server_ca = TestCa::new("server-ca");
    let client_ca = TestCa::new("client-ca");
    server_ca
        .leaf("api.test", &["api.test"])
        .write(d.path(), "server");
    write_ca(&client_ca, d.path(), "client-ca");
    let partner = client_ca.client_with_uri("partner-client", "spiffe://example.org/partner");
    let filed = client_ca.leaf("filed-client", &[]);
    let yaml = config(&up, "consumers: [{ id: filed, certificates: [{ subject_cn: filed-client }] }]\n")
        .replace(
            "listeners: [{ name: public, bind: \"127.0.0.1:0\" }]",
            "listeners: [{ name: public, bind: \"127.0.0.1:0\", tls: { certificates: [{ cert_file: server.pem, key_file: server.key }], client_auth: { ca_file: client-ca.pem, required: false } } }]",
        )
        .replace("authenticate: [api_key] }\n", "authenticate: [api_key, mtls] }\n");
    let n = node(&d, &yaml);
    let mtls = |leaf: &support::certs::Leaf| {
        let mut c = TlsClient::trusting(&server_ca.pem());
        c.client_cert = Some((leaf.cert_pem.clone(), leaf.key_pem.clone()));
        let addr = n.gateway.addr("public").unwrap();
        async move {
            tls_connect(addr, "api.test", &c)
                .await
                .unwrap()
                .send(
                    Request::get("/v1/x")
                        .body(Full::<Bytes>::default())
                        .unwrap(),
                )
                .await
        }
    };
    assert_eq!(
        mtls(&partner).await.status,
        401,
        "no consumer claims it yet"
    );
    let body =
        json!({"id": "partner", "certificates": [{"san_uri": "spiffe://example.org/partner"}]});
    let r = call(&n, "POST", "/admin/consumers", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = mtls(&partner).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-consumer-id"], "partner");
    assert_eq!(r.json()["headers"]["x-consumer-auth-method"], "mtls");
    // The config file's mapping still wins for its own consumer.
    assert_eq!(
        mtls(&filed).await.json()["headers"]["x-consumer-id"],
        "filed"
    );

    // A fact already mapped, by the store or by the file, is refused.
    for (body, owner) in [
        (
            json!({"id": "thief", "certificates": [{"san_uri": "spiffe://example.org/partner"}]}),
            "partner",
        ),
        (
            json!({"id": "thief", "certificates": [{"subject_cn": "filed-client"}]}),
            "config file",
        ),
    ] {
        let r = call(&n, "POST", "/admin/consumers", Some(body)).await;
        assert_eq!(r.status, 409, "{}", r.text());
        assert!(r.text().contains(owner), "{}", r.text());
    }
    let r = call(
        &n,
        "POST",
        "/admin/consumers",
        Some(json!({"id": "bad", "certificates": [{"fingerprint": "zz"}]})),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());

    // Dropping the mapping ends it at once.
    let r = call(
        &n,
        "PUT",
        "/admin/consumers/partner",
        Some(json!({"roles": ["x"]})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(mtls(&partner).await.status, 401);
}
