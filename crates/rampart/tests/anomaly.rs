//! Anomaly detection on live traffic, end to end: two gateways sharing a real
//! `redis-server`, real consumers with API keys, real requests. Windows are a second
//! long here, so the traffic is paced by the wall clock (the detector's windows are
//! whole Unix seconds); the same scenarios over a day of synthetic time are the unit
//! tests of `rampart_monitor::detect`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use rampart_identity::api_key::{generate, NewKey};
use support::redis::RedisServer;
use support::*;

const PEPPER: &str = "anomaly-test-pepper-0123456789";

fn config(up: &TestUpstream, redis: &str, steady: &NewKey, walker: &NewKey, audit: bool) -> String {
    let audit = if audit {
        "audit: { path: audit.jsonl, signing_key: { file: audit-key } }"
    } else {
        ""
    };
    format!(
        r#"version: 1
workers: 2
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity: {{ api_keys: {{ pepper: {{ file: pepper.txt }} }} }}
{audit}
redis: {{ url: "{redis}", timeout: 500ms }}
anomaly:
  action: ban
  window: 1s
  warmup: 2
  duration: 10m
  store: redis
consumers:
  - {{ id: steady, api_keys: [{{ id: steady-1, hash: "{steady}" }}] }}
  - {{ id: walker, api_keys: [{{ id: walker-1, hash: "{walker}" }}] }}
upstreams:
  up: {{ targets: [{{ url: "http://{up}" }}] }}
routes:
  - name: orders
    match: {{ path: "/orders/{{id}}" }}
    upstream: up
    authenticate: [api_key]
  - name: health
    match: {{ path: /health }}
    upstream: up
    anomaly: {{ enabled: false }}
"#,
        steady = steady.hash,
        walker = walker.hash,
        up = up.addr,
    )
}

/// Waits for the next whole second of the wall clock, plus a little: each batch of
/// requests then falls in one window.
async fn next_second() {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let into = Duration::from_nanos(u64::from(now.subsec_nanos()));
    tokio::time::sleep(Duration::from_secs(1) - into + Duration::from_millis(50)).await;
}

async fn order(addr: SocketAddr, key: &NewKey, id: u64) -> Reply {
    get_with(addr, &format!("/orders/{id}"), &[("x-api-key", &key.key)]).await
}

