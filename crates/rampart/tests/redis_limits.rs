//! Cluster-wide limits on a real `redis-server` (and a real 3-node Redis Cluster): several
//! gateways in one process share a limit; Redis is killed and restarted mid-run.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::redis::{RedisCluster, RedisServer};
use support::*;

fn gateway(up: &TestUpstream, redis: &str, policy: &str) -> TestGateway {
    let yaml = format!(
        r#"version: 1
workers: 2
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
redis: {redis}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - name: api
    match: {{ path_prefix: / }}
    upstream: up
    rate_limit: {policy}
"#,
        up.addr
    );
    start(&yaml)
}

/// Sends `n` requests to each gateway concurrently; returns the statuses.
async fn hammer(addrs: &[SocketAddr], path: &str, n: usize) -> Vec<u16> {
    let mut tasks = Vec::new();
    for addr in addrs {
        for _ in 0..n {
            let (addr, path) = (*addr, path.to_string());
            tasks.push(tokio::spawn(async move {
                get(addr, &path).await.status.as_u16()
            }));
        }
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn count(statuses: &[u16], s: u16) -> usize {
    statuses.iter().filter(|x| **x == s).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_mode_never_admits_more_than_the_limit_across_three_gateways() {
    let redis = RedisServer::start();
    let up = TestUpstream::echo();
    let r = format!("{{ url: \"{}\", timeout: 500ms }}", redis.url());
    let policy = "{ by: route, store: redis, consistency: exact, limits: [{ quota: 50/hour }] }";
    let gws: Vec<TestGateway> = (0..3).map(|_| gateway(&up, &r, policy)).collect();
    let addrs: Vec<SocketAddr> = gws.iter().map(|g| g.http()).collect();
    let statuses = hammer(&addrs, "/x", 40).await;
    assert_eq!(count(&statuses, 200), 50, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 70);
    assert_eq!(up.hits(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_mode_stays_within_the_documented_bound_with_few_redis_calls() {
    let redis = RedisServer::start();
    let up = TestUpstream::echo();
    let r = format!("{{ url: \"{}\", timeout: 500ms }}", redis.url());
    let (limit, lease, nodes) = (100usize, 5usize, 3usize);
    let policy = format!(
        "{{ by: route, store: redis, consistency: batched, lease: {lease}, limits: [{{ quota: {limit}/hour }}] }}"
    );
    let gws: Vec<TestGateway> = (0..nodes).map(|_| gateway(&up, &r, &policy)).collect();
    let addrs: Vec<SocketAddr> = gws.iter().map(|g| g.http()).collect();
    let statuses = hammer(&addrs, "/y", 60).await;
    let admitted = count(&statuses, 200);
    // docs/limits.md: within limit ± nodes × lease.
    assert!(
        admitted <= limit + nodes * lease && admitted + nodes * lease >= limit,
        "admitted {admitted}"
    );
    let mut calls = 0;
    for g in &gws {
        let plan = g.gateway.plan();
        let mut text = rampart_core::MetricsText::new();
        for m in &plan.metric_sources {
            m.render(&mut text);
        }
        let out = text.finish();
        calls += out
            .lines()
            .find_map(|l| l.strip_prefix("rampart_rate_limit_lease_refills_total{policy=\"api\"} "))
            .unwrap()
            .parse::<usize>()
            .unwrap();
    }
    eprintln!("batched: admitted {admitted}, lease refills {calls}");
    // Leases mean Redis sees a fraction of the admitted requests.
    assert!(
        calls * 2 <= admitted,
        "{calls} lease refills for {admitted} admitted"
    );
}

#[tokio::test]
async fn gcra_on_redis_bursts_then_refuses_with_retry_after() {
    let redis = RedisServer::start();
    let up = TestUpstream::echo();
    let r = format!("{{ url: \"{}\", timeout: 500ms }}", redis.url());
    let gw = gateway(
        &up,
        &r,
        "{ by: ip, store: redis, consistency: exact, limits: [{ rate: 5/min, burst: 3 }] }",
    );
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let resp = get(gw.http(), "/g").await;
        statuses.push(resp.status.as_u16());
        last = Some(resp);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let retry: u64 = last
        .unwrap()
        .header("retry-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry), "{retry}");
}

async fn statuses_now(addr: SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(addr, path).await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn redis_down_follows_on_store_error_and_limits_resume_when_it_returns() {
    let mut redis = RedisServer::start();
    let up = TestUpstream::echo();
    let r = format!(
        "{{ url: \"{}\", timeout: 200ms, breaker_failures: 2, breaker_cooldown: 300ms }}",
        redis.url()
    );
    let deny = gateway(&up, &r, "{ name: deny, by: route, store: redis, consistency: exact, on_store_error: deny, limits: [{ quota: 3/hour }] }");
    let allow = gateway(&up, &r, "{ name: allow, by: route, store: redis, consistency: exact, on_store_error: allow, limits: [{ quota: 3/hour }] }");
    let local = gateway(&up, &r, "{ name: local, by: route, store: redis, consistency: exact, on_store_error: local, expected_nodes: 3, limits: [{ quota: 6/hour }] }");
    // Up: the shared limit applies.
    assert_eq!(
        statuses_now(deny.http(), "/a", 4).await,
        [200, 200, 200, 429]
    );
    redis.kill();
    // Down: deny fails closed, allow fails open, local falls back to 6 / 3 nodes = 2.
    assert!(statuses_now(deny.http(), "/a", 3)
        .await
        .iter()
        .all(|s| *s == 503));
    assert!(statuses_now(allow.http(), "/a", 5)
        .await
        .iter()
        .all(|s| *s == 200));
    assert_eq!(statuses_now(local.http(), "/a", 3).await, [200, 200, 429]);
    // Back (empty): cluster limiting resumes once the breaker's probe succeeds.
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = get(deny.http(), "/a").await.status.as_u16();
        if s == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "limits did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(statuses_now(deny.http(), "/a", 3).await, [200, 200, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_limits_keys_on_different_slots() {
    let cluster = RedisCluster::start();
    let up = TestUpstream::echo();
    let r = format!(
        "{{ url: \"redis://127.0.0.1:{}\", cluster: true, nodes: [\"redis://127.0.0.1:{}\"], timeout: 1s }}",
        cluster.nodes[0].port, cluster.nodes[1].port
    );
    let policy = "{ by: \"header:x-tenant\", store: redis, consistency: exact, limits: [{ quota: 3/hour }, { rate: 100/s }] }";
    let gws: Vec<TestGateway> = (0..2).map(|_| gateway(&up, &r, policy)).collect();
    // Twenty tenants: their keys hash to slots spread over the three masters.
    for t in 0..20 {
        let tenant = format!("tenant-{t}");
        let mut statuses = Vec::new();
        for i in 0..4 {
            let g = &gws[i % 2];
            statuses.push(
                get_with(g.http(), "/c", &[("x-tenant", &tenant)])
                    .await
                    .status
                    .as_u16(),
            );
        }
        assert_eq!(statuses, [200, 200, 200, 429], "{tenant}");
    }
    let per_node = cluster.keys_per_node();
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "keys on one node only: {per_node:?}"
    );
}

#[tokio::test]
async fn rediss_with_a_private_ca_works() {
    use support::certs::{write_ca, TestCa};
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("redis-ca");
    let (cert, key) = ca
        .leaf("redis", &["127.0.0.1", "localhost"])
        .write(dir.path(), "redis");
    let ca_path = write_ca(&ca, dir.path(), "redis-ca");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--tls-auth-clients",
            "no",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&ca_path)
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "TLS redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let up = TestUpstream::echo();
    let r = format!(
        "{{ url: \"rediss://127.0.0.1:{port}\", ca_file: \"{}\", timeout: 1s }}",
        ca_path.display()
    );
    let gw = gateway(&up, &r, "{ by: route, store: redis, consistency: exact, on_store_error: deny, limits: [{ quota: 2/hour }] }");
    assert_eq!(statuses_now(gw.http(), "/t", 3).await, [200, 200, 429]);
    let _ = child.kill();
    let _ = child.wait();
}
