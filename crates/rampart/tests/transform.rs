//! Header transformations end to end: templated values from the proved identity reach
//! the upstream, a caller cannot supply a header the gateway sets (even when the template
//! has no value for an anonymous caller), renames and removals apply, and the response is
//! shaped on its way back; templates and names are checked at load.

mod support;

use rampart_identity::api_key::generate;
use support::*;

const PEPPER: &str = "test-pepper-0123456789abcdef";

#[tokio::test]
async fn templated_headers_come_from_the_identity_never_the_caller() {
    let up = TestUpstream::with(|_| {
        Answer::ok("{}")
            .header("content-type", "application/json")
            .header("x-powered-by", "legacy/1.0")
            .header("x-internal-trace", "t-1")
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
plans: {{ gold: {{}} }}
consumers:
  - {{ id: acme, plan: gold, attributes: {{ tenant: t-42, tier: 3 }}, api_keys: [{{ id: acme-1, hash: "{hash}" }}] }}
upstreams: {{ up: {{ targets: [{{ url: "http://{up}" }}] }} }}
routes:
  - name: legacy
    match: {{ path_prefix: / }}
    upstream: up
    authenticate: [api_key]
    auth_mode: shadow
    transform:
      request_headers:
        remove: [x-debug]
        rename: {{ x-old-name: x-new-name }}
        set:
          x-tenant: "{{{{ consumer.attributes.tenant }}}}"
          x-caller: "{{{{ consumer.id }}}}/{{{{ consumer.plan }}}} tier {{{{ claims.tier }}}} via {{{{ auth.method }}}}"
          x-origin: "{{{{ client_ip }}}} {{{{ route }}}}"
        add: {{ x-gateway: rampart }}
      response_headers:
        remove: [x-powered-by]
        rename: {{ x-internal-trace: x-trace }}
        set: {{ x-request: "{{{{ request_id }}}}" }}
"#,
        hash = key.hash,
        up = up.addr,
    );
    let gw = start_in(&yaml, dir);
    let r = get_with(
        gw.http(),
        "/a",
        &[
            ("x-api-key", &key.key),
            ("x-tenant", "t-spoofed"),
            ("x-debug", "1"),
            ("x-old-name", "v"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = up.last().headers;
    let h = |n: &str| seen.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(h("x-tenant").as_deref(), Some("t-42"));
    assert_eq!(seen.get_all("x-tenant").iter().count(), 1);
    assert_eq!(
        h("x-caller").as_deref(),
        Some("acme/gold tier 3 via api_key")
    );
    assert_eq!(h("x-origin").as_deref(), Some("127.0.0.1 legacy"));
    assert_eq!(h("x-gateway").as_deref(), Some("rampart"));
    assert_eq!(h("x-new-name").as_deref(), Some("v"));
    assert!(seen.get("x-debug").is_none() && seen.get("x-old-name").is_none());
    // The response, shaped on its way back.
    assert!(r.header("x-powered-by").is_none());
    assert_eq!(r.header("x-trace"), Some("t-1"));
    assert_eq!(r.header("x-request"), r.header("x-request-id"));

    // An anonymous caller (shadow mode lets it through): the template has no value, so
    // the spoofed header is removed rather than passed on.
    let r = get_with(gw.http(), "/a", &[("x-tenant", "t-spoofed")]).await;
    assert_eq!(r.status, 200);
    let seen = up.last().headers;
    assert!(seen.get("x-tenant").is_none(), "{seen:?}");
    assert!(seen.get("x-caller").is_none());
}

#[test]
fn bad_transforms_are_refused_with_the_field_and_the_reason() {
    let route = |t: &str| {
        format!(
            "routes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up, transform: {t} }}]"
        )
    };
    assert_config_errors(&[
        (
            &route("{ request_headers: { set: { x-a: \"{{ consumer.password }}\" } } }"),
            "routes[0].transform.request_headers.set.x-a: unknown variable `consumer.password`",
        ),
        (
            &route("{ request_headers: { set: { x-a: \"{{ consumer.id\" } } }"),
            "routes[0].transform.request_headers.set.x-a: a `{{` is not closed",
        ),
        (
            &route("{ request_headers: { remove: [content-length] } }"),
            "routes[0].transform.request_headers.remove[0]: `content-length` frames the message",
        ),
        (
            &route("{ response_headers: { add: { \"bad name\": x } } }"),
            "routes[0].transform.response_headers.add.bad name: `bad name` is not a header name",
        ),
        (
            &route("{ request_headers: { rename: { x-a: host } } }"),
            "routes[0].transform.request_headers.rename.x-a: `host` frames the message",
        ),
    ]);
}
