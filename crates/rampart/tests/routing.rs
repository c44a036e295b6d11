//! Routing over real requests: hosts, paths, methods and headers, with the documented
//! precedence (most specific wins, never config order).

mod support;

use support::*;

fn config(up: &TestUpstream) -> String {
    format!(
        r#"version: 1
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  up: {{ targets: [{{ url: "http://{a}" }}] }}
routes:
  - {{ name: catch-all, match: {{ path_prefix: / }}, upstream: up }}
  - {{ name: api-prefix, match: {{ path_prefix: /api }}, upstream: up }}
  - {{ name: user-by-id, match: {{ path: "/api/users/{{id}}", methods: [GET] }}, upstream: up }}
  - {{ name: user-me, match: {{ path: /api/users/me }}, upstream: up }}
  - {{ name: user-files, match: {{ path: "/api/users/{{id}}/files/{{*rest}}" }}, upstream: up }}
  - {{ name: exact-host, match: {{ hosts: [api.example.com], path_prefix: / }}, upstream: up }}
  - {{ name: wildcard-host, match: {{ hosts: ["*.example.com"], path_prefix: / }}, upstream: up }}
  - {{ name: beta, match: {{ path_prefix: /api, headers: [{{ name: x-beta, value: "1" }}] }}, upstream: up }}
  - {{ name: has-debug, match: {{ path_prefix: /api, headers: [{{ name: x-debug }}] }}, upstream: up }}
"#,
        a = up.addr
    )
}

async fn route_of(gw: &TestGateway, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let dir_log = gw.dir.path().join("access.log");
    let mut b = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = send(gw.http(), b.body(http_body_util::Full::default()).unwrap()).await;
    assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
    let id = r.header("x-request-id").unwrap().to_string();
    let line = access_log_line(&dir_log, &id).await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["route"].as_str().unwrap().to_string()
}

fn logged(gw_yaml: String) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    start_in(
        &gw_yaml.replace(
            "access_log: { enabled: false }",
            &format!("access_log: {{ output: {} }}", log.display()),
        ),
        dir,
    )
}

#[tokio::test]
async fn most_specific_path_wins_regardless_of_order() {
    let up = TestUpstream::echo();
    let gw = logged(config(&up));
    assert_eq!(route_of(&gw, "GET", "/api/users/me", &[]).await, "user-me");
    assert_eq!(
        route_of(&gw, "GET", "/api/users/42", &[]).await,
        "user-by-id"
    );
    assert_eq!(
        route_of(&gw, "GET", "/api/users/42/files/a/b.txt", &[]).await,
        "user-files"
    );
    assert_eq!(route_of(&gw, "GET", "/api/other", &[]).await, "api-prefix");
    assert_eq!(route_of(&gw, "GET", "/apix", &[]).await, "catch-all");
    assert_eq!(route_of(&gw, "GET", "/", &[]).await, "catch-all");
}

#[tokio::test]
async fn method_mismatch_falls_back_to_a_less_specific_route() {
    let up = TestUpstream::echo();
    let gw = logged(config(&up));
    assert_eq!(
        route_of(&gw, "DELETE", "/api/users/42", &[]).await,
        "api-prefix"
    );
}

#[tokio::test]
async fn exact_host_beats_wildcard_beats_any_host() {
    let up = TestUpstream::echo();
    let gw = logged(config(&up));
    assert_eq!(
        route_of(&gw, "GET", "/x", &[("host", "api.example.com")]).await,
        "exact-host"
    );
    assert_eq!(
        route_of(&gw, "GET", "/x", &[("host", "API.Example.com:8080")]).await,
        "exact-host"
    );
    assert_eq!(
        route_of(&gw, "GET", "/x", &[("host", "www.example.com")]).await,
        "wildcard-host"
    );
    assert_eq!(
        route_of(&gw, "GET", "/x", &[("host", "example.com")]).await,
        "catch-all"
    );
    assert_eq!(
        route_of(&gw, "GET", "/x", &[("host", "other.test")]).await,
        "catch-all"
    );
}

#[tokio::test]
async fn header_conditions_make_a_route_more_specific() {
    let up = TestUpstream::echo();
    let gw = logged(config(&up));
    assert_eq!(
        route_of(&gw, "GET", "/api/x", &[("x-beta", "1")]).await,
        "beta"
    );
    assert_eq!(
        route_of(&gw, "GET", "/api/x", &[("x-beta", "2")]).await,
        "api-prefix"
    );
    assert_eq!(
        route_of(&gw, "GET", "/api/x", &[("x-debug", "anything")]).await,
        "has-debug"
    );
}

#[tokio::test]
async fn matching_sees_the_normalised_path() {
    // `/api/users/me/../42` is `/api/users/42` once normalised, and routes as such.
    let up = TestUpstream::echo();
    let gw = logged(config(&up));
    let text = raw(
        gw.http(),
        b"GET /api/users/me/../42 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.contains("\"uri\":\"/api/users/42\""), "{text}");
    let text = raw(
        gw.http(),
        b"GET /api/users/%6De HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.contains("\"uri\":\"/api/users/me\""), "{text}");
}

#[tokio::test]
async fn ambiguous_routes_are_a_config_error() {
    let up = TestUpstream::echo();
    let yaml = config(&up).replace(
        "  - { name: user-me,",
        "  - { name: dup, match: { path: \"/api/users/{other}\", methods: [GET, POST] }, upstream: up }\n  - { name: user-me,",
    );
    let err = rampart::compile_str(&yaml, std::path::Path::new(".")).unwrap_err();
    assert!(
        err.to_string()
            .contains("routes[3].match: matches exactly the same requests as routes[2]"),
        "{err}"
    );
}
