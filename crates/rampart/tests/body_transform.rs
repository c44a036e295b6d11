//! JSON body operations end to end: a request body reshaped for a legacy service (with
//! its new Content-Length), a legacy answer unwrapped and renamed for the client (held
//! across body frames and re-framed), other media types passed as they are, and answers
//! that cannot be rewritten refused rather than passed unchanged; bad operations are
//! refused at load.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

fn post_json(path: &str, body: &str, extra: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::post(path).header("content-type", "application/json");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

fn config(up: &TestUpstream, extra_route: &str) -> String {
    format!(
        r#"version: 1
workers: 1
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: [{{ url: "http://{up}" }}] }} }}
routes:
  - name: users
    match: {{ path: "/v2/users/{{id}}" }}
    upstream: up
    transform:
      request_body:
        - remove: "$.internal"
        - rename: {{ path: "$.user_name", to: username }}
        - move: {{ from: "$", to: "$.request" }}
        - set: {{ path: "$.request.id", value: "{{{{ params.id }}}}" }}
        - set: {{ path: "$.request.caller", value: "{{{{ consumer.id }}}}" }}
        - add: {{ path: "$.version", value: 2 }}
{extra_route}"#,
        up = up.addr
    )
}

#[tokio::test]
async fn a_json_request_body_is_reshaped_for_the_legacy_service() {
    let up = TestUpstream::echo();
    let gw = start(&config(&up, ""));
    let r = send(
        gw.http(),
        post_json(
            "/v2/users/42",
            r#"{"user_name":"ann","internal":{"debug":true},"caller":"root","tags":["a"]}"#,
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    // Members keep their order; the caller's own `caller` is not passed off as the
    // gateway's (an anonymous caller has no consumer id).
    assert_eq!(
        std::str::from_utf8(&seen.body).unwrap(),
        r#"{"request":{"username":"ann","tags":["a"],"id":"42"},"version":2}"#
    );
    assert_eq!(
        seen.headers["content-length"],
        seen.body.len().to_string().as_str()
    );
}

#[tokio::test]
async fn other_media_types_pass_and_unusable_json_is_refused() {
    let up = TestUpstream::echo();
    let gw = start(&config(&up, ""));
    let form = http::Request::post("/v2/users/1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"user_name=ann&internal=1")))
        .unwrap();
    assert_eq!(send(gw.http(), form).await.status, 200);
    assert_eq!(&up.last().body[..], b"user_name=ann&internal=1");
    let before = up.hits();
    refuses_truncated_and_compressed_json(&gw).await;
    assert_eq!(up.hits(), before, "nothing unrewritten reached the service");
}

#[tokio::test]
async fn without_json_limits_the_transform_still_refuses_what_it_cannot_rewrite() {
    let up = TestUpstream::echo();
    let yaml = config(&up, "").replace(
        "    upstream: up\n    transform:",
        "    upstream: up\n    json_limits: { enabled: false }\n    transform:",
    );
    let gw = start(&yaml);
    refuses_truncated_and_compressed_json(&gw).await;
    assert_eq!(up.hits(), 0);
}

/// A truncated JSON body gets 400 and a compressed one 415.
async fn refuses_truncated_and_compressed_json(gw: &TestGateway) {
    let r = send(gw.http(), post_json("/v2/users/1", r#"{"user_name":"#, &[])).await;
    assert_eq!(r.status, 400);
    let gzip = post_json(
        "/v2/users/1",
        "\u{1f}\u{8b}gz",
        &[("content-encoding", "gzip")],
    );
    assert_eq!(send(gw.http(), gzip).await.status, 415);
}

fn legacy_upstream(
    body: &'static str,
    content_type: &'static str,
    encoding: Option<&'static str>,
) -> TestUpstream {
    TestUpstream::with(move |seen| {
        assert!(
            seen.headers.get("accept-encoding").is_none(),
            "asked for an uncompressed answer"
        );
        let mut a = Answer::ok(body)
            .header("content-type", content_type)
            .header("etag", "\"v1\"")
            .split(4, std::time::Duration::from_millis(1));
        if let Some(e) = encoding {
            a = a.header("content-encoding", e);
        }
        a
    })
}

const RESPONSE_ROUTE: &str = r#"  - name: legacy
    match: { path_prefix: /legacy }
    upstream: up
    transform:
      max_response_bytes: 200
      response_body:
        - move: { from: "$.Result.Rows", to: "$" }
        - rename: { path: "$[*].CUST_NM", to: name }
        - remove: "$[*].INTERNAL_FLAG"
"#;

#[tokio::test]
async fn a_legacy_answer_is_unwrapped_across_frames_and_reframed() {
    let up = legacy_upstream(
        r#"{"Result":{"Rows":[{"CUST_NM":"Ann","INTERNAL_FLAG":"x","id":1},{"CUST_NM":"Bo","id":2}]},"Status":"OK"}"#,
        "application/json; charset=utf-8",
        None,
    );
    let gw = start(&config(&up, RESPONSE_ROUTE));
    let r = get_with(
        gw.http(),
        "/legacy/customers",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"[{"name":"Ann","id":1},{"name":"Bo","id":2}]"#);
    assert!(
        r.header("etag").is_none(),
        "another entity than the service's"
    );
    // Held whole, so it goes out with its length.
    assert_eq!(
        r.header("content-length"),
        Some(r.text().len().to_string().as_str())
    );
    // A HEAD answer has no body to rewrite and is not held.
    let head = http::Request::head("/legacy/customers")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let h = send(gw.http(), head).await;
    assert_eq!(h.status, 200);
    assert!(h.text().is_empty());
}

#[tokio::test]
async fn answers_that_cannot_be_rewritten_are_refused_not_passed() {
    // Compressed although the gateway asked for it uncompressed.
    let up = legacy_upstream(r#"{"Result":{}}"#, "application/json", Some("gzip"));
    let gw = start(&config(&up, RESPONSE_ROUTE));
    let r = get(gw.http(), "/legacy/x").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "upstream.bad_response");
    // Over max_response_bytes.
    let big: &'static str =
        Box::leak(format!(r#"{{"Result":{{"Rows":["{}"]}}}}"#, "x".repeat(300)).into_boxed_str());
    let up =
        TestUpstream::with(move |_| Answer::ok(big).header("content-type", "application/json"));
    let gw = start(&config(&up, RESPONSE_ROUTE));
    assert_eq!(get(gw.http(), "/legacy/x").await.status, 502);
    // Grows past max_response_bytes without declaring its length: read whole first, so
    // the client still gets a 502, not a cut-off answer.
    let big2: &'static str = big;
    let up = TestUpstream::with(move |_| {
        Answer::ok(big2)
            .header("content-type", "application/json")
            .split(3, std::time::Duration::from_millis(1))
    });
    let gw = start(&config(&up, RESPONSE_ROUTE));
    let r = get(gw.http(), "/legacy/x").await;
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("xxx"));
    // Not JSON: passed as it is.
    let up = legacy_upstream("<Result/>", "application/xml", None);
    let gw = start(&config(&up, RESPONSE_ROUTE));
    let r = get(gw.http(), "/legacy/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<Result/>");
}

#[test]
fn bad_body_operations_are_refused_with_the_field_and_the_reason() {
    let route = |t: &str| {
        format!(
            "routes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up, transform: {t} }}]"
        )
    };
    assert_config_errors(&[
        (
            &route(r#"{ request_body: [{ remove: "$..ssn" }] }"#),
            "routes[0].transform.request_body[0].remove: \"$..ssn\": `..` is for masking",
        ),
        (
            &route(r#"{ response_body: [{ move: { from: "$.a", to: "$.b[*]" } }] }"#),
            "routes[0].transform.response_body[0].move.to: \"$.b[*]\": `*` cannot name one place",
        ),
        (&route(r#"{ response_body: [{ copy: "$.a" }] }"#), "copy"),
    ]);
}

#[tokio::test]
async fn an_answer_held_whole_that_runs_out_of_time_is_a_504() {
    // The head comes at once, the body's second half after the upstream's deadline.
    let up = TestUpstream::with(|_| {
        Answer::ok(r#"{"Result":{"Rows":[{"CUST_NM":"Ann"}]}}"#)
            .header("content-type", "application/json")
            .split(2, std::time::Duration::from_millis(700))
    });
    let yaml = config(&up, RESPONSE_ROUTE).replace(
        "upstreams: { up: { targets:",
        "upstreams: { up: { timeouts: { request: 1s }, targets:",
    );
    let gw = start(&yaml);
    let r = get(gw.http(), "/legacy/x").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.code(), "upstream.timeout");
}