/// One request per id, all at once (so a batch stays within its second even on a busy
/// machine); every answer must be 200.
async fn batch(addr: SocketAddr, key: &NewKey, ids: impl Iterator<Item = u64>) {
    let tasks: Vec<_> = ids
        .map(|id| {
            let key = key.key.clone();
            tokio::spawn(async move {
                get_with(addr, &format!("/orders/{id}"), &[("x-api-key", &key)])
                    .await
                    .status
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
}

/// 30 requests over the same 3 orders: one window of ordinary traffic.
async fn ordinary(addr: SocketAddr, key: &NewKey) {
    batch(addr, key, (0..30).map(|i| i % 3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_walking_ids_is_banned_on_every_instance_and_a_steady_one_is_not() {
    let redis = RedisServer::start();
    let up = TestUpstream::echo();
    let steady = generate(PEPPER.as_bytes()).unwrap();
    let walker = generate(PEPPER.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    support::process::audit_keygen(dir.path());
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let a = start_in(&config(&up, &redis.url(), &steady, &walker, true), dir);
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::write(dir_b.path().join("pepper.txt"), PEPPER).unwrap();
    let b = start_in(&config(&up, &redis.url(), &steady, &walker, false), dir_b);

    // Three windows of ordinary traffic from both: two to learn, one scored.
    for _ in 0..3 {
        next_second().await;
        ordinary(a.http(), &steady).await;
        ordinary(a.http(), &walker).await;
    }
    // One window in which the walker asks for 30 different orders at the same rate.
    next_second().await;
    ordinary(a.http(), &steady).await;
    batch(a.http(), &walker, 1000..1030).await;
    // The walker's next request closes that window: flagged, and banned from then on
    // (once that request's log phase, just after its answer, has scored the window).
    next_second().await;
    assert_eq!(order(a.http(), &walker, 1).await.status, 200);
    let flagged = "rampart_anomaly_flags_total{signal=\"distinct_ids\"} 1";
    assert!(
        eventually(async || a.feature_metrics().contains(flagged)).await,
        "the window was never flagged"
    );
    let refused = order(a.http(), &walker, 1).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    assert!(
        !refused.text().contains("anomaly"),
        "the body names no check"
    );
    // A route not watched is not gated for consumers (the ban is on the consumer).
    assert_eq!(get(a.http(), "/health").await.status, 200);
    ordinary(a.http(), &steady).await;

    // The other instance refuses the walker too, within a couple of its polls.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = order(b.http(), &walker, 1).await.status;
        if s == 403 {
            break;
        }
        assert_eq!(s, 200);
        assert!(tokio::time::Instant::now() < deadline, "not shared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(order(b.http(), &steady, 1).await.status, 200);

    let metrics = a.feature_metrics();
    assert!(
        metrics.contains("rampart_anomaly_flags_total{signal=\"distinct_ids\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_anomaly_actions_total{action=\"ban\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_anomaly_refused_total{kind=\"ban\"} 1"),
        "{metrics}"
    );
    assert!(b
        .feature_metrics()
        .contains("rampart_anomaly_actions_total{action=\"ban\"} 0"));

    // The flag is in the audit trail: who, where, which signal, never an id.
    let trail = a.dir.path().join("audit.jsonl");
    let text = wait_for_file(&trail, |t| t.contains("\"kind\":\"anomaly\"")).await;
    let flags: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == "anomaly")
        .collect();
    assert_eq!(flags.len(), 1, "{text}");
    let f = &flags[0];
    assert_eq!(f["subject"], "consumer:walker");
    assert_eq!(f["route"], "orders");
    assert_eq!(f["action"], "ban");
    assert_eq!(f["signals"][0]["signal"], "distinct_ids");
    assert!(f["signals"][0]["value"].as_f64().unwrap() > 20.0, "{f}");
    // No object id is written: no value in the trail is one of the ids asked for, or
    // a path that ends in one. (Values are compared whole: a timestamp or a digest
    // may hold the same digits by chance.)
    fn leaves(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => m.values().for_each(|x| leaves(x, out)),
            serde_json::Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
            serde_json::Value::String(s) => out.push(s.clone()),
            other => out.push(other.to_string()),
        }
    }
    let mut values = Vec::new();
    for line in text.lines() {
        leaves(&serde_json::from_str(line).unwrap(), &mut values);
    }
    for id in (1000..1030).map(|n: u32| n.to_string()) {
        let path = format!("/{id}");
        assert!(
            !values.iter().any(|v| *v == id || v.ends_with(&path)),
            "object id {id} is written: {text}"
        );
    }
    // The refusal is a security event of its own.
    let text = wait_for_file(&trail, |t| t.contains("anomaly.banned")).await;
    assert!(text.contains("\"kind\":\"security\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_spraying_bad_keys_is_throttled_before_any_key_is_checked() {
    let up = TestUpstream::echo();
    let good = generate(PEPPER.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let yaml = format!(
        r#"version: 1
workers: 2
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity: {{ api_keys: {{ pepper: {{ file: pepper.txt }} }}, auth_failures: {{ enabled: false }} }}
anomaly: {{ action: throttle, window: 1s, warmup: 2, signals: [auth_failures], throttle: 1/min, throttle_burst: 2 }}
consumers: [{{ id: good, api_keys: [{{ id: good-1, hash: "{}" }}] }}]
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: api, match: {{ path_prefix: /api }}, upstream: up, authenticate: [api_key] }}
"#,
        good.hash, up.addr
    );
    // (The brute-force limit, `identity.auth_failures`, is off: it would refuse this
    // burst by its fixed budget; here the detector is on its own.)
    let gw = start_in(&yaml, dir);
    let wrong = [("x-api-key", "rk_wrong_0000000000000000000000000000000000")];
    // Three windows of one mistyped key each (two learnt, one scored); then 30.
    for n in [1, 1, 1, 30] {
        next_second().await;
        for _ in 0..n {
            assert_eq!(get_with(gw.http(), "/api/x", &wrong).await.status, 401);
        }
    }
    next_second().await;
    // The request that closes the window is answered. The window is scored in that
    // request's log phase, just after its answer is sent (a request on another
    // worker may come first), so the test waits for the flag to be counted; from
    // then on, the address has a budget of 2 and then one a minute, whatever key it
    // sends.
    assert_eq!(get_with(gw.http(), "/api/x", &wrong).await.status, 401);
    let flagged = "rampart_anomaly_flags_total{signal=\"auth_failures\"} 1";
    assert!(
        eventually(async || gw.feature_metrics().contains(flagged)).await,
        "the window was never flagged"
    );
    let key = [("x-api-key", good.key.as_str())];
    assert_eq!(get_with(gw.http(), "/api/x", &key).await.status, 200);
    assert_eq!(get_with(gw.http(), "/api/x", &key).await.status, 200);
    let refused = get_with(gw.http(), "/api/x", &key).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.code(), "limit.exceeded");
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let m = gw.feature_metrics();
    assert!(
        m.contains("rampart_anomaly_flags_total{signal=\"auth_failures\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("rampart_anomaly_refused_total{kind=\"throttle\"} 1"),
        "{m}"
    );
    assert!(m.contains("rampart_anomaly_sanctions 1"), "{m}");
}

#[test]
fn bad_settings_are_refused_with_their_place() {
    assert_config_errors(&[
        (
            "anomaly: { store: redis }\nroutes: []\n",
            "anomaly.store: `redis` needs the top-level `redis` setting",
        ),
        (
            "anomaly: { window: 500ms }\nroutes: []\n",
            "anomaly.window: must be between 1s and 24h",
        ),
        (
            "anomaly: { signals: [] }\nroutes: []\n",
            "anomaly.signals: name at least one signal",
        ),
        (
            "anomaly: { exempt_consumers: [nobody] }\nroutes: []\n",
            "anomaly.exempt_consumers[0]: no consumer `nobody`",
        ),
        (
            "anomaly: {}\nroutes: [{ name: r, match: { path: \"/u/{uid}\" }, upstream: up, anomaly: { id_param: id } }]\n",
            "routes[0].anomaly.id_param: `id` is not a `{name}` parameter of match.path",
        ),
        (
            "routes: [{ name: r, match: { path_prefix: / }, upstream: up, anomaly: { enabled: true } }]\n",
            "routes[0].anomaly: needs the top-level `anomaly` setting",
        ),
    ]);
}
