//! The admin API: its own listener, token authentication (constant-time, no detail on
//! failure), health and readiness probes, upstream state, and reload.

mod support;

use std::sync::Arc;

use http::Request;
use http_body_util::Full;
use support::*;

const TOKEN: &str = "adm-7f3a9c2e51d84b6a-0c94e1d27b5f3a86";

fn config(up: &TestUpstream, admin: &str) -> String {
    format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n{admin}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\nroutes:\n  - {{ name: r, match: {{ path_prefix: /v1 }}, upstream: up }}\n",
        up.addr
    )
}

struct Fixture {
    admin: rampart::admin::Admin,
    gateway: Arc<rampart::Gateway>,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture(up: &TestUpstream) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), format!("{TOKEN}\n")).unwrap();
    let path = dir.path().join("rampart.yaml");
    std::fs::write(
        &path,
        config(
            up,
            "admin: { bind: \"127.0.0.1:0\", token: { file: admin-token } }",
        ),
    )
    .unwrap();
    let gateway = Arc::new(rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap());
    let admin = rampart::admin::start(gateway.clone(), Some(path.clone()))
        .unwrap()
        .expect("admin configured");
    Fixture {
        admin,
        gateway,
        path,
        _dir: dir,
    }
}

async fn admin_call(f: &Fixture, method: &str, path: &str, token: Option<&str>) -> Reply {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    send(f.admin.addr(), b.body(Full::default()).unwrap()).await
}

#[tokio::test]
async fn health_probes_need_no_token() {
    let up = TestUpstream::echo();
    let f = fixture(&up);
    assert_eq!(admin_call(&f, "GET", "/healthz", None).await.status, 200);
    let r = admin_call(&f, "GET", "/readyz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ready"], true);
}

