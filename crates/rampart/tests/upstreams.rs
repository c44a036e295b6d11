//! Upstream pools against real servers: load balancing, health checks (active and
//! passive), retries and their budget, the circuit breaker, timeouts, pooling, HTTP/2.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::Full;
use support::*;

fn gw_with(targets: &[(std::net::SocketAddr, u32)], extra: &str) -> TestGateway {
    let t: Vec<String> = targets
        .iter()
        .map(|(a, w)| format!("{{ url: \"http://{a}\", weight: {w} }}"))
        .collect();
    let yaml = format!(
        "version: 1\nworkers: 2\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams:\n  up:\n    targets: [{}]\n{extra}\nroutes:\n  - {{ name: all, match: {{ path_prefix: / }}, upstream: up }}\n",
        t.join(", ")
    );
    start(&yaml)
}

/// An address where nothing listens.
fn dead_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn served_by(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> String {
    let r = get_with(gw.http(), path, headers).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("x-served-by").unwrap().to_string()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn round_robin_follows_weights() {
    let (a, b) = (TestUpstream::echo(), TestUpstream::echo());
    let gw = gw_with(&[(a.addr, 3), (b.addr, 1)], "");
    for _ in 0..40 {
        get(gw.http(), "/").await;
    }
    assert_eq!((a.hits(), b.hits()), (30, 10));
}

#[tokio::test]
async fn least_requests_avoids_the_busy_target() {
    let slow = TestUpstream::with(|_| Answer::ok("slow").delayed(Duration::from_millis(300)));
    let fast = TestUpstream::echo();
    let gw = gw_with(
        &[(slow.addr, 1), (fast.addr, 1)],
        "    balance: least_requests",
    );
    let addr = gw.http();
    let mut tasks = Vec::new();
    for i in 0..30 {
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 10)).await;
            get(addr, "/").await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert!(
        fast.hits() > 2 * slow.hits(),
        "fast {} slow {}",
        fast.hits(),
        slow.hits()
    );
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_target() {
    let ups: Vec<TestUpstream> = (0..3).map(|_| TestUpstream::echo()).collect();
    let targets: Vec<_> = ups.iter().map(|u| (u.addr, 1)).collect();
    let gw = gw_with(
        &targets,
        "    balance: consistent_hash\n    hash_on: { header: x-user }",
    );
    let mut used = std::collections::HashSet::new();
    for user in 0..12 {
        let u = format!("user-{user}");
        let first = served_by(&gw, "/", &[("x-user", &u)]).await;
        for _ in 0..3 {
            assert_eq!(served_by(&gw, "/", &[("x-user", &u)]).await, first);
        }
        used.insert(first);
    }
    assert!(used.len() > 1, "all keys hashed to one target");
}

#[tokio::test]
async fn active_health_check_ejects_and_restores_a_target() {
    let healthy = Arc::new(AtomicBool::new(true));
    let h = healthy.clone();
    let a = TestUpstream::with(move |s| {
        if s.uri == "/healthz" && !h.load(Ordering::SeqCst) {
            Answer::status(503)
        } else {
            Answer::ok("a")
        }
    });
    let b = TestUpstream::echo();
    let gw = gw_with(
        &[(a.addr, 1), (b.addr, 1)],
        "    health_check: { path: /healthz, interval: 100ms, timeout: 1s, unhealthy_threshold: 2, healthy_threshold: 1 }",
    );
    healthy.store(false, Ordering::SeqCst);
    eventually("a ejected", async || {
        let before = a
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.uri != "/healthz")
            .count();
        for _ in 0..6 {
            get(gw.http(), "/x").await;
        }
        a.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.uri != "/healthz")
            .count()
            == before
    })
    .await;
    healthy.store(true, Ordering::SeqCst);
    eventually("a restored", async || {
        let before = a
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.uri != "/healthz")
            .count();
        for _ in 0..4 {
            get(gw.http(), "/x").await;
        }
        a.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.uri != "/healthz")
            .count()
            > before
    })
    .await;
}

#[tokio::test]
async fn answers_503_at_once_when_no_target_is_healthy() {
    let a = TestUpstream::with(|s| {
        if s.uri == "/healthz" {
            Answer::status(500)
        } else {
            Answer::ok("a")
        }
    });
    let gw = gw_with(
        &[(a.addr, 1)],
        "    health_check: { path: /healthz, interval: 100ms, unhealthy_threshold: 1 }",
    );
    eventually("503", async || get(gw.http(), "/").await.status == 503).await;
    let started = std::time::Instant::now();
    let r = get(gw.http(), "/").await;
    assert_eq!(r.code(), "upstream.unavailable");
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn passive_health_ejects_a_failing_target() {
    let dead = dead_addr();
    let b = TestUpstream::echo();
    let gw = gw_with(
        &[(dead, 1), (b.addr, 1)],
        "    retries: { max: 0 }\n    passive_health: { consecutive_failures: 2, eject_for: 30s }",
    );
    let mut failures = 0;
    for _ in 0..20 {
        if get(gw.http(), "/").await.status == 502 {
            failures += 1;
        }
    }
    // Two failures eject the dead target; everything after goes to the live one.
    assert_eq!(failures, 2);
    assert_eq!(b.hits(), 18);
}

#[tokio::test]
async fn retries_connect_failures_on_another_target() {
    let dead = dead_addr();
    let b = TestUpstream::echo();
    let gw = gw_with(
        &[(dead, 1), (b.addr, 1)],
        "    retries: { max: 1 }\n    passive_health: { enabled: false }",
    );
    for _ in 0..10 {
        assert_eq!(get(gw.http(), "/").await.status, 200);
    }
    assert_eq!(b.hits(), 10);
}

#[tokio::test]
async fn retries_configured_statuses_only_for_replayable_requests() {
    let a = TestUpstream::with(|_| Answer::status(503));
    let b = TestUpstream::echo();
    let gw = gw_with(
        &[(a.addr, 1), (b.addr, 1)],
        "    retries: { max: 1, on_status: [503] }\n    passive_health: { enabled: false }",
    );
    for _ in 0..4 {
        assert_eq!(get(gw.http(), "/").await.status, 200);
    }
    // A POST with a body was sent once and is never replayed.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let req = Request::post("/")
            .body(Full::new(bytes::Bytes::from("payload")))
            .unwrap();
        statuses.push(send(gw.http(), req).await.status.as_u16());
    }
    assert!(statuses.contains(&503), "{statuses:?}");
}

