//! Token parsing that leaves no room for two readings (duplicate JSON member names, short
//! HMAC secrets) and Cedar principals that a token cannot impersonate: a token subject is
//! never a configured consumer, and a token never rewrites the operator's attributes.

mod support;

use support::jwt::{b64, now};
use support::*;

const SECRET: &str = "hs-test-secret-0123456789abcdef-0123456789";
const ISS: &str = "https://hs.example";

/// A token whose header and claims are exactly these JSON texts, HS256-signed.
fn raw_token(header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET.as_bytes());
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(sig.as_ref()))
}

fn claims_text(extra: &str) -> String {
    format!(
        r#"{{"iss":"{ISS}","aud":"orders-api","exp":{},"iat":{}{extra}}}"#,
        now() + 600,
        now()
    )
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn gateway(up: &TestUpstream) -> TestGateway {
    gateway_on(up, "127.0.0.1:0")
}

fn gateway_on(up: &TestUpstream, bind: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hs.secret"), SECRET).unwrap();
    std::fs::write(
        dir.path().join("acme.cedar"),
        "permit (principal == Consumer::\"acme\", action, resource);",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("loopback.cedar"),
        "permit (principal, action, resource) when { context.client_ip.isInRange(ip(\"127.0.0.0/8\")) };",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("gold.cedar"),
        "permit (principal, action, resource) when { principal.attributes has tier && principal.attributes.tier == \"gold\" };",
    )
    .unwrap();
    let yaml = format!(
        r#"version: 1
workers: 1
access_log: {{ output: "{}" }}
listeners: [{{ name: public, bind: "{bind}" }}]
identity:
  jwt:
    hs: {{ issuer: "{ISS}", audiences: [orders-api], algorithms: [HS256], secret: {{ file: hs.secret }}, consumer_claim: client_id }}
consumers:
  - {{ id: acme, attributes: {{ tier: gold }} }}
  - {{ id: bob, attributes: {{ tier: free }} }}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: api, match: {{ path_prefix: /api }}, upstream: up, authenticate: ["jwt:hs"] }}
  - {{ name: acme-only, match: {{ path_prefix: /acme }}, upstream: up, authenticate: ["jwt:hs"], authorize: {{ policies: [acme.cedar] }} }}
  - {{ name: gold, match: {{ path_prefix: /gold }}, upstream: up, authenticate: ["jwt:hs"], authorize: {{ policies: [gold.cedar] }} }}
  - {{ name: loopback, match: {{ path_prefix: /loopback }}, upstream: up, authenticate: ["jwt:hs"], authorize: {{ policies: [loopback.cedar] }} }}
"#,
        dir.path().join("access.log").display(),
        up.addr
    );
    start_in(&yaml, dir)
}

