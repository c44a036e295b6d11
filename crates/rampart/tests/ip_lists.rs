//! IP allow and deny lists end to end: named lists from inline CIDRs and feed files,
//! applied per route to the client address (derived through trusted proxies) and per
//! listener at accept, before any byte is read; feed files re-read when they change.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::certs::TestCa;
use support::*;

const FEED: &str = "# test feed\n192.0.2.0/24 ; SBL1\n";

fn config(up: &TestUpstream, dir: &std::path::Path) -> String {
    std::fs::write(dir.join("feed.txt"), FEED).unwrap();
    format!(
        r#"version: 1
workers: 2
access_log: {{ output: "{log}" }}
trusted_proxies: [127.0.0.1]
ip_lists:
  blocked: {{ files: [feed.txt], cidrs: [203.0.113.0/24], refresh: 100ms }}
  office: {{ cidrs: [198.51.100.0/24, "2001:db8::/32"] }}
  loopback: {{ cidrs: [127.0.0.0/8] }}
listeners:
  - {{ name: public, bind: "127.0.0.1:0" }}
  - {{ name: closed, bind: "127.0.0.1:0", ip_rules: {{ deny: [loopback] }} }}
  - name: closed-tls
    bind: "127.0.0.1:0"
    ip_rules: {{ deny: [loopback] }}
    tls: {{ certificates: [{{ cert_file: gw.pem, key_file: gw.key }}] }}
  - {{ name: watched, bind: "127.0.0.1:0", ip_rules: {{ deny: [loopback], mode: shadow }} }}
upstreams:
  up: {{ targets: [{{ url: "http://{up}" }}] }}
routes:
  - {{ name: open, match: {{ path_prefix: /open }}, upstream: up }}
  - {{ name: guarded, match: {{ path_prefix: /guarded }}, upstream: up, ip_rules: {{ deny: [blocked] }} }}
  - {{ name: internal, match: {{ path_prefix: /internal }}, upstream: up, ip_rules: {{ allow: [office], deny: [blocked] }} }}
  - {{ name: trial, match: {{ path_prefix: /trial }}, upstream: up, ip_rules: {{ deny: [blocked], mode: shadow }} }}
"#,
        log = dir.join("access.log").display(),
        up = up.addr,
    )
}

struct Setup {
    gw: TestGateway,
    up: TestUpstream,
}

fn setup() -> Setup {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    TestCa::new("ip lists")
        .leaf("gw", &["localhost"])
        .write(dir.path(), "gw");
    let yaml = config(&up, dir.path());
    Setup {
        gw: start_in(&yaml, dir),
        up,
    }
}

/// A request from `client` as a trusted proxy (127.0.0.1) reports it.
async fn from(s: &Setup, path: &str, client: &str) -> Reply {
    get_with(s.gw.http(), path, &[("x-forwarded-for", client)]).await
}

fn log(s: &Setup) -> std::path::PathBuf {
    s.gw.dir.path().join("access.log")
}

#[tokio::test]
async fn a_denied_client_gets_403_and_the_log_names_the_list_and_range() {
    let s = setup();
    let r = from(&s, "/guarded/a", "203.0.113.9").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "authz.denied");
    let line = access_log_line(&log(&s), "ip.denied").await;
    assert!(line.contains("\"ip.denied:deny\""), "{line}");
    assert!(
        line.contains("\"detail\":{\"ip_list\":\"blocked\",\"ip_range\":\"203.0.113.0/24\"}"),
        "{line}"
    );
    assert!(line.contains("\"client_ip\":\"203.0.113.9\""), "{line}");
    // The feed file's entries count as much as the inline ones.
    assert_eq!(from(&s, "/guarded/a", "192.0.2.200").await.status, 403);
    // Others pass, and routes without rules are untouched.
    assert_eq!(from(&s, "/guarded/a", "198.51.100.1").await.status, 200);
    assert_eq!(from(&s, "/open", "203.0.113.9").await.status, 200);
    assert_eq!(s.up.hits(), 2);
}

#[tokio::test]
async fn an_allow_list_lets_only_its_addresses_in_and_deny_wins_over_it() {
    let s = setup();
    assert_eq!(from(&s, "/internal", "198.51.100.7").await.status, 200);
    assert_eq!(from(&s, "/internal", "2001:db8::7").await.status, 200);
    // An IPv4-mapped IPv6 address is the IPv4 address.
    assert_eq!(
        from(&s, "/internal", "::ffff:198.51.100.7").await.status,
        200
    );
    let r = from(&s, "/internal", "192.0.3.1").await;
    assert_eq!(r.status, 403);
    access_log_line(&log(&s), "ip.not_allowed:deny").await;
    // An address on the deny list is refused for it, whatever the allow lists say.
    std::fs::write(s.gw.dir.path().join("feed.txt"), "198.51.100.7\n").unwrap();
    let denied = async || from(&s, "/internal", "198.51.100.7").await.status == 403;
    assert!(eventually(denied).await);
    access_log_line(&log(&s), "\"ip_range\":\"198.51.100.7/32\"").await;
}

