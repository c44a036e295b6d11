//! Credentials the gateway holds for its upstreams, end to end: a static header and HTTP
//! basic auth from secret references reach the upstream on every request, replace what a
//! caller sent in the same header, and never appear in the access log; a bad credential
//! is a config error that names the field and never the value.

mod support;

use support::*;

#[tokio::test]
async fn the_gateway_sends_its_own_credential_and_callers_cannot_replace_it() {
    std::env::set_var("RAMPART_TEST_PARTNER_KEY", "pk_live_partner_secret_0123");
    std::env::set_var("RAMPART_TEST_LEGACY_PASSWORD", "s3cr3t:pass");
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let yaml = format!(
        r#"version: 1
workers: 1
access_log: {{ output: "{log}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  partner:
    targets: [{{ url: "http://{up}" }}]
    credentials: {{ header: {{ name: X-Partner-Key, value: {{ env: RAMPART_TEST_PARTNER_KEY }}, prefix: "Key " }} }}
  legacy:
    targets: [{{ url: "http://{up}" }}]
    credentials: {{ basic: {{ username: gateway, password: {{ env: RAMPART_TEST_LEGACY_PASSWORD }} }} }}
  plain: {{ targets: [{{ url: "http://{up}" }}] }}
routes:
  - {{ name: partner, match: {{ path_prefix: /partner, methods: [GET] }}, upstream: partner }}
  - {{ name: legacy, match: {{ path_prefix: /legacy }}, upstream: legacy }}
  - {{ name: plain, match: {{ path_prefix: /plain }}, upstream: plain }}
"#,
        log = log.display(),
        up = up.addr,
    );
    let gw = start_in(&yaml, dir);
    let r = get_with(
        gw.http(),
        "/partner/quotes",
        &[("x-partner-key", "Key forged")],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    let got: Vec<_> = seen.headers.get_all("x-partner-key").iter().collect();
    assert_eq!(got, vec!["Key pk_live_partner_secret_0123"]);
    // Basic auth, the password holding a colon (only the user name may not).
    let r = get_with(
        gw.http(),
        "/legacy/users",
        &[("authorization", "Bearer caller-token")],
    )
    .await;
    assert_eq!(r.status, 200);
    let auth = up
        .last()
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    // base64("gateway:s3cr3t:pass")
    assert_eq!(auth, "Basic Z2F0ZXdheTpzM2NyM3Q6cGFzcw==");
    // Another upstream gets none of it.
    get(gw.http(), "/plain/x").await;
    let seen = up.last();
    assert!(seen.headers.get("x-partner-key").is_none());
    assert!(seen.headers.get("authorization").is_none());
    // The outbound route allows only what it lists.
    let post = http::Request::post(format!("http://{}/partner/quotes", gw.http()))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(gw.http(), post).await.status, 404);

    let line = access_log_line(&log, "\"/plain/x\"").await;
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [
        "pk_live_partner_secret",
        "s3cr3t",
        "Z2F0ZXdheTpzM2NyM3Q6cGFzcw",
    ] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
    assert!(text.contains("\"route\":\"partner\""), "{line}");
}

#[test]
fn bad_upstream_credentials_are_refused_without_their_value() {
    std::env::set_var("RAMPART_TEST_BROKEN_KEY", "line\nbreak-secret");
    let up = |c: &str| {
        format!(
            "upstreams: {{ p: {{ targets: [{{ url: \"http://127.0.0.1:9\" }}], credentials: {c} }} }}\nroutes: [{{ name: r, match: {{ path_prefix: / }}, upstream: p }}]"
        )
    };
    let cases = [
        (
            up("{ header: { name: X-Key, value: { env: RAMPART_TEST_UNSET_PARTNER } } }"),
            "upstreams.p.credentials.header.value: environment variable RAMPART_TEST_UNSET_PARTNER is not set",
        ),
        (
            up("{ header: { name: \"bad name\", value: { env: RAMPART_TEST_BROKEN_KEY } } }"),
            "upstreams.p.credentials.header.name: not a header name",
        ),
        (
            up("{ header: { name: X-Key, value: { env: RAMPART_TEST_BROKEN_KEY } } }"),
            "upstreams.p.credentials: the credential holds characters a header value cannot carry",
        ),
        (
            up("{ basic: { username: \"a:b\", password: { env: RAMPART_TEST_BROKEN_KEY } } }"),
            "upstreams.p.credentials.basic.username: must be non-empty and hold no `:`",
        ),
    ];
    for (yaml, want) in &cases {
        let yaml =
            format!("version: 1\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n{yaml}\n");
        let err = rampart::compile_str(&yaml, std::path::Path::new("."))
            .err()
            .unwrap_or_else(|| panic!("accepted: {yaml}"))
            .to_string();
        assert!(err.contains(want), "wanted {want:?} in:\n{err}");
        assert!(!err.contains("break-secret"), "the secret leaked: {err}");
    }
}

#[test]
fn validate_warns_of_credentialed_routes_open_wider_than_an_integration_needs() {
    let yaml = r#"version: 1
listeners: [{ name: public, bind: "127.0.0.1:0" }]
upstreams:
  partner:
    targets: [{ url: "http://127.0.0.1:9" }]
    credentials: { header: { name: X-Key, value: { env: HOME } } }
  plain: { targets: [{ url: "http://127.0.0.1:9" }] }
routes:
  - { name: wide, match: { path_prefix: / }, upstream: partner }
  - { name: narrow, match: { path_prefix: /quotes, methods: [GET] }, upstream: partner, authenticate: [mtls] }
  - { name: other, match: { path_prefix: /x, methods: [GET] }, upstream: plain, authenticate: [mtls] }
"#;
    let spec = rampart_config::parse(yaml).unwrap();
    let warnings: Vec<String> = rampart_config::warnings(&spec)
        .iter()
        .map(|w| w.to_string())
        .filter(|w| w.contains("own credential"))
        .collect();
    assert_eq!(
        warnings,
        ["routes[0]: route \"wide\" calls upstream \"partner\" with the gateway's own credential \
          to anyone (no authentication), on any method, on any path: limit it to the methods and \
          paths the integration needs"]
    );
}
