//! Request validation against OpenAPI documents end to end: a real gateway in front of a
//! real upstream, documents in YAML (3.0) and JSON (3.1). A request that breaks the
//! contract is refused before the upstream sees it, with a problem listing each violation
//! (where, which field, why) and never the offending value.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;

const ITEMS: &str = include_str!("data/items-3.0.yaml");
const ORDERS: &str = include_str!("data/orders-3.1.json");

fn setup() -> (TestGateway, TestUpstream) {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("items.yaml"), ITEMS).unwrap();
    std::fs::write(dir.path().join("orders.json"), ORDERS).unwrap();
    let yaml = format!(
        r#"version: 1
workers: 2
access_log: {{ output: "{log}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  up: {{ targets: [{{ url: "http://{up}" }}] }}
routes:
  - name: items
    match: {{ path_prefix: /api }}
    upstream: up
    validate: {{ openapi: items.yaml }}
  - name: orders
    match: {{ path_prefix: /orders }}
    upstream: up
    validate: {{ openapi: orders.json }}
  - name: plain
    match: {{ path_prefix: /plain }}
    upstream: up
    json_limits: {{ enabled: false }}
    validate: {{ openapi: items.yaml, base_path: /plain }}
  - name: shadow
    match: {{ path_prefix: /shadow }}
    upstream: up
    validate: {{ openapi: items.yaml, base_path: /shadow, mode: shadow, unknown_operations: pass }}
"#,
        log = dir.path().join("access.log").display(),
        up = up.addr
    );
    (start_in(&yaml, dir), up)
}

const TENANT: &str = "6f1c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f";

async fn list(gw: &TestGateway, query: &str, headers: &[(&str, &str)]) -> Reply {
    let mut h = vec![("x-tenant", TENANT)];
    h.extend_from_slice(headers);
    get_with(gw.http(), &format!("/api/items?{query}"), &h).await
}

async fn post(gw: &TestGateway, path: &str, content_type: &str, body: &str) -> Reply {
    let req = Request::post(path)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    send(gw.http(), req).await
}

/// The `errors` of a validation problem as `in name reason` lines.
fn errors(r: &Reply) -> Vec<String> {
    assert_eq!(r.code(), "request.invalid", "{}", r.text());
    r.json()["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {}", r.text()))
        .iter()
        .map(|e| {
            let name = e.get("name").or_else(|| e.get("pointer")).unwrap();
            format!(
                "{} {} {}",
                e["in"].as_str().unwrap(),
                name.as_str().unwrap(),
                e["reason"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_request_that_keeps_the_contract_reaches_the_upstream() {
    let (gw, up) = setup();
    let r = list(
        &gw,
        "sort=name&limit=10&tag=red&tag=blue&filter[min]=2.5",
        &[("cookie", "session=abcdefgh12")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(&gw, "/api/items", "application/json", r#"{"name":"bolt","qty":3,"note":null,"price":0.5,"parts":[{"sku":"a","children":[{"sku":"b"}]}]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        &gw,
        "/api/items",
        "application/x-www-form-urlencoded",
        "name=bolt&qty=3",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(gw.http(), "/api/items/42").await.status, 200);
    assert_eq!(get(gw.http(), "/api/files/ab.json").await.status, 200);
    assert_eq!(up.hits(), 5);
}

#[tokio::test]
async fn parameters_are_checked_by_type_range_enum_pattern_and_presence() {
    let (gw, up) = setup();
    let r = list(
        &gw,
        "limit=500&tag=purple&filter[min]=x",
        &[("cookie", "session=short")],
    )
    .await;
    assert_eq!(r.status, 400);
    let e = errors(&r);
    assert!(
        e.contains(&"query limit must be at most 100".to_string()),
        "{e:?}"
    );
    assert!(
        e.contains(&"query tag /0 is not one of the allowed values".to_string()),
        "{e:?}"
    );
    assert!(e.contains(&"query sort is required".to_string()), "{e:?}");
    assert!(
        e.contains(&"query filter must be a number".to_string()),
        "{e:?}"
    );
    assert!(
        e.contains(&"cookie session is shorter than 8 characters".to_string()),
        "{e:?}"
    );
    // The offending values are never echoed.
    assert!(
        !r.text().contains("purple") && !r.text().contains("500"),
        "{}",
        r.text()
    );
    let r = get_with(
        gw.http(),
        "/api/items?sort=a",
        &[("x-tenant", "not-a-uuid")],
    )
    .await;
    assert_eq!(errors(&r), ["header X-Tenant is not a valid uuid"]);
    let r = list(&gw, "sort=Bad-Sort&limit=3000000000", &[]).await;
    let e = errors(&r);
    assert!(
        e.contains(&"query sort does not match the required pattern".to_string()),
        "{e:?}"
    );
    // int32: the format's range applies even below the schema's own maximum.
    assert!(
        e.iter()
            .any(|l| l.starts_with("query limit must be at most")),
        "{e:?}"
    );
    let r = get(gw.http(), "/api/items/0").await;
    assert_eq!(errors(&r), ["path id must be at least 1"]);
    let r = get(gw.http(), "/api/items/abc").await;
    assert_eq!(errors(&r), ["path id must be an integer"]);
    let r = get(gw.http(), "/api/files/toolong.json").await;
    assert_eq!(errors(&r), ["path name is longer than 5 characters"]);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn a_concrete_path_wins_over_a_template() {
    let (gw, _up) = setup();
    // `/items/special` is its own path, not `{id}` = "special" (which would be refused).
    assert_eq!(get(gw.http(), "/api/items/special").await.status, 200);
}

#[tokio::test]
async fn unknown_paths_are_404_and_unknown_methods_405_with_allow() {
    let (gw, up) = setup();
    let r = get(gw.http(), "/api/nothing-here").await;
    assert_eq!(r.status, 404);
    let r = send(
        gw.http(),
        Request::put("/api/items/1").body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("DELETE, GET"));
    // Outside the document's base path (`/api`, from `servers`) nothing matches.
    let r = get(gw.http(), "/apix/items/1").await;
    assert_eq!(r.status, 404);
    assert_eq!(up.hits(), 0);
    let line = access_log_line(&gw.dir.path().join("access.log"), "validation.method").await;
    assert!(line.contains("\"status\":405"), "{line}");
}

#[tokio::test]
async fn bodies_are_validated_with_pointers_to_each_violation() {
    let (gw, up) = setup();
    let r = post(
        &gw,
        "/api/items",
        "application/json",
        r#"{"id":"x","name":"","qty":-1,"price":0,"extra":1,"parts":[{"children":[{}]}]}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    let e = errors(&r);
    for want in [
        "body /id is not allowed (read-only, or not part of the schema)",
        "body /name is shorter than 1 characters",
        "body /qty must be at least 0",
        "body /price must be greater than 0",
        "body  has 1 unexpected property",
        "body /parts/0 is missing the required property sku",
        "body /parts/0/children/0 is missing the required property sku",
    ] {
        assert!(e.contains(&want.to_string()), "{want:?} not in {e:?}");
    }
    // A 3.0 `nullable` property takes null, and only where it says so.
    let r = post(
        &gw,
        "/api/items",
        "application/json",
        r#"{"name":null,"qty":1}"#,
    )
    .await;
    assert!(errors(&r).contains(&"body /name must be of type string".to_string()));
    // Malformed JSON never reaches the schema: the JSON limits refuse it as it is read.
    let r = post(&gw, "/api/items", "application/json", "{not json").await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "json.syntax".into()));
    let r = post(
        &gw,
        "/api/items",
        "application/x-www-form-urlencoded",
        "name=a&qty=many",
    )
    .await;
    assert_eq!(errors(&r), ["body /qty must be an integer"]);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn a_body_is_judged_the_same_read_once_with_the_limits_or_parsed_without() {
    // `/api` has the JSON limits on (the default): the body's tape is recorded as they
    // scan it. `/plain` has them off: the body is parsed for the schema. Escapes decode
    // the same either way (a 21-character name written as `\u0061`s is too long).
    let (gw, up) = setup();
    let long = r#"{"name":"\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061\u0061","qty":1}"#;
    for base in ["/api", "/plain"] {
        let path = format!("{base}/items");
        let ok = r#" {"name":"caf\u00e9 \"q\" \ud83d\ude00","qty":1,"parts":[{"sku":"a","children":[]}]} "#;
        let r = post(&gw, &path, "application/json", ok).await;
        assert_eq!(r.status, 200, "{base}: {}", r.text());
        let r = post(&gw, &path, "application/json", long).await;
        assert_eq!(
            errors(&r),
            ["body /name is longer than 20 characters"],
            "{base}"
        );
        // A name written twice: which one counts depends on the parser, so it is refused
        // whether the JSON limits are on (as it is read) or not (by the validation).
        let twice = r#"{"name":"x","qty":1,"parts":[{"sku":"a","s\u006bu":"b"}]}"#;
        let r = post(&gw, &path, "application/json", twice).await;
        if base == "/api" {
            assert_eq!(
                (r.status.as_u16(), r.code()),
                (400, "json.duplicate_name".into())
            );
        } else {
            assert_eq!(
                errors(&r),
                ["body  has an object that names a member twice"]
            );
        }
    }
    // In pieces, after a piece of nothing but whitespace: the offsets still line up.
    let chunks = ["  \n", r#"{"name":"ab"#, r#"\u00e9","qty":"#, "3}"];
    let mut raw_req = String::from(
        "POST /api/items HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    for c in chunks {
        raw_req.push_str(&format!("{:x}\r\n{c}\r\n", c.len()));
    }
    raw_req.push_str("0\r\n\r\n");
    let text = raw(gw.http(), raw_req.as_bytes()).await;
    assert_eq!(raw_status(&text), 200, "{text}");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn media_types_and_required_bodies_are_enforced() {
    let (gw, up) = setup();
    let r = post(&gw, "/api/items", "text/plain", "name=a").await;
    assert_eq!(r.status, 415);
    assert_eq!(r.code(), "request.media_type");
    let r = send(
        gw.http(),
        Request::post("/api/items").body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(errors(&r), ["body  a request body is required"]);
    // An operation without a request body takes none.
    let r = send(
        gw.http(),
        Request::delete("/api/items/1")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap(),
    )
    .await;
    assert_eq!(errors(&r), ["body  the operation takes no request body"]);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn an_openapi_3_1_document_in_json_with_a_vendor_media_type() {
    let (gw, up) = setup();
    let ok = r#"{"lines":["a"],"coupon":null,"email":"a@example.com"}"#;
    assert_eq!(
        post(&gw, "/orders", "application/vnd.orders+json", ok)
            .await
            .status,
        200
    );
    let r = post(
        &gw,
        "/orders",
        "application/vnd.orders+json",
        r#"{"lines":[1],"email":"nope"}"#,
    )
    .await;
    let e = errors(&r);
    assert!(
        e.contains(&"body /lines/0 must be of type string".to_string()),
        "{e:?}"
    );
    assert!(
        e.contains(&"body /email is not a valid email".to_string()),
        "{e:?}"
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn shadow_mode_logs_the_violation_and_forwards_the_request() {
    let (gw, up) = setup();
    let r = get_with(
        gw.http(),
        "/shadow/items?limit=500&sort=a",
        &[("x-tenant", TENANT)],
    )
    .await;
    assert_eq!(r.status, 200);
    // Unknown operations pass on this route.
    assert_eq!(get(gw.http(), "/shadow/unknown").await.status, 200);
    assert_eq!(up.hits(), 2);
    let line = access_log_line(&gw.dir.path().join("access.log"), "validation.parameters").await;
    assert!(line.contains("validation.parameters:shadow_deny"), "{line}");
    assert!(
        line.contains("\"validation\":\"query limit must be at most 100\""),
        "{line}"
    );
}

#[test]
fn document_mistakes_are_config_errors_naming_the_route() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let remote = write(
        "remote.yaml",
        "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: { $ref: 'https://example.com/s.json' }\n      responses: {}\n",
    );
    let swagger = write(
        "swagger.yaml",
        "swagger: '2.0'\ninfo: {title: t, version: '1'}\npaths: {}\n",
    );
    let bad_pattern = write(
        "pattern.yaml",
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      parameters:\n        - { name: q, in: query, schema: { type: string, pattern: '(?<=a)b' } }\n      responses: {}\n",
    );
    let route = |file: &str| {
        format!("routes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up, validate: {{ openapi: \"{file}\" }} }}]")
    };
    assert_config_errors(&[
        (
            &route(&remote),
            "routes[0].validate.openapi: $ref \"https://example.com/s.json\" is not local",
        ),
        (&route(&swagger), "has no `openapi` version"),
        (
            &route(&bad_pattern),
            "paths./a.get.parameters[0]: the schema does not compile",
        ),
        (
            &route("/nonexistent.yaml"),
            "routes[0].validate.openapi: cannot read /nonexistent.yaml",
        ),
    ]);
}

/// GitHub's public REST API description (a cut of `@octokit/openapi` 23.0.2, MIT: every
/// operation under issues, pulls, compare, labels, milestones, gists and user, 272 in all,
/// with the components they reach, unchanged; see `scripts/github-openapi-subset.py`).
const GITHUB: &str = include_str!("data/github-subset.json");

fn github() -> (TestGateway, TestUpstream) {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("github.json"), GITHUB).unwrap();
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams: {{ up: {{ targets: [{{ url: \"http://{}\" }}] }} }}\n\
         routes: [{{ name: gh, match: {{ path_prefix: / }}, upstream: up, validate: {{ openapi: github.json }} }}]\n",
        up.addr
    );
    (start_in(&yaml, dir), up)
}

#[tokio::test]
async fn a_real_public_document_github_rest_api_validates_as_github_would() {
    let (gw, up) = github();
    let ok = [
        "/repos/octo/hello/issues?state=open&per_page=10&labels=bug,ui&sort=created&direction=asc",
        "/repos/octo/hello/pulls/12",
        "/repos/octo/hello/compare/main...feature-x",
        "/gists/aa5a315d61ae9438b18d",
        "/user",
    ];
    for path in ok {
        let r = get(gw.http(), path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = post(
        &gw,
        "/repos/octo/hello/issues",
        "application/json",
        r#"{"title":"Crash on start","labels":["bug"]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.hits(), 6);

    let r = get(
        gw.http(),
        "/repos/octo/hello/issues?state=bogus&per_page=ten",
    )
    .await;
    let e = errors(&r);
    assert!(
        e.contains(&"query state is not one of the allowed values".to_string()),
        "{e:?}"
    );
    assert!(
        e.contains(&"query per_page must be an integer".to_string()),
        "{e:?}"
    );
    let r = get(gw.http(), "/repos/octo/hello/pulls/twelve").await;
    assert_eq!(errors(&r), ["path pull_number must be an integer"]);
    let r = post(
        &gw,
        "/repos/octo/hello/issues",
        "application/json",
        r#"{"body":"no title","labels":"bug"}"#,
    )
    .await;
    let e = errors(&r);
    assert!(
        e.contains(&"body  is missing the required property title".to_string()),
        "{e:?}"
    );
    let r = send(
        gw.http(),
        Request::put("/user").body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.header("allow")),
        (405, Some("GET, PATCH"))
    );
    assert_eq!(
        get(gw.http(), "/repos/octo/hello/secrets").await.status,
        404
    );
    assert_eq!(up.hits(), 6);
}