#[tokio::test]
async fn refuses_missing_and_wrong_tokens_without_detail() {
    let up = TestUpstream::echo();
    let f = fixture(&up);
    for token in [
        None,
        Some("wrong"),
        Some("adm-7f3a9c2e51d84b6"),
        Some("adm-7f3a9c2e51d84b6aX"),
    ] {
        let r = admin_call(&f, "GET", "/upstreams", token).await;
        assert_eq!(r.status, 401, "{token:?}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(r.text(), "{\"status\":401,\"title\":\"Unauthorized\"}");
    }
    let r = admin_call(&f, "GET", "/upstreams", Some(TOKEN)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["upstreams"][0]["name"], "up");
    assert_eq!(r.json()["upstreams"][0]["targets"][0]["healthy"], true);
    assert!(!r.text().contains(TOKEN));
}

#[tokio::test]
async fn unknown_admin_paths_are_404_after_auth() {
    let up = TestUpstream::echo();
    let f = fixture(&up);
    assert_eq!(admin_call(&f, "GET", "/nope", None).await.status, 401);
    assert_eq!(
        admin_call(&f, "GET", "/nope", Some(TOKEN)).await.status,
        404
    );
}

#[tokio::test]
async fn admin_is_not_served_on_the_public_listener() {
    let up = TestUpstream::echo();
    let f = fixture(&up);
    let public = f.gateway.addr("public").unwrap();
    let r = get_with(
        public,
        "/upstreams",
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "route.not_found");
}

#[tokio::test]
async fn post_reload_applies_the_file_or_reports_every_error() {
    let up = TestUpstream::echo();
    let f = fixture(&up);
    let public = f.gateway.addr("public").unwrap();
    assert_eq!(get(public, "/v2/x").await.status, 404);
    let text = std::fs::read_to_string(&f.path)
        .unwrap()
        .replace("path_prefix: /v1", "path_prefix: /v2");
    std::fs::write(&f.path, &text).unwrap();
    let r = admin_call(&f, "POST", "/admin/reload", Some(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(public, "/v2/x").await.status, 200);
    std::fs::write(&f.path, text.replace("upstream: up", "upstream: gone")).unwrap();
    let r = admin_call(&f, "POST", "/admin/reload", Some(TOKEN)).await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("routes[0].upstream: unknown upstream \"gone\""),
        "{}",
        r.text()
    );
    let r = admin_call(&f, "GET", "/admin/reload", Some(TOKEN)).await;
    assert_eq!(r.json()["last_reload"]["ok"], false);
    assert_eq!(
        get(public, "/v2/x").await.status,
        200,
        "the previous configuration keeps serving"
    );
    // Without a token, reload is refused.
    assert_eq!(
        admin_call(&f, "POST", "/admin/reload", None).await.status,
        401
    );
}

#[tokio::test]
async fn readiness_fails_when_an_upstream_has_no_usable_target() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nadmin: {{ bind: \"127.0.0.1:0\" }}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\n  down:\n    targets: [{{ url: \"http://{dead}\" }}]\n    health_check: {{ path: /h, interval: 100ms, unhealthy_threshold: 1 }}\n\
         routes:\n  - {{ name: r, match: {{ path_prefix: / }}, upstream: up }}\n",
        up.addr
    );
    let gateway = Arc::new(
        rampart::Gateway::start(rampart::compile_str(&yaml, dir.path()).unwrap()).unwrap(),
    );
    let admin = rampart::admin::start(gateway.clone(), None)
        .unwrap()
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = get(admin.addr(), "/readyz").await;
        if r.status == 503 {
            assert_eq!(r.json()["unavailable_upstreams"][0], "down");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never became unready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Loopback admin without a token: allowed (validation refuses it off loopback).
    assert_eq!(get(admin.addr(), "/upstreams").await.status, 200);
}

#[tokio::test]
async fn missing_token_secret_fails_the_load_with_its_path() {
    let up = TestUpstream::echo();
    let yaml = config(
        &up,
        "admin: { token: { env: RAMPART_TEST_UNSET_ADMIN_TOKEN } }",
    );
    let err = rampart::compile_str(&yaml, std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "admin.token: environment variable RAMPART_TEST_UNSET_ADMIN_TOKEN is not set"
    );
}

#[tokio::test]
async fn config_endpoint_shows_effective_config_without_secrets() {
    let up = TestUpstream::echo();
    let f = fixture(&up);
    let r = admin_call(&f, "GET", "/config", Some(TOKEN)).await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains(TOKEN), "secret leaked: {}", r.text());
    let v = r.json();
    assert_eq!(v["config"]["admin"]["token"]["value"], "<redacted>");
    assert_eq!(v["config"]["admin"]["token"]["file"], "admin-token");
    assert_eq!(
        v["config"]["admin"]["token"]["fingerprint"],
        rampart::secret_fingerprint(TOKEN)
    );
    // Defaults are spelled out.
    assert_eq!(v["config"]["limits"]["max_header_bytes"], "16KiB");
    assert_eq!(v["config"]["routes"][0]["match"]["path_prefix"], "/v1");
    assert_eq!(v["fingerprint"].as_str().unwrap().len(), 64);
    // Same file, same fingerprint; a change changes it.
    let again = admin_call(&f, "GET", "/config", Some(TOKEN)).await.json();
    assert_eq!(again["fingerprint"], v["fingerprint"]);
    let text = std::fs::read_to_string(&f.path)
        .unwrap()
        .replace("path_prefix: /v1", "path_prefix: /v3");
    std::fs::write(&f.path, text).unwrap();
    assert_eq!(
        admin_call(&f, "POST", "/admin/reload", Some(TOKEN))
            .await
            .status,
        200
    );
    let changed = admin_call(&f, "GET", "/config", Some(TOKEN)).await.json();
    assert_ne!(changed["fingerprint"], v["fingerprint"]);
}

#[tokio::test]
async fn metrics_count_a_scripted_request_mix() {
    let up = TestUpstream::with(|s| {
        if s.uri.contains("fail") {
            Answer::status(503)
        } else {
            Answer::ok("ok")
        }
    });
    let f = fixture(&up);
    let public = f.gateway.addr("public").unwrap();
    for _ in 0..3 {
        assert_eq!(get(public, "/v1/a").await.status, 200);
    }
    send(
        public,
        Request::post("/v1/b")
            .body(Full::new(bytes::Bytes::from("x")))
            .unwrap(),
    )
    .await;
    let r = get(public, "/v1/fail").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(get(public, "/nowhere").await.status, 404);
    assert_eq!(get(public, "/nowhere/else").await.status, 404);
    // Lines are recorded when each exchange completes; allow the last one to land.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r = admin_call(&f, "GET", "/metrics", Some(TOKEN)).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    for line in [
        "rampart_requests_total{route=\"r\",method=\"GET\",status_class=\"2xx\"} 3",
        "rampart_requests_total{route=\"r\",method=\"POST\",status_class=\"2xx\"} 1",
        "rampart_requests_total{route=\"r\",method=\"GET\",status_class=\"5xx\"} 1",
        "rampart_requests_total{route=\"\",method=\"GET\",status_class=\"4xx\"} 2",
        "rampart_request_duration_seconds_count{route=\"r\"} 5",
        "rampart_gateway_responses_total{code=\"route.not_found\",status=\"404\"} 2",
        "rampart_reloads_total{result=\"success\"} 0",
        "rampart_connections_open ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "rampart_target_healthy{{upstream=\"up\",target=\"http://{}\"}} 1",
            up.addr
        )),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
    assert_eq!(admin_call(&f, "GET", "/metrics", None).await.status, 401);
    // Counters survive a reload of the same routes.
    assert_eq!(
        admin_call(&f, "POST", "/admin/reload", Some(TOKEN))
            .await
            .status,
        200
    );
    let text = admin_call(&f, "GET", "/metrics", Some(TOKEN)).await.text();
    assert!(
        text.contains("rampart_requests_total{route=\"r\",method=\"GET\",status_class=\"2xx\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("rampart_reloads_total{result=\"success\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_cover_upstreams_listeners_and_tls_failures() {
    use support::certs::TestCa;
    let up = TestUpstream::with(|s| {
        if s.uri.contains("fail") {
            Answer::status(502)
        } else {
            Answer::ok("ok")
        }
    });
    let ca = TestCa::new("Root");
    let dir = tempfile::tempdir().unwrap();
    ca.leaf("api.example.com", &["api.example.com"])
        .write(dir.path(), "api");
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\nlisteners:\n  - {{ name: public, bind: \"127.0.0.1:0\" }}\n  - name: tls\n    bind: \"127.0.0.1:0\"\n    tls: {{ certificates: [{{ cert_file: api.pem, key_file: api.key }}], min_version: \"1.3\" }}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}], passive_health: {{ enabled: false }} }}\nroutes:\n  - {{ name: r, match: {{ path_prefix: / }}, upstream: up }}\n",
        up.addr
    );
    let gateway = Arc::new(
        rampart::Gateway::start(rampart::compile_str(&yaml, dir.path()).unwrap()).unwrap(),
    );
    let admin = rampart::admin::start(gateway.clone(), None)
        .unwrap()
        .unwrap();
    let public = gateway.addr("public").unwrap();
    assert_eq!(get(public, "/ok").await.status, 200);
    assert_eq!(get(public, "/fail").await.status, 502);
    // A TLS 1.2-only client against a TLS 1.3-only listener fails the handshake.
    let mut old = TlsClient::trusting(&ca.pem());
    old.versions = vec![&rustls::version::TLS12];
    assert!(
        tls_connect(gateway.addr("tls").unwrap(), "api.example.com", &old)
            .await
            .is_err()
    );
    let _idle = tokio::net::TcpStream::connect(public).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let text = get(admin.addr(), "/metrics").await.text();
    let target = format!("upstream=\"up\",target=\"http://{}\"", up.addr);
    for want in [
        format!("rampart_upstream_requests_total{{{target}}} 2"),
        format!("rampart_upstream_errors_total{{{target}}} 1"),
        "rampart_listener_connections{listener=\"public\"} 1".to_string(),
        "rampart_tls_handshake_failures_total{listener=\"tls\",reason=\"protocol\"} 1".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "missing {want:?} in:\n{text}"
        );
    }
}

#[tokio::test]
async fn admin_over_mtls_needs_a_client_certificate_and_the_token() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = support::certs::admin_mtls(dir.path());
    std::fs::write(dir.path().join("admin-token"), TOKEN).unwrap();
    let yaml = config(
        &up,
        "admin:\n  bind: \"127.0.0.1:0\"\n  token: { file: admin-token }\n  tls:\n    certificates: [{ cert_file: admin.pem, key_file: admin.key }]\n    client_auth: { ca_file: operators.pem }",
    );
    let gateway = Arc::new(
        rampart::Gateway::start(rampart::compile_str(&yaml, dir.path()).unwrap()).unwrap(),
    );
    let admin = rampart::admin::start(gateway.clone(), None)
        .unwrap()
        .unwrap();
    let operator = client_ca.leaf("alice", &["alice.ops"]);
    let call = |cert: Option<(String, String)>, token: Option<&'static str>| {
        let mut c = TlsClient::trusting(&server_ca.pem());
        c.client_cert = cert;
        let addr = admin.addr();
        async move {
            let conn = tls_connect(addr, "admin.internal", &c).await?;
            let mut req = Request::get("/upstreams").header("host", "admin.internal");
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let io = hyper_util::rt::TokioIo::new(conn.stream);
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let send = sender.send_request(req.body(Full::<bytes::Bytes>::default()).unwrap());
            let r = tokio::time::timeout(std::time::Duration::from_secs(5), send)
                .await
                .map_err(|_| "timeout".to_string())?
                .map_err(|e| e.to_string())?;
            Ok::<u16, String>(r.status().as_u16())
        }
    };
    let with_cert = Some((operator.cert_pem.clone(), operator.key_pem.clone()));
    assert_eq!(call(with_cert.clone(), Some(TOKEN)).await, Ok(200));
    assert_eq!(call(with_cert, None).await, Ok(401));
    assert!(
        call(None, Some(TOKEN)).await.is_err(),
        "no client certificate must fail the handshake"
    );
}
