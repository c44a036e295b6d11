//! Cedar policies (ABAC) end to end: policies validated against the schema generated
//! from the config at load, and decisions on real requests, enforced and in shadow mode.

mod support;

use rampart_identity::api_key::{generate, NewKey};
use support::*;

const PEPPER: &str = "cedar-test-pepper-0123456789";

const POLICIES: &str = r#"
// Gold consumers may read reports.
permit (principal, action == Action::"GET", resource == Route::"reports")
when { principal.attributes has tier && principal.attributes.tier == "gold" };

// Exporters may export, for tenant t1 only.
permit (principal, action == Action::"reports.export", resource)
when {
  principal.roles.contains("exporter") &&
  context.headers has "x-tenant" && context.headers["x-tenant"] == "t1"
};

// Anyone may read the shadow route's reports; nobody from 10/8.
permit (principal, action == Action::"GET", resource == Route::"shadowed")
when { principal.attributes has tier && principal.attributes.tier == "gold" };
forbid (principal, action, resource) when { context.client_ip.isInRange(ip("10.0.0.0/8")) };
"#;

struct Setup {
    gw: TestGateway,
    gold: NewKey,
    free: NewKey,
}

fn config(
    dir: &std::path::Path,
    policies: &str,
    up: &TestUpstream,
    gold: &NewKey,
    free: &NewKey,
) -> String {
    std::fs::write(dir.join("pepper.txt"), PEPPER).unwrap();
    std::fs::write(dir.join("reports.cedar"), policies).unwrap();
    format!(
        r#"version: 1
workers: 1
access_log: {{ output: "{}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity: {{ api_keys: {{ pepper: {{ file: pepper.txt }} }} }}
consumers:
  - {{ id: acme, roles: [exporter], attributes: {{ tier: gold, region: eu, seats: 40 }}, api_keys: [{{ id: acme-1, hash: "{}" }}] }}
  - {{ id: bob, attributes: {{ tier: free }}, api_keys: [{{ id: bob-1, hash: "{}" }}] }}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: reports, match: {{ path: /reports }}, upstream: up, authenticate: [api_key], authorize: {{ policies: [reports.cedar] }} }}
  - {{ name: export, match: {{ path: /reports/export }}, upstream: up, authenticate: [api_key], authorize: {{ policies: [reports.cedar], action: reports.export, policy_headers: [x-tenant] }} }}
  - {{ name: shadowed, match: {{ path: /shadowed }}, upstream: up, authenticate: [api_key], authorize: {{ policies: [reports.cedar] }}, auth_mode: shadow }}
"#,
        dir.join("access.log").display(),
        gold.hash,
        free.hash,
        up.addr
    )
}

fn setup(up: &TestUpstream) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (gold, free) = (
        generate(PEPPER.as_bytes()).unwrap(),
        generate(PEPPER.as_bytes()).unwrap(),
    );
    let yaml = config(dir.path(), POLICIES, up, &gold, &free);
    Setup {
        gw: start_in(&yaml, dir),
        gold,
        free,
    }
}

impl Setup {
    async fn line(&self, needle: &str) -> String {
        access_log_line(&self.gw.dir.path().join("access.log"), needle).await
    }
}

#[tokio::test]
async fn policies_permit_by_attribute_and_deny_by_default() {
    let up = TestUpstream::echo();
    let s = setup(&up);
    let r = get_with(s.gw.http(), "/reports", &[("x-api-key", &s.gold.key)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get_with(
        s.gw.http(),
        "/reports?who=free",
        &[("x-api-key", &s.free.key)],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "authz.denied");
    assert!(s
        .line("who")
        .await
        .contains("\"code\":\"authz.policy_denied\""));
    // No policy permits POST: denied by default.
    let r = send(
        s.gw.http(),
        http::Request::post("/reports")
            .header("x-api-key", &s.gold.key)
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn route_actions_and_context_headers_reach_policies() {
    let up = TestUpstream::echo();
    let s = setup(&up);
    let ok = get_with(
        s.gw.http(),
        "/reports/export",
        &[("x-api-key", &s.gold.key), ("x-tenant", "t1")],
    )
    .await;
    assert_eq!(ok.status, 200);
    let other = get_with(
        s.gw.http(),
        "/reports/export",
        &[("x-api-key", &s.gold.key), ("x-tenant", "t2")],
    )
    .await;
    assert_eq!(other.status, 403);
    let missing = get_with(
        s.gw.http(),
        "/reports/export",
        &[("x-api-key", &s.gold.key)],
    )
    .await;
    assert_eq!(missing.status, 403);
    let no_role = get_with(
        s.gw.http(),
        "/reports/export",
        &[("x-api-key", &s.free.key), ("x-tenant", "t1")],
    )
    .await;
    assert_eq!(no_role.status, 403);
}

#[tokio::test]
async fn shadow_mode_records_a_policy_denial_and_lets_it_through() {
    let up = TestUpstream::echo();
    let s = setup(&up);
    let r = get_with(s.gw.http(), "/shadowed", &[("x-api-key", &s.free.key)]).await;
    assert_eq!(r.status, 200);
    let line = s.line("/shadowed").await;
    assert!(line.contains("authz.policy_denied:shadow_deny"), "{line}");
}

#[test]
fn a_policy_that_does_not_fit_the_schema_fails_the_load() {
    let up_addr = "127.0.0.1:9";
    let cases = [
        (
            "permit (principal, action, resource) when { principal.attributes has teir && principal.attributes.teir == \"gold\" };",
            "policy reports.cedar:policy0",
        ),
        (
            "permit (principal, action == Action::\"reports.delete\", resource);",
            "reports.delete",
        ),
        (
            "permit (principal, action, resource) when { context.client_ipp == ip(\"127.0.0.1\") };",
            "client_ipp",
        ),
        (
            "permit (principal, action, resource) when { principal.attributes has seats && principal.attributes.seats == \"forty\" };",
            "routes[0].authorize.policies",
        ),
        ("permit (principal, action, resource) when { ", "routes[0].authorize.policies[0]"),
    ];
    for (policy, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (gold, free) = (
            generate(PEPPER.as_bytes()).unwrap(),
            generate(PEPPER.as_bytes()).unwrap(),
        );
        let up = TestUpstream::with(|_| Answer::ok(""));
        let yaml =
            config(dir.path(), policy, &up, &gold, &free).replace(&up.addr.to_string(), up_addr);
        let err = rampart::compile_str(&yaml, dir.path())
            .err()
            .unwrap_or_else(|| panic!("accepted: {policy}"))
            .to_string();
        assert!(err.contains(want), "{policy}\nwanted {want:?} in:\n{err}");
    }
}
