//! JSON threat limits end to end: real gateway, real upstream, real clients. A JSON body
//! within the limits reaches the upstream byte for byte; one that breaks a limit is
//! refused with its reason code (413 for size, 400 for form), whatever its
//! `Content-Type` says, and the upstream never receives it whole.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;

fn config(up: &TestUpstream, log: &std::path::Path, top: &str) -> String {
    format!(
        r#"version: 1
workers: 2
access_log: {{ output: "{log}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
{top}
upstreams:
  up: {{ targets: [{{ url: "http://{up}" }}] }}
routes:
  - name: default
    match: {{ path_prefix: / }}
    upstream: up
  - name: strict
    match: {{ path_prefix: /strict }}
    upstream: up
    json_limits: {{ max_depth: 2, max_string_bytes: 8, max_object_members: 3 }}
  - name: off
    match: {{ path_prefix: /off }}
    upstream: up
    json_limits: {{ enabled: false }}
  - name: shadow
    match: {{ path_prefix: /shadow }}
    upstream: up
    json_limits: {{ mode: shadow, max_depth: 2 }}
  - name: encoded
    match: {{ path_prefix: /encoded }}
    upstream: up
    json_limits: {{ allow_encoded_bodies: true }}
"#,
        log = log.display(),
        up = up.addr,
    )
}

struct Setup {
    gw: TestGateway,
    up: TestUpstream,
}

fn setup() -> Setup {
    setup_with("")
}

fn setup_with(top: &str) -> Setup {
    let up = TestUpstream::with(|s| Answer::ok(s.body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&up, &dir.path().join("access.log"), top);
    Setup {
        gw: start_in(&yaml, dir),
        up,
    }
}

async fn post(s: &Setup, path: &str, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut b = Request::post(path);
    if !content_type.is_empty() {
        b = b.header("content-type", content_type);
    }
    send(s.gw.http(), b.body(Full::new(body.into())).unwrap()).await
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Whether the upstream ever received `body` whole.
fn upstream_received(up: &TestUpstream, body: &[u8]) -> bool {
    up.seen.lock().unwrap().iter().any(|s| s.body == body)
}

#[tokio::test]
async fn a_body_within_the_limits_reaches_the_upstream_byte_for_byte() {
    let s = setup();
    // Escapes, odd whitespace and numbers as the client wrote them: nothing is rewritten.
    let body =
        "{ \"name\" : \"caf\\u00e9 \\\"x\\\"\",\n\t\"n\": -1.50e+3, \"list\": [true, null, {}] }";
    let r = post(&s, "/orders", "application/json", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), body);
    assert_eq!(s.up.last().body, body.as_bytes());
}

#[tokio::test]
async fn allows_depth_equal_to_the_default_limit_and_refuses_one_more() {
    let s = setup();
    let at = nested(64);
    assert_eq!(
        post(&s, "/a", "application/json", at.clone()).await.status,
        200
    );
    let over = nested(65);
    let r = post(&s, "/a", "application/json", over.clone()).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "json.depth");
    assert!(!upstream_received(&s.up, over.as_bytes()));
}

#[tokio::test]
async fn a_mislabelled_json_body_is_checked_all_the_same() {
    // Apigee checks only bodies labelled JSON; an attacker labels theirs text/plain.
    let s = setup();
    let over = nested(100);
    for ct in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let r = post(&s, "/a", ct, over.clone()).await;
        assert_eq!(r.status, 413, "content-type {ct:?}");
        assert_eq!(r.code(), "json.depth");
    }
    // A form body is not JSON and is left alone.
    let form = "a=1&b=%5B%5B%5B";
    let r = post(&s, "/a", "application/x-www-form-urlencoded", form).await;
    assert_eq!((r.status.as_u16(), r.text()), (200, form.to_string()));
}

#[tokio::test]
async fn duplicate_member_names_are_refused_even_when_escaped() {
    // serde_json keeps the last `a`, many parsers the first: the gateway and the upstream
    // could act on different values.
    let s = setup();
    for body in [r#"{"a":1,"a":2}"#, r#"{"role":"user","\u0072ole":"admin"}"#] {
        let r = post(&s, "/a", "application/json", body).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.code(), "json.duplicate_name");
        assert!(!upstream_received(&s.up, body.as_bytes()));
    }
}

#[tokio::test]
async fn malformed_json_is_refused_with_its_reason() {
    let s = setup();
    let cases: [(&[u8], &str); 5] = [
        (b"{\"a\":1", "json.truncated"),
        (b"{\"a\":1} {\"b\":2}", "json.trailing_data"),
        (b"{\"a\":\"\xff\"}", "json.invalid_utf8"),
        (b"{\"a\":\"\\ud800\"}", "json.lone_surrogate"),
        (b"not json", "json.syntax"),
    ];
    for (body, code) in cases {
        let r = post(&s, "/a", "application/json", body.to_vec()).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(r.code(), code);
        assert!(!upstream_received(&s.up, body), "{code}");
    }
}

#[tokio::test]
async fn a_route_overrides_the_limits_key_by_key() {
    let s = setup();
    let r = post(&s, "/strict", "application/json", nested(3)).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "json.depth".into()));
    let r = post(&s, "/strict", "application/json", r#"{"a":"123456789"}"#).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (413, "json.string_length".into())
    );
    let r = post(
        &s,
        "/strict",
        "application/json",
        r#"{"a":1,"b":2,"c":3,"d":4}"#,
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (413, "json.object_members".into())
    );
    // Keys the route does not set keep the top level's value.
    let r = post(&s, "/strict", "application/json", r#"{"a":"12345678"}"#).await;
    assert_eq!(r.status, 200);
    // A route that turns the limits off passes what the default refuses.
    let over = nested(100);
    let r = post(&s, "/off", "application/json", over.clone()).await;
    assert_eq!((r.status.as_u16(), r.text()), (200, over));
}

