//! An upstream's OAuth2 client-credentials token, end to end against a real token
//! endpoint: the gateway fetches it once for a burst of requests, sends it instead of the
//! caller's credential, renews it before it expires without failing a request, drops it
//! when the upstream refuses it, answers 502 without hammering an endpoint that refuses
//! the gateway, and never logs the secret or the token.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use support::*;

const SECRET: &str = "cs_partner_secret_0123456789";

/// A token endpoint issuing `tok-1`, `tok-2`, … with the given lifetime, or refusing the
/// client when `refuse` is set.
struct TokenEndpoint {
    server: TestUpstream,
    refuse: Arc<Mutex<bool>>,
}

fn token_endpoint(expires_in: u64, delay_ms: u64) -> TokenEndpoint {
    let issued = Arc::new(AtomicUsize::new(0));
    let refuse = Arc::new(Mutex::new(false));
    let r = refuse.clone();
    let server = TestUpstream::with(move |_| {
        if *r.lock().unwrap() {
            let body =
                format!(r#"{{"error":"invalid_client","error_description":"{SECRET} is wrong"}}"#);
            return Answer {
                status: 401,
                ..Answer::ok(body)
            }
            .header("content-type", "application/json");
        }
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        Answer::ok(format!(
            r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{expires_in}}}"#
        ))
        .header("content-type", "application/json")
        .delayed(std::time::Duration::from_millis(delay_ms))
    });
    TokenEndpoint { server, refuse }
}

