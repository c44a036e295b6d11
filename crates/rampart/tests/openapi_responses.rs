//! Response validation against an OpenAPI document end to end: a real gateway in front of
//! a real upstream that answers well and badly. In shadow every answer reaches the client
//! unchanged and the violations are counted and logged; in enforce an undocumented status
//! or media type becomes a 502, and a body that breaks its schema (a `writeOnly` field
//! leaking, say) or is too large to check never reaches the client whole.

mod support;

use std::time::Duration;

use support::*;

const USERS: &str = r#"
openapi: 3.0.3
info: { title: Users, version: "1" }
paths:
  /users/{id}:
    get:
      parameters: [{ name: id, in: path, required: true, schema: { type: integer } }]
      responses:
        "200":
          description: the user
          content:
            application/json:
              schema:
                type: object
                required: [id, name]
                additionalProperties: false
                properties:
                  id: { type: integer }
                  name: { type: string }
                  password: { type: string, writeOnly: true }
        "404": { description: no such user }
        4XX:
          description: a client error
          content: { application/problem+json: { schema: { type: object } } }
"#;

/// The upstream's answer for user `id`.
fn answer(id: &str) -> Answer {
    let json = |body: String| Answer::ok(body).header("content-type", "application/json");
    match id {
        "1" => json(r#"{"id":1,"name":"Ada"}"#.into()),
        // A writeOnly field the service should never have sent back.
        "2" => json(r#"{"id":2,"name":"Bob","password":"hunter2-hash"}"#.into()),
        "3" => Answer::status(500).header("content-type", "text/plain"),
        "4" => Answer::ok("<html>hi</html>").header("content-type", "text/html"),
        "5" => Answer::status(404),
        "6" => json(format!(r#"{{"id":6,"name":"{}"}}"#, "x".repeat(5000))),
        // Chunked, after a pause: held until the end, then checked.
        "7" => json(r#"{"id":7,"name":"Chunked Charlie"}"#.into())
            .chunked(1, Duration::from_millis(20)),
        _ => Answer {
            status: 400,
            ..Answer::ok(r#"{"title":"bad input"}"#)
        }
        .header("content-type", "application/problem+json"),
    }
}

fn setup() -> (TestGateway, TestUpstream) {
    let up = TestUpstream::with(|s| answer(s.uri.rsplit('/').next().unwrap_or("")));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.yaml"), USERS).unwrap();
    let yaml = format!(
        r#"version: 1
workers: 2
access_log: {{ output: "{log}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  up: {{ targets: [{{ url: "http://{up}" }}] }}
routes:
  - name: watched
    match: {{ path_prefix: /s }}
    upstream: up
    validate: {{ openapi: users.yaml, base_path: /s, responses: shadow, response_max_bytes: 4KiB }}
  - name: strict
    match: {{ path_prefix: /e }}
    upstream: up
    validate: {{ openapi: users.yaml, base_path: /e, responses: enforce, response_max_bytes: 4KiB }}
"#,
        log = dir.path().join("access.log").display(),
        up = up.addr
    );
    (start_in(&yaml, dir), up)
}

fn log(gw: &TestGateway) -> std::path::PathBuf {
    gw.dir.path().join("access.log")
}

fn metric(gw: &TestGateway, route: &str, result: &str) -> u64 {
    let text = gw.feature_metrics();
    let key = format!("rampart_openapi_responses_total{{route=\"{route}\",result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// A raw HTTP/1.1 GET; what arrived before the connection closed.
async fn raw_get(gw: &TestGateway, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n");
    raw(gw.http(), req.as_bytes()).await
}

#[tokio::test]
async fn shadow_lets_every_answer_through_and_counts_what_breaks_the_contract() {
    let (gw, _up) = setup();
    assert_eq!(get(gw.http(), "/s/users/1").await.status, 200);
    let leak = get(gw.http(), "/s/users/2").await;
    assert_eq!(leak.status, 200);
    assert!(
        leak.text().contains("hunter2-hash"),
        "shadow changes nothing"
    );
    assert_eq!(get(gw.http(), "/s/users/3").await.status, 500);
    let line = access_log_line(&log(&gw), "validation.response:shadow_deny").await;
    assert!(
        line.contains("\"validation_response\":\"status 500 is not documented\""),
        "{line}"
    );
    assert_eq!(get(gw.http(), "/s/users/4").await.status, 200);
    assert_eq!(get(gw.http(), "/s/users/5").await.status, 404);
    assert_eq!(get(gw.http(), "/s/users/6").await.status, 200);
    assert_eq!(get(gw.http(), "/s/users/9").await.status, 400);
    // 1, 5 and 9 are valid; 2, 3 and 4 are not; 6 is too large to check.
    let counted = async || metric(&gw, "watched", "valid") == 3;
    assert!(eventually(counted).await);
    assert_eq!(metric(&gw, "watched", "invalid"), 3);
    assert_eq!(metric(&gw, "watched", "skipped"), 1);
}

#[tokio::test]
async fn enforce_turns_an_undocumented_status_or_media_type_into_a_502() {
    let (gw, _up) = setup();
    let r = get(gw.http(), "/e/users/3").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "upstream.bad_response");
    let line = access_log_line(&log(&gw), "validation.response:deny").await;
    assert!(line.contains("status 500 is not documented"), "{line}");
    let r = get(gw.http(), "/e/users/4").await;
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("<html>"));
    // Documented answers pass: a 404 without content, a 4XX problem, a chunked body.
    assert_eq!(get(gw.http(), "/e/users/5").await.status, 404);
    assert_eq!(get(gw.http(), "/e/users/9").await.status, 400);
    let r = get(gw.http(), "/e/users/7").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"id":7,"name":"Chunked Charlie"}"#);
    let r = get(gw.http(), "/e/users/1").await;
    assert_eq!(r.text(), r#"{"id":1,"name":"Ada"}"#);
}

#[tokio::test]
async fn enforce_never_delivers_a_body_that_breaks_its_schema() {
    let (gw, up) = setup();
    // The body is judged before the head leaves: the client gets a 502 problem.
    let text = raw_get(&gw, "/e/users/2").await;
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
    assert!(text.contains("upstream.bad_response"), "{text}");
    assert!(
        !text.contains("hunter2-hash"),
        "the writeOnly field leaked:\n{text}"
    );
    assert!(!text.contains("\"Bob\""), "{text}");
    // Too large to check is not delivered either.
    let text = raw_get(&gw, "/e/users/6").await;
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
    assert!(!text.contains("xxxxxxxxxx"), "{text}");
    // Compression is turned off upstream, so bodies arrive readable.
    assert!(up.last().headers.get("accept-encoding").is_none());
    let invalid = async || metric(&gw, "strict", "invalid") == 2;
    assert!(eventually(invalid).await);
}

#[test]
fn bad_response_settings_are_config_errors() {
    let route = |v: &str| {
        format!("routes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up, validate: {{ openapi: x.yaml, {v} }} }}]")
    };
    assert_config_errors(&[
        (
            &route("response_sample_percent: 0"),
            "routes[0].validate.response_sample_percent: must be 1 to 100",
        ),
        (&route("responses: always"), "responses"),
        (
            &route("response_max_bytes: 0"),
            "routes[0].validate.response_max_bytes",
        ),
    ]);
}
