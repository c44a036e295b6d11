//! API keys, identity headers, role/scope rules and shadow mode, end to end: a real
//! gateway in front of a real echo upstream, real HTTP clients, keys generated the way
//! `rampart keys new` generates them.

mod support;

use std::time::{Duration, SystemTime};

use rampart_identity::api_key::{generate, NewKey};
use support::*;

const PEPPER: &str = "test-pepper-0123456789abcdef";

struct Fixture {
    gw: TestGateway,
    up: TestUpstream,
    current: NewKey,
    rotated: NewKey,
    expired: NewKey,
    future: NewKey,
    intern: NewKey,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn fixture() -> Fixture {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), format!("{PEPPER}\n")).unwrap();
    let p = PEPPER.as_bytes();
    let (current, rotated, expired, future, intern) = (
        generate(p).unwrap(),
        generate(p).unwrap(),
        generate(p).unwrap(),
        generate(p).unwrap(),
        generate(p).unwrap(),
    );
    let now = SystemTime::now();
    let yaml = format!(
        r#"version: 1
workers: 1
access_log: {{ output: "{}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity:
  api_keys: {{ pepper: {{ file: pepper.txt }}, query_param: api_key }}
plans: {{ gold: {{}} }}
consumers:
  - id: acme
    plan: gold
    roles: [orders-reader]
    scopes: [orders:read]
    api_keys:
      - {{ id: acme-current, hash: "{}" }}
      - {{ id: acme-rotated, hash: "{}", expires: {} }}
      - {{ id: acme-expired, hash: "{}", expires: {} }}
      - {{ id: acme-next, hash: "{}", not_before: {} }}
  - id: intern
    roles: [guest]
    api_keys: [{{ id: intern-1, hash: "{}" }}]
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: orders, match: {{ path_prefix: /orders }}, upstream: up, authenticate: [api_key], authorize: {{ roles_any: [orders-reader] }} }}
  - {{ name: shadow, match: {{ path_prefix: /shadow }}, upstream: up, authenticate: [api_key], authorize: {{ roles_any: [admin] }}, auth_mode: shadow }}
  - {{ name: open, match: {{ path_prefix: /public }}, upstream: up }}
  - {{ name: bearer, match: {{ path_prefix: /bearer }}, upstream: up, authenticate: [api_key], api_key_sources: [bearer] }}
  - {{ name: query, match: {{ path_prefix: /query }}, upstream: up, authenticate: [api_key], api_key_sources: [query] }}
  - {{ name: scoped, match: {{ path_prefix: /scoped }}, upstream: up, authenticate: [api_key], authorize: {{ scopes_all: [orders:write] }} }}
  - {{ name: fwd, match: {{ path_prefix: /fwd }}, upstream: up, authenticate: [api_key], forward_credentials: true }}
  - {{ name: only-acme, match: {{ path_prefix: /acme-only }}, upstream: up, authenticate: [api_key], authorize: {{ consumers: [acme] }} }}
"#,
        dir.path().join("access.log").display(),
        current.hash,
        rotated.hash,
        rfc3339(now + Duration::from_secs(3600)),
        expired.hash,
        rfc3339(now - Duration::from_secs(3600)),
        future.hash,
        rfc3339(now + Duration::from_secs(3600)),
        intern.hash,
        up.addr,
    );
    Fixture {
        gw: start_in(&yaml, dir),
        up,
        current,
        rotated,
        expired,
        future,
        intern,
    }
}

impl Fixture {
    async fn log(&self, needle: &str) -> String {
        access_log_line(&self.gw.dir.path().join("access.log"), needle).await
    }

    fn metrics(&self) -> String {
        let plan = self.gw.gateway.plan();
        let routes: Vec<(&str, &rampart_proxy::metrics::RouteMetrics)> = plan
            .routes
            .iter()
            .map(|r| (&*r.name, &*r.metrics))
            .collect();
        let mut out = rampart_core::MetricsText::new();
        rampart_proxy::metrics::render_requests(&mut out, &routes, &plan.codes);
        out.finish()
    }
}