#[tokio::test]
async fn top_level_limits_apply_to_every_route_without_its_own() {
    let s = setup_with("json_limits: { max_array_items: 2 }");
    let r = post(&s, "/a", "application/json", "[1,2,3]").await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (413, "json.array_items".into())
    );
    // The strict route sets other keys; this one it takes from the top level.
    let r = post(&s, "/strict", "application/json", "[1,2,3]").await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (413, "json.array_items".into())
    );
}

#[tokio::test]
async fn limits_can_be_turned_off_for_the_whole_gateway() {
    let s = setup_with("json_limits: { enabled: false }");
    let over = nested(100);
    assert_eq!(post(&s, "/a", "application/json", over).await.status, 200);
}

#[tokio::test]
async fn a_chunked_body_is_cut_at_the_frame_that_breaks_a_limit() {
    // The first chunk is a valid start and is already on its way upstream; the second
    // breaks the depth limit. The client gets 413 and the upstream never sees the end.
    let s = setup();
    let head = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let first = "{\"items\":[";
    let second = nested(70);
    let raw_req = format!(
        "{head}{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    let text = raw(s.gw.http(), raw_req.as_bytes()).await;
    assert_eq!(raw_status(&text), 413, "{text}");
    assert!(text.contains("json.depth"), "{text}");
    assert!(!s
        .up
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.body.len() > first.len()));
}

#[tokio::test]
async fn a_truncated_chunked_body_is_refused_before_the_upstream_sees_its_end() {
    let s = setup();
    let body = "{\"a\":[1,2";
    let raw_req = format!(
        "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let text = raw(s.gw.http(), raw_req.as_bytes()).await;
    assert_eq!(raw_status(&text), 400, "{text}");
    assert!(text.contains("json.truncated"), "{text}");
    assert!(!upstream_received(&s.up, body.as_bytes()));
}

#[tokio::test]
async fn encoded_bodies_are_refused_unless_the_route_allows_them() {
    // A gzip body cannot be checked; an upstream that inflates it would parse JSON the
    // gateway never saw.
    let s = setup();
    let gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00".to_vec();
    let req = |path: &str| {
        Request::post(path)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from(gz.clone())))
            .unwrap()
    };
    let r = send(s.gw.http(), req("/a")).await;
    assert_eq!(r.status, 415);
    assert_eq!(r.code(), "request.encoded_body");
    let line = access_log_line(&s.gw.dir.path().join("access.log"), "\"status\":415").await;
    assert!(line.contains("json.content_encoding"), "{line}");
    assert_eq!(s.up.hits(), 0);
    let r = send(s.gw.http(), req("/encoded")).await;
    assert_eq!(r.status, 200);
    // `identity` is no encoding at all.
    let r = send(
        s.gw.http(),
        Request::post("/a")
            .header("content-encoding", "identity")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn shadow_mode_counts_what_it_would_refuse_and_lets_it_pass() {
    let s = setup();
    let over = nested(3);
    for _ in 0..2 {
        let r = post(&s, "/shadow", "application/json", over.clone()).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, over.clone()));
    }
    let out = s.gw.feature_metrics();
    assert!(
        out.contains("rampart_json_limits_shadow_total{route=\"shadow\",code=\"json.depth\"} 2"),
        "{out}"
    );
}

#[tokio::test]
async fn refusals_are_logged_and_counted_by_reason_code() {
    let s = setup();
    let r = post(&s, "/a", "application/json", r#"{"a":1,"a":1}"#).await;
    assert_eq!(r.status, 400);
    let line = access_log_line(&s.gw.dir.path().join("access.log"), "json.duplicate_name").await;
    assert!(line.contains("\"status\":400"), "{line}");
    assert!(line.contains("\"route\":\"default\""), "{line}");
}

#[tokio::test]
async fn a_body_read_whole_for_a_signature_is_checked_before_the_signature() {
    // Signed-request routes read the body before their filters run; the limits are
    // checked while it is read, so a hostile body never reaches the HMAC or the upstream.
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m1.secret"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let yaml = format!(
        r#"version: 1
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
consumers:
  - {{ id: machine, signing_keys: [{{ id: m1, secret: {{ file: m1.secret }} }}] }}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: sig, match: {{ path_prefix: / }}, upstream: up, authenticate: [signature] }}
"#,
        up.addr
    );
    let gw = start_in(&yaml, dir);
    let post = |body: String| {
        Request::post("/jobs")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let r = send(gw.http(), post(nested(65))).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "json.depth".into()));
    // The same request with a well-formed body gets as far as the signature check.
    let r = send(gw.http(), post(nested(3))).await;
    assert_eq!(r.status, 401);
    assert_eq!(up.hits(), 0);
}

#[test]
fn json_limit_mistakes_are_named_by_path() {
    assert_config_errors(&[
        (
            "json_limits: { max_depth: 0 }",
            "json_limits.max_depth: must be between 1 and 10000, got 0",
        ),
        (
            "json_limits: { max_string_bytes: 2GiB }",
            "json_limits.max_string_bytes: must be between 1 and",
        ),
        ("json_limits: { max_dpeth: 3 }", "unknown field `max_dpeth`"),
        (
            "routes: [{ name: r, match: { path_prefix: / }, upstream: up, json_limits: { max_array_items: 0 } }]",
            "routes[0].json_limits.max_array_items: must be between 1",
        ),
        (
            "json_limits: { mode: loud }",
            "unknown variant `loud`",
        ),
    ]);
}
