//! Country rules end to end: `ip_rules` with `allow_countries` / `deny_countries` on a
//! real gateway with MaxMind's own test database (`data/GeoIP2-Country-Test.mmdb`, see
//! `data/README.md`), clients reported through a trusted proxy.

mod support;

use support::*;

const DB: &[u8] = include_bytes!("data/GeoIP2-Country-Test.mmdb");

/// The gateway, and the upstream it forwards to (kept alive with it).
fn setup() -> (TestGateway, TestUpstream) {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("country.mmdb"), DB).unwrap();
    let yaml = format!(
        r#"version: 1
workers: 1
access_log: {{ output: "{log}" }}
trusted_proxies: [127.0.0.1/32]
geoip: {{ database: country.mmdb }}
ip_lists:
  partners: {{ cidrs: [203.0.113.0/24] }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: [{{ url: "http://{up}" }}] }} }}
routes:
  - {{ name: europe, match: {{ path_prefix: /eu }}, upstream: up, ip_rules: {{ allow_countries: [GB, SE], allow: [partners] }} }}
  - {{ name: sanctions, match: {{ path_prefix: /pay }}, upstream: up, ip_rules: {{ deny_countries: [CN] }} }}
  - {{ name: trial, match: {{ path_prefix: /trial }}, upstream: up, ip_rules: {{ deny_countries: [US], mode: shadow }} }}
"#,
        log = dir.path().join("access.log").display(),
        up = up.addr,
    );
    (start_in(&yaml, dir), up)
}

async fn from(gw: &TestGateway, path: &str, client: &str) -> u16 {
    get_with(gw.http(), path, &[("x-forwarded-for", client)])
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn allowed_countries_and_lists_pass_and_others_are_refused() {
    let (gw, _up) = setup();
    assert_eq!(from(&gw, "/eu/a", "81.2.69.160").await, 200, "GB");
    assert_eq!(from(&gw, "/eu/a", "89.160.20.115").await, 200, "SE");
    assert_eq!(
        from(&gw, "/eu/a", "::ffff:81.2.69.161").await,
        200,
        "GB, IPv4-mapped"
    );
    assert_eq!(
        from(&gw, "/eu/a", "203.0.113.9").await,
        200,
        "a partner, wherever it is"
    );
    assert_eq!(from(&gw, "/eu/a", "216.160.83.56").await, 403, "US");
    let log = gw.dir.path().join("access.log");
    let line = access_log_line(&log, "ip.not_allowed:deny").await;
    assert!(line.contains("\"detail\":{\"country\":\"US\"}"), "{line}");
    // An address the database does not know is in no allowed country.
    assert_eq!(from(&gw, "/eu/a", "192.0.2.1").await, 403);
}

#[tokio::test]
async fn a_denied_country_is_refused_and_shadow_only_logs() {
    let (gw, _up) = setup();
    assert_eq!(from(&gw, "/pay/x", "175.16.199.1").await, 403, "CN");
    assert_eq!(from(&gw, "/pay/x", "81.2.69.160").await, 200);
    assert_eq!(
        from(&gw, "/pay/x", "192.0.2.1").await,
        200,
        "unknown: not denied"
    );
    let log = gw.dir.path().join("access.log");
    let line = access_log_line(&log, "ip.denied:deny").await;
    assert!(line.contains("\"country\":\"CN\""), "{line}");
    assert_eq!(from(&gw, "/trial/x", "216.160.83.56").await, 200);
    access_log_line(&log, "ip.denied:shadow_deny").await;
}

#[test]
fn country_rules_need_a_database_and_valid_codes() {
    let route = |rules: &str| {
        format!(
            "routes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up, ip_rules: {rules} }}]"
        )
    };
    assert_config_errors(&[
        (
            &route("{ deny_countries: [CN] }"),
            "routes[0].ip_rules.deny_countries: country rules need a `geoip.database`",
        ),
        (
            &format!(
                "geoip: {{ database: x.mmdb }}\n{}",
                route("{ allow_countries: [uk] }")
            ),
            "routes[0].ip_rules.allow_countries[0]: \"uk\" is not an ISO 3166-1 alpha-2 code",
        ),
        (
            &format!(
                "geoip: {{ database: missing.mmdb }}\n{}",
                route("{ deny_countries: [CN] }")
            ),
            "geoip.database: cannot read",
        ),
    ]);
}
