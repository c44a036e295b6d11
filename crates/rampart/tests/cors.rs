//! CORS end to end: preflights answered by the gateway (the upstream never sees them, no
//! credentials needed), allowed origins (exact and by subdomain) get their CORS headers on
//! every answer, refusals included, and disallowed origins get none; the upstream's own
//! CORS headers never reach the browser.

mod support;

use rampart_identity::api_key::generate;
use support::*;

const PEPPER: &str = "test-pepper-0123456789abcdef";

fn setup() -> (TestGateway, TestUpstream, String) {
    let up = TestUpstream::with(|_| {
        Answer::ok("{}")
            .header("content-type", "application/json")
            .header("access-control-allow-origin", "*")
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let key = generate(PEPPER.as_bytes()).unwrap();
    let yaml = format!(
        r#"version: 1
workers: 1
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity:
  api_keys: {{ pepper: {{ file: pepper.txt }} }}
consumers: [{{ id: app, api_keys: [{{ id: app-1, hash: "{hash}" }}] }}]
upstreams: {{ up: {{ targets: [{{ url: "http://{up}" }}] }} }}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    upstream: up
    authenticate: [api_key]
    cors:
      origins: ["https://app.example.com", "https://*.example.org"]
      methods: [GET, POST, DELETE]
      headers: [x-api-key, x-trace]
      expose_headers: [x-request-id]
      credentials: true
      max_age: 1h
  - name: public
    match: {{ path_prefix: /public }}
    upstream: up
    cors: {{ origins: ["*"] }}
"#,
        hash = key.hash,
        up = up.addr,
    );
    (start_in(&yaml, dir), up, key.key)
}

fn preflight<'a>(origin: &'a str, method: &'a str, headers: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if !headers.is_empty() {
        h.push(("access-control-request-headers", headers));
    }
    h
}

async fn options(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = http::Request::builder()
        .method("OPTIONS")
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(
        addr,
        b.body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn preflights_are_answered_by_the_gateway_without_credentials() {
    let (gw, up, _) = setup();
    let r = options(
        gw.http(),
        "/api/orders",
        &preflight(
            "https://app.example.com",
            "DELETE",
            "X-Api-Key, content-type",
        ),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, POST, DELETE")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("x-api-key, x-trace")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("3600"));
    assert_eq!(up.hits(), 0, "a preflight never reaches the upstream");

    // A subdomain of a wildcard origin; not the bare domain, not another scheme.
    let ok = options(
        gw.http(),
        "/api/x",
        &preflight("https://a.b.example.org", "GET", ""),
    )
    .await;
    assert_eq!(ok.status, 204);
    for (origin, method, headers) in [
        ("https://example.org", "GET", ""),
        ("http://a.example.org", "GET", ""),
        ("https://evil.com", "GET", ""),
        ("https://app.example.com.evil.com", "GET", ""),
        ("null", "GET", ""),
        ("https://app.example.com", "PUT", ""),
        ("https://app.example.com", "GET", "x-secret"),
    ] {
        let r = options(gw.http(), "/api/x", &preflight(origin, method, headers)).await;
        assert_eq!(r.status, 403, "{origin} {method} {headers}");
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{origin} {method} {headers}"
        );
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn allowed_origins_get_cors_headers_on_every_answer_and_others_none() {
    let (gw, up, key) = setup();
    let origin = "https://app.example.com";
    let r = get_with(
        gw.http(),
        "/api/orders",
        &[("origin", origin), ("x-api-key", &key)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));
    assert_eq!(up.hits(), 1);
    // A refusal carries them too, so the page can read the 401.
    let r = get_with(gw.http(), "/api/orders", &[("origin", origin)]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    // A disallowed origin: forwarded (CORS binds browsers), but no CORS headers, and the
    // upstream's own `*` removed.
    let r = get_with(
        gw.http(),
        "/api/orders",
        &[("origin", "https://evil.com"), ("x-api-key", &key)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    // Any origin, without credentials: `*`.
    let r = get_with(
        gw.http(),
        "/public/x",
        &[("origin", "https://anywhere.net")],
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-credentials").is_none());
}

#[test]
fn bad_cors_config_is_refused_with_the_field_and_the_reason() {
    let route = |extra: &str| {
        format!("routes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up, cors: {extra} }}]")
    };
    assert_config_errors(&[
        (
            &route("{ origins: [\"*\"], credentials: true }"),
            "routes[0].cors.origins[0]: `*` cannot be used with `credentials: true`",
        ),
        (
            &route("{ origins: [\"https://app.example.com/\"] }"),
            "routes[0].cors.origins[0]: an origin is http(s)://host[:port], without a path",
        ),
        (
            &route("{ origins: [\"app.example.com\"] }"),
            "routes[0].cors.origins[0]: an origin is scheme://host[:port]",
        ),
        (
            &route("{ origins: [\"https://app.*.com\"] }"),
            "a wildcard origin is scheme://*.domain",
        ),
        (
            &route("{ origins: [] }"),
            "routes[0].cors.origins: lists no origin",
        ),
        (
            &route("{ origins: [\"https://a.com\"], methods: [get] }"),
            "routes[0].cors.methods[0]: not an upper-case HTTP method",
        ),
        (
            &route("{ origins: [\"https://a.com\"], headers: [\"bad header\"] }"),
            "routes[0].cors.headers[0]: not a header name",
        ),
    ]);
}