async fn call(gw: &TestGateway, path: &str, token: &str) -> Reply {
    get_with(
        gw.http(),
        path,
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

#[tokio::test]
async fn refuses_tokens_with_duplicate_claim_names() {
    let up = TestUpstream::echo();
    let gw = gateway(&up);
    let dup = raw_token(HEADER, &claims_text(r#","sub":"alice","sub":"admin""#));
    let r = call(&gw, "/api/dup", &dup).await;
    assert_eq!(r.status, 401);
    let line = access_log_line(&gw.dir.path().join("access.log"), "/api/dup").await;
    assert!(line.contains("\"code\":\"auth.jwt.malformed\""), "{line}");
    // A duplicate deeper in the claims is refused too.
    let nested = raw_token(HEADER, &claims_text(r#","sub":"a","ctx":{"x":1,"x":2}"#));
    assert_eq!(call(&gw, "/api/nested", &nested).await.status, 401);
    let ok = raw_token(HEADER, &claims_text(r#","sub":"alice""#));
    assert_eq!(call(&gw, "/api/ok", &ok).await.status, 200);
}

#[tokio::test]
async fn refuses_tokens_with_duplicate_header_names() {
    let up = TestUpstream::echo();
    let gw = gateway(&up);
    let dup = raw_token(
        r#"{"alg":"HS256","typ":"JWT","typ":"at+jwt"}"#,
        &claims_text(r#","sub":"alice""#),
    );
    assert_eq!(call(&gw, "/api/x", &dup).await.status, 401);
    assert_eq!(up.hits(), 0);
}

#[test]
fn refuses_hs384_and_hs512_secrets_shorter_than_their_hash() {
    // RFC 7518 §3.2: at least 48 bytes for HS384, 64 for HS512.
    for (alg, len, ok) in [
        ("HS384", 47, false),
        ("HS384", 48, true),
        ("HS512", 63, false),
        ("HS512", 64, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hs.secret"), "k".repeat(len)).unwrap();
        let yaml = format!(
            "version: 1\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nidentity:\n  jwt:\n    hs: {{ issuer: \"{ISS}\", audiences: [a], algorithms: [{alg}], secret: {{ file: hs.secret }} }}\nupstreams: {{ up: {{ targets: [{{ url: \"http://127.0.0.1:9\" }}] }} }}\nroutes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up, authenticate: [\"jwt:hs\"] }}]\n"
        );
        match rampart::start(&yaml, dir.path()) {
            Ok(_) => assert!(ok, "{alg} with {len} bytes was accepted"),
            Err(e) => {
                assert!(!ok, "{alg} with {len} bytes was refused: {e:#}");
                let text = format!("{e:#}");
                assert!(
                    text.contains("identity.jwt.hs") && text.contains("at least"),
                    "{text}"
                );
            }
        }
    }
}

#[tokio::test]
async fn token_subject_named_like_a_consumer_is_not_that_consumer() {
    // The audit's bypass: `sub: acme` matched `principal == Consumer::"acme"`.
    let up = TestUpstream::echo();
    let gw = gateway(&up);
    let spoof = raw_token(HEADER, &claims_text(r#","sub":"acme""#));
    assert_eq!(call(&gw, "/acme/x", &spoof).await.status, 403);
    // A token mapped to the consumer by the configured claim is that consumer.
    let mapped = raw_token(HEADER, &claims_text(r#","sub":"u-7","client_id":"acme""#));
    assert_eq!(call(&gw, "/acme/x", &mapped).await.status, 200);
}

#[tokio::test]
async fn configured_attributes_win_over_token_claims() {
    let up = TestUpstream::echo();
    let gw = gateway(&up);
    // bob is `tier: free` in the config; his token says gold.
    let bob = raw_token(
        HEADER,
        &claims_text(r#","sub":"u-1","client_id":"bob","tier":"gold""#),
    );
    assert_eq!(call(&gw, "/gold/x", &bob).await.status, 403);
    let acme = raw_token(
        HEADER,
        &claims_text(r#","sub":"u-2","client_id":"acme","tier":"free""#),
    );
    assert_eq!(call(&gw, "/gold/x", &acme).await.status, 200);
    // An unmapped subject's own claims still count for it (as a Subject).
    let unmapped = raw_token(HEADER, &claims_text(r#","sub":"u-3","tier":"gold""#));
    assert_eq!(call(&gw, "/gold/x", &unmapped).await.status, 200);
}

#[tokio::test]
async fn refuses_repeated_authorization_headers() {
    let up = TestUpstream::echo();
    let gw = gateway(&up);
    let good = raw_token(HEADER, &claims_text(r#","sub":"alice""#));
    let req = format!(
        "GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {good}\r\nAuthorization: Bearer forged.token.here\r\n\r\n"
    );
    let text = raw(gw.http(), req.as_bytes()).await;
    assert_eq!(raw_status(&text), 401, "{text}");
    assert_eq!(up.hits(), 0);
    let line = access_log_line(
        &gw.dir.path().join("access.log"),
        "auth.credential_repeated",
    )
    .await;
    assert!(line.contains("/api/x"), "{line}");
    assert_eq!(call(&gw, "/api/x", &good).await.status, 200);
}

#[tokio::test]
async fn cedar_sees_ipv4_clients_of_a_dual_stack_listener_as_ipv4() {
    // `::ffff:127.0.0.1` is not in 127.0.0.0/8 for Cedar: uncanonicalised, every IPv4
    // client of a `[::]` listener was denied on every such policy.
    let up = TestUpstream::echo();
    let gw = gateway_on(&up, "[::]:0");
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], gw.http().port()));
    let token = raw_token(HEADER, &claims_text(r#","sub":"alice""#));
    let r = get_with(
        v4,
        "/loopback/x",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}