#[tokio::test]
async fn route_rules_see_the_client_behind_trusted_proxies_only() {
    // The right-most untrusted address is the client: a spoofed left-most entry does
    // not make a blocked client look like the office.
    let s = setup();
    let r = from(&s, "/internal", "198.51.100.7, 203.0.113.9").await;
    assert_eq!(r.status, 403);
    let r = from(&s, "/guarded", "203.0.113.9, 198.51.100.7").await;
    assert_eq!(
        r.status, 200,
        "the client is the right-most untrusted address"
    );
}

#[tokio::test]
async fn shadow_mode_logs_the_refusal_and_lets_the_client_through() {
    let s = setup();
    assert_eq!(from(&s, "/trial", "203.0.113.9").await.status, 200);
    let line = access_log_line(&log(&s), "ip.denied:shadow_deny").await;
    assert!(line.contains("\"ip_list\":\"blocked\""), "{line}");
}

#[tokio::test]
async fn a_listener_deny_list_closes_the_connection_at_accept() {
    let s = setup();
    let mut tcp = tokio::net::TcpStream::connect(s.gw.addr("closed"))
        .await
        .unwrap();
    assert!(closed_within(&mut tcp, Duration::from_secs(5)).await);
    // On a TLS listener too, before any ClientHello is read: the client sends nothing.
    let mut tcp = tokio::net::TcpStream::connect(s.gw.addr("closed-tls"))
        .await
        .unwrap();
    assert!(closed_within(&mut tcp, Duration::from_secs(5)).await);
    let plan = s.gw.gateway.plan();
    for name in ["closed", "closed-tls"] {
        let l = plan.listeners.iter().find(|l| &*l.name == name).unwrap();
        assert_eq!(
            l.metrics.connect_refused.load(Ordering::Relaxed),
            1,
            "{name}"
        );
    }
    // A listener in shadow mode serves the same client.
    assert_eq!(get(s.gw.addr("watched"), "/open").await.status, 200);
    assert_eq!(get(s.gw.http(), "/open").await.status, 200);
}

fn metrics(s: &Setup) -> String {
    s.gw.feature_metrics()
}

#[tokio::test]
async fn a_changed_feed_file_applies_without_a_reload_and_a_bad_one_keeps_the_last() {
    let s = setup();
    let feed = s.gw.dir.path().join("feed.txt");
    assert_eq!(from(&s, "/guarded", "100.64.0.9").await.status, 200);
    std::fs::write(&feed, format!("{FEED}100.64.0.0/10\n")).unwrap();
    assert!(
        eventually(async || from(&s, "/guarded", "100.64.0.9").await.status == 403).await,
        "the new feed entry never applied"
    );
    // A broken file is reported and the list in force stays.
    std::fs::write(&feed, "100.64.0.0/10\nnot-an-address\n").unwrap();
    assert!(
        eventually(async || metrics(&s)
            .contains("rampart_ip_list_reloads_total{list=\"blocked\",result=\"error\"} 1"))
        .await,
        "{}",
        metrics(&s)
    );
    assert_eq!(from(&s, "/guarded", "100.64.0.9").await.status, 403);
    assert_eq!(from(&s, "/guarded", "192.0.2.1").await.status, 403);
    let m = metrics(&s);
    assert!(
        m.contains("rampart_ip_list_ranges{list=\"blocked\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("rampart_ip_list_refusals_total{list=\"blocked\"} 3"),
        "{m}"
    );
}

#[test]
fn ip_list_mistakes_are_named_by_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.txt"), "10.0.0.0/8\n\nexample.com\n").unwrap();
    let bad = dir.path().join("bad.txt").display().to_string();
    assert_config_errors(&[
        (
            "ip_lists: { a: {} }",
            "ip_lists.a: needs `cidrs` or `files`",
        ),
        (
            "ip_lists: { a: { cidrs: [10.0.0.0/33] } }",
            "invalid CIDR",
        ),
        (
            &format!("ip_lists: {{ a: {{ files: [\"{bad}\"] }} }}"),
            "ip_lists.a.files[0]: ",
        ),
        (
            &format!("ip_lists: {{ a: {{ files: [\"{bad}\"] }} }}"),
            "line 3: \"example.com\" is not an IP address or CIDR",
        ),
        (
            "ip_lists: { a: { files: [/nonexistent/feed.txt] } }",
            "cannot read /nonexistent/feed.txt",
        ),
        (
            "routes: [{ name: r, match: { path_prefix: / }, upstream: up, ip_rules: { deny: [nope] } }]",
            "routes[0].ip_rules.deny[0]: no list \"nope\" in `ip_lists`",
        ),
        (
            "ip_lists: { a: { cidrs: [10.0.0.0/8] } }\nroutes: [{ name: r, match: { path_prefix: / }, upstream: up, ip_rules: {} }]",
            "routes[0].ip_rules: needs `allow` or `deny` lists",
        ),
        (
            "ip_lists: { a: { cidrs: [10.0.0.0/8], refresh: 1ms } }",
            "ip_lists.a.refresh: must be at least 100ms",
        ),
    ]);
}
