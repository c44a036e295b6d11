//! Response header policy, end to end: the security headers every response gets by
//! default, HSTS only over TLS, the gateway's own error bodies locked down, and
//! operator add/set/remove rules gateway-wide and per route.
mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::certs::TestCa;
use support::*;

fn config(up: &TestUpstream, extra_top: &str, route_extra: &str) -> String {
    format!(
        "version: 1\nworkers: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams: {{ up: {{ targets: [{{ url: \"http://{}\" }}] }} }}\n{extra_top}\n\
         routes:\n  - {{ name: api, match: {{ path_prefix: /api }}, upstream: up{route_extra} }}\n  - {{ name: other, match: {{ path_prefix: /other }}, upstream: up }}\n",
        up.addr
    )
}

#[tokio::test]
async fn sends_nosniff_by_default_and_no_hsts_over_plain_http() {
    let up = TestUpstream::echo();
    let gw = start(&config(&up, "", ""));
    let r = get(gw.http(), "/api/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // RFC 6797 §7.2: HSTS over plain HTTP is ignored by browsers, so it is not sent.
    assert_eq!(r.header("strict-transport-security"), None);
}

#[tokio::test]
async fn own_error_bodies_are_never_cached_sniffed_framed_or_run() {
    let up = TestUpstream::echo();
    let gw = start(&config(&up, "", ""));
    let r = get(gw.http(), "/nowhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
}

#[tokio::test]
async fn keeps_the_upstreams_own_security_header_unless_override_is_set() {
    let up = TestUpstream::with(|_| Answer::ok("x").header("x-frame-options", "SAMEORIGIN"));
    let keep = start(&config(
        &up,
        "response_headers: { frame_options: deny }",
        "",
    ));
    let r = get(keep.http(), "/api").await;
    assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));
    let force = start(&config(
        &up,
        "response_headers: { frame_options: deny, override_upstream: true }",
        "",
    ));
    let r = get(force.http(), "/api").await;
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn route_rules_apply_on_top_of_the_gateway_wide_ones() {
    let up = TestUpstream::with(|_| {
        Answer::ok("x")
            .header("x-debug-trace", "internal")
            .header("x-team", "payments")
    });
    let gw = start(&config(
        &up,
        "response_headers: { set: { x-served-by: edge }, remove: [x-debug-trace], referrer_policy: no-referrer }",
        ", response_headers: { set: { x-served-by: api-edge }, add: { x-api-version: \"2\" }, remove: [x-team] }",
    ));
    let r = get(gw.http(), "/api/a").await;
    assert_eq!(r.header("x-served-by"), Some("api-edge"));
    assert_eq!(r.header("x-api-version"), Some("2"));
    assert_eq!(r.header("x-debug-trace"), None);
    assert_eq!(r.header("x-team"), None);
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    // Another route has only the gateway-wide rules.
    let r = get(gw.http(), "/other/a").await;
    assert_eq!(r.header("x-served-by"), Some("edge"));
    assert_eq!(r.header("x-team"), Some("payments"));
    assert_eq!(r.header("x-api-version"), None);
}

#[tokio::test]
async fn sends_hsts_over_tls_on_upstream_answers_and_refusals() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Response Headers CA");
    ca.leaf("api.example.com", &["api.example.com"])
        .write(dir.path(), "api");
    let yaml = format!(
        "version: 1\nworkers: 1\naccess_log: {{ enabled: false }}\n\
         listeners: [{{ name: public, bind: \"127.0.0.1:0\", tls: {{ certificates: [{{ cert_file: api.pem, key_file: api.key }}] }} }}]\n\
         identity: {{ jwt: {{ corp: {{ issuer: \"https://idp.test/\", audiences: [api], algorithms: [HS256], secret: {{ env: RAMPART_TEST_UNUSED_SECRET }} }} }} }}\n\
         response_headers: {{ hsts: {{ max_age: 730d, include_subdomains: true }} }}\n\
         upstreams: {{ up: {{ targets: [{{ url: \"http://{}\" }}] }} }}\n\
         routes:\n  - {{ name: open, match: {{ path_prefix: /open }}, upstream: up }}\n  - {{ name: keyed, match: {{ path_prefix: /keyed }}, upstream: up, authenticate: [\"jwt:corp\"] }}\n",
        up.addr
    );
    std::env::set_var(
        "RAMPART_TEST_UNUSED_SECRET",
        "a-secret-of-at-least-thirty-two-bytes-long",
    );
    let gw = start_in(&yaml, dir);
    let client = TlsClient::trusting(&ca.pem());
    for (path, status) in [("/open/x", 200), ("/keyed/x", 401)] {
        let conn = tls_connect(gw.http(), "api.example.com", &client)
            .await
            .unwrap();
        let req = http::Request::get(path)
            .header("host", "api.example.com")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = conn.send(req).await;
        assert_eq!(r.status, status, "{path}");
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=63072000; includeSubDomains"),
            "{path}"
        );
    }
}

#[test]
fn rejects_rules_on_framing_headers_and_invalid_names() {
    assert_config_errors(&[
        (
            "response_headers: { set: { content-length: \"5\" } }",
            "response_headers.set.content-length: is a framing header",
        ),
        (
            "response_headers: { add: { \"bad header\": x } }",
            "response_headers.add.bad header: is not a valid header name",
        ),
        (
            "response_headers: { remove: [transfer-encoding] }",
            "response_headers.remove[0]: is a framing header",
        ),
        (
            "response_headers: { referrer_policy: sometimes }",
            "response_headers.referrer_policy: must be one of",
        ),
        (
            "response_headers: { hsts: { preload: true } }",
            "response_headers.hsts.preload: needs include_subdomains",
        ),
        (
            "response_headers: { hsts: { max_age: soon } }",
            "response_headers.hsts.max_age",
        ),
    ]);
}