fn config(idp: &TestUpstream, up: &TestUpstream, log: &std::path::Path) -> String {
    std::env::set_var("RAMPART_TEST_OAUTH_SECRET", SECRET);
    format!(
        r#"version: 1
workers: 1
access_log: {{ output: "{log}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  partner:
    targets: [{{ url: "http://{up}" }}]
    credentials:
      oauth2:
        token_url: "http://{idp}/oauth/token"
        client_id: gateway
        client_secret: {{ env: RAMPART_TEST_OAUTH_SECRET }}
        scopes: [quotes.read]
routes:
  - {{ name: partner, match: {{ path_prefix: /partner }}, upstream: partner }}
"#,
        log = log.display(),
        idp = idp.addr,
        up = up.addr,
    )
}

fn bearer(seen: &Seen) -> String {
    seen.headers["authorization"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_burst_of_requests_shares_one_token_fetch_and_callers_cannot_replace_it() {
    let idp = token_endpoint(3600, 200);
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = start_in(&config(&idp.server, &up, &log), dir);
    let addr = gw.http();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        calls.spawn(async move {
            get_with(
                addr,
                "/partner/quotes",
                &[("authorization", "Bearer caller-token")],
            )
            .await
        });
    }
    while let Some(r) = calls.join_next().await {
        assert_eq!(r.unwrap().status, 200);
    }
    assert_eq!(idp.server.hits(), 1, "one fetch for the whole burst");
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 20);
    assert!(seen.iter().all(|s| bearer(s) == "Bearer tok-1"));
    // The token request of RFC 6749 §4.4, the client authenticated by HTTP basic auth.
    let asked = idp.server.last();
    assert_eq!(asked.method, "POST");
    assert_eq!(asked.uri, "/oauth/token");
    assert_eq!(
        asked.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        &asked.body[..],
        b"grant_type=client_credentials&scope=quotes.read"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("gateway:{SECRET}"));
    assert_eq!(
        asked.headers["authorization"],
        format!("Basic {basic}").as_str()
    );
    // Counted, and neither the secret nor a token in the log.
    assert!(gw
        .feature_metrics()
        .contains("rampart_upstream_token_fetches_total{upstream=\"partner\",result=\"ok\"} 1"));
    let text = wait_for_file(&log, |t| complete_lines(t).count() >= 20).await;
    assert!(!text.contains(SECRET) && !text.contains("tok-1") && !text.contains("caller-token"));
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires_without_failing_a_request() {
    // Lives 2 s, so it is renewed after 1 s (at most half its life early).
    let idp = token_endpoint(2, 0);
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = start_in(&config(&idp.server, &up, &log), dir);
    let renewed = eventually(async || {
        let r = get(gw.http(), "/partner/q").await;
        assert_eq!(r.status, 200, "no request fails while the token is renewed");
        bearer(&up.last()) == "Bearer tok-2"
    })
    .await;
    assert!(renewed, "the second token reached the upstream");
    assert_eq!(idp.server.hits(), 2);
}

#[tokio::test]
async fn a_token_the_upstream_refuses_is_dropped_and_fetched_anew() {
    let idp = token_endpoint(3600, 0);
    let up = TestUpstream::with(|seen| match seen.headers["authorization"].as_bytes() {
        b"Bearer tok-1" => Answer::status(401),
        _ => Answer::ok("fine"),
    });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = start_in(&config(&idp.server, &up, &log), dir);
    assert_eq!(get(gw.http(), "/partner/q").await.status, 401);
    let r = get(gw.http(), "/partner/q").await;
    assert_eq!(r.status, 200);
    assert_eq!(bearer(&up.last()), "Bearer tok-2");
}

#[tokio::test]
async fn without_a_token_requests_get_502_and_the_endpoint_is_asked_once() {
    let idp = token_endpoint(3600, 0);
    *idp.refuse.lock().unwrap() = true;
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = start_in(&config(&idp.server, &up, &log), dir);
    for _ in 0..5 {
        let r = get(gw.http(), "/partner/q").await;
        assert_eq!(r.status, 502);
        assert!(
            r.text().contains("upstream.credential_unavailable"),
            "{}",
            r.text()
        );
        assert!(!r.text().contains(SECRET));
    }
    assert_eq!(idp.server.hits(), 1, "refused at once after a failed fetch");
    assert_eq!(
        up.hits(),
        0,
        "nothing reached the upstream without its credential"
    );
    let line = access_log_line(&log, "upstream.credential_unavailable").await;
    assert!(!line.contains(SECRET));
    assert!(gw
        .feature_metrics()
        .contains("rampart_upstream_token_fetches_total{upstream=\"partner\",result=\"error\"} 1"));
}

#[test]
fn bad_oauth2_credentials_are_refused_with_the_field_and_the_reason() {
    std::env::set_var("RAMPART_TEST_OAUTH_SECRET_2", "x");
    let refused = |oauth2: &str, want: &str| {
        let yaml = format!(
            "version: 1\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
             upstreams: {{ up: {{ targets: [{{ url: \"http://127.0.0.1:9\" }}], credentials: {{ oauth2: {{ {oauth2} }} }} }} }}\n\
             routes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up }}]\n"
        );
        let err = rampart::compile_str(&yaml, std::path::Path::new("."))
            .err()
            .unwrap_or_else(|| panic!("accepted: {oauth2}"))
            .to_string();
        assert!(err.contains(want), "wanted {want:?} in:\n{err}");
        assert!(!err.contains("RAMPART_TEST_OAUTH_SECRET_2: x"));
    };
    let secret = "client_secret: { env: RAMPART_TEST_OAUTH_SECRET_2 }";
    refused(
        &format!("token_url: \"http://idp.example/token\", client_id: gw, {secret}"),
        "upstreams.up.credentials.oauth2.token_url: \"http://idp.example/token\": the gateway fetches only over https",
    );
    refused(
        &format!(
            "token_url: \"https://idp.example/token\", client_id: gw, {secret}, scopes: [\"a b\"]"
        ),
        "upstreams.up.credentials.oauth2.scopes[0]: \"a b\" is not a scope token",
    );
    refused(
        "token_url: \"https://idp.example/token\", client_id: gw, client_secret: { env: RAMPART_TEST_NOT_SET_ANYWHERE }",
        "upstreams.up.credentials.oauth2.client_secret:",
    );
    refused(
        &format!(
            "token_url: \"https://idp.example/token\", client_id: gw, {secret}, client_auth: jwt"
        ),
        "client_auth",
    );
}

#[tokio::test]
async fn rotating_the_credentials_by_reload_fails_no_request() {
    use std::sync::atomic::AtomicBool;
    let idp = token_endpoint(3600, 0);
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), "key-one").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret-one").unwrap();
    let yaml = format!(
        r#"version: 1
workers: 1
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  partner:
    targets: [{{ url: "http://{up}" }}]
    credentials: {{ header: {{ name: X-Key, value: {{ file: key.txt }} }} }}
  oauth:
    targets: [{{ url: "http://{up}" }}]
    credentials:
      oauth2: {{ token_url: "http://{idp}/token", client_id: gw, client_secret: {{ file: secret.txt }} }}
routes:
  - {{ name: partner, match: {{ path_prefix: /partner }}, upstream: partner }}
  - {{ name: oauth, match: {{ path_prefix: /oauth }}, upstream: oauth }}
"#,
        up = up.addr,
        idp = idp.server.addr,
    );
    let gw = start_in(&yaml, dir);
    let addr = gw.http();
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for path in ["/partner/q", "/oauth/q"] {
        let (stop, failed) = (stop.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) || n < 20 {
                n += 1;
                if get(addr, path).await.status != 200 {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Both secrets rotate: the files change and the gateway reloads.
    assert!(eventually(async || idp.server.hits() >= 1).await);
    std::fs::write(gw.dir.path().join("key.txt"), "key-two").unwrap();
    std::fs::write(gw.dir.path().join("secret.txt"), "secret-two").unwrap();
    let plan = rampart::compile_str_with(&yaml, gw.dir.path(), &gw.gateway.state()).unwrap();
    gw.gateway.reload(plan).unwrap();
    let rotated = eventually(async || {
        let seen = up.seen.lock().unwrap().clone();
        let key = seen
            .iter()
            .rev()
            .find_map(|s| s.headers.get("x-key").cloned());
        let token = seen
            .iter()
            .rev()
            .find(|s| s.uri.starts_with("/oauth"))
            .map(|s| s.headers["authorization"].clone());
        key.is_some_and(|k| k == "key-two") && token.is_some_and(|t| t == "Bearer tok-2")
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    assert!(
        rotated,
        "the new key and a token fetched with the new secret are in use"
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no request failed across the switch"
    );
    // The second token was asked for with the new secret.
    let basic = base64::engine::general_purpose::STANDARD.encode("gw:secret-two");
    assert_eq!(
        idp.server.last().headers["authorization"],
        format!("Basic {basic}").as_str()
    );
}