#[tokio::test]
async fn retry_budget_caps_retries() {
    let dead = dead_addr();
    let b = TestUpstream::echo();
    let gw = gw_with(
        &[(dead, 1), (b.addr, 1)],
        "    retries: { max: 1, budget_percent: 0, min_per_second: 1 }\n    passive_health: { enabled: false }",
    );
    let mut failures = 0;
    for _ in 0..10 {
        if get(gw.http(), "/").await.status == 502 {
            failures += 1;
        }
    }
    // Round robin sends half to the dead target; at most one or two retries per second
    // are funded, so most of those fail.
    assert!(failures >= 3, "failures: {failures}");
}

#[tokio::test]
async fn circuit_breaker_caps_requests_in_flight() {
    let slow = TestUpstream::with(|_| Answer::ok("slow").delayed(Duration::from_millis(500)));
    let gw = gw_with(
        &[(slow.addr, 1)],
        "    circuit_breaker: { max_requests: 2 }",
    );
    let addr = gw.http();
    let tasks: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { get(addr, "/").await }))
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        codes.push(if r.status == 200 {
            "ok".to_string()
        } else {
            r.code()
        });
    }
    codes.sort();
    assert_eq!(
        codes,
        ["ok", "ok", "upstream.overloaded", "upstream.overloaded"]
    );
}

#[tokio::test]
async fn connection_refused_is_502() {
    let gw = gw_with(&[(dead_addr(), 1)], "    retries: { max: 0 }");
    let r = get(gw.http(), "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "upstream.connect_failed");
    assert!(
        !r.text().contains("127.0.0.1"),
        "upstream address leaked: {}",
        r.text()
    );
}

#[tokio::test]
async fn response_header_timeout_is_504() {
    let slow = TestUpstream::with(|_| Answer::ok("late").delayed(Duration::from_secs(2)));
    let gw = gw_with(
        &[(slow.addr, 1)],
        "    timeouts: { response_header: 200ms }\n    retries: { max: 0 }",
    );
    let started = std::time::Instant::now();
    let r = get(gw.http(), "/").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.code(), "upstream.timeout");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn connect_timeout_is_504() {
    // A listener that accepts TCP but never answers the TLS handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams:\n  up:\n    targets: [{{ url: \"https://localhost:{}\" }}]\n    timeouts: {{ connect: 200ms }}\n    retries: {{ max: 0 }}\n\
         routes:\n  - {{ name: all, match: {{ path_prefix: / }}, upstream: up }}\n",
        silent.local_addr().unwrap().port()
    );
    let gw = start(&yaml);
    let started = std::time::Instant::now();
    let r = get(gw.http(), "/").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.code(), "upstream.timeout");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn whole_request_timeout_cuts_a_slow_response_body() {
    let slow = TestUpstream::with(|_| Answer::ok("tick").chunked(20, Duration::from_millis(100)));
    let gw = gw_with(&[(slow.addr, 1)], "    timeouts: { request: 500ms }");
    let text = raw(gw.http(), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "response looked complete: {text}"
    );
    assert!(text.matches("tick").count() < 20);
}

#[tokio::test]
async fn reuses_pooled_upstream_connections() {
    let up = TestUpstream::echo();
    let gw = gw_with(&[(up.addr, 1)], "");
    for _ in 0..30 {
        assert_eq!(get(gw.http(), "/").await.status, 200);
    }
    // One pool per worker (2 workers): at most two upstream connections for 30 requests.
    assert!(up.connections() <= 2, "connections: {}", up.connections());
}

#[tokio::test]
async fn speaks_http2_to_upstreams() {
    let up = TestUpstream::h2c_echo();
    let gw = gw_with(&[(up.addr, 1)], "    protocol: http2");
    for _ in 0..5 {
        let r = get(gw.http(), "/h2?x=1").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["version"], "HTTP/2.0");
        assert_eq!(r.json()["uri"], format!("http://{}/h2?x=1", up.addr));
    }
    assert!(up.connections() <= 2);
}

#[tokio::test]
async fn retry_with_no_other_target_reports_the_real_failure() {
    // One dead target, one retry allowed: the answer is the connect failure (502), not
    // "no healthy upstream".
    let gw = gw_with(
        &[(dead_addr(), 1)],
        "    retries: { max: 1 }\n    passive_health: { enabled: false }",
    );
    let r = get(gw.http(), "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "upstream.connect_failed");
}

#[tokio::test]
async fn status_retry_without_another_target_returns_the_upstream_answer() {
    // With on_status configured but a single target, the client gets the upstream's own
    // 503 rather than a gateway error.
    let a = TestUpstream::with(|_| Answer::status(503).header("x-from", "upstream"));
    let gw = gw_with(
        &[(a.addr, 1)],
        "    retries: { max: 2, on_status: [503] }\n    passive_health: { enabled: false }",
    );
    let r = get(gw.http(), "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-from"), Some("upstream"));
    assert_eq!(a.hits(), 1);
}
