//! Path and query rewrites end to end: a route's path parameters build the legacy target
//! (`/v2/{org}/users/{id}` → `/legacy/getUser?uid={id}`), query rules remove, set and add
//! parameters by their decoded names, templates read path parameters, and a caller cannot
//! add a query parameter through a path parameter; bad templates are refused at load.

mod support;

use support::*;

fn config(up: &TestUpstream) -> String {
    format!(
        r#"version: 1
workers: 1
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: [{{ url: "http://{up}" }}] }} }}
routes:
  - name: users
    match: {{ path: "/v2/{{org}}/users/{{id}}" }}
    upstream: up
    rewrite: {{ template: "/legacy/getUser?uid={{id}}&org={{org}}" }}
    transform:
      query:
        remove: [debug]
        set: {{ api_version: "2", caller: "{{{{ consumer.id }}}}" }}
        add: {{ trace: "{{{{ params.id }}}}" }}
      request_headers:
        set: {{ x-user-id: "{{{{ params.id }}}}" }}
  - name: files
    match: {{ path: "/files/{{*rest}}" }}
    upstream: up
    rewrite: {{ template: "/storage/{{rest}}" }}
"#,
        up = up.addr
    )
}

#[tokio::test]
async fn path_parameters_build_the_legacy_target_and_query_rules_apply() {
    let up = TestUpstream::echo();
    let gw = start(&config(&up));
    let r = get(
        gw.http(),
        "/v2/acme/users/42?debug=1&deb%75g=2&expand=full&api_version=1&caller=root",
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    // Every spelling of `debug` removed, `api_version` replaced, `caller` removed (an
    // anonymous caller has no consumer id), the template's query first.
    assert_eq!(
        seen.uri,
        "/legacy/getUser?uid=42&org=acme&expand=full&api_version=2&trace=42"
    );
    assert_eq!(seen.headers["x-user-id"], "42");
}

#[tokio::test]
async fn a_path_parameter_cannot_add_a_query_parameter() {
    let up = TestUpstream::echo();
    let gw = start(&config(&up));
    let r = get(gw.http(), "/v2/acme/users/42&admin=true+x=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        up.last().uri,
        "/legacy/getUser?uid=42%26admin%3Dtrue%2Bx%3D1&org=acme&api_version=2&trace=42%26admin%3Dtrue%2Bx%3D1"
    );
}

#[tokio::test]
async fn a_catch_all_parameter_keeps_its_segments_and_the_client_query() {
    let up = TestUpstream::echo();
    let gw = start(&config(&up));
    let r = get(gw.http(), "/files/reports/2026/q4.pdf?download=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(up.last().uri, "/storage/reports/2026/q4.pdf?download=1");
    // Dot segments are resolved before matching: the rewrite stays under /storage.
    let r = get(gw.http(), "/files/a/../../etc/passwd").await;
    assert_eq!(r.status, 404, "climbed out of /files, so no route matches");
}

#[test]
fn bad_rewrites_and_query_rules_are_refused_with_the_field_and_the_reason() {
    let route = |m: &str, rest: &str| {
        format!("routes: [{{ name: r, match: {{ {m} }}, upstream: up, {rest} }}]")
    };
    assert_config_errors(&[
        (
            &route("path: \"/u/{id}\"", "rewrite: { template: \"/legacy?uid={uid}\" }"),
            "routes[0].rewrite.template: `{uid}` is not a parameter of the route's match.path (it has: id)",
        ),
        (
            &route("path_prefix: /u", "rewrite: { template: \"/legacy/{id}\" }"),
            "routes[0].rewrite.template: `{id}` names a path parameter, but the route's match.path has none",
        ),
        (
            &route("path: \"/u/{id}\"", "rewrite: { template: \"/legacy/../{id}\" }"),
            "routes[0].rewrite.template: the path part \"/legacy/../{id}\" is not a normalised path",
        ),
        (
            &route(
                "path: \"/u/{id}\"",
                "transform: { request_headers: { set: { x-a: \"{{ params.nope }}\" } } }",
            ),
            "routes[0].transform.request_headers.set.x-a: `params.nope` is not a path parameter of the route's match.path (it has: id)",
        ),
        (
            &route("path: \"/u/{id}\"", "transform: { query: { remove: [\"a&b\"] } }"),
            "routes[0].transform.query.remove[0]: \"a&b\" is not a query parameter name",
        ),
    ]);
}
