//! `rampart test`: policy tests as code, run through the compiled plan against an
//! in-process upstream, each case reported, the exit code telling CI.

use std::process::Command;

const CONFIG: &str = r#"version: 1
listeners: [{ name: public, bind: "0.0.0.0:8080" }]
admin: { bind: "127.0.0.1:9901", token: { env: NOT_NEEDED_IN_TESTS } }
identity:
  api_keys: { pepper: { env: RAMPART_PEPPER_NOT_ON_THIS_MACHINE } }
  jwt:
    corp: { issuer: "https://login.example.test/", audiences: [orders-api], algorithms: [ES256], jwks_url: "https://login.example.test/jwks" }
ip_lists: { blocked: { cidrs: [203.0.113.0/24] } }
upstreams:
  orders: { targets: [{ url: "https://orders.internal:8443" }] }
routes:
  - name: orders
    match: { path_prefix: /orders }
    upstream: orders
    authenticate: [api_key]
    authorize: { roles_any: [orders-reader] }
    ip_rules: { deny: [blocked] }
    mask: { fields: [{ path: "$.card.number", action: last4 }] }
  - name: reports
    match: { path_prefix: /reports }
    upstream: orders
    authenticate: ["jwt:corp"]
    authorize: { scopes_any: ["reports:read"] }
"#;

const CASES: &str = r#"consumers:
  - { id: alice, roles: [orders-reader], api_key: alice-test-key-0001 }
  - { id: intern, roles: [], api_key: intern-test-key-0002 }
cases:
  - name: a reader sees an order with the card masked
    request: { path: /orders/7, api_key: alice }
    upstream: { json: { id: 7, card: { number: "4111111111111111" } } }
    expect:
      status: 200
      code: none
      route: orders
      json: { /id: 7, /card/number: "************1111" }
      upstream:
        path: /orders/7
        headers: { x-consumer-id: alice }
        absent_headers: [x-api-key]
  - name: an intern is refused before the upstream
    request: { path: /orders/7, api_key: intern }
    expect: { status: 403, code: authz.role_missing, upstream: { reached: false } }
  - name: no key, no entry
    request: { path: /orders/7 }
    expect: { status: 401, code: auth.missing }
  - name: a blocked network is refused even with a good key
    request: { path: /orders/7, api_key: alice, client_ip: 203.0.113.9 }
    expect: { status: 403, code: ip.denied }
  - name: a token with the scope reads reports
    request: { path: /reports/q3, jwt: { issuer: corp, claims: { sub: bob, scope: "reports:read" } } }
    expect: { status: 200, route: reports, decisions: [auth.jwt.ok], upstream: { headers: { x-consumer-subject: bob } } }
  - name: a token without it does not
    request: { path: /reports/q3, jwt: { issuer: corp, claims: { sub: bob } } }
    expect: { status: 403, code: authz.scope_missing }
"#;

fn rampart_test(dir: &std::path::Path, cases: &str) -> (i32, String, String) {
    std::fs::write(dir.join("rampart.yaml"), CONFIG).unwrap();
    std::fs::write(dir.join("cases.yaml"), cases).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["test", "--config"])
        .arg(dir.join("rampart.yaml"))
        .arg(dir.join("cases.yaml"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_policy_of_a_config_is_tested_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = rampart_test(dir.path(), CASES);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.matches("PASS").count(), 6, "{out}");
    assert!(out.ends_with("6 cases: 6 passed, 0 failed\n"), "{out}");
}

#[test]
fn a_wrong_expectation_fails_with_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let cases = CASES
        .replace("code: authz.role_missing", "code: none")
        .replace("\"************1111\"", "\"4111111111111111\"")
        .replace(
            "absent_headers: [x-api-key]",
            "absent_headers: [x-consumer-id]",
        );
    let (code, out, _) = rampart_test(dir.path(), &cases);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  an intern is refused before the upstream\n      code: expected none, got authz.role_missing"), "{out}");
    assert!(
        out.contains(
            "client json /card/number: expected \"4111111111111111\", got \"************1111\""
        ),
        "{out}"
    );
    assert!(
        out.contains("upstream header x-consumer-id: present, expected absent"),
        "{out}"
    );
    assert!(out.ends_with("6 cases: 4 passed, 2 failed\n"), "{out}");
}

#[test]
fn a_malformed_cases_file_is_an_error_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = rampart_test(
        dir.path(),
        "cases:\n  - { name: x, request: { path: /a }, expect: { stauts: 200 } }\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("stauts"), "{err}");
    let (code, _, err) = rampart_test(dir.path(), "consumers: [{ id: alice, api_key: k }]\ncases:\n  - { name: x, request: { path: /a, api_key: bob }, expect: {} }\n");
    assert_eq!(code, 1, "{err}");
}
