//! The consumer store from the command line (`rampart consumers`, through the admin API,
//! and `import` straight into the store) and client-certificate mappings of store
//! consumers over mTLS.

mod support;

use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};
use support::store::*;
use support::*;

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
