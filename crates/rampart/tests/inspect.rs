//! Injection detection end to end: real gateway, real upstream, real clients. Attacks in
//! each place a value travels (path, query, form, JSON, headers, cookies) are refused with
//! a plain 403 before the upstream sees them, and the access log names the detector, the
//! field and the rule, never the value; everyday values pass byte for byte; exclusions,
//! shadow mode, thresholds, paranoia and sampling do what the docs say.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;

fn config(up: &TestUpstream, log: &std::path::Path) -> String {
    format!(
        r#"version: 1
workers: 2
access_log: {{ output: "{log}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  up: {{ targets: [{{ url: "http://{up}" }}] }}
routes:
  - name: open
    match: {{ path_prefix: /open }}
    upstream: up
  - name: api
    match: {{ path_prefix: /api }}
    upstream: up
    inspect: {{ exclude: [query.q, "xss:json./html", "json./notes/*/text"] }}
  - name: trial
    match: {{ path_prefix: /trial }}
    upstream: up
    inspect: {{ mode: shadow }}
  - name: strict
    match: {{ path_prefix: /strict }}
    upstream: up
    inspect: {{ paranoia: 2 }}
  - name: lenient
    match: {{ path_prefix: /lenient }}
    upstream: up
    inspect: {{ threshold: 10 }}
  - name: sampled
    match: {{ path_prefix: /sampled }}
    upstream: up
    inspect: {{ sample_percent: 1 }}
  - name: gzip
    match: {{ path_prefix: /gzip }}
    upstream: up
    json_limits: {{ allow_encoded_bodies: true }}
    inspect: {{}}
"#,
        log = log.display(),
        up = up.addr,
    )
}

struct Setup {
    gw: TestGateway,
    up: TestUpstream,
}

fn setup() -> Setup {
    let up = TestUpstream::with(|s| Answer::ok(s.body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&up, &dir.path().join("access.log"));
    Setup {
        gw: start_in(&yaml, dir),
        up,
    }
}

fn log(s: &Setup) -> std::path::PathBuf {
    s.gw.dir.path().join("access.log")
}

async fn request(
    s: &Setup,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(s.gw.http(), b.body(Full::new(body.into())).unwrap()).await
}

/// A GET without headers or body.
async fn get_path(s: &Setup, path: &str) -> Reply {
    request(s, "GET", path, &[], "").await
}

const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

#[tokio::test]
async fn attacks_are_refused_wherever_they_travel_and_the_upstream_never_sees_them() {
    let s = setup();
    // method, path, headers, body, the log's reason, and its finding.
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a str,
        &'a str,
    );
    let cases: &[Case] = &[
        (
            "GET",
            "/api/items?id=1%27%20OR%20%271%27%3D%271",
            &[],
            "",
            "waf.sqli",
            "sqli@query.id",
        ),
        (
            "GET",
            "/api/items/1%27%20union%20select%20password%20from%20users--",
            &[],
            "",
            "waf.sqli",
            "sqli@path",
        ),
        (
            "GET",
            "/api/files?name=..%2F..%2F..%2Fetc%2Fpasswd",
            &[],
            "",
            "waf.traversal",
            "traversal@query.name",
        ),
        (
            "POST",
            "/api/comments",
            &[JSON],
            r#"{"post":{"body":"<img src=x onerror=alert(document.cookie)>"}}"#,
            "waf.xss",
            "xss@json./post/body",
        ),
        (
            "POST",
            "/api/ping",
            &[FORM],
            "host=127.0.0.1%3B%20cat%20%2Ftmp%2Fx",
            "waf.command",
            "command@form.host",
        ),
        (
            "POST",
            "/api/hooks",
            &[JSON],
            r#"{"callback":"http://169.254.169.254/latest/meta-data/iam/"}"#,
            "waf.ssrf",
            "ssrf@json./callback",
        ),
        (
            "GET",
            "/api/me",
            &[("user-agent", "' or sleep(5)#")],
            "",
            "waf.sqli",
            "sqli@header.user-agent",
        ),
        (
            "GET",
            "/api/me",
            &[("cookie", "theme=dark; lang=<script>alert(1)</script>")],
            "",
            "waf.xss",
            "xss@cookie.lang",
        ),
        // Double URL encoding and HTML references are undone before matching.
        (
            "GET",
            "/api/items?id=%2527%2520OR%25201%253D1--",
            &[],
            "",
            "waf.sqli",
            "sqli@query.id",
        ),
        (
            "POST",
            "/api/comments",
            &[JSON],
            r#"{"c":"&lt;script&gt;alert(1)&lt;/script&gt;"}"#,
            "waf.xss",
            "xss@json./c",
        ),
        // A mislabelled JSON body is read as JSON all the same.
        (
            "POST",
            "/api/comments",
            &[("content-type", "text/plain")],
            r#"{"c":"1; DROP TABLE users--"}"#,
            "waf.sqli",
            "sqli@json./c",
        ),
    ];
    for (method, path, headers, body, code, detail) in cases {
        let r = request(&s, method, path, headers, *body).await;
        assert_eq!(r.status, 403, "{method} {path} {body}: {}", r.text());
        // The body is the generic 403: it does not say which detector fired.
        assert_eq!(r.code(), "authz.denied");
        assert!(!r.text().contains("waf"), "{}", r.text());
        let line = access_log_line(&log(&s), detail).await;
        assert!(line.contains(&format!("\"{code}:deny\"")), "{line}");
        assert!(line.contains("\"route\":\"api\""), "{line}");
    }
    assert_eq!(s.up.hits(), 0, "the upstream saw an attack");
    // The log names the field and the rule, never the value.
    let text = std::fs::read_to_string(log(&s)).unwrap();
    for secret in [
        "passwd", "onerror", "cat ", "169.254", "sleep", "DROP", "/tmp",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the log:\n{text}"
        );
    }
    let m = s.gw.feature_metrics();
    assert!(
        m.contains("rampart_waf_findings_total{route=\"api\",detector=\"sqli\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn everyday_values_pass_byte_for_byte() {
    let s = setup();
    let body = r#"{"name":"Siobhán O'Brien","address":"12 Rue de l'Église, Paris","bio":"Fish & chips; cat lovers welcome -- or so they say.","notes":"Select a plan that suits you from our range: \"basic\" or \"pro\".","markdown":"Use `GET /repos/{owner}` and see | Name | Type |","price":"$10 (incl. tax)","tags":["a<b","c>d"]}"#;
    let r = request(&s, "POST", "/api/profile", &[JSON], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.up.last().body, body.as_bytes());
    let form = "q=how+to+select+from+a+list&name=O%27Reilly&city=Saint-%C3%89tienne";
    let r = request(&s, "POST", "/api/search", &[FORM], form).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.up.last().body, form.as_bytes());
    let r = request(&s, "GET", "/api/search?term=rock%20%27n%27%20roll&page=2&sort=-created", &[("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Routes without `inspect` are not inspected.
    let r = get_path(&s, "/open?id=1%27%20OR%20%271%27%3D%271").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn exclusions_skip_a_field_or_one_detector_on_it() {
    let s = setup();
    // `query.q` is excluded whole: a search box may hold SQL.
    let r = get_path(&s, "/api/search?q=1%27%20OR%20%271%27%3D%271").await;
    assert_eq!(r.status, 200);
    // `xss:json./html`: markup passes there, SQL injection does not.
    let r = request(
        &s,
        "POST",
        "/api/pages",
        &[JSON],
        r#"{"html":"<script>alert(1)</script>"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = request(
        &s,
        "POST",
        "/api/pages",
        &[JSON],
        r#"{"html":"1' UNION SELECT password FROM users--"}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    // A pattern: `json./notes/*/text` covers every note, not the note's title.
    let ok = r#"{"notes":[{"text":"<script>alert(1)</script>"},{"text":"' or '1'='1"}]}"#;
    assert_eq!(request(&s, "POST", "/api/n", &[JSON], ok).await.status, 200);
    let bad = r#"{"notes":[{"title":"<script>alert(1)</script>"}]}"#;
    assert_eq!(
        request(&s, "POST", "/api/n", &[JSON], bad).await.status,
        403
    );
    // Other fields stay inspected.
    let r = get_path(&s, "/api/search?q=x&id=1%27%20OR%20%271%27%3D%271").await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn shadow_mode_logs_what_it_would_refuse_and_lets_it_through() {
    let s = setup();
    let r = get_path(&s, "/trial/items?id=1%27%20OR%20%271%27%3D%271").await;
    assert_eq!(r.status, 200);
    assert_eq!(s.up.hits(), 1);
    let line = access_log_line(&log(&s), "waf.sqli:shadow_deny").await;
    assert!(
        line.contains("\"waf\":\"score=5 sqli@query.id:sqli.libinjection/5\""),
        "{line}"
    );
}

#[tokio::test]
async fn paranoia_adds_rules_and_the_threshold_adds_findings_up() {
    let s = setup();
    // An internal callback URL: paranoia 2 refuses it, the default level does not.
    let internal = "/x?callback=http%3A%2F%2F127.0.0.1%3A8080%2Fadmin";
    let r = get_path(&s, &format!("/strict{internal}")).await;
    assert_eq!(r.status, 403);
    access_log_line(&log(&s), "ssrf@query.callback:ssrf.internal_host").await;
    let r = get_path(&s, &format!("/api{internal}")).await;
    assert_eq!(r.status, 200);
    // Threshold 10: one critical finding is logged and passes; two are refused.
    let one = "/lenient?id=1%27%20OR%20%271%27%3D%271";
    assert_eq!(get_path(&s, one).await.status, 200);
    access_log_line(&log(&s), "\"waf\":\"score=5 sqli@query.id").await;
    let two = "/lenient?id=1%27%20OR%20%271%27%3D%271&file=..%2F..%2Fetc%2Fpasswd";
    assert_eq!(get_path(&s, two).await.status, 403);
}

#[tokio::test]
async fn sampling_inspects_a_share_of_requests() {
    let s = setup();
    let mut passed = 0;
    for _ in 0..40 {
        let r = get_path(&s, "/sampled?id=1%27%20OR%20%271%27%3D%271").await;
        passed += usize::from(r.status == 200);
    }
    // At 1%, nearly every request goes uninspected (all 40 inspected: p = 1e-80).
    assert!(passed > 0);
    let m = s.gw.feature_metrics();
    assert!(
        m.contains("rampart_waf_unsampled_total{route=\"sampled\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn an_encoded_body_cannot_be_inspected_so_it_is_refused() {
    let s = setup();
    let r = request(
        &s,
        "POST",
        "/gzip/x",
        &[JSON, ("content-encoding", "gzip")],
        &b"\x1f\x8b\x08\x00"[..],
    )
    .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.code(), "request.encoded_body");
    access_log_line(&log(&s), "waf.encoded_body:deny").await;
    assert_eq!(s.up.hits(), 0);
}

#[tokio::test]
async fn hostile_and_broken_values_never_make_a_5xx() {
    let s = setup();
    let long = format!("v={}1%27%20OR%20%271%27%3D%271", "a+".repeat(150_000));
    let deep = format!("{}\"x\"{}", "[".repeat(60), "]".repeat(60));
    let paths = [
        "/api/x?v=%ff%fe%00%c0%ae%u00".to_string(),
        "/api/x?v=&#x;&#99999999999;&lt".to_string(),
        format!("/api/x?v={}", "%25".repeat(3000)),
        format!("/api/x?v={}", "\\u{".repeat(500)),
    ];
    for p in &paths {
        let r = get_path(&s, p).await;
        assert!(r.status.as_u16() < 500, "{p}: {}", r.status);
    }
    for body in [deep.as_str(), "{\"a\":", "[\"\\ud800\"]", "\u{feff}{}"] {
        let r = request(&s, "POST", "/api/x", &[JSON], body.to_string()).await;
        assert!(r.status.as_u16() < 500, "{body}: {}", r.status);
    }
    let r = request(&s, "POST", "/api/x", &[FORM], long).await;
    assert_eq!(
        r.status, 403,
        "a payload 300 KB into a value is found all the same"
    );
}

#[test]
fn bad_inspect_blocks_name_the_field_and_the_reason() {
    let route = |inspect: &str| {
        format!("routes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up, inspect: {inspect} }}]")
    };
    assert_config_errors(&[
        (
            &route("{ paranoia: 5 }"),
            "routes[0].inspect.paranoia: must be 1 to 4, got 5",
        ),
        (
            &route("{ threshold: 0 }"),
            "routes[0].inspect.threshold: must be at least 1",
        ),
        (
            &route("{ sample_percent: 0 }"),
            "routes[0].inspect.sample_percent: must be 1 to 100",
        ),
        (
            &route("{ exclude: [args.q] }"),
            "routes[0].inspect.exclude[0]: unknown field \"args\"",
        ),
        (
            &route("{ exclude: [\"rce:query.q\"] }"),
            "unknown detector \"rce\"",
        ),
        (
            &route("{ exclude: [json.bio] }"),
            "a JSON field is a JSON pointer",
        ),
        (
            &route("{ headers: [\"bad header\"] }"),
            "routes[0].inspect.headers[0]",
        ),
        (&route("{ mode: block }"), "inspect"),
    ]);
}
