//! Limits and state that an attacker cannot dodge: a quota that admits exactly its limit
//! under concurrency on several workers, IPv6 clients counted by their /64, a brute-force
//! budget on failed authentications, an admin listener with deadlines, a cap and a strong
//! token, and no credentials in a Redis URL.

mod support;

use std::sync::Arc;
use std::time::Duration;

use rampart_identity::api_key::generate;
use support::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_quota_admits_exactly_its_limit_under_concurrency_on_two_workers() {
    // The audit reproduced 2,034 admitted for a quota of 2,000 (rate + quota on one key,
    // two workers, 64 connections): decide-and-commit was not atomic.
    let up = TestUpstream::echo();
    let yaml = simple_config(&[up.addr], "")
        + "    rate_limit: { by: route, headers: false, limits: [{ rate: 100000/s, burst: 100000 }, { quota: 500/hour }] }\n";
    let gw = start(&yaml);
    let addr = gw.http();
    let admitted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..12 {
                let r = get(addr, "/q").await;
                match r.status.as_u16() {
                    200 => {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    429 => {}
                    s => panic!("unexpected {s}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(admitted.load(std::sync::atomic::Ordering::Relaxed), 500);
}

fn ip_limited(prefix: Option<u8>) -> TestGateway {
    let up = TestUpstream::echo();
    let limits = prefix.map_or(String::new(), |p| {
        format!("limits: {{ ipv6_prefix: {p} }}\n")
    });
    let yaml = format!(
        "{}    rate_limit: {{ by: ip, headers: false, limits: [{{ quota: 2/hour }}] }}\ntrusted_proxies: [127.0.0.1/32]\n{limits}",
        simple_config(&[up.addr], "")
    );
    let gw = start(&yaml);
    std::mem::forget(up);
    gw
}

async fn from(gw: &TestGateway, client: &str) -> u16 {
    get_with(gw.http(), "/x", &[("x-forwarded-for", client)])
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn ipv6_clients_share_an_ip_limit_per_64_by_default() {
    let gw = ip_limited(None);
    assert_eq!(from(&gw, "2001:db8:1:2::1").await, 200);
    assert_eq!(from(&gw, "2001:db8:1:2::2").await, 200);
    // A third address of the same /64 is the same client.
    assert_eq!(from(&gw, "2001:db8:1:2:ffff::3").await, 429);
    // Another /64 is another client.
    assert_eq!(from(&gw, "2001:db8:1:3::1").await, 200);
}

#[tokio::test]
async fn ipv6_prefix_128_counts_each_address_apart() {
    let gw = ip_limited(Some(128));
    for i in 1..=4 {
        assert_eq!(from(&gw, &format!("2001:db8:1:2::{i}")).await, 200);
    }
}

const PEPPER: &str = "bf-test-pepper-0123456789abcdef";

fn brute_force_gateway(identity_extra: &str) -> (TestGateway, String) {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let key = generate(PEPPER.as_bytes()).unwrap();
    let yaml = format!(
        r#"version: 1
workers: 1
access_log: {{ output: "{}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
trusted_proxies: [127.0.0.1/32]
identity:
  api_keys: {{ pepper: {{ file: pepper.txt }} }}
  {identity_extra}
consumers: [{{ id: acme, api_keys: [{{ id: acme-1, hash: "{}" }}] }}]
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes: [{{ name: api, match: {{ path_prefix: / }}, upstream: up, authenticate: [api_key] }}]
"#,
        dir.path().join("access.log").display(),
        key.hash,
        up.addr
    );
    let gw = start_in(&yaml, dir);
    std::mem::forget(up);
    (gw, key.key)
}

async fn with_key(gw: &TestGateway, client: &str, key: &str) -> Reply {
    get_with(
        gw.http(),
        "/x",
        &[("x-forwarded-for", client), ("x-api-key", key)],
    )
    .await
}

#[tokio::test]
async fn refuses_a_client_over_its_failed_authentication_budget_before_checking_credentials() {
    let (gw, key) = brute_force_gateway("auth_failures: { rate: 1/hour, burst: 3 }");
    let attacker = "198.51.100.7";
    for _ in 0..3 {
        let r = with_key(&gw, attacker, "rpk_forged_0000000000000000").await;
        assert_eq!(r.status, 401);
    }
    // Over budget: refused before the (now valid) key is even looked at.
    let r = with_key(&gw, attacker, &key).await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    let line = access_log_line(&gw.dir.path().join("access.log"), "auth.too_many_failures").await;
    assert!(line.contains("\"client_ip\":\"198.51.100.7\""), "{line}");
    // Another client is not affected, and its successes cost it nothing.
    for _ in 0..10 {
        assert_eq!(with_key(&gw, "198.51.100.8", &key).await.status, 200);
    }
}

#[tokio::test]
async fn the_failed_authentication_budget_can_be_turned_off() {
    let (gw, _) = brute_force_gateway("auth_failures: { enabled: false }");
    for _ in 0..40 {
        let r = with_key(&gw, "198.51.100.9", "rpk_forged_0000000000000000").await;
        assert_eq!(r.status, 401);
    }
}

#[tokio::test]
async fn missing_credentials_do_not_count_as_failures() {
    let (gw, key) = brute_force_gateway("auth_failures: { rate: 1/hour, burst: 2 }");
    for _ in 0..5 {
        let r = get_with(gw.http(), "/x", &[("x-forwarded-for", "198.51.100.10")]).await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(with_key(&gw, "198.51.100.10", &key).await.status, 200);
}

const ADMIN_TOKEN: &str = "admin-hardening-token-2f8c61d0e94b7a35";

fn admin_gateway(limits: &str, admin_extra: &str) -> (rampart::admin::Admin, tempfile::TempDir) {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), ADMIN_TOKEN).unwrap();
    let path = dir.path().join("rampart.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nlimits: {{ {limits} }}\nadmin: {{ bind: \"127.0.0.1:0\", token: {{ file: admin-token }} {admin_extra} }}\nupstreams: {{ up: {{ targets: [{{ url: \"http://{}\" }}] }} }}\nroutes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up }}]\n",
            up.addr
        ),
    )
    .unwrap();
    std::mem::forget(up);
    let gateway = Arc::new(rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap());
    let admin = rampart::admin::start(gateway.clone(), Some(path))
        .unwrap()
        .expect("admin configured");
    std::mem::forget(gateway);
    (admin, dir)
}

#[tokio::test]
async fn admin_listener_enforces_the_header_deadline() {
    let (admin, _dir) = admin_gateway("header_timeout: 1s", "");
    let mut tcp = tokio::net::TcpStream::connect(admin.addr()).await.unwrap();
    tcp.write_all(b"GET /upstreams HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(raw_status(&text), 408, "{text}");
}

#[tokio::test]
async fn admin_listener_closes_idle_keep_alive_connections() {
    let (admin, _dir) = admin_gateway("idle_timeout: 1s", "");
    let mut tcp = tokio::net::TcpStream::connect(admin.addr()).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut tcp, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn admin_listener_refuses_malformed_requests() {
    let (admin, _dir) = admin_gateway("", "");
    let text = raw(
        admin.addr(),
        b"POST /admin/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&text), 400, "{text}");
}

#[tokio::test]
async fn admin_listener_caps_open_connections() {
    let (admin, _dir) = admin_gateway("", ", max_connections: 2");
    let _a = tokio::net::TcpStream::connect(admin.addr()).await.unwrap();
    let _b = tokio::net::TcpStream::connect(admin.addr()).await.unwrap();
    // Give the accept loop the first two before the third arrives.
    let mut ok = tokio::net::TcpStream::connect(admin.addr()).await.unwrap();
    assert!(closed_within(&mut ok, Duration::from_secs(5)).await);
    drop((_a, _b));
    // Slots come back once connections close.
    let mut found = false;
    for _ in 0..50 {
        let text = raw(
            admin.addr(),
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if raw_status(&text) == 200 {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "no admin slot came back");
}

#[test]
fn refuses_admin_tokens_shorter_than_32_bytes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t"), "short-token-1234").unwrap();
    let yaml = "version: 1\nlisteners: [{ name: public, bind: \"127.0.0.1:0\" }]\nadmin: { bind: \"127.0.0.1:0\", token: { file: t } }\nupstreams: { up: { targets: [{ url: \"http://127.0.0.1:9\" }] } }\n";
    let err = format!(
        "{:#}",
        rampart::compile_str(yaml, dir.path()).expect_err("accepted")
    );
    assert!(
        err.contains("admin.token: must be at least 32 bytes"),
        "{err}"
    );
    assert!(!err.contains("short-token-1234"), "the token leaked: {err}");
}

#[test]
fn refuses_credentials_in_a_redis_url_without_echoing_them() {
    for url in [
        "redis://user:hunter2-secret@127.0.0.1:6379",
        "rediss://:hunter2-secret@redis.internal:6380/0",
    ] {
        let yaml = format!(
            "version: 1\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nredis: {{ url: \"{url}\" }}\nupstreams: {{ up: {{ targets: [{{ url: \"http://127.0.0.1:9\" }}] }} }}\n"
        );
        let err = format!(
            "{:#}",
            rampart::compile_str(&yaml, std::path::Path::new(".")).expect_err("accepted")
        );
        assert!(
            err.contains("redis.url: must not carry credentials"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
    }
    // The supported way: a user name and a password reference.
    std::env::set_var("RAMPART_TEST_REDIS_PASSWORD", "hunter2-secret");
    let yaml = "version: 1\nlisteners: [{ name: public, bind: \"127.0.0.1:0\" }]\nredis: { url: \"redis://127.0.0.1:6379\", username: gw, password: { env: RAMPART_TEST_REDIS_PASSWORD } }\nupstreams: { up: { targets: [{ url: \"http://127.0.0.1:9\" }] } }\n";
    assert!(rampart::compile_str(yaml, std::path::Path::new(".")).is_ok());
}
