//! Bot rules end to end: real gateway (plain and TLS listeners), real upstream, real
//! clients. Rules on the user agent, missing headers and the JA4 fingerprint deny, score,
//! tag and limit as configured; the access log carries the JA4 of TLS connections and the
//! rules that matched.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;

const BROWSER: &[(&str, &str)] = &[
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
    ),
    ("accept", "text/html,application/xhtml+xml"),
    ("accept-language", "en-GB,en;q=0.5"),
];

struct Setup {
    gw: TestGateway,
    up: TestUpstream,
    ca: support::certs::TestCa,
}

fn setup() -> Setup {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let ca = support::certs::TestCa::new("bots");
    ca.leaf("api.test", &["api.test"]).write(dir.path(), "gw");
    let yaml = format!(
        r#"version: 1
workers: 2
access_log: {{ output: "{log}" }}
listeners:
  - {{ name: public, bind: "127.0.0.1:0" }}
  - {{ name: secure, bind: "127.0.0.1:0", tls: {{ certificates: [{{ cert_file: gw.pem, key_file: gw.key }}] }} }}
bot_rules:
  shop:
    - {{ name: scripted, user_agent: "(?i)^(python-requests|curl|wget|go-http-client)/", action: deny }}
    - {{ name: no-accept, missing: [accept], action: score, points: 3 }}
    - {{ name: no-language, missing: [accept-language], action: score, points: 3 }}
    - {{ name: crawler, user_agent: "(?i)bot|spider", action: tag }}
    - {{ name: scanner, user_agent: "^scanner/", action: limit, rate: 3/min }}
  tls:
    - {{ name: tls13, ja4: ["t13d*"], action: tag }}
    - {{ name: tls12, ja4: ["t12*"], action: deny }}
upstreams: {{ up: {{ targets: [{{ url: "http://{up}" }}] }} }}
routes:
  - {{ name: shop, match: {{ path_prefix: /shop }}, upstream: up, bots: {{ rules: [shop] }} }}
  - {{ name: trial, match: {{ path_prefix: /trial }}, upstream: up, bots: {{ rules: [shop], mode: shadow }} }}
  - name: search
    match: {{ path_prefix: /search }}
    upstream: up
    bots: {{ rules: [shop], threshold: 10 }}
    inspect: {{ paranoia: 3 }}
  - {{ name: fingerprinted, match: {{ path_prefix: /fp }}, upstream: up, bots: {{ rules: [tls] }} }}
"#,
        log = dir.path().join("access.log").display(),
        up = up.addr,
    );
    Setup {
        gw: start_in(&yaml, dir),
        up,
        ca,
    }
}

fn log(s: &Setup) -> std::path::PathBuf {
    s.gw.dir.path().join("access.log")
}

