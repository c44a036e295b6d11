//! JWT bearer tokens against a real IdP stand-in: wiremock serves the JWKS and discovery
//! documents over a real socket, tokens are signed with real keys, and the gateway's
//! fetches are counted on the IdP's side.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::jwt::{b64, claims, hs256, now, TestKey};
use support::*;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The IdP's key set, changeable while the test runs; status 200 or an outage.
#[derive(Clone)]
struct Jwks(Arc<Mutex<(u16, Value)>>);

impl Respond for Jwks {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let (status, doc) = self.0.lock().unwrap().clone();
        ResponseTemplate::new(status).set_body_json(doc)
    }
}

impl Jwks {
    fn set(&self, keys: Vec<Value>) {
        *self.0.lock().unwrap() = (200, json!({ "keys": keys }));
    }
    fn down(&self) {
        self.0.lock().unwrap().0 = 503;
    }
}

struct Idp {
    server: MockServer,
    jwks: Jwks,
}

impl Idp {
    async fn start(keys: Vec<Value>) -> Idp {
        let server = MockServer::start().await;
        let jwks = Jwks(Arc::new(Mutex::new((200, json!({ "keys": keys })))));
        Mock::given(path("/jwks"))
            .respond_with(jwks.clone())
            .mount(&server)
            .await;
        let issuer = server.uri();
        Mock::given(path("/.well-known/openid-configuration"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks") }),
                ),
            )
            .mount(&server)
            .await;
        Idp { server, jwks }
    }

    fn issuer(&self) -> String {
        self.server.uri()
    }

    async fn hits(&self, p: &str) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == p)
            .count()
    }
}

struct Setup {
    gw: TestGateway,
    up: TestUpstream,
}

/// A gateway whose one route accepts `jwt:corp`; `issuer_extra` is added to the issuer.
fn gateway(idp: &Idp, issuer_extra: &str) -> Setup {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"version: 1
workers: 1
access_log: {{ output: "{}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity:
  jwt:
    corp:
      issuer: "{}"
      audiences: [orders-api]
      algorithms: [RS256, ES256, EdDSA]
{}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: api, match: {{ path_prefix: / }}, upstream: up, authenticate: ["jwt:corp"], authorize: {{ scopes_any: [orders:read] }} }}
"#,
        dir.path().join("access.log").display(),
        idp.issuer(),
        if issuer_extra.is_empty() {
            format!("      jwks_url: \"{}/jwks\"", idp.issuer())
        } else {
            issuer_extra.to_string()
        },
        up.addr
    );
    Setup {
        gw: start_in(&yaml, dir),
        up,
    }
}

