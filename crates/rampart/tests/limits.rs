//! Local rate limits, quotas, plans and concurrency limits end to end: a real gateway, a
//! real upstream, real requests; the 429s and their headers as a client sees them.

mod support;

use std::time::Duration;

use rampart_identity::api_key::{generate, NewKey};
use support::*;

const PEPPER: &str = "limits-test-pepper-0123456789";

struct Setup {
    gw: TestGateway,
    up: TestUpstream,
    gold: NewKey,
    free: NewKey,
    yaml: String,
}

fn config(
    up: &TestUpstream,
    dir: &std::path::Path,
    gold: &NewKey,
    free: &NewKey,
    free_plan_quota: u64,
) -> String {
    std::fs::write(dir.join("pepper.txt"), PEPPER).unwrap();
    format!(
        r#"version: 1
workers: 2
access_log: {{ output: "{log}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
trusted_proxies: []
identity: {{ api_keys: {{ pepper: {{ file: pepper.txt }} }} }}
plans:
  gold: {{ limits: [{{ rate: 100/s, burst: 100 }}], concurrency: 5 }}
  free: {{ limits: [{{ quota: {free_plan_quota}/hour }}] }}
consumers:
  - {{ id: acme, plan: gold, api_keys: [{{ id: acme-1, hash: "{gold}" }}] }}
  - {{ id: bob, plan: free, api_keys: [{{ id: bob-1, hash: "{free}" }}] }}
upstreams:
  up: {{ targets: [{{ url: "http://{up}" }}] }}
routes:
  - name: by-ip
    match: {{ path_prefix: /ip }}
    upstream: up
    rate_limit: {{ by: ip, limits: [{{ rate: 5/min, burst: 3 }}, {{ quota: 4/hour }}] }}
  - name: by-plan
    match: {{ path_prefix: /plan }}
    upstream: up
    authenticate: [api_key]
    rate_limit: {{ by: consumer }}
  - name: by-header
    match: {{ path_prefix: /tenant }}
    upstream: up
    rate_limit: {{ by: "header:x-tenant", limits: [{{ rate: 2/min }}] }}
  - name: costly
    match: {{ path_prefix: /export }}
    upstream: up
    rate_limit: {{ by: [ip, route], cost: 5, limits: [{{ rate: 10/min }}] }}
  - name: shadowed
    match: {{ path_prefix: /shadow }}
    upstream: up
    rate_limit: {{ by: ip, mode: shadow, limits: [{{ rate: 1/min }}] }}
  - name: slow
    match: {{ path_prefix: /slow }}
    upstream: up
    concurrency: {{ max: 2 }}
"#,
        log = dir.join("access.log").display(),
        gold = gold.hash,
        free = free.hash,
        up = up.addr,
    )
}

fn setup() -> Setup {
    let up = TestUpstream::with(|seen| {
        let a = Answer::ok("ok");
        if seen.uri.starts_with("/slow") {
            a.delayed(Duration::from_millis(500))
        } else {
            a
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (gold, free) = (
        generate(PEPPER.as_bytes()).unwrap(),
        generate(PEPPER.as_bytes()).unwrap(),
    );
    let yaml = config(&up, dir.path(), &gold, &free, 3);
    Setup {
        gw: start_in(&yaml, dir),
        up,
        gold,
        free,
        yaml,
    }
}

#[tokio::test]
async fn burst_then_refusal_with_retry_after_and_ratelimit_headers() {
    let s = setup();
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let r = get(s.gw.http(), "/ip/x").await;
        statuses.push(r.status.as_u16());
        last = Some(r);
    }
    // Burst 3 at 5/min: three pass, the fourth waits ~12 s.
    assert_eq!(statuses, [200, 200, 200, 429]);
    let r = last.unwrap();
    assert_eq!(r.code(), "limit.exceeded");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"by-ip\";q=5;w=60, \"by-ip-1\";q=4;w=3600")
    );
    let rl = r.header("ratelimit").unwrap();
    assert!(rl.starts_with("\"by-ip\";r=0;t="), "{rl}");
    // Admitted responses carry the headers too.
    let ok = get(s.gw.http(), "/tenant/a").await;
    assert_eq!(ok.header("ratelimit"), Some("\"by-header\";r=1;t=30"));
    assert_eq!(s.up.hits(), 4);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_ip_key() {
    let s = setup();
    for i in 0..3 {
        let spoof = format!("10.0.0.{i}");
        let r = get_with(s.gw.http(), "/ip/y", &[("x-forwarded-for", &spoof)]).await;
        assert_eq!(r.status, 200);
    }
    let r = get_with(s.gw.http(), "/ip/y", &[("x-forwarded-for", "10.9.9.9")]).await;
    assert_eq!(
        r.status, 429,
        "each spoofed address must not get its own budget"
    );
}

#[tokio::test]
async fn header_keys_count_separately() {
    let s = setup();
    for tenant in ["a", "b"] {
        for _ in 0..2 {
            assert_eq!(
                get_with(s.gw.http(), "/tenant", &[("x-tenant", tenant)])
                    .await
                    .status,
                200
            );
        }
        assert_eq!(
            get_with(s.gw.http(), "/tenant", &[("x-tenant", tenant)])
                .await
                .status,
            429
        );
    }
}

#[tokio::test]
async fn cost_per_request_uses_several_units() {
    let s = setup();
    assert_eq!(get(s.gw.http(), "/export").await.status, 200);
    assert_eq!(get(s.gw.http(), "/export").await.status, 200);
    // 10/min with cost 5: the third request is over.
    let r = get(s.gw.http(), "/export").await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn plans_apply_per_consumer_and_a_plan_change_by_reload_applies_to_all_on_it() {
    let s = setup();
    let key = |k: &NewKey| [("x-api-key", k.key.clone())];
    for _ in 0..3 {
        let h = key(&s.free);
        assert_eq!(
            get_with(s.gw.http(), "/plan", &[(h[0].0, &h[0].1)])
                .await
                .status,
            200
        );
    }
    let h = key(&s.free);
    let r = get_with(s.gw.http(), "/plan", &[(h[0].0, &h[0].1)]).await;
    assert_eq!(r.status, 429, "free plan: 3/hour");
    assert_eq!(r.header("ratelimit-policy"), Some("\"by-plan\";q=3;w=3600"));
    // The gold consumer is on another plan and another budget.
    let g = key(&s.gold);
    assert_eq!(
        get_with(s.gw.http(), "/plan", &[(g[0].0, &g[0].1)])
            .await
            .status,
        200
    );
    // Raise the free plan's quota: the state is kept, the new limit applies at once.
    let dir = s.gw.dir.path();
    let yaml = config(&s.up, dir, &s.gold, &s.free, 10);
    assert_ne!(yaml, s.yaml);
    let plan = rampart::compile_str_with(&yaml, dir, &s.gw.gateway.state()).unwrap();
    s.gw.gateway.reload(plan).unwrap();
    let r = get_with(s.gw.http(), "/plan", &[(h[0].0, &h[0].1)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"by-plan\";q=10;w=3600")
    );
    let rl = r.header("ratelimit").unwrap();
    assert!(rl.starts_with("\"by-plan\";r=6;"), "4 of 10 used: {rl}");
}

#[tokio::test]
async fn shadow_mode_logs_and_counts_but_lets_requests_pass() {
    let s = setup();
    for _ in 0..3 {
        assert_eq!(get(s.gw.http(), "/shadow/z").await.status, 200);
    }
    let text = wait_for_file(&s.gw.dir.path().join("access.log"), |t| {
        t.contains("limit.rate.shadow")
    })
    .await;
    assert!(text.contains("limit.rate.shadow:shadow_deny"), "{text}");
    let out = s.gw.feature_metrics();
    assert!(
        out.contains(
            "rampart_rate_limit_decisions_total{policy=\"shadowed\",outcome=\"shadow_limited\"} 2"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn concurrency_limit_refuses_the_third_in_flight_request_and_frees_slots() {
    let s = setup();
    let addr = s.gw.http();
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(async move {
                // Stagger so the first two hold their slots when the third arrives.
                tokio::time::sleep(Duration::from_millis(i * 100)).await;
                get(addr, "/slow").await.status.as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 429]);
    // The slots were released when the responses finished.
    assert_eq!(get(addr, "/slow").await.status, 200);
}

#[test]
fn limit_config_mistakes_are_named_by_path() {
    let cases = [
        ("routes: [{ name: r, match: { path_prefix: / }, upstream: up, rate_limit: { by: ip, limits: [{ rate: 10/s, quota: 5/day }] } }]", "routes[0].rate_limit.limits[0]"),
        ("routes: [{ name: r, match: { path_prefix: / }, upstream: up, rate_limit: { by: ip, limits: [{ rate: ten/s }] } }]", "invalid rate"),
        ("routes: [{ name: r, match: { path_prefix: / }, upstream: up, rate_limit: { by: ip } }]", "routes[0].rate_limit.limits"),
        ("routes: [{ name: r, match: { path_prefix: / }, upstream: up, rate_limit: { by: ip, store: redis, limits: [{ rate: 1/s }] } }]", "store: redis needs"),
        ("routes: [{ name: r, match: { path_prefix: / }, upstream: up, rate_limit: { by: nose, limits: [{ rate: 1/s }] } }]", "unknown limit key"),
        ("consumers: [{ id: a, plan: platinum }]", "consumers[0].plan: unknown plan"),
        ("redis: { url: \"http://127.0.0.1:6379\" }", "redis.url"),
    ];
    assert_config_errors(&cases);
}

#[tokio::test]
async fn api_key_and_claim_keys_count_per_credential_and_per_claim_value() {
    use support::jwt::{claims, TestKey};
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let rsa = TestKey::rsa();
    std::fs::write(dir.path().join("idp.pem"), rsa.rsa_pem()).unwrap();
    let (k1, k2) = (
        generate(PEPPER.as_bytes()).unwrap(),
        generate(PEPPER.as_bytes()).unwrap(),
    );
    let yaml = format!(
        r#"version: 1
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity:
  api_keys: {{ pepper: {{ file: pepper.txt }} }}
  jwt: {{ idp: {{ issuer: "https://idp.example", audiences: [orders-api], algorithms: [RS256], jwks_file: idp.pem }} }}
consumers:
  - {{ id: acme, api_keys: [{{ id: k1, hash: "{}" }}, {{ id: k2, hash: "{}" }}] }}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: keys, match: {{ path_prefix: /keys }}, upstream: up, authenticate: [api_key], rate_limit: {{ by: api_key, limits: [{{ rate: 1/min }}] }} }}
  - {{ name: claims, match: {{ path_prefix: /claims }}, upstream: up, authenticate: ["jwt:idp"], rate_limit: {{ by: "claim:tenant", limits: [{{ rate: 1/min }}] }} }}
"#,
        k1.hash, k2.hash, up.addr
    );
    let gw = start_in(&yaml, dir);
    // Two keys of one consumer: each has its own budget.
    for k in [&k1, &k2] {
        assert_eq!(
            get_with(gw.http(), "/keys", &[("x-api-key", &k.key)])
                .await
                .status,
            200
        );
        assert_eq!(
            get_with(gw.http(), "/keys", &[("x-api-key", &k.key)])
                .await
                .status,
            429
        );
    }
    // Two tokens (different subjects) of one tenant share a budget; another tenant does not.
    let token = |sub: &str, tenant: &str| {
        let mut c = claims("https://idp.example");
        c["sub"] = sub.into();
        c["tenant"] = tenant.into();
        format!("Bearer {}", rsa.mint("k", &c))
    };
    let call = |t: String| {
        let addr = gw.http();
        async move {
            get_with(addr, "/claims", &[("authorization", &t)])
                .await
                .status
        }
    };
    assert_eq!(call(token("u1", "t1")).await, 200);
    assert_eq!(call(token("u2", "t1")).await, 429);
    assert_eq!(call(token("u3", "t2")).await, 200);
}

#[tokio::test]
async fn new_connections_per_ip_are_limited_at_accept() {
    let up = TestUpstream::echo();
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlimits: {{ new_connections_per_ip: {{ rate: 3/min, burst: 3 }} }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ up: {{ targets: [{{ url: \"http://{}\" }}] }} }}\nroutes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up }}]\n",
        up.addr
    );
    let gw = start(&yaml);
    for _ in 0..3 {
        assert_eq!(get(gw.http(), "/").await.status, 200);
    }
    // The fourth connection in the same minute is closed at accept, before any request.
    let text = raw(gw.http(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        text.is_empty(),
        "expected the connection to be closed, got {text:?}"
    );
    assert_eq!(up.hits(), 3);
}