async fn get(s: &Setup, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::get(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(s.gw.http(), b.body(Full::new(Bytes::new())).unwrap()).await
}

/// The header as the upstream received it on its last request.
fn upstream_header(up: &TestUpstream, name: &str) -> Option<String> {
    up.last()
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn a_scripted_user_agent_is_denied_and_a_browser_passes() {
    let s = setup();
    let r = get(
        &s,
        "/shop/items",
        &[("user-agent", "python-requests/2.32.3")],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "authz.denied");
    let line = access_log_line(&log(&s), "bot.denied:deny").await;
    assert!(
        line.contains("\"detail\":{\"bot\":\"scripted,no-accept,no-language score=6\"}"),
        "{line}"
    );
    let r = get(&s, "/shop/items", BROWSER).await;
    assert_eq!(r.status, 200);
    assert_eq!(upstream_header(&s.up, "x-rampart-bot"), None);
    let m = s.gw.feature_metrics();
    assert!(
        m.contains("rampart_bot_matches_total{route=\"shop\",rule=\"scripted\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn missing_headers_add_up_to_the_threshold() {
    let s = setup();
    // A browser that sends no Accept-Language: 3 points, under the threshold of 5.
    let r = get(&s, "/shop/a", &BROWSER[..2]).await;
    assert_eq!(r.status, 200);
    access_log_line(&log(&s), "\"bot\":\"no-language score=3\"").await;
    // Neither Accept nor Accept-Language: 6 points.
    let r = get(&s, "/shop/b", &BROWSER[..1]).await;
    assert_eq!(r.status, 403);
    access_log_line(&log(&s), "bot.score:deny").await;
    // An empty header is as good as none.
    let r = get(
        &s,
        "/shop/c",
        &[BROWSER[0], ("accept", " "), ("accept-language", "")],
    )
    .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn a_tag_reaches_the_upstream_and_a_client_cannot_forge_one() {
    let s = setup();
    let mut h = BROWSER.to_vec();
    h[0] = ("user-agent", "Mozilla/5.0 (compatible; Googlebot/2.1)");
    assert_eq!(get(&s, "/shop/x", &h).await.status, 200);
    assert_eq!(
        upstream_header(&s.up, "x-rampart-bot").as_deref(),
        Some("crawler")
    );
    let mut forged = BROWSER.to_vec();
    forged.push(("x-rampart-bot", "trusted-partner"));
    assert_eq!(get(&s, "/shop/x", &forged).await.status, 200);
    assert_eq!(upstream_header(&s.up, "x-rampart-bot"), None);
}

#[tokio::test]
async fn a_limit_rule_allows_its_rate_per_client_then_429() {
    let s = setup();
    let mut h = BROWSER.to_vec();
    h[0] = ("user-agent", "scanner/1.0");
    for _ in 0..3 {
        assert_eq!(get(&s, "/shop/x", &h).await.status, 200);
    }
    let r = get(&s, "/shop/x", &h).await;
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    access_log_line(&log(&s), "bot.limited:deny").await;
    // Browsers are not counted against it.
    assert_eq!(get(&s, "/shop/x", BROWSER).await.status, 200);
}

#[tokio::test]
async fn shadow_mode_logs_and_lets_through() {
    let s = setup();
    let r = get(&s, "/trial/x", &[("user-agent", "curl/8.11.0")]).await;
    assert_eq!(r.status, 200);
    access_log_line(&log(&s), "bot.denied:shadow_deny").await;
}

#[tokio::test]
async fn bot_points_add_to_the_injection_score() {
    let s = setup();
    // `a<b` is a paranoia-3 XSS warning (3 points): not enough on its own...
    assert_eq!(get(&s, "/search?q=a%3Cb", BROWSER).await.status, 200);
    // ...but with a missing Accept-Language (3 more) the request reaches 5.
    let r = get(&s, "/search?q=a%3Cb", &BROWSER[..2]).await;
    assert_eq!(r.status, 403);
    let line = access_log_line(&log(&s), "waf.xss:deny").await;
    assert!(line.contains("score=6"), "{line}");
}

#[tokio::test]
async fn the_ja4_of_a_tls_client_is_logged_and_matched() {
    let s = setup();
    let client = TlsClient::trusting(&s.ca.pem());
    let conn = tls_connect(s.gw.addr("secure"), "api.test", &client)
        .await
        .unwrap();
    let r = conn
        .send(Request::get("/fp/x").body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        upstream_header(&s.up, "x-rampart-bot").as_deref(),
        Some("tls13")
    );
    let line = access_log_line(&log(&s), "\"path\":\"/fp/x\"").await;
    let ja4 = line
        .split("\"ja4\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    // TLS 1.3, SNI sent, ALPN http/1.1; the two hashes are 12 hex digits each.
    assert!(
        ja4.starts_with("t13d") && ja4[8..].starts_with("h1_"),
        "{ja4}"
    );
    let parts: Vec<&str> = ja4.split('_').collect();
    assert_eq!(parts.len(), 3, "{ja4}");
    assert!(parts[1..]
        .iter()
        .all(|p| p.len() == 12 && p.bytes().all(|c| c.is_ascii_hexdigit())));
    // The same client twice: the same fingerprint.
    let conn = tls_connect(s.gw.addr("secure"), "api.test", &client)
        .await
        .unwrap();
    conn.send(Request::get("/fp/y").body(Full::new(Bytes::new())).unwrap())
        .await;
    let again = access_log_line(&log(&s), "\"path\":\"/fp/y\"").await;
    assert!(again.contains(&format!("\"ja4\":\"{ja4}\"")), "{again}");
    // A client that offers only TLS 1.2 has a `t12` fingerprint, denied on this route.
    let mut old = TlsClient::trusting(&s.ca.pem());
    old.versions = vec![&rustls::version::TLS12];
    let conn = tls_connect(s.gw.addr("secure"), "api.test", &old)
        .await
        .unwrap();
    let r = conn
        .send(Request::get("/fp/z").body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(r.status, 403);
    access_log_line(&log(&s), "\"ja4\":\"t12d").await;
}

#[test]
fn bad_bot_rules_name_the_field_and_the_reason() {
    let with = |rules: &str, route: &str| {
        format!("bot_rules: {{ l: [{rules}] }}\nroutes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up, bots: {route} }}]")
    };
    let ok_route = "{ rules: [l] }";
    assert_config_errors(&[
        (&with("{ name: a, user_agent: \"(\", action: deny }", ok_route), "bot_rules.l[0].user_agent: not a valid regular expression"),
        (&with("{ name: a, action: deny }", ok_route), "bot_rules.l[0]: needs at least one condition"),
        (&with("{ name: a, missing: [accept], action: limit }", ok_route), "bot_rules.l[0].rate: required for action: limit"),
        (&with("{ name: a, missing: [accept], action: deny, points: 3 }", ok_route), "bot_rules.l[0].points: only for action: score"),
        (&with("{ name: a, missing: [accept], action: tag }, { name: a, missing: [accept], action: tag }", ok_route), "bot_rules.l[1].name: must be unique"),
        (&with("{ name: a, missing: [accept], action: tag }", "{ rules: [nope] }"), "routes[0].bots.rules[0]: no bot_rules list named \"nope\""),
        (&with("{ name: a, missing: [accept], action: block }", ok_route), "action"),
    ]);
}