async fn call(s: &Setup, path: &str, token: &str) -> Reply {
    get_with(
        s.gw.http(),
        path,
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

impl Setup {
    async fn log_code(&self, needle: &str) -> String {
        let line = access_log_line(&self.gw.dir.path().join("access.log"), needle).await;
        let v: Value = serde_json::from_str(&line).unwrap();
        v["code"].as_str().unwrap_or("").to_string()
    }
}

#[tokio::test]
async fn valid_tokens_of_each_key_type_pass_with_identity_headers() {
    let (rsa, ec, ed) = (TestKey::rsa(), TestKey::p256(), TestKey::ed25519());
    let idp = Idp::start(vec![rsa.jwk("r1"), ec.jwk("e1"), ed.jwk("d1")]).await;
    let s = gateway(&idp, "");
    for (key, kid) in [(&rsa, "r1"), (&ec, "e1"), (&ed, "d1")] {
        let r = call(&s, "/orders", &key.mint(kid, &claims(&idp.issuer()))).await;
        assert_eq!(r.status, 200, "{kid}: {}", r.text());
        let h = &r.json()["headers"];
        assert_eq!(h["x-consumer-subject"], "user-1");
        assert_eq!(h["x-consumer-scopes"], "orders:read orders:write");
        assert_eq!(h["x-consumer-roles"], "reader");
        assert_eq!(h["x-consumer-auth-method"], "jwt");
        assert!(
            h.get("authorization").is_none(),
            "the token must not be forwarded"
        );
    }
    // One cold-start fetch served all three.
    assert_eq!(idp.hits("/jwks").await, 1);
}

#[tokio::test]
async fn alg_none_in_any_spelling_and_unlisted_algorithms_are_refused() {
    let rsa = TestKey::rsa();
    let idp = Idp::start(vec![rsa.jwk("r1")]).await;
    let s = gateway(&idp, "");
    let body = b64(claims(&idp.issuer()).to_string().as_bytes());
    for (i, alg) in ["none", "None", "NONE", "nOnE"].iter().enumerate() {
        let header = b64(json!({"alg": alg, "kid": "r1"}).to_string().as_bytes());
        for token in [format!("{header}.{body}."), format!("{header}.{body}.e30")] {
            let r = call(&s, &format!("/none/{i}"), &token).await;
            assert_eq!(r.status, 401, "{alg}");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer realm=\"rampart\", error=\"invalid_token\"")
            );
        }
    }
    let hs_signed_with_garbage = hs256(
        b"whatever-secret-whatever-secret!",
        &json!({"alg": "HS256", "kid": "r1"}),
        &claims(&idp.issuer()),
    );
    let r = call(&s, "/hs", &hs_signed_with_garbage).await;
    assert_eq!(r.status, 401);
    assert_eq!(s.log_code("/hs").await, "auth.jwt.bad_algorithm");
    assert_eq!(s.up.hits(), 0);
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused_in_every_form() {
    let rsa = TestKey::rsa();
    let idp = Idp::start(vec![rsa.jwk("r1")]).await;
    let s = gateway(&idp, "");
    let forms: Vec<Vec<u8>> = vec![
        rsa.rsa_pem().into_bytes(),
        rsa.rsa_spki_der(),
        rsa.jwk("r1").to_string().into_bytes(),
    ];
    for (i, secret) in forms.iter().enumerate() {
        let t = hs256(
            secret,
            &json!({"alg": "HS256", "kid": "r1", "typ": "JWT"}),
            &claims(&idp.issuer()),
        );
        let r = call(&s, &format!("/confusion/{i}"), &t).await;
        assert_eq!(r.status, 401, "form {i}");
    }
    assert_eq!(s.up.hits(), 0);
}

#[tokio::test]
async fn embedded_key_headers_are_never_fetched_or_trusted() {
    let rsa = TestKey::rsa();
    let attacker = TestKey::rsa();
    let idp = Idp::start(vec![rsa.jwk("r1")]).await;
    let evil = MockServer::start().await;
    Mock::given(path("/jwks"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"keys": [attacker.jwk("r1")]})),
        )
        .mount(&evil)
        .await;
    let s = gateway(&idp, "");
    let evil_url = format!("{}/jwks", evil.uri());
    let header = json!({
        "alg": "RS256", "kid": "r1",
        "jku": evil_url, "x5u": evil_url,
        "jwk": attacker.jwk("r1"),
        "x5c": [b64(&attacker.rsa_spki_der())],
    });
    let r = call(
        &s,
        "/embedded",
        &attacker.token(&header, &claims(&idp.issuer())),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(s.log_code("/embedded").await, "auth.jwt.bad_signature");
    assert_eq!(evil.received_requests().await.unwrap_or_default().len(), 0);
    // The legitimate key still works with the same headers present.
    let r = call(
        &s,
        "/embedded-ok",
        &rsa.token(&header, &claims(&idp.issuer())),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(evil.received_requests().await.unwrap_or_default().len(), 0);
}

#[tokio::test]
async fn kid_values_are_only_lookup_keys() {
    let rsa = TestKey::rsa();
    let idp = Idp::start(vec![rsa.jwk("r1")]).await;
    let s = gateway(&idp, "");
    warm(&s, &rsa, &idp).await;
    for (i, kid) in [
        "../../../../etc/passwd",
        "' OR '1'='1",
        "r1\u{0}",
        "/dev/null",
        "r1 ",
    ]
    .iter()
    .enumerate()
    {
        let r = call(
            &s,
            &format!("/kid/{i}"),
            &rsa.mint(kid, &claims(&idp.issuer())),
        )
        .await;
        assert_eq!(r.status, 401, "{kid:?}");
    }
    assert_eq!(s.log_code("/kid/0").await, "auth.jwt.unknown_kid");
}

#[tokio::test]
async fn claim_checks_refuse_each_bad_token_with_its_reason() {
    let rsa = TestKey::rsa();
    let idp = Idp::start(vec![rsa.jwk("r1")]).await;
    let s = gateway(&idp, "");
    let iss = idp.issuer();
    let with = |k: &str, v: Value| {
        let mut c = claims(&iss);
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = claims(&iss);
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let cases = [
        (
            "expired",
            with("exp", json!(now() - 120)),
            "auth.jwt.expired",
        ),
        (
            "nbf",
            with("nbf", json!(now() + 600)),
            "auth.jwt.not_yet_valid",
        ),
        (
            "iat",
            with("iat", json!(now() + 600)),
            "auth.jwt.issued_in_future",
        ),
        (
            "huge-exp",
            with("exp", json!(now() + 10 * 365 * 86_400)),
            "auth.jwt.lifetime_too_long",
        ),
        (
            "float-exp-past",
            with("exp", json!(now() as f64 - 100.5)),
            "auth.jwt.expired",
        ),
        (
            "iss-slash",
            with("iss", json!(format!("{iss}/"))),
            "auth.jwt.bad_issuer",
        ),
        (
            "iss-other",
            with("iss", json!("https://evil.example")),
            "auth.jwt.bad_issuer",
        ),
        (
            "aud",
            with("aud", json!("billing-api")),
            "auth.jwt.bad_audience",
        ),
        (
            "aud-list",
            with("aud", json!(["a", "b"])),
            "auth.jwt.bad_audience",
        ),
        ("no-exp", without("exp"), "auth.jwt.missing_claim"),
        ("no-aud", without("aud"), "auth.jwt.bad_audience"),
    ];
    for (name, c, reason) in cases {
        let r = call(&s, &format!("/claims/{name}"), &rsa.mint("r1", &c)).await;
        assert_eq!(r.status, 401, "{name}");
        assert_eq!(
            s.log_code(&format!("/claims/{name}")).await,
            reason,
            "{name}"
        );
    }
    // Within the 30 s leeway is fine; an audience list containing ours is fine.
    let ok = [
        with("exp", json!(now() - 10)),
        with("aud", json!(["x", "orders-api"])),
    ];
    for c in ok {
        assert_eq!(
            call(&s, "/claims/ok", &rsa.mint("r1", &c)).await.status,
            200
        );
    }
}

#[tokio::test]
async fn malformed_tokens_and_forged_signatures_are_refused() {
    let (rsa, ec) = (TestKey::rsa(), TestKey::p256());
    let idp = Idp::start(vec![rsa.jwk("r1"), ec.jwk("e1")]).await;
    let s = gateway(&idp, "");
    let good = rsa.mint("r1", &claims(&idp.issuer()));
    assert_eq!(call(&s, "/m/good", &good).await.status, 200);
    let (input, _) = good.rsplit_once('.').unwrap();
    // ECDSA (r, s) = (0, 0): must never verify.
    let ec_token = ec.mint("e1", &claims(&idp.issuer()));
    let (ec_input, _) = ec_token.rsplit_once('.').unwrap();
    let zero_sig = format!("{ec_input}.{}", b64(&[0u8; 64]));
    let bad = [
        format!("{good}.x"),
        format!("{good}garbage!"),
        format!("{good}=="),
        format!("{input}.{}", b64(b"not a signature")),
        good.replacen('.', ". ", 1),
        zero_sig,
    ];
    for (i, t) in bad.iter().enumerate() {
        let r = call(&s, &format!("/m/{i}"), t).await;
        assert_eq!(r.status, 401, "case {i}: {t}");
    }
    assert_eq!(s.up.hits(), 1);
}

#[tokio::test]
async fn idp_key_rotation_is_picked_up_and_removed_keys_stop_working() {
    let (k1, k2) = (TestKey::rsa(), TestKey::p256());
    let idp = Idp::start(vec![k1.jwk("k1")]).await;
    let s = gateway(
        &idp,
        &format!(
            "      jwks_url: \"{}/jwks\"\n      refresh: {{ min_interval: 1s, max_interval: 1s, unknown_kid_cooldown: 1s }}",
            idp.issuer()
        ),
    );
    let iss = idp.issuer();
    let t1 = k1.mint("k1", &claims(&iss));
    assert_eq!(call(&s, "/rot", &t1).await.status, 200);
    // The IdP adds k2 and starts signing with it.
    idp.jwks.set(vec![k1.jwk("k1"), k2.jwk("k2")]);
    let t2 = k2.mint("k2", &claims(&iss));
    eventually(|| async { call(&s, "/rot", &t2).await.status == 200 }).await;
    // k1 tokens stay valid while k1 is published...
    assert_eq!(call(&s, "/rot", &t1).await.status, 200);
    // ...and stop once the IdP removes it (the cached verification ends with the key).
    idp.jwks.set(vec![k2.jwk("k2")]);
    eventually(|| async { call(&s, "/rot", &t1).await.status == 401 }).await;
    assert_eq!(call(&s, "/rot", &t2).await.status, 200);
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_idp_is_down() {
    let rsa = TestKey::rsa();
    let idp = Idp::start(vec![rsa.jwk("r1")]).await;
    let s = gateway(
        &idp,
        &format!(
            "      jwks_url: \"{}/jwks\"\n      refresh: {{ min_interval: 1s, max_interval: 1s, unknown_kid_cooldown: 1s }}",
            idp.issuer()
        ),
    );
    assert_eq!(
        call(&s, "/up", &rsa.mint("r1", &claims(&idp.issuer())))
            .await
            .status,
        200
    );
    idp.jwks.down();
    let before = idp.hits("/jwks").await;
    // Wait until the gateway has tried (and failed) to refresh at least once.
    eventually(|| async { idp.hits("/jwks").await > before }).await;
    let mut c = claims(&idp.issuer());
    c["sub"] = json!("someone-new");
    let r = call(&s, "/down", &rsa.mint("r1", &c)).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn a_flood_of_random_kids_causes_at_most_one_fetch_per_cooldown() {
    let rsa = TestKey::rsa();
    let idp = Idp::start(vec![rsa.jwk("r1")]).await;
    let s = gateway(&idp, "");
    warm(&s, &rsa, &idp).await;
    assert_eq!(idp.hits("/jwks").await, 1);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let token = rsa.mint(&format!("random-{i}"), &claims(&idp.issuer()));
        let addr = s.gw.http();
        tasks.push(tokio::spawn(async move {
            get_with(
                addr,
                "/flood",
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await
            .status
        }));
    }
    // Past the brute-force budget (30 failures by default) the rest are refused with 429
    // before any key lookup; the first ones each look up an unknown kid.
    let mut unknown = 0;
    for t in tasks {
        match t.await.unwrap().as_u16() {
            401 => unknown += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(unknown >= 30, "{unknown} unknown-kid lookups");
    // The cold-start fetch began less than one cooldown (30 s) ago: no further fetch.
    assert_eq!(idp.hits("/jwks").await, 1);
}

#[tokio::test]
async fn oidc_discovery_finds_the_key_set() {
    let ec = TestKey::p256();
    let idp = Idp::start(vec![ec.jwk("e1")]).await;
    let s = gateway(&idp, "      discovery: true");
    let r = call(&s, "/disc", &ec.mint("e1", &claims(&idp.issuer()))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(idp.hits("/.well-known/openid-configuration").await, 1);
    assert_eq!(idp.hits("/jwks").await, 1);
}

#[tokio::test]
async fn a_cold_start_with_the_idp_down_fails_closed_quickly() {
    let rsa = TestKey::rsa();
    let idp = Idp::start(vec![rsa.jwk("r1")]).await;
    idp.jwks.down();
    let s = gateway(&idp, "");
    let started = std::time::Instant::now();
    let r = call(&s, "/cold", &rsa.mint("r1", &claims(&idp.issuer()))).await;
    assert_eq!(r.status, 401);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(s.log_code("/cold").await, "auth.jwt.no_keys");
}

#[tokio::test]
async fn local_pem_keys_and_hs256_secrets_work_without_any_fetch() {
    let rsa = TestKey::rsa();
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("idp.pem"), rsa.rsa_pem()).unwrap();
    let secret = "an-hs256-secret-of-at-least-32-bytes!";
    std::fs::write(dir.path().join("hs.secret"), secret).unwrap();
    let yaml = format!(
        r#"version: 1
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity:
  jwt:
    pem: {{ issuer: "https://idp.example", audiences: [orders-api], algorithms: [RS256], jwks_file: idp.pem }}
    hs: {{ issuer: "https://hs.example", audiences: [orders-api], algorithms: [HS256], secret: {{ file: hs.secret }} }}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: pem, match: {{ path_prefix: /pem }}, upstream: up, authenticate: ["jwt:pem"] }}
  - {{ name: hs, match: {{ path_prefix: /hs }}, upstream: up, authenticate: ["jwt:hs"] }}
"#,
        up.addr
    );
    let gw = start_in(&yaml, dir);
    let bearer = |t: String| format!("Bearer {t}");
    let r = get_with(
        gw.http(),
        "/pem",
        &[(
            "authorization",
            &bearer(rsa.mint("any", &claims("https://idp.example"))),
        )],
    )
    .await;
    assert_eq!(r.status, 200);
    let hs = hs256(
        secret.as_bytes(),
        &json!({"alg": "HS256"}),
        &claims("https://hs.example"),
    );
    assert_eq!(
        get_with(gw.http(), "/hs", &[("authorization", &bearer(hs))])
            .await
            .status,
        200
    );
    // An RS256 token is not accepted by the HS256 issuer, nor an HS256 one by the RSA one.
    let rs = rsa.mint("any", &claims("https://hs.example"));
    assert_eq!(
        get_with(gw.http(), "/hs", &[("authorization", &bearer(rs))])
            .await
            .status,
        401
    );
    let hs_pem = hs256(
        rsa.rsa_pem().as_bytes(),
        &json!({"alg": "HS256"}),
        &claims("https://idp.example"),
    );
    assert_eq!(
        get_with(gw.http(), "/pem", &[("authorization", &bearer(hs_pem))])
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn a_token_without_the_required_scope_is_403() {
    let rsa = TestKey::rsa();
    let idp = Idp::start(vec![rsa.jwk("r1")]).await;
    let s = gateway(&idp, "");
    let mut c = claims(&idp.issuer());
    c["scope"] = json!("billing:read");
    let r = call(&s, "/scope", &rsa.mint("r1", &c)).await;
    assert_eq!(r.status, 403);
    assert_eq!(s.log_code("/scope").await, "authz.scope_missing");
    // `scp` as an array is read too.
    let mut c = claims(&idp.issuer());
    c.as_object_mut().unwrap().remove("scope");
    c["scp"] = json!(["orders:read"]);
    assert_eq!(call(&s, "/scp", &rsa.mint("r1", &c)).await.status, 200);
}

/// One valid request, so the key set is loaded.
async fn warm(s: &Setup, key: &TestKey, idp: &Idp) {
    let r = call(s, "/warm", &key.mint("r1", &claims(&idp.issuer()))).await;
    assert_eq!(r.status, 200);
}

/// Polls `cond` every 100 ms for up to 10 s.
async fn eventually<F, Fut>(cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within 10 s");
}