#[tokio::test]
async fn valid_key_reaches_the_upstream_with_identity_headers_and_without_the_key() {
    let f = fixture();
    let r = get_with(f.gw.http(), "/orders/1", &[("x-api-key", &f.current.key)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h = &r.json()["headers"];
    assert_eq!(h["x-consumer-id"], "acme");
    assert_eq!(h["x-consumer-credential"], "acme-current");
    assert_eq!(h["x-consumer-roles"], "orders-reader");
    assert_eq!(h["x-consumer-auth-method"], "api_key");
    assert!(
        h.get("x-api-key").is_none(),
        "the key must not be forwarded: {h}"
    );
    let line = f.log("/orders/1").await;
    assert!(line.contains("\"consumer\":\"acme\""), "{line}");
    assert!(line.contains("auth.api_key.ok:allow"), "{line}");
    assert!(
        !line.contains(&f.current.key),
        "the key must never be logged: {line}"
    );
}

#[tokio::test]
async fn missing_key_is_401_with_a_challenge_and_never_reaches_the_upstream() {
    let f = fixture();
    let r = get(f.gw.http(), "/orders/1").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "auth.required");
    assert_eq!(
        r.header("www-authenticate"),
        Some("ApiKey realm=\"rampart\"")
    );
    assert_eq!(f.up.hits(), 0);
    let line = f.log("/orders/1").await;
    assert!(line.contains("\"code\":\"auth.missing\""), "{line}");
}

#[tokio::test]
async fn unknown_expired_and_not_yet_valid_keys_are_refused_with_their_own_reasons() {
    let f = fixture();
    let unknown = generate(b"another pepper").unwrap();
    for (key, path, reason) in [
        (&unknown.key, "/orders/unknown", "auth.api_key.unknown"),
        (&f.expired.key, "/orders/expired", "auth.api_key.expired"),
        (
            &f.future.key,
            "/orders/future",
            "auth.api_key.not_yet_valid",
        ),
    ] {
        let r = get_with(f.gw.http(), path, &[("x-api-key", key)]).await;
        assert_eq!(r.status, 401, "{path}");
        // The response says only that the credentials were not accepted.
        assert_eq!(r.code(), "auth.required");
        assert!(!r.text().contains(reason));
        let line = f.log(path).await;
        assert!(line.contains(&format!("\"code\":\"{reason}\"")), "{line}");
        assert!(!line.contains(key.as_str()), "{line}");
    }
    assert_eq!(f.up.hits(), 0);
    let m = f.metrics();
    assert!(
        m.contains("rampart_access_decisions_total{route=\"orders\",reason=\"auth.api_key.expired\",outcome=\"deny\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn two_keys_of_one_consumer_work_during_a_rotation_window() {
    let f = fixture();
    for key in [&f.current.key, &f.rotated.key] {
        let r = get_with(f.gw.http(), "/orders/1", &[("x-api-key", key)]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["headers"]["x-consumer-id"], "acme");
    }
}

#[tokio::test]
async fn a_missing_role_is_403_and_a_missing_scope_names_insufficient_scope() {
    let f = fixture();
    let r = get_with(f.gw.http(), "/orders/1", &[("x-api-key", &f.intern.key)]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "authz.denied");
    assert!(f.log("/orders/1").await.contains("authz.role_missing:deny"));
    let r = get_with(f.gw.http(), "/scoped", &[("x-api-key", &f.current.key)]).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"rampart\", error=\"insufficient_scope\"")
    );
    let r = get_with(f.gw.http(), "/acme-only", &[("x-api-key", &f.intern.key)]).await;
    assert_eq!(r.status, 403);
    let r = get_with(f.gw.http(), "/acme-only", &[("x-api-key", &f.current.key)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(f.up.hits(), 1);
}

#[tokio::test]
async fn shadow_mode_lets_a_denied_request_through_and_records_it() {
    let f = fixture();
    let r = get_with(f.gw.http(), "/shadow/x", &[("x-api-key", &f.intern.key)]).await;
    assert_eq!(r.status, 200);
    let r = get(f.gw.http(), "/shadow/anonymous").await;
    assert_eq!(r.status, 200);
    let line = f.log("/shadow/x").await;
    assert!(line.contains("authz.role_missing:shadow_deny"), "{line}");
    let line = f.log("/shadow/anonymous").await;
    assert!(line.contains("auth.missing:shadow_deny"), "{line}");
    let m = f.metrics();
    assert!(
        m.contains("rampart_access_decisions_total{route=\"shadow\",reason=\"authz.role_missing\",outcome=\"shadow_deny\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn client_sent_identity_headers_are_stripped_on_every_route() {
    let f = fixture();
    let spoof = [
        ("x-consumer-id", "admin"),
        ("x-consumer-roles", "admin"),
        ("x-consumer-anything", "x"),
    ];
    let r = get_with(f.gw.http(), "/public/x", &spoof).await;
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    for (name, _) in spoof {
        assert!(h.get(name).is_none(), "{name} reached the upstream: {h}");
    }
    let mut with_key = spoof.to_vec();
    with_key.push(("x-api-key", &f.intern.key));
    let r = get_with(f.gw.http(), "/bearer-not/../public/y", &with_key).await;
    assert_eq!(r.status, 200);
    let r = get_with(f.gw.http(), "/fwd", &with_key).await;
    let h = &r.json()["headers"];
    assert_eq!(h["x-consumer-id"], "intern");
    assert_eq!(h["x-consumer-roles"], "guest");
    assert!(h.get("x-consumer-anything").is_none());
}

#[tokio::test]
async fn bearer_and_query_sources_work_where_enabled_and_the_key_is_removed() {
    let f = fixture();
    let auth = format!("Bearer {}", f.current.key);
    let r = get_with(f.gw.http(), "/bearer", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("authorization").is_none());
    // The header source is not enabled on the bearer route.
    let r = get_with(f.gw.http(), "/bearer", &[("x-api-key", &f.current.key)]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"rampart\"")
    );

    let r = get(
        f.gw.http(),
        &format!("/query/x?a=1&api_key={}&b=2", f.current.key),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["uri"], "/query/x?a=1&b=2");
    let line = f.log("/query/x").await;
    assert!(!line.contains(&f.current.key), "{line}");
    // Query keys are refused on routes that did not enable them.
    let r = get(f.gw.http(), &format!("/orders/1?api_key={}", f.current.key)).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn forward_credentials_keeps_the_key_for_the_upstream() {
    let f = fixture();
    let r = get_with(f.gw.http(), "/fwd", &[("x-api-key", &f.current.key)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-api-key"], f.current.key.as_str());
}

#[test]
fn keys_new_prints_a_key_and_a_config_entry_that_work() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let base = "version: 1\nlisteners: [{ name: public, bind: \"127.0.0.1:0\" }]\nidentity: { api_keys: { pepper: { file: pepper.txt } } }\n";
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, base).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["keys", "new", "--consumer", "acme", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap();
    let entry = stdout
        .lines()
        .find_map(|l| l.strip_prefix("config: - "))
        .unwrap();
    assert!(key.starts_with("rpk_"));
    assert!(
        !entry.contains(key),
        "the config entry must not contain the key"
    );
    // The printed hash is the peppered hash of the printed key.
    let hash = entry.split('"').nth(1).unwrap();
    let want = rampart_identity::api_key::hash_key(PEPPER.as_bytes(), key.as_bytes());
    assert_eq!(rampart_config::parse_key_hash(hash).unwrap(), want);

    let full = format!("{base}consumers:\n  - id: acme\n    api_keys: [{entry}]\nupstreams: {{ up: {{ targets: [{{ url: \"http://127.0.0.1:9\" }}] }} }}\nroutes:\n  - {{ name: r, match: {{ path_prefix: / }}, upstream: up, authenticate: [api_key] }}\n  - {{ name: open, match: {{ path_prefix: /open }}, upstream: up }}\n");
    std::fs::write(&path, full).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: routes[1].authenticate: route \"open\" is public"),
        "{stderr}"
    );
}

#[test]
fn identity_config_mistakes_are_named_by_path() {
    let cases = [
        (
            "identity: { jwt: { corp: { issuer: \"https://idp\", audiences: [a], algorithms: [RS256, HS256], jwks_url: \"https://idp/jwks\" } } }",
            "identity.jwt.corp.algorithms: HS* algorithms cannot be mixed",
        ),
        (
            "identity: { jwt: { corp: { issuer: \"https://idp\", audiences: [], algorithms: [RS256], jwks_url: \"https://idp/jwks\" } } }",
            "identity.jwt.corp.audiences",
        ),
        (
            "identity: { jwt: { corp: { issuer: \"https://idp\", audiences: [a], algorithms: [RS256], jwks_url: \"http://idp.example.com/jwks\" } } }",
            "identity.jwt.corp.jwks_url",
        ),
        (
            "identity: { jwt: { corp: { issuer: \"https://idp\", audiences: [a], algorithms: [none], jwks_url: \"https://idp/jwks\" } } }",
            "identity.jwt.corp.algorithms",
        ),
        (
            "consumers: [{ id: a, api_keys: [{ id: k, hash: \"hmac-sha256:00\" }] }]",
            "consumers[0].api_keys[0].hash",
        ),
        (
            "consumers: [{ id: a, api_keys: [{ id: k, hash: \"hmac-sha256:0000000000000000000000000000000000000000000000000000000000000000\" }] }]",
            "identity.api_keys.pepper",
        ),
        (
            "routes: [{ name: r, match: { path_prefix: / }, upstream: up, authenticate: [\"jwt:nope\"] }]",
            "routes[0].authenticate[0]: unknown JWT issuer",
        ),
        (
            "routes: [{ name: r, match: { path_prefix: / }, upstream: up, authorize: { roles_any: [a] } }]",
            "routes[0].authorize: authorization needs an identity",
        ),
    ];
    assert_config_errors(&cases);
}
